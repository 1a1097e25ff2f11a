//! What an order is and the rules it obeys: line items with a snapshot of each product at
//! order time, exact totals, and the status machine.

use std::collections::BTreeMap;
use std::fmt;

use products_api::{LookupResponse, Money, ReservationBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::{ApiError, Caller, FieldError};
use utoipa::ToSchema;
use uuid::Uuid;

use super::hold::{Due, Hold, HoldState, StockState, Units};

/// Most units of one product in one order.
pub const MAX_QUANTITY: u32 = 10_000;
/// Most distinct products in one order.
pub const MAX_ITEMS: usize = 100;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Placed and waiting to be fulfilled.
    Placed,
    /// Held for review (e.g. a product was archived); see `hold_reason`.
    OnHold,
    /// Delivered: final.
    Fulfilled,
    /// Cancelled: final.
    Cancelled,
}

impl Status {
    /// The name used in the API and the index.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::OnHold => "on_hold",
            Status::Fulfilled => "fulfilled",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether a client may move an order from `self` to `to`: placed → fulfilled or
    /// cancelled; on_hold → placed, fulfilled or cancelled. (Holding is the service's own move.)
    pub fn may_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Placed, Status::Fulfilled | Status::Cancelled)
                | (
                    Status::OnHold,
                    Status::Placed | Status::Fulfilled | Status::Cancelled
                )
        )
    }

    /// Whether the items may still change.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Placed | Status::OnHold)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order refuses a change a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only placed and held orders may change their lines.
    #[error("the items of a {0} order cannot change")]
    ItemsFrozen(Status),
    /// Not a move [`Status::may_become`] allows.
    #[error("an order cannot go from {from} to {to}")]
    Transition {
        /// Where the order is.
        from: Status,
        /// Where it was asked to go.
        to: Status,
    },
}

/// What a client asks to change: new lines and/or a new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Replaces the lines (they are priced again).
    pub items: Option<Vec<RequestedItem>>,
    /// The status to move to.
    pub status: Option<Status>,
}

/// One line of an order, with the product as it was when ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineItem {
    /// The product.
    pub product_id: Uuid,
    /// Units, 1 to 10,000.
    pub quantity: u32,
    /// The product's name at order time.
    pub product_name: String,
    /// The product's price at order time.
    #[schema(value_type = String, example = "4.20")]
    pub unit_price: Money,
    /// `quantity × unit_price`, exact.
    #[schema(value_type = String, example = "8.40")]
    pub line_total: Money,
}

/// An order as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The user who placed it.
    pub owner: String,
    /// Its status.
    pub status: Status,
    /// Why it is on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<String>,
    /// Its lines.
    pub items: Vec<LineItem>,
    /// Sum of the line totals.
    pub total: Money,
    /// The `Idempotency-Key` that created it, and what the first answer said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_key: Option<CreatedByKey>,
    /// Its reservations at products, oldest first (none for orders placed before stock).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Deleted, waiting for its stock to be given back before it becomes a tombstone: reads
    /// already treat it as deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
}

/// What products answered a call orders owed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The commit or release went through (or had before).
    Done,
    /// The commit was refused: the reservation expired before orders could commit it.
    Lapsed,
}

impl Order {
    /// A new order of `owner`, placed with its priced lines, held at products by the
    /// reservation `reservation` (which it now owes a commit).
    pub fn placed(
        owner: String,
        priced: Priced,
        created_by_key: Option<CreatedByKey>,
        reservation: Uuid,
    ) -> Self {
        let held = Hold::committing(reservation, units_of(&priced.lines));
        Order {
            owner,
            status: Status::Placed,
            hold_reason: None,
            items: priced.lines,
            total: priced.total,
            created_by_key,
            holds: vec![held],
            deleting: false,
        }
    }

    /// Where its stock stands (`None` for orders placed before stock was tracked).
    pub fn stock(&self) -> Option<StockState> {
        let newest = self.holds.last()?;
        let live = self.holds.iter().any(|h| h.state.is_live());
        Some(match (live, self.is_settled()) {
            (true, false) => StockState::Pending,
            (true, true) => StockState::Confirmed,
            (false, false) => StockState::Releasing,
            (false, true) if newest.state == HoldState::Lapsed => StockState::Expired,
            (false, true) => StockState::Released,
        })
    }

