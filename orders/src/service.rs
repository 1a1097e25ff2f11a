//! What orders does, as operations on validated input; every business rule of the service is
//! here or in the [`domain`](crate::domain) types these operations use:
//!
//! - An order belongs to the user who placed it: only they, or an admin, see or change it;
//!   to anyone else it does not exist.
//! - Placing reserves every line with ONE call to products (with orders' own service token,
//!   the reservation named by the new order's id): all lines are held or none is. Products
//!   answers each product's name and unit price, which the lines keep as a snapshot; the total
//!   is exact. A short line refuses the order as out of stock, naming each short line; an
//!   unknown or archived product refuses it, naming it. If products cannot answer within its
//!   timeout, nothing is stored and the caller is told to retry (a hold products may have made
//!   expires on its own).
//! - The order is then stored owing products a commit, and answered; the
//!   [`settler`](crate::settler) commits in the background. Cancelling, deleting an open
//!   order, or replacing its lines makes it owe a release of the reservations it no longer
//!   needs. A commit that comes after the reservation expired puts the order on hold; placing
//!   it again reserves its lines anew.
//! - Lines of the same product are merged; at most 100 lines of at most 10,000 units each.
//! - A placement with an `Idempotency-Key` happens once per caller and key: a retry with the
//!   same body gets the first answer again (placed, with the lines and total first priced);
//!   the same key with another body is refused, and so is a retry while the first is running.
//! - A product archived while an order of it is being placed: the order is stored on hold.
//!   Later archives reach orders through the products change feed (see
//!   [`follower`](crate::follower)), which puts placed orders of the product on hold.
//! - Status moves: placed → fulfilled | cancelled; on_hold → placed | fulfilled | cancelled;
//!   fulfilled and cancelled are final. Releasing a hold re-checks that every product is still
//!   available; any status move clears the hold reason.
//! - Lines change only while placed or on hold, priced again (one lookup): only the units the
//!   new lines need beyond what the order holds are reserved, under a new reservation, before
//!   the order changes (or the change is refused as out of stock and nothing changes); units no
//!   longer needed are given back afterwards by shrinking, or releasing, its reservations.
//! - A change or a delete may require the version the caller last saw (`If-Match`); without
//!   it, a change that lost a race with another writer is recomputed on the new version (up to
//!   3 times).
//! - Deleting keeps a tombstone: reads say the order is gone at once; an open order's stock is
//!   given back first (a fulfilled order's stays sold).
//! - Lists go a page at a time in creation order, filtered by status and product; users see
//!   their own orders, admins everyone's or one owner's.
//! - Figures (counts, exact totals and averages per status, over a creation-time range) cover
//!   the caller's own live orders, or for an admin everyone's or one owner's; a user asking for
//!   another owner's is refused.

use std::sync::Arc;

use products_api::client::{ClientError, ProductsClient, ReserveOutcome};
use products_api::{ReservationBody, ReserveLine, ShortLine};
use prometheus_client::metrics::counter::Counter;
use service_kit::Caller;
use service_kit::http::IfMatch;
use service_kit::idempotency::{self, Claim, Created, IdempotencyError, InFlight};
use service_kit::sse::ChangeFeed;
use store_actor::{IndexKey, Page, Query, Record, SortKey, StoreError};
use uuid::Uuid;

use crate::domain::order::{Priced, PricingError, Refusal, price, price_reserved};
use crate::domain::{Change, CreatedByKey, Order, RequestedItem, Status, Units};
use crate::follower::ArchivedProducts;
use crate::settler::Settler;
use crate::stats::{Range, Stats, figures};
use crate::store::{BY_IDEMPOTENCY_KEY, BY_OWNER, BY_PRODUCT, BY_STATUS, OrderStore, is_deleted};

