//! The flusher: the one thread that writes and syncs a store's journal.
//!
//! The actor hands it a [`Job::Batch`] (journal bytes, the callers waiting on them, and the state
//! to publish once they are durable) and keeps serving messages meanwhile; whatever arrives while
//! a batch is being synced becomes the next batch, so concurrent writers share one fsync (group
//! commit). HTTP worker threads never touch the disk.
//!
//! If a write or fsync fails the flusher *poisons* the store: after a failed fsync the kernel
//! may have dropped the dirty pages and a retried fsync can falsely succeed, so nothing that
//! follows can be trusted to be durable. Reads go on; writes are refused until reopen.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::compaction::{CompactionReport, Staged};
use crate::error::{Result, StoreError};
use crate::fs::{Fs, LockGuard, WriteFile};
use crate::options::Durability;
use crate::state::State;

/// Completes one waiting caller with the outcome of its batch.
pub(crate) type Waiter = Box<dyn FnOnce(Result<()>) + Send>;

/// Work for the flusher, processed strictly in order.
pub(crate) enum Job<T> {
    /// Append `bytes`, make them durable as the mode says, publish `state`, wake `waiters`.
    Batch {
        bytes: Vec<u8>,
        waiters: Vec<Waiter>,
        state: Arc<State<T>>,
    },
    /// A compaction starts: keep a copy of what is appended from now on, so that switching to
    /// the staged journal needs no read of the journal while writes wait.
    Track,
    /// A snapshot is durable and the journal after it is staged: switch to the staged journal.
    Rotate {
        staged: Staged,
        done: Box<dyn FnOnce(Result<CompactionReport>) + Send>,
    },
}

/// What the handle, the actor and the flusher share. Only the flusher writes `state`.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    /// The latest published (durable) state.
    pub state: ArcSwap<State<T>>,
    /// The sequence number of the latest published state, for subscribers.
    pub seq: watch::Sender<u64>,
    /// Why writes stopped, once they have.
    pub poison: Mutex<Option<Poison>>,
    /// True once the flusher has exited and released the files.
    pub closed: watch::Sender<bool>,
    pub stats: Stats,
}

/// Counters for status and metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub journal_bytes: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_nanos_total: AtomicU64,
    pub fsync_nanos_max: AtomicU64,
    pub batches: AtomicU64,
    pub compactions: AtomicU64,
    pub last_rotation_pause_nanos: AtomicU64,
}

/// Why writes stopped: the message, and the kind of the I/O error, kept for
/// [`StoreError::is_disk_full`].
#[derive(Debug, Clone)]
pub(crate) struct Poison {
    pub reason: String,
    pub kind: Option<io::ErrorKind>,
}

impl Poison {
    pub fn error(&self) -> StoreError {
        StoreError::ReadOnly {
            reason: self.reason.clone(),
            kind: self.kind,
        }
    }
}

impl<T> Shared<T> {
    pub fn poisoned(&self) -> Option<String> {
        self.poison
            .lock()
            .unwrap()
            .as_ref()
            .map(|p| p.reason.clone())
    }
    /// The error refused writes get, once writes stopped.
    pub fn read_only(&self) -> Option<StoreError> {
        self.poison.lock().unwrap().as_ref().map(Poison::error)
    }
    fn poison(&self, reason: String, kind: Option<io::ErrorKind>) -> Poison {
        tracing::error!(%reason, "store stops accepting writes");
        let mut poison = self.poison.lock().unwrap();
        poison.get_or_insert(Poison { reason, kind }).clone()
    }
}

/// The most bytes kept for a compaction's journal switch (see [`Job::Track`]).
const MAX_TAIL: usize = 64 << 20;

pub(crate) struct Flusher<T> {
    pub fs: Arc<dyn Fs>,
    pub journal_path: PathBuf,
    pub dir: PathBuf,
    pub file: Box<dyn WriteFile>,
    pub len: u64,
    pub mode: Durability,
    pub shared: Arc<Shared<T>>,
    /// Bytes appended since a [`Job::Track`]: (journal offset where they start, the bytes).
    pub tail: Option<(u64, Vec<u8>)>,
    /// Called after every batch, so the actor can ship the next one.
    pub on_idle: Box<dyn Fn() + Send>,
    /// Held for as long as the flusher owns the files.
    pub _lock: Box<dyn LockGuard>,
}

