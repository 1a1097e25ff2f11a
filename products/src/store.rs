//! How products are kept: one store-actor store, `products.json`, holding the products and the
//! adjustments of their stock (see [`Entry`]), with the indexes the API lists and looks up by.

use std::path::Path;

use store_actor::{Durability, IndexKey, Store, StoreOptions};

use crate::domain::{Entry, IdempotencyRecord};

/// The products store.
pub type ProductStore = Store<Entry>;

/// Index for sorting by name (case-insensitive); products only.
pub const BY_NAME: &str = "name";
/// Index for sorting and filtering by price (cents); products only.
pub const BY_PRICE: &str = "price";
/// Index of `owner \u{1f} key` of idempotent creates of products.
pub const BY_IDEMPOTENCY_KEY: &str = "idempotency_key";
/// Index of `owner \u{1f} key` of idempotent stock adjustments.
pub const BY_ADJUSTMENT_KEY: &str = "adjustment_key";
/// Index of reservations by state (the expiry task finds the held ones).
pub const BY_RESERVATION_STATE: &str = "reservation_state";

fn key_of(record: Option<&IdempotencyRecord>) -> Vec<IndexKey> {
    record
        .iter()
        .map(|k| service_kit::idempotency::index_key(&k.owner, &k.key))
        .collect()
}

/// The store's options: `DIR/products.json` and its indexes.
pub fn options(dir: &Path, durability: Durability) -> StoreOptions<Entry> {
    StoreOptions::new(dir, "products")
        .durability(durability)
        .index(BY_NAME, |e: &Entry| {
            e.as_product()
                .map(|p| IndexKey::from(p.name.as_str().to_lowercase()))
                .into_iter()
                .collect()
        })
        .index(BY_PRICE, |e: &Entry| {
            e.as_product()
                .map(|p| IndexKey::Int(p.price.cents()))
                .into_iter()
                .collect()
        })
        .index(BY_IDEMPOTENCY_KEY, |e: &Entry| {
            key_of(e.as_product().and_then(|p| p.created_by_key.as_ref()))
        })
        .index(BY_ADJUSTMENT_KEY, |e: &Entry| {
            key_of(e.as_adjustment().and_then(|a| a.created_by_key.as_ref()))
        })
        .index(BY_RESERVATION_STATE, |e: &Entry| {
            e.as_reservation()
                .map(|r| IndexKey::from(r.state.as_str()))
                .into_iter()
                .collect()
        })
}
