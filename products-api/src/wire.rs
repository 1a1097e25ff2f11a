//! The API's request and response bodies: what travels on the wire, nothing of how the server
//! keeps it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::money::Money;

/// A product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a1c2-7d2e-7c3b-9f00-5a1e2b3c4d5e",
    "name": "Green tea",
    "price": "4.20",
    "version": 1,
    "created_at": "2026-12-01T09:30:00Z",
    "updated_at": "2026-12-01T09:30:00Z",
    "stock": 10,
    "reserved": 0,
    "available": 10
}))]
pub struct ProductBody {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its unit price: an exact decimal with two fraction digits, as a string.
    #[schema(value_type = String, example = "12.50")]
    pub price: Money,
    /// Bumped by every change; the ETag is this number in quotes.
    pub version: u64,
    /// Creation time (RFC 3339).
    #[serde(with = "crate::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "crate::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Present and true once the product is archived (only in the change feed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Units in stock; `null` if the product does not track stock (it never runs out).
    #[serde(default)]
    pub stock: Option<u64>,
    /// Units held by reservations not yet committed or released.
    #[serde(default)]
    pub reserved: u64,
    /// Units that can still be ordered: `stock - reserved`; `null` if not tracked.
    #[serde(default)]
    pub available: Option<u64>,
}

/// The characters no text field may hold: the control characters (Unicode `Cc`).
macro_rules! control {
    () => {
        r"\u0000-\u001f\u007f-\u009f"
    };
}
/// White space that is not a control character (the rest of Unicode `White_Space`).
macro_rules! space {
    () => {
        r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}
/// Format characters that render as nothing (zero-width spaces and joiners, direction marks,
/// the byte-order mark, soft hyphens, fillers).
macro_rules! invisible {
    () => {
        r"\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    };
}

/// The pattern of text people type for others to read (a product's name, a stock
/// adjustment's reason): no control characters, no white space at either end, at least one
/// visible character. The products service checks exactly this (and the length).
pub const TEXT_PATTERN: &str = concat!(
    "^(?:[^",
    control!(),
    space!(),
    "][^",
    control!(),
    "]*)?[^",
    control!(),
    space!(),
    invisible!(),
    "](?:[^",
    control!(),
    "]*[^",
    control!(),
    space!(),
    "])?$"
);

/// The pattern of a price (or a price bound), as [`Money`]'s `FromStr` reads it: a decimal
/// string from 0 (`-0` is 0) to 1,000,000,000,000.00, at most two fraction digits once
/// trailing zeros are dropped.
pub const MONEY_PATTERN: &str =
    r"^(?:-0+(?:\.0+)?|0*(?:[0-9]{1,12}(?:\.[0-9]{1,2}0*)?|1000000000000(?:\.0+)?))$";

/// The most units a product may hold in stock.
pub const MAX_STOCK: u64 = 1_000_000_000_000;

/// The longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest time a reservation may ask to be held, in seconds (a year).
pub const MAX_TTL_SECONDS: u64 = 31_536_000;

/// The longest stock adjustment reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

fn text_schema(max: usize, example: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN))
        .examples([example])
        .build()
}

fn name_schema() -> Object {
    text_schema(MAX_NAME_CHARS, "Green tea")
}

fn reason_schema() -> Object {
    text_schema(MAX_REASON_CHARS, "broken in transit")
}

fn money_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(MONEY_PATTERN))
        .examples(["4.20"])
        .build()
}

fn stock_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(MAX_STOCK as f64))
        .examples([10])
        .build()
}

/// A delta is a whole number from `-MAX_STOCK` to `MAX_STOCK`, but not 0.
fn delta_schema() -> Schema {
    let range = |min: f64, max: f64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    Schema::OneOf(
        OneOfBuilder::new()
            .item(range(-(MAX_STOCK as f64), -1.0))
            .item(range(1.0, MAX_STOCK as f64))
            .examples([-2])
            .build(),
    )
}

