//! What the store keeps: records with their metadata, change events, and index keys.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored value with the metadata the store maintains for it.
///
/// The store owns `id`, `version`, the timestamps and `archived`; the caller owns `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<T> {
    /// The record's identity, chosen at creation and never changed.
    pub id: Uuid,
    /// 1 at creation, bumped by every change (including archiving).
    pub version: u64,
    /// When the record was created; never changed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the record last changed; never earlier than the previous version's, even if the
    /// system clock goes back.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Archived records are tombstones: kept, readable by id, left out of lists by default, and
    /// no longer writable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// The caller's value.
    pub data: T,
}

/// What a mutation did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The record was created, at version 1.
    Created,
    /// The record's data changed.
    Updated,
    /// The record was archived (deleted as a tombstone).
    Archived,
}

/// One entry of the change feed: a mutation and the record as it was right after it.
///
/// Journal lines are events, so the journal doubles as an outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<T> {
    /// Gap-free, increasing sequence number of the mutation (the first is 1).
    pub seq: u64,
    /// Which mutation it was; `record` shows its result.
    pub kind: EventKind,
    /// The record after the mutation.
    pub record: std::sync::Arc<Record<T>>,
}

/// A value in a secondary index or a sort order.
///
/// One index should use one variant; across variants the order is the declaration order below.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum IndexKey {
    /// A boolean (`false` sorts before `true`).
    Bool(bool),
    /// An integer, e.g. a price in cents.
    Int(i64),
    /// A string, compared byte-wise. Shared, not copied, when an index's tree copies a node
    /// on write (a node holds dozens of keys).
    Str(Arc<str>),
    /// A UUID, e.g. a reference to another record.
    Uuid(Uuid),
    /// A point in time (as Unix nanoseconds).
    Time(i128),
}

impl From<&str> for IndexKey {
    fn from(s: &str) -> Self {
        IndexKey::Str(s.into())
    }
}
impl From<String> for IndexKey {
    fn from(s: String) -> Self {
        IndexKey::Str(s.into())
    }
}
impl From<i64> for IndexKey {
    fn from(i: i64) -> Self {
        IndexKey::Int(i)
    }
}
impl From<Uuid> for IndexKey {
    fn from(u: Uuid) -> Self {
        IndexKey::Uuid(u)
    }
}
impl From<bool> for IndexKey {
    fn from(b: bool) -> Self {
        IndexKey::Bool(b)
    }
}
impl From<OffsetDateTime> for IndexKey {
    fn from(t: OffsetDateTime) -> Self {
        IndexKey::Time(t.unix_timestamp_nanos())
    }
}
