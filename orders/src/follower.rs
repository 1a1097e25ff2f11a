//! Follows the products change feed and puts open orders on hold when a product is archived.
//!
//! - The cursor (the last products sequence fully handled) is kept durably in its own store and
//!   saved, at most every 200 ms, only up to events whose effects are stored: delivery is at
//!   least once, and handling is idempotent (an order already on hold is left alone), so a
//!   restart never applies a side effect twice and never skips one.
//! - If products no longer retains the events after our cursor, it says `resync`: we then
//!   reconcile fully (every product referenced by a placed order, checked with batch lookups)
//!   and follow on from the oldest retained event.
//! - Only archives are asked for (`?kinds=archived`): the feed leaves out the stock changes
//!   every order makes (a reservation and its commit update each product twice), and tells the
//!   position past them in `id:`-only frames at most once a second, which move the cursor.
//! - Connection failures are retried with a capped backoff; the service stays up meanwhile.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use products_api::client::{FeedEvent, ProductsClient};
use products_api::{ChangeKind, MAX_LOOKUP, ProductEvent};
use prometheus_client::metrics::gauge::Gauge;
use store_actor::{IndexKey, StoreError};
use uuid::Uuid;

use crate::domain::{Order, Status};
use crate::store::{BY_PRODUCT, BY_STATUS, CURSOR_ID, CursorStore, FeedCursor, OrderStore};

/// How often the handled position is saved.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Aborts a background task when dropped (the saver dies with the follower).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Feed progress, exported as metrics.
#[derive(Debug, Clone, Default)]
pub struct FeedMetrics {
    /// `products_feed_last_seq`.
    pub last_seq: Gauge,
    /// `products_feed_lag_seconds`: now − the last handled archive's product `updated_at`, in
    /// seconds (0 if the clocks disagree the other way).
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `products_feed_connected`.
    pub connected: Gauge,
}

impl FeedMetrics {
    /// Registers the gauges.
    pub fn register(&self, metrics: &service_kit::metrics::Metrics) {
        metrics.register(
            "products_feed_last_seq",
            "Last products change-feed sequence handled by orders",
            self.last_seq.clone(),
        );
        metrics.register(
            "products_feed_lag_seconds",
            "Delay between a product's archiving and orders handling it",
            self.lag_seconds.clone(),
        );
        metrics.register(
            "products_feed_connected",
            "1 while orders follows the products change feed",
            self.connected.clone(),
        );
    }
}

/// Products the feed said were archived, shared with the handlers: an order stored just after
/// the follower held that product's orders would otherwise stay placed. The follower adds an id
/// *before* it looks for orders to hold, and the create handler checks *after* it stored the
/// order, so one of the two always sees the other.
#[derive(Debug, Clone, Default)]
pub struct ArchivedProducts(Arc<std::sync::RwLock<std::collections::HashSet<Uuid>>>);

impl ArchivedProducts {
    /// Remembers an archived product.
    pub fn insert(&self, id: Uuid) {
        self.0.write().unwrap().insert(id);
    }

    /// The first of `ids` known to be archived.
    pub fn any_of(&self, ids: impl IntoIterator<Item = Uuid>) -> Option<Uuid> {
        let known = self.0.read().unwrap();
        ids.into_iter().find(|id| known.contains(id))
    }
}

/// What the follower works with.
#[derive(Debug, Clone)]
pub struct Follower {
    /// Products, with orders' service token.
    pub products: ProductsClient,
    /// The orders to hold.
    pub orders: OrderStore,
    /// The durable cursor.
    pub cursor: CursorStore,
    /// Progress metrics.
    pub metrics: FeedMetrics,
    /// Archived products seen so far.
    pub archived: ArchivedProducts,
}

impl Follower {
    /// The last sequence handled (0 before the first event).
    pub fn position(&self) -> u64 {
        self.cursor
            .get(CURSOR_ID)
            .map(|c| c.data.last_seq)
            .unwrap_or(0)
    }