/// The body of `POST /products`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// 1 to 200 characters: no control characters, no white space at either end, at least one
    /// visible character (stored in Unicode NFC).
    #[schema(schema_with = name_schema)]
    pub name: String,
    /// A decimal string, at least 0, at most two fraction digits: `"4.20"` (a JSON number is
    /// refused).
    #[schema(schema_with = money_schema)]
    pub price: String,
    /// Units in stock, 0 to 10^12 (absent or `null`: stock is not tracked).
    #[schema(schema_with = stock_schema)]
    pub stock: Option<u64>,
}

/// The body of `PATCH /products/{id}`: any of the fields, at least one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateProduct {
    /// New name (the rules of `CreateProduct.name`).
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
    /// New price (the rules of `CreateProduct.price`).
    #[schema(schema_with = money_schema)]
    pub price: Option<String>,
    /// New stock (`null` stops tracking it); needs `If-Match`, and at least the reserved units.
    #[schema(schema_with = stock_schema)]
    pub stock: Option<u64>,
}

/// The body of `POST /products/{id}/stock`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// Units to add (negative: remove): a whole number from -10^12 to 10^12, not 0.
    #[schema(schema_with = delta_schema)]
    pub delta: i64,
    /// Why, e.g. "delivery 42" or "broken in transit" (the rules of `CreateProduct.name`).
    #[schema(schema_with = reason_schema)]
    pub reason: String,
}

/// One stock adjustment, as made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StockAdjustment {
    /// The adjustment's id.
    pub id: Uuid,
    /// The product adjusted.
    pub product_id: Uuid,
    /// Units added (negative: removed).
    pub delta: i64,
    /// Why.
    pub reason: String,
    /// When it was made (RFC 3339).
    #[serde(with = "crate::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Sort field of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Creation time.
    #[default]
    CreatedAt,
    /// Name, case-insensitively.
    Name,
    /// Price.
    Price,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// Query parameters of `GET /products`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(nullable = false, minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page (only a cursor this service issued is valid).
    #[param(nullable = false, pattern = "^(?:[0-9a-f]{2})+$")]
    pub cursor: Option<String>,
    /// Sort field (default `created_at`).
    #[param(nullable = false)]
    pub sort: Option<SortField>,
    /// Sort direction (default `asc`).
    #[param(nullable = false)]
    pub order: Option<SortOrder>,
    /// Only names containing this text (case-insensitive; white space around it is ignored).
    #[param(nullable = false)]
    pub name_contains: Option<String>,
    /// Only prices at least this (a price, e.g. `4.20`).
    #[param(schema_with = money_schema)]
    pub min_price: Option<String>,
    /// Only prices at most this (a price).
    #[param(schema_with = money_schema)]
    pub max_price: Option<String>,
}

/// A page of products.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    /// The products of this page.
    pub items: Vec<ProductBody>,
    /// Pass as `cursor` (with the same sort and filters) for the next page; absent on the last.
    /// A page examines a bounded number of products, so one with a rare filter may hold fewer
    /// than `limit` items, or none, and still have a next page: the list ends only where this
    /// is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
    /// The next page's URL (path and query), absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<String>,
}

/// The body of `POST /products/lookup`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// 1 to [`MAX_LOOKUP`](crate::MAX_LOOKUP) product ids.
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Vec<Uuid>,
}

/// Every id of a lookup, sorted into found, unknown and archived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LookupResponse {
    /// The live products asked for, in request order.
    pub products: Vec<ProductBody>,
    /// Ids that never existed.
    pub unknown: Vec<Uuid>,
    /// Ids of archived products.
    pub archived: Vec<Uuid>,
}

/// What a change did to a product (the same names as the SSE `event:` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The product was created.
    Created,
    /// Its fields changed.
    Updated,
    /// It was archived: gone from lists, refused by new orders.
    Archived,
}

impl ChangeKind {
    /// Its name, as in the SSE `event:` field and the feed's `kinds` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Archived => "archived",
        }
    }
}

/// One change-feed event (the `data:` of a Server-Sent Event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductEvent {
    /// Sequence number (also the SSE `id:`).
    pub seq: u64,
    /// `created`, `updated` or `archived` (also the SSE `event:`).
    #[schema(value_type = String, example = "updated")]
    pub kind: ChangeKind,
    /// The product after the change.
    pub product: ProductBody,
}

