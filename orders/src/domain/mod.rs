//! The orders domain: order lines, pricing and the status machine; no HTTP, no storage.

pub mod order;

pub use order::{Change, CreatedByKey, LineItem, Order, Priced, Refusal, RequestedItem, Status};
