//! `shop import orders`: records from a JSON array (our own export, or plain objects) or a
//! TinyDB file of the original Python implementation, each checked with the service's rules
//! before anything is written (see [`store_actor::import`]).
//!
//! TinyDB's layout (`uuid`, `product_uuid`, `quantity`) maps onto ours: the `uuid` becomes the
//! id, the line is checked as `POST /orders` checks one and priced with the product's name and
//! price from the products store (an unknown or archived product refuses the order), and the
//! order belongs to the owner the import names, `placed`. Imported orders take no stock (they
//! show no `stock` state, like orders placed before stock was tracked). From our own export an
//! order is read as stored, its lines and total checked.

use std::collections::HashMap;
use std::sync::Arc;

use products_api::Money;
use serde_json::Value;
use store_actor::import::{Candidate, Check};
use uuid::Uuid;

use crate::domain::order::{MAX_ITEMS, MAX_QUANTITY, priced, requested_items};
use crate::domain::{Order, Status};

/// What the products store holds, as orders prices lines: each product's name and price, or
/// `None` if it is archived.
pub type Catalogue = HashMap<Uuid, Option<(String, Money)>>;

/// The check of each imported record: TinyDB orders are `owner`'s, priced from `catalogue`.
pub fn check(catalogue: Catalogue, owner: String) -> Check {
    let catalogue = Arc::new(catalogue);
    Arc::new(move |c: Candidate| {
        let order = order(&c.data, &catalogue, &owner)?;
        serde_json::to_value(order).map_err(|e| e.to_string())
    })
}

fn order(data: &Value, catalogue: &Catalogue, owner: &str) -> Result<Order, String> {
    let obj = data.as_object().ok_or("not a JSON object")?;
    if obj.contains_key("owner") && obj.contains_key("items") {
        let order: Order = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
        check_lines(&order)?;
        return Ok(order);
    }
    let mut line = obj.clone();
    if let Some(product) = line.remove("product_uuid") {
        line.insert("product_id".into(), product);
    }
    let requested = requested_items(&Value::Object(line)).map_err(|e| e.to_string())?;
    let priced = priced(&requested, |id| match catalogue.get(&id) {
        Some(Some((name, price))) => Some((name.as_str(), *price)),
        _ => None,
    })
    .map_err(|_| {
        let id = requested[0].product_id;
        match catalogue.get(&id) {
            Some(None) => format!("product {id} is archived"),
            _ => format!("product {id} is not in the products store"),
        }
    })?;
    Ok(Order {
        owner: owner.to_owned(),
        status: Status::Placed,
        hold_reason: None,
        items: priced.lines,
        total: priced.total,
        created_by_key: None,
        holds: Vec::new(),
        deleting: false,
    })
}

/// An exported order's lines must add up: 1 to 100 lines of 1 to 10,000 units, each line
/// `quantity × unit_price`, the total their sum.
fn check_lines(order: &Order) -> Result<(), String> {
    if order.items.is_empty() || order.items.len() > MAX_ITEMS {
        return Err(format!("items: give 1 to {MAX_ITEMS} lines"));
    }
    let mut total = Money::default();
    for (i, line) in order.items.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(format!("items[{i}].quantity: must be 1 to {MAX_QUANTITY}"));
        }
        if line.unit_price.times(line.quantity) != Some(line.line_total) {
            return Err(format!(
                "items[{i}].line_total: is not quantity × unit_price"
            ));
        }
        total = total.plus(line.line_total).ok_or("total: too large")?;
    }
    if total != order.total {
        return Err(format!("total: is not the sum of the lines ({total})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalogue() -> (Catalogue, Uuid, Uuid) {
        let (live, archived) = (Uuid::now_v7(), Uuid::now_v7());
        let mut c = Catalogue::new();
        c.insert(live, Some(("Green tea".into(), "4.20".parse().unwrap())));
        c.insert(archived, None);
        (c, live, archived)
    }

    #[test]
    fn tinydb_orders_are_priced_from_the_products_store() {
        let (c, live, archived) = catalogue();
        let got = order(
            &json!({"product_uuid": live.to_string(), "quantity": 3}),
            &c,
            "bob",
        )
        .unwrap();
        assert_eq!((got.owner.as_str(), got.status), ("bob", Status::Placed));
        assert_eq!(got.total.to_string(), "12.60");
        assert_eq!(got.items[0].product_name, "Green tea");
        assert!(got.stock().is_none(), "imported orders take no stock");
        let cases = [
            (
                json!({"product_uuid": live.to_string(), "quantity": 0}),
                "quantity: must be",
            ),
            (
                json!({"product_uuid": live.to_string()}),
                "quantity: is required",
            ),
            (
                json!({"product_uuid": "nope", "quantity": 1}),
                "product_id: must be a UUID",
            ),
            (
                json!({"product_uuid": archived.to_string(), "quantity": 1}),
                "product ",
            ),
            (
                json!({"product_uuid": Uuid::now_v7().to_string(), "quantity": 1}),
                "product ",
            ),
        ];
        for (data, reason) in cases {
            let got = order(&data, &c, "bob").unwrap_err();
            assert!(got.starts_with(reason), "{data}: {got}");
        }
    }

    #[test]
    fn exported_orders_must_add_up() {
        let (c, live, _) = catalogue();
        let placed = order(
            &json!({"product_uuid": live.to_string(), "quantity": 2}),
            &c,
            "bob",
        )
        .unwrap();
        let value = serde_json::to_value(&placed).unwrap();
        assert_eq!(order(&value, &c, "someone else").unwrap(), placed);
        let mut wrong = value.clone();
        wrong["total"] = json!("1.00");
        assert!(order(&wrong, &c, "bob").unwrap_err().starts_with("total:"));
    }
}
