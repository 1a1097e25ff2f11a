//! [`Store`], the handle through which everything reaches a store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::Data;
use crate::actor::{Batch, Close, Compact, Flushed, Mutate, Reply, StoreActor};
use crate::batch::{Mutation, Op};
use crate::compaction::CompactionReport;
use crate::error::{Result, StoreError};
use crate::flusher::{Flusher, Shared, Stats};
use crate::history::History;
use crate::options::StoreOptions;
use crate::query::{Page, Query};
use crate::record::{Event, IndexKey, Record};
use crate::recovery;

/// A cheap-to-clone, `Send + Sync` handle to one store.
///
/// Writes are messages to the store's actor and resolve once durable (per the store's
/// [`Durability`](crate::Durability)). Reads are plain method calls on the latest published
/// state: they take no lock, never wait for a write, and scale with the calling threads.
/// Works under any tokio-based framework; the actor runs on its own thread.
pub struct Store<T: Data> {
    addr: Addr<StoreActor<T>>,
    shared: Arc<Shared<T>>,
}

impl<T: Data> Clone for Store<T> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T: Data> fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("state", &*self.shared.state.load())
            .finish()
    }
}

/// A store's health and size, for readiness checks and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// False while an I/O failure stops writes (the store is then not ready).
    pub writable: bool,
    /// The I/O failure that stopped writes, while it does (a closed store is not writable
    /// either).
    pub read_only_reason: Option<String>,
    /// True once writes stopped in a way only reopening the store cures (the process is then
    /// not live: a restart brings writes back); false while none did, or while the store heals
    /// by itself.
    pub needs_reopen: bool,
    /// Records, archived ones included.
    pub records: u64,
    /// Records that are not archived.
    pub live: u64,
    /// The last durable sequence number.
    pub last_seq: u64,
    /// Size of the journal, which holds the writes since the snapshot (compaction cuts it).
    pub journal_bytes: u64,
    /// Size of the snapshot, as of open or the last compaction (0 without one).
    pub snapshot_bytes: u64,
    /// Journal fsyncs since open.
    pub fsyncs: u64,
    /// Total time spent in journal fsyncs.
    pub fsync_total: Duration,
    /// Longest journal fsync since open.
    pub fsync_max: Duration,
    /// Group commits written (each is one write and, with `Always`, one fsync, shared by the
    /// single writes and atomic [`Store::batch`]es pending at the time).
    pub batches: u64,
    /// Compactions completed since open, automatic and requested ones.
    pub compactions: u64,
    /// How long writes waited during the last journal cut.
    pub last_compaction_pause: Duration,
    /// Compactions that failed since open (automatic ones are then retried with a backoff
    /// from 1 s to 60 s; writes go on with the old files).
    pub compaction_failures: u64,
    /// Why the last compaction failed, if the last one did, and whether it was a full disk.
    pub last_compaction_failure: Option<CompactionFailure>,
    /// A torn last journal line (no newline: never acknowledged) was dropped at open.
    pub torn_line_dropped: bool,
    /// A whole last journal line failing its checksum was dropped at open: it may have been an
    /// acknowledged write damaged on disk (its bytes are in `NAME.journal.broken.N`).
    pub damaged_line_dropped: bool,
    /// Index mode: estimated bytes of parsed records in the cache (0 in memory mode).
    pub cached_bytes: u64,
}

/// Why a compaction failed (see [`Status::last_compaction_failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionFailure {
    /// The error.
    pub reason: String,
    /// Whether it was a full disk (or quota).
    pub disk_full: bool,
}

