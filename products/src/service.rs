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

use std::convert::Infallible;
use std::sync::Arc;

use products_api::MAX_LOOKUP;
use service_kit::idempotency::{self, Claim, Created, IdempotencyError, InFlight};
use service_kit::sse::ChangeFeed;
use store_actor::{Page, Query, Record, SortKey, StoreError};
use uuid::Uuid;

use crate::domain::{IdempotencyRecord, NewProduct, Product, ProductPatch};
use crate::store::{BY_IDEMPOTENCY_KEY, BY_NAME, BY_PRICE, ProductStore};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The product is archived.
    #[error("product {0} was archived")]
    Archived(Uuid),
    /// A lookup asked for no ids or more than [`MAX_LOOKUP`].
    #[error("give between 1 and {MAX_LOOKUP} ids")]
    LookupSize,
    /// An idempotent create was refused.
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// The store refused or failed: unknown id, stale version, archived while changing, a
    /// malformed cursor, or storage that no longer accepts writes.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// A created product, as the creator is answered.
#[derive(Debug)]
pub struct Creation {
    /// The product as created (for a replay: as first answered).
    pub product: Arc<Record<Product>>,
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
    pub found: Vec<Arc<Record<Product>>>,
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
}

impl ProductService {
    /// The operations over `store`.
    pub fn new(store: ProductStore) -> Self {
        Self {
            store,
            in_flight: InFlight::default(),
        }
    }

    /// The change feed (creates, updates, archives).
    pub fn changes(&self) -> ChangeFeed<Product> {
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
            |p: &Product| p.created_by_key.as_ref().map(|k| k.fingerprint.as_str()),
            |claim| async move {
                let product = Product {
                    name: new.name,
                    price: new.price,
                    created_by_key: claim.map(|c| IdempotencyRecord {
                        owner: c.owner,
                        key: c.key,
                        fingerprint: c.fingerprint,
                    }),
                };
                Ok::<_, ProductError>(self.store.create(product).await?)
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
                    data: Product {
                        name: first_answer.name,
                        price: first_answer.price,
                        created_by_key: None,
                    },
                }),
                replayed: true,
            },
        })
    }

    /// A live product.
    pub fn get(&self, id: Uuid) -> Result<Arc<Record<Product>>, ProductError> {
        let product = self.store.get(id)?;
        if product.archived {
            return Err(ProductError::Archived(id));
        }
        Ok(product)
    }

    /// A page of live products.
    pub fn list(&self, listing: Listing) -> Result<Page<Product>, ProductError> {
        let sort = match listing.sort {
            Sort::CreatedAt => SortKey::CreatedAt,
            Sort::Name => SortKey::Index(BY_NAME.into()),
            Sort::Price => SortKey::Index(BY_PRICE.into()),
        };
        let mut query = Query::new()
            .sort(sort, listing.descending)
            .limit(listing.limit)
            .cursor(listing.cursor);
        let (min, max, needle) = (listing.min_cents, listing.max_cents, listing.name_contains);
        if min.is_some() || max.is_some() || needle.is_some() {
            query = query.filter(move |r: &Record<Product>| {
                let cents = r.data.price.cents();
                min.is_none_or(|m| cents >= m)
                    && max.is_none_or(|m| cents <= m)
                    && needle
                        .as_deref()
                        .is_none_or(|n| r.data.name.as_str().to_lowercase().contains(n))
            });
        }
        Ok(self.store.list(&query)?)
    }

    /// Changes a product's name and/or price, if it is still at `expected` (when given).
    pub async fn change(
        &self,
        id: Uuid,
        expected: Option<u64>,
        patch: ProductPatch,
    ) -> Result<Arc<Record<Product>>, ProductError> {
        let changed = self
            .store
            .update(id, expected, move |current: &Product| {
                Ok::<_, Infallible>(patch.apply(current))
            })
            .await?;
        Ok(changed)
    }

    /// Archives a product, if it is still at `expected` (when given).
    pub async fn archive(&self, id: Uuid, expected: Option<u64>) -> Result<(), ProductError> {
        self.store.archive(id, expected).await?;
        Ok(())
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
        for (id, found) in ids.iter().zip(self.store.get_many(&ids)) {
            match found {
                None => lookup.unknown.push(*id),
                Some(r) if r.archived => lookup.archived.push(*id),
                Some(r) => lookup.found.push(r),
            }
        }
        Ok(lookup)
    }
}