/// Attempts of a change that lost a race (without `If-Match`).
const ATTEMPTS: usize = 3;
/// Longest wait for the write that won a race to become readable.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No such order, or one the caller may not see.
    #[error("{0} does not exist")]
    NotFound(Uuid),
    /// The order was deleted.
    #[error("order {0} was deleted")]
    Deleted(Uuid),
    /// `If-Match` names another version than the current one.
    #[error(
        "the order is at version {current} (ETag \"{current}\"); If-Match asked for {expected}"
    )]
    Stale {
        /// The current version.
        current: u64,
        /// The `If-Match` the caller sent.
        expected: String,
    },
    /// The order refuses the change in its status.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The lines cannot be priced (unknown or archived products, totals too large).
    #[error(transparent)]
    Pricing(#[from] PricingError),
    /// Some lines are short of stock: nothing was held, nothing stored.
    #[error("not enough stock for {} of the lines", .0.len())]
    OutOfStock(Vec<ShortLine>),
    /// Products could not be asked: nothing was stored.
    #[error("products cannot be reached to check the order: {0}")]
    ProductsUnavailable(ClientError),
    /// A user asked for another owner's orders.
    #[error("only an admin may ask for another owner's orders")]
    NotYours,
    /// Other writers kept changing the order through every attempt.
    #[error("the order keeps changing; try again")]
    KeepsChanging,
    /// An idempotent placement was refused.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The store refused or failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A placed order, as the caller is answered.
#[derive(Debug)]
pub struct Placement {
    /// The order as stored (for a replay: as first answered).
    pub order: Arc<Record<Order>>,
    /// Whether this answers a retry of an earlier placement.
    pub replayed: bool,
}

/// A validated list request.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Page size, 1 to 100.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Only orders with this status.
    pub status: Option<Status>,
    /// Only orders containing this product.
    pub product: Option<Uuid>,
    /// Newest first.
    pub descending: bool,
    /// Only this owner's orders (admins; a user may name only themselves).
    pub owner: Option<String>,
}

/// Orders counted by outcome, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct OrderMetrics {
    placed: Counter,
    placed_value_cents: Counter,
    cancelled: Counter,
    fulfilled: Counter,
}

impl OrderMetrics {
    /// Registers `orders_placed_total`, `orders_placed_value_cents_total`,
    /// `orders_cancelled_total` and `orders_fulfilled_total`.
    pub fn register(&self, metrics: &service_kit::metrics::Metrics) {
        metrics.register("orders_placed", "Orders placed", self.placed.clone());
        metrics.register(
            "orders_placed_value_cents",
            "Total value of the orders placed, in cents",
            self.placed_value_cents.clone(),
        );
        metrics.register(
            "orders_cancelled",
            "Orders cancelled",
            self.cancelled.clone(),
        );
        metrics.register(
            "orders_fulfilled",
            "Orders fulfilled",
            self.fulfilled.clone(),
        );
    }
}

/// The orders service's operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderService {
    store: OrderStore,
    /// Products, with orders' own service token.
    products: ProductsClient,
    /// Idempotency keys whose first request is running.
    in_flight: InFlight,
    /// Products the feed said were archived, shared with the follower.
    archived: ArchivedProducts,
    /// Outcomes counted for `/metrics`.
    metrics: OrderMetrics,
    /// Settles the reservations orders owes products a call for.
    settler: Settler,
    /// One figure computation at a time: each reads every order it covers (a scan of the whole
    /// store without an owner), on a blocking thread so that no HTTP worker waits for it.
    stats_turn: Arc<tokio::sync::Semaphore>,
}