    /// The calls this order still owes products.
    pub fn dues(&self) -> impl Iterator<Item = Due> + '_ {
        self.holds.iter().flat_map(Hold::dues)
    }

    /// Whether it owes products nothing.
    pub fn is_settled(&self) -> bool {
        self.dues().next().is_none()
    }

    /// Units per product its live reservations hold (once what they are owed is done).
    fn units_held(&self) -> BTreeMap<Uuid, u32> {
        let mut held = BTreeMap::new();
        for u in self.holds.iter().flat_map(Hold::target) {
            *held.entry(u.product_id).or_default() += u.quantity;
        }
        held
    }

    /// The units `items` need beyond what its reservations hold: what a new reservation must
    /// take (all of them for an order placed before stock was tracked, or whose hold lapsed).
    pub fn missing(&self, items: &[RequestedItem]) -> Vec<Units> {
        let held = self.units_held();
        items
            .iter()
            .filter_map(|i| {
                let have = held.get(&i.product_id).copied().unwrap_or(0);
                (i.quantity > have).then(|| Units {
                    product_id: i.product_id,
                    quantity: i.quantity - have,
                })
            })
            .collect()
    }

    /// Every live reservation becomes owed a release (its units are no longer wanted).
    fn release_holds(&mut self) {
        for h in &mut self.holds {
            if h.state.is_live() {
                h.state = HoldState::Releasing;
                h.shrink_to = None;
            }
        }
    }

    /// Rebalances the reservations to `items`: `reserved` (a new reservation of the missing
    /// units) joins them, and units no longer needed are owed back, from the newest reservation
    /// first: a shrink, or a release of a reservation left with nothing.
    fn rebalance(&mut self, items: &[RequestedItem], reserved: Option<(Uuid, Vec<Units>)>) {
        let wanted: BTreeMap<Uuid, u32> =
            items.iter().map(|i| (i.product_id, i.quantity)).collect();
        let mut surplus: BTreeMap<Uuid, u32> = self
            .units_held()
            .into_iter()
            .filter_map(|(p, have)| {
                let want = wanted.get(&p).copied().unwrap_or(0);
                (have > want).then(|| (p, have - want))
            })
            .collect();
        for hold in self.holds.iter_mut().rev().filter(|h| h.state.is_live()) {
            let mut target = hold.target().to_vec();
            for u in &mut target {
                if let Some(extra) = surplus.get_mut(&u.product_id) {
                    let back = (*extra).min(u.quantity);
                    u.quantity -= back;
                    *extra -= back;
                }
            }
            target.retain(|u| u.quantity > 0);
            if target.is_empty() {
                hold.state = HoldState::Releasing;
                hold.shrink_to = None;
            } else if target != hold.lines {
                hold.shrink_to = Some(target);
            } else {
                hold.shrink_to = None;
            }
        }
        if let Some((id, lines)) = reserved {
            self.holds.push(Hold::committing(id, lines));
        }
    }

    /// The order once products answered `due`, or `None` if the order no longer owes it
    /// (cancelled meanwhile, or recorded already). A lapsed commit puts a placed order on hold.
    pub fn settled(&self, due: &Due, outcome: Settled) -> Option<Order> {
        let mut next = self.clone();
        let id = match due {
            Due::Commit(id) | Due::Release(id) | Due::Shrink(id, _) => *id,
        };
        let hold = next.holds.iter_mut().find(|h| h.id == id)?;
        match (due, outcome) {
            (Due::Commit(_), _) if hold.state != HoldState::Committing => return None,
            (Due::Commit(_), Settled::Done) => hold.state = HoldState::Committed,
            (Due::Commit(_), Settled::Lapsed) => {
                hold.state = HoldState::Lapsed;
                hold.shrink_to = None;
            }
            (Due::Release(_), _) if hold.state != HoldState::Releasing => return None,
            (Due::Release(_), _) => hold.state = HoldState::Released,
            (Due::Shrink(_, to), _) if hold.shrink_to.as_ref() != Some(to) => return None,
            (Due::Shrink(_, to), _) => {
                hold.lines = to.clone();
                hold.shrink_to = None;
            }
        }
        if hold.state == HoldState::Lapsed && next.status == Status::Placed {
            next.status = Status::OnHold;
            next.hold_reason = Some(
                "its reservation expired before products confirmed the sale; \
                 placing it again reserves the stock anew"
                    .to_owned(),
            );
        }
        Some(next)
    }

    /// The order deleted: an open order's stock is given back (a fulfilled one's stays sold).
    /// It stays readable to the settler until it owes products nothing.
    pub fn deleted(&self) -> Order {
        let mut next = self.clone();
        if next.status.is_open() {
            next.release_holds();
        }
        next.deleting = true;
        next
    }

    /// Whether `caller` may see this order: its owner, or an admin. (Others are told it does
    /// not exist.)
    pub fn is_visible_to(&self, caller: &Caller) -> bool {
        caller.admin || self.owner == caller.user
    }

    /// The lines as requested (what pricing them again needs).
    pub fn requested(&self) -> Vec<RequestedItem> {
        self.items
            .iter()
            .map(|i| RequestedItem {
                product_id: i.product_id,
                quantity: i.quantity,
            })
            .collect()
    }

    /// Refuses new lines unless the order is still open.
    pub fn check_items_change(&self, change: &Change) -> Result<(), Refusal> {
        match change.items {
            Some(_) if !self.status.is_open() => Err(Refusal::ItemsFrozen(self.status)),
            _ => Ok(()),
        }
    }

    /// The status a change moves the order to, if any, or the refusal. Asking for the current
    /// status along with new lines is no move; asking for it alone is (and is refused).
    pub fn transition(&self, change: &Change) -> Result<Option<Status>, Refusal> {
        let to = change
            .status
            .filter(|s| *s != self.status || change.items.is_none());
        match to {
            Some(to) if !self.status.may_become(to) => Err(Refusal::Transition {
                from: self.status,
                to,
            }),
            to => Ok(to),
        }
    }

    /// Whether moving `to` releases a hold on unchanged lines: then their products must still
    /// be available, so they are priced again (and the order refused if one is gone).
    pub fn releases_hold(&self, to: Option<Status>, change: &Change) -> bool {
        self.status == Status::OnHold && to == Some(Status::Placed) && change.items.is_none()
    }

    /// The order after a change checked by [`Self::check_items_change`] and
    /// [`Self::transition`]: new lines, if priced, with its reservations rebalanced to them
    /// (`reserved`: the new reservation of the [`Self::missing`] units, if any; units no longer
    /// needed are owed back), and the new status, which clears any hold; a cancelled order's
    /// reservations are owed a release.
    pub fn changed(
        &self,
        lines: Option<Priced>,
        reserved: Option<(Uuid, Vec<Units>)>,
        to: Option<Status>,
    ) -> Order {
        let mut next = self.clone();
        if let Some(priced) = lines {
            next.items = priced.lines;
            next.total = priced.total;
            next.rebalance(&next.requested(), reserved);
        } else if reserved.is_some() {
            next.rebalance(&next.requested(), reserved);
        }
        if let Some(to) = to {
            next.status = to;
            next.hold_reason = None;
            if to == Status::Cancelled {
                next.release_holds();
            }
        }
        next
    }

    /// The order put on hold for `reason`, if it is placed (the service's own move, e.g. when a
    /// product it contains is archived); `None` if it is not placed.
    pub fn held(&self, reason: String) -> Option<Order> {
        (self.status == Status::Placed).then(|| Order {
            status: Status::OnHold,
            hold_reason: Some(reason),
            ..self.clone()
        })
    }

    /// The order as the first answer to its idempotent create showed it: placed, with the
    /// lines and total it was first priced at (lines may have changed since).
    pub fn as_first_answered(&self) -> Order {
        let mut first = self.clone();
        if let Some(original) = &self.created_by_key {
            first.items = original.items.clone();
            first.total = original.total;
        }
        first.status = Status::Placed;
        first.hold_reason = None;
        first.deleting = false;
        first.holds.truncate(1);
        for h in &mut first.holds {
            h.state = HoldState::Committing;
        }
        first
    }
}

