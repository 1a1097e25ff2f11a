//! `/products`: create, read, list, update, archive, batch lookup.

use std::convert::Infallible;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{self, authorize, etag, idempotency_key, if_match, if_none_match};
use service_kit::idempotency::{InFlight, fingerprint};
use service_kit::json::Body;
use service_kit::problem::Problem;
use service_kit::{ApiError, Operation};
use store_actor::{Query, Record, SortKey};

use super::{RESOURCE, parse_id};
use crate::api::{
    CreateProduct, ListQuery, LookupRequest, LookupResponse, ProductBody, ProductPage, SortField,
    SortOrder, UpdateProduct,
};
use crate::domain::{IdempotencyRecord, Money, NewProduct, Product, ProductPatch, raw_fields};
use crate::store::{BY_IDEMPOTENCY_KEY, BY_NAME, BY_PRICE, ProductStore};

/// Shared state of the products handlers.
#[derive(Debug, Clone)]
pub struct ProductsState {
    /// The store.
    pub store: ProductStore,
    /// Idempotency keys whose first request is running.
    pub in_flight: InFlight,
    /// Ends the event streams at shutdown.
    pub closing: service_kit::sse::Closing,
}

/// Most ids one lookup may ask for.
pub const MAX_LOOKUP: usize = 1000;

fn with_etag(mut res: actix_web::HttpResponseBuilder, record: &Record<Product>) -> HttpResponse {
    res.insert_header((header::ETAG, etag(record.version)))
        .json(ProductBody::from(record))
}

fn created(record: &Record<Product>) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, format!("/products/{}", record.id)));
    res
}

/// Create a product.
#[utoipa::path(
    post, path = "/products", tag = "products",
    request_body = CreateProduct,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: the same key and body return the first result")),
    responses(
        (status = 201, description = "Created", body = ProductBody,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON or header", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:write", body = Problem),
        (status = 409, description = "Same Idempotency-Key still in flight", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Body is not JSON", body = Problem),
        (status = 422, description = "Invalid fields, or Idempotency-Key reused with another body", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    req: HttpRequest,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let key = idempotency_key(&req)?;
    let fields = raw_fields(body.bytes()?)?;
    let new = NewProduct::from_fields(&fields)?;
    let Some(key) = key else {
        let record = state
            .store
            .create(Product {
                name: new.name,
                price: new.price,
                created_by_key: None,
            })
            .await?;
        return Ok(with_etag(created(&record), &record));
    };
    // The canonical form (sorted keys, no whitespace) so that a retry formatted differently is
    // still the same request.
    let fingerprint = fingerprint(&serde_json::to_vec(&fields).unwrap_or_default());
    let _in_flight = state.in_flight.begin(&caller.user, &key)?;
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
        // The first result, as it was: the same body created version 1 at `created_at`.
        let original = ProductBody {
            id: first.id,
            name: new.name.as_str().to_owned(),
            price: new.price,
            version: 1,
            created_at: first.created_at,
            updated_at: first.created_at,
            archived: false,
        };
        let mut res = created(first);
        res.insert_header(("Idempotent-Replayed", "true"))
            .insert_header((header::ETAG, etag(1)));
        return Ok(res.json(original));
    }
    let record = state
        .store
        .create(Product {
            name: new.name,
            price: new.price,
            created_by_key: Some(IdempotencyRecord {
                owner: caller.user,
                key,
                fingerprint,
            }),
        })
        .await?;
    Ok(with_etag(created(&record), &record))
}

/// Read a product.
#[utoipa::path(
    get, path = "/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id (UUID)"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag: 304 if unchanged")),
    responses(
        (status = 200, description = "The product", body = ProductBody, headers(("ETag" = String))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Not a UUID", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:read", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 410, description = "Archived", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Read)?;
    let id = parse_id(&id)?;
    let record = state.store.get(id)?;
    if record.archived {
        return Err(ApiError::Gone(format!("product {id} was archived")));
    }
    if if_none_match(&req, record.version) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag(record.version)))
            .finish());
    }
    Ok(with_etag(HttpResponse::Ok(), &record))
}

fn price_bound(raw: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    raw.map(|p| {
        p.parse::<Money>()
            .map(Money::cents)
            .map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
    })
    .transpose()
}

