//! Stock adjustments and reservations, and what the products store keeps: products, the
//! adjustments of their stock and the reservations held on it, in one file, so that a change of
//! stock and the record that explains it are written in one atomic batch.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use service_kit::{ApiError, FieldError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::product::{IdempotencyRecord, MAX_STOCK, Product, RawFields, visible_text};

pub use products_api::MAX_REASON_CHARS;

/// One change of a product's stock, kept as a record of its own: the audit trail of stock, and
/// what an `Idempotency-Key` finds on a retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The product adjusted.
    pub product_id: Uuid,
    /// Units added (negative: removed).
    pub delta: i64,
    /// Why, in the caller's words.
    pub reason: String,
    /// The key and body that made it, so that a retry finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_key: Option<IdempotencyRecord>,
}

/// A validated adjustment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustStock {
    /// Units to add (negative: remove); never 0.
    pub delta: i64,
    /// Why: 1 to 200 characters (see [`visible_text`]).
    pub reason: String,
}

impl AdjustStock {
    /// Validates `{"delta": ..., "reason": ...}`, reporting every invalid field at once.
    pub fn from_fields(fields: &RawFields) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        for key in fields.keys().filter(|k| *k != "delta" && *k != "reason") {
            errors.push(FieldError::new(
                key.clone(),
                "unknown field; expected delta or reason",
            ));
        }
        let limit = MAX_STOCK as i64;
        let delta = match fields
            .get("delta")
            .map(|v| serde_json::from_str::<Value>(v.get()))
        {
            Some(Ok(Value::Number(n))) => match products_api::whole_number(&n) {
                Some(d) if d != 0 && (-i128::from(limit)..=i128::from(limit)).contains(&d) => {
                    Some(d as i64)
                }
                _ => None,
            },
            _ => None,
        };
        if delta.is_none() {
            errors.push(FieldError::new(
                "delta",
                format!("is required: a whole number other than 0, from -{limit} to {limit}"),
            ));
        }
        let reason = match fields
            .get("reason")
            .map(|v| serde_json::from_str::<Value>(v.get()))
        {
            Some(Ok(Value::String(r))) => visible_text(&r, MAX_REASON_CHARS).ok(),
            _ => None,
        };
        if reason.is_none() {
            errors.push(FieldError::new(
                "reason",
                format!(
                    "is required: 1 to {MAX_REASON_CHARS} characters, no control characters, \
                     no white space at either end"
                ),
            ));
        }
        match (delta, reason) {
            (Some(delta), Some(reason)) if errors.is_empty() => Ok(AdjustStock { delta, reason }),
            _ => Err(ApiError::fields(errors)),
        }
    }
}

/// Where a reservation is in its life (the wire type: held, committed, released, expired).
pub use products_api::ReservationState;

/// One line of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLine {
    /// The product.
    pub product_id: Uuid,
    /// Units held.
    pub quantity: u32,
}

/// Units of several products held for one order, all or nothing, under the order's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Who holds it (the caller's `user`, e.g. orders' service).
    pub holder: String,
    /// Its lines, one per product.
    pub lines: Vec<HeldLine>,
    /// Its state.
    pub state: ReservationState,
    /// When products releases it on its own if it is still held.
    #[serde(with = "store_actor::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A line that cannot be held: fewer units are available than requested (the wire type, as
/// the out-of-stock problem lists it).
pub use products_api::ShortLine;

/// A reservation line refused inside the store (a race with another reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("product {} has {} units available, {} requested", .0.product_id, .0.available, .0.requested)]
pub struct Short(pub ShortLine);

impl Product {
    /// The product with `quantity` more units held, or the short line if fewer are available
    /// (a product that does not track stock never runs short and counts nothing).
    pub fn holding(&self, product_id: Uuid, quantity: u32) -> Result<Product, Short> {
        let Some(available) = self.available() else {
            return Ok(self.clone());
        };
        if available < u64::from(quantity) {
            return Err(Short(ShortLine {
                product_id,
                requested: quantity,
                available,
            }));
        }
        Ok(Product {
            reserved: self.reserved + u64::from(quantity),
            ..self.clone()
        })
    }

