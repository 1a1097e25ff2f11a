//! The products service: a library holding the actix-web app, and the `products` binary.
//!
//! - [`domain`]: validated values (names, exact money) with no HTTP and no storage.
//! - [`store`]: the store-actor store and its indexes.
//! - [`client`]: a typed client of this API for other services (retries, circuit breaker).
//! - [`api`]: request and response bodies; [`routes`]: the handlers; [`openapi`]: the document.
//! - [`startup`]: [`startup::Application`], which binds, serves and shuts down;
//!   [`configuration`]: flags and environment variables.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod configuration;
pub mod domain;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod store;
