//! The OpenAPI document, generated from the handlers' annotations.

use service_kit::docs::{BearerAuth, EventStream, ProblemResponses, RecordId};
use service_kit::problem::{FieldError, Problem};
use utoipa::OpenApi;

use crate::api::{
    CreateOrder, FiguresBody, ItemRequest, OrderBody, OrderEvent, OrderLines, OrderPage, StatsBody,
    UpdateOrder,
};
use crate::domain::{LineItem, Status, StockState};
use crate::routes::{events, orders};
use products_api::SortOrder;

/// The orders API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orders", description = "Orders of products: place, read, list, change, delete; change feed. Every data endpoint needs `Authorization: Bearer <Biscuit token>`; users see only their own orders, admins all. Errors are application/problem+json."),
    paths(orders::create, orders::get, orders::list, orders::update, orders::delete, orders::stats,
        events::feed),
    components(schemas(OrderBody, CreateOrder, OrderLines, UpdateOrder, ItemRequest, OrderPage, OrderEvent,
        LineItem, Status, StockState, StatsBody, FiguresBody, SortOrder, Problem, FieldError,
        RecordId)),
    servers((url = "/", description = "The orders service that serves this document")),
    modifiers(&BearerAuth, &ProblemResponses, &FEED),
    tags((name = "orders", description = "Orders"))
)]
pub struct ApiDoc;

/// The change feed's events (`archived`: deleted).
const FEED: EventStream = EventStream {
    path: "/orders/events",
    data: "OrderEvent",
    kinds: &["created", "updated", "archived"],
};
