//! The API's request and response bodies: what travels on the wire, nothing of how the server
//! keeps it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::money::Money;

/// A product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
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

/// The body of `POST /products`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateProduct {
    /// 1 to 200 characters after trimming.
    #[schema(example = "Green tea")]
    pub name: String,
    /// At least 0, at most two fraction digits; a string (or a JSON number).
    #[schema(value_type = String, example = "4.20")]
    pub price: String,
    /// Units in stock (absent or `null`: stock is not tracked).
    #[schema(example = 10)]
    pub stock: Option<u64>,
}

/// The body of `PATCH /products/{id}`: any of the fields.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateProduct {
    /// New name.
    pub name: Option<String>,
    /// New price.
    #[schema(value_type = Option<String>, example = "4.50")]
    pub price: Option<String>,
    /// New stock (`null` stops tracking it); needs `If-Match`, and at least the reserved units.
    pub stock: Option<u64>,
}

/// The body of `POST /products/{id}/stock`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdjustStock {
    /// Units to add (negative: remove), not 0.
    #[schema(example = -2)]
    pub delta: i64,
    /// Why (1 to 200 characters), e.g. "delivery 42" or "broken in transit".
    #[schema(example = "broken in transit")]
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
    #[serde(with = "time::serde::rfc3339")]
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
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Sort field (default `created_at`).
    pub sort: Option<SortField>,
    /// Sort direction (default `asc`).
    pub order: Option<SortOrder>,
    /// Only names containing this text (case-insensitive).
    pub name_contains: Option<String>,
    /// Only prices at least this.
    pub min_price: Option<String>,
    /// Only prices at most this.
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
    pub next_cursor: Option<String>,
    /// The next page's URL (path and query), absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The body of `POST /products/lookup`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// 1 to [`MAX_LOOKUP`](crate::MAX_LOOKUP) product ids.
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
    pub quantity: u32,
}

/// The body of `PUT /reservations/{id}`: hold these units under this id, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// 1 to 100 lines.
    pub lines: Vec<ReserveLine>,
    /// How long to hold them, in seconds (at most, and by default, the service's
    /// `--reservation-ttl`).
    #[serde(default)]
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
pub struct ReservationBody {
    /// Its id (the order's).
    pub id: Uuid,
    /// Where it is.
    pub state: ReservationState,
    /// When products gives the units back if it is still held (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
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
