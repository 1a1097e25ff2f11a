//! `/orders`: place, read, list, change, delete.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use products::client::ProductsClient;
use serde_json::{Value, json};
use service_kit::http::{self, authorize, etag, idempotency_key, if_match, if_none_match};
use service_kit::idempotency::{InFlight, fingerprint};
use service_kit::json::Body;
use service_kit::problem::Problem;
use service_kit::telemetry::RequestId;
use service_kit::{ApiError, Caller, Operation};
use store_actor::{Query, Record, SortKey, StoreError};
use uuid::Uuid;

use super::{RESOURCE, parse_id, products_error, visible};
use crate::api::{CreateOrder, ListQuery, OrderBody, OrderPage, UpdateOrder};
use crate::domain::order::{price, requested_items};
use crate::domain::{CreatedByKey, Order, RequestedItem, Status};
use crate::follower::ArchivedProducts;
use crate::store::{BY_IDEMPOTENCY_KEY, BY_OWNER, BY_PRODUCT, BY_STATUS, OrderStore};

/// Shared state of the orders handlers.
#[derive(Debug, Clone)]
pub struct OrdersState {
    /// The store.
    pub store: OrderStore,
    /// The products client (with orders' own service token).
    pub products: ProductsClient,
    /// Idempotency keys whose first request is running.
    pub in_flight: InFlight,
    /// Products the feed said were archived (see [`ArchivedProducts`]).
    pub archived: ArchivedProducts,
    /// Ends the event streams at shutdown.
    pub closing: service_kit::sse::Closing,
}

/// Attempts of a read-modify-write that lost a race (without `If-Match`).
const ATTEMPTS: usize = 3;

fn with_etag(mut res: actix_web::HttpResponseBuilder, record: &Record<Order>) -> HttpResponse {
    res.insert_header((header::ETAG, etag(record.version)))
        .json(OrderBody::from(record))
}

fn created(record: &Record<Order>) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/orders/{}", record.id)));
    res
}

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// Prices items with ONE lookup call to products.
async fn priced(
    state: &OrdersState,
    items: &[RequestedItem],
    request_id: Option<&str>,
) -> Result<(Vec<crate::domain::LineItem>, products::domain::Money), ApiError> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let lookup = state
        .products
        .lookup(&ids, request_id)
        .await
        .map_err(products_error)?;
    price(items, &lookup)
}

