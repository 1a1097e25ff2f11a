//! `/products`: create, read, list, update, archive, batch lookup.

use actix_web::{HttpRequest, HttpResponse, web};
use products_api::{
    AdjustStock, CreateProduct, ListQuery, LookupRequest, LookupResponse, ProductBody, ProductPage,
    StockAdjustment, UpdateProduct,
};
use service_kit::docs::RecordId;
use service_kit::docs::params::{IdempotencyKey, IfMatch, IfNoneMatch};
use service_kit::docs::responses::{BadBody, ById, InFlight, NotModified, Stale, Unauthorized};
use service_kit::http::{self, authorize, idempotency_key, if_match};
use service_kit::idempotency::Claim;
use service_kit::json::Body;
use service_kit::problem::Problem;
use service_kit::{ApiError, Operation};

use super::{ProductsState, RESOURCE};
use crate::api::{adjustment_body, listing, product_body, product_json, product_view};
use crate::domain::{self, NewProduct, ProductPatch, raw_fields};

/// Create a product.
#[utoipa::path(
    post, path = "/products", operation_id = "create_product", tag = "products",
    request_body = CreateProduct,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Created", body = ProductBody,
            headers(("Location" = String), ("ETag" = String))),
        BadBody, Unauthorized,
        (status = 403, description = "Token lacks products:write", body = Problem), InFlight,
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
    let fields = raw_fields(&body.bytes().await?)?;
    let new = NewProduct::from_fields(&fields)?;
    // The canonical form (sorted keys, no whitespace) so that a retry formatted differently is
    // still the same request.
    let claim = key.map(|key| {
        Claim::new(
            &caller.user,
            key,
            &serde_json::to_vec(&fields).unwrap_or_default(),
        )
    });
    let created = state.service.create(new, claim).await?;
    let product = &created.product;
    Ok(http::created(
        "/products",
        product.id,
        product.version,
        created.replayed,
        &product_json(product),
    ))
}

/// Read a product.
#[utoipa::path(
    get, path = "/products/{id}", operation_id = "get_product", tag = "products",
    params(("id" = RecordId, Path, description = "Product id (UUID)"), IfNoneMatch),
    responses(
        (status = 200, description = "The product", body = ProductBody, headers(("ETag" = String))),
        NotModified, ById, Unauthorized,
        (status = 403, description = "Token lacks products:read", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Read)?;
    let product = state.service.get(http::parse_id(&id, "product")?)?;
    Ok(http::read(&req, product.version, || product_json(&product)))
}

/// List products, a page at a time.
///
/// Each request examines a bounded number of products (10,000), so a page with a rare
/// `name_contains` may be short or empty and still link to the next one: the list ends only
/// where `next` is absent. A price range is served by the price index.
#[utoipa::path(
    get, path = "/products", operation_id = "list_products", tag = "products",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ProductPage),
        (status = 400, description = "Bad parameter or cursor", body = Problem),
        Unauthorized,
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
    let listing = listing(&params)?;
    let limit = listing.limit;
    let page = state.service.list(listing).await?;
    let next = http::next_page("/products", page.next_cursor.as_ref(), |cursor| ListQuery {
        limit: Some(limit),
        cursor: Some(cursor),
        ..params
    });
    let capacity = (page.items.len() + 1) * http::RECORD_BODY_BYTES / 2;
    // Written from the records themselves (the same bytes as a `ProductPage`'s serde form).
    let body = |out: &mut Vec<u8>| {
        products_api::write_page(
            out,
            page.items.iter().map(|r| product_view(r)),
            page.next_cursor.as_deref(),
            next.as_deref(),
        )
    };
    Ok(http::json(
        HttpResponse::Ok(),
        capacity,
        &http::Written(body),
    ))
}

/// Change a product's name and/or price.
#[utoipa::path(
    patch, path = "/products/{id}", operation_id = "update_product", tag = "products",
    request_body = UpdateProduct,
    params(("id" = RecordId, Path, description = "Product id (UUID)"), IfMatch),
    responses(
        (status = 200, description = "Updated", body = ProductBody, headers(("ETag" = String))),
        ById, BadBody, Unauthorized,
        (status = 403, description = "Token lacks products:write", body = Problem), Stale,
        (status = 428, description = "A change of `stock` without `If-Match`", body = Problem),
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
    let id = http::parse_id(&id, "product")?;
    let expected = if_match(&req)?;
    let patch = ProductPatch::from_fields(&raw_fields(&body.bytes().await?)?)?;
    let product = state.service.change(id, expected, patch).await?;
    Ok(http::ok(product.version, &product_json(&product)))
}

/// Archive a product: it leaves lists, reads say 410, new orders for it are refused.
#[utoipa::path(
    delete, path = "/products/{id}", operation_id = "archive_product", tag = "products",
    params(("id" = RecordId, Path, description = "Product id (UUID)"), IfMatch),
    responses(
        (status = 204, description = "Archived"),
        ById, Unauthorized,
        (status = 403, description = "Token lacks products:write", body = Problem), Stale,
    ),
    security(("bearer" = []))
)]
pub async fn archive(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Write)?;
    let id = http::parse_id(&id, "product")?;
    let expected = if_match(&req)?;
    state.service.archive(id, expected).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Look up many products at once (what orders uses to validate an order in one call).
#[utoipa::path(
    post, path = "/products/lookup", operation_id = "lookup_products", tag = "products",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "Each id sorted into products, unknown and archived", body = LookupResponse),
        BadBody, Unauthorized,
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
    let request: LookupRequest = body.parse().await?;
    let lookup = state.service.lookup(request.ids)?;
    Ok(HttpResponse::Ok().json(LookupResponse {
        products: lookup.found.iter().map(|r| product_body(r)).collect(),
        unknown: lookup.unknown,
        archived: lookup.archived,
    }))
}

/// Adjust a product's stock by a signed number of units, with a reason.
#[utoipa::path(
    post, path = "/products/{id}/stock", operation_id = "adjust_stock", tag = "products",
    request_body = AdjustStock,
    params(("id" = RecordId, Path, description = "Product id (UUID)"), IdempotencyKey),
    responses(
        (status = 200, description = "Adjusted: the adjustment (read the product for its stock now)", body = StockAdjustment),
        ById, BadBody, Unauthorized, InFlight,
        (status = 403, description = "Token lacks products:write", body = Problem),
        (status = 409, description = "The product does not track stock, or fewer units than reserved would be left", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn adjust_stock(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Write)?;
    let id = http::parse_id(&id, "product")?;
    let key = idempotency_key(&req)?;
    let fields = raw_fields(&body.bytes().await?)?;
    let adjust = domain::AdjustStock::from_fields(&fields)?;
    let claim = key.map(|key| {
        let canonical = serde_json::to_vec(&(id, &fields)).unwrap_or_default();
        Claim::new(&caller.user, key, &canonical)
    });
    let adjusted = state.service.adjust(id, adjust, claim).await?;
    let mut res = HttpResponse::Ok();
    if adjusted.replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(res.json(adjustment_body(&adjusted.product)))
}
