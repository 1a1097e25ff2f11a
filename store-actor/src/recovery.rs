//! Opening a store's files: load the snapshot, replay the journal, repair a torn tail.

use std::sync::Arc;

use crate::Data;
use crate::disk::{Disk, Loc, RecordCache};
use crate::error::{Result, StoreError};
use crate::fs::{Fs, ReadCursor};
use crate::journal::{self, Replay, Span, TornTail};
use crate::options::{Memory, StoreOptions};
use crate::record::Record;
use crate::snapshot::{self, SnapshotInfo};
use crate::state::{Loader, State};

pub(crate) struct Loaded<T> {
    pub state: State<T>,
    pub snapshot: SnapshotInfo,
    pub replay: Replay,
}

/// The file generation of the snapshot a store opened with (see [`crate::disk::Loc`]).
pub(crate) const SNAPSHOT_GEN: u16 = 0;
/// The file generation of the journal a store opened with.
pub(crate) const JOURNAL_GEN: u16 = 1;

/// Reads snapshot and journal into a state, changing nothing on disk. Streams both files, one
/// line in memory at a time: in index mode the state keeps where each record is, not the record.
pub(crate) fn load<T: Data>(options: &StoreOptions<T>) -> Result<Loaded<T>> {
    let fs = &*options.fs;
    // The journal is opened before the snapshot is read, so that readers without the lock see
    // a consistent pair while a compaction swaps both: a compaction renames its snapshot in
    // before its journal, so the snapshot read next is at least as new as the one this journal
    // follows, and the open file keeps every line up to the cut even once it is replaced
    // (replay just skips more). The other order can pair an old snapshot with a journal that
    // starts after it: a false sequence gap, or silently lost writes if that journal is empty.
    // No journal yet: the snapshot alone is a consistent state. Each file is read through the
    // handle index mode later reads records through, so both always see the same file.
    let journal_path = options.journal_path();
    let journal = fs
        .open_file(&journal_path)
        .map_err(|e| StoreError::io("open", &journal_path, e))?;
    let path = options.snapshot_path();
    let snapshot_file = fs
        .open_file(&path)
        .map_err(|e| StoreError::io("open", &path, e))?;
    let disk = match options.memory {
        Memory::InMemory => None,
        Memory::Index { cache_bytes } => {
            let mut disk = Disk::new(Arc::new(RecordCache::new(cache_bytes)));
            if let Some(f) = &snapshot_file {
                disk = disk.with(SNAPSHOT_GEN, f.clone(), &path, &[]);
            }
            if let Some(f) = &journal {
                disk = disk.with(JOURNAL_GEN, f.clone(), &journal_path, &[SNAPSHOT_GEN]);
            }
            Some(Arc::new(disk))
        }
    };
    let index = disk.is_some();
    let at = |generation: u16, span: Span, archived: bool| {
        index.then_some(Loc {
            offset: span.start as u64,
            len: span.len as u32,
            generation,
            archived,
        })
    };
    let mut loader = Loader::new(options.indexes.clone().into());
    let snapshot = snapshot::read::<T>(snapshot_file, &path, |r, line, span| {
        let loc = at(SNAPSHOT_GEN, span, r.archived);
        loader.add(r, line, loc)
    })?;
    let mut state = loader.finish(snapshot.seq, &path, disk)?;
    let replay = match journal {
        None => Replay::default(),
        Some(file) => {
            let mut reader = std::io::BufReader::with_capacity(1 << 16, ReadCursor::new(file));
            journal::replay::<T>(&mut reader, &journal_path, snapshot.seq, |e, span| {
                let loc = at(JOURNAL_GEN, span, e.record.archived);
                state.apply(Arc::new(e), options.feed_retention, loc)
            })?
        }
    };
    Ok(Loaded {
        state,
        snapshot,
        replay,
    })
}

/// Drops a torn last journal line: keeps the dropped bytes as evidence in the first free
/// `NAME.journal.broken.N` (N = 1, 2, ...: an earlier drop's evidence is never overwritten),
/// then truncates the journal to its intact prefix in place. Only the torn bytes are copied, so
/// a store on a nearly full disk can still open (a crash between the two steps finds the same
/// tail again and keeps a second copy of it). Returns the evidence's path.
pub(crate) fn drop_torn_tail<T>(
    options: &StoreOptions<T>,
    torn: &TornTail,
) -> Result<std::path::PathBuf> {
    let fs: &dyn Fs = &*options.fs;
    let path = options.journal_path();
    let tail = fs
        .read_from(&path, torn.valid_len)
        .map_err(|e| StoreError::io("read", &path, e))?;
    let broken = free_broken_path(fs, &path)?;
    if let Err(e) = write_synced(fs, &broken, &tail) {
        // A full disk: nothing is dropped yet, and the next try takes the same free name.
        let _ = fs.remove(&broken);
        return Err(e);
    }
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
    fs.sync_dir(&options.dir)
        .map_err(|e| StoreError::io("fsync", &options.dir, e))?;
    fs.truncate(&path, torn.valid_len)
        .map_err(|e| StoreError::io("truncate", &path, e))?;
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
pub fn verify<T: Data>(options: &StoreOptions<T>) -> Result<VerifyReport> {
    // Streams: index mode keeps where records are, not the records.
    let loaded = load(&options.clone().memory(Memory::Index { cache_bytes: 0 }))?;
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
pub fn read_all<T: Data>(options: &StoreOptions<T>) -> Result<Vec<Arc<Record<T>>>> {
    let state = load(options)?.state;
    state
        .records
        .iter()
        .map(|(id, slot)| state.resolve(id, &slot, false))
        .collect()
}
