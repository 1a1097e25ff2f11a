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

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::watch;

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
    /// A snapshot covering `upto_seq` is durable: cut the journal to what comes after it.
    Rotate {
        upto_seq: u64,
        done: Box<dyn FnOnce(Result<Duration>) + Send>,
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
    pub poison: Mutex<Option<String>>,
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

impl<T> Shared<T> {
    pub fn poisoned(&self) -> Option<String> {
        self.poison.lock().unwrap().clone()
    }
    fn poison(&self, reason: String) {
        tracing::error!(%reason, "store stops accepting writes");
        self.poison.lock().unwrap().get_or_insert(reason);
    }
}

/// How many batch end positions to remember for journal rotation (older ones are found by
/// reading the journal).
const MAX_BATCH_ENDS: usize = 1 << 16;

/// The byte offset of the first journal line whose sequence number is above `seq`.
fn offset_after(journal: &[u8], seq: u64) -> usize {
    let mut offset = 0;
    for line in journal.split_inclusive(|b| *b == b'\n') {
        let line_seq = line
            .strip_prefix(b"{\"seq\":")
            .and_then(|rest| {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                std::str::from_utf8(&rest[..digits])
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        if line_seq > seq {
            break;
        }
        offset += line.len();
    }
    offset
}

pub(crate) struct Flusher<T> {
    pub fs: Arc<dyn Fs>,
    pub journal_path: PathBuf,
    pub dir: PathBuf,
    pub file: Box<dyn WriteFile>,
    pub len: u64,
    pub mode: Durability,
    pub shared: Arc<Shared<T>>,
    /// Called after every batch, so the actor can ship the next one.
    pub on_idle: Box<dyn Fn() + Send>,
    /// Journal length at the end of each batch since the last rotation: (last seq, offset).
    pub batch_ends: VecDeque<(u64, u64)>,
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
                            self.sync();
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
                    let outcome =
                        self.write_batch(&bytes, state.seq, &mut unsynced, &mut last_sync);
                    match outcome {
                        Ok(()) => {
                            let seq = state.seq;
                            self.shared.state.store(state);
                            self.shared.seq.send_replace(seq);
                            for w in waiters {
                                w(Ok(()));
                            }
                        }
                        Err(reason) => {
                            for w in waiters {
                                w(Err(StoreError::ReadOnly {
                                    reason: reason.clone(),
                                }));
                            }
                        }
                    }
                    self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
                    (self.on_idle)();
                }
                Job::Rotate { upto_seq, done } => {
                    if let Some(reason) = self.shared.poisoned() {
                        // The journal may end in unacknowledged lines: leave it as it is.
                        done(Err(StoreError::ReadOnly { reason }));
                        continue;
                    }
                    let started = Instant::now();
                    let result = self.rotate(upto_seq).map(|()| started.elapsed());
                    if let Ok(pause) = &result {
                        self.shared
                            .stats
                            .last_rotation_pause_nanos
                            .store(pause.as_nanos() as u64, Ordering::Relaxed);
                    }
                    done(result);
                }
            }
        }
        if unsynced {
            self.sync();
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
        last_seq: u64,
        unsynced: &mut bool,
        last_sync: &mut Instant,
    ) -> std::result::Result<(), String> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(reason);
        }
        if let Err(e) = self.file.append(bytes) {
            let reason = format!("write {} failed: {e}", self.journal_path.display());
            self.shared.poison(reason.clone());
            return Err(reason);
        }
        self.len += bytes.len() as u64;
        if self.batch_ends.len() == MAX_BATCH_ENDS {
            self.batch_ends.pop_front();
        }
        self.batch_ends.push_back((last_seq, self.len));
        self.shared
            .stats
            .journal_bytes
            .store(self.len, Ordering::Relaxed);
        match self.mode {
            Durability::Always => {
                // IMPORTANT: no caller is answered before this fsync returns.
                if !self.sync() {
                    return Err(self.shared.poisoned().unwrap_or_default());
                }
            }
            Durability::Interval(every) => {
                *unsynced = true;
                if last_sync.elapsed() >= every {
                    self.sync();
                    *unsynced = false;
                    *last_sync = Instant::now();
                }
            }
            Durability::Never => {}
        }
        Ok(())
    }

    /// Syncs the journal, recording latency; on failure poisons the store and returns false.
    fn sync(&mut self) -> bool {
        let t = Instant::now();
        let result = self.file.sync();
        let nanos = t.elapsed().as_nanos() as u64;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats.fsync_nanos_total.fetch_add(nanos, Ordering::Relaxed);
        stats.fsync_nanos_max.fetch_max(nanos, Ordering::Relaxed);
        match result {
            Ok(()) => true,
            Err(e) => {
                self.shared
                    .poison(format!("fsync {} failed: {e}", self.journal_path.display()));
                false
            }
        }
    }

    /// Replaces the journal by its part after `upto_seq` (a durable snapshot covers the rest):
    /// copy that tail to a temporary file, fsync, rename over the journal, fsync the directory.
    /// Writes wait only for the tail copy, which holds what arrived during the snapshot.
    fn rotate(&mut self, upto_seq: u64) -> Result<()> {
        let path = &self.journal_path;
        let tmp = self.journal_path.with_extension("journal.tmp");
        let (offset, tail) = match self.batch_ends.iter().find(|(seq, _)| *seq == upto_seq) {
            Some(&(_, offset)) => {
                let tail = self
                    .fs
                    .read_from(path, offset)
                    .map_err(|e| StoreError::io("read", path, e))?;
                (offset, tail)
            }
            None => {
                // The position was not remembered: find it by reading the sequence numbers.
                let all = self
                    .fs
                    .read_from(path, 0)
                    .map_err(|e| StoreError::io("read", path, e))?;
                let offset = offset_after(&all, upto_seq) as u64;
                (offset, all[offset as usize..].to_vec())
            }
        };
        let staged = (|| {
            let mut f = self
                .fs
                .create(&tmp)
                .map_err(|e| StoreError::io("create", &tmp, e))?;
            f.append(&tail)
                .map_err(|e| StoreError::io("write", &tmp, e))?;
            f.sync().map_err(|e| StoreError::io("fsync", &tmp, e))?;
            self.fs
                .rename(&tmp, path)
                .map_err(|e| StoreError::io("rename", &tmp, e))
        })();
        if let Err(e) = staged {
            // The old journal is intact and still ours: keep appending to it.
            let _ = self.fs.remove(&tmp);
            return Err(e);
        }
        // From here on the old file handle points at an unlinked inode: switch or stop.
        let switched = (|| {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StoreError::io("fsync", &self.dir, e))?;
            let (file, len) = self
                .fs
                .open_append(path)
                .map_err(|e| StoreError::io("open", path, e))?;
            Ok::<_, StoreError>((file, len))
        })();
        match switched {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
                self.batch_ends.retain(|(seq, _)| *seq > upto_seq);
                for (_, off) in &mut self.batch_ends {
                    *off -= offset;
                }
                self.shared
                    .stats
                    .journal_bytes
                    .store(len, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.shared.poison(e.to_string());
                Err(e)
            }
        }
    }
}