impl<T: Send + Sync + 'static> Flusher<T> {
    pub fn run(mut self, jobs: Receiver<Job<T>>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let job = match (self.mode, unsynced) {
                (Durability::Interval(every), true) => {
                    match jobs.recv_timeout(every.saturating_sub(last_sync.elapsed())) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = self.sync(); // a failure poisons the store
                            unsynced = false;
                            last_sync = Instant::now();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            match job {
                Job::Batch {
                    bytes,
                    waiters,
                    state,
                } => {
                    let outcome = self.write_batch(&bytes, &mut unsynced, &mut last_sync);
                    match outcome {
                        Ok(()) => {
                            let seq = state.seq;
                            self.shared.state.store(state);
                            self.shared.seq.send_replace(seq);
                            for w in waiters {
                                w(Ok(()));
                            }
                        }
                        Err(poison) => {
                            for w in waiters {
                                w(Err(poison.error()));
                            }
                        }
                    }
                    self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
                    (self.on_idle)();
                }
                Job::Track => self.tail = Some((self.len, Vec::new())),
                Job::Rotate { staged, done } => {
                    if let Some(refused) = self.shared.read_only() {
                        // The journal may end in unacknowledged lines: leave it as it is.
                        let _ = self.fs.remove(&staged.tmp);
                        done(Err(refused));
                        continue;
                    }
                    let snapshot_time = staged.started.elapsed();
                    let started = Instant::now();
                    let result = self.switch_journal(&staged).map(|()| CompactionReport {
                        seq: staged.seq,
                        records: staged.records,
                        snapshot_bytes: staged.snapshot_bytes,
                        snapshot_time,
                        pause: started.elapsed(),
                    });
                    if let Ok(report) = &result {
                        self.shared
                            .stats
                            .last_rotation_pause_nanos
                            .store(report.pause.as_nanos() as u64, Ordering::Relaxed);
                    }
                    done(result);
                }
            }
        }
        if unsynced {
            let _ = self.sync(); // a failure poisons the store
        }
        tracing::debug!(journal = %self.journal_path.display(), "flusher stopped");
        let shared = self.shared.clone();
        drop(self); // releases the files and the lock before saying so
        shared.closed.send_replace(true);
    }

    /// Appends and (per the durability mode) syncs one batch. Errors poison the store.
    fn write_batch(
        &mut self,
        bytes: &[u8],
        unsynced: &mut bool,
        last_sync: &mut Instant,
    ) -> std::result::Result<(), Poison> {
        if let Some(poison) = self.shared.poison.lock().unwrap().clone() {
            return Err(poison);
        }
        if let Err(e) = self.file.append(bytes) {
            let reason = format!("write {} failed: {e}", self.journal_path.display());
            return Err(self.shared.poison(reason, Some(e.kind())));
        }
        self.len += bytes.len() as u64;
        if let Some((_, tail)) = &mut self.tail {
            if tail.len() < MAX_TAIL {
                tail.extend_from_slice(bytes);
            } else {
                self.tail = None; // a compaction that slow reads the journal instead
            }
        }
        // Release: a compaction that reads this length may copy everything below it.
        self.shared
            .stats
            .journal_bytes
            .store(self.len, Ordering::Release);
        match self.mode {
            Durability::Always => {
                // IMPORTANT: no caller is answered before this fsync returns.
                self.sync()?;
            }
            Durability::Interval(every) => {
                *unsynced = true;
                if last_sync.elapsed() >= every {
                    let _ = self.sync(); // a failure poisons the store
                    *unsynced = false;
                    *last_sync = Instant::now();
                }
            }
            Durability::Never => {}
        }
        Ok(())
    }

    /// Syncs the journal, recording latency; on failure poisons the store.
    fn sync(&mut self) -> std::result::Result<(), Poison> {
        let t = Instant::now();
        let result = self.file.sync();
        let nanos = t.elapsed().as_nanos() as u64;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats.fsync_nanos_total.fetch_add(nanos, Ordering::Relaxed);
        stats.fsync_nanos_max.fetch_max(nanos, Ordering::Relaxed);
        result.map_err(|e| {
            let reason = format!("fsync {} failed: {e}", self.journal_path.display());
            self.shared.poison(reason, Some(e.kind()))
        })
    }

    /// Completes a staged journal with the lines written since it was staged, then puts it in
    /// place of the journal: fsync, rename, fsync the directory. Writes wait meanwhile, but
    /// only for the last few lines' copy and two fsyncs.
    fn switch_journal(&mut self, staged: &Staged) -> Result<()> {
        let path = &self.journal_path;
        let tmp = &staged.tmp;
        let completed = (|| {
            let delta = match self.tail.take() {
                Some((start, mut tail)) if staged.copied_upto >= start => {
                    tail.drain(..(staged.copied_upto - start) as usize);
                    tail
                }
                _ => self
                    .fs
                    .read_from(path, staged.copied_upto)
                    .map_err(|e| StoreError::io("read", path, e))?,
            };
            let (mut f, _) = self
                .fs
                .open_append(tmp)
                .map_err(|e| StoreError::io("open", tmp, e))?;
            f.append(&delta)
                .map_err(|e| StoreError::io("write", tmp, e))?;
            f.sync().map_err(|e| StoreError::io("fsync", tmp, e))?;
            self.fs
                .rename(tmp, path)
                .map_err(|e| StoreError::io("rename", tmp, e))
        })();
        if let Err(e) = completed {
            // The old journal is intact and still ours: keep appending to it.
            let _ = self.fs.remove(tmp);
            return Err(e);
        }
        // From here on the old file handle points at an unlinked inode: switch or stop.
        let switched = (|| {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StoreError::io("fsync", &self.dir, e))?;
            self.fs
                .open_append(path)
                .map_err(|e| StoreError::io("open", path, e))
        })();
        match switched {
            Ok((file, len)) => {
                let old = std::mem::replace(&mut self.file, file);
                // Closing the last handle of the unlinked old journal frees its blocks, which
                // took ~8 ms on ext4 in the compaction benchmark: not while writes wait.
                let _ = std::thread::Builder::new()
                    .name("store-unlink".into())
                    .spawn(move || drop(old));
                self.len = len;
                self.shared
                    .stats
                    .journal_bytes
                    .store(len, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.shared.poison(e.to_string(), e.io_kind());
                Err(e)
            }
        }
    }
}