/// Place an order.
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: the same key and body return the first result")),
    responses(
        (status = 201, description = "Placed", body = OrderBody, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks orders:write", body = Problem),
        (status = 409, description = "Same Idempotency-Key still in flight", body = Problem),
        (status = 415, description = "Body is not JSON", body = Problem),
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
    let value = body.value()?;
    let items = requested_items(&value)?;
    let mut claim = None;
    let mut idempotency: Option<(String, String)> = None;
    if let Some(key) = key {
        let fingerprint = fingerprint(&serde_json::to_vec(&value).unwrap_or_default());
        claim = Some(state.in_flight.begin(&caller.user, &key)?);
        let index_key = service_kit::idempotency::index_key(&caller.user, &key);
        if let Some(first) = state.store.lookup(BY_IDEMPOTENCY_KEY, &index_key)?.first() {
            let same = first
                .data
                .created_by_key
                .as_ref()
                .is_some_and(|k| k.fingerprint == fingerprint);
            if !same {
                return Err(service_kit::idempotency::reused(&key));
            }
            let mut res = created(first);
            res.insert_header(("Idempotent-Replayed", "true"));
            return Ok(replay(res, first));
        }
        idempotency = Some((key, fingerprint));
    }
    let (items, total) = priced(&state, &items, request_id(&req).as_deref()).await?;
    let idempotency = idempotency.map(|(key, fingerprint)| CreatedByKey {
        owner: caller.user.clone(),
        key,
        fingerprint,
        items: items.clone(),
        total,
    });
    let record = state
        .store
        .create(Order {
            owner: caller.user,
            status: Status::Placed,
            hold_reason: None,
            items,
            total,
            created_by_key: idempotency,
        })
        .await?;
    drop(claim);
    // A product archived while this order was being placed: the follower may have held that
    // product's orders before this one was stored.
    let products = record.data.items.iter().map(|i| i.product_id);
    if let Some(product) = state.archived.any_of(products) {
        let reason =
            format!("product {product} was archived while the order was placed; review it");
        let held = state
            .store
            .update(record.id, Some(record.version), move |o: &Order| {
                Ok::<_, StoreError>(Order {
                    status: Status::OnHold,
                    hold_reason: Some(reason),
                    ..o.clone()
                })
            })
            .await?;
        return Ok(with_etag(created(&held), &held));
    }
    Ok(with_etag(created(&record), &record))
}

/// The first answer to an idempotent create, as it was (version 1, the first lines).
fn replay(mut res: actix_web::HttpResponseBuilder, first: &Record<Order>) -> HttpResponse {
    let mut body = OrderBody::from(first);
    if let Some(original) = &first.data.created_by_key {
        body.items = original.items.clone();
        body.total = original.total;
    }
    body.status = Status::Placed;
    body.hold_reason = None;
    body.version = 1;
    body.updated_at = body.created_at;
    body.archived = false;
    res.insert_header((header::ETAG, etag(1))).json(body)
}

/// The caller's order, or the problem that says why not.
fn fetch(
    state: &OrdersState,
    id: Uuid,
    caller: &Caller,
) -> Result<std::sync::Arc<Record<Order>>, ApiError> {
    let record = state.store.get(id)?;
    visible(&record, caller)?;
    if record.archived {
        return Err(ApiError::Gone(format!("order {id} was deleted")));
    }
    Ok(record)
}

/// Read an order (your own; admins any).
#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id (UUID)"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag: 304 if unchanged")),
    responses(
        (status = 200, description = "The order", body = OrderBody, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Not a UUID", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks orders:read", body = Problem),
        (status = 404, description = "No such order (or another user's)", body = Problem),
        (status = 410, description = "Deleted", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    let record = fetch(&state, parse_id(&id)?, &caller)?;
    if if_none_match(&req, record.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(record.version)))
            .finish());
    }
    Ok(with_etag(HttpResponse::Ok(), &record))
}

/// List orders (your own; admins all), filtered by status and product, newest last.
#[utoipa::path(
    get, path = "/orders", tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = OrderPage),
        (status = 400, description = "Bad parameter or cursor", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks orders:read", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    let params: ListQuery = http::query(&req)?;
    let limit = http::page_limit(params.limit)?;
    let descending = params.order.unwrap_or_default() == products::api::SortOrder::Desc;
    let mut query = Query::new()
        .sort(SortKey::CreatedAt, descending)
        .limit(limit)
        .cursor(params.cursor.clone());
    // The narrowest index first; the other conditions filter its matches.
    let (status, product) = (params.status, params.product_id);
    let owner = (!caller.admin).then(|| caller.user.clone());
    query = match (&owner, product, status) {
        (Some(user), _, _) => query.index_eq(BY_OWNER, user.as_str()),
        (None, Some(p), _) => query.index_eq(BY_PRODUCT, p),
        (None, None, Some(s)) => query.index_eq(BY_STATUS, s.as_str()),
        (None, None, None) => query,
    };
    if status.is_some() || product.is_some() {
        query = query.filter(move |r: &Record<Order>| {
            status.is_none_or(|s| r.data.status == s)
                && product.is_none_or(|p| r.data.items.iter().any(|i| i.product_id == p))
        });
    }
    let page = state.store.list(&query)?;
    let next = page.next_cursor.as_ref().map(|cursor| {
        let next = ListQuery {
            limit: Some(limit),
            cursor: Some(cursor.clone()),
            ..params
        };
        http::next_page("/orders", &next)
    });
    Ok(HttpResponse::Ok().json(OrderPage {
        items: page.items.iter().map(|r| OrderBody::from(&**r)).collect(),
        next_cursor: page.next_cursor,
        next,
    }))
}

