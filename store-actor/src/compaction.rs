//! Compaction: a new snapshot, then a journal that holds only what came after it.
//!
//! Runs on its own thread from a published (durable) state, so writes go on throughout:
//! 1. write the snapshot atomically (temporary file, fsync, rename, directory fsync);
//! 2. stage the new journal: copy the journal lines after the snapshot's sequence number, as
//!    far as the flusher has written them, to `NAME.journal.tmp` and fsync it;
//! 3. hand over to the flusher ([`Job::Rotate`](crate::flusher::Job)), which appends the few
//!    lines written since step 2, fsyncs, renames the staged file over the journal and fsyncs
//!    the directory. Writes wait only for this last step.
//!
//! A crash at any point leaves a state that opens correctly: until step 1's rename the old
//! snapshot and journal are intact; after it, the old journal's lines up to the snapshot's
//! sequence number are skipped on replay; the staged file is ignored until renamed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Data;
use crate::disk::Loc;
use crate::error::{Result, StoreError};
use crate::fs::{Fs, ReadFile};

use crate::directory::{BaseBuilder, Directory};
use crate::index::{Index, IndexBuilder};
use crate::snapshot;
use crate::state::State;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// The sequence number the new snapshot covers.
    pub seq: u64,
    /// Records in the new snapshot, archived ones included.
    pub records: u64,
    /// The new snapshot's size.
    pub snapshot_bytes: u64,
    /// Time spent writing the snapshot and staging the journal (writes go on meanwhile).
    pub snapshot_time: Duration,
    /// How long writes waited while the journal was switched.
    pub pause: Duration,
}

/// A snapshot written and a journal tail staged, ready for the flusher to switch.
pub(crate) struct Staged<T> {
    pub seq: u64,
    pub records: u64,
    pub snapshot_bytes: u64,
    /// `NAME.journal.tmp`: the journal lines after `seq`, up to `copied_upto`, fsynced.
    pub tmp: PathBuf,
    /// How far into the live journal the staged copy goes.
    pub copied_upto: u64,
    /// When staging began: the report's `snapshot_time` counts from here.
    pub started: Instant,
    /// Index mode: where the new files hold the records.
    pub index: Option<NewFiles<T>>,
}

/// What a compaction's switch of the files gives back: its report, and index mode's new files.
pub(crate) type Switched<T> = (CompactionReport, Option<NewFiles<T>>);

/// Index mode: the new snapshot's key directory and files, for the actor to switch to.
pub(crate) struct NewFiles<T> {
    /// Every record of the snapshot, at its place in the new snapshot file.
    pub directory: Directory<T>,
    /// The snapshot's secondary indexes, in declaration order.
    pub indexes: Vec<Index>,
    /// The creation entries of the records `directory` keeps in its map (they did not pack).
    pub by_created: imbl::OrdSet<(i128, uuid::Uuid)>,
    /// The new snapshot, opened for reading.
    pub snapshot: Arc<dyn ReadFile>,
    pub snapshot_gen: u16,
    pub journal_gen: u16,
    /// The new journal, opened for reading by the flusher once it is in place.
    pub journal: Option<Arc<dyn ReadFile>>,
    /// The old journal's generation and where its lines after `seq` start (see `Staged::shift`).
    pub old_journal_gen: u16,
    pub shift: u64,
}

/// Steps 1 and 2. `journal_len` is the flusher's count of bytes fully written to the journal.
/// With `gens` (index mode: the new snapshot's and journal's generations, and the old
/// journal's), the snapshot's key directory is built too.
pub(crate) fn stage<T: Data>(
    fs: &dyn Fs,
    snapshot_path: &Path,
    journal_path: &Path,
    state: Arc<State<T>>,
    journal_len: &AtomicU64,
    gens: Option<(u16, u16, u16)>,
) -> Result<Staged<T>> {
    let started = Instant::now();
    let records = state.records.len() as u64;
    let seq = state.seq;
    let snapshot_gen = gens.map_or(0, |g| g.0);
    let mut placed = BaseBuilder::new(snapshot_gen);
    let defs = state.defs.clone();
    let mut keyed: Vec<IndexBuilder> = match gens {
        Some(_) => defs.iter().map(|_| IndexBuilder::new()).collect(),
        None => Vec::new(),
    };
    let snapshot_bytes = snapshot::write_atomic(
        fs,
        snapshot_path,
        seq,
        records,
        // Read without caching: a sweep of everything would evict the working set.
        state
            .records
            .iter()
            .map(|(id, slot)| state.resolve(id, &slot, false)),
        |r, span| {
            if gens.is_some() {
                let loc = Loc {
                    offset: span.start as u64,
                    len: span.len as u32,
                    generation: snapshot_gen,
                    archived: r.archived,
                };
                for (def, built) in defs.iter().zip(keyed.iter_mut()) {
                    for k in (def.keys)(&r.data) {
                        built.push(placed.pushed(), &k);
                    }
                }
                placed.push(r.id, loc, r.created_at.unix_timestamp_nanos());
            }
        },
    )?;
    drop(state);

    // Only whole lines are below `journal_len`: the flusher updates it after each append. The
    // lines after the snapshot are found by binary search and copied in chunks: the journal is
    // never read into memory whole.
    let copied_upto = journal_len.load(Ordering::Acquire);
    let journal = fs
        .open_file(journal_path)
        .map_err(|e| StoreError::io("open", journal_path, e))?
        .ok_or_else(|| StoreError::io("open", journal_path, std::io::ErrorKind::NotFound.into()))?;
    let from = crate::history::first_line_after(&*journal, copied_upto, seq)
        .map_err(|e| StoreError::io("read", journal_path, e))?;
    let tmp = journal_path.with_extension("journal.tmp");
    let staged = (|| {
        let mut f = fs
            .create(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = from;
        while at < copied_upto {
            let want = ((copied_upto - at) as usize).min(buf.len());
            let n = journal
                .read_at(&mut buf[..want], at)
                .map_err(|e| StoreError::io("read", journal_path, e))?;
            if n == 0 {
                return Err(StoreError::io(
                    "read",
                    journal_path,
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            f.append(&buf[..n])
                .map_err(|e| StoreError::io("write", &tmp, e))?;
            at += n as u64;
        }
        f.sync().map_err(|e| StoreError::io("fsync", &tmp, e))
    })();
    if let Err(e) = staged {
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    drop(journal);
    let index = match gens {
        None => None,
        Some((snapshot_gen, journal_gen, old_journal_gen)) => {
            let snapshot = fs
                .open_file(snapshot_path)
                .map_err(|e| StoreError::io("open", snapshot_path, e))?
                .ok_or_else(|| {
                    StoreError::io("open", snapshot_path, std::io::ErrorKind::NotFound.into())
                })?;
            let (directory, indexes, by_created) = crate::state::located(placed, keyed);
            Some(NewFiles {
                directory,
                indexes,
                by_created,
                snapshot,
                snapshot_gen,
                journal_gen,
                journal: None,
                old_journal_gen,
                shift: from,
            })
        }
    };
    Ok(Staged {
        seq,
        records,
        snapshot_bytes,
        tmp,
        copied_upto,
        started,
        index,
    })
}
