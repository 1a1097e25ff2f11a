//! What products does, as operations on validated input; every business rule of the service is
//! here or in the [`domain`](crate::domain) types these operations take:
//!
//! - A product is a name (trimmed, 1 to 200 characters, no control characters) and an exact
//!   price (at least 0, at most two fraction digits, at most 1,000,000,000,000.00).
//! - Every change bumps the product's version; a change or an archive may require the version
//!   the caller last saw (`If-Match`) and is refused if it moved on.
//! - A create with an `Idempotency-Key` happens once per caller and key: a retry with the same
//!   body gets the first answer again, as it was (version 1, the name and price it was created
//!   with), even after later changes or a restart; the same key with another body is refused,
//!   and so is a retry while the first is still running.
//! - Deleting archives: the product stays as a tombstone, reads of it say it is gone, lists
//!   leave it out, it can no longer change, and orders refuse it.
//! - Lists go a page at a time (at most 100) in creation, name (case-insensitive) or price
//!   order, filtered by price range and by a case-insensitive name fragment.
//! - A lookup answers up to [`MAX_LOOKUP`] ids at once, each once, in the order first asked,
//!   sorted into live products, unknown ids and archived ids.
//! - A product may track stock (a whole number of units, at least what is reserved) or not
//!   (`null`: it never runs out). Stock changes by an adjustment (a signed delta with a reason,
//!   kept as a record of its own and written in one atomic batch with the product, idempotent
//!   with an `Idempotency-Key`), refused if the product does not track stock or if it would
//!   leave fewer units than are reserved; or by a change that names the version it is based on
//!   (`If-Match` is required to set stock directly, so that it cannot overwrite an adjustment
//!   made meanwhile).
//! - A reservation holds units of several products for one order, under the order's id, all
//!   or nothing: either every line fits in its product's available units and all are held in
//!   one atomic batch with the reservation record, or nothing is held and every short line is
//!   named with what was requested and what is available (unknown and archived products are
//!   refused as such). The same reservation asked again answers the same; fewer units of the
//!   same products under the same id shrink it (held or committed: the difference goes back, in
//!   one batch, and asking again for the smaller lines answers the same); other lines under the
//!   same id are refused. Committing turns the hold into a sale (the units leave stock);
//!   releasing gives the units back (also after a commit: the order was cancelled); both are
//!   idempotent. A reservation still held when its time to live runs out is released by
//!   products on its own (expired), and can then no longer be committed. Products that do not
//!   track stock never run short.

use std::ops::Bound;
use std::sync::Arc;

use products_api::MAX_LOOKUP;
use service_kit::http::IfMatch;
use service_kit::idempotency::{self, Claim, Created, IdempotencyError, InFlight};
use service_kit::sse::ChangeFeed;
use store_actor::{IndexKey, Op, Page, Query, Record, SortKey, StoreError};
use uuid::Uuid;

use crate::domain::{
    AdjustStock, Adjustment, Entry, IdempotencyRecord, NewProduct, Product, ProductPatch,
    StockRefusal,
};
use crate::store::{BY_ADJUSTMENT_KEY, BY_IDEMPOTENCY_KEY, BY_NAME, BY_PRICE, ProductStore};

mod reservations;

