//! The products service: a library holding the actix-web app, and the `products` binary.
//!
//! - [`domain`]: validated values (names, exact money) with no HTTP and no storage.
//! - [`service`]: the operations and every business rule; [`store`]: the store and its
//!   indexes.
//! - [`routes`]: the handlers (authorize, parse, call the service, render); [`api`]: records
//!   rendered as the [`products_api`] wire types; [`openapi`]: the document.
//! - [`startup`]: [`startup::build`], which opens the store and binds; [`configuration`]:
//!   flags and environment variables.
//!
//! Callers of this API use the `products-api` crate (wire types and a typed client), not this
//! one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod configuration;
pub mod domain;
pub mod import;
pub mod openapi;
pub mod routes;
pub mod service;
pub mod startup;
pub mod store;
