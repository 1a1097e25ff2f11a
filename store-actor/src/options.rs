//! How a store is opened: where, how durable, which indexes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::fs::{Fs, OsFs};
use crate::history::FeedHistory;
use crate::record::IndexKey;
use crate::state::IndexDef;

/// When a write counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A write is answered only after its journal line is fsynced. Writes that arrive while an
    /// fsync is under way share the next one (group commit). Nothing acknowledged is ever lost.
    #[default]
    Always,
    /// A write is answered once it is in the operating system's cache; the journal is fsynced at
    /// most this often. A power loss (not a process crash) can lose the writes of that window.
    Interval(Duration),
    /// Never fsync the journal (snapshots still are). A power loss can lose any amount of recent
    /// writes; a process crash loses nothing the kernel already has.
    Never,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Always => f.write_str("always"),
            Durability::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
            Durability::Never => f.write_str("never"),
        }
    }
}

impl FromStr for Durability {
    type Err = String;
    /// `always`, `never`, `interval` (100 ms) or `interval:MS` (e.g. `interval:250`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Durability::Always),
            "never" => Ok(Durability::Never),
            "interval" => Ok(Durability::Interval(Duration::from_millis(100))),
            _ => s
                .strip_prefix("interval:")
                .map(|ms| ms.trim_end_matches("ms"))
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(|ms| Durability::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("unknown durability {s:?}: use always, never, interval or interval:MS")
                }),
        }
    }
}

/// Where a store keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Memory {
    /// Every record in memory (the default): the fastest reads, at about 2.5 times the size of
    /// `NAME.json` in RAM.
    #[default]
    InMemory,
    /// Only a key directory (id, offset, length, archived flag: 24 bytes per record of the
    /// last snapshot, a map entry per record written since) and the secondary indexes (8 bytes
    /// per entry of the last snapshot plus its key's bytes, each distinct key stored once; a
    /// set entry per key of a record written since) in memory. Records are read from the
    /// snapshot and journal files with positional reads, through a cache of about
    /// `cache_bytes` of parsed records: for data larger than memory.
    Index {
        /// The cache's size, estimated as parsed records take 2.5 times their JSON.
        cache_bytes: u64,
    },
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Memory::InMemory => f.write_str("in-memory"),
            Memory::Index { cache_bytes } => write!(f, "index (cache {} MiB)", cache_bytes >> 20),
        }
    }
}

/// Everything needed to open a [`Store`](crate::Store).
///
/// ```
/// use store_actor::{Durability, IndexKey, StoreOptions};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { owner: String }
/// let options = StoreOptions::<Order>::new("./data", "orders")
///     .durability(Durability::Always)
///     .index("owner", |o: &Order| vec![IndexKey::from(o.owner.as_str())]);
/// ```
pub struct StoreOptions<T> {
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) durability: Durability,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) indexes: Vec<IndexDef<T>>,
    pub(crate) feed_retention: usize,
    pub(crate) feed_history: FeedHistory,
    pub(crate) memory: Memory,
    pub(crate) compact_min_bytes: u64,
    pub(crate) compact_ratio: f64,
}

impl<T> fmt::Debug for StoreOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("durability", &self.durability)
            .field("indexes", &self.indexes)
            .field("feed_retention", &self.feed_retention)
            .field("feed_history", &self.feed_history)
            .field("memory", &self.memory)
            .field("compact_min_bytes", &self.compact_min_bytes)
            .field("compact_ratio", &self.compact_ratio)
            .finish()
    }
}

impl<T> Clone for StoreOptions<T> {
    fn clone(&self) -> Self {
        Self {
            dir: self.dir.clone(),
            name: self.name.clone(),
            durability: self.durability,
            fs: self.fs.clone(),
            indexes: self.indexes.clone(),
            feed_retention: self.feed_retention,
            feed_history: self.feed_history,
            memory: self.memory,
            compact_min_bytes: self.compact_min_bytes,
            compact_ratio: self.compact_ratio,
        }
    }
}