pub use reservations::{Reserve, Reserved};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The product is archived.
    #[error("product {0} was archived")]
    Archived(Uuid),
    /// A lookup asked for no ids or more than [`MAX_LOOKUP`].
    #[error("give between 1 and {MAX_LOOKUP} ids")]
    LookupSize,
    /// A commit of many asked for no ids or more than [`products_api::MAX_COMMIT`].
    #[error("give between 1 and {} reservation ids", products_api::MAX_COMMIT)]
    CommitSize,
    /// No such product (the id may name another kind of record).
    #[error("{0} does not exist")]
    NotFound(Uuid),
    /// `If-Match` does not name the current version.
    #[error(
        "the product is at version {current} (ETag \"{current}\"); If-Match asked for {expected}"
    )]
    Stale {
        /// The current version.
        current: u64,
        /// The `If-Match` the caller sent.
        expected: String,
    },
    /// The stock cannot change that way.
    #[error(transparent)]
    Stock(#[from] StockRefusal),
    /// Some lines cannot be held: each with what was requested and what is available.
    #[error("out of stock: {}", describe_short(.0))]
    OutOfStock(Vec<crate::domain::ShortLine>),
    /// Some lines name products that do not exist or are archived.
    #[error("{}", describe_unavailable(.unknown, .archived))]
    Unavailable {
        /// Ids of no product.
        unknown: Vec<Uuid>,
        /// Ids of archived products.
        archived: Vec<Uuid>,
    },
    /// No reservation has this id.
    #[error("reservation {0} does not exist")]
    NoReservation(Uuid),
    /// The reservation cannot do that in its state, or the id is taken by other lines.
    #[error("{0}")]
    ReservationConflict(String),
    /// Setting stock directly needs the version it is based on.
    #[error("send If-Match with the product's ETag to set its stock")]
    StockNeedsIfMatch,

    /// An idempotent create was refused.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The store refused or failed: unknown id, stale version, archived while changing, a
    /// malformed cursor, or storage that no longer accepts writes.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A record of the products store (the service hands out only products and adjustments, each
/// where it says so).
pub type EntryRecord = Arc<Record<Entry>>;

/// A created product, as the creator is answered.
#[derive(Debug)]
pub struct Creation {
    /// The product as created (for a replay: as first answered).
    pub product: EntryRecord,
    /// Whether this answers a retry of an earlier create.
    pub replayed: bool,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Creation time.
    CreatedAt,
    /// Name, case-insensitively.
    Name,
    /// Price.
    Price,
}

/// A validated list request.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Page size, 1 to 100.
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// The order.
    pub sort: Sort,
    /// Reverse it.
    pub descending: bool,
    /// Lowest price, in cents.
    pub min_cents: Option<i64>,
    /// Highest price, in cents.
    pub max_cents: Option<i64>,
    /// Only names containing this (already lowercased).
    pub name_contains: Option<String>,
}

/// Every id of a lookup, sorted out.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Live products, in the order first asked.
    pub found: Vec<EntryRecord>,
    /// Ids that never existed.
    pub unknown: Vec<Uuid>,
    /// Ids of archived products.
    pub archived: Vec<Uuid>,
}

/// The products service's operations over its store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProductService {
    store: ProductStore,
    /// Idempotency keys whose first request is running.
    in_flight: InFlight,
    /// The longest a reservation is held (and the default).
    reservation_ttl: std::time::Duration,
    /// `reservations_total{outcome}`: held, committed, released, expired, refused.
    reservations: prometheus_client::metrics::family::Family<
        Outcome,
        prometheus_client::metrics::counter::Counter,
    >,
}

/// The `outcome` label of the reservation counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct Outcome {
    outcome: &'static str,
}

impl ProductService {
    /// The operations over `store`, holding reservations for at most `reservation_ttl`.
    pub fn new(store: ProductStore, reservation_ttl: std::time::Duration) -> Self {
        Self {
            store,
            in_flight: InFlight::default(),
            reservation_ttl,
            reservations: Default::default(),
        }
    }

    /// Registers `reservations_total{outcome}` in the app's registry.
    pub fn register_metrics(&self, metrics: &service_kit::metrics::Metrics) {
        metrics.register(
            "reservations",
            "Reservations by outcome: held, committed, released, expired, shrunk, refused (out of stock)",
            self.reservations.clone(),
        );
    }

    fn count(&self, outcome: &'static str) {
        self.reservations.get_or_create(&Outcome { outcome }).inc();
    }

    /// The change feed (creates, updates, archives of products; adjustments show as updates
    /// of their product, next to the adjustment's own record).
    pub fn changes(&self) -> ChangeFeed<Entry> {
        ChangeFeed::new(self.store.clone())
    }

