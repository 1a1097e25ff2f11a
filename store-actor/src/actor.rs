//! The store actor: the only writer of a store's state and files.
//!
//! Each message is handled to completion before the next (no handler awaits), so every
//! mutation sees the result of all earlier ones: that is the concurrency control, with no lock
//! around the data. A mutation is validated against the actor's working state, appended to the
//! pending journal bytes and applied to the working state; its caller is answered by the
//! [flusher](crate::flusher) once the bytes are durable and the new state is published.
//!
//! An atomic batch ([`Batch`]) is one message too: all its mutations are evaluated and encoded
//! (as one journal line) in one handler call, or none is, so every state the actor ships (and
//! the flusher publishes) holds whole batches. The flusher's own "batches" are group commits: a
//! group commit carries whatever lines were pending, whole atomic batches included.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use actix::prelude::*;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::Data;
use crate::batch::{Mutation, Op, prepare};
use crate::compaction::{self, CompactionReport, NewFiles, Switched};
use crate::disk::Loc;
use crate::error::{Result, StoreError};
use crate::flusher::{Fault, Job, Shared, Waiter, Written};
use crate::journal::{self, Span};
use crate::options::StoreOptions;
use crate::record::{Event, EventKind, Record};
use crate::state::{Slot, State};

/// A reply that arrives once the mutation is durable.
pub(crate) type Ticket<R> = oneshot::Receiver<Result<R>>;

/// Where a write's one answer goes: its refusal at once, or its result once durable. The
/// message carries it (rather than actix answering the message and the flusher then answering
/// a ticket) so a writer is woken once per write, not twice.
pub(crate) type Reply<R> = oneshot::Sender<Result<R>>;

/// The change an [`Update`] applies: gets the current data, returns the new data or refuses.
pub(crate) type Change<T> =
    Box<dyn FnOnce(&T) -> std::result::Result<T, Box<dyn std::error::Error + Send + Sync>> + Send>;

/// One mutation (create, update or archive), journaled and applied on its own.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Mutate<T: Data>(pub Mutation<T>, pub Reply<Arc<Record<T>>>);

/// An atomic batch of mutations: all are journaled (in one line) and applied, or none is.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Batch<T: Data>(pub Vec<Op<T>>, pub Reply<Vec<Arc<Record<T>>>>);

/// Writes a snapshot now and cuts the journal.
#[derive(Message)]
#[rtype(result = "Ticket<CompactionReport>")]
pub(crate) struct Compact;

/// Stops taking writes, flushes, and releases the files.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close;

/// From the flusher: the shipped batch is done (written at this file generation and offset:
/// ship the next one), or failed (roll back).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Flushed(pub std::result::Result<Written, Fault>);

/// From a compaction: it finished (with index mode's new files), or failed.
#[derive(Message)]
#[rtype(result = "()")]
struct CompactionDone<T: Data>(Result<Switched<T>, (String, Option<std::io::ErrorKind>)>);

/// Index mode: where a record just encoded is in the pending bytes, to relocate it once the
/// flusher says where those bytes went.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: uuid::Uuid,
    version: u64,
    archived: bool,
    span: Span,
}

