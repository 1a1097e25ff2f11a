//! Stock adjustments, and what the products store keeps: products and the adjustments made to
//! their stock, in one file, so that an adjustment and the stock it changes are written in one
//! atomic batch.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use service_kit::{ApiError, FieldError};
use uuid::Uuid;

use super::product::{IdempotencyRecord, MAX_STOCK, Product, RawFields};

/// The longest adjustment reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

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
    /// Why: 1 to 200 characters after trimming.
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
            Some(Ok(Value::Number(n))) => match n.as_i64() {
                Some(d) if d != 0 && (-limit..=limit).contains(&d) => Some(d),
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
            Some(Ok(Value::String(r))) => {
                let r = r.trim();
                let fits = !r.is_empty()
                    && r.chars().count() <= MAX_REASON_CHARS
                    && !r.chars().any(char::is_control);
                fits.then(|| r.to_owned())
            }
            _ => None,
        };
        if reason.is_none() {
            errors.push(FieldError::new(
                "reason",
                format!("is required: 1 to {MAX_REASON_CHARS} characters, no control characters"),
            ));
        }
        match (delta, reason) {
            (Some(delta), Some(reason)) if errors.is_empty() => Ok(AdjustStock { delta, reason }),
            _ => Err(ApiError::fields(errors)),
        }
    }
}

/// A record of the products store: a product, or an adjustment of one's stock.
///
/// On disk a product is its fields, as before adjustments existed (so old files read as
/// products), and an adjustment is `{"adjustment": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A product.
    Product(Product),
    /// A stock adjustment.
    Adjustment(Adjustment),
}

impl Entry {
    /// The product, if this is one.
    pub fn as_product(&self) -> Option<&Product> {
        match self {
            Entry::Product(p) => Some(p),
            Entry::Adjustment(_) => None,
        }
    }

    /// The adjustment, if this is one.
    pub fn as_adjustment(&self) -> Option<&Adjustment> {
        match self {
            Entry::Adjustment(a) => Some(a),
            Entry::Product(_) => None,
        }
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wrapped<'a> {
            adjustment: &'a Adjustment,
        }
        match self {
            Entry::Product(p) => p.serialize(serializer),
            Entry::Adjustment(a) => Wrapped { adjustment: a }.serialize(serializer),
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
        f.write_str("a product or {\"adjustment\": ...}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut product = PartialProduct::default();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if first && key == "adjustment" {
                let adjustment = map.next_value()?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an adjustment record has one key"));
                }
                return Ok(Entry::Adjustment(adjustment));
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
    fn adjustment_requests_are_checked() {
        let ok = AdjustStock::from_fields(
            &raw_fields(br#"{"delta": -3, "reason": " broken in transit "}"#).unwrap(),
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
