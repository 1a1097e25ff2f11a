//! The products API as its callers see it, shared by the products server (which answers with
//! these types) and its clients (orders), so that the two cannot drift apart.
//!
//! - [`wire`]: request and response bodies, query parameters and change-feed events.
//! - a product's and a page's JSON written by hand for the server's hot paths
//!   ([`ProductView`], [`write_page`]), byte for byte what serde writes.
//! - [`money`]: exact amounts in cents, as both sides compute with them.
//! - [`client`]: a typed client with one deadline per call, retries, a circuit breaker,
//!   metrics and the change feed.
//!
//! No web framework here: only what travels on the wire and how to call it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod json;
pub mod money;
pub mod whole;
pub mod wire;

pub use json::{ProductView, write_page};
pub use money::Money;
/// Timestamps on the wire: the store's own RFC 3339 text (`#[serde(with = "products_api::rfc3339")]`).
pub use store_actor::rfc3339;
pub use whole::whole_number;
pub use wire::*;

/// Most ids one `POST /products/lookup` may ask for.
pub const MAX_LOOKUP: usize = 1000;

/// Most reservations one `POST /reservations/commit` commits.
pub const MAX_COMMIT: usize = 100;