/// First wait before an automatic compaction is tried again after one failed; doubled after each
/// failure up to [`MAX_COMPACTION_BACKOFF`], reset by a success. (A full disk would otherwise
/// have every write start a compaction that fills it again.)
const MIN_COMPACTION_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait between automatic compaction attempts.
const MAX_COMPACTION_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// The store's single writer; its fields are touched only by its handlers, one message at a time.
pub(crate) struct StoreActor<T: Data> {
    /// Every accepted mutation applied, durable or not: ahead of the published state by the
    /// lines in `pending` and in batches shipped but not yet flushed (for good once a batch
    /// fails). `working.seq` is the sequence number of the last journal line encoded.
    working: State<T>,
    /// The options the store was opened with (paths, file system, retention, compaction
    /// thresholds); never changed.
    options: StoreOptions<T>,
    /// Shared with the handles and the flusher. The actor reads the poison and the published
    /// state, and writes only the snapshot and compaction counters.
    shared: Arc<Shared<T>>,
    /// The flusher's queue. `Some` while the store runs; set to `None` once closing has nothing
    /// left to ship, or when the actor stops, which lets the flusher drain its queue and exit.
    jobs: Option<Sender<Job<T>>>,
    /// Journal lines accepted since the last ship, whole lines in sequence order (a failed
    /// encode is cut off again); emptied by each ship.
    pending: Vec<u8>,
    /// One per line in `pending`, in the same order; shipped with it.
    waiters: Vec<Waiter>,
    /// True from a ship until the flusher's [`Flushed`]; meanwhile new lines wait in `pending`
    /// and go out together as the next batch, sharing one fsync (group commit).
    in_flight: bool,
    /// True from the start of a compaction until its [`CompactionDone`] (or until its thread
    /// fails to spawn): at most one runs at a time.
    compacting: bool,
    /// `Compact` callers waiting for the running compaction; all get its outcome.
    compact_waiters: Vec<oneshot::Sender<Result<CompactionReport>>>,
    /// After a failed compaction: no automatic one before this instant (requested ones run).
    compaction_retry_at: Option<std::time::Instant>,
    /// The wait after the next failure.
    compaction_backoff: std::time::Duration,
    /// Index mode: the records encoded in `pending`, and in the batch in flight.
    pending_spans: Vec<Pending>,
    in_flight_spans: Vec<Pending>,
    /// Index mode, while compacting: every record changed after the state the snapshot is
    /// written from, whose place the new directory must take from the working state.
    touched: Vec<uuid::Uuid>,
    /// Index mode: the current journal's file generation, and the next one free.
    journal_gen: u16,
    next_gen: u16,
    /// Set by [`Close`], never cleared: writes and compactions are refused from then on, and
    /// `jobs` is dropped once nothing is pending, in flight or compacting.
    closing: bool,
}

impl<T: Data> Actor for StoreActor<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writers wait for durability, not for mailbox space.
        ctx.set_mailbox_capacity(1 << 16);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // Hands the rest to the flusher, which syncs and exits when the channel closes.
        self.ship();
        self.jobs = None;
        System::current().stop();
    }
}

impl<T: Data> StoreActor<T> {
    /// The actor of a store just opened: `working` is the loaded state, which `shared` already
    /// publishes, and `jobs` is the queue of its (running) flusher.
    pub(crate) fn new(
        working: State<T>,
        options: StoreOptions<T>,
        shared: Arc<Shared<T>>,
        jobs: Sender<Job<T>>,
    ) -> Self {
        Self {
            working,
            options,
            shared,
            jobs: Some(jobs),
            pending: Vec::new(),
            waiters: Vec::new(),
            in_flight: false,
            compacting: false,
            compact_waiters: Vec::new(),
            compaction_retry_at: None,
            compaction_backoff: MIN_COMPACTION_BACKOFF,
            pending_spans: Vec::new(),
            in_flight_spans: Vec::new(),
            touched: Vec::new(),
            journal_gen: crate::recovery::JOURNAL_GEN,
            next_gen: crate::recovery::JOURNAL_GEN + 1,
            closing: false,
        }
    }

    fn index_mode(&self) -> bool {
        self.working.disk.is_some()
    }

    /// Index mode, with nothing pending or in flight: publishes the working state, which then
    /// differs from the published one only by where records are (relocations, a compaction's
    /// new files), so that readers stop holding records in memory and old files open. Safe:
    /// the flusher publishes only the batches shipped to it, and none is.
    fn publish_if_idle(&self) {
        // After a failed write the working state is ahead of what is durable: never publish it.
        let idle = self.index_mode() && !self.in_flight && self.pending.is_empty();
        if idle && self.shared.fault().is_none() && self.working.seq == self.shared.state.load().seq
        {
            self.shared.state.store(Arc::new(self.working.clone()));
        }
    }

