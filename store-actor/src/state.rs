//! The in-memory state of one store, as persistent (structurally shared) collections.
//!
//! The actor mutates its own working [`State`]; cloning it is O(1), which is how the actor
//! publishes an immutable snapshot for readers after every durable batch. Readers never wait
//! for the actor and the actor never waits for readers.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet, Vector};
use uuid::Uuid;

use serde::de::DeserializeOwned;

use crate::directory::{BaseBuilder, Directory, Merge, SAMPLE};
use crate::disk::{Disk, Loc};
use crate::error::{Result, StoreError};
use crate::index::{Index, IndexBase, IndexBuilder};
use crate::query::{IndexRange, Page, Position, Query, SortKey, decode_cursor, encode_cursor};
use crate::record::{Event, IndexKey, Record};

/// Yields a sorted vector's even positions, then its odd ones: both runs are in order (fast
/// inserts), and the second run fills the room the first left in each node.
pub(crate) fn interleaved<X>(v: Vec<X>) -> impl Iterator<Item = X> {
    let mut evens = Vec::with_capacity(v.len() / 2 + 1);
    let mut odds = Vec::with_capacity(v.len() / 2);
    for (i, x) in v.into_iter().enumerate() {
        if i % 2 == 0 {
            evens.push(x)
        } else {
            odds.push(x)
        }
    }
    evens.into_iter().chain(odds)
}

/// The bounds of a walk that starts just after `after` (from the start without one).
fn after_bounds<K: Ord>(after: Option<K>, descending: bool) -> (Bound<K>, Bound<K>) {
    match (after, descending) {
        (None, _) => (Bound::Unbounded, Bound::Unbounded),
        (Some(k), false) => (Bound::Excluded(k), Bound::Unbounded),
        (Some(k), true) => (Bound::Unbounded, Bound::Excluded(k)),
    }
}

/// `it`, or `it` reversed.
fn dir<'a, I: DoubleEndedIterator + 'a>(
    it: I,
    descending: bool,
) -> Box<dyn Iterator<Item = I::Item> + 'a> {
    if descending {
        Box::new(it.rev())
    } else {
        Box::new(it)
    }
}

/// An index condition's key range as bounds on index entries (key, id).
fn index_bounds(c: &IndexRange) -> (Bound<Position>, Bound<Position>) {
    let lo = match &c.lo {
        Bound::Included(k) => Bound::Included((k.clone(), Uuid::nil())),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Uuid::max())),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match &c.hi {
        Bound::Included(k) => Bound::Included((k.clone(), Uuid::max())),
        Bound::Excluded(k) => Bound::Excluded((k.clone(), Uuid::nil())),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lo, hi)
}

/// The tighter of two lower bounds.
fn max_lower<K: Ord>(a: Bound<K>, b: Bound<K>) -> Bound<K> {
    use Bound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(a), Included(b)) => Included(a.max(b)),
        (Excluded(a), Excluded(b)) => Excluded(a.max(b)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i > e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    }
}

/// The tighter of two upper bounds.
fn min_upper<K: Ord>(a: Bound<K>, b: Bound<K>) -> Bound<K> {
    use Bound::*;
    match (a, b) {
        (Unbounded, x) | (x, Unbounded) => x,
        (Included(a), Included(b)) => Included(a.min(b)),
        (Excluded(a), Excluded(b)) => Excluded(a.min(b)),
        (Included(i), Excluded(e)) | (Excluded(e), Included(i)) => {
            if i < e {
                Included(i)
            } else {
                Excluded(e)
            }
        }
    }
}

/// Whether no key lies between `lo` and `hi` (B-tree ranges panic on such bounds).
fn is_empty<K: Ord>(lo: &Bound<K>, hi: &Bound<K>) -> bool {
    use Bound::*;
    match (lo, hi) {
        (Unbounded, _) | (_, Unbounded) => false,
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
    }
}

/// A walk of creation order entries (time, id) that may read the disk.
type CreatedWalk<'a> = Box<dyn Iterator<Item = Result<(i128, Uuid)>> + 'a>;

/// Extracts the keys under which a record's data is indexed.
pub type IndexFn<T> = Arc<dyn Fn(&T) -> Vec<IndexKey> + Send + Sync>;

/// A secondary index as [`StoreOptions::index`](crate::StoreOptions::index) declared it.
pub(crate) struct IndexDef<T> {
    pub name: String,
    pub keys: IndexFn<T>,
}

