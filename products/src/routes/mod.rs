//! HTTP handlers: authorize, parse, call the store, map the answer. No business rules here
//! beyond what HTTP itself defines (ETags, preconditions, pagination links).

pub mod events;
pub mod products;

use service_kit::ApiError;
use uuid::Uuid;

/// The resource name in tokens.
pub const RESOURCE: &str = "products";

/// Parses a path id (after authorization, so anonymous callers learn nothing).
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a valid product id (a UUID)")))
}