impl<T: Data> Store<T> {
    /// Opens (or creates) the store: takes the file lock, loads the snapshot, replays the
    /// journal, drops a torn last journal line (keeping its bytes in `NAME.journal.broken.N`), and starts the
    /// actor and the flusher on their own threads.
    ///
    /// Fails with [`StoreError::Locked`] if another store holds the files and with
    /// [`StoreError::Corrupt`] on damage it cannot safely repair.
    pub async fn open(options: StoreOptions<T>) -> Result<Self> {
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("store-{}", options.name))
            .spawn(move || run_store_thread(options, tx))
            .map_err(|e| StoreError::io("spawn", "store thread", e))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Sends a write to the actor and waits for its one answer. `do_send` skips actix's own
    /// reply (a second wake-up of this task) and its mailbox bound: every writer awaits its
    /// answer, so the queue never holds more than one message per waiting caller. A stopped
    /// actor drops the message, and with it the reply: [`StoreError::Closed`].
    async fn write<R, M>(&self, message: impl FnOnce(Reply<R>) -> M) -> Result<R>
    where
        M: Message<Result = ()> + Send + 'static,
        StoreActor<T>: Handler<M>,
        <StoreActor<T> as Actor>::Context: actix::dev::ToEnvelope<StoreActor<T>, M>,
    {
        let (reply, answer) = oneshot::channel();
        self.addr.do_send(message(reply));
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates a record with a fresh time-ordered (v7) id.
    pub async fn create(&self, data: T) -> Result<Arc<Record<T>>> {
        self.write(|reply| Mutate(Mutation::Create { id: None, data }, reply))
            .await
    }

    /// Creates a record with the given id ([`StoreError::AlreadyExists`] if taken).
    pub async fn create_with_id(&self, id: Uuid, data: T) -> Result<Arc<Record<T>>> {
        self.write(|reply| Mutate(Mutation::Create { id: Some(id), data }, reply))
            .await
    }

    /// Changes a live record atomically: `change` gets the current data inside the actor and
    /// returns the new data, or an error that leaves the record unchanged
    /// ([`StoreError::Rejected`]). With `expected`, the change applies only at that version
    /// ([`StoreError::Conflict`] otherwise).
    pub async fn update<F, E>(
        &self,
        id: Uuid,
        expected: Option<u64>,
        change: F,
    ) -> Result<Arc<Record<T>>>
    where
        F: FnOnce(&T) -> std::result::Result<T, E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Op(mutation) = Op::update(id, expected, change);
        self.write(|reply| Mutate(mutation, reply)).await
    }

    /// Replaces a live record's data (see [`Store::update`] for `expected`).
    pub async fn replace(
        &self,
        id: Uuid,
        expected: Option<u64>,
        data: T,
    ) -> Result<Arc<Record<T>>> {
        self.update(id, expected, move |_| Ok::<_, StoreError>(data))
            .await
    }

    /// Archives a live record: it becomes a read-only tombstone, left out of lists.
    pub async fn archive(&self, id: Uuid, expected: Option<u64>) -> Result<Arc<Record<T>>> {
        self.write(|reply| Mutate(Mutation::Archive { id, expected }, reply))
            .await
    }