impl<T> Clone for IndexDef<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<T> fmt::Debug for IndexDef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexDef")
            .field("name", &self.name)
            .finish()
    }
}

/// Where a state has a record: the record itself, or (index mode) where its JSON is on disk.
pub(crate) enum Slot<T> {
    /// Every record in memory mode; in index mode, a record written since the flusher last
    /// said where it landed (the actor then [relocates](State::relocate) it).
    Mem(Arc<Record<T>>),
    /// Index mode: read from disk through the cache.
    Disk(Loc),
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        match self {
            Slot::Mem(r) => Slot::Mem(r.clone()),
            Slot::Disk(l) => Slot::Disk(*l),
        }
    }
}

impl<T> Slot<T> {
    pub fn archived(&self) -> bool {
        match self {
            Slot::Mem(r) => r.archived,
            Slot::Disk(l) => l.archived,
        }
    }
}

/// Builds a state from a snapshot's records, one at a time, keeping only what the state keeps
/// (in index mode: the location, the creation time and the index keys, not the record).
pub(crate) struct Loader<T> {
    defs: Arc<[IndexDef<T>]>,
    /// Memory mode: (id, record, line).
    records: Vec<(Uuid, Arc<Record<T>>, u64)>,
    /// Memory mode: each index's (key, id) entries.
    keys: Vec<Vec<(IndexKey, Uuid)>>,
    /// Index mode: the directory's base, and each index's entries by push number.
    base: Option<BaseBuilder>,
    built: Vec<IndexBuilder>,
    /// Index mode: the line of the first record pushed (the others follow it line by line).
    first_line: Option<u64>,
    live: u64,
}

impl<T> Loader<T> {
    pub fn new(defs: Arc<[IndexDef<T>]>) -> Self {
        Self {
            keys: defs.iter().map(|_| Vec::new()).collect(),
            built: defs.iter().map(|_| IndexBuilder::new()).collect(),
            defs,
            records: Vec::new(),
            base: None,
            first_line: None,
            live: 0,
        }
    }

    /// Adds a record read at line `line`; with `loc`, it is kept only as that location (of the
    /// snapshot's generation, with the records on the lines before it).
    pub fn add(&mut self, rec: Record<T>, line: u64, loc: Option<Loc>) {
        let id = rec.id;
        if !rec.archived {
            self.live += 1;
        }
        match loc {
            Some(loc) => {
                let first = *self.first_line.get_or_insert(line);
                let n = (line - first) as u32;
                let base = self
                    .base
                    .get_or_insert_with(|| BaseBuilder::new(loc.generation));
                debug_assert_eq!(u64::from(base.pushed()), line - first);
                for (def, built) in self.defs.iter().zip(self.built.iter_mut()) {
                    for k in (def.keys)(&rec.data) {
                        built.push(n, &k);
                    }
                }
                base.push(id, loc, rec.created_at.unix_timestamp_nanos());
            }
            None => {
                for (def, keys) in self.defs.iter().zip(self.keys.iter_mut()) {
                    keys.extend((def.keys)(&rec.data).into_iter().map(|k| (k, id)));
                }
                self.records.push((id, Arc::new(rec), line))
            }
        }
    }

    /// The state of the records added, covering `seq`; a duplicate id is damage in `file`.
    ///
    /// Memory mode: sorting first and inserting in order is several times faster than inserting
    /// in random order, and inserting every other element first leaves the B-tree leaves full
    /// instead of half full (in-order inserts split nodes in the middle); the indexes are built
    /// on a second thread meanwhile. Index mode: the records become the directory's flat
    /// [`Base`](crate::directory::Base) and each index's flat base, one index per thread.
    pub fn finish(
        self,
        seq: u64,
        file: &std::path::Path,
        disk: Option<Arc<Disk<T>>>,
    ) -> Result<State<T>> {
        let Loader {
            defs,
            mut records,
            keys,
            base,
            built,
            first_line,
            live,
        } = self;
        let duplicate = |id: Uuid, line: u64| StoreError::Corrupt {
            file: file.to_owned(),
            line,
            reason: format!("duplicate record id {id}"),
        };
        let (records, indexes, by_created) = match base {
            Some(mut base) => {
                if let Some((id, n)) = base.first_duplicate() {
                    return Err(duplicate(id, first_line.unwrap_or(0) + u64::from(n)));
                }
                located(base, built)
            }
            None => {
                if let Some(w) = in_memory_duplicate(&mut records) {
                    return Err(duplicate(w.0, w.1));
                }
                in_memory(records, keys)
            }
        };
        Ok(State {
            records,
            disk,
            by_created,
            indexes,
            events: Vector::new(),
            seq,
            live,
            defs,
        })
    }
}

