//! HTTP handlers: authorize, parse, call one [`ProductService`] operation, render. The rules
//! live in the service and the domain; what is here is HTTP's own (status codes, ETags,
//! preconditions, paging links).

pub mod events;
pub mod products;
pub mod reservations;

use serde_json::{Map, json};
use service_kit::ApiError;
use service_kit::sse::Closing;

use crate::service::{ProductError, ProductService};

/// The resource name in tokens.
pub const RESOURCE: &str = "products";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ProductsState {
    /// The operations.
    pub service: ProductService,
    /// Ends the event streams at shutdown.
    pub closing: Closing,
}

impl From<ProductError> for ApiError {
    fn from(e: ProductError) -> Self {
        match e {
            ProductError::Archived(_) => ApiError::Gone(e.to_string()),
            ProductError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ProductError::Stale { .. } => ApiError::PreconditionFailed(e.to_string()),
            ProductError::Stock(_) | ProductError::ReservationConflict(_) => {
                ApiError::Conflict(e.to_string())
            }
            ProductError::NoReservation(_) => ApiError::NotFound(e.to_string()),
            ProductError::OutOfStock(ref lines) => {
                let mut extensions = Map::new();
                extensions.insert("lines".into(), json!(lines));
                ApiError::OutOfStock {
                    detail: e.to_string(),
                    extensions,
                }
            }
            ProductError::Unavailable {
                ref unknown,
                ref archived,
            } => ApiError::unavailable_products(e.to_string(), unknown, archived),
            ProductError::StockNeedsIfMatch => ApiError::PreconditionRequired(e.to_string()),
            ProductError::LookupSize | ProductError::CommitSize => {
                ApiError::invalid("ids", e.to_string())
            }
            ProductError::Idempotency(e) => e.into(),
            ProductError::Storage(e) => e.into(),
        }
    }
}