impl OrderService {
    /// The operations over `store`, pricing with `products`.
    pub fn new(
        store: OrderStore,
        products: ProductsClient,
        archived: ArchivedProducts,
        settler: Settler,
    ) -> Self {
        Self {
            store,
            products,
            in_flight: InFlight::default(),
            archived,
            metrics: OrderMetrics::default(),
            settler,
            stats_turn: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// The outcome counters (to register in the app's registry).
    pub fn metrics(&self) -> &OrderMetrics {
        &self.metrics
    }

    /// The owner whose orders `caller` asks for: themselves, or (admins) `owner` or everyone.
    fn owner_for(caller: &Caller, owner: Option<String>) -> Result<Option<String>, OrderError> {
        match owner {
            Some(o) if !caller.admin && o != caller.user => Err(OrderError::NotYours),
            Some(o) => Ok(Some(o)),
            None if caller.admin => Ok(None),
            None => Ok(Some(caller.user.clone())),
        }
    }

    /// Figures of the live orders `caller` may ask for, created within `range`.
    pub async fn stats(
        &self,
        caller: &Caller,
        owner: Option<String>,
        range: Range,
    ) -> Result<Stats, OrderError> {
        let owner = Self::owner_for(caller, owner)?;
        let store = self.store.clone();
        let _turn = self.stats_turn.acquire().await.expect("never closed");
        let figures = tokio::task::spawn_blocking(move || -> Result<Stats, OrderError> {
            let live = |r: &Arc<Record<Order>>| !is_deleted(r);
            Ok(match owner {
                Some(owner) => {
                    let records = store.lookup(BY_OWNER, &IndexKey::from(owner.as_str()))?;
                    figures(
                        records
                            .iter()
                            .filter(|r| live(r))
                            .map(|r| (&r.data, r.created_at)),
                        range,
                    )
                }
                None => {
                    let records: Vec<_> = store.all().filter(live).collect();
                    figures(records.iter().map(|r| (&r.data, r.created_at)), range)
                }
            })
        });
        figures.await.expect("the figures task does not panic")
    }

    /// The change feed of every order (callers filter by [`Order::is_visible_to`]).
    pub fn changes(&self) -> ChangeFeed<Order> {
        ChangeFeed::new(self.store.clone())
    }

    /// Prices `items` with ONE lookup call to products.
    async fn price(
        &self,
        items: &[RequestedItem],
        request_id: Option<&str>,
    ) -> Result<Priced, OrderError> {
        let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
        let lookup = self
            .products
            .lookup(&ids, request_id)
            .await
            .map_err(OrderError::ProductsUnavailable)?;
        Ok(price(items, &lookup)?)
    }

    /// Holds `lines` at products under the new reservation `id`.
    async fn hold(
        &self,
        id: Uuid,
        lines: Vec<ReserveLine>,
        request_id: Option<&str>,
    ) -> Result<ReservationBody, OrderError> {
        let outcome = self
            .products
            .reserve(id, &lines, None, request_id)
            .await
            .map_err(OrderError::ProductsUnavailable)?;
        match outcome {
            ReserveOutcome::Held(reservation) => Ok(reservation),
            ReserveOutcome::OutOfStock(short) => Err(OrderError::OutOfStock(short)),
            ReserveOutcome::Unavailable { unknown, archived } => {
                Err(PricingError::Unavailable { unknown, archived }.into())
            }
        }
    }

    /// Reserves `items` at products under `id` and prices them from its answer.
    async fn reserve(
        &self,
        id: Uuid,
        items: &[RequestedItem],
        request_id: Option<&str>,
    ) -> Result<Priced, OrderError> {
        let lines = items
            .iter()
            .map(|i| ReserveLine::from(Units::from(*i)))
            .collect();
        let reservation = self.hold(id, lines, request_id).await?;
        price_reserved(items, &reservation).map_err(|e| {
            self.settler.release_orphan(id);
            e.into()
        })
    }

    /// Reserves `missing` units (if any) under a new reservation; returns its id with them.
    async fn reserve_missing(
        &self,
        missing: Vec<Units>,
        request_id: Option<&str>,
    ) -> Result<Option<(Uuid, Vec<Units>)>, OrderError> {
        if missing.is_empty() {
            return Ok(None);
        }
        let id = Uuid::now_v7();
        let lines = missing.iter().copied().map(ReserveLine::from).collect();
        self.hold(id, lines, request_id).await?;
        Ok(Some((id, missing)))
    }

    /// Places an order of `items` for `caller`, once per claim.
    pub async fn place(
        &self,
        caller: &Caller,
        items: Vec<RequestedItem>,
        claim: Option<Claim>,
        request_id: Option<&str>,
    ) -> Result<Placement, OrderError> {
        let created = idempotency::create_once(
            &self.store,
            &self.in_flight,
            BY_IDEMPOTENCY_KEY,
            claim,
            |o: &Order| o.created_by_key.as_ref().map(|k| k.fingerprint.as_str()),
            |claim| async move {
                let id = Uuid::now_v7();
                let priced = self.reserve(id, &items, request_id).await?;
                let created_by_key = claim.map(|c| CreatedByKey {
                    owner: c.owner,
                    key: c.key,
                    fingerprint: c.fingerprint,
                    items: priced.lines.clone(),
                    total: priced.total,
                });
                let order = Order::placed(caller.user.clone(), priced, created_by_key, id);
                match self.store.create_with_id(id, order).await {
                    Ok(order) => {
                        self.settler.wake();
                        Ok(order)
                    }
                    Err(e) => {
                        self.settler.release_orphan(id);
                        Err(OrderError::from(e))
                    }
                }
            },
        )
        .await?;
        let order = match created {
            Created::Replayed(first) => {
                return Ok(Placement {
                    order: Arc::new(Record {
                        version: 1,
                        updated_at: first.created_at,
                        archived: false,
                        data: first.data.as_first_answered(),
                        ..(*first).clone()
                    }),
                    replayed: true,
                });
            }
            Created::New(order) => order,
        };
        // A product archived while this order was being placed: the follower may have held
        // that product's orders before this one was stored.
        self.metrics.placed.inc();
        self.metrics
            .placed_value_cents
            .inc_by(u64::try_from(order.data.total.cents()).unwrap_or(0));
        let products = order.data.items.iter().map(|i| i.product_id);
        let Some(product) = self.archived.any_of(products) else {
            return Ok(Placement {
                order,
                replayed: false,
            });
        };
        let reason =
            format!("product {product} was archived while the order was placed; review it");
        let held = self
            .store
            .update(order.id, Some(order.version), move |o: &Order| {
                Ok::<_, StoreError>(o.held(reason).unwrap_or_else(|| o.clone()))
            })
            .await?;
        Ok(Placement {
            order: held,
            replayed: false,
        })
    }

    /// The caller's order (admins: any), live.
    pub fn get(&self, caller: &Caller, id: Uuid) -> Result<Arc<Record<Order>>, OrderError> {
        let order = self.store.get(id)?;
        if !order.data.is_visible_to(caller) {
            return Err(OrderError::NotFound(id));
        }
        if is_deleted(&order) {
            return Err(OrderError::Deleted(id));
        }
        Ok(order)
    }

    /// A page of the orders `caller` may see.
    pub async fn list(&self, caller: &Caller, listing: Listing) -> Result<Page<Order>, OrderError> {
        let mut query = Query::new()
            .sort(SortKey::CreatedAt, listing.descending)
            .limit(listing.limit)
            .cursor(listing.cursor);
        // The narrowest index first; the other conditions filter its matches.
        let (status, product) = (listing.status, listing.product);
        let owner = Self::owner_for(caller, listing.owner)?;
        query = match (&owner, product, status) {
            (Some(owner), _, _) => query.index_eq(BY_OWNER, owner.as_str()),
            (None, Some(p), _) => query.index_eq(BY_PRODUCT, p),
            (None, None, Some(s)) => query.index_eq(BY_STATUS, s.as_str()),
            (None, None, None) => query,
        };
        query = query.filter(move |r: &Record<Order>| {
            !is_deleted(r)
                && status.is_none_or(|s| r.data.status == s)
                && product.is_none_or(|p| r.data.items.iter().any(|i| i.product_id == p))
        });
        Ok(self.store.list_async(query).await?)
    }

    /// Changes an order's lines and/or status (see the module's rules).
    pub async fn change(
        &self,
        caller: &Caller,
        id: Uuid,
        expected: Option<IfMatch>,
        change: Change,
        request_id: Option<&str>,
    ) -> Result<Arc<Record<Order>>, OrderError> {
        for _ in 0..ATTEMPTS {
            let current = self.get(caller, id)?;
            Self::check(expected.as_ref(), current.version)?;
            let order = &current.data;
            order.check_items_change(&change)?;
            let to = order.transition(&change)?;
            let releases_hold = order.releases_hold(to, &change);
            let lines = match &change.items {
                Some(items) => Some(self.price(items, request_id).await?),
                None => None,
            };
            // Units the lines need beyond what the order holds (more of a product, a new
            // product, or all of them after a lapsed hold) are reserved first, under a new id;
            // units no longer needed are given back by the settler once the order is stored.
            let missing = match &change.items {
                Some(items) => order.missing(items),
                None if releases_hold => order.missing(&order.requested()),
                None => Vec::new(),
            };
            if releases_hold && change.items.is_none() && missing.is_empty() {
                self.price(&order.requested(), request_id).await?;
            }
            let reserved = self.reserve_missing(missing, request_id).await?;
            let reservation = reserved.as_ref().map(|(id, _)| *id);
            let next = order.changed(lines, reserved, to);
            let owes = !next.is_settled();
            match self
                .store
                .update(id, Some(current.version), move |_: &Order| {
                    Ok::<_, StoreError>(next)
                })
                .await
            {
                Ok(changed) => {
                    if owes {
                        self.settler.wake();
                    }
                    if to == Some(Status::Cancelled) {
                        self.metrics.cancelled.inc();
                    } else if to == Some(Status::Fulfilled) {
                        self.metrics.fulfilled.inc();
                    }
                    return Ok(changed);
                }
                // Someone changed it meanwhile; without If-Match, recompute on the new version.
                Err(e) => {
                    if let Some(id) = reservation {
                        self.settler.release_orphan(id);
                    }
                    match e {
                        StoreError::Conflict { actual, .. } if expected.is_none() => {
                            self.caught_up(id, actual).await;
                            continue;
                        }
                        e => return Err(e.into()),
                    }
                }
            }
        }
        Err(OrderError::KeepsChanging)
    }

    /// Deletes an order (a tombstone, once it owes products nothing), if it is still at
    /// `expected` (when given).
    pub async fn delete(
        &self,
        caller: &Caller,
        id: Uuid,
        expected: Option<IfMatch>,
    ) -> Result<(), OrderError> {
        for _ in 0..ATTEMPTS {
            let current = self.get(caller, id)?;
            Self::check(expected.as_ref(), current.version)?;
            let version = Some(current.version);
            let deleted = current.data.deleted();
            let outcome = if deleted.is_settled() {
                self.store.archive(id, version).await
            } else {
                self.store.replace(id, version, deleted).await
            };
            match outcome {
                Ok(r) => {
                    if !r.archived {
                        self.settler.wake();
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict { actual, .. }) if expected.is_none() => {
                    self.caught_up(id, actual).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(OrderError::KeepsChanging)
    }

    /// Refuses a change whose `If-Match` does not name the order's current `version`.
    fn check(expected: Option<&IfMatch>, version: u64) -> Result<(), OrderError> {
        match expected {
            Some(cond) if !cond.matches(version) => Err(OrderError::Stale {
                current: version,
                expected: cond.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Waits (briefly) until reads show order `id` at the `version` that won a race.
    async fn caught_up(&self, id: Uuid, version: u64) {
        self.store.wait_readable(id, version, CATCH_UP).await;
    }
}
