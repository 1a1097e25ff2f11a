//! Atomic batches: [`Op`], one mutation of a [`Store::batch`](crate::Store::batch), and how the
//! actor evaluates a mutation against a state (shared with the single-mutation messages, so a
//! batch's operations behave exactly like the corresponding single calls).

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::Data;
use crate::actor::Change;
use crate::error::{Result, StoreError};
use crate::record::{EventKind, Record};
use crate::state::State;

/// One mutation of an atomic batch (see [`Store::batch`](crate::Store::batch)).
///
/// The constructors mirror the [`Store`](crate::Store) methods of the same names and fail the
/// same ways, but run only as part of a batch, where each sees the state left by the batch's
/// earlier operations.
///
/// ```
/// use store_actor::Op;
/// # let (a, b) = (uuid::Uuid::nil(), uuid::Uuid::max());
/// let ops: Vec<Op<u32>> = vec![
///     Op::create(7),
///     Op::update(a, Some(3), |n: &u32| n.checked_sub(2).ok_or("not enough left")),
///     Op::replace(b, None, 0),
///     Op::archive(b, None),
/// ];
/// assert_eq!(format!("{:?}", ops[3]), format!("Op::Archive({b})"));
/// ```
pub struct Op<T: Data>(pub(crate) Mutation<T>);

/// What an [`Op`] (or a single-mutation message) asks the actor to do.
pub(crate) enum Mutation<T: Data> {
    /// Creates a record (with `id`, or a fresh time-ordered one).
    Create { id: Option<Uuid>, data: T },
    /// Changes a live record, optionally only at `expected` version.
    Update {
        id: Uuid,
        expected: Option<u64>,
        change: Change<T>,
    },
    /// Archives a live record, optionally only at `expected` version.
    Archive { id: Uuid, expected: Option<u64> },
}

impl<T: Data> Op<T> {
    /// Creates a record with a fresh time-ordered (v7) id, like [`Store::create`](crate::Store::create).
    pub fn create(data: T) -> Self {
        Op(Mutation::Create { id: None, data })
    }

    /// Creates a record with the given id, like
    /// [`Store::create_with_id`](crate::Store::create_with_id): the batch fails with
    /// [`StoreError::AlreadyExists`] if the id is taken, also by an earlier op of the batch.
    pub fn create_with_id(id: Uuid, data: T) -> Self {
        Op(Mutation::Create { id: Some(id), data })
    }

    /// Changes a live record, like [`Store::update`](crate::Store::update): `change` runs inside
    /// the actor on the record as the batch's earlier operations left it, so a check it makes
    /// ("enough left?") is atomic with the whole batch. Its error fails the batch with
    /// [`StoreError::Rejected`]; with `expected`, the version must match
    /// ([`StoreError::Conflict`]).
    pub fn update<F, E>(id: Uuid, expected: Option<u64>, change: F) -> Self
    where
        F: FnOnce(&T) -> std::result::Result<T, E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let change: Change<T> = Box::new(move |cur: &T| change(cur).map_err(Into::into));
        Op(Mutation::Update {
            id,
            expected,
            change,
        })
    }

    /// Replaces a live record's data, like [`Store::replace`](crate::Store::replace).
    pub fn replace(id: Uuid, expected: Option<u64>, data: T) -> Self {
        Self::update(id, expected, move |_| Ok::<_, StoreError>(data))
    }

    /// Archives a live record, like [`Store::archive`](crate::Store::archive).
    pub fn archive(id: Uuid, expected: Option<u64>) -> Self {
        Op(Mutation::Archive { id, expected })
    }
}

impl<T: Data> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Mutation::Create { id: None, .. } => write!(f, "Op::Create"),
            Mutation::Create { id: Some(id), .. } => write!(f, "Op::CreateWithId({id})"),
            Mutation::Update { id, expected, .. } => {
                write!(f, "Op::Update({id}, expected: {expected:?})")
            }
            Mutation::Archive { id, .. } => write!(f, "Op::Archive({id})"),
        }
    }
}

/// The live record `id` of `state`, checked against `expected`.
fn live<T: Data>(state: &State<T>, id: Uuid, expected: Option<u64>) -> Result<Arc<Record<T>>> {
    let rec = state.get(&id)?.ok_or(StoreError::NotFound { id })?;
    if rec.archived {
        return Err(StoreError::Archived { id });
    }
    match expected {
        Some(v) if v != rec.version => Err(StoreError::Conflict {
            id,
            expected: v,
            actual: rec.version,
        }),
        _ => Ok(rec),
    }
}

/// Validates `mutation` against `state` and computes the record it produces (changing nothing):
/// the record and what happened to it, or why the mutation is refused. `now` is the time the
/// mutation is made at (never earlier than the record's last change).
pub(crate) fn prepare<T: Data>(
    state: &State<T>,
    mutation: Mutation<T>,
    now: OffsetDateTime,
) -> Result<(EventKind, Record<T>)> {
    match mutation {
        Mutation::Create { id, data } => {
            let id = id.unwrap_or_else(Uuid::now_v7);
            if state.records.contains_key(&id) {
                return Err(StoreError::AlreadyExists { id });
            }
            let record = Record {
                id,
                version: 1,
                created_at: now,
                updated_at: now,
                archived: false,
                data,
            };
            Ok((EventKind::Created, record))
        }
        Mutation::Update {
            id,
            expected,
            change,
        } => {
            let cur = live(state, id, expected)?;
            // A panicking change must not take the actor (and every other caller) down with it.
            let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(&cur.data)))
                .unwrap_or_else(|_| Err("the update function panicked".into()))
                .map_err(StoreError::Rejected)?;
            let record = Record {
                id,
                version: cur.version + 1,
                created_at: cur.created_at,
                updated_at: now.max(cur.updated_at),
                archived: false,
                data,
            };
            Ok((EventKind::Updated, record))
        }
        Mutation::Archive { id, expected } => {
            let cur = live(state, id, expected)?;
            let record = Record {
                id,
                version: cur.version + 1,
                created_at: cur.created_at,
                updated_at: now.max(cur.updated_at),
                archived: true,
                data: cur.data.clone(),
            };
            Ok((EventKind::Archived, record))
        }
    }
}
