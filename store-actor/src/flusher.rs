//! The flusher: the one thread that writes and syncs a store's journal.
//!
//! The actor hands it a [`Job::Batch`] (journal bytes, the callers waiting on them, and the state
//! to publish once they are durable) and keeps serving messages meanwhile; whatever arrives while
//! a batch is being synced becomes the next batch, so concurrent writers share one fsync (group
//! commit). HTTP worker threads never touch the disk.
//!
//! If a journal write or fsync fails, the store stops taking writes (reads go on) and *heals*
//! by itself: the flusher cuts the journal back to its last acknowledged length, so no line of
//! the failed batch (whose callers are told it failed) can be replayed later, and the actor
//! rolls its working state back to the published one. Then the flusher probes, with backoff,
//! until a test write and fsync succeed (the disk has room again), and resumes on a freshly
//! opened handle: after a failed fsync the kernel may have dropped the dirty pages and a retried
//! fsync on the same file can falsely succeed, so the old handle is never synced again. What the
//! new handle finds is the durable prefix, which is exactly the published state, so this is what
//! reopening the store would do, without reading it again.
//!
//! A few failures cannot be healed that way and stop writes until the store is reopened
//! ([`Fault::heals`] false): a failed background fsync in `Interval` mode (its writes were
//! already acknowledged), and a failure in the middle of a journal switch.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::compaction::{CompactionReport, Staged, Switched};
use crate::error::{Result, StoreError};
use crate::fs::{Fs, LockGuard, WriteFile};
use crate::history::History;
use crate::options::{Durability, StoreOptions};
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
        staged: Staged<T>,
        done: Box<dyn FnOnce(Result<Switched<T>>) + Send>,
    },
}

/// Where a batch's bytes went: file generation and offset (see [`crate::disk::Loc`]).
pub(crate) type Written = (u16, u64);

/// What the handle, the actor and the flusher share.
///
/// Only the flusher publishes: it writes `state`, `seq` and `closed`, and sets and clears
/// `fault` (the actor may only make a fault permanent); the handles only read them.
#[derive(Debug)]
pub(crate) struct Shared<T> {
    /// The latest published state: every mutation in it is durable (per the durability mode).
    /// Replaced after each batch; readers load it without a lock and keep what they loaded.
    pub state: ArcSwap<State<T>>,
    /// `state.seq` of the latest published state, sent after `state` is stored, so a
    /// subscriber woken by it always finds at least that sequence number in `state`.
    pub seq: watch::Sender<u64>,
    /// Why writes stopped: `None` until a journal write or fsync fails (or a journal switch,
    /// after its rename); cleared again when the flusher has healed the store.
    pub fault: Mutex<Option<Fault>>,
    /// `false` until the flusher has exited and released the files and the lock;
    /// [`Store::close`](crate::Store::close) waits for `true`.
    pub closed: watch::Sender<bool>,
    /// Counters for [`Status`](crate::Status).
    pub stats: Stats,
    /// Whether a damaged last journal line was dropped at open: `Some(true)` for a whole line
    /// failing its checksum, `Some(false)` for a torn one.
    pub dropped_at_open: Option<bool>,
    /// Why the last compaction failed (cleared by a success), with the I/O error's kind.
    pub last_compaction_failure: Mutex<Option<(String, Option<io::ErrorKind>)>>,
    /// The change feed's files: the flusher retires each journal it replaces there.
    pub history: History,
}

impl<T> Shared<T> {
    /// Publishes `state` as loaded from disk, with the sizes of the files it came from and what
    /// was dropped from the journal's tail.
    pub fn new(
        state: State<T>,
        snapshot_bytes: u64,
        journal_bytes: u64,
        dropped_at_open: Option<bool>,
        history: History,
    ) -> Self {
        let (seq, _) = watch::channel(state.seq);
        let (closed, _) = watch::channel(false);
        let stats = Stats::default();
        stats
            .snapshot_bytes
            .store(snapshot_bytes, Ordering::Relaxed);
        stats.journal_bytes.store(journal_bytes, Ordering::Relaxed);
        Self {
            state: ArcSwap::from_pointee(state),
            seq,
            fault: Mutex::new(None),
            closed,
            stats,
            dropped_at_open,
            last_compaction_failure: Mutex::new(None),
            history,
        }
    }
}

