//! `GET /orders/events`: the change feed as Server-Sent Events (your own orders; admins all).

use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::docs::responses::Unauthorized;
use service_kit::http::authorize;
use service_kit::problem::Problem;
use service_kit::{ApiError, Operation, sse};

use super::{OrdersState, RESOURCE};
use crate::api::OrderEvent;

/// Follow order changes (`text/event-stream`): `created`, `updated` (including holds),
/// `archived` (deleted), with the sequence number as the event id.
#[utoipa::path(
    get, path = "/orders/events", operation_id = "follow_orders", tag = "orders",
    params(sse::FeedQuery, ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 9_007_199_254_740_992_u64, description = "Resume after this event (a sequence number, at most 2^53; takes precedence over `after`)")),
    responses(
        (status = 200, description = "Server-Sent Events; each data line is an OrderEvent", body = OrderEvent, content_type = "text/event-stream"),
        Unauthorized,
        (status = 403, description = "Token lacks orders:read", body = Problem),
        (status = 400, description = "Bad query", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn feed(
    req: HttpRequest,
    state: web::Data<OrdersState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Read)?;
    sse::respond(
        &req,
        &state.service.changes(),
        &state.closing,
        move |event| {
            let mine = event.record.data.is_visible_to(&caller);
            mine.then(|| serde_json::to_string(&OrderEvent::from(event)).ok())
                .flatten()
        },
    )
}