    /// Applies several mutations atomically: all of them, or none.
    ///
    /// The operations run in order inside the actor, each on the state the earlier ones left
    /// (an [`Op::update`] closure sees the record as changed by earlier ops of the batch, so a
    /// check it makes is atomic with the whole batch). The same record may be touched by several
    /// ops: they apply one after the other. The result holds, in op order, the record as each op
    /// left it (its event's record).
    ///
    /// If any op fails, nothing is applied and nothing is written: the error is
    /// [`StoreError::BatchFailed`] with the index of the first failing op and its own error
    /// ([`StoreError::NotFound`], [`StoreError::Archived`], [`StoreError::Conflict`],
    /// [`StoreError::AlreadyExists`] or [`StoreError::Rejected`]). Errors of the store itself
    /// ([`StoreError::Closed`], [`StoreError::ReadOnly`]) are returned as they are.
    ///
    /// Durability is that of a single write: the batch resolves once its journal line is durable
    /// per the [`Durability`](crate::Durability) mode, sharing fsyncs with concurrent writes
    /// (group commit). Each op gets its own consecutive sequence number and change-feed event, but
    /// readers (and [`Store::wait_events_after`]) only ever see the state before or after the
    /// whole batch. An empty batch writes nothing and returns an empty vector.
    ///
    /// ```
    /// use store_actor::{Op, Store, StoreError, StoreOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let stock = Store::open(StoreOptions::<u32>::new(dir.path(), "stock")).await?;
    /// let (a, b) = (stock.create(5).await?.id, stock.create(1).await?.id);
    /// let take = |n: u32| move |left: &u32| left.checked_sub(n).ok_or("not enough left");
    ///
    /// // Both reservations, or neither: b has only 1 left.
    /// let err = stock.batch(vec![Op::update(a, None, take(2)), Op::update(b, None, take(2))]).await;
    /// assert!(matches!(err, Err(StoreError::BatchFailed { index: 1, .. })));
    /// assert_eq!((stock.get(a)?.data, stock.get(b)?.data), (5, 1));
    ///
    /// let done = stock.batch(vec![Op::update(a, None, take(2)), Op::update(b, None, take(1))]).await?;
    /// assert_eq!((done[0].data, done[1].data), (3, 0));
    /// assert_eq!(stock.events_after(2, 10)?.len(), 2); // one event per op: sequences 3 and 4
    /// # stock.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn batch(&self, ops: Vec<Op<T>>) -> Result<Vec<Arc<Record<T>>>> {
        self.write(|reply| Batch(ops, reply)).await
    }

    /// The record with this id, archived or not. In index mode this may read the disk (one
    /// positional read of the record, on a cache miss).
    pub fn get(&self, id: Uuid) -> Result<Arc<Record<T>>> {
        self.shared
            .state
            .load()
            .get(&id)?
            .ok_or(StoreError::NotFound { id })
    }

    /// Many records at once, from one consistent state: `None` for unknown ids.
    pub fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Option<Arc<Record<T>>>>> {
        let state = self.shared.state.load();
        ids.iter().map(|id| state.get(id)).collect()
    }

    /// One page of a list (see [`Query`]). In index mode the records examined may be read from
    /// disk (up to the query's budget of them): from async code, [`Store::list_async`] does
    /// that on a blocking thread.
    pub fn list(&self, query: &Query<T>) -> Result<Page<T>> {
        self.shared.state.load().list(query)
    }

    /// [`Store::list`] for async callers: in index mode it runs on a blocking thread, so that a
    /// page read from disk never holds up the caller's other tasks; in memory mode it runs
    /// right away.
    pub async fn list_async(&self, query: Query<T>) -> Result<Page<T>> {
        let on_disk = self.shared.state.load().disk.is_some();
        if !on_disk || tokio::runtime::Handle::try_current().is_err() {
            return self.list(&query);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.list(&query))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// How many records are live (not archived), in O(1).
    pub fn count(&self) -> u64 {
        self.shared.state.load().live
    }

    /// How many records match `query`'s conditions (archived flag, filter, index match); its
    /// order, limit and cursor are ignored. O(matches) with an index match, O(1) without
    /// conditions, a scan otherwise.
    pub fn count_matching(&self, query: &Query<T>) -> Result<u64> {
        self.shared.state.load().count_matching(query)
    }

    /// Records whose index `index` holds `key` (archived ones included), through the index.
    pub fn lookup(&self, index: &str, key: &IndexKey) -> Result<Vec<Arc<Record<T>>>> {
        let state = self.shared.state.load();
        let mut out = Vec::new();
        for id in state.lookup_ids(index, key)? {
            out.extend(state.get(&id)?);
        }
        Ok(out)
    }

    /// Every record (archived ones included) in id order, from one consistent state. In index
    /// mode each is read from disk (bypassing the cache); one that cannot be read is logged and
    /// left out.
    pub fn all(&self) -> impl Iterator<Item = Arc<Record<T>>> + use<T> {
        let state = self.shared.state.load_full();
        let records = state.records.clone();
        records
            .into_iter()
            .filter_map(move |(id, slot)| match state.resolve(id, &slot, false) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(%id, error = %e, "record unreadable");
                    None
                }
            })
    }

    /// Up to `limit` events after sequence `after` (0: from the oldest one kept), in order.
    ///
    /// The latest events come from memory ([`StoreOptions::feed_retention`]); older ones are
    /// read from the journal and the journals compaction retired
    /// ([`StoreOptions::feed_history`]), so this may read the disk (a few small positional
    /// reads, then one sequential read of the page): [`Store::wait_events_after`] does that on
    /// a blocking thread. [`StoreError::TooOld`] when the events are kept nowhere any more:
    /// resynchronise from the state.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event<T>>>> {
        let state = self.shared.state.load();
        let in_memory_from = match state.events_after(after, limit) {
            Err(StoreError::TooOld {
                oldest_available, ..
            }) => oldest_available,
            answer => return answer,
        };
        let mut events = self
            .shared
            .history
            .read::<T>(after, limit, in_memory_from - 1)
            .map_err(|e| match e {
                StoreError::TooOld {
                    requested,
                    oldest_available,
                } => StoreError::TooOld {
                    requested,
                    oldest_available: oldest_available.min(in_memory_from),
                },
                e => e,
            })?;
        // Read as far as memory reaches: go on from there.
        if events.len() < limit && events.last().map(|e| e.seq + 1) == Some(in_memory_from) {
            events.extend(state.events_after(in_memory_from - 1, limit - events.len())?);
        }
        Ok(events)
    }

    /// Like [`Store::events_after`], but waits until there is at least one event (or the
    /// store closes). It wakes only once every event of an atomic [`Store::batch`] is published,
    /// so a wait never returns part of one (unless `limit` is smaller than what is there).
    /// Events older than the memory window are read on a blocking thread.
    pub async fn wait_events_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event<T>>>> {
        let mut seq = self.subscribe();
        if seq.wait_for(|s| *s > after).await.is_err() {
            return Err(StoreError::Closed);
        }
        let in_memory = self
            .shared
            .state
            .load()
            .events
            .front()
            .is_some_and(|e| e.seq <= after + 1);
        if in_memory || tokio::runtime::Handle::try_current().is_err() {
            return self.events_after(after, limit);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.events_after(after, limit))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Waits until reads show record `id` at `version` or later (or without the record), for at
    /// most `within`; returns whether they do. A write is applied in the actor before it is
    /// readable (it is published once durable), so a caller retrying a conditional write that
    /// lost to version `version` should wait for it: recomputing on the older state it reads
    /// meanwhile would lose again.
    pub async fn wait_readable(&self, id: Uuid, version: u64, within: Duration) -> bool {
        let readable = || self.get(id).map_or(true, |r| r.version >= version);
        let mut published = self.subscribe();
        let wait = async {
            while !readable() {
                if published.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(within, wait).await;
        readable()
    }

    /// Watches the last durable sequence number; it changes after every durable batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.seq.subscribe()
    }

    /// The last durable sequence number.
    pub fn last_seq(&self) -> u64 {
        self.shared.state.load().seq
    }

    /// Health and counters (which start from 0 at every open), for readiness checks and metrics.
    pub fn status(&self) -> Status {
        let state = self.shared.state.load();
        let fault = self.shared.fault();
        let s: &Stats = &self.shared.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Status {
            writable: fault.is_none() && !*self.shared.closed.borrow(),
            needs_reopen: fault.as_ref().is_some_and(|f| !f.heals()),
            read_only_reason: fault.map(|f| f.reason().to_owned()),
            records: state.records.len() as u64,
            live: state.live,
            last_seq: state.seq,
            journal_bytes: load(&s.journal_bytes),
            snapshot_bytes: load(&s.snapshot_bytes),
            fsyncs: load(&s.fsyncs),
            fsync_total: Duration::from_nanos(load(&s.fsync_nanos_total)),
            fsync_max: Duration::from_nanos(load(&s.fsync_nanos_max)),
            batches: load(&s.batches),
            compactions: load(&s.compactions),
            last_compaction_pause: Duration::from_nanos(load(&s.last_rotation_pause_nanos)),
            compaction_failures: load(&s.compaction_failures),
            last_compaction_failure: self
                .shared
                .last_compaction_failure
                .lock()
                .unwrap()
                .as_ref()
                .map(|(reason, kind)| CompactionFailure {
                    reason: reason.clone(),
                    disk_full: matches!(
                        kind,
                        Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                    ),
                }),
            torn_line_dropped: self.shared.dropped_at_open == Some(false),
            damaged_line_dropped: self.shared.dropped_at_open == Some(true),
            cached_bytes: state.disk.as_ref().map_or(0, |d| d.cached_bytes()),
        }
    }

    /// Writes a snapshot of the durable state now and cuts the journal.
    pub async fn compact(&self) -> Result<CompactionReport> {
        let rx = self
            .addr
            .send(Compact)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking writes, waits for pending ones to be durable, and releases the files.
    /// Other handles then get [`StoreError::Closed`] for writes; reads keep working.
    pub async fn close(&self) -> Result<()> {
        let mut closed = self.shared.closed.subscribe();
        if !*closed.borrow() {
            let _ = self.addr.send(Close).await;
            let _ = closed.wait_for(|c| *c).await;
        }
        Ok(())
    }
}

/// The store's thread: opens the files, starts the flusher, then runs the actor's own actix
/// system until the actor stops.
fn run_store_thread<T: Data>(options: StoreOptions<T>, reply: oneshot::Sender<Result<Store<T>>>) {
    let system = System::new();
    let opened = system.block_on(async move { start(options) });
    let ok = opened.is_ok();
    if reply.send(opened).is_err() || !ok {
        return;
    }
    system.run().ok();
}

/// How long a held lock is retried before the store counts as locked. A process that spawns a
/// child shares its descriptors with the child until the child's `exec`, so a lock this process
/// just released (a store closed and opened again) can look held for that instant; another
/// process that really holds it keeps holding it past this.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// Takes the store's lock file, or says the store is locked (another process has it open).
fn lock<T: Data>(
    fs: &dyn crate::fs::Fs,
    options: &StoreOptions<T>,
) -> Result<Box<dyn crate::fs::LockGuard>> {
    let path = options.lock_path();
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match fs
            .try_lock(&path)
            .map_err(|e| StoreError::io("lock", &path, e))?
        {
            Some(lock) => return Ok(lock),
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            None => {
                return Err(StoreError::Locked {
                    path: options.snapshot_path(),
                });
            }
        }
    }
}

fn start<T: Data>(options: StoreOptions<T>) -> Result<Store<T>> {
    let fs = options.fs.clone();
    fs.create_dir_all(&options.dir)
        .map_err(|e| StoreError::io("create", &options.dir, e))?;
    let lock = lock(&*fs, &options)?;
    // Leftovers of an interrupted compaction or repair: never the live files. One that cannot
    // be removed is harmless (the next compaction overwrites it).
    for leftover in [
        options.snapshot_path().with_extension("json.tmp"),
        options.journal_path().with_extension("journal.tmp"),
        options.journal_path().with_extension("journal.probe"),
    ] {
        if let Err(e) = fs.remove(&leftover) {
            tracing::warn!(error = %e, path = %leftover.display(), "could not remove a leftover");
        }
    }
    let loaded = recovery::load(&options)?;
    let dropped = loaded.replay.torn_tail.as_ref().map(|t| t.complete);
    let journal_path = options.journal_path();
    // The data is loaded; what follows writes (repairing a torn tail, opening the journal for
    // appends, making a new one durable). If the disk takes no writes (full, or read-only),
    // the store opens read-only, serving reads, and the flusher finishes these steps and
    // resumes writes once it can (see `crate::flusher`).
    let mut unwritable = None;
    let mut repair = None;
    if let Some(torn) = &loaded.replay.torn_tail
        && let Err(e) = recovery::drop_torn_tail(&options, torn)
    {
        let (options, torn) = (options.clone(), torn.clone());
        repair = Some(
            Box::new(move || recovery::drop_torn_tail(&options, &torn).map(drop))
                as crate::flusher::Repair,
        );
        unwritable = Some(e);
    }
    let mut len = loaded.replay.valid_len;
    let mut file: Box<dyn crate::fs::WriteFile> = Box::new(crate::fs::Unopened);
    if unwritable.is_none() {
        let opened = fs
            .open_append(&journal_path)
            .map_err(|e| StoreError::io("open", &journal_path, e))
            .and_then(|opened| {
                // IMPORTANT: a journal created just now exists durably only once its directory
                // is synced; without this, every write acknowledged before the first compaction
                // could vanish.
                fs.sync_dir(&options.dir)
                    .map_err(|e| StoreError::io("fsync", &options.dir, e))?;
                Ok(opened)
            });
        match opened {
            Ok((opened, opened_len)) => (file, len) = (opened, opened_len),
            Err(e) => unwritable = Some(e),
        }
    }
    let mut state = loaded.state;
    if let Some(disk) = &state.disk {
        // Index mode reads the journal the flusher appends to: a torn tail's repair (or the
        // creation of the first journal) made it another file than the one replayed, with the
        // same valid lines.
        let reader = fs
            .open_file(&journal_path)
            .map_err(|e| StoreError::io("open", &journal_path, e))?
            .ok_or_else(|| {
                // Only when no journal could be created: index mode cannot open read-only
                // without one (the records written later would have no file to be read from).
                unwritable.take().unwrap_or_else(|| {
                    StoreError::io("open", &journal_path, std::io::ErrorKind::NotFound.into())
                })
            })?;
        let disk = disk.with(
            crate::recovery::JOURNAL_GEN,
            reader,
            &journal_path,
            &[crate::recovery::SNAPSHOT_GEN],
        );
        state.disk = Some(Arc::new(disk));
    }
    let seq = state.seq;
    let history = History::new(
        fs.clone(),
        &options.dir,
        &journal_path,
        options.feed_history,
    );
    if let Err(e) = history.prune() {
        tracing::warn!(error = %e, "could not delete old change feed history");
    }
    let shared = Arc::new(Shared::new(
        state.clone(),
        loaded.snapshot.bytes,
        len,
        dropped,
        history,
    ));
    if let Some(e) = &unwritable {
        let why = if e.is_disk_full() {
            "is full"
        } else {
            "takes no writes"
        };
        let reason = format!("opened read-only, the disk {why}: {e}");
        shared.stop_writes(reason, e.io_kind(), true);
    }
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel();
    let addr = StoreActor::create(|ctx| {
        let me = ctx.address().downgrade();
        let on_idle = move |written| {
            if let Some(addr) = me.upgrade() {
                addr.do_send(Flushed(written));
            }
        };
        let opened = crate::flusher::Opened {
            file,
            len,
            repair,
            lock,
        };
        Flusher::spawn(&options, opened, shared.clone(), jobs_rx, on_idle)
            .expect("spawn the flusher thread");
        StoreActor::new(state, options, shared.clone(), jobs_tx)
    });
    tracing::info!(file = %journal_path.display(), seq, "store opened");
    Ok(Store { addr, shared })
}
