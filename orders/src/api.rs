//! The API's request and response bodies, and the checks that turn requests into the
//! service's input.

use products_api::Money;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service_kit::{ApiError, http};
use store_actor::{Event, EventKind, Record};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::order::requested_items;
use crate::domain::{Change, LineItem, Order, Status, StockState};
use crate::service::Listing;

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b",
    "owner": "alice",
    "status": "placed",
    "items": [{"product_id": "0193a1c2-7d2e-7c3b-9f00-5a1e2b3c4d5e", "quantity": 3,
               "product_name": "Green tea", "unit_price": "4.20", "line_total": "12.60"}],
    "total": "12.60",
    "stock": "confirmed",
    "version": 2,
    "created_at": "2026-12-01T09:30:00Z",
    "updated_at": "2026-12-01T09:30:01Z"
}))]
pub struct OrderBody {
    /// Its id.
    pub id: Uuid,
    /// The user who placed it.
    pub owner: String,
    /// `placed`, `on_hold`, `fulfilled` or `cancelled`.
    pub status: Status,
    /// Why it is on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub hold_reason: Option<String>,
    /// Its lines, each with the product as it was when ordered.
    pub items: Vec<LineItem>,
    /// Sum of the line totals, exact.
    #[schema(value_type = String, example = "12.60")]
    pub total: Money,
    /// Where its stock stands at products: `pending` (held, the sale being confirmed; this
    /// changes to `confirmed` moments later, bumping the version), `confirmed`, `releasing`,
    /// `released` (cancelled or deleted), or `expired` (the hold ran out before the sale was
    /// confirmed: the order is on hold). Absent on orders placed before stock was tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stock: Option<StockState>,
    /// Bumped by every change; the ETag is this number in quotes.
    pub version: u64,
    /// Creation time (RFC 3339).
    #[serde(with = "products_api::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "products_api::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Present and true once deleted (only in the change feed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

impl From<&Record<Order>> for OrderBody {
    fn from(r: &Record<Order>) -> Self {
        OrderBody {
            id: r.id,
            owner: r.data.owner.clone(),
            status: r.data.status,
            hold_reason: r.data.hold_reason.clone(),
            items: r.data.items.clone(),
            total: r.data.total,
            stock: r.data.stock(),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            // A deleted order waiting to give its stock back is already gone to readers.
            archived: crate::store::is_deleted(r),
        }
    }
}

/// A requested line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// The product.
    pub product_id: Uuid,
    /// 1 to 10,000.
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: u32,
}

/// The body of `POST /orders`, in one of two forms: `{"items": [...]}`, or the single-product
/// form `{"product_id": ..., "quantity": ...}`. Lines of the same product are merged (their
/// quantities add up, at most 10,000).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CreateOrder {
    /// Several lines.
    Items(OrderLines),
    /// One product.
    Single(ItemRequest),
}

/// The lines of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLines {
    /// The lines (1 to 100).
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemRequest>,
}

/// The body of `PATCH /orders/{id}`: new lines (re-validated against products) and/or a new
/// status, at least one of them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateOrder {
    /// Replaces the lines, 1 to 100 (only while placed or on hold).
    #[schema(nullable = false, min_items = 1, max_items = 100)]
    pub items: Option<Vec<ItemRequest>>,
    /// placed → fulfilled | cancelled; on_hold → placed | fulfilled | cancelled.
    #[schema(nullable = false)]
    pub status: Option<Status>,
}

/// Query parameters of `GET /orders`.
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
    /// Only orders with this status.
    #[param(nullable = false)]
    pub status: Option<Status>,
    /// Only orders containing this product.
    #[param(nullable = false)]
    pub product_id: Option<Uuid>,
    /// `asc` (default) or `desc` by creation time.
    #[param(nullable = false)]
    pub order: Option<products_api::SortOrder>,
    /// Only this owner's orders (admins; others may name only themselves).
    #[param(nullable = false)]
    pub owner: Option<String>,
}

/// Query parameters of `GET /orders/stats`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only this owner's orders (admins; others may name only themselves).
    #[param(nullable = false)]
    pub owner: Option<String>,
    /// Only orders created at or after this time (RFC 3339).
    #[param(nullable = false, format = DateTime)]
    pub from: Option<String>,
    /// Only orders created before this time (RFC 3339).
    #[param(nullable = false, format = DateTime)]
    pub to: Option<String>,
}