    /// Creates a product, once per claim (see the module's rules).
    pub async fn create(
        &self,
        new: NewProduct,
        claim: Option<Claim>,
    ) -> Result<Creation, ProductError> {
        let first_answer = new.clone();
        let created = idempotency::create_once(
            &self.store,
            &self.in_flight,
            BY_IDEMPOTENCY_KEY,
            claim,
            |e: &Entry| fingerprint(e.as_product().and_then(|p| p.created_by_key.as_ref())),
            |claim| async move {
                let product = Product {
                    name: new.name,
                    price: new.price,
                    created_by_key: claim.map(idempotency_record),
                    stock: new.stock,
                    reserved: 0,
                };
                Ok::<_, ProductError>(self.store.create(Entry::Product(product)).await?)
            },
        )
        .await?;
        Ok(match created {
            Created::New(product) => Creation {
                product,
                replayed: false,
            },
            // The first answer, as it was: the same body created version 1 at `created_at`.
            Created::Replayed(first) => Creation {
                product: Arc::new(Record {
                    id: first.id,
                    version: 1,
                    created_at: first.created_at,
                    updated_at: first.created_at,
                    archived: false,
                    data: Entry::Product(Product {
                        name: first_answer.name,
                        price: first_answer.price,
                        created_by_key: None,
                        stock: first_answer.stock,
                        reserved: 0,
                    }),
                }),
                replayed: true,
            },
        })
    }

    /// A live product.
    pub fn get(&self, id: Uuid) -> Result<EntryRecord, ProductError> {
        let product = self.product(id)?;
        if product.archived {
            return Err(ProductError::Archived(id));
        }
        Ok(product)
    }

