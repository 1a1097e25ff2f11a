//! The OpenAPI document, generated from the handlers' annotations.

use service_kit::docs::{BearerAuth, EventStream, ProblemResponses, RecordId};
use service_kit::problem::{FieldError, Problem};
use utoipa::OpenApi;

use crate::routes::{events, products, reservations};
use products_api::{
    AdjustStock, CommitMany, CommitOutcomes, CreateProduct, LookupRequest, LookupResponse,
    ProductBody, ProductEvent, ProductPage, ReservationBody, ReservationState, ReserveLine,
    ReserveRequest, ReservedLine, SortField, SortOrder, StockAdjustment, UpdateProduct,
};

/// The products API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "products", description = "Products: create, read, list, update, archive; batch lookup; change feed. Every data endpoint needs `Authorization: Bearer <Biscuit token>`; errors are application/problem+json."),
    paths(products::create, products::get, products::list, products::update, products::archive,
        products::lookup, products::adjust_stock, events::feed, reservations::reserve,
        reservations::get, reservations::commit, reservations::release, reservations::commit_many),
    components(schemas(ProductBody, CreateProduct, UpdateProduct, ProductPage, LookupRequest,
        LookupResponse, ProductEvent, SortField, SortOrder, AdjustStock, StockAdjustment,
        ReserveRequest, ReserveLine, ReservationBody, ReservedLine, ReservationState,
        CommitMany, CommitOutcomes,
        Problem, FieldError, RecordId)),
    servers((url = "/", description = "The products service that serves this document")),
    modifiers(&BearerAuth, &ProblemResponses, &FEED),
    tags((name = "products", description = "The product catalogue"),
        (name = "reservations", description = "Stock held for orders, all or nothing (products:reserve)"))
)]
pub struct ApiDoc;

/// The change feed's events.
const FEED: EventStream = EventStream {
    path: "/products/events",
    data: "ProductEvent",
    kinds: &["created", "updated", "archived"],
};
