//! How orders are kept: `orders.json` with indexes by owner, status, product and what they
//! still owe products, and
//! `products-feed.json`, the durable cursor of the products change feed.

use std::path::Path;

use serde::{Deserialize, Serialize};
use store_actor::{Durability, IndexKey, Store, StoreOptions};
use uuid::Uuid;

use crate::domain::Order;

/// The orders store.
pub type OrderStore = Store<Order>;
/// The feed cursor store (one record).
pub type CursorStore = Store<FeedCursor>;

/// Index: the owner's name.
pub const BY_OWNER: &str = "owner";
/// Index: the status.
pub const BY_STATUS: &str = "status";
/// Index: every product an order contains.
pub const BY_PRODUCT: &str = "product";
/// Index of `owner \u{1f} key` for idempotent creates.
pub const BY_IDEMPOTENCY_KEY: &str = "idempotency_key";

/// Index: [`UNSETTLED`] for orders that owe products a call, or wait to become a tombstone.
pub const BY_UNSETTLED: &str = "unsettled";
/// The one key of [`BY_UNSETTLED`].
pub const UNSETTLED: &str = "owing";

/// The id of the one cursor record.
pub const CURSOR_ID: Uuid = Uuid::from_u128(1);

/// How far the products feed has been handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FeedCursor {
    /// The last products sequence number whose event was fully handled.
    pub last_seq: u64,
}

/// Whether an order is deleted: a tombstone, or deleted and still giving its stock back (reads
/// treat both alike).
pub fn is_deleted(r: &store_actor::Record<Order>) -> bool {
    r.archived || r.data.deleting
}

/// The orders store's options.
pub fn options(dir: &Path, durability: Durability) -> StoreOptions<Order> {
    StoreOptions::new(dir, "orders")
        .durability(durability)
        .index(BY_OWNER, |o: &Order| vec![IndexKey::from(o.owner.as_str())])
        .index(BY_STATUS, |o: &Order| {
            vec![IndexKey::from(o.status.as_str())]
        })
        .index(BY_PRODUCT, |o: &Order| {
            o.items
                .iter()
                .map(|i| IndexKey::Uuid(i.product_id))
                .collect()
        })
        .index(BY_UNSETTLED, |o: &Order| {
            if o.deleting || !o.is_settled() {
                vec![IndexKey::from(UNSETTLED)]
            } else {
                Vec::new()
            }
        })
        .index(BY_IDEMPOTENCY_KEY, |o: &Order| {
            o.created_by_key
                .iter()
                .map(|k| service_kit::idempotency::index_key(&k.owner, &k.key))
                .collect()
        })
}

/// The cursor store's options. Nobody follows its feed: it keeps no history on disk.
pub fn cursor_options(dir: &Path) -> StoreOptions<FeedCursor> {
    StoreOptions::new(dir, "products-feed").feed_history(store_actor::FeedHistory {
        max_age: std::time::Duration::ZERO,
        max_bytes: 0,
    })
}
