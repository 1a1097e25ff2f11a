//! HTTP handlers: authorize, parse, call one [`OrderService`] operation, render. The rules live
//! in the service and the domain; here is only how their answers map onto HTTP.

pub mod events;
pub mod orders;

use products_api::client::ClientError;
use service_kit::ApiError;
use service_kit::sse::Closing;

use crate::domain::order::PricingError;
use crate::service::{OrderError, OrderService};

/// The resource name in tokens.
pub const RESOURCE: &str = "orders";

/// Seconds a client should wait before retrying when products is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct OrdersState {
    /// The operations.
    pub service: OrderService,
    /// Ends the event streams at shutdown.
    pub closing: Closing,
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound(_) => ApiError::NotFound(e.to_string()),
            OrderError::Deleted(_) => ApiError::Gone(e.to_string()),
            OrderError::NotYours => ApiError::Forbidden(e.to_string()),
            OrderError::Stale { .. } => ApiError::PreconditionFailed(e.to_string()),
            OrderError::Refused(_) | OrderError::KeepsChanging => ApiError::Conflict(e.to_string()),
            OrderError::Pricing(e) => pricing_problem(e),
            OrderError::OutOfStock(ref lines) => {
                let mut extensions = serde_json::Map::new();
                extensions.insert("lines".into(), serde_json::json!(lines));
                ApiError::OutOfStock {
                    detail: e.to_string(),
                    extensions,
                }
            }
            OrderError::ProductsUnavailable(ref cause) => {
                if !matches!(cause, ClientError::Unavailable(_)) {
                    // Our own token or request is wrong: an operator must look, the client can
                    // only retry.
                    let (service, request_id) = service_kit::telemetry::current_request();
                    tracing::error!(service, %request_id, error = %cause, "products refused or garbled a call from orders");
                }
                ApiError::Unavailable {
                    detail: e.to_string(),
                    retry_after: RETRY_AFTER_SECS,
                }
            }
            OrderError::Idempotency(e) => e.into(),
            OrderError::Storage(e) => e.into(),
        }
    }
}

/// Unknown or archived products: 422 naming them; totals too large: a field error on `items`.
fn pricing_problem(e: PricingError) -> ApiError {
    match &e {
        PricingError::Unavailable { unknown, archived } => {
            ApiError::unavailable_products(e.to_string(), unknown, archived)
        }
        PricingError::TooLarge(_) => ApiError::invalid("items", e.to_string()),
        PricingError::NoAnswer(_) => ApiError::Internal(e.to_string()),
    }
}
