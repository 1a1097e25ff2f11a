//! `/orders`: place, read, list, change, delete.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use service_kit::docs::RecordId;
use service_kit::docs::params::{IdempotencyKey, IfMatch, IfNoneMatch};
use service_kit::docs::responses::{BadBody, ById, NotModified, Stale, Unauthorized};
use service_kit::http::{self, authorize, idempotency_key, if_match};
use service_kit::idempotency::Claim;
use service_kit::json::Body;
use service_kit::problem::Problem;
use service_kit::telemetry::RequestId;
use service_kit::{ApiError, Operation};

use super::{OrdersState, RESOURCE};
use crate::api::{
    self, CreateOrder, ListQuery, OrderBody, OrderPage, StatsBody, StatsQuery, UpdateOrder,
};
use crate::domain::order::requested_items;

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// Place an order.
#[utoipa::path(
    post, path = "/orders", operation_id = "place_order", tag = "orders",
    request_body = CreateOrder,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Placed", body = OrderBody, headers(("Location" = String), ("ETag" = String))),
        BadBody, Unauthorized,
        (status = 403, description = "Token lacks orders:write", body = Problem),
        (status = 409, description = "Out of stock (`urn:shop:problem:out-of-stock`: `lines` names each short line with `requested` and `available`; nothing held, nothing stored), or the same Idempotency-Key still in flight", body = Problem),
        (status = 422, description = "Invalid items, unknown or archived products (named), or Idempotency-Key reused", body = Problem),
        (status = 503, description = "Products unavailable: nothing stored; see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    req: HttpRequest,
    body: Body,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let key = idempotency_key(&req)?;
    let value = body.value().await?;
    let items = requested_items(&value)?;
    // serde_json's maps are sorted: a retry formatted differently has the same canonical form.
    let claim = key.map(|key| {
        Claim::new(
            &caller.user,
            key,
            &serde_json::to_vec(&value).unwrap_or_default(),
        )
    });
    let request_id = request_id(&req);
    let placed = (state.service)
        .place(&caller, items, claim, request_id.as_deref())
        .await?;
    let order = &placed.order;
    Ok(http::created(
        "/orders",
        order.id,
        order.version,
        placed.replayed,
        &OrderBody::from(&**order),
    ))
}

/// Read an order (your own; admins any).
#[utoipa::path(
    get, path = "/orders/{id}", operation_id = "get_order", tag = "orders",
    params(("id" = RecordId, Path, description = "Order id (UUID)"), IfNoneMatch),
    responses(
        (status = 200, description = "The order", body = OrderBody, headers(("ETag" = String))),
        NotModified, ById, Unauthorized,
        (status = 403, description = "Token lacks orders:read", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    let order = state.service.get(&caller, http::parse_id(&id, "order")?)?;
    Ok(http::read(&req, order.version, || OrderBody::from(&*order)))
}

/// List orders (your own; admins all), filtered by status and product, newest last.
///
/// Each request examines a bounded number of orders (10,000), so a page may be short or empty
/// and still link to the next one: the list ends only where `next` is absent.
#[utoipa::path(
    get, path = "/orders", operation_id = "list_orders", tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = OrderPage),
        Unauthorized,
        (status = 403, description = "Token lacks orders:read", body = Problem),
        (status = 400, description = "Bad parameter or cursor", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    let params: ListQuery = http::query(&req)?;
    let listing = api::listing(&params)?;
    let limit = listing.limit;
    let page = state.service.list(&caller, listing).await?;
    let next = http::next_page("/orders", page.next_cursor.as_ref(), |cursor| ListQuery {
        limit: Some(limit),
        cursor: Some(cursor),
        ..params
    });
    let capacity = (page.items.len() + 1) * http::RECORD_BODY_BYTES;
    let body = OrderPage {
        items: page.items.iter().map(|r| OrderBody::from(&**r)).collect(),
        next_cursor: page.next_cursor,
        next,
    };
    Ok(http::json(HttpResponse::Ok(), capacity, &body))
}

/// Change an order's lines (re-validated against products) and/or its status.
#[utoipa::path(
    patch, path = "/orders/{id}", operation_id = "change_order", tag = "orders",
    request_body = UpdateOrder,
    params(("id" = RecordId, Path, description = "Order id (UUID)"), IfMatch),
    responses(
        (status = 200, description = "Changed", body = OrderBody, headers(("ETag" = String))),
        ById, BadBody, Unauthorized,
        (status = 403, description = "Token lacks orders:write", body = Problem), Stale,
        (status = 409, description = "Not allowed in the order's status, or the new lines are out of stock (`urn:shop:problem:out-of-stock`, short lines named; nothing changed)", body = Problem),
        (status = 422, description = "Invalid fields, unknown or archived products", body = Problem),
        (status = 503, description = "Products unavailable; see Retry-After", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let id = http::parse_id(&id, "order")?;
    let expected = if_match(&req)?;
    let change = api::change(&body.value().await?)?;
    let request_id = request_id(&req);
    let order = (state.service)
        .change(&caller, id, expected, change, request_id.as_deref())
        .await?;
    Ok(http::ok(order.version, &OrderBody::from(&*order)))
}

/// Delete an order (kept as a tombstone: reads then say 410).
#[utoipa::path(
    delete, path = "/orders/{id}", operation_id = "delete_order", tag = "orders",
    params(("id" = RecordId, Path, description = "Order id (UUID)"), IfMatch),
    responses(
        (status = 204, description = "Deleted"),
        ById, Unauthorized,
        (status = 403, description = "Token lacks orders:write", body = Problem), Stale,
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let id = http::parse_id(&id, "order")?;
    let expected = if_match(&req)?;
    state.service.delete(&caller, id, expected).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Order figures: counts, exact totals and averages per status, over a creation-time range
/// (your own orders; admins everyone's or one `owner`'s).
#[utoipa::path(
    get, path = "/orders/stats", operation_id = "order_stats", tag = "orders",
    params(StatsQuery),
    responses(
        (status = 200, description = "The figures", body = StatsBody),
        (status = 400, description = "Bad parameter", body = Problem),
        Unauthorized,
        (status = 403, description = "Token lacks orders:read, or another owner asked for by a non-admin", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn stats(
    req: HttpRequest,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    let query: StatsQuery = http::query(&req)?;
    let range = api::range(&query)?;
    let stats = state
        .service
        .stats(&caller, query.owner.clone(), range)
        .await?;
    let owner = query.owner.or((!caller.admin).then(|| caller.user.clone()));
    Ok(HttpResponse::Ok().json(api::stats_body(owner, &stats)))
}