/// Memory mode: sorts the records by id and finds an id given twice (with its later line).
fn in_memory_duplicate<T>(records: &mut [(Uuid, Arc<Record<T>>, u64)]) -> Option<(Uuid, u64)> {
    if !records.is_sorted_by_key(|r| r.0) {
        records.sort_by_key(|r| r.0);
    }
    records
        .windows(2)
        .find(|w| w[0].0 == w[1].0)
        .map(|w| (w[1].0, w[1].2))
}

/// Memory mode: the directory, indexes and creation order of records sorted by id, with each
/// index's (key, id) entries.
fn in_memory<T>(
    records: Vec<(Uuid, Arc<Record<T>>, u64)>,
    keys: Vec<Vec<(IndexKey, Uuid)>>,
) -> (Directory<T>, Vec<Index>, OrdSet<(i128, Uuid)>) {
    let mut created: Vec<(i128, Uuid)> = records
        .iter()
        .map(|(id, r, _)| (r.created_at.unix_timestamp_nanos(), *id))
        .collect();
    let (map, (by_created, indexes)) = std::thread::scope(|scope| {
        let side = scope.spawn(move || {
            created.sort_unstable();
            let by_created: OrdSet<(i128, Uuid)> = interleaved(created).collect();
            let indexes: Vec<Index> = keys
                .into_iter()
                .map(|mut keys| {
                    keys.sort_unstable();
                    keys.dedup();
                    Index::new(IndexBase::default(), interleaved(keys).collect())
                })
                .collect();
            (by_created, indexes)
        });
        let mut map = OrdMap::new();
        for (id, rec, _) in interleaved(records) {
            map.insert(id, Slot::Mem(rec));
        }
        (map, side.join().expect("index builder panicked"))
    });
    (
        Directory::new(crate::directory::Base::default(), map),
        indexes,
        by_created,
    )
}

/// Index mode: the directory and indexes of a snapshot's records (`base`, with each index's
/// entries numbered as the records were pushed), and the creation entries of those the
/// directory keeps in its map.
pub(crate) fn located<T>(
    base: BaseBuilder,
    built: Vec<IndexBuilder>,
) -> (Directory<T>, Vec<Index>, OrdSet<(i128, Uuid)>) {
    let (dir_base, overflow, rank) = if built.is_empty() {
        let (b, o) = base.build();
        (b, o, Vec::new())
    } else {
        base.build_ranked()
    };
    // The ids of the records that did not pack, by push number.
    let unpacked: std::collections::HashMap<u32, Uuid> = rank
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == u32::MAX)
        .map(|(n, _)| n as u32)
        .zip(overflow.iter().map(|o| o.0))
        .collect();
    let indexes = std::thread::scope(|scope| {
        let workers: Vec<_> = built
            .into_iter()
            .map(|mut ib| {
                let (rank, unpacked, dir_base) = (&rank, &unpacked, &dir_base);
                scope.spawn(move || {
                    let mut extra = ib.renumber(
                        |n| Some(rank[n as usize]).filter(|&r| r != u32::MAX),
                        |n| unpacked[&n],
                    );
                    let (ibase, more) = ib.build(dir_base);
                    extra.extend(more);
                    Index::new(ibase, extra.into_iter().collect())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("index builder panicked"))
            .collect()
    });
    let mut map = OrdMap::new();
    let mut by_created = OrdSet::new();
    for (id, loc, t) in overflow {
        map.insert(id, Slot::Disk(loc));
        by_created.insert((t, id));
    }
    (Directory::new(dir_base, map), indexes, by_created)
}

/// Everything readers can see of a store at one sequence number.
pub(crate) struct State<T> {
    /// All records, archived ones included.
    pub records: Directory<T>,
    /// Index mode: the files `records` point into, and the cache. `None` in memory mode.
    pub disk: Option<Arc<Disk<T>>>,
    /// Creation order: (created_at as Unix nanoseconds, id) of every record in the directory's
    /// map of changes (all of them in memory mode); the base has its own creation order.
    pub by_created: OrdSet<(i128, Uuid)>,
    /// One per declared index, in declaration order: (key, id) entries.
    pub indexes: Vec<Index>,
    /// The most recent events, oldest first (bounded by the feed retention).
    pub events: Vector<Arc<Event<T>>>,
    /// The sequence number of the last mutation this state includes.
    pub seq: u64,
    /// Records that are not archived.
    pub live: u64,
    /// The declared indexes, in the order of `indexes`; shared by every state of a store.
    pub defs: Arc<[IndexDef<T>]>,
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
            disk: self.disk.clone(),
            by_created: self.by_created.clone(),
            indexes: self.indexes.clone(),
            events: self.events.clone(),
            seq: self.seq,
            live: self.live,
            defs: self.defs.clone(),
        }
    }
}

