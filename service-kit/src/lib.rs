//! What the products and orders services share, so that each service holds only its domain:
//!
//! - [`auth`]: Biscuit tokens: verification with a bounded cache, per-request authorization with
//!   run limits, revocation; minting and attenuation for the `shop` tool; key files.
//! - [`problem`]: one error type rendered as `application/problem+json`;
//!   [`json`]: a JSON body extractor whose failures are problems too.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod json;
pub mod problem;

pub use auth::{AuthError, Authenticator, Caller, Operation};
pub use problem::{ApiError, FieldError, Problem};
