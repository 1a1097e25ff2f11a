//! The products domain: validated values, no HTTP and no storage.

pub mod product;

pub use product::{
    IdempotencyRecord, NewProduct, Product, ProductName, ProductPatch, RawFields, raw_fields,
};
/// Exact money, the type both this service and its callers compute with.
pub use products_api::money::{self, Money};