impl<T> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("records", &self.records.len())
            .field("live", &self.live)
            .field("seq", &self.seq)
            .finish()
    }
}

impl<T> State<T> {
    /// Puts a record in place of any earlier version, keeping indexes and counts right; in
    /// index mode, at `loc` if it is known to be on disk there. Fails, changing nothing, only
    /// if the earlier version (whose index keys must go) cannot be read.
    pub fn put(&mut self, rec: Arc<Record<T>>, loc: Option<Loc>) -> Result<()>
    where
        T: DeserializeOwned + Clone,
    {
        let slot = match loc {
            Some(loc) => Slot::Disk(loc),
            None => Slot::Mem(rec.clone()),
        };
        // One walk of the map: the earlier version comes back from the insert (and goes back
        // in if, in index mode, it cannot be read).
        let replaced = self.records.insert(rec.id, slot);
        let (old, from_base) = match &replaced {
            None => (None, false),
            Some((old_slot, from_base)) => match self.resolve(rec.id, old_slot, true) {
                Ok(old) => (Some(old), *from_base),
                Err(e) => {
                    self.records.restore(rec.id, replaced);
                    return Err(e);
                }
            },
        };
        // An update keeps its creation time: re-inserting the same key would still copy the
        // set's path (persistent nodes shared with the published state). A record that leaves
        // the base gets its entry in the set (the base's entry is skipped from now on).
        let created_moved = match &old {
            Some(old) => from_base || old.created_at != rec.created_at,
            None => true,
        };
        if let Some(old) = &old {
            if !old.archived {
                self.live -= 1;
            }
            if created_moved && !from_base {
                self.by_created
                    .remove(&(old.created_at.unix_timestamp_nanos(), old.id));
            }
        }
        if !rec.archived {
            self.live += 1;
        }
        if created_moved {
            self.by_created
                .insert((rec.created_at.unix_timestamp_nanos(), rec.id));
        }
        // A record that leaves the base takes its entries along (the base's no longer count).
        for (def, index) in self.defs.iter().zip(self.indexes.iter_mut()) {
            let new_keys = (def.keys)(&rec.data);
            if let Some(old) = old.as_ref().filter(|_| !from_base) {
                let old_keys = (def.keys)(&old.data);
                if old_keys == new_keys {
                    continue;
                }
                for k in old_keys {
                    index.remove(k, rec.id);
                }
            }
            for k in new_keys {
                index.insert(k, rec.id);
            }
        }
        Ok(())
    }

    /// Applies a mutation and remembers its event, forgetting events beyond `retention` (see
    /// [`State::put`] for `loc` and failures).
    pub fn apply(&mut self, event: Arc<Event<T>>, retention: usize, loc: Option<Loc>) -> Result<()>
    where
        T: DeserializeOwned + Clone,
    {
        self.put(event.record.clone(), loc)?;
        self.seq = event.seq;
        if retention > 0 {
            self.events.push_back(event);
            while self.events.len() > retention {
                self.events.pop_front();
            }
        }
        Ok(())
    }

    /// Index mode: record `id` at `version`, held in memory since it was written, is on disk at
    /// `loc`; the state keeps just that (and the cache the record), unless it changed since.
    pub fn relocate(&mut self, id: Uuid, version: u64, loc: Loc)
    where
        T: DeserializeOwned + Clone,
    {
        let Some(Slot::Mem(rec)) = self.records.get(&id) else {
            return;
        };
        if rec.version != version {
            return;
        }
        if let Some(disk) = &self.disk {
            disk.remember(&loc, rec.clone());
        }
        self.records.insert(id, Slot::Disk(loc));
    }

    /// The record with this id, archived or not (read from disk in index mode).
    pub fn get(&self, id: &Uuid) -> Result<Option<Arc<Record<T>>>>
    where
        T: DeserializeOwned + Clone,
    {
        match self.records.get(id) {
            None => Ok(None),
            Some(Slot::Mem(r)) => Ok(Some(r)),
            Some(slot) => self.resolve(*id, &slot, true).map(Some),
        }
    }

