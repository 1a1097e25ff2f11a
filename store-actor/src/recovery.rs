//! Opening a store's files: load the snapshot, replay the journal, repair a torn tail.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::journal::{self, Replay, TornTail};
use crate::options::StoreOptions;
use crate::record::Record;
use crate::snapshot::{self, SnapshotInfo};
use crate::state::State;

pub(crate) struct Loaded<T> {
    pub state: State<T>,
    pub snapshot: SnapshotInfo,
    pub replay: Replay,
}

/// Reads snapshot and journal into a state, changing nothing on disk.
pub(crate) fn load<T: DeserializeOwned + Send + Sync>(
    options: &StoreOptions<T>,
) -> Result<Loaded<T>> {
    let fs = &*options.fs;
    // The journal is opened before the snapshot is read, so that readers without the lock see
    // a consistent pair while a compaction swaps both: a compaction renames its snapshot in
    // before its journal, so the snapshot read next is at least as new as the one this journal
    // follows, and the open file keeps every line up to the cut even once it is replaced
    // (replay just skips more). The other order can pair an old snapshot with a journal that
    // starts after it: a false sequence gap, or silently lost writes if that journal is empty.
    // No journal yet: the snapshot alone is a consistent state.
    let journal_path = options.journal_path();
    let journal = fs
        .open_read(&journal_path)
        .map_err(|e| StoreError::io("open", &journal_path, e))?;
    let mut state = State::new(options.indexes.clone().into());
    let path = options.snapshot_path();
    let mut records = Vec::new();
    let snapshot = snapshot::read::<T>(fs, &path, |r, line| records.push((Arc::new(r), line)))?;
    state.bulk_load(records, &path)?;
    state.seq = snapshot.seq;
    let replay = match journal {
        None => Replay::default(),
        Some(mut reader) => journal::replay::<T>(&mut reader, &journal_path, snapshot.seq, |e| {
            state.apply(Arc::new(e), options.feed_retention)
        })?,
    };
    Ok(Loaded {
        state,
        snapshot,
        replay,
    })
}

/// Drops a torn last journal line: keeps the dropped bytes as evidence in the first free
/// `NAME.journal.broken.N` (N = 1, 2, ...: an earlier drop's evidence is never overwritten),
/// then atomically replaces the journal by its intact prefix. Returns the evidence's path.
pub(crate) fn drop_torn_tail<T>(
    options: &StoreOptions<T>,
    torn: &TornTail,
) -> Result<std::path::PathBuf> {
    let fs: &dyn Fs = &*options.fs;
    let path = options.journal_path();
    let all = fs
        .read_from(&path, 0)
        .map_err(|e| StoreError::io("read", &path, e))?;
    let broken = free_broken_path(fs, &path)?;
    if torn.complete {
        tracing::error!(
            journal = %path.display(),
            line = torn.line,
            reason = %torn.reason,
            evidence = %broken.display(),
            "dropping the last journal line: it was written whole but fails its checksum, so it \
             may have been an acknowledged write damaged on disk (the store cannot tell); its \
             bytes are kept as evidence"
        );
    } else {
        tracing::warn!(
            journal = %path.display(),
            line = torn.line,
            reason = %torn.reason,
            evidence = %broken.display(),
            "dropping a torn last journal line (an unacknowledged write); its bytes are kept"
        );
    }
    write_synced(fs, &broken, &all[torn.valid_len as usize..])?;
    let tmp = path.with_extension("journal.tmp");
    write_synced(fs, &tmp, &all[..torn.valid_len as usize])?;
    fs.rename(&tmp, &path)
        .map_err(|e| StoreError::io("rename", &tmp, e))?;
    fs.sync_dir(&options.dir)
        .map_err(|e| StoreError::io("fsync", &options.dir, e))?;
    Ok(broken)
}

/// The first `JOURNAL.broken.N` that does not exist yet.
fn free_broken_path(fs: &dyn Fs, journal: &std::path::Path) -> Result<std::path::PathBuf> {
    for n in 1u32.. {
        let candidate = broken_path(journal, n);
        let taken = fs
            .open_read(&candidate)
            .map_err(|e| StoreError::io("open", &candidate, e))?
            .is_some();
        if !taken {
            return Ok(candidate);
        }
    }
    unreachable!("fewer than 2^32 earlier drops")
}

/// `JOURNAL.broken.N`: the evidence of the `N`th torn tail dropped from `journal`.
pub fn broken_path(journal: &std::path::Path, n: u32) -> std::path::PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(format!(".broken.{n}"));
    name.into()
}

fn write_synced(fs: &dyn Fs, path: &std::path::Path, data: &[u8]) -> Result<()> {
    let mut f = fs
        .create(path)
        .map_err(|e| StoreError::io("create", path, e))?;
    f.append(data)
        .map_err(|e| StoreError::io("write", path, e))?;
    f.sync().map_err(|e| StoreError::io("fsync", path, e))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records in the store, archived ones included.
    pub records: u64,
    /// Records that are not archived.
    pub live: u64,
    /// The last sequence number (snapshot plus journal).
    pub last_seq: u64,
    /// The sequence number the snapshot covers.
    pub snapshot_seq: u64,
    /// Lines in the journal, counting those the snapshot already covers and a torn last one.
    pub journal_lines: u64,
    /// A damaged last journal line, which opening the store would drop.
    pub torn_tail: Option<TornTail>,
    /// Evidence kept from earlier drops: `NAME.journal.broken.1`, `.2`, ... (up to the first
    /// missing number), and a `NAME.journal.broken` of older versions.
    pub evidence: Vec<std::path::PathBuf>,
}

/// Checks a store's snapshot and journal without changing or locking anything.
///
/// Damage that opening would refuse is an error ([`StoreError::Corrupt`] names file and line); a
/// torn last journal line, which opening would drop, is reported in the result.
pub fn verify<T: DeserializeOwned + Send + Sync>(
    options: &StoreOptions<T>,
) -> Result<VerifyReport> {
    let loaded = load(options)?;
    let fs = &*options.fs;
    let journal = options.journal_path();
    let exists = |p: &std::path::Path| -> Result<bool> {
        Ok(fs
            .open_read(p)
            .map_err(|e| StoreError::io("open", p, e))?
            .is_some())
    };
    let mut evidence = Vec::new();
    let legacy = journal.with_extension("journal.broken");
    if exists(&legacy)? {
        evidence.push(legacy);
    }
    for n in 1u32.. {
        let p = broken_path(&journal, n);
        if !exists(&p)? {
            break;
        }
        evidence.push(p);
    }
    Ok(VerifyReport {
        evidence,
        records: loaded.state.records.len() as u64,
        live: loaded.state.live,
        last_seq: loaded.state.seq,
        snapshot_seq: loaded.snapshot.seq,
        journal_lines: loaded.replay.lines,
        torn_tail: loaded.replay.torn_tail,
    })
}

/// Reads every record of a store (archived ones included, in id order) without locking or
/// changing anything: safe while a service has the store open, e.g. for a backup export.
/// A torn last journal line is ignored, as opening would drop it.
pub fn read_all<T: DeserializeOwned + Send + Sync>(
    options: &StoreOptions<T>,
) -> Result<Vec<Arc<Record<T>>>> {
    let loaded = load(options)?;
    Ok(loaded.state.records.values().cloned().collect())
}
