//! `GET /products/events`: the change feed as Server-Sent Events.

use actix_web::{HttpRequest, HttpResponse, web};
use products_api::ProductEvent;
use service_kit::docs::responses::Unauthorized;
use service_kit::http::authorize;
use service_kit::problem::Problem;
use service_kit::{ApiError, Operation, sse};

use super::{ProductsState, RESOURCE};
use crate::api::product_event;

/// Follow product changes (`text/event-stream`): `created`, `updated`, `archived`, with the
/// sequence number as the event id; a `resync` event when asked for events no longer retained.
#[utoipa::path(
    get, path = "/products/events", operation_id = "follow_products", tag = "products",
    params(sse::FeedQuery, ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 9_007_199_254_740_992_u64, description = "Resume after this event (a sequence number, at most 2^53; takes precedence over `after`)")),
    responses(
        (status = 200, description = "Server-Sent Events; each data line is a ProductEvent", body = ProductEvent, content_type = "text/event-stream"),
        (status = 400, description = "Bad query", body = Problem),
        Unauthorized,
        (status = 403, description = "Token lacks products:read", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn feed(
    req: HttpRequest,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Read)?;
    sse::respond(&req, &state.service.changes(), &state.closing, |event| {
        product_event(event).and_then(|e| serde_json::to_string(&e).ok())
    })
}