/// What a PATCH asks for.
struct Change {
    items: Option<Vec<RequestedItem>>,
    status: Option<Status>,
}

fn parse_change(body: &Value) -> Result<Change, ApiError> {
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

/// Change an order's lines (re-validated against products) and/or its status.
#[utoipa::path(
    patch, path = "/orders/{id}", tag = "orders",
    request_body = UpdateOrder,
    params(("id" = String, Path, description = "Order id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses(
        (status = 200, description = "Changed", body = OrderBody, headers(("ETag" = String))),
        (status = 400, description = "Malformed", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks orders:write", body = Problem),
        (status = 404, description = "No such order (or another user's)", body = Problem),
        (status = 409, description = "Not allowed in the order's status", body = Problem),
        (status = 410, description = "Deleted", body = Problem),
        (status = 412, description = "If-Match names an older version", body = Problem),
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
    let id = parse_id(&id)?;
    let expected = if_match(&req)?;
    let change = parse_change(&body.value()?)?;
    let request_id = request_id(&req);
    for _ in 0..ATTEMPTS {
        let current = fetch(&state, id, &caller)?;
        if let Some(v) = expected.filter(|v| *v != current.version) {
            return Err(ApiError::PreconditionFailed(format!(
                "the order is at version {}, not {v}",
                current.version
            )));
        }
        let mut next = current.data.clone();
        if let Some(items) = &change.items {
            if !current.data.status.is_open() {
                return Err(ApiError::Conflict(format!(
                    "the items of a {} order cannot change",
                    current.data.status
                )));
            }
            (next.items, next.total) = priced(&state, items, request_id.as_deref()).await?;
        }
        if let Some(to) = change
            .status
            .filter(|s| *s != current.data.status || change.items.is_none())
        {
            if !current.data.status.may_become(to) {
                return Err(ApiError::Conflict(format!(
                    "an order cannot go from {} to {to}",
                    current.data.status
                )));
            }
            if current.data.status == Status::OnHold
                && to == Status::Placed
                && change.items.is_none()
            {
                // Releasing a hold: the products must still be available.
                let items: Vec<RequestedItem> = current
                    .data
                    .items
                    .iter()
                    .map(|i| RequestedItem {
                        product_id: i.product_id,
                        quantity: i.quantity,
                    })
                    .collect();
                priced(&state, &items, request_id.as_deref()).await?;
            }
            next.status = to;
            next.hold_reason = None;
        }
        let version = current.version;
        match state
            .store
            .update(id, Some(version), move |_: &Order| {
                Ok::<_, StoreError>(next)
            })
            .await
        {
            Ok(record) => return Ok(with_etag(HttpResponse::Ok(), &record)),
            // Someone changed it meanwhile; without If-Match, recompute on the new version.
            Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(
        "the order keeps changing; try again".into(),
    ))
}

/// Delete an order (kept as a tombstone: reads then say 410).
#[utoipa::path(
    delete, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks orders:write", body = Problem),
        (status = 404, description = "No such order (or another user's)", body = Problem),
        (status = 410, description = "Already deleted", body = Problem),
        (status = 412, description = "If-Match names an older version", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let id = parse_id(&id)?;
    let expected = if_match(&req)?;
    for _ in 0..ATTEMPTS {
        let current = fetch(&state, id, &caller)?;
        match state
            .store
            .archive(id, Some(expected.unwrap_or(current.version)))
            .await
        {
            Ok(_) => return Ok(HttpResponse::NoContent().finish()),
            Err(StoreError::Conflict { .. }) if expected.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(
        "the order keeps changing; try again".into(),
    ))
}