    /// A product, live or archived (an adjustment's id is no product's).
    fn product(&self, id: Uuid) -> Result<EntryRecord, ProductError> {
        match self.store.get(id) {
            Ok(r) if r.data.as_product().is_some() => Ok(r),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(ProductError::NotFound(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// A page of live products.
    pub async fn list(&self, listing: Listing) -> Result<Page<Entry>, ProductError> {
        let sort = match listing.sort {
            Sort::CreatedAt => SortKey::CreatedAt,
            Sort::Name => SortKey::Index(BY_NAME.into()),
            Sort::Price => SortKey::Index(BY_PRICE.into()),
        };
        let mut query = Query::new()
            .sort(sort, listing.descending)
            .limit(listing.limit)
            .cursor(listing.cursor);
        // A price range is served by the price index; a name condition is checked on the
        // records walked (within the store's per-call budget).
        let by_price = listing.min_cents.is_some() || listing.max_cents.is_some();
        if by_price {
            let bound =
                |c: Option<i64>| c.map_or(Bound::Unbounded, |c| Bound::Included(IndexKey::Int(c)));
            query = query.index_range(
                BY_PRICE,
                (bound(listing.min_cents), bound(listing.max_cents)),
            );
        }
        // Only products have prices: through the price index, only a name condition needs a
        // filter (and without one the store can order the page without reading every match).
        let needle = listing.name_contains;
        if needle.is_some() || !by_price {
            query = query.filter(move |r: &Record<Entry>| {
                r.data.as_product().is_some_and(|p| {
                    needle
                        .as_deref()
                        .is_none_or(|n| p.name.as_str().to_lowercase().contains(n))
                })
            });
        }
        Ok(self.store.list_async(query).await?)
    }

    /// The version a change of product `id` must apply at: the current one if `expected`
    /// (`If-Match`) names it, none without it. An unknown or archived product is refused first,
    /// then a precondition that does not match (RFC 9110 §13.2.2).
    fn version_for(
        &self,
        id: Uuid,
        expected: Option<&IfMatch>,
    ) -> Result<Option<u64>, ProductError> {
        let current = self.product(id)?;
        if current.archived {
            return Err(ProductError::Archived(id));
        }
        match expected {
            None => Ok(None),
            Some(cond) if cond.matches(current.version) => Ok(Some(current.version)),
            Some(cond) => Err(ProductError::Stale {
                current: current.version,
                expected: cond.to_string(),
            }),
        }
    }

    /// Changes a product's name, price and/or stock, if `expected` names its current version
    /// (required to set the stock).
    pub async fn change(
        &self,
        id: Uuid,
        expected: Option<IfMatch>,
        patch: ProductPatch,
    ) -> Result<EntryRecord, ProductError> {
        if patch.stock.is_some() && expected.is_none() {
            return Err(ProductError::StockNeedsIfMatch);
        }
        let version = self.version_for(id, expected.as_ref())?;
        let changed = self
            .store
            .update(id, version, move |current: &Entry| match current {
                Entry::Product(p) => patch.apply(p).map(Entry::Product),
                _ => unreachable!("checked to be a product"),
            })
            .await;
        changed.map_err(refusal)
    }

    /// Archives a product, if `expected` (when given) names its current version.
    pub async fn archive(&self, id: Uuid, expected: Option<IfMatch>) -> Result<(), ProductError> {
        let version = self.version_for(id, expected.as_ref())?;
        self.store.archive(id, version).await?;
        Ok(())
    }

    /// Adjusts a product's stock by `adjust.delta`, once per claim: the adjustment record and
    /// the product are written in one batch. Answers the adjustment (for a replay: the first).
    pub async fn adjust(
        &self,
        id: Uuid,
        adjust: AdjustStock,
        claim: Option<Claim>,
    ) -> Result<Creation, ProductError> {
        let created = idempotency::create_once(
            &self.store,
            &self.in_flight,
            BY_ADJUSTMENT_KEY,
            claim,
            |e: &Entry| fingerprint(e.as_adjustment().and_then(|a| a.created_by_key.as_ref())),
            |claim| self.apply_adjustment(id, adjust, claim.map(idempotency_record)),
        )
        .await?;
        Ok(match created {
            Created::New(adjustment) => Creation {
                product: adjustment,
                replayed: false,
            },
            Created::Replayed(adjustment) => Creation {
                product: adjustment,
                replayed: true,
            },
        })
    }

    async fn apply_adjustment(
        &self,
        id: Uuid,
        adjust: AdjustStock,
        key: Option<IdempotencyRecord>,
    ) -> Result<EntryRecord, ProductError> {
        self.get(id)?;
        let delta = adjust.delta;
        let adjustment = Adjustment {
            product_id: id,
            delta,
            reason: adjust.reason,
            created_by_key: key,
        };
        // The stock is checked and changed inside the store's actor, in the same batch as the
        // adjustment record: concurrent adjustments cannot both pass the check.
        let batch = vec![
            Op::update(id, None, move |current: &Entry| match current {
                Entry::Product(p) => p.adjusted(delta).map(Entry::Product),
                _ => Err(StockRefusal::NotTracked),
            }),
            Op::create(Entry::Adjustment(adjustment)),
        ];
        match self.store.batch(batch).await {
            Ok(mut written) => Ok(written.remove(1)),
            Err(StoreError::BatchFailed { source, .. }) => Err(refusal(*source)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sorts `ids` into live, unknown and archived products.
    pub fn lookup(&self, ids: Vec<Uuid>) -> Result<Lookup, ProductError> {
        if ids.is_empty() || ids.len() > MAX_LOOKUP {
            return Err(ProductError::LookupSize);
        }
        // Each id once, in the order first asked.
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<_> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        let mut lookup = Lookup::default();
        for (id, found) in ids.iter().zip(self.store.get_many(&ids)?) {
            match found {
                Some(r) if r.data.as_product().is_none() => lookup.unknown.push(*id),
                None => lookup.unknown.push(*id),
                Some(r) if r.archived => lookup.archived.push(*id),
                Some(r) => lookup.found.push(r),
            }
        }
        Ok(lookup)
    }
}

fn idempotency_record(claim: Claim) -> IdempotencyRecord {
    IdempotencyRecord {
        owner: claim.owner,
        key: claim.key,
        fingerprint: claim.fingerprint,
    }
}

fn fingerprint(key: Option<&IdempotencyRecord>) -> Option<&str> {
    key.map(|k| k.fingerprint.as_str())
}

/// A stock refusal raised inside the store's actor, as itself; other store errors unchanged.
fn refusal(e: StoreError) -> ProductError {
    match e {
        StoreError::Rejected(reason) => match reason.downcast::<StockRefusal>() {
            Ok(refusal) => ProductError::Stock(*refusal),
            Err(other) => StoreError::Rejected(other).into(),
        },
        StoreError::Archived { id } => ProductError::Archived(id),
        other => other.into(),
    }
}

fn describe_short(lines: &[crate::domain::ShortLine]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "product {} has {} available, {} requested",
                l.product_id, l.available, l.requested
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_unavailable(unknown: &[Uuid], archived: &[Uuid]) -> String {
    let join = |ids: &[Uuid]| {
        ids.iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!("unknown products: {}", join(unknown)));
    }
    if !archived.is_empty() {
        parts.push(format!("archived products: {}", join(archived)));
    }
    format!("the reservation cannot be made: {}", parts.join("; "))
}