/// Priced lines and their exact total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// The lines, each with its product's name and price now.
    pub lines: Vec<LineItem>,
    /// Their sum.
    pub total: Money,
}

/// Why requested lines cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Some products are unknown or archived: the whole order is refused, naming them.
    #[error("the order cannot be placed: {}", describe(unknown, archived))]
    Unavailable {
        /// Products that never existed.
        unknown: Vec<Uuid>,
        /// Archived products.
        archived: Vec<Uuid>,
    },
    /// A line total or the order total is past what money can hold.
    #[error("the {0} total is too large")]
    TooLarge(&'static str),
    /// Products answered without one of the products asked for (a bug on their side).
    #[error("products did not answer for {0}")]
    NoAnswer(Uuid),
}

fn describe(unknown: &[Uuid], archived: &[Uuid]) -> String {
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!("unknown products: {}", join(unknown)));
    }
    if !archived.is_empty() {
        parts.push(format!("archived products: {}", join(archived)));
    }
    parts.join("; ")
}

/// An idempotent create: who, which key, which body, and the lines and total it was first
/// answered with (items may change later; a replay must still say what the first answer said).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedByKey {
    /// The caller.
    pub owner: String,
    /// The key they sent.
    pub key: String,
    /// SHA-256 of the canonical request body.
    pub fingerprint: String,
    /// The lines of the first answer.
    pub items: Vec<LineItem>,
    /// The total of the first answer.
    pub total: Money,
}

