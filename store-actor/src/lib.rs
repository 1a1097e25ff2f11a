#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`store`]: the [`Store`] handle, the public face of everything below.
//! - `actor`: the actix actor that owns the working state and is the only writer.
//! - `flusher`: the thread that appends and fsyncs the journal (group commit) and publishes
//!   durable states; `state`: the persistent collections readers see.
//! - `journal` and `snapshot`: the file formats; `recovery`: opening and repairing them;
//!   [`rfc3339`]: the text of a record's timestamps in them.
//! - [`fs`]: the file-system seam, with a simulated disk for power-loss tests.
//!
//! # Threading model
//!
//! Per store: one thread runs the actor (its own actix system, so the store works under any
//! tokio-based framework), one thread writes the journal, and a short-lived thread writes each
//! snapshot. Callers' threads only send messages and read published states.
//!
//! # Durability promise
//!
//! With [`Durability::Always`], a write resolves only after its journal line is fsynced. After
//! a crash or power loss at any instant, every acknowledged write is present; a torn last
//! journal line (an unacknowledged write) is dropped with a warning, its bytes kept in
//! `NAME.journal.broken.N`; any other damage refuses to open with the file and line, and
//! nothing is overwritten. The one case the store cannot tell apart: a last line written whole
//! that fails its checksum (a torn write whose last bytes arrived, or an acknowledged write
//! damaged on disk since). It is dropped too, but logged at ERROR, flagged in
//! [`Status::damaged_line_dropped`] and `verify`, and its bytes kept. An atomic
//! [`Store::batch`] is one journal line, so all of the above holds for it as a whole.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
mod batch;
mod compaction;
mod directory;
mod disk;
mod error;
mod flusher;
pub mod fs;
mod history;
pub mod import;
mod index;
mod journal;
mod options;
mod query;
mod record;
mod recovery;
pub mod rfc3339;
mod snapshot;
mod state;
pub mod store;

pub use batch::Op;
pub use compaction::CompactionReport;
pub use error::{Result, StoreError};
pub use history::FeedHistory;
pub use journal::TornTail;
pub use options::{Durability, Memory, StoreOptions};
pub use query::{DEFAULT_BUDGET, Filter, Page, Query, SortKey};
pub use record::{Event, EventKind, IndexKey, Record};
pub use recovery::{VerifyReport, read_all, verify};
pub use snapshot::{FORMAT, trailer as snapshot_trailer};
pub use state::IndexFn;
pub use store::{CompactionFailure, Status, Store};

/// What a store can hold: any serde type that can be shared between threads.
pub trait Data:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
}
impl<T> Data for T where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
}