/// One requested line of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveLine {
    /// The product.
    pub product_id: Uuid,
    /// Units to hold, 1 to 10,000 (lines of the same product add up).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(deserialize_with = "crate::whole::serde_whole::u32")]
    pub quantity: u32,
}

/// The body of `PUT /reservations/{id}`: hold these units under this id, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// 1 to 100 lines (lines of one product add up to at most 10,000 units).
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<ReserveLine>,
    /// How long to hold them, in seconds, 1 to [`MAX_TTL_SECONDS`] (a year); held for at
    /// most, and by default, the service's `--reservation-ttl`.
    #[serde(default, deserialize_with = "crate::whole::serde_whole::option_u64")]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub ttl_seconds: Option<u64>,
}

/// A reservation's state: `held`, `committed`, `released` or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Its units are held.
    Held,
    /// Sold: the units left stock.
    Committed,
    /// Given back by its holder.
    Released,
    /// Given back by products when its time ran out.
    Expired,
}

impl ReservationState {
    /// The name used on the wire (and by products' index of reservations).
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Held => "held",
            ReservationState::Committed => "committed",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }
}

/// One line of a reservation, with the product as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReservedLine {
    /// The product.
    pub product_id: Uuid,
    /// Units held (or sold, or given back).
    pub quantity: u32,
    /// The product's name.
    pub name: String,
    /// The product's unit price.
    #[schema(value_type = String, example = "4.20")]
    pub unit_price: Money,
}

/// A reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b",
    "state": "held",
    "expires_at": "2026-12-01T09:45:00Z",
    "lines": [{"product_id": "0193a1c2-7d2e-7c3b-9f00-5a1e2b3c4d5e", "quantity": 2,
               "name": "Green tea", "unit_price": "4.20"}],
    "version": 1
}))]
pub struct ReservationBody {
    /// Its id (the order's).
    pub id: Uuid,
    /// Where it is.
    pub state: ReservationState,
    /// When products gives the units back if it is still held (RFC 3339).
    #[serde(with = "crate::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Its lines.
    pub lines: Vec<ReservedLine>,
    /// Bumped by every change.
    pub version: u64,
}

/// A line that could not be held (in the `lines` of an out-of-stock problem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShortLine {
    /// The product.
    pub product_id: Uuid,
    /// Units asked for.
    pub requested: u32,
    /// Units available.
    pub available: u64,
}

/// The body of `POST /reservations/commit`: commit these reservations at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitMany {
    /// 1 to 100 reservation ids (repeats count once).
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Vec<Uuid>,
}

/// What `POST /reservations/commit` did with each id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitOutcomes {
    /// Sold: committed now or before.
    pub committed: Vec<Uuid>,
    /// Released or expired: they can no longer be committed.
    pub ended: Vec<Uuid>,
    /// No such reservation.
    pub unknown: Vec<Uuid>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Strings that look like prices, and some that almost do.
    fn price_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("-".to_owned()),
            Just(".".to_owned()),
            Just("0".to_owned()),
            Just("00".to_owned()),
            Just("1000000000000".to_owned()),
            Just("999999999999".to_owned()),
            Just(" ".to_owned()),
            Just("e".to_owned()),
            Just("+".to_owned()),
            "[0-9]{1,3}",
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        /// The OpenAPI pattern of a price accepts exactly what the server's parser accepts.
        #[test]
        fn the_money_pattern_is_the_money_parser(text in price_like()) {
            let pattern = regex::Regex::new(MONEY_PATTERN).unwrap();
            prop_assert_eq!(pattern.is_match(&text), text.parse::<Money>().is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn the_money_pattern_knows_the_edges() {
        let pattern = regex::Regex::new(MONEY_PATTERN).unwrap();
        for ok in [
            "0",
            "-0.00",
            "4.20",
            "4.2",
            "4.200",
            "1000000000000.00",
            "007",
        ] {
            assert!(pattern.is_match(ok) && ok.parse::<Money>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "4.",
            ".5",
            "4.201",
            "1000000000000.01",
            "1e3",
            " 4",
            "+4",
        ] {
            assert!(
                !pattern.is_match(bad) && bad.parse::<Money>().is_err(),
                "{bad}"
            );
        }
    }
}