    /// Index mode: remembers where `record`, just encoded at `span` of `pending`, is.
    fn track(&mut self, record: &Record<T>, span: Span) {
        if !self.index_mode() {
            return;
        }
        self.pending_spans.push(Pending {
            id: record.id,
            version: record.version,
            archived: record.archived,
            span,
        });
        if self.compacting {
            self.touched.push(record.id);
        }
    }

    fn check_writable(&self) -> Result<()> {
        if let Some(refused) = self.shared.read_only() {
            return Err(refused);
        }
        if self.closing {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Journals and applies one mutation; the caller is to be answered when it is durable.
    fn commit(&mut self, kind: EventKind, record: Record<T>) -> Result<Arc<Record<T>>> {
        let seq = self.working.seq + 1;
        let mark = self.pending.len();
        let span = match journal::encode(seq, kind, &record, &mut self.pending) {
            Ok(span) => span,
            Err(e) => {
                self.pending.truncate(mark);
                return Err(StoreError::Rejected(Box::new(e)));
            }
        };
        let record = Arc::new(record);
        let event = Arc::new(Event {
            seq,
            kind,
            record: record.clone(),
        });
        // Only fails (changing nothing) when index mode cannot read the version replaced.
        if let Err(e) = self.working.apply(event, self.options.feed_retention, None) {
            self.pending.truncate(mark);
            return Err(e);
        }
        self.track(&record, span);
        Ok(record)
    }

    /// Answers `reply` with `value` once the bytes pending now are durable (or with the
    /// failure that lost them), shipping them at once unless a batch is already in flight.
    fn answer_when_durable<R: Send + 'static>(&mut self, reply: Reply<R>, value: R) {
        self.waiters.push(Box::new(move |outcome| {
            let _ = reply.send(outcome.map(|()| value));
        }));
        if !self.in_flight {
            self.ship();
        }
    }

    /// Evaluates the operations of an atomic batch in order, each against the state the earlier
    /// ones left, on a copy of the working state (O(1), structurally shared); only if every one
    /// is accepted and the batch's journal line is encoded does the copy become the working
    /// state. So a refused batch changes nothing, in memory or on disk. The caller is answered
    /// when the line is durable; the flusher publishes the state with the whole batch at once.
    /// An empty batch is `Ok(None)`: nothing to write or wait for.
    fn commit_batch(&mut self, ops: Vec<Op<T>>) -> Result<Option<Vec<Arc<Record<T>>>>> {
        let failed = |index: usize, e: StoreError| StoreError::BatchFailed {
            index,
            source: Box::new(e),
        };
        let first_seq = self.working.seq + 1;
        let now = OffsetDateTime::now_utc();
        let mut next = self.working.clone();
        let mut events = Vec::with_capacity(ops.len());
        for (index, Op(mutation)) in ops.into_iter().enumerate() {
            let (kind, record) = prepare(&next, mutation, now).map_err(|e| failed(index, e))?;
            let event = Arc::new(Event {
                seq: first_seq + index as u64,
                kind,
                record: Arc::new(record),
            });
            next.apply(event.clone(), self.options.feed_retention, None)
                .map_err(|e| failed(index, e))?;
            events.push(event);
        }
        let mark = self.pending.len();
        let encoded = match events.as_slice() {
            [] => return Ok(None),
            // A batch of one is an ordinary journal line.
            [one] => journal::encode(one.seq, one.kind, &one.record, &mut self.pending)
                .map(|span| vec![span])
                .map_err(|e| (0, e)),
            many => journal::encode_batch(
                first_seq,
                many.iter().map(|e| (e.kind, &*e.record)),
                &mut self.pending,
            ),
        };
        let spans = match encoded {
            Ok(spans) => spans,
            Err((index, e)) => {
                self.pending.truncate(mark);
                return Err(failed(index, StoreError::Rejected(Box::new(e))));
            }
        };
        self.working = next;
        for (event, span) in events.iter().zip(spans) {
            self.track(&event.record, span);
        }
        Ok(Some(events.into_iter().map(|e| e.record.clone()).collect()))
    }

    /// Sends everything pending to the flusher as one batch.
    fn ship(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        // The next buffer is sized like this one: growing it line by line costs reallocs.
        let capacity = self.pending.capacity();
        let job = Job::Batch {
            bytes: std::mem::replace(&mut self.pending, Vec::with_capacity(capacity)),
            waiters: std::mem::take(&mut self.waiters),
            // O(1): the collections are structurally shared.
            state: Arc::new(self.working.clone()),
        };
        if jobs.send(job).is_ok() {
            self.in_flight = true;
            self.in_flight_spans = std::mem::take(&mut self.pending_spans);
        } else {
            self.pending_spans.clear();
        }
    }

    fn needs_compaction(&self) -> bool {
        if self
            .compaction_retry_at
            .is_some_and(|at| std::time::Instant::now() < at)
        {
            return false;
        }
        let stats = &self.shared.stats;
        let journal = stats.journal_bytes.load(Ordering::Relaxed);
        let snapshot = stats.snapshot_bytes.load(Ordering::Relaxed);
        journal > self.options.compact_min_bytes
            && journal as f64 > snapshot as f64 * self.options.compact_ratio
    }

    /// Snapshots the published (durable) state on a separate thread, then has the flusher cut
    /// the journal. Writes go on throughout except during the cut.
    fn start_compaction(&mut self, ctx: &mut Context<Self>) {
        if self.compacting || self.shared.fault().is_some() {
            return;
        }
        let Some(jobs) = self.jobs.clone() else {
            return;
        };
        self.compacting = true;
        let _ = jobs.send(Job::Track);
        let state = self.shared.state.load_full();
        // Index mode: the new files' generations, and what changed after `state` so far.
        let gens = self.index_mode().then(|| {
            let (snapshot_gen, journal_gen) = (self.next_gen, self.next_gen.wrapping_add(1));
            self.next_gen = self.next_gen.wrapping_add(2);
            (snapshot_gen, journal_gen, self.journal_gen)
        });
        if gens.is_some() {
            self.touched = self
                .in_flight_spans
                .iter()
                .chain(&self.pending_spans)
                .map(|p| p.id)
                .collect();
        }
        let fs = self.options.fs.clone();
        let snapshot_path = self.options.snapshot_path();
        let journal_path = self.options.journal_path();
        let shared = self.shared.clone();
        let me = ctx.address().downgrade();
        let notify = move |r: Result<Switched<T>>| {
            if let Some(addr) = me.upgrade() {
                addr.do_send(CompactionDone(r.map_err(|e| (e.to_string(), e.io_kind()))));
            }
        };
        let spawned = std::thread::Builder::new()
            .name("store-compact".into())
            .spawn(move || {
                let staged = compaction::stage(
                    &*fs,
                    &snapshot_path,
                    &journal_path,
                    state,
                    &shared.stats.journal_bytes,
                    gens,
                );
                let staged = match staged {
                    Ok(staged) => staged,
                    Err(e) => return notify(Err(e)),
                };
                let done = Box::new(notify);
                if let Err(std::sync::mpsc::SendError(Job::Rotate { staged, done })) =
                    jobs.send(Job::Rotate { staged, done })
                {
                    let _ = fs.remove(&staged.tmp);
                    done(Err(StoreError::Closed));
                }
            });
        if spawned.is_err() {
            self.compacting = false;
            self.touched.clear();
        }
    }

    /// Index mode, after a compaction switched the files: the working state's directory becomes
    /// the new snapshot's, with the records changed since it was written at their places in the
    /// new journal (or still in memory), and reads go to the new files.
    fn switch_files(&mut self, new: NewFiles<T>) {
        let NewFiles {
            mut directory,
            mut indexes,
            mut by_created,
            snapshot,
            snapshot_gen,
            journal_gen,
            journal,
            old_journal_gen,
            shift,
        } = new;
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        // The records changed since the snapshot go in the new directory's map, with their
        // creation entries and index entries.
        for id in touched {
            let slot = match self.working.records.get(&id) {
                Some(Slot::Mem(r)) => Slot::Mem(r),
                // The new journal is the old one from `shift` on.
                Some(Slot::Disk(loc))
                    if loc.generation == old_journal_gen && loc.offset >= shift =>
                {
                    Slot::Disk(Loc {
                        offset: loc.offset - shift,
                        generation: journal_gen,
                        ..loc
                    })
                }
                Some(Slot::Disk(loc)) if loc.generation == journal_gen => Slot::Disk(loc),
                // That version is in the snapshot: the directory has it.
                Some(Slot::Disk(_)) | None => continue,
            };
            by_created.insert((self.created_of(id), id));
            directory.insert(id, slot);
            if let Ok(Some(rec)) = self.working.get(&id) {
                for (def, index) in self.working.defs.iter().zip(indexes.iter_mut()) {
                    for k in (def.keys)(&rec.data) {
                        index.insert(k, id);
                    }
                }
            }
        }
        let old = self.working.disk.as_ref().expect("index mode");
        let mut disk = old.with(snapshot_gen, snapshot, &self.options.snapshot_path(), &[]);
        if let Some(journal) = journal {
            disk = disk.with(
                journal_gen,
                journal,
                &self.options.journal_path(),
                &[snapshot_gen],
            );
        }
        self.working.records = directory;
        self.working.by_created = by_created;
        self.working.indexes = indexes;
        self.working.disk = Some(Arc::new(disk));
        self.journal_gen = journal_gen;
    }

    /// The creation time of record `id` in the working state, as Unix nanoseconds: read (from
    /// memory or the cache, nearly always), or else found in the creation order.
    fn created_of(&self, id: uuid::Uuid) -> i128 {
        match self.working.get(&id) {
            Ok(Some(r)) => r.created_at.unix_timestamp_nanos(),
            _ => self
                .working
                .by_created
                .iter()
                .find(|e| e.1 == id)
                .map_or(i128::MIN, |e| e.0),
        }
    }

    /// A shipped batch failed, so nothing after the published state is durable: the lines
    /// accepted since then fail too, and the working state goes back to the published one
    /// (O(1), structurally shared), so that writes resume from exactly what is on disk.
    fn roll_back(&mut self, fault: Fault) {
        self.pending.clear();
        self.pending_spans.clear();
        self.in_flight_spans.clear();
        for w in self.waiters.drain(..) {
            w(Err(fault.error()));
        }
        let published = self.shared.state.load_full();
        let same_files = match (&self.working.disk, &published.disk) {
            (Some(working), Some(published)) => Arc::ptr_eq(working, published),
            _ => true,
        };
        if same_files {
            self.working = (*published).clone();
        } else {
            // Index mode, a compaction switched the files after the last publish: the
            // published directory points into files the working one no longer holds.
            self.shared
                .stop_for_good("the files were switched since the last durable state");
        }
    }

    fn finish_close_if_idle(&mut self) {
        if self.closing && !self.in_flight && self.pending.is_empty() && !self.compacting {
            // Dropping the sender lets the flusher finish its queue, sync and release the files.
            self.jobs = None;
        }
    }
}

impl<T: Data> Handler<Mutate<T>> for StoreActor<T> {
    type Result = ();
    fn handle(&mut self, Mutate(mutation, reply): Mutate<T>, _: &mut Context<Self>) {
        let committed = self.check_writable().and_then(|()| {
            let (kind, record) = prepare(&self.working, mutation, OffsetDateTime::now_utc())?;
            self.commit(kind, record)
        });
        match committed {
            Ok(record) => self.answer_when_durable(reply, record),
            Err(refused) => drop(reply.send(Err(refused))),
        }
    }
}

impl<T: Data> Handler<Batch<T>> for StoreActor<T> {
    type Result = ();
    fn handle(&mut self, Batch(ops, reply): Batch<T>, _: &mut Context<Self>) {
        match self.check_writable().and_then(|()| self.commit_batch(ops)) {
            Ok(Some(records)) => self.answer_when_durable(reply, records),
            Ok(None) => drop(reply.send(Ok(Vec::new()))),
            Err(refused) => drop(reply.send(Err(refused))),
        }
    }
}

impl<T: Data> Handler<Flushed> for StoreActor<T> {
    type Result = ();
    fn handle(&mut self, Flushed(written): Flushed, ctx: &mut Context<Self>) {
        self.in_flight = false;
        let spans = std::mem::take(&mut self.in_flight_spans);
        match written {
            Ok((generation, base)) => {
                for p in spans {
                    let loc = Loc {
                        offset: base + p.span.start as u64,
                        len: p.span.len as u32,
                        generation,
                        archived: p.archived,
                    };
                    self.working.relocate(p.id, p.version, loc);
                }
            }
            Err(fault) => self.roll_back(fault),
        }
        self.ship();
        self.publish_if_idle();
        if !self.closing && self.needs_compaction() {
            self.start_compaction(ctx);
        }
        self.finish_close_if_idle();
    }
}

impl<T: Data> Handler<Compact> for StoreActor<T> {
    type Result = MessageResult<Compact>;
    fn handle(&mut self, _: Compact, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if let Some(refused) = self.shared.read_only() {
            let _ = tx.send(Err(refused));
        } else if self.closing {
            let _ = tx.send(Err(StoreError::Closed));
        } else {
            self.compact_waiters.push(tx);
            self.start_compaction(ctx);
        }
        MessageResult(rx)
    }
}

impl<T: Data> Handler<CompactionDone<T>> for StoreActor<T> {
    type Result = ();
    fn handle(&mut self, msg: CompactionDone<T>, _: &mut Context<Self>) {
        self.compacting = false;
        let msg = match msg.0 {
            Ok((report, new_files)) => {
                if let Some(new) = new_files {
                    self.switch_files(new);
                    self.publish_if_idle();
                }
                Ok(report)
            }
            Err(e) => {
                self.touched.clear();
                Err(e)
            }
        };
        match &msg {
            Ok(report) => {
                let stats = &self.shared.stats;
                stats
                    .snapshot_bytes
                    .store(report.snapshot_bytes, Ordering::Relaxed);
                stats.compactions.fetch_add(1, Ordering::Relaxed);
                self.compaction_retry_at = None;
                self.compaction_backoff = MIN_COMPACTION_BACKOFF;
                *self.shared.last_compaction_failure.lock().unwrap() = None;
                tracing::info!(
                    seq = report.seq,
                    records = report.records,
                    bytes = report.snapshot_bytes,
                    snapshot_ms = report.snapshot_time.as_millis() as u64,
                    pause_us = report.pause.as_micros() as u64,
                    "compacted"
                );
            }
            Err((reason, kind)) => {
                let wait = self.compaction_backoff;
                self.compaction_retry_at = Some(std::time::Instant::now() + wait);
                self.compaction_backoff = (wait * 2).min(MAX_COMPACTION_BACKOFF);
                self.shared
                    .stats
                    .compaction_failures
                    .fetch_add(1, Ordering::Relaxed);
                *self.shared.last_compaction_failure.lock().unwrap() =
                    Some((reason.clone(), *kind));
                tracing::error!(
                    error = %reason,
                    kind = ?kind,
                    retry_in_s = wait.as_secs(),
                    "compaction failed; the old files are in use"
                );
            }
        }
        for w in self.compact_waiters.drain(..) {
            let _ = w.send(
                msg.clone()
                    .map_err(|(reason, kind)| StoreError::CompactionFailed { reason, kind }),
            );
        }
        self.finish_close_if_idle();
    }
}

impl<T: Data> Handler<Close> for StoreActor<T> {
    type Result = ();
    fn handle(&mut self, _: Close, _: &mut Context<Self>) {
        self.closing = true;
        self.finish_close_if_idle();
    }
}