impl<T> StoreOptions<T> {
    /// A store kept in `dir` as `NAME.json` (snapshot) and `NAME.journal`, with defaults:
    /// [`Durability::Always`], the real file system, the last 10,000 events in memory and a day
    /// (at most 256 MiB) of retired journals for the change feed, compaction when the journal
    /// exceeds both 4 MiB and the snapshot's size.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            name: name.into(),
            durability: Durability::Always,
            fs: Arc::new(OsFs),
            indexes: Vec::new(),
            feed_retention: 10_000,
            feed_history: FeedHistory::default(),
            memory: Memory::InMemory,
            compact_min_bytes: 4 << 20,
            compact_ratio: 1.0,
        }
    }

    /// Options for the store whose snapshot is at `path` (`DIR/NAME.json`; the `.json` may be
    /// left out).
    pub fn from_path(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let name = file.strip_suffix(".json").unwrap_or(&file).to_owned();
        Self::new(dir.unwrap_or(Path::new(".")), name)
    }

    /// Sets when writes count as done.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Puts the store on another file system (a [`SimFs`](crate::fs::SimFs) in tests).
    pub fn fs(mut self, fs: Arc<dyn Fs>) -> Self {
        self.fs = fs;
        self
    }

    /// Declares a secondary index: `keys` gives the values a record is found under. Lookups and
    /// lists filtered on an index cost O(matches); an index with one key per record can also
    /// order lists.
    pub fn index(
        mut self,
        name: impl Into<String>,
        keys: impl Fn(&T) -> Vec<IndexKey> + Send + Sync + 'static,
    ) -> Self {
        self.indexes.push(IndexDef {
            name: name.into(),
            keys: Arc::new(keys),
        });
        self
    }

    /// How many recent events the change feed keeps in memory (0 keeps none), in front of
    /// what it reads from disk.
    pub fn feed_retention(mut self, events: usize) -> Self {
        self.feed_retention = events;
        self
    }

    /// How long and how much of the change feed's history is kept on disk: compaction keeps the
    /// journals it retires, for [`FeedHistory::max_age`] and up to [`FeedHistory::max_bytes`]
    /// in all, and [`Store::events_after`](crate::Store::events_after) reads them, so a
    /// consumer resumes across restarts and compactions. `max_bytes` 0 keeps none (the feed then
    /// reaches back to the oldest line of the live journal).
    pub fn feed_history(mut self, history: FeedHistory) -> Self {
        self.feed_history = history;
        self
    }

    /// Keeps every record in memory ([`Memory::InMemory`], the default) or only a key
    /// directory ([`Memory::Index`]).
    pub fn memory(mut self, memory: Memory) -> Self {
        self.memory = memory;
        self
    }

    /// Compacts when the journal is larger than `min_bytes` and than `ratio` × the snapshot.
    pub fn compaction(mut self, min_bytes: u64, ratio: f64) -> Self {
        self.compact_min_bytes = min_bytes;
        self.compact_ratio = ratio;
        self
    }

    /// `DIR/NAME.json`, where the snapshot is (or will be, once the first compaction runs).
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.name))
    }
    /// `DIR/NAME.journal`, next to the snapshot.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(format!("{}.journal", self.name))
    }
    pub(crate) fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_prints() {
        for s in ["always", "never", "interval:250ms"] {
            assert_eq!(s.parse::<Durability>().unwrap().to_string(), s);
        }
        assert_eq!(
            "interval".parse::<Durability>().unwrap(),
            Durability::Interval(Duration::from_millis(100))
        );
        assert_eq!(
            "interval:5".parse::<Durability>().unwrap(),
            Durability::Interval(Duration::from_millis(5))
        );
        for bad in ["", "sometimes", "interval:", "interval:0", "interval:-1"] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
    }

    #[test]
    fn from_path_splits_dir_and_name() {
        let o = StoreOptions::<()>::from_path("data/products.json");
        assert_eq!(o.snapshot_path(), Path::new("data/products.json"));
        assert_eq!(o.journal_path(), Path::new("data/products.journal"));
        let o = StoreOptions::<()>::from_path("orders");
        assert_eq!(o.snapshot_path(), Path::new("./orders.json"));
    }
}