/// List products, a page at a time.
#[utoipa::path(
    get, path = "/products", tag = "products",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ProductPage),
        (status = 400, description = "Bad parameter or cursor", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:read", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Read)?;
    let params: ListQuery = http::query(&req)?;
    let limit = http::page_limit(params.limit)?;
    let min = price_bound(params.min_price.as_deref(), "min_price")?;
    let max = price_bound(params.max_price.as_deref(), "max_price")?;
    let needle = params
        .name_contains
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_lowercase);
    let sort = match params.sort.unwrap_or_default() {
        SortField::CreatedAt => SortKey::CreatedAt,
        SortField::Name => SortKey::Index(BY_NAME.into()),
        SortField::Price => SortKey::Index(BY_PRICE.into()),
    };
    let descending = params.order.unwrap_or_default() == SortOrder::Desc;
    let mut query = Query::new()
        .sort(sort, descending)
        .limit(limit)
        .cursor(params.cursor.clone());
    if min.is_some() || max.is_some() || needle.is_some() {
        query = query.filter(move |r: &Record<Product>| {
            let cents = r.data.price.cents();
            min.is_none_or(|m| cents >= m)
                && max.is_none_or(|m| cents <= m)
                && needle
                    .as_deref()
                    .is_none_or(|n| r.data.name.as_str().to_lowercase().contains(n))
        });
    }
    let page = state.store.list(&query)?;
    let next = page.next_cursor.as_ref().map(|cursor| {
        let next = ListQuery {
            limit: Some(limit),
            cursor: Some(cursor.clone()),
            ..params
        };
        http::next_page("/products", &next)
    });
    Ok(HttpResponse::Ok().json(ProductPage {
        items: page.items.iter().map(|r| ProductBody::from(&**r)).collect(),
        next_cursor: page.next_cursor,
        next,
    }))
}

/// Change a product's name and/or price.
#[utoipa::path(
    patch, path = "/products/{id}", tag = "products",
    request_body = UpdateProduct,
    params(("id" = String, Path, description = "Product id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses(
        (status = 200, description = "Updated", body = ProductBody, headers(("ETag" = String))),
        (status = 400, description = "Malformed", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:write", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 410, description = "Archived", body = Problem),
        (status = 412, description = "If-Match names an older version", body = Problem),
        (status = 415, description = "Body is not JSON", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Write)?;
    let id = parse_id(&id)?;
    let expected = if_match(&req)?;
    let patch = ProductPatch::from_fields(&raw_fields(body.bytes()?)?)?;
    let record = state
        .store
        .update(id, expected, move |current: &Product| {
            Ok::<_, Infallible>(patch.apply(current))
        })
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &record))
}

/// Archive a product: it leaves lists, reads say 410, new orders for it are refused.
#[utoipa::path(
    delete, path = "/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id (UUID)"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on")),
    responses(
        (status = 204, description = "Archived"),
        (status = 400, description = "Not a UUID", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:write", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 410, description = "Already archived", body = Problem),
        (status = 412, description = "If-Match names an older version", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn archive(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Write)?;
    let id = parse_id(&id)?;
    let expected = if_match(&req)?;
    state.store.archive(id, expected).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Look up many products at once (what orders uses to validate an order in one call).
#[utoipa::path(
    post, path = "/products/lookup", tag = "products",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "Each id sorted into products, unknown and archived", body = LookupResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, description = "No valid token", body = Problem),
        (status = 403, description = "Token lacks products:read", body = Problem),
        (status = 422, description = "No ids, too many, or not UUIDs", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn lookup(
    req: HttpRequest,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Read)?;
    let request: LookupRequest = body.parse()?;
    if request.ids.is_empty() || request.ids.len() > MAX_LOOKUP {
        return Err(ApiError::invalid(
            "ids",
            format!("give between 1 and {MAX_LOOKUP} ids"),
        ));
    }
    let mut response = LookupResponse {
        products: Vec::new(),
        unknown: Vec::new(),
        archived: Vec::new(),
    };
    // Each id once, in the order first asked.
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<_> = request
        .ids
        .into_iter()
        .filter(|id| seen.insert(*id))
        .collect();
    for (id, found) in ids.iter().zip(state.store.get_many(&ids)) {
        match found {
            None => response.unknown.push(*id),
            Some(r) if r.archived => response.archived.push(*id),
            Some(r) => response.products.push(ProductBody::from(&*r)),
        }
    }
    Ok(HttpResponse::Ok().json(response))
}
