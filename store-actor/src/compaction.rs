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

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::fs::Fs;
use crate::journal;
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
#[derive(Debug)]
pub(crate) struct Staged {
    pub seq: u64,
    pub records: u64,
    pub snapshot_bytes: u64,
    /// `NAME.journal.tmp`: the journal lines after `seq`, up to `copied_upto`, fsynced.
    pub tmp: PathBuf,
    /// How far into the live journal the staged copy goes.
    pub copied_upto: u64,
    /// When staging began: the report's `snapshot_time` counts from here.
    pub started: Instant,
}

/// Steps 1 and 2. `journal_len` is the flusher's count of bytes fully written to the journal.
pub(crate) fn stage<T: Serialize>(
    fs: &dyn Fs,
    snapshot_path: &Path,
    journal_path: &Path,
    state: Arc<State<T>>,
    journal_len: &AtomicU64,
) -> Result<Staged> {
    let started = Instant::now();
    let records = state.records.len() as u64;
    let seq = state.seq;
    let snapshot_bytes = snapshot::write_atomic(
        fs,
        snapshot_path,
        seq,
        records,
        state.records.values().map(|r| &**r),
    )?;
    drop(state);

    // Only whole lines are below `journal_len`: the flusher updates it after each append.
    let copied_upto = journal_len.load(Ordering::Acquire);
    let mut journal = fs
        .read_from(journal_path, 0)
        .map_err(|e| StoreError::io("read", journal_path, e))?;
    journal.truncate(copied_upto as usize);
    let from = journal::offset_after(&journal, seq);
    let tmp = journal_path.with_extension("journal.tmp");
    let staged = (|| {
        let mut f = fs
            .create(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        f.append(&journal[from..])
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        f.sync().map_err(|e| StoreError::io("fsync", &tmp, e))
    })();
    if let Err(e) = staged {
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    Ok(Staged {
        seq,
        records,
        snapshot_bytes,
        tmp,
        copied_upto,
        started,
    })
}
