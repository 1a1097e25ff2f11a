//! Between the wire and the service: the [`products_api`] bodies this service answers with,
//! made from its records, and list parameters checked into a [`Listing`].

use products_api::{
    ChangeKind, ListQuery, Money, ProductBody, ProductEvent, ProductView, ReservationBody,
    ReserveRequest, ReservedLine, SortField, SortOrder, StockAdjustment,
};
use service_kit::ApiError;
use service_kit::FieldError;
use service_kit::http;
use store_actor::{Event, EventKind, Record};

use crate::domain::{Entry, HeldLine};
use crate::service::{Listing, Reserve, Reserved, Sort};

/// Most lines of one reservation.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one reservation.
pub const MAX_QUANTITY: u32 = 10_000;

/// A product record's fields, borrowed, for writing its JSON.
///
/// # Panics
/// On another kind of record: the service hands out products where it says so.
pub fn product_view(r: &Record<Entry>) -> ProductView<'_> {
    let Entry::Product(p) = &r.data else {
        unreachable!("not a product record: {}", r.id)
    };
    ProductView {
        id: r.id,
        name: p.name.as_str(),
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

/// The body of a product record.
///
/// # Panics
/// On another kind of record.
pub fn product_body(r: &Record<Entry>) -> ProductBody {
    let v = product_view(r);
    ProductBody {
        id: v.id,
        name: v.name.to_owned(),
        price: v.price,
        version: v.version,
        created_at: v.created_at,
        updated_at: v.updated_at,
        archived: v.archived,
        stock: v.stock,
        reserved: v.reserved,
        available: v.available,
    }
}

/// A product record's body as the routes answer it: written by hand
/// ([`ProductView::write_json`], byte for byte its serde form), not through serde.
///
/// # Panics
/// On another kind of record.
pub fn product_json(
    r: &Record<Entry>,
) -> http::Written<impl Fn(&mut Vec<u8>) -> serde_json::Result<()> + '_> {
    http::Written(move |out: &mut Vec<u8>| product_view(r).write_json(out))
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

/// Checks a reservation request: 1 to 100 lines, 1 to 10,000 units each once merged per
/// product, a time to live of a second to a year.
pub fn reserve_request(request: ReserveRequest) -> Result<Reserve, ApiError> {
    let mut errors = Vec::new();
    if request.lines.is_empty() || request.lines.len() > MAX_LINES {
        errors.push(FieldError::new(
            "lines",
            format!("give 1 to {MAX_LINES} lines"),
        ));
    }
    let mut lines: Vec<HeldLine> = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        if line.quantity == 0 {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                "must be at least 1",
            ));
        }
        match lines.iter_mut().find(|l| l.product_id == line.product_id) {
            Some(l) => l.quantity = l.quantity.saturating_add(line.quantity),
            None => lines.push(HeldLine {
                product_id: line.product_id,
                quantity: line.quantity,
            }),
        }
    }
    for l in lines.iter().filter(|l| l.quantity > MAX_QUANTITY) {
        errors.push(FieldError::new(
            "lines",
            format!(
                "product {} adds up to {} units; at most {MAX_QUANTITY}",
                l.product_id, l.quantity
            ),
        ));
    }
    if request
        .ttl_seconds
        .is_some_and(|t| !(1..=products_api::MAX_TTL_SECONDS).contains(&t))
    {
        errors.push(FieldError::new(
            "ttl_seconds",
            format!("must be 1 to {}", products_api::MAX_TTL_SECONDS),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(Reserve {
        lines,
        ttl: request.ttl_seconds.map(std::time::Duration::from_secs),
    })
}

/// The body of a reservation, with each line's product name and unit price now.
pub fn reservation_body(reserved: &Reserved) -> ReservationBody {
    let record = &reserved.reservation;
    let Entry::Reservation(r) = &record.data else {
        unreachable!("not a reservation record: {}", record.id)
    };
    let lines = r
        .lines
        .iter()
        .zip(&reserved.products)
        .map(|(line, product)| {
            let product = product.as_ref().and_then(|p| p.data.as_product());
            ReservedLine {
                product_id: line.product_id,
                quantity: line.quantity,
                name: product.map_or_else(String::new, |p| p.name.as_str().to_owned()),
                unit_price: product.map_or_else(Money::default, |p| p.price),
            }
        })
        .collect();
    ReservationBody {
        id: record.id,
        state: r.state,
        expires_at: r.expires_at,
        lines,
        version: record.version,
    }
}