    /// The product with `quantity` held units settled: sold (they leave stock) or given back.
    pub fn settling(&self, quantity: u32, sold: bool) -> Product {
        let Some(stock) = self.stock else {
            return self.clone();
        };
        let quantity = u64::from(quantity);
        Product {
            stock: Some(if sold {
                stock.saturating_sub(quantity)
            } else {
                stock
            }),
            reserved: self.reserved.saturating_sub(quantity),
            ..self.clone()
        }
    }

    /// The product with `quantity` sold units back in stock (a committed reservation released).
    pub fn restocking(&self, quantity: u32) -> Product {
        Product {
            stock: self.stock.map(|s| s + u64::from(quantity)),
            ..self.clone()
        }
    }
}

/// A record of the products store: a product, an adjustment of one's stock, or a reservation.
///
/// On disk a product is its fields, as before the other kinds existed (so old files read as
/// products); an adjustment is `{"adjustment": {...}}` and a reservation `{"reservation": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A product.
    Product(Product),
    /// A stock adjustment.
    Adjustment(Adjustment),
    /// A reservation.
    Reservation(Reservation),
}

impl Entry {
    /// The product, if this is one.
    pub fn as_product(&self) -> Option<&Product> {
        match self {
            Entry::Product(p) => Some(p),
            _ => None,
        }
    }

    /// The adjustment, if this is one.
    pub fn as_adjustment(&self) -> Option<&Adjustment> {
        match self {
            Entry::Adjustment(a) => Some(a),
            _ => None,
        }
    }

    /// The reservation, if this is one.
    pub fn as_reservation(&self) -> Option<&Reservation> {
        match self {
            Entry::Reservation(r) => Some(r),
            _ => None,
        }
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        enum Wrapped<'a> {
            #[serde(rename = "adjustment")]
            Adjustment(&'a Adjustment),
            #[serde(rename = "reservation")]
            Reservation(&'a Reservation),
        }
        match self {
            Entry::Product(p) => p.serialize(serializer),
            Entry::Adjustment(a) => Wrapped::Adjustment(a).serialize(serializer),
            Entry::Reservation(r) => Wrapped::Reservation(r).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// Reads the first key: `adjustment` is an adjustment; anything else starts a product, whose
/// fields are then read from the same map (no buffering: products are most records).
struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a product, {\"adjustment\": ...} or {\"reservation\": ...}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut product = PartialProduct::default();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if first && (key == "adjustment" || key == "reservation") {
                let entry = if key == "adjustment" {
                    Entry::Adjustment(map.next_value()?)
                } else {
                    Entry::Reservation(map.next_value()?)
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format!("{key} records have one key")));
                }
                return Ok(entry);
            }
            first = false;
            match key.as_str() {
                "name" => product.name = Some(map.next_value()?),
                "price" => product.price = Some(map.next_value()?),
                "created_by_key" => product.created_by_key = map.next_value()?,
                "stock" => product.stock = map.next_value()?,
                "reserved" => product.reserved = map.next_value()?,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Entry::Product(Product {
            name: product
                .name
                .ok_or_else(|| de::Error::missing_field("name"))?,
            price: product
                .price
                .ok_or_else(|| de::Error::missing_field("price"))?,
            created_by_key: product.created_by_key,
            stock: product.stock,
            reserved: product.reserved,
        }))
    }
}

#[derive(Default)]
struct PartialProduct {
    name: Option<super::ProductName>,
    price: Option<super::Money>,
    created_by_key: Option<IdempotencyRecord>,
    stock: Option<u64>,
    reserved: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::raw_fields;
    use serde_json::json;

    fn product(stock: Option<u64>) -> Product {
        Product {
            name: crate::domain::ProductName::parse("Tea").unwrap(),
            price: "1.50".parse().unwrap(),
            created_by_key: None,
            stock,
            reserved: 0,
        }
    }

