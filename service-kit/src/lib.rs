//! What the products and orders services share, so that each service holds only its domain:
//!
//! - [`auth`]: Biscuit tokens: verification with a bounded cache, per-request authorization with
//!   run limits, revocation; minting and attenuation for the `shop` tool; key files.
//! - [`problem`]: one error type rendered as `application/problem+json`; [`json`]: a JSON body
//!   extractor whose failures are problems too; [`http`]: ETags, conditional headers, caller
//!   identity, extractor error handlers.
//! - [`telemetry`]: logs and request spans with request ids ([`log_fields`]: their cheap field
//!   formatters); [`metrics`]: Prometheus;
//!   [`health`]: liveness and readiness; [`docs`]: OpenAPI and Swagger UI.
//! - [`server`]: the routes every service has, graceful stop, the binaries' `main`;
//!   [`shutdown`]: waiting for Ctrl-C or SIGTERM; [`config`]: the flags every service takes; [`idempotency`]: in-flight keys and body
//!   fingerprints; [`sse`]: a store's change feed as Server-Sent Events.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod docs;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod json;
pub mod log_fields;
pub mod metrics;
pub mod problem;
pub mod process_metrics;
pub mod protocol_errors;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod telemetry;

pub use auth::{AuthError, Authenticator, Caller, Operation};

/// The allocator every service binary installs (`#[global_allocator]` in its `main.rs`):
/// mimalloc, whose per-thread free lists make a request's many small allocations cheaper than
/// glibc's malloc, which took 15–18% of both services' CPU placing orders; with it an order
/// costs 13–22% less CPU (BENCHMARKS.md, 2026-12-03). Built to commit arena memory only as it
/// is used (`.cargo/config.toml`), so that a service's resident memory stays at glibc's.
pub use mimalloc::MiMalloc as Allocator;
pub use problem::{ApiError, FieldError, Problem};
