//! The orders service: a library holding the actix-web app, and the `orders` binary.
//!
//! - [`domain`]: order lines with product snapshots, exact totals, the status machine.
//! - [`service`]: the operations and every business rule; an order's stock is reserved at
//!   products with ONE call per order through `products_api::client`.
//! - [`settler`]: the outbox worker that commits and releases those reservations.
//! - [`store`]: the orders store (indexes by owner, status, product) and the feed cursor.
//! - [`api`], [`routes`], [`openapi`]: the HTTP surface.
//! - [`follower`]: follows the products change feed and holds orders of archived products.
//! - [`stats`]: order figures per status.
//! - [`startup`], [`configuration`]: building, settings.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod configuration;
pub mod domain;
pub mod follower;
pub mod import;
pub mod openapi;
pub mod routes;
pub mod service;
pub mod settler;
pub mod startup;
pub mod stats;
pub mod store;