    #[test]
    fn entries_round_trip_and_old_product_lines_still_read() {
        let adjustment = Entry::Adjustment(Adjustment {
            product_id: Uuid::nil(),
            delta: -2,
            reason: "broken".into(),
            created_by_key: None,
        });
        let text = serde_json::to_string(&adjustment).unwrap();
        assert!(text.starts_with(r#"{"adjustment":{"#), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), adjustment);
        let reservation = Entry::Reservation(Reservation {
            holder: "orders-service".into(),
            lines: vec![HeldLine {
                product_id: Uuid::nil(),
                quantity: 2,
            }],
            state: ReservationState::Held,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        });
        let text = serde_json::to_string(&reservation).unwrap();
        assert!(text.starts_with(r#"{"reservation":{"#), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), reservation);
        let tracked = Entry::Product(product(Some(5)));
        let text = serde_json::to_string(&tracked).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), tracked);
        // A product written before stock existed.
        let old: Entry = serde_json::from_str(r#"{"name":"Tea","price":"1.50"}"#).unwrap();
        assert_eq!(old, Entry::Product(product(None)));
        assert!(serde_json::from_str::<Entry>(r#"{"price":"1.50"}"#).is_err());
        assert!(serde_json::from_str::<Entry>(r#"{"adjustment":{},"x":1}"#).is_err());
    }

    #[test]
    fn stock_moves_within_bounds() {
        let p = product(Some(5));
        assert_eq!(p.adjusted(3).unwrap().stock, Some(8));
        assert_eq!(p.adjusted(-5).unwrap().stock, Some(0));
        assert!(matches!(
            p.adjusted(-6),
            Err(crate::domain::StockRefusal::Negative { available: 5, .. })
        ));
        let held = Product {
            reserved: 4,
            ..p.clone()
        };
        assert_eq!(held.available(), Some(1));
        assert!(
            held.adjusted(-2).is_err(),
            "reserved units cannot be removed"
        );
        assert_eq!(
            product(None).adjusted(1),
            Err(crate::domain::StockRefusal::NotTracked)
        );
        assert_eq!(product(None).available(), None);
    }

    #[test]
    fn holds_count_against_available_and_settle() {
        let id = Uuid::nil();
        let p = product(Some(5));
        let held = p.holding(id, 3).unwrap();
        assert_eq!((held.reserved, held.available()), (3, Some(2)));
        assert_eq!(
            held.holding(id, 3),
            Err(Short(ShortLine {
                product_id: id,
                requested: 3,
                available: 2
            }))
        );
        let sold = held.settling(3, true);
        assert_eq!((sold.stock, sold.reserved), (Some(2), 0));
        let back = held.settling(3, false);
        assert_eq!((back.stock, back.reserved), (Some(5), 0));
        assert_eq!(sold.restocking(3).stock, Some(5));
        // Not tracked: never short, nothing counted.
        let free = product(None).holding(id, 1_000).unwrap();
        assert_eq!((free.reserved, free.available()), (0, None));
    }

    #[test]
    fn adjustment_requests_are_checked() {
        let ok = AdjustStock::from_fields(
            &raw_fields(br#"{"delta": -3, "reason": "broken in transit"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            ok,
            AdjustStock {
                delta: -3,
                reason: "broken in transit".into()
            }
        );
        for (body, fields) in [
            (json!({"delta": 0, "reason": "x"}), vec!["delta"]),
            (json!({"delta": 1.5, "reason": "x"}), vec!["delta"]),
            (json!({"delta": "1", "reason": ""}), vec!["delta", "reason"]),
            (json!({"reason": "x", "colour": 1}), vec!["colour", "delta"]),
            (json!({"delta": 1, "reason": " padded "}), vec!["reason"]),
        ] {
            let fields_of = raw_fields(body.to_string().as_bytes()).unwrap();
            let ApiError::Validation { errors, .. } =
                AdjustStock::from_fields(&fields_of).unwrap_err()
            else {
                panic!("{body}")
            };
            let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(named, fields, "{body}");
        }
    }
}
