//! `shop import products`: records from a JSON array (our own export, or plain objects) or a
//! TinyDB file of the original Python implementation, each checked with the service's own rules
//! before anything is written (see [`store_actor::import`]).
//!
//! A product is checked as `POST /products` checks one (name, price, stock), so that the
//! service starts on whatever an import wrote. TinyDB's layout maps onto ours: its `uuid`
//! becomes the id (the store-actor import does that), `name` and `price` stay, and a price
//! TinyDB kept as a JSON number is read as the decimal it spells (`12.5` is "12.50", `12.345`
//! is refused). From our own export, a product keeps its `reserved` units and the
//! `Idempotency-Key` that created it, and stock adjustments and reservations are read as stored.

use std::sync::Arc;

use serde_json::{Map, Value};
use store_actor::import::{Candidate, Check};

use crate::domain::{Entry, IdempotencyRecord, NewProduct, Product, RawFields};

/// The check of each imported record.
pub fn check() -> Check {
    Arc::new(|c: Candidate| {
        let entry = entry(&c.data)?;
        serde_json::to_value(entry).map_err(|e| e.to_string())
    })
}

/// What an imported record is, or why it is refused.
fn entry(data: &Value) -> Result<Entry, String> {
    let obj = data.as_object().ok_or("not a JSON object")?;
    if obj.contains_key("adjustment") || obj.contains_key("reservation") {
        return serde_json::from_value::<Entry>(data.clone()).map_err(|e| e.to_string());
    }
    let mut fields = obj.clone();
    let reserved = take(&mut fields, "reserved")?.unwrap_or(0);
    let created_by_key = take::<IdempotencyRecord>(&mut fields, "created_by_key")?;
    // TinyDB kept prices as JSON numbers: the decimal they spell is the price.
    if let Some(Value::Number(n)) = fields.get("price") {
        let text = n.to_string();
        fields.insert("price".into(), Value::String(text));
    }
    let new = NewProduct::from_fields(&raw(fields)?).map_err(|e| e.to_string())?;
    if new.stock.is_some_and(|stock| reserved > stock) {
        return Err(format!("reserved ({reserved}) exceeds stock"));
    }
    if new.stock.is_none() && reserved > 0 {
        return Err("reserved units on a product that does not track stock".into());
    }
    Ok(Entry::Product(Product {
        name: new.name,
        price: new.price,
        created_by_key,
        stock: new.stock,
        reserved,
    }))
}

/// Removes `key` from `fields`, read as a `T` (absent or null: `None`).
fn take<T: serde::de::DeserializeOwned>(
    fields: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, String> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
    }
}

fn raw(fields: Map<String, Value>) -> Result<RawFields, String> {
    fields
        .into_iter()
        .map(|(k, v)| {
            let raw = serde_json::value::to_raw_value(&v).map_err(|e| e.to_string())?;
            Ok((k, raw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tinydb_products_map_onto_ours_and_are_checked_like_creates() {
        let ok = entry(&json!({"name": "Green tea", "price": 4.2})).unwrap();
        let product = ok.as_product().unwrap();
        assert_eq!(
            (product.name.as_str(), product.price.cents()),
            ("Green tea", 420)
        );
        let cases = [
            (
                json!({"name": "Tea", "price": "12.345"}),
                "price: must have at most two fraction digits",
            ),
            (
                json!({"name": "Tea", "price": 12.345}),
                "price: must have at most two fraction digits",
            ),
            (json!({"name": "Tea"}), "price: is required"),
            (
                json!({"name": " Tea", "price": "1"}),
                "name: must not start or end with white space",
            ),
            (
                json!({"name": "Tea", "price": "1", "colour": "red"}),
                "colour: unknown field",
            ),
            (
                json!({"name": "Tea", "price": "1", "stock": 1, "reserved": 2}),
                "reserved (2) exceeds stock",
            ),
        ];
        for (data, reason) in cases {
            let got = entry(&data).unwrap_err();
            assert!(got.starts_with(reason), "{data}: {got}");
        }
    }

    #[test]
    fn exported_records_keep_what_the_service_kept() {
        let data = json!({"name": "Pot", "price": "25.00", "stock": 3, "reserved": 2});
        let product = entry(&data).unwrap();
        assert_eq!(product.as_product().unwrap().reserved, 2);
        let value = serde_json::to_value(&product).unwrap();
        assert_eq!(
            entry(&value).unwrap(),
            product,
            "an export imports as it was"
        );
    }
}
