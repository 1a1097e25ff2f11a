//! Index mode's reads: where each record's JSON is on disk, the files it is in, and a bounded
//! cache of parsed records.
//!
//! In index mode a state holds, per record, a [`Loc`]: a file generation, a byte range and the
//! archived flag (lists skip tombstones without reading them). Snapshot lines are records and
//! journal lines contain them, so a record is read back with one positional read and one parse.
//! A state carries the table of the files its locations point into ([`Disk`]); a compaction
//! makes a new table for the new files, and a reader still holding an older state keeps the old
//! files open through the old table, so it reads correct bytes after they were replaced.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::fs::ReadFile;
use crate::record::Record;

/// Where a record's JSON is: bytes `offset..offset + len` of file generation `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub offset: u64,
    pub len: u32,
    pub generation: u16,
    /// The record is a tombstone (known without reading it).
    pub archived: bool,
}

/// A parsed record in the cache, with the weight it was admitted at.
struct Cached<T> {
    record: Arc<Record<T>>,
    weight: u32,
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Self {
            record: self.record.clone(),
            weight: self.weight,
        }
    }
}

/// Weighs a cached record by an estimate of its size in memory: parsed records take about
/// two and a half times their JSON.
#[derive(Clone, Copy)]
struct BySize;

impl<T> Weighter<(Uuid, u16, u64), Cached<T>> for BySize {
    fn weight(&self, _: &(Uuid, u16, u64), v: &Cached<T>) -> u64 {
        u64::from(v.weight)
    }
}

/// The parsed records of one store, shared by all its states, bounded by bytes.
pub(crate) struct RecordCache<T> {
    cache: Cache<(Uuid, u16, u64), Cached<T>, BySize>,
}

impl<T> fmt::Debug for RecordCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCache")
            .field("bytes", &self.cache.weight())
            .field("records", &self.cache.len())
            .finish()
    }
}

impl<T> RecordCache<T> {
    /// A cache of about `bytes` of parsed records.
    pub fn new(bytes: u64) -> Self {
        let items = (bytes / 512).clamp(16, 1 << 22) as usize;
        Self {
            cache: Cache::with_weighter(items, bytes.max(1), BySize),
        }
    }

    /// Estimated bytes held.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

/// The files a state's locations point into, by generation, and the store's cache.
pub(crate) struct Disk<T> {
    files: Vec<(u16, Arc<dyn ReadFile>, Arc<Path>)>,
    cache: Arc<RecordCache<T>>,
}

impl<T> fmt::Debug for Disk<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gens: Vec<u16> = self.files.iter().map(|f| f.0).collect();
        f.debug_struct("Disk").field("generations", &gens).finish()
    }
}

impl<T: DeserializeOwned + Clone> Disk<T> {
    pub fn new(cache: Arc<RecordCache<T>>) -> Self {
        Self {
            files: Vec::new(),
            cache,
        }
    }

    /// This table with `file` (at `path`) as generation `generation`, replacing an entry of
    /// that generation and dropping the generations not in `keep`.
    pub fn with(
        &self,
        generation: u16,
        file: Arc<dyn ReadFile>,
        path: &Path,
        keep: &[u16],
    ) -> Self {
        let mut files: Vec<_> = self
            .files
            .iter()
            .filter(|f| f.0 != generation && keep.contains(&f.0))
            .cloned()
            .collect();
        files.push((generation, file, path.into()));
        Self {
            files,
            cache: self.cache.clone(),
        }
    }

    /// Estimated bytes of parsed records in the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// Record `id`, stored at `loc`: from the cache, or read and parsed (and cached unless
    /// `keep` is false, for one-off sweeps such as compaction that would evict the working set).
    pub fn read(&self, id: Uuid, loc: &Loc, keep: bool) -> Result<Arc<Record<T>>> {
        let key = (id, loc.generation, loc.offset);
        let load = || -> Result<Cached<T>> {
            let record = Arc::new(self.load(loc)?);
            if record.id != id {
                return Err(
                    self.corrupt(loc, format!("holds record {} instead of {id}", record.id))
                );
            }
            Ok(Cached {
                record,
                weight: loc.len.saturating_mul(5) / 2 + 96,
            })
        };
        if keep {
            return Ok(self.cache.cache.get_or_insert_with(&key, load)?.record);
        }
        match self.cache.cache.get(&key) {
            Some(hit) => Ok(hit.record),
            None => Ok(load()?.record),
        }
    }

    /// Puts a record just written at `loc` in the cache (it is likely to be read next).
    pub fn remember(&self, loc: &Loc, record: Arc<Record<T>>) {
        let weight = loc.len.saturating_mul(5) / 2 + 96;
        self.cache.cache.insert(
            (record.id, loc.generation, loc.offset),
            Cached { record, weight },
        );
    }

    fn load(&self, loc: &Loc) -> Result<Record<T>> {
        let (_, file, _) = self
            .files
            .iter()
            .find(|f| f.0 == loc.generation)
            .ok_or_else(|| StoreError::Corrupt {
                file: "(index)".into(),
                line: 0,
                reason: format!("no open file of generation {}", loc.generation),
            })?;
        let mut buf = vec![0u8; loc.len as usize];
        let n = file
            .read_at(&mut buf, loc.offset)
            .map_err(|e| StoreError::io("read", self.path(loc), e))?;
        if n < buf.len() {
            return Err(self.corrupt(loc, "ends before the record".into()));
        }
        serde_json::from_slice(&buf)
            .map_err(|e| self.corrupt(loc, format!("record does not parse: {e}")))
    }

    fn path(&self, loc: &Loc) -> &Path {
        self.files
            .iter()
            .find(|f| f.0 == loc.generation)
            .map_or(Path::new("(index)"), |f| &f.2)
    }

    fn corrupt(&self, loc: &Loc, reason: String) -> StoreError {
        StoreError::Corrupt {
            file: self.path(loc).to_owned(),
            line: 0,
            reason: format!(
                "bytes {}..{}: {reason}",
                loc.offset,
                loc.offset + u64::from(loc.len)
            ),
        }
    }
}