/// Counts and values of one group of orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FiguresBody {
    /// Orders.
    pub count: u64,
    /// Sum of their totals, exact.
    #[schema(value_type = String, example = "125.40")]
    pub total: Money,
    /// Mean total, rounded half up to the cent ("0.00" without orders).
    #[schema(value_type = String, example = "12.54")]
    pub average: Money,
}

/// The body of `GET /orders/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsBody {
    /// Whose orders: an owner, or absent for everyone's (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub owner: Option<String>,
    /// Figures of every status together.
    pub all: FiguresBody,
    /// Figures per status: `placed`, `on_hold`, `fulfilled`, `cancelled`.
    pub by_status: std::collections::BTreeMap<String, FiguresBody>,
}

fn figures_body(f: &crate::stats::Figures) -> FiguresBody {
    FiguresBody {
        count: f.count,
        total: f.total(),
        average: f.average(),
    }
}

/// The body of the figures of `owner`'s orders (`None`: everyone's).
pub fn stats_body(owner: Option<String>, stats: &crate::stats::Stats) -> StatsBody {
    StatsBody {
        owner,
        all: figures_body(&stats.all),
        by_status: stats
            .by_status
            .iter()
            .map(|(k, f)| ((*k).to_owned(), figures_body(f)))
            .collect(),
    }
}

/// Checks the time range of `GET /orders/stats` (400 naming the bad bound).
pub fn range(query: &StatsQuery) -> Result<crate::stats::Range, ApiError> {
    let bound = |raw: Option<&String>, name: &str| {
        raw.map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::bad_param(name, "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
                },
            )
        })
        .transpose()
    };
    Ok(crate::stats::Range {
        from: bound(query.from.as_ref(), "from")?,
        to: bound(query.to.as_ref(), "to")?,
    })
}

/// A page of orders.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// The orders of this page.
    pub items: Vec<OrderBody>,
    /// Pass as `cursor` for the next page; absent on the last. A page examines a bounded
    /// number of orders, so one with rare filters may hold fewer than `limit` items, or none,
    /// and still have a next page: the list ends only where this is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_cursor: Option<String>,
    /// The next page's URL, absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<String>,
}

/// One change-feed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderEvent {
    /// Sequence number (also the SSE `id:`).
    pub seq: u64,
    /// `created`, `updated` or `archived`.
    #[schema(value_type = String, example = "updated")]
    pub kind: EventKind,
    /// The order after the change.
    pub order: OrderBody,
}

impl From<&Event<Order>> for OrderEvent {
    fn from(e: &Event<Order>) -> Self {
        OrderEvent {
            seq: e.seq,
            kind: e.kind,
            order: OrderBody::from(&*e.record),
        }
    }
}

/// Reads a PATCH body: `items` and/or `status`, nothing else.
pub fn change(body: &Value) -> Result<Change, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| *k != "items" && *k != "status") {
        return Err(ApiError::invalid(
            unknown.clone(),
            "unknown field; give items and/or status",
        ));
    }
    let items = obj
        .get("items")
        .map(|items| requested_items(&json!({ "items": items })))
        .transpose()?;
    let status = obj
        .get("status")
        .map(|s| {
            serde_json::from_value::<Status>(s.clone()).map_err(|_| {
                ApiError::invalid("status", "must be placed, on_hold, fulfilled or cancelled")
            })
        })
        .transpose()?;
    if items.is_none() && status.is_none() {
        return Err(ApiError::invalid("body", "give items and/or status"));
    }
    Ok(Change { items, status })
}

/// Checks the query of `GET /orders` (400 naming the bad parameter).
pub fn listing(params: &ListQuery) -> Result<Listing, ApiError> {
    Ok(Listing {
        limit: http::page_limit(params.limit)?,
        cursor: params.cursor.clone(),
        status: params.status,
        product: params.product_id,
        descending: params.order.unwrap_or_default() == products_api::SortOrder::Desc,
        owner: params.owner.clone(),
    })
}