/// Counters for status and metrics, since the store was opened. The actor writes the snapshot
/// and compaction counters, the flusher all the others.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// The journal's length in whole lines (the flusher's `len`), stored with `Release` after
    /// each append: a compaction that loads it with `Acquire` may copy that many bytes.
    pub journal_bytes: AtomicU64,
    /// The snapshot's size at open, then after each compaction.
    pub snapshot_bytes: AtomicU64,
    /// Journal fsyncs, failed ones included.
    pub fsyncs: AtomicU64,
    pub fsync_nanos_total: AtomicU64,
    pub fsync_nanos_max: AtomicU64,
    /// Batches handled, failed ones included.
    pub batches: AtomicU64,
    pub compactions: AtomicU64,
    /// Compactions that failed.
    pub compaction_failures: AtomicU64,
    /// How long the last successful journal switch made writes wait.
    pub last_rotation_pause_nanos: AtomicU64,
}

/// Why writes stopped: the message, the kind of the I/O error (kept for
/// [`StoreError::is_disk_full`]), and whether the flusher is healing the store.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    reason: String,
    kind: Option<io::ErrorKind>,
    /// When the flusher next tries to resume writes; `None` when it never will (only reopening
    /// the store brings writes back).
    next_try: Option<Instant>,
}

impl Fault {
    /// The error a write refused because of this fault gets.
    pub fn error(&self) -> StoreError {
        StoreError::ReadOnly {
            reason: self.reason.clone(),
            kind: self.kind,
            retry_after: self.next_try.map(|at| {
                at.saturating_duration_since(Instant::now())
                    .max(MIN_HEAL_WAIT)
            }),
        }
    }
    /// Whether the store resumes writes by itself.
    pub fn heals(&self) -> bool {
        self.next_try.is_some()
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl<T> Shared<T> {
    /// Why writes stopped, while they are.
    pub fn fault(&self) -> Option<Fault> {
        self.fault.lock().unwrap().clone()
    }
    /// The error refused writes get, while writes are stopped.
    pub fn read_only(&self) -> Option<StoreError> {
        self.fault.lock().unwrap().as_ref().map(Fault::error)
    }
    /// Stops writes; a fault already set keeps its reason (the first failure is the cause) but
    /// becomes permanent if this one is. Returns the fault in force.
    pub fn stop_writes(&self, reason: String, kind: Option<io::ErrorKind>, heals: bool) -> Fault {
        let mut fault = self.fault.lock().unwrap();
        let next_try = heals.then(|| Instant::now() + MIN_HEAL_WAIT);
        match fault.as_mut() {
            Some(f) => {
                if !heals {
                    f.next_try = None;
                }
            }
            None => {
                if heals {
                    tracing::warn!(%reason, "store stops accepting writes until the disk recovers");
                } else {
                    tracing::error!(%reason, "store stops accepting writes until it is reopened");
                }
                *fault = Some(Fault {
                    reason,
                    kind,
                    next_try,
                });
            }
        }
        fault.clone().expect("just set")
    }
    /// Writes stop until the store is reopened (the actor could not roll back).
    pub fn stop_for_good(&self, why: &str) {
        let mut fault = self.fault.lock().unwrap();
        if let Some(f) = fault.as_mut()
            && f.next_try.take().is_some()
        {
            tracing::error!(reason = %f.reason, why, "store stops accepting writes until it is reopened");
        }
    }
}

/// First wait before the flusher tries to resume writes after a failure; doubled after each
/// failed try up to [`MAX_HEAL_WAIT`]: writes resume within that long of the disk recovering.
const MIN_HEAL_WAIT: Duration = Duration::from_millis(250);
const MAX_HEAL_WAIT: Duration = Duration::from_secs(2);
/// What a try to resume writes writes (and syncs, and deletes) to check the disk takes writes.
const PROBE_BYTES: usize = 64 << 10;

/// A step of opening the store that could not run yet (the disk took no writes): the flusher
/// runs it first when it tries to resume writes.
pub(crate) type Repair = Box<dyn FnMut() -> Result<()> + Send>;

/// How long the flusher waits, after a successful batch of `writers` callers (already
/// answered), before saying it is idle: half as long as the last fsync took, at most
/// [`MAX_GATHER`], so that the next batch gathers more writes and one fsync serves more of
/// them. Only with an fsync per batch, and only after a batch that many writers shared: under
/// load writes arrive faster than fsyncs complete, and an fsync costs the machine about as
/// much CPU as a couple of creates (70–90 µs each on this project's VM disk, BENCHMARKS.md),
/// so fewer, fuller fsyncs leave more CPU for the requests. A lone writer never waits: its
/// batch is shipped as soon as it arrives.
fn gather_wait(mode: Durability, writers: usize, last_sync: Duration) -> Option<Duration> {
    (mode == Durability::Always && writers >= GATHER_MIN_WRITERS)
        .then(|| (last_sync / 2).min(MAX_GATHER))
}

/// The journal as the store opened it, for the flusher to own.
pub(crate) struct Opened {
    /// Open for appending (or [`crate::fs::Unopened`] if the store opened read-only).
    pub file: Box<dyn WriteFile>,
    /// Its length in whole lines: where the next append goes.
    pub len: u64,
    /// What opening could not finish (dropping a torn tail), to run before writes resume.
    pub repair: Option<Repair>,
    pub lock: Box<dyn LockGuard>,
}

/// Group commit under load: after a durable batch shared by at least this many writers, the
/// flusher waits a little before taking the next one (see [`gather_wait`]).
const GATHER_MIN_WRITERS: usize = 8;
/// The longest such wait, however slow the last fsync was.
const MAX_GATHER: Duration = Duration::from_millis(1);

/// The most bytes kept for a compaction's journal switch (see [`Job::Track`]).
const MAX_TAIL: usize = 64 << 20;

/// The owner of the journal file while the store is open, on its own thread ([`Flusher::spawn`]).
pub(crate) struct Flusher<T> {
    /// The file system the store was opened on (the options' `fs`).
    fs: Arc<dyn Fs>,
    /// `DIR/NAME.journal`, the file `file` appends to (between a journal switch's rename and
    /// its reopen, `file` is still the replaced, unlinked journal).
    journal_path: PathBuf,
    /// The store's directory, synced after a journal switch renames the staged journal in.
    dir: PathBuf,
    /// The journal, opened for appending; only the flusher writes it. Replaced by the staged
    /// journal at each compaction's switch, and by a fresh handle when writes resume after a
    /// failure. Nothing is appended or synced while writes are stopped.
    file: Box<dyn WriteFile>,
    /// Bytes in `file` as of the last successful batch (whole, acknowledged lines): the offset
    /// of the next append, and where a failed batch is cut off. Published as
    /// `stats.journal_bytes` after every batch and switch.
    len: u64,
    /// While writes are stopped by a fault that heals: when to try resuming, and the wait
    /// after that try if it fails.
    heal: Option<(Instant, Duration)>,
    /// What opening the store could not finish; run by the first successful try to heal.
    repair: Option<Repair>,
    /// When `file` is synced: after every batch (`Always`), within the interval after a write
    /// and at exit (`Interval`), or never.
    mode: Durability,
    /// Published state and counters; the flusher is the only writer of its state, sequence
    /// number and closed flag.
    shared: Arc<Shared<T>>,
    /// `Some((start, bytes))` from a [`Job::Track`] until the next [`Job::Rotate`] takes it:
    /// `bytes` is everything appended since offset `start`, so `start + bytes.len() == len`.
    /// Reset to `None` past [`MAX_TAIL`]: the switch then reads the journal instead.
    tail: Option<(u64, Vec<u8>)>,
    /// Called after every batch, failed or not, so the actor can ship the next (or roll back);
    /// must not block. Gets where the batch was written, or why it failed.
    on_idle: Box<dyn Fn(std::result::Result<Written, Fault>) + Send>,
    /// The journal's file generation: locations of records written to it carry it. Set by each
    /// switch to the staged journal's.
    generation: u16,
    /// The store's file lock, held for as long as the flusher owns the files. Dropped before
    /// `shared.closed` turns true, so that reopening after a close finds it free.
    _lock: Box<dyn LockGuard>,
    /// How long the last journal fsync took (for [`Flusher::gather`]).
    last_sync: Duration,
}

impl<T: Send + Sync + 'static> Flusher<T> {
    /// Starts the flusher of the store opened with `options` on its own thread: it owns the
    /// journal and the file lock (`opened`), and handles `jobs` until the actor drops the
    /// sending side. If the store opened read-only (`shared` has a fault), it starts healing.
    pub fn spawn(
        options: &StoreOptions<T>,
        opened: Opened,
        shared: Arc<Shared<T>>,
        jobs: Receiver<Job<T>>,
        on_idle: impl Fn(std::result::Result<Written, Fault>) + Send + 'static,
    ) -> io::Result<()> {
        let heal = shared
            .fault()
            .is_some()
            .then(|| (Instant::now(), MIN_HEAL_WAIT));
        let flusher = Flusher {
            fs: options.fs.clone(),
            journal_path: options.journal_path(),
            dir: options.dir.clone(),
            file: opened.file,
            len: opened.len,
            heal,
            repair: opened.repair,
            mode: options.durability,
            shared,
            tail: None,
            on_idle: Box::new(on_idle),
            generation: crate::recovery::JOURNAL_GEN,
            _lock: opened.lock,
            last_sync: Duration::ZERO,
        };
        std::thread::Builder::new()
            .name(format!("store-flush-{}", options.name))
            .spawn(move || flusher.run(jobs))
            .map(drop)
    }

    fn run(mut self, jobs: Receiver<Job<T>>) {
        let mut unsynced = false;
        let mut last_sync = Instant::now();
        loop {
            let wait = match (self.heal, self.mode, unsynced) {
                (Some((at, _)), ..) => Some(at.saturating_duration_since(Instant::now())),
                (None, Durability::Interval(every), true) => {
                    Some(every.saturating_sub(last_sync.elapsed()))
                }
                _ => None,
            };
            let job = match wait {
                Some(wait) => match jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.heal.is_some() {
                            if self.try_to_heal() {
                                unsynced = false; // the fresh handle's sync covered it
                            }
                        } else {
                            self.background_sync();
                            unsynced = false;
                            last_sync = Instant::now();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match jobs.recv() {
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
                    let at = (self.generation, self.len);
                    let outcome = self.write_batch(&bytes, &mut unsynced, &mut last_sync);
                    let written = outcome.clone().map(|()| at);
                    let gather = outcome
                        .is_ok()
                        .then(|| gather_wait(self.mode, waiters.len(), self.last_sync))
                        .flatten();
                    match outcome {
                        Ok(()) => {
                            let seq = state.seq;
                            self.shared.state.store(state);
                            self.shared.seq.send_replace(seq);
                            for w in waiters {
                                w(Ok(()));
                            }
                        }
                        Err(fault) => {
                            for w in waiters {
                                w(Err(fault.error()));
                            }
                        }
                    }
                    self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
                    if let Some(wait) = gather {
                        std::thread::sleep(wait);
                    }
                    (self.on_idle)(written);
                }
                Job::Track => self.tail = Some((self.len, Vec::new())),
                Job::Rotate { mut staged, done } => {
                    if let Some(refused) = self.shared.read_only() {
                        // The journal may end in unacknowledged lines: leave it as it is.
                        let _ = self.fs.remove(&staged.tmp);
                        done(Err(refused));
                        continue;
                    }
                    let snapshot_time = staged.started.elapsed();
                    let started = Instant::now();
                    let result = self.switch_journal(&mut staged).map(|()| {
                        let report = CompactionReport {
                            seq: staged.seq,
                            records: staged.records,
                            snapshot_bytes: staged.snapshot_bytes,
                            snapshot_time,
                            pause: started.elapsed(),
                        };
                        (report, staged.index.take())
                    });
                    if let Ok((report, _)) = &result {
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
            self.background_sync(); // not after a failure: it checks
        }
        tracing::debug!(journal = %self.journal_path.display(), "flusher stopped");
        let shared = self.shared.clone();
        drop(self); // releases the files and the lock before saying so
        shared.closed.send_replace(true);
    }

    /// Appends and (per the durability mode) syncs one batch. On failure, stops writes and cuts
    /// the batch off the journal again, before its callers are told.
    fn write_batch(
        &mut self,
        bytes: &[u8],
        unsynced: &mut bool,
        last_sync: &mut Instant,
    ) -> std::result::Result<(), Fault> {
        if let Some(fault) = self.shared.fault() {
            return Err(fault);
        }
        if let Err(e) = self.file.append(bytes) {
            let reason = format!("write {} failed: {e}", self.journal_path.display());
            return Err(self.failed(reason, e.kind()));
        }
        match self.mode {
            Durability::Always => {
                // IMPORTANT: no caller is answered before this fsync returns.
                if let Err(e) = self.timed_sync() {
                    let reason = format!("fsync {} failed: {e}", self.journal_path.display());
                    return Err(self.failed(reason, e.kind()));
                }
            }
            Durability::Interval(every) => {
                *unsynced = true;
                if last_sync.elapsed() >= every {
                    self.background_sync();
                    *unsynced = false;
                    *last_sync = Instant::now();
                }
            }
            Durability::Never => {}
        }
        self.len += bytes.len() as u64;
        if let Some((_, tail)) = &mut self.tail {
            if tail.len() < MAX_TAIL {
                tail.extend_from_slice(bytes);
            } else {
                self.tail = None; // a compaction that slow reads the journal instead
            }
        }
        // Release: a compaction that reads this length may copy everything below it, so it
        // covers only whole lines whose batch succeeded.
        self.shared
            .stats
            .journal_bytes
            .store(self.len, Ordering::Release);
        Ok(())
    }

    /// A batch failed: stops writes, and cuts the journal back to its last acknowledged length
    /// (what reached the file of the failed batch would otherwise be replayed after a restart,
    /// a write its callers were told failed). If cutting fails too, healing tries again.
    fn failed(&mut self, reason: String, kind: io::ErrorKind) -> Fault {
        let fault = self.shared.stop_writes(reason, Some(kind), true);
        if let Err(e) = self.fs.truncate(&self.journal_path, self.len) {
            tracing::warn!(error = %e, "could not cut the failed batch off the journal yet");
        }
        if fault.heals() && self.heal.is_none() {
            self.heal = Some((Instant::now() + MIN_HEAL_WAIT, MIN_HEAL_WAIT));
        }
        fault
    }

    /// Tries to resume writes: cuts the journal to its acknowledged length (again: idempotent),
    /// opens it afresh (the old handle may hide a lost write-back), and writes, syncs and
    /// deletes a probe file, which fails while the disk is still full. Returns whether writes
    /// resumed; if not, waits longer before the next try.
    fn try_to_heal(&mut self) -> bool {
        let Some((_, wait)) = self.heal else {
            return false;
        };
        if !self.shared.fault().is_some_and(|f| f.heals()) {
            self.heal = None; // made permanent meanwhile
            return false;
        }
        let probe = self.journal_path.with_extension("journal.probe");
        let attempt = (|| -> std::result::Result<Box<dyn WriteFile>, String> {
            if let Some(repair) = &mut self.repair {
                repair().map_err(|e| e.to_string())?;
                self.repair = None;
            }
            let io = |e: io::Error| format!("{}: {e}", self.journal_path.display());
            let (mut file, on_disk) = self.fs.open_append(&self.journal_path).map_err(io)?;
            if on_disk < self.len {
                return Err(format!(
                    "the journal is {on_disk} bytes long, shorter than its {} acknowledged",
                    self.len
                ));
            }
            if on_disk > self.len {
                self.fs.truncate(&self.journal_path, self.len).map_err(io)?;
            }
            file.sync().map_err(io)?;
            // The journal may have been created just now.
            self.fs.sync_dir(&self.dir).map_err(io)?;
            let written = (|| {
                let mut p = self.fs.create(&probe)?;
                p.append(&[0; PROBE_BYTES])?;
                p.sync()
            })();
            let _ = self.fs.remove(&probe);
            written.map_err(|e| format!("{}: {e}", probe.display()))?;
            Ok(file)
        })();
        match attempt {
            Ok(file) => {
                self.file = file;
                self.heal = None;
                self.tail = None; // a compaction that tracked the failed batch reads instead
                let mut fault = self.shared.fault.lock().unwrap();
                // The actor may have made it permanent meanwhile; if not, writes resume.
                if fault.as_ref().is_some_and(Fault::heals) {
                    let reason = fault.take().map(|f| f.reason).unwrap_or_default();
                    tracing::info!(after = %reason, "store accepts writes again");
                    return true;
                }
                false
            }
            Err(e) => {
                let next = (wait * 2).min(MAX_HEAL_WAIT);
                let at = Instant::now() + wait;
                self.heal = Some((at, next));
                if let Some(f) = self.shared.fault.lock().unwrap().as_mut()
                    && f.next_try.is_some()
                {
                    f.next_try = Some(at);
                }
                tracing::debug!(error = %e, retry_in_ms = wait.as_millis() as u64, "store still cannot write");
                false
            }
        }
    }

    /// `Interval` mode's sync of writes already acknowledged: if it fails, they may be lost
    /// and writes stop until the store is reopened.
    fn background_sync(&mut self) {
        if self.shared.fault.lock().unwrap().is_some() {
            return; // never sync a handle after a failure
        }
        if let Err(e) = self.timed_sync() {
            let reason = format!("fsync {} failed: {e}", self.journal_path.display());
            self.shared.stop_writes(reason, Some(e.kind()), false);
        }
    }

    /// Syncs the journal, recording latency.
    fn timed_sync(&mut self) -> io::Result<()> {
        let t = Instant::now();
        let result = self.file.sync();
        self.last_sync = t.elapsed();
        let nanos = self.last_sync.as_nanos() as u64;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats.fsync_nanos_total.fetch_add(nanos, Ordering::Relaxed);
        stats.fsync_nanos_max.fetch_max(nanos, Ordering::Relaxed);
        result
    }

    /// Completes a staged journal with the lines written since it was staged, then puts it in
    /// place of the journal: fsync, rename, fsync the directory. Writes wait meanwhile, but
    /// only for the last few lines' copy and two fsyncs.
    fn switch_journal(&mut self, staged: &mut Staged<T>) -> Result<()> {
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
            // The old journal stays readable for the change feed under its retired name.
            // Losing it costs consumers a resync, not data: never a reason to stop the switch.
            if self.len > 0
                && let Err(e) = self.shared.history.retire(self.shared.state.load().seq)
            {
                tracing::warn!(error = %e, "could not keep the old journal for the change feed");
            }
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
                if let Some(index) = &mut staged.index {
                    // Index mode: the new journal, for reads of the records written to it.
                    match self.fs.open_file(path) {
                        Ok(Some(reader)) => index.journal = Some(reader),
                        Ok(None) => {}
                        Err(e) => {
                            let e = StoreError::io("open", path, e);
                            self.shared.stop_writes(e.to_string(), e.io_kind(), false);
                            return Err(e);
                        }
                    }
                    self.generation = index.journal_gen;
                }
                let old = std::mem::replace(&mut self.file, file);
                // Closing the last handle of an unlinked old journal frees its blocks, which
                // took ~8 ms on ext4 in the compaction benchmark, and so does deleting retired
                // journals that left the feed's window: not while writes wait.
                let shared = self.shared.clone();
                let _ = std::thread::Builder::new()
                    .name("store-unlink".into())
                    .spawn(move || {
                        drop(old);
                        if let Err(e) = shared.history.prune() {
                            tracing::warn!(error = %e, "could not delete old change feed history");
                        }
                    });
                self.len = len;
                self.shared
                    .stats
                    .journal_bytes
                    .store(len, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.shared.stop_writes(e.to_string(), e.io_kind(), false);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_batch_many_writers_shared_makes_the_flusher_wait_and_never_long() {
        let fsync = Duration::from_micros(300);
        let always = Durability::Always;
        assert_eq!(gather_wait(always, 1, fsync), None, "a lone writer");
        assert_eq!(gather_wait(always, GATHER_MIN_WRITERS - 1, fsync), None);
        assert_eq!(
            gather_wait(always, GATHER_MIN_WRITERS, fsync),
            Some(Duration::from_micros(150)),
            "half the last fsync"
        );
        assert_eq!(
            gather_wait(always, 64, Duration::from_millis(40)),
            Some(MAX_GATHER),
            "a stalled disk does not stall writers longer"
        );
        for mode in [
            Durability::Never,
            Durability::Interval(Duration::from_millis(5)),
        ] {
            assert_eq!(
                gather_wait(mode, 64, fsync),
                None,
                "{mode:?}: no fsync per batch"
            );
        }
    }
}
