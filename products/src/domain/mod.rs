//! The products domain: validated values, no HTTP and no storage.

pub mod money;
pub mod product;

pub use money::Money;
pub use product::{
    IdempotencyRecord, NewProduct, Product, ProductName, ProductPatch, RawFields, raw_fields,
};