    /// The record in `slot`; `keep` puts what is read from disk in the cache.
    pub fn resolve(&self, id: Uuid, slot: &Slot<T>, keep: bool) -> Result<Arc<Record<T>>>
    where
        T: DeserializeOwned + Clone,
    {
        match slot {
            Slot::Mem(r) => Ok(r.clone()),
            Slot::Disk(loc) => self
                .disk
                .as_ref()
                .expect("disk locations only in index mode")
                .read(id, loc, keep),
        }
    }

    fn index_pos(&self, name: &str) -> Result<usize> {
        self.defs
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| StoreError::UnknownIndex(name.to_owned()))
    }

    /// Ids whose index `name` holds `key`, in id order.
    pub fn lookup_ids(&self, name: &str, key: &IndexKey) -> Result<Vec<Uuid>> {
        let index = &self.indexes[self.index_pos(name)?];
        let lo = Bound::Included((key.clone(), Uuid::nil()));
        let hi = Bound::Included((key.clone(), Uuid::max()));
        Ok(index
            .range(&self.records, (lo, hi), false)
            .map(|(_, id)| id)
            .collect())
    }

    /// The position of a record in a sort order.
    fn position(&self, sort: &SortKey, idx: Option<usize>, rec: &Record<T>) -> Position {
        match sort {
            SortKey::Id => (IndexKey::Uuid(rec.id), rec.id),
            SortKey::CreatedAt => (rec.created_at.into(), rec.id),
            SortKey::Index(_) => {
                let def = &self.defs[idx.expect("index resolved")];
                let key = (def.keys)(&rec.data)
                    .into_iter()
                    .next()
                    .unwrap_or(IndexKey::Bool(false));
                (key, rec.id)
            }
        }
    }

    /// The entries of index `pos` between `lo` and `hi`, in the given direction.
    fn index_walk<'a>(
        &'a self,
        pos: usize,
        (lo, hi): (Bound<Position>, Bound<Position>),
        descending: bool,
    ) -> Box<dyn Iterator<Item = Position> + 'a> {
        if is_empty(&lo, &hi) {
            return Box::new(std::iter::empty());
        }
        self.indexes[pos].range(&self.records, (lo, hi), descending)
    }

    /// At most `max` candidate ids of index `pos` between `lo` and `hi` (see
    /// [`Index::candidates`]).
    fn candidates(
        &self,
        pos: usize,
        (lo, hi): (Bound<Position>, Bound<Position>),
        max: usize,
    ) -> Vec<(Uuid, Option<Slot<T>>)> {
        if is_empty(&lo, &hi) {
            return Vec::new();
        }
        self.indexes[pos]
            .candidates(&self.records, (lo, hi))
            .take(max)
            .collect()
    }

    /// Walks a sort order from just after `after`, in the query's direction (index mode may
    /// read records to learn their creation times).
    fn walk<'a>(
        &'a self,
        sort: &SortKey,
        idx: Option<usize>,
        descending: bool,
        after: Option<Position>,
    ) -> Result<Box<dyn Iterator<Item = Result<Position>> + 'a>>
    where
        T: DeserializeOwned + Clone,
    {
        Ok(match sort {
            SortKey::Id => {
                let after = after.map(|(_, id)| id);
                Box::new(
                    self.records
                        .range(after_bounds(after, descending), descending)
                        .map(|(id, _)| Ok((IndexKey::Uuid(id), id))),
                )
            }
            SortKey::CreatedAt => {
                let after = after.map(|(k, id)| match k {
                    IndexKey::Time(t) => (t, id),
                    _ => (i128::MIN, id),
                });
                let changed = dir(
                    self.by_created
                        .range(after_bounds(after, descending))
                        .map(|e| Ok(*e)),
                    descending,
                );
                let base = self.base_created(after, descending)?;
                let cmp = |a: &Result<(i128, Uuid)>, b: &Result<(i128, Uuid)>| {
                    a.as_ref().ok().cmp(&b.as_ref().ok())
                };
                Box::new(
                    Merge::new(base, changed, descending, cmp)
                        .map(|r| r.map(|(t, id)| (IndexKey::Time(t), id))),
                )
            }
            SortKey::Index(_) => Box::new(
                self.index_walk(
                    idx.expect("index resolved"),
                    after_bounds(after, descending),
                    descending,
                )
                .map(Ok),
            ),
        })
    }

    /// A record's creation time as Unix nanoseconds (read from disk if it is not in memory).
    fn created_of(&self, id: Uuid, slot: &Slot<T>) -> Result<i128>
    where
        T: DeserializeOwned + Clone,
    {
        Ok(self
            .resolve(id, slot, true)?
            .created_at
            .unix_timestamp_nanos())
    }

    /// The (creation time, id) at position `j` of the base's creation order.
    fn base_created_at(&self, j: usize) -> Result<(i128, Uuid)>
    where
        T: DeserializeOwned + Clone,
    {
        let (id, slot) = self.records.base().by_created::<T>(j);
        Ok((self.created_of(id, &slot)?, id))
    }

    /// The first position of the base's creation order whose entry is after `a` (or, unless
    /// `past_equal`, equal to it). The samples narrow it to `SAMPLE` positions, then at most
    /// log2(`SAMPLE`) records are read.
    fn first_created(&self, a: (i128, Uuid), past_equal: bool) -> Result<usize>
    where
        T: DeserializeOwned + Clone,
    {
        let base = self.records.base();
        let before = |k: (i128, Uuid)| if past_equal { k <= a } else { k < a };
        let samples = base.samples();
        let sampled = samples.len();
        let mut lo = 0;
        let mut hi = sampled;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let id = base.by_created::<T>(mid * SAMPLE).0;
            if before((samples[mid], id)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(0);
        }
        // Position (lo - 1) × SAMPLE is before `a`; lo × SAMPLE (or the end) is not.
        let (mut lo, mut hi) = ((lo - 1) * SAMPLE + 1, (lo * SAMPLE).min(base.len()));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if before(self.base_created_at(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Index mode: the base's records in creation order from just after `after`, skipping
    /// those changed since (`by_created` has them). Stops after the first failed read.
    fn base_created<'a>(
        &'a self,
        after: Option<(i128, Uuid)>,
        descending: bool,
    ) -> Result<CreatedWalk<'a>>
    where
        T: DeserializeOwned + Clone,
    {
        let n = self.records.base().len();
        if n == 0 {
            return Ok(Box::new(std::iter::empty()));
        }
        let positions: Box<dyn Iterator<Item = usize>> = match (after, descending) {
            (None, false) => Box::new(0..n),
            (None, true) => Box::new((0..n).rev()),
            (Some(a), false) => Box::new(self.first_created(a, true)?..n),
            (Some(a), true) => Box::new((0..self.first_created(a, false)?).rev()),
        };
        Ok(Box::new(
            positions
                .map(move |j| {
                    let (id, slot) = self.records.base().by_created::<T>(j);
                    if self.records.changed(&id) {
                        return Ok(None);
                    }
                    Ok(Some((self.created_of(id, &slot)?, id)))
                })
                .scan(false, |failed, r: Result<Option<(i128, Uuid)>>| {
                    if *failed {
                        return None;
                    }
                    *failed = r.is_err();
                    Some(r.transpose())
                })
                .flatten(),
        ))
    }

    /// One page of `q` (see [`Query`] for how it is found and what the budget does).
    pub fn list(&self, q: &Query<T>) -> Result<Page<T>>
    where
        T: DeserializeOwned + Clone,
    {
        let idx = match &q.sort {
            SortKey::Index(name) => Some(self.index_pos(name)?),
            _ => None,
        };
        let cond = match &q.index {
            Some(c) => Some((self.index_pos(&c.name)?, c)),
            None => None,
        };
        let after = q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(&q.sort, q.descending, c))
            .transpose()?;
        let keep = |r: &Record<T>| {
            (q.include_archived || !r.archived) && q.filter.as_ref().is_none_or(|f| f(r))
        };
        let Some((pos, cond)) = cond else {
            return self.scan(q, self.walk(&q.sort, idx, q.descending, after)?, keep);
        };
        if idx == Some(pos) {
            // Sorted by the condition's own index: walk just its range.
            let range = index_bounds(cond);
            let bounds = match (after, q.descending) {
                (None, _) => range,
                (Some(a), false) => (max_lower(range.0, Bound::Excluded(a)), range.1),
                (Some(a), true) => (range.0, min_upper(range.1, Bound::Excluded(a))),
            };
            return self.scan(q, self.index_walk(pos, bounds, q.descending).map(Ok), keep);
        }
        // Few matches: collect and order them. Many: walk the order, checking the condition.
        let candidates = self.candidates(pos, index_bounds(cond), q.budget + 1);
        if candidates.len() <= q.budget {
            return self.collect(q, idx, candidates, after, keep);
        }
        let def = &self.defs[pos];
        let within =
            |r: &Record<T>| keep(r) && (def.keys)(&r.data).iter().any(|k| cond.contains(k));
        self.scan(q, self.walk(&q.sort, idx, q.descending, after)?, within)
    }

    /// A page from walking `walk` (positions in the query's order after its cursor), examining
    /// at most the query's budget. The cursor resumes after the last record examined.
    fn scan(
        &self,
        q: &Query<T>,
        walk: impl Iterator<Item = Result<Position>>,
        keep: impl Fn(&Record<T>) -> bool,
    ) -> Result<Page<T>>
    where
        T: DeserializeOwned + Clone,
    {
        let mut items = Vec::with_capacity(q.limit.min(1024));
        let mut examined = 0;
        let mut last: Option<Position> = None;
        let mut resume = None;
        for pos in walk {
            let pos = pos?;
            if examined == q.budget {
                resume = last;
                break;
            }
            // Tombstones are skipped without reading them.
            let slot = self
                .records
                .get(&pos.1)
                .filter(|s| q.include_archived || !s.archived());
            let hit = match slot {
                Some(slot) => Some(self.resolve(pos.1, &slot, true)?).filter(|r| keep(r)),
                None => None,
            };
            if let Some(r) = hit {
                if items.len() == q.limit {
                    // One more match exists: the next page starts right before it.
                    resume = last;
                    break;
                }
                items.push(r);
            }
            examined += 1;
            last = Some(pos);
        }
        Ok(Page {
            items,
            next_cursor: resume.map(|p| encode_cursor(&q.sort, q.descending, &p)),
            examined,
        })
    }

    /// Index mode, no filter, in id order or (when the base's creation order is its id order)
    /// in creation order: the page of candidates `ids` (sorted) after `after`, reading only the
    /// records it shows, those changed since the snapshot and the few a binary search for the
    /// cursor needs, instead of every candidate. `None` where this does not apply.
    fn collect_in_order(
        &self,
        q: &Query<T>,
        ids: &[(Uuid, Option<Slot<T>>)],
        after: Option<&Position>,
    ) -> Result<Option<Page<T>>>
    where
        T: DeserializeOwned + Clone,
    {
        let by_id = match q.sort {
            SortKey::Id => true,
            SortKey::CreatedAt if self.records.base().in_id_order() => false,
            _ => return Ok(None),
        };
        if self.disk.is_none() {
            return Ok(None);
        }
        // The base's candidates are in creation order already (it is their id order); those
        // changed since have their creation time at hand (in memory or the cache, nearly always).
        let mut base: Vec<(Uuid, Slot<T>)> = Vec::new();
        let mut changed: Vec<(Position, Slot<T>)> = Vec::new();
        for (id, slot) in ids {
            let Some(slot) = slot.clone().or_else(|| self.records.get(id)) else {
                continue;
            };
            if !q.include_archived && slot.archived() {
                continue;
            }
            if by_id || !self.records.changed(id) {
                base.push((*id, slot));
            } else {
                let t = self.created_of(*id, &slot)?;
                changed.push(((IndexKey::Time(t), *id), slot));
            }
        }
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        if q.descending {
            base.reverse();
            changed.reverse();
        }
        let position = |(id, slot): &(Uuid, Slot<T>)| -> Result<Position> {
            Ok(if by_id {
                (IndexKey::Uuid(*id), *id)
            } else {
                (IndexKey::Time(self.created_of(*id, slot)?), *id)
            })
        };
        // Whether a position comes after `a` in the query's direction.
        let past = |p: &Position, a: &Position| if q.descending { p < a } else { p > a };
        let (mut i, mut j) = (0, 0);
        if let Some(a) = after {
            let (mut lo, mut hi) = (0, base.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if past(&position(&base[mid])?, a) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            i = lo;
            j = changed.partition_point(|(p, _)| !past(p, a));
        }
        let mut items: Vec<Arc<Record<T>>> = Vec::with_capacity(q.limit.min(1024));
        let mut last: Option<Position> = None;
        let mut more = false;
        let mut next_base: Option<Position> = None;
        while i < base.len() || j < changed.len() {
            if items.len() == q.limit {
                more = true;
                break;
            }
            if i < base.len() && next_base.is_none() {
                next_base = Some(position(&base[i])?);
            }
            let take_base = match (&next_base, changed.get(j)) {
                (Some(b), Some((c, _))) => past(c, b),
                (Some(_), None) => true,
                (None, _) => false,
            };
            let (pos, id, slot) = if take_base {
                i += 1;
                let pos = next_base.take().expect("a base position");
                let (id, slot) = &base[i - 1];
                (pos, *id, slot)
            } else {
                j += 1;
                let (pos, slot) = &changed[j - 1];
                (pos.clone(), pos.1, slot)
            };
            items.push(self.resolve(id, slot, true)?);
            last = Some(pos);
        }
        Ok(Some(Page {
            items,
            next_cursor: last
                .filter(|_| more)
                .map(|p| encode_cursor(&q.sort, q.descending, &p)),
            examined: ids.len(),
        }))
    }

    /// A page from the candidate ids of an index condition (at most the budget of them): keeps
    /// the matching ones, orders them, and takes the page after the cursor.
    fn collect(
        &self,
        q: &Query<T>,
        idx: Option<usize>,
        mut ids: Vec<(Uuid, Option<Slot<T>>)>,
        after: Option<Position>,
        keep: impl Fn(&Record<T>) -> bool,
    ) -> Result<Page<T>>
    where
        T: DeserializeOwned + Clone,
    {
        // A record with several keys in the range is a candidate once.
        ids.sort_unstable_by_key(|c| c.0);
        ids.dedup_by_key(|c| c.0);
        if q.filter.is_none()
            && let Some(page) = self.collect_in_order(q, &ids, after.as_ref())?
        {
            return Ok(page);
        }
        let mut matches: Vec<(Position, Arc<Record<T>>)> = Vec::new();
        for (id, slot) in &ids {
            let Some(slot) = slot.clone().or_else(|| self.records.get(id)) else {
                continue;
            };
            if !q.include_archived && slot.archived() {
                continue;
            }
            let r = self.resolve(*id, &slot, true)?;
            if keep(&r) {
                matches.push((self.position(&q.sort, idx, &r), r));
            }
        }
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        if q.descending {
            matches.reverse();
        }
        let start = match &after {
            None => 0,
            Some(a) if q.descending => matches.partition_point(|(p, _)| p >= a),
            Some(a) => matches.partition_point(|(p, _)| p <= a),
        };
        let rest = &matches[start..];
        let more = rest.len() > q.limit;
        let items: Vec<Arc<Record<T>>> = rest
            .iter()
            .take(q.limit)
            .map(|(_, r)| (*r).clone())
            .collect();
        let next_cursor = match items.last() {
            Some(last) if more => Some(encode_cursor(
                &q.sort,
                q.descending,
                &self.position(&q.sort, idx, last),
            )),
            _ => None,
        };
        Ok(Page {
            items,
            next_cursor,
            examined: ids.len(),
        })
    }

    /// How many records match a query's conditions (its order, limit, cursor and budget are
    /// ignored). O(matches) with an index condition, O(1) without conditions, a scan of every
    /// record otherwise: not for request paths.
    pub fn count_matching(&self, q: &Query<T>) -> Result<u64>
    where
        T: DeserializeOwned + Clone,
    {
        let ids: Vec<Uuid> = match &q.index {
            Some(c) => {
                let mut ids: Vec<Uuid> = self
                    .index_walk(self.index_pos(&c.name)?, index_bounds(c), false)
                    .map(|(_, id)| id)
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            None if q.filter.is_none() && !q.include_archived => return Ok(self.live),
            None if q.filter.is_none() => return Ok(self.records.len() as u64),
            None => self.records.iter().map(|(id, _)| id).collect(),
        };
        let mut n = 0;
        for id in ids {
            let Some(slot) = self.records.get(&id) else {
                continue;
            };
            if !q.include_archived && slot.archived() {
                continue;
            }
            let r = self.resolve(id, &slot, false)?;
            if q.filter.as_ref().is_none_or(|f| f(&r)) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The retained events after sequence `after`, at most `limit` of them.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event<T>>>> {
        if after >= self.seq {
            return Ok(Vec::new());
        }
        let oldest = self.events.front().map_or(self.seq + 1, |e| e.seq);
        if after + 1 < oldest {
            return Err(StoreError::TooOld {
                requested: after,
                oldest_available: oldest,
            });
        }
        let start = (after + 1 - oldest) as usize;
        // `Vector::skip` is O(log n), unlike `Iterator::skip`.
        Ok(self
            .events
            .skip(start)
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }
}
