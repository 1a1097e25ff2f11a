//! HTTP handlers: authorize, parse, check ownership, call products and the store, map answers.

pub mod events;
pub mod orders;

use products::client::ClientError;
use service_kit::{ApiError, Caller};
use store_actor::Record;
use uuid::Uuid;

use crate::domain::Order;

/// The resource name in tokens.
pub const RESOURCE: &str = "orders";

/// Seconds a client should wait before retrying when products is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Parses a path id (after authorization).
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a valid order id (a UUID)")))
}

/// Another user's order is "not found": its existence is not revealed. Admins see all.
pub fn visible(record: &Record<Order>, caller: &Caller) -> Result<(), ApiError> {
    if caller.admin || record.data.owner == caller.user {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("{} does not exist", record.id)))
    }
}

/// A failed call to products: 503 with `Retry-After`; nothing was stored.
pub fn products_error(e: ClientError) -> ApiError {
    match &e {
        ClientError::Unavailable(_) => {}
        // Our own token or request is wrong: an operator must look, the client can only retry.
        ClientError::Refused { .. } | ClientError::Decode(_) => {
            tracing::error!(error = %e, "products refused or garbled a call from orders");
        }
    }
    ApiError::Unavailable {
        detail: format!("products cannot be reached to check the order: {e}"),
        retry_after: RETRY_AFTER_SECS,
    }
}