    /// Saves the cursor durably.
    pub async fn save(&self, last_seq: u64) -> Result<(), StoreError> {
        let saved = match self.cursor.get(CURSOR_ID) {
            Ok(_) => {
                self.cursor
                    .update(CURSOR_ID, None, move |_: &FeedCursor| {
                        Ok::<_, StoreError>(FeedCursor { last_seq })
                    })
                    .await
            }
            Err(_) => {
                self.cursor
                    .create_with_id(CURSOR_ID, FeedCursor { last_seq })
                    .await
            }
        };
        saved?;
        Ok(())
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        // The saved position, not 0, until the first event arrives (restarts must not look
        // like a feed that fell behind).
        let start = self.position();
        self.metrics.last_seq.set(start as i64);
        let handled = Arc::new(AtomicU64::new(start));
        // The cursor is saved in the background, at most every SAVE_EVERY: one durable write
        // per event would cap the feed at the disk's fsync rate. After a crash the events
        // handled since the last save are handled again, which changes nothing.
        let _saver = AbortOnDrop(tokio::spawn(
            self.clone().save_periodically(handled.clone(), start),
        ));
        let mut backoff = Duration::from_millis(100);
        loop {
            let after = handled.load(Ordering::Acquire);
            let this = Arc::new(self.clone());
            let outcome = self
                .products
                // Only archives matter here; the stock changes of every order are left out
                // (progress frames still move the cursor past them).
                .follow(after, &[ChangeKind::Archived], |event| {
                    let (this, handled) = (this.clone(), handled.clone());
                    async move {
                        this.metrics.connected.set(1);
                        match this.handle(event).await {
                            Ok(seq) => {
                                handled.store(seq, Ordering::Release);
                                true
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "handling a products event failed; reconnecting");
                                false
                            }
                        }
                    }
                })
                .await;
            self.metrics.connected.set(0);
            match outcome {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "products feed unavailable");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn save_periodically(self, handled: Arc<AtomicU64>, mut saved: u64) {
        loop {
            tokio::time::sleep(SAVE_EVERY).await;
            let position = handled.load(Ordering::Acquire);
            if position == saved {
                continue;
            }
            match self.save(position).await {
                Ok(()) => saved = position,
                Err(e) => tracing::error!(error = %e, "saving the feed cursor failed"),
            }
        }
    }

    /// Handles one event; returns the sequence the feed may continue after.
    pub async fn handle(&self, event: FeedEvent) -> Result<u64, StoreError> {
        let position = match event {
            FeedEvent::Change(e) => {
                if e.kind == ChangeKind::Archived {
                    self.hold_orders_of(&e).await?;
                }
                let lag = time::OffsetDateTime::now_utc() - e.product.updated_at;
                self.metrics.lag_seconds.set(lag.as_seconds_f64().max(0.0));
                e.seq
            }
            FeedEvent::Progress { seq } => seq,
            FeedEvent::Resync { oldest_available } => {
                tracing::warn!(
                    oldest_available,
                    "products feed says resync: reconciling all placed orders"
                );
                self.reconcile().await?;
                oldest_available.saturating_sub(1)
            }
        };
        self.metrics.last_seq.set(position as i64);
        Ok(position)
    }

    async fn hold_orders_of(&self, e: &ProductEvent) -> Result<(), StoreError> {
        self.archived.insert(e.product.id);
        let reason = format!(
            "product {:?} ({}) was archived; review this order",
            e.product.name, e.product.id
        );
        self.hold(e.product.id, &reason).await
    }

    /// Puts every placed order containing `product` on hold (idempotent).
    pub async fn hold(&self, product: Uuid, reason: &str) -> Result<(), StoreError> {
        for order in self.orders.lookup(BY_PRODUCT, &IndexKey::Uuid(product))? {
            if order.archived || order.data.status != Status::Placed {
                continue;
            }
            let reason = reason.to_owned();
            let held = self
                .orders
                .update(order.id, None, move |o: &Order| {
                    o.held(reason).ok_or("no longer placed")
                })
                .await;
            match held {
                Ok(_) => tracing::info!(order = %order.id, %product, "order put on hold"),
                // Changed meanwhile (fulfilled, cancelled, deleted): nothing to hold.
                Err(StoreError::Rejected(_) | StoreError::Archived { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Full reconciliation: checks every product of every placed order with batch lookups.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        let placed = self
            .orders
            .lookup(BY_STATUS, &IndexKey::from(Status::Placed.as_str()))?;
        let products: BTreeSet<Uuid> = placed
            .iter()
            .flat_map(|o| o.data.items.iter().map(|i| i.product_id))
            .collect();
        let products: Vec<Uuid> = products.into_iter().collect();
        for chunk in products.chunks(MAX_LOOKUP) {
            let lookup = self
                .products
                .lookup(chunk, None)
                .await
                .map_err(|e| StoreError::Rejected(e.to_string().into()))?;
            for id in lookup.archived {
                self.archived.insert(id);
                self.hold(id, &format!("product {id} was archived; review this order"))
                    .await?;
            }
        }
        Ok(())
    }
}
