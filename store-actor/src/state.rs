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

use crate::error::{Result, StoreError};
use crate::query::{IndexRange, Page, Position, Query, SortKey, decode_cursor, encode_cursor};
use crate::record::{Event, IndexKey, Record};

/// Yields a sorted vector's even positions, then its odd ones: both runs are in order (fast
/// inserts), and the second run fills the room the first left in each node.
fn interleaved<X>(v: Vec<X>) -> impl Iterator<Item = X> {
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

/// Everything readers can see of a store at one sequence number.
pub(crate) struct State<T> {
    /// All records, archived ones included.
    pub records: OrdMap<Uuid, Arc<Record<T>>>,
    /// Creation order: (created_at as Unix nanoseconds, id).
    pub by_created: OrdSet<(i128, Uuid)>,
    /// One ordered set per declared index, in declaration order: (key, id).
    pub indexes: Vec<OrdSet<(IndexKey, Uuid)>>,
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
    pub fn new(defs: Arc<[IndexDef<T>]>) -> Self {
        Self {
            records: OrdMap::new(),
            by_created: OrdSet::new(),
            indexes: defs.iter().map(|_| OrdSet::new()).collect(),
            events: Vector::new(),
            seq: 0,
            live: 0,
            defs,
        }
    }

    /// Puts a record in place of any earlier version, keeping indexes and counts right.
    pub fn put(&mut self, rec: Arc<Record<T>>) {
        let old = self.records.insert(rec.id, rec.clone());
        if let Some(old) = &old {
            if !old.archived {
                self.live -= 1;
            }
            if old.created_at != rec.created_at {
                self.by_created
                    .remove(&(old.created_at.unix_timestamp_nanos(), old.id));
            }
        }
        if !rec.archived {
            self.live += 1;
        }
        self.by_created
            .insert((rec.created_at.unix_timestamp_nanos(), rec.id));
        for (def, set) in self.defs.iter().zip(self.indexes.iter_mut()) {
            let new_keys = (def.keys)(&rec.data);
            if let Some(old) = &old {
                let old_keys = (def.keys)(&old.data);
                if old_keys == new_keys {
                    continue;
                }
                for k in old_keys {
                    set.remove(&(k, rec.id));
                }
            }
            for k in new_keys {
                set.insert((k, rec.id));
            }
        }
    }

    /// Loads an empty state with a snapshot's records (and their line numbers, for errors).
    ///
    /// Sorting first and inserting in order is several times faster than inserting index keys
    /// in random order, and inserting every other element first leaves the B-tree leaves full
    /// instead of half full (in-order inserts split nodes in the middle). The indexes are built
    /// on a second thread while the main map is.
    pub fn bulk_load(
        &mut self,
        mut records: Vec<(Arc<Record<T>>, u64)>,
        file: &std::path::Path,
    ) -> Result<()>
    where
        T: Send + Sync,
    {
        debug_assert!(
            self.records.is_empty(),
            "bulk_load starts from an empty state"
        );
        records.sort_by_key(|(r, _)| r.id);
        if let Some(w) = records.windows(2).find(|w| w[0].0.id == w[1].0.id) {
            return Err(StoreError::Corrupt {
                file: file.to_owned(),
                line: w[1].1,
                reason: format!("duplicate record id {}", w[1].0.id),
            });
        }
        let records: Vec<Arc<Record<T>>> = records.into_iter().map(|(r, _)| r).collect();
        self.live = records.iter().filter(|r| !r.archived).count() as u64;
        let defs = self.defs.clone();
        let (by_created, indexes) = std::thread::scope(|scope| {
            let side = scope.spawn(|| {
                let mut created: Vec<(i128, Uuid)> = records
                    .iter()
                    .map(|r| (r.created_at.unix_timestamp_nanos(), r.id))
                    .collect();
                created.sort_unstable();
                let by_created: OrdSet<(i128, Uuid)> = interleaved(created).collect();
                let indexes: Vec<OrdSet<(IndexKey, Uuid)>> = defs
                    .iter()
                    .map(|def| {
                        let mut keys: Vec<(IndexKey, Uuid)> = records
                            .iter()
                            .flat_map(|r| (def.keys)(&r.data).into_iter().map(|k| (k, r.id)))
                            .collect();
                        keys.sort_unstable();
                        keys.dedup();
                        interleaved(keys).collect()
                    })
                    .collect();
                (by_created, indexes)
            });
            let mut map = OrdMap::new();
            for r in interleaved(records.iter().map(|r| (r.id, r.clone())).collect()) {
                map.insert(r.0, r.1);
            }
            self.records = map;
            side.join().expect("index builder panicked")
        });
        self.by_created = by_created;
        self.indexes = indexes;
        Ok(())
    }

    /// Applies a mutation and remembers its event, forgetting events beyond `retention`.
    pub fn apply(&mut self, event: Arc<Event<T>>, retention: usize) {
        self.put(event.record.clone());
        self.seq = event.seq;
        if retention > 0 {
            self.events.push_back(event);
            while self.events.len() > retention {
                self.events.pop_front();
            }
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<&Arc<Record<T>>> {
        self.records.get(id)
    }

    fn index_pos(&self, name: &str) -> Result<usize> {
        self.defs
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| StoreError::UnknownIndex(name.to_owned()))
    }

    /// Ids whose index `name` holds `key`, in id order.
    pub fn lookup_ids(&self, name: &str, key: &IndexKey) -> Result<Vec<Uuid>> {
        let set = &self.indexes[self.index_pos(name)?];
        let lo = (key.clone(), Uuid::nil());
        let hi = (key.clone(), Uuid::max());
        Ok(set.range(lo..=hi).map(|(_, id)| *id).collect())
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
        dir(self.indexes[pos].range((lo, hi)).cloned(), descending)
    }

    /// Walks a sort order from just after `after`, in the query's direction.
    fn walk<'a>(
        &'a self,
        sort: &SortKey,
        idx: Option<usize>,
        descending: bool,
        after: Option<Position>,
    ) -> Box<dyn Iterator<Item = Position> + 'a> {
        match sort {
            SortKey::Id => {
                let after = after.map(|(_, id)| id);
                let it = self
                    .records
                    .range(after_bounds(after, descending))
                    .map(|(id, _)| (IndexKey::Uuid(*id), *id));
                dir(it, descending)
            }
            SortKey::CreatedAt => {
                let after = after.map(|(k, id)| match k {
                    IndexKey::Time(t) => (t, id),
                    _ => (i128::MIN, id),
                });
                let it = self
                    .by_created
                    .range(after_bounds(after, descending))
                    .map(|(t, id)| (IndexKey::Time(*t), *id));
                dir(it, descending)
            }
            SortKey::Index(_) => self.index_walk(
                idx.expect("index resolved"),
                after_bounds(after, descending),
                descending,
            ),
        }
    }

    /// One page of `q` (see [`Query`] for how it is found and what the budget does).
    pub fn list(&self, q: &Query<T>) -> Result<Page<T>> {
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
            return Ok(self.scan(q, self.walk(&q.sort, idx, q.descending, after), keep));
        };
        if idx == Some(pos) {
            // Sorted by the condition's own index: walk just its range.
            let range = index_bounds(cond);
            let bounds = match (after, q.descending) {
                (None, _) => range,
                (Some(a), false) => (max_lower(range.0, Bound::Excluded(a)), range.1),
                (Some(a), true) => (range.0, min_upper(range.1, Bound::Excluded(a))),
            };
            return Ok(self.scan(q, self.index_walk(pos, bounds, q.descending), keep));
        }
        // Few matches: collect and order them. Many: walk the order, checking the condition.
        let candidates: Vec<Uuid> = self
            .index_walk(pos, index_bounds(cond), false)
            .map(|(_, id)| id)
            .take(q.budget + 1)
            .collect();
        if candidates.len() <= q.budget {
            return Ok(self.collect(q, idx, candidates, after, keep));
        }
        let def = &self.defs[pos];
        let within =
            |r: &Record<T>| keep(r) && (def.keys)(&r.data).iter().any(|k| cond.contains(k));
        Ok(self.scan(q, self.walk(&q.sort, idx, q.descending, after), within))
    }

    /// A page from walking `walk` (positions in the query's order after its cursor), examining
    /// at most the query's budget. The cursor resumes after the last record examined.
    fn scan(
        &self,
        q: &Query<T>,
        walk: impl Iterator<Item = Position>,
        keep: impl Fn(&Record<T>) -> bool,
    ) -> Page<T> {
        let mut items = Vec::with_capacity(q.limit.min(1024));
        let mut examined = 0;
        let mut last: Option<Position> = None;
        let mut resume = None;
        for pos in walk {
            if examined == q.budget {
                resume = last;
                break;
            }
            if let Some(r) = self.records.get(&pos.1)
                && keep(r)
            {
                if items.len() == q.limit {
                    // One more match exists: the next page starts right before it.
                    resume = last;
                    break;
                }
                items.push(r.clone());
            }
            examined += 1;
            last = Some(pos);
        }
        Page {
            items,
            next_cursor: resume.map(|p| encode_cursor(&q.sort, q.descending, &p)),
            examined,
        }
    }

    /// A page from the candidate ids of an index condition (at most the budget of them): keeps
    /// the matching ones, orders them, and takes the page after the cursor.
    fn collect(
        &self,
        q: &Query<T>,
        idx: Option<usize>,
        mut ids: Vec<Uuid>,
        after: Option<Position>,
        keep: impl Fn(&Record<T>) -> bool,
    ) -> Page<T> {
        // A record with several keys in the range is a candidate once.
        ids.sort_unstable();
        ids.dedup();
        let mut matches: Vec<(Position, &Arc<Record<T>>)> = ids
            .iter()
            .filter_map(|id| self.records.get(id))
            .filter(|r| keep(r))
            .map(|r| (self.position(&q.sort, idx, r), r))
            .collect();
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
        Page {
            items,
            next_cursor,
            examined: ids.len(),
        }
    }

    /// How many records match a query's conditions (its order, limit, cursor and budget are
    /// ignored). O(matches) with an index condition, O(1) without conditions, a scan of every
    /// record otherwise: not for request paths.
    pub fn count_matching(&self, q: &Query<T>) -> Result<u64> {
        let keep = |r: &Record<T>| {
            (q.include_archived || !r.archived) && q.filter.as_ref().is_none_or(|f| f(r))
        };
        Ok(match &q.index {
            Some(c) => {
                let mut ids: Vec<Uuid> = self
                    .index_walk(self.index_pos(&c.name)?, index_bounds(c), false)
                    .map(|(_, id)| id)
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids.iter()
                    .filter_map(|id| self.records.get(id))
                    .filter(|r| keep(r))
                    .count() as u64
            }
            None if q.filter.is_none() && !q.include_archived => self.live,
            None if q.filter.is_none() => self.records.len() as u64,
            None => self.records.values().filter(|r| keep(r)).count() as u64,
        })
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
