//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

use uuid::Uuid;

/// Everything a store operation can fail with.
///
/// Each variant is a distinct situation a caller may want to react to differently, so they are
/// matched on rather than inspected as strings.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No record, live or archived, has this id.
    #[error("record {id} does not exist")]
    NotFound {
        /// The id that was asked for.
        id: Uuid,
    },
    /// The record exists but is archived (a tombstone): it cannot be changed any more.
    #[error("record {id} is archived")]
    Archived {
        /// The archived record's id.
        id: Uuid,
    },
    /// A conditional write expected another version than the stored one.
    #[error("record {id} is at version {actual}, not the expected version {expected}")]
    Conflict {
        /// The record the conditional write was for.
        id: Uuid,
        /// The version the caller based its change on.
        expected: u64,
        /// The version currently stored.
        actual: u64,
    },
    /// A create used an id that is already taken.
    #[error("record {id} already exists")]
    AlreadyExists {
        /// The id that is taken.
        id: Uuid,
    },
    /// A file could not be read as what it should be. The store refuses to open rather than
    /// overwrite data it could not read.
    #[error("{file}:{line}: {reason}", file = file.display())]
    Corrupt {
        /// The damaged snapshot or journal.
        file: PathBuf,
        /// The 1-based line of the damage.
        line: u64,
        /// What is wrong with that line.
        reason: String,
    },
    /// An operating-system I/O call failed (see [`StoreError::is_disk_full`]).
    #[error("{op} {path} failed: {source}", path = path.display())]
    Io {
        /// What the store was doing: "open", "write", "fsync", "rename", ...
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error; its kind is what [`StoreError::is_disk_full`] checks.
        #[source]
        source: io::Error,
    },
    /// Another store (in this or another process) holds the file.
    #[error("{path} is locked by another store (is another process using this data directory?)", path = path.display())]
    Locked {
        /// The data file that is locked.
        path: PathBuf,
    },
    /// A journal write or fsync failed. The store serves reads but refuses writes until it has
    /// healed (cut the failed write off the journal and found that the disk takes writes again,
    /// which it retries by itself) or, for the few failures it cannot heal, until it is reopened.
    #[error("the store refuses writes after an I/O failure: {reason}")]
    ReadOnly {
        /// The failure that stopped writes.
        reason: String,
        /// The kind of that failure's I/O error (see [`StoreError::is_disk_full`]).
        kind: Option<io::ErrorKind>,
        /// When the store next tries to resume writes by itself; `None` if only reopening it
        /// brings them back.
        retry_after: Option<std::time::Duration>,
    },
    /// The change feed no longer holds events this old: the reader must resynchronise from the
    /// current state.
    #[error(
        "events after sequence {requested} are no longer retained (oldest available: {oldest_available})"
    )]
    TooOld {
        /// The sequence number the reader asked to continue after.
        requested: u64,
        /// The oldest sequence number still retained.
        oldest_available: u64,
    },
    /// A compaction failed; the store goes on with its previous snapshot and journal.
    #[error("compaction failed: {reason}")]
    CompactionFailed {
        /// The failed step's error, as text: one failure is reported to every caller waiting
        /// on that compaction.
        reason: String,
        /// The kind of the I/O error behind it, if any ([`io::ErrorKind::StorageFull`] for a
        /// full disk: see [`StoreError::is_disk_full`]).
        kind: Option<io::ErrorKind>,
    },
    /// A list cursor was not produced by this store for this sort order.
    #[error("the cursor is malformed or belongs to another sort order")]
    InvalidCursor,
    /// A query or lookup named an index the store does not declare.
    #[error("no index named {0:?} is declared")]
    UnknownIndex(String),
    /// An update closure refused the change; the record is unchanged.
    #[error("update rejected: {0}")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An operation of an atomic [`Store::batch`](crate::Store::batch) failed, so none of the
    /// batch was applied or written.
    #[error("batch operation {index} failed: {source}")]
    BatchFailed {
        /// The 0-based position of the first failing operation in the batch.
        index: usize,
        /// Why it failed: what the same operation on its own would have failed with
        /// ([`StoreError::NotFound`], [`StoreError::Archived`], [`StoreError::Conflict`],
        /// [`StoreError::AlreadyExists`] or [`StoreError::Rejected`]).
        #[source]
        source: Box<StoreError>,
    },
    /// The store was closed (or its actor stopped) before the operation could run.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// True for an I/O error caused by a full disk or an exhausted quota, including the
    /// [`StoreError::ReadOnly`] of writes refused after one.
    ///
    /// Decided by error kind, not message: ENOSPC and EDQUOT map to these kinds, and the message text
    /// depends on the platform and locale (and is lost once only a kind is known).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.io_kind(),
            Some(io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        )
    }

    /// The kind of the I/O error behind this one, if any.
    pub(crate) fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            StoreError::ReadOnly { kind, .. } | StoreError::CompactionFailed { kind, .. } => *kind,
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
