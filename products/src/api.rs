//! Between the wire and the service: the [`products_api`] bodies this service answers with,
//! made from its records, and list parameters checked into a [`Listing`].

use products_api::{
    ChangeKind, ListQuery, Money, ProductBody, ProductEvent, SortField, SortOrder, StockAdjustment,
};
use service_kit::ApiError;
use service_kit::http;
use store_actor::{Event, EventKind, Record};

use crate::domain::Entry;
use crate::service::{Listing, Sort};

/// The body of a product record.
///
/// # Panics
/// On another kind of record: the service hands out products where it says so.
pub fn product_body(r: &Record<Entry>) -> ProductBody {
    let Entry::Product(p) = &r.data else {
        unreachable!("not a product record: {}", r.id)
    };
    ProductBody {
        id: r.id,
        name: p.name.as_str().to_owned(),
        price: p.price,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        archived: r.archived,
        stock: p.stock,
        reserved: p.reserved,
        available: p.available(),
    }
}

/// The body of an adjustment record.
///
/// # Panics
/// On another kind of record.
pub fn adjustment_body(r: &Record<Entry>) -> StockAdjustment {
    let Entry::Adjustment(a) = &r.data else {
        unreachable!("not an adjustment record: {}", r.id)
    };
    StockAdjustment {
        id: r.id,
        product_id: a.product_id,
        delta: a.delta,
        reason: a.reason.clone(),
        created_at: r.created_at,
    }
}

/// The change-feed event of a mutation of a product; `None` for other records (an
/// adjustment's product has its own `updated` event in the same batch).
pub fn product_event(e: &Event<Entry>) -> Option<ProductEvent> {
    e.record.data.as_product()?;
    Some(ProductEvent {
        seq: e.seq,
        kind: match e.kind {
            EventKind::Created => ChangeKind::Created,
            EventKind::Updated => ChangeKind::Updated,
            EventKind::Archived => ChangeKind::Archived,
        },
        product: product_body(&e.record),
    })
}

fn price_bound(raw: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    raw.map(|p| {
        p.parse::<Money>()
            .map(Money::cents)
            .map_err(|e| ApiError::bad_param(field, e.to_string()))
    })
    .transpose()
}

/// Checks the query of `GET /products` (400 naming the bad parameter).
pub fn listing(params: &ListQuery) -> Result<Listing, ApiError> {
    Ok(Listing {
        limit: http::page_limit(params.limit)?,
        cursor: params.cursor.clone(),
        sort: match params.sort.unwrap_or_default() {
            SortField::CreatedAt => Sort::CreatedAt,
            SortField::Name => Sort::Name,
            SortField::Price => Sort::Price,
        },
        descending: params.order.unwrap_or_default() == SortOrder::Desc,
        min_cents: price_bound(params.min_price.as_deref(), "min_price")?,
        max_cents: price_bound(params.max_price.as_deref(), "max_price")?,
        name_contains: params
            .name_contains
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_lowercase),
    })
}
