//! The orders domain: order lines, pricing and the status machine; no HTTP, no storage.

pub mod hold;
pub mod order;

pub use hold::{Due, Hold, HoldState, StockState, Units};
pub use order::{
    Change, CreatedByKey, LineItem, Order, Priced, Refusal, RequestedItem, Settled, Status,
};
