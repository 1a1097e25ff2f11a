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
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the record last changed; never earlier than the previous version's, even if the
    /// system clock goes back.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Archived records are tombstones: kept, readable by id, left out of lists by default, and
    /// no longer writable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// The caller's value.
    pub data: T,
}

impl<T: Serialize> Record<T> {
    /// Appends the record's JSON to `out`, byte for byte what `serde_json::to_writer` makes of
    /// it (a test compares the two), with only `data` going through serde: the store's own
    /// fields have constant keys and scalar values, and serde_json would pass each key and the
    /// id through its escaping loop a byte at a time. Every journal and snapshot line is one.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(
            self.id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.version).as_bytes());
        out.extend_from_slice(b",\"created_at\":");
        crate::rfc3339::write_json(out, &self.created_at)?;
        out.extend_from_slice(b",\"updated_at\":");
        crate::rfc3339::write_json(out, &self.updated_at)?;
        if self.archived {
            out.extend_from_slice(b",\"archived\":true");
        }
        out.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut *out, &self.data)?;
        out.push(b'}');
        Ok(())
    }
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

impl EventKind {
    /// Its JSON text (a string literal, quotes included).
    pub(crate) fn json(self) -> &'static [u8] {
        match self {
            EventKind::Created => b"\"created\"",
            EventKind::Updated => b"\"updated\"",
            EventKind::Archived => b"\"archived\"",
        }
    }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::UtcOffset;

    use super::*;

    fn instant(secs: i64, nanos: u32, offset: i32) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .replace_nanosecond(nanos)
            .unwrap()
            .to_offset(UtcOffset::from_whole_seconds(offset).unwrap())
    }

    proptest! {
        /// Byte for byte what serde_json writes for any record, or an error where it errs.
        #[test]
        fn write_json_is_serde_json(
            id: u128,
            version: u64,
            created in (-62_167_219_200i64..253_402_300_799, 0u32..1_000_000_000,
                        prop_oneof![3 => Just(0i32), 1 => -86_399i32..86_400]),
            updated in (-62_167_219_200i64..253_402_300_799, 0u32..1_000_000_000,
                        prop_oneof![3 => Just(0i32), 1 => -86_399i32..86_400]),
            archived: bool,
            data in prop_oneof![".{0,20}", "[a-z\"\\\\\u{0}-\u{1f}é]{0,10}"],
        ) {
            let record = Record {
                id: Uuid::from_u128(id),
                version,
                created_at: instant(created.0, created.1, created.2),
                updated_at: instant(updated.0, updated.1, updated.2),
                archived,
                data: serde_json::json!({"name": data, "n": version}),
            };
            let mut out = Vec::new();
            match serde_json::to_vec(&record) {
                Ok(expected) => {
                    record.write_json(&mut out).unwrap();
                    prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
                }
                Err(_) => prop_assert!(record.write_json(&mut out).is_err()),
            }
        }
    }

    #[test]
    fn event_kinds_are_written_as_serde_writes_them() {
        for kind in [EventKind::Created, EventKind::Updated, EventKind::Archived] {
            assert_eq!(kind.json(), serde_json::to_vec(&kind).unwrap().as_slice());
        }
    }
}
