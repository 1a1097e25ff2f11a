//! How products are kept: one store-actor store, `products.json`, with the indexes the API
//! lists and looks up by.

use std::path::Path;

use store_actor::{Durability, IndexKey, Store, StoreOptions};

use crate::domain::Product;

/// The products store.
pub type ProductStore = Store<Product>;

/// Index for sorting by name (case-insensitive).
pub const BY_NAME: &str = "name";
/// Index for sorting and filtering by price (cents).
pub const BY_PRICE: &str = "price";
/// Index of `owner \u{1f} key` for idempotent creates.
pub const BY_IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The store's options: `DIR/products.json` and its indexes.
pub fn options(dir: &Path, durability: Durability) -> StoreOptions<Product> {
    StoreOptions::new(dir, "products")
        .durability(durability)
        .index(BY_NAME, |p: &Product| {
            vec![IndexKey::Str(p.name.as_str().to_lowercase())]
        })
        .index(BY_PRICE, |p: &Product| vec![IndexKey::Int(p.price.cents())])
        .index(BY_IDEMPOTENCY_KEY, |p: &Product| {
            p.created_by_key
                .iter()
                .map(|k| service_kit::idempotency::index_key(&k.owner, &k.key))
                .collect()
        })
}