/// A requested line before pricing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedItem {
    /// The product.
    pub product_id: Uuid,
    /// Units.
    pub quantity: u32,
}

fn item(value: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<RequestedItem> {
    let Some(obj) = value.as_object() else {
        errors.push(FieldError::new(
            path,
            "must be an object with product_id and quantity",
        ));
        return None;
    };
    for key in obj.keys() {
        if key != "product_id" && key != "quantity" {
            errors.push(FieldError::new(format!("{path}.{key}"), "unknown field"));
        }
    }
    let product_id = match obj.get("product_id") {
        Some(Value::String(s)) => s.parse::<Uuid>().map_err(|_| "must be a UUID"),
        Some(_) => Err("must be a UUID string"),
        None => Err("is required"),
    }
    .map_err(|m| errors.push(FieldError::new(format!("{path}.product_id"), m)))
    .ok();
    let quantity = match obj.get("quantity") {
        Some(Value::Number(n)) => match products_api::whole_number(n) {
            Some(q) if (1..=i128::from(MAX_QUANTITY)).contains(&q) => Ok(q as u32),
            _ => Err(format!("must be a whole number from 1 to {MAX_QUANTITY}")),
        },
        Some(_) => Err(format!("must be a whole number from 1 to {MAX_QUANTITY}")),
        None => Err("is required".to_owned()),
    }
    .map_err(|m| errors.push(FieldError::new(format!("{path}.quantity"), m)))
    .ok();
    Some(RequestedItem {
        product_id: product_id?,
        quantity: quantity?,
    })
}

/// Merges lines of the same product (quantities add up, first position kept); the merged
/// quantity must still be at most [`MAX_QUANTITY`].
fn merge(items: Vec<RequestedItem>) -> Result<Vec<RequestedItem>, ApiError> {
    let mut merged: Vec<RequestedItem> = Vec::with_capacity(items.len());
    for it in items {
        match merged.iter_mut().find(|m| m.product_id == it.product_id) {
            Some(m) => m.quantity += it.quantity,
            None => merged.push(it),
        }
    }
    let errors: Vec<FieldError> = merged
        .iter()
        .filter(|m| m.quantity > MAX_QUANTITY)
        .map(|m| {
            FieldError::new(
                "items",
                format!(
                    "product {} adds up to {} units; at most {MAX_QUANTITY}",
                    m.product_id, m.quantity
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// Reads the items of an order body: `{"items": [{"product_id", "quantity"}, ...]}` or the
/// single-product form `{"product_id", "quantity"}`. Lines of the same product are merged.
pub fn requested_items(body: &Value) -> Result<Vec<RequestedItem>, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    let mut errors = Vec::new();
    let items = if obj.contains_key("items") {
        for key in obj.keys().filter(|k| *k != "items") {
            errors.push(FieldError::new(
                key.clone(),
                "unknown field; give items, or product_id and quantity",
            ));
        }
        match &obj["items"] {
            Value::Array(list) if list.is_empty() => {
                errors.push(FieldError::new("items", "must not be empty"));
                Vec::new()
            }
            Value::Array(list) if list.len() > MAX_ITEMS => {
                errors.push(FieldError::new(
                    "items",
                    format!("at most {MAX_ITEMS} lines"),
                ));
                Vec::new()
            }
            Value::Array(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, v)| item(v, &format!("items[{i}]"), &mut errors))
                .collect(),
            _ => {
                errors.push(FieldError::new("items", "must be an array"));
                Vec::new()
            }
        }
    } else {
        item(body, "", &mut errors).into_iter().collect::<Vec<_>>()
    };
    // The single-product form reports fields without the leading dot.
    for e in &mut errors {
        if let Some(rest) = e.field.strip_prefix('.') {
            e.field = rest.to_owned();
        }
    }
    if errors.is_empty() {
        merge(items)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// Prices requested items from one products lookup. Unknown or archived products refuse the
/// whole order, naming them.
pub fn price(requested: &[RequestedItem], lookup: &LookupResponse) -> Result<Priced, PricingError> {
    if !lookup.unknown.is_empty() || !lookup.archived.is_empty() {
        return Err(PricingError::Unavailable {
            unknown: lookup.unknown.clone(),
            archived: lookup.archived.clone(),
        });
    }
    let found: BTreeMap<Uuid, _> = lookup
        .products
        .iter()
        .map(|p| (p.id, (p.name.as_str(), p.price)))
        .collect();
    priced(requested, |id| found.get(&id).copied())
}

/// Prices each requested line with the name and unit price `product` finds for it.
pub fn priced<'a>(
    requested: &[RequestedItem],
    product: impl Fn(Uuid) -> Option<(&'a str, Money)>,
) -> Result<Priced, PricingError> {
    let mut lines = Vec::with_capacity(requested.len());
    let mut total = Money::default();
    for r in requested {
        let (name, unit_price) =
            product(r.product_id).ok_or(PricingError::NoAnswer(r.product_id))?;
        let line_total = unit_price
            .times(r.quantity)
            .ok_or(PricingError::TooLarge("line"))?;
        total = total
            .plus(line_total)
            .ok_or(PricingError::TooLarge("order"))?;
        lines.push(LineItem {
            product_id: r.product_id,
            quantity: r.quantity,
            product_name: name.to_owned(),
            unit_price,
            line_total,
        });
    }
    Ok(Priced { lines, total })
}

/// Prices requested items from products' answer to their reservation (each line with the
/// product's name and unit price as products holds it).
pub fn price_reserved(
    requested: &[RequestedItem],
    reservation: &ReservationBody,
) -> Result<Priced, PricingError> {
    let found: BTreeMap<Uuid, _> = reservation
        .lines
        .iter()
        .map(|l| (l.product_id, (l.name.as_str(), l.unit_price)))
        .collect();
    priced(requested, |id| found.get(&id).copied())
}

/// The units of priced lines.
fn units_of(lines: &[LineItem]) -> Vec<Units> {
    lines
        .iter()
        .map(|l| Units {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect()
}

fn join(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use products_api::ProductBody;
    use serde_json::json;
    use time::OffsetDateTime;

    fn product(id: Uuid, name: &str, price: &str) -> ProductBody {
        ProductBody {
            id,
            name: name.into(),
            price: price.parse().unwrap(),
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            archived: false,
            stock: None,
            reserved: 0,
            available: None,
        }
    }

    #[test]
    fn both_body_forms_and_merging() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let single = requested_items(&json!({"product_id": a, "quantity": 2})).unwrap();
        assert_eq!(
            single,
            [RequestedItem {
                product_id: a,
                quantity: 2
            }]
        );
        let many = requested_items(&json!({"items": [
            {"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 1}, {"product_id": a, "quantity": 3}
        ]}))
        .unwrap();
        assert_eq!(
            many,
            [
                RequestedItem {
                    product_id: a,
                    quantity: 5
                },
                RequestedItem {
                    product_id: b,
                    quantity: 1
                }
            ]
        );
        let too_many = requested_items(&json!({"items": [
            {"product_id": a, "quantity": 6000}, {"product_id": a, "quantity": 5000}
        ]}));
        assert!(matches!(too_many, Err(ApiError::Validation { .. })));
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = requested_items(&json!({"items": [
            {"product_id": "nope", "quantity": 0}, {"quantity": 20000, "colour": 1}
        ]}))
        .unwrap_err();
        let ApiError::Validation { errors, .. } = err else {
            panic!()
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].product_id",
                "items[0].quantity",
                "items[1].colour",
                "items[1].product_id",
                "items[1].quantity"
            ]
        );
        let err =
            requested_items(&json!({"product_id": Uuid::nil(), "quantity": 1.5})).unwrap_err();
        let ApiError::Validation { errors, .. } = err else {
            panic!()
        };
        assert_eq!(errors[0].field, "quantity");
        assert!(requested_items(&json!({"items": []})).is_err());
        assert!(requested_items(&json!([])).is_err());
    }

    #[test]
    fn pricing_is_exact_and_refuses_missing_products() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let lookup = LookupResponse {
            products: vec![product(a, "Tea", "0.10"), product(b, "Cup", "3.33")],
            unknown: vec![],
            archived: vec![],
        };
        let Priced { lines, total } = price(
            &[
                RequestedItem {
                    product_id: a,
                    quantity: 3,
                },
                RequestedItem {
                    product_id: b,
                    quantity: 3,
                },
            ],
            &lookup,
        )
        .unwrap();
        assert_eq!(lines[0].line_total.to_string(), "0.30");
        assert_eq!(lines[1].line_total.to_string(), "9.99");
        assert_eq!(total.to_string(), "10.29");
        let gone = LookupResponse {
            products: vec![],
            unknown: vec![a],
            archived: vec![b],
        };
        let err = price(
            &[RequestedItem {
                product_id: a,
                quantity: 1,
            }],
            &gone,
        )
        .unwrap_err();
        let detail = err.to_string();
        assert!(detail.contains(&a.to_string()) && detail.contains(&b.to_string()));
        assert_eq!(
            err,
            PricingError::Unavailable {
                unknown: vec![a],
                archived: vec![b]
            }
        );
    }

    fn order(status: Status) -> Order {
        let a = Uuid::now_v7();
        let lookup = LookupResponse {
            products: vec![product(a, "Tea", "1.50")],
            unknown: vec![],
            archived: vec![],
        };
        let requested = [RequestedItem {
            product_id: a,
            quantity: 2,
        }];
        let mut order = Order::placed(
            "alice".into(),
            price(&requested, &lookup).unwrap(),
            None,
            Uuid::now_v7(),
        );
        order.status = status;
        if status == Status::OnHold {
            order.hold_reason = Some("review".into());
        }
        order
    }

    fn change(items: bool, status: Option<Status>) -> Change {
        Change {
            items: items.then(Vec::new),
            status,
        }
    }

    #[test]
    fn lines_change_only_while_open() {
        use Status::*;
        for open in [Placed, OnHold] {
            assert_eq!(order(open).check_items_change(&change(true, None)), Ok(()));
        }
        for closed in [Fulfilled, Cancelled] {
            assert_eq!(
                order(closed).check_items_change(&change(true, None)),
                Err(Refusal::ItemsFrozen(closed))
            );
            assert_eq!(
                Refusal::ItemsFrozen(closed).to_string(),
                format!("the items of a {closed} order cannot change")
            );
            // A status change alone is not a change of lines.
            assert_eq!(
                order(closed).check_items_change(&change(false, None)),
                Ok(())
            );
        }
    }

    #[test]
    fn transitions_follow_the_status_machine() {
        use Status::*;
        let placed = order(Placed);
        assert_eq!(
            placed.transition(&change(false, Some(Fulfilled))),
            Ok(Some(Fulfilled))
        );
        assert_eq!(
            placed.transition(&change(false, Some(Placed))),
            Err(Refusal::Transition {
                from: Placed,
                to: Placed
            }),
            "asking for the current status alone is a refused move"
        );
        assert_eq!(
            placed.transition(&change(true, Some(Placed))),
            Ok(None),
            "the current status with new lines is no move"
        );
        assert_eq!(placed.transition(&change(true, None)), Ok(None));
        let refused = order(Cancelled).transition(&change(false, Some(Placed)));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "an order cannot go from cancelled to placed"
        );
    }

    #[test]
    fn releasing_a_hold_rechecks_unchanged_lines_and_clears_the_reason() {
        use Status::*;
        let held = order(OnHold);
        let release = change(false, Some(Placed));
        let to = held.transition(&release).unwrap();
        assert!(held.releases_hold(to, &release));
        assert!(!held.releases_hold(to, &change(true, Some(Placed))));
        assert!(!order(Placed).releases_hold(Some(Fulfilled), &change(false, Some(Fulfilled))));
        let released = held.changed(None, None, to);
        assert_eq!((released.status, released.hold_reason), (Placed, None));
        assert_eq!(released.items, held.items, "lines unchanged");
        assert_eq!(held.requested()[0].quantity, 2);
    }

    #[test]
    fn new_lines_replace_the_old_and_the_total() {
        let placed = order(Status::Placed);
        let b = Uuid::now_v7();
        let lookup = LookupResponse {
            products: vec![product(b, "Cup", "3.33")],
            unknown: vec![],
            archived: vec![],
        };
        let priced = price(
            &[RequestedItem {
                product_id: b,
                quantity: 3,
            }],
            &lookup,
        )
        .unwrap();
        let next = placed.changed(Some(priced), None, None);
        assert_eq!(next.items[0].product_id, b);
        assert_eq!(next.total.to_string(), "9.99");
        assert_eq!(next.status, Status::Placed);
    }

    #[test]
    fn only_placed_orders_are_held_and_replays_show_the_first_answer() {
        use Status::*;
        let held = order(Placed).held("product archived".into()).unwrap();
        assert_eq!(
            (held.status, held.hold_reason.as_deref()),
            (OnHold, Some("product archived"))
        );
        for status in [OnHold, Fulfilled, Cancelled] {
            assert_eq!(order(status).held("x".into()), None, "{status}");
        }
        let mut first = order(Placed);
        first.created_by_key = Some(CreatedByKey {
            owner: "alice".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            items: first.items.clone(),
            total: first.total,
        });
        let mut later = first.changed(None, None, Some(Cancelled));
        later.items.clear();
        let shown = later.as_first_answered();
        assert_eq!(shown.status, Placed);
        assert_eq!(shown.items, first.items);
        assert_eq!(shown.total.to_string(), "3.00");
    }

    fn states(o: &Order) -> Vec<HoldState> {
        o.holds.iter().map(|h| h.state).collect()
    }

    fn items(lines: &[(Uuid, u32)]) -> Vec<RequestedItem> {
        lines
            .iter()
            .map(|&(product_id, quantity)| RequestedItem {
                product_id,
                quantity,
            })
            .collect()
    }

    fn units(lines: &[(Uuid, u32)]) -> Vec<Units> {
        lines
            .iter()
            .map(|&(product_id, quantity)| Units {
                product_id,
                quantity,
            })
            .collect()
    }

    /// Settles every due of `o` as done.
    fn settle_all(o: &Order) -> Order {
        let dues: Vec<Due> = o.dues().collect();
        dues.iter()
            .fold(o.clone(), |o, d| o.settled(d, Settled::Done).unwrap_or(o))
    }

    /// The order with its lines replaced by `lines` (free: only units matter here), the
    /// missing units reserved under `reserved`.
    fn relined(o: &Order, lines: &[(Uuid, u32)], reserved: Option<Uuid>) -> Order {
        let wanted = items(lines);
        let priced = Priced {
            lines: wanted
                .iter()
                .map(|i| LineItem {
                    product_id: i.product_id,
                    quantity: i.quantity,
                    product_name: "x".into(),
                    unit_price: Money::default(),
                    line_total: Money::default(),
                })
                .collect(),
            total: Money::default(),
        };
        let missing = o.missing(&wanted);
        o.changed(Some(priced), reserved.map(|id| (id, missing)), None)
    }

    #[test]
    fn a_placed_order_owes_a_commit_until_products_confirms() {
        use HoldState::*;
        let placed = order(Status::Placed);
        let id = placed.holds[0].id;
        assert_eq!(placed.stock(), Some(StockState::Pending));
        assert_eq!(placed.dues().collect::<Vec<_>>(), [Due::Commit(id)]);
        let committed = placed.settled(&Due::Commit(id), Settled::Done).unwrap();
        assert_eq!(states(&committed), [Committed]);
        assert_eq!(committed.stock(), Some(StockState::Confirmed));
        assert!(committed.is_settled() && committed.missing(&committed.requested()).is_empty());
        assert_eq!(
            committed.settled(&Due::Commit(id), Settled::Done),
            None,
            "an answer recorded twice changes nothing"
        );
        assert_eq!(placed.settled(&Due::Release(id), Settled::Done), None);
    }

    #[test]
    fn cancelling_or_deleting_owes_a_release_but_a_fulfilled_sale_stays() {
        use HoldState::*;
        let placed = order(Status::Placed);
        let id = placed.holds[0].id;
        for gone in [
            placed.changed(None, None, Some(Status::Cancelled)),
            placed.deleted(),
        ] {
            assert_eq!(gone.dues().collect::<Vec<_>>(), [Due::Release(id)]);
            assert_eq!(gone.stock(), Some(StockState::Releasing));
            let released = gone.settled(&Due::Release(id), Settled::Done).unwrap();
            assert_eq!(states(&released), [Released]);
            assert_eq!(released.stock(), Some(StockState::Released));
        }
        let fulfilled = placed
            .settled(&Due::Commit(id), Settled::Done)
            .unwrap()
            .changed(None, None, Some(Status::Fulfilled));
        let deleted = fulfilled.deleted();
        assert!(deleted.deleting && deleted.is_settled());
        assert_eq!(states(&deleted), [Committed]);
    }

    #[test]
    fn more_units_reserve_only_the_difference_and_fewer_give_some_back() {
        use HoldState::*;
        let placed = settle_all(&order(Status::Placed));
        let (tea, cup) = (placed.items[0].product_id, Uuid::now_v7());
        let first = placed.holds[0].id;
        // 2 teas held; 5 teas and a cup need 3 teas and a cup more, in a new reservation.
        assert_eq!(
            placed.missing(&items(&[(tea, 5), (cup, 1)])),
            units(&[(tea, 3), (cup, 1)])
        );
        let second = Uuid::now_v7();
        let more = settle_all(&relined(&placed, &[(tea, 5), (cup, 1)], Some(second)));
        assert_eq!(states(&more), [Committed, Committed]);
        assert_eq!(more.holds[1].lines, units(&[(tea, 3), (cup, 1)]));
        // Down to 1 tea: the newest reservation gives back all it has (released), the first
        // shrinks from 2 teas to 1.
        let fewer = relined(&more, &[(tea, 1)], None);
        assert_eq!(
            fewer.dues().collect::<Vec<_>>(),
            [Due::Shrink(first, units(&[(tea, 1)])), Due::Release(second)]
        );
        assert_eq!(fewer.stock(), Some(StockState::Pending));
        let done = settle_all(&fewer);
        assert_eq!(states(&done), [Committed, Released]);
        assert_eq!(done.holds[0].lines, units(&[(tea, 1)]));
        assert_eq!(done.stock(), Some(StockState::Confirmed));
        assert!(done.missing(&items(&[(tea, 1)])).is_empty());
    }

    #[test]
    fn a_lapsed_commit_holds_the_order_until_it_is_reserved_again() {
        let placed = order(Status::Placed);
        let id = placed.holds[0].id;
        let lapsed = placed.settled(&Due::Commit(id), Settled::Lapsed).unwrap();
        assert_eq!(lapsed.status, Status::OnHold);
        assert_eq!(lapsed.stock(), Some(StockState::Expired));
        assert!(lapsed.hold_reason.as_deref().unwrap().contains("expired"));
        let missing = lapsed.missing(&lapsed.requested());
        assert_eq!(missing, units(&[(placed.items[0].product_id, 2)]));
        let again = lapsed.changed(None, Some((Uuid::now_v7(), missing)), Some(Status::Placed));
        assert!(again.missing(&again.requested()).is_empty());
        assert_eq!(states(&again), [HoldState::Lapsed, HoldState::Committing]);
    }

    #[test]
    fn orders_are_visible_to_their_owner_and_admins() {
        let o = order(Status::Placed);
        let caller = |user: &str, admin| Caller {
            user: user.into(),
            admin,
        };
        assert!(o.is_visible_to(&caller("alice", false)));
        assert!(o.is_visible_to(&caller("root", true)));
        assert!(!o.is_visible_to(&caller("bob", false)));
    }

    #[test]
    fn status_machine() {
        use Status::*;
        assert!(Placed.may_become(Fulfilled) && Placed.may_become(Cancelled));
        assert!(!Placed.may_become(OnHold) && !Placed.may_become(Placed));
        assert!(
            OnHold.may_become(Placed)
                && OnHold.may_become(Cancelled)
                && OnHold.may_become(Fulfilled)
        );
        for s in [Placed, OnHold, Fulfilled, Cancelled] {
            assert!(!Fulfilled.may_become(s) && !Cancelled.may_become(s));
        }
    }
}
