//! The products domain: validated values, no HTTP and no storage.

pub mod product;
pub mod stock;

pub use product::{
    IdempotencyRecord, MAX_STOCK, NewProduct, Product, ProductName, ProductPatch, RawFields,
    StockRefusal, raw_fields,
};
/// Exact money, the type both this service and its callers compute with.
pub use products_api::money::{self, Money};
pub use stock::{
    AdjustStock, Adjustment, Entry, HeldLine, Reservation, ReservationState, Short, ShortLine,
};
