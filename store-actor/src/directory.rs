//! The key directory: where each record of a state is, by id.
//!
//! In memory mode every record is in a persistent map ([`Directory::delta`] is everything). In
//! index mode most records sit in the last snapshot and nothing changes them until they are
//! written again, so they are kept as a flat sorted array ([`Base`]: 24 bytes a record, shared
//! by every state that comes from the same snapshot), and only the records written since (or
//! too large to pack) are in the persistent map in front of it, which overrides the array. A
//! compaction builds the next array from its new snapshot.

use std::cmp::Ordering;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use imbl::OrdMap;
use uuid::Uuid;

use crate::disk::Loc;
use crate::state::Slot;

/// Offsets up to 1 TiB and records up to 8 MiB are packed; larger ones go to the map.
const OFFSET_BITS: u32 = 40;
const LEN_BITS: u32 = 23;

/// One entry in every this many of the creation order keeps its time in memory, so a seek in
/// that order reads at most log2(SAMPLE) records.
pub(crate) const SAMPLE: usize = 64;

/// A location packed in 8 bytes: offset, length, archived flag (the generation is the base's).
fn pack(loc: &Loc) -> Option<u64> {
    let len = u64::from(loc.len);
    (loc.offset < 1 << OFFSET_BITS && len < 1 << LEN_BITS)
        .then(|| loc.offset | len << OFFSET_BITS | u64::from(loc.archived) << 63)
}

fn unpack(p: u64, generation: u16) -> Loc {
    Loc {
        offset: p & ((1 << OFFSET_BITS) - 1),
        len: ((p >> OFFSET_BITS) & ((1 << LEN_BITS) - 1)) as u32,
        generation,
        archived: p >> 63 == 1,
    }
}

/// The records of one snapshot file, sorted by id, with their creation order.
#[derive(Default)]
pub(crate) struct Base {
    generation: u16,
    entries: Box<[(Uuid, u64)]>,
    /// Creation order as positions in `entries`; `None` when it is the id order (v7 ids made
    /// as the records were created).
    created: Option<Box<[u32]>>,
    /// The creation time (Unix nanoseconds) of every `SAMPLE`th record in creation order.
    samples: Box<[i128]>,
}

impl Base {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The id and slot at position `i`.
    pub fn slot<T>(&self, i: usize) -> (Uuid, Slot<T>) {
        let (id, p) = self.entries[i];
        (id, Slot::Disk(unpack(p, self.generation)))
    }

    /// The record at position `j` of the creation order: its id and location.
    pub fn by_created<T>(&self, j: usize) -> (Uuid, Slot<T>) {
        match &self.created {
            Some(order) => self.slot(order[j] as usize),
            None => self.slot(j),
        }
    }

    /// Whether the creation order is the id order.
    pub fn in_id_order(&self) -> bool {
        self.created.is_none()
    }

    /// The creation times of creation-order positions 0, `SAMPLE`, 2 × `SAMPLE`, ...
    pub fn samples(&self) -> &[i128] {
        &self.samples
    }

    /// The id at position `i`.
    pub fn id_at(&self, i: usize) -> Uuid {
        self.entries[i].0
    }

    fn find(&self, id: &Uuid) -> Option<usize> {
        self.entries.binary_search_by(|e| e.0.cmp(id)).ok()
    }

    /// Positions of the ids in `range`.
    fn positions(&self, range: &impl RangeBounds<Uuid>) -> std::ops::Range<usize> {
        let lo = match range.start_bound() {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.entries.partition_point(|e| e.0 < *k),
            Bound::Excluded(k) => self.entries.partition_point(|e| e.0 <= *k),
        };
        let hi = match range.end_bound() {
            Bound::Unbounded => self.entries.len(),
            Bound::Included(k) => self.entries.partition_point(|e| e.0 <= *k),
            Bound::Excluded(k) => self.entries.partition_point(|e| e.0 < *k),
        };
        lo..hi.max(lo)
    }
}

/// Collects a snapshot's records, in any order, into a [`Base`] and the overflow that does not
/// pack (kept in the map).
pub(crate) struct BaseBuilder {
    generation: u16,
    /// The base's entries as they will be (so building it copies nothing)...
    entries: Vec<(Uuid, u64)>,
    /// ...and beside each, its creation time and push number: 40 bytes a record in all.
    meta: Vec<(i64, u32)>,
    overflow: Vec<(Uuid, Loc, i128)>,
    pushed: u32,
    sorted: bool,
}

impl BaseBuilder {
    pub fn new(generation: u16) -> Self {
        Self {
            generation,
            entries: Vec::new(),
            meta: Vec::new(),
            overflow: Vec::new(),
            pushed: 0,
            sorted: true,
        }
    }

    /// Adds a record of this generation, created at `created` (Unix nanoseconds). Records are
    /// numbered in the order they are pushed (see [`BaseBuilder::build_ranked`]).
    pub fn push(&mut self, id: Uuid, loc: Loc, created: i128) {
        debug_assert_eq!(loc.generation, self.generation);
        match (pack(&loc), i64::try_from(created)) {
            (Some(p), Ok(t)) => {
                if self.entries.last().is_some_and(|e| e.0 >= id) {
                    self.sorted = false;
                }
                self.entries.push((id, p));
                self.meta.push((t, self.pushed));
            }
            _ => self.overflow.push((id, loc, created)),
        }
        self.pushed += 1;
    }

    /// How many records were pushed.
    pub fn pushed(&self) -> u32 {
        self.pushed
    }

    /// Puts the entries in id order (a copy, only if they were pushed out of order); equal
    /// ids stay in push order.
    fn sort(&mut self) {
        if self.sorted {
            return;
        }
        let (entries, meta) = (&self.entries, &self.meta);
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (entries[i as usize].0, meta[i as usize].1));
        self.entries = order.iter().map(|&i| entries[i as usize]).collect();
        self.meta = order.iter().map(|&i| meta[i as usize]).collect();
        self.sorted = true;
    }

    /// An id pushed more than once, with the push number of a later copy.
    pub fn first_duplicate(&mut self) -> Option<(Uuid, u32)> {
        self.sort();
        if let Some(i) =
            (1..self.entries.len()).find(|&i| self.entries[i - 1].0 == self.entries[i].0)
        {
            return Some((self.entries[i].0, self.meta[i].1));
        }
        let mut seen = std::collections::HashSet::new();
        self.overflow.iter().find_map(|(id, _, _)| {
            let again = !seen.insert(*id);
            match self.entries.binary_search_by(|e| e.0.cmp(id)) {
                Ok(i) => Some((*id, self.meta[i].1)),
                Err(_) if again => Some((*id, self.pushed.saturating_sub(1))),
                Err(_) => None,
            }
        })
    }

    /// The base, and the records that did not pack (with their creation times, for the map).
    /// Ids must be distinct (the caller has checked).
    pub fn build(self) -> (Base, Vec<(Uuid, Loc, i128)>) {
        let (base, overflow, _) = self.build_inner(false);
        (base, overflow)
    }

    /// As [`BaseBuilder::build`], with each pushed record's position in the base (by push
    /// number; `u32::MAX` for those that did not pack).
    pub fn build_ranked(self) -> (Base, Vec<(Uuid, Loc, i128)>, Vec<u32>) {
        self.build_inner(true)
    }

    fn build_inner(mut self, ranked: bool) -> (Base, Vec<(Uuid, Loc, i128)>, Vec<u32>) {
        self.sort();
        let BaseBuilder {
            generation,
            entries,
            meta,
            overflow,
            pushed,
            ..
        } = self;
        let mut rank = Vec::new();
        if ranked {
            rank = vec![u32::MAX; pushed as usize];
            for (pos, m) in meta.iter().enumerate() {
                rank[m.1 as usize] = pos as u32;
            }
        }
        let key = |i: usize| (meta[i].0, entries[i].0);
        let in_id_order = (1..entries.len()).all(|i| key(i - 1) < key(i));
        let created = (!in_id_order).then(|| {
            let mut order: Vec<u32> = (0..entries.len() as u32).collect();
            order.sort_unstable_by_key(|&i| key(i as usize));
            order.into_boxed_slice()
        });
        let at = |j: usize| match &created {
            Some(order) => meta[order[j] as usize].0,
            None => meta[j].0,
        };
        let samples = (0..entries.len())
            .step_by(SAMPLE)
            .map(|j| i128::from(at(j)))
            .collect();
        drop(meta);
        let base = Base {
            generation,
            entries: entries.into_boxed_slice(),
            created,
            samples,
        };
        (base, overflow, rank)
    }
}

/// Where every record of a state is: a [`Base`] and a map of changes that overrides it.
pub(crate) struct Directory<T> {
    base: Arc<Base>,
    /// Every record in memory mode; in index mode the records written since `base` was made.
    delta: OrdMap<Uuid, Slot<T>>,
    len: usize,
}

impl<T> Clone for Directory<T> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            delta: self.delta.clone(),
            len: self.len,
        }
    }
}

impl<T> Directory<T> {
    /// A directory of `base` overridden by `delta`.
    pub fn new(base: Base, delta: OrdMap<Uuid, Slot<T>>) -> Self {
        let shadowed = delta.keys().filter(|id| base.find(id).is_some()).count();
        let len = base.len() + delta.len() - shadowed;
        Self {
            base: Arc::new(base),
            delta,
            len,
        }
    }

    /// Records, archived ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    /// Whether `id` is in the map of changes (so the base's entry for it, if any, is stale).
    pub fn changed(&self, id: &Uuid) -> bool {
        self.delta.contains_key(id)
    }

    pub fn get(&self, id: &Uuid) -> Option<Slot<T>> {
        if let Some(slot) = self.delta.get(id) {
            return Some(slot.clone());
        }
        self.base.find(id).map(|i| self.base.slot(i).1)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.delta.contains_key(id) || self.base.find(id).is_some()
    }

    /// Puts `slot` for `id`; returns the slot it replaces and whether that came from the base.
    pub fn insert(&mut self, id: Uuid, slot: Slot<T>) -> Option<(Slot<T>, bool)> {
        match self.delta.insert(id, slot) {
            Some(old) => Some((old, false)),
            None => match self.base.find(&id) {
                Some(i) => Some((self.base.slot(i).1, true)),
                None => {
                    self.len += 1;
                    None
                }
            },
        }
    }

    /// Undoes an [`insert`](Self::insert) that returned `old`.
    pub fn restore(&mut self, id: Uuid, old: Option<(Slot<T>, bool)>) {
        match old {
            Some((slot, false)) => {
                self.delta.insert(id, slot);
            }
            Some((_, true)) => {
                self.delta.remove(&id);
            }
            None => {
                self.delta.remove(&id);
                self.len -= 1;
            }
        }
    }

    /// The records with ids in `range`, in id order or its reverse.
    pub fn range<'a>(
        &'a self,
        range: (Bound<Uuid>, Bound<Uuid>),
        descending: bool,
    ) -> Box<dyn Iterator<Item = (Uuid, Slot<T>)> + 'a> {
        let positions = self.base.positions(&range);
        let base = BaseWalk::new(self.base.clone(), positions, descending);
        let delta = self.delta.range(range).map(|(id, s)| (*id, s.clone()));
        let delta: Box<dyn Iterator<Item = _>> = if descending {
            Box::new(delta.rev())
        } else {
            Box::new(delta)
        };
        Box::new(Merge::new(
            base,
            delta,
            descending,
            |a: &(Uuid, Slot<T>), b: &(Uuid, Slot<T>)| a.0.cmp(&b.0),
        ))
    }

    /// Every record in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Uuid, Slot<T>)> + '_ {
        self.range((Bound::Unbounded, Bound::Unbounded), false)
    }

    /// Every record in id order, owning what it walks.
    pub fn into_iter(self) -> impl Iterator<Item = (Uuid, Slot<T>)> {
        let base = BaseWalk::new(self.base.clone(), 0..self.base.len(), false);
        Merge::new(
            base,
            self.delta.into_iter(),
            false,
            |a: &(Uuid, Slot<T>), b: &(Uuid, Slot<T>)| a.0.cmp(&b.0),
        )
    }
}

/// Records of a base, in id order or its reverse.
struct BaseWalk<T> {
    base: Arc<Base>,
    positions: std::ops::Range<usize>,
    descending: bool,
    _slot: std::marker::PhantomData<fn() -> T>,
}

impl<T> BaseWalk<T> {
    fn new(base: Arc<Base>, positions: std::ops::Range<usize>, descending: bool) -> Self {
        Self {
            base,
            positions,
            descending,
            _slot: std::marker::PhantomData,
        }
    }
}

impl<T> Iterator for BaseWalk<T> {
    type Item = (Uuid, Slot<T>);
    fn next(&mut self) -> Option<(Uuid, Slot<T>)> {
        let i = if self.descending {
            self.positions.next_back()?
        } else {
            self.positions.next()?
        };
        Some(self.base.slot(i))
    }
}

/// Two walks in the same order merged into one; on equal keys the second one (the newer) wins.
pub(crate) struct Merge<I, A: Iterator<Item = I>, B: Iterator<Item = I>> {
    a: Peekable<A>,
    b: Peekable<B>,
    descending: bool,
    cmp: fn(&I, &I) -> Ordering,
}

impl<I, A: Iterator<Item = I>, B: Iterator<Item = I>> Merge<I, A, B> {
    /// `cmp` orders two items of the ascending order.
    pub fn new(a: A, b: B, descending: bool, cmp: fn(&I, &I) -> Ordering) -> Self {
        Self {
            a: a.peekable(),
            b: b.peekable(),
            descending,
            cmp,
        }
    }
}

impl<I, A: Iterator<Item = I>, B: Iterator<Item = I>> Iterator for Merge<I, A, B> {
    type Item = I;
    fn next(&mut self) -> Option<I> {
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) if self.descending => (self.cmp)(b, a),
            (Some(a), Some(b)) => (self.cmp)(a, b),
        };
        match order {
            Ordering::Less => self.a.next(),
            Ordering::Greater => self.b.next(),
            Ordering::Equal => {
                self.a.next();
                self.b.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(offset: u64, len: u32, archived: bool) -> Loc {
        Loc {
            offset,
            len,
            generation: 3,
            archived,
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn ids<T>(it: impl Iterator<Item = (Uuid, Slot<T>)>) -> Vec<u128> {
        it.map(|(id, _)| id.as_u128()).collect()
    }

    #[test]
    fn locations_pack_and_unpack_and_large_ones_overflow() {
        for l in [
            loc(0, 0, false),
            loc((1 << 40) - 1, (1 << 23) - 1, true),
            loc(12345, 678, false),
        ] {
            assert_eq!(unpack(pack(&l).unwrap(), 3), l);
        }
        assert_eq!(pack(&loc(1 << 40, 1, false)), None);
        assert_eq!(pack(&loc(0, 1 << 23, false)), None);
        let mut b = BaseBuilder::new(3);
        b.push(id(2), loc(10, 5, false), 20);
        b.push(id(1), loc(0, 1 << 23, false), 10);
        let (base, overflow) = b.build();
        assert_eq!(base.len(), 1);
        assert_eq!(overflow, vec![(id(1), loc(0, 1 << 23, false), 10)]);
    }

    #[test]
    fn the_creation_order_is_kept_only_when_it_is_not_the_id_order() {
        let build = |times: &[i128]| {
            let mut b = BaseBuilder::new(3);
            for (i, t) in times.iter().enumerate() {
                b.push(id(i as u128), loc(i as u64 * 10, 10, false), *t);
            }
            b.build().0
        };
        let same = build(&[1, 2, 3]);
        assert!(same.created.is_none());
        let other = build(&[3, 1, 2]);
        let order: Vec<u128> = (0..3)
            .map(|j| other.by_created::<()>(j).0.as_u128())
            .collect();
        assert_eq!(order, vec![1, 2, 0]);
        // Equal times fall back to id order.
        assert!(build(&[5, 5, 5]).created.is_none());
        let many: Vec<i128> = (0..200).rev().collect();
        let many = build(&many);
        assert_eq!(many.samples(), &[0, 64, 128, 192]);
    }

    #[test]
    fn the_map_overrides_the_base_and_counts_stay_right() {
        let mut b = BaseBuilder::new(3);
        for n in [1, 3, 5, 7] {
            b.push(id(n), loc(n as u64, 1, n == 7), n as i128);
        }
        let mut d: Directory<u32> = Directory::new(b.build().0, OrdMap::new());
        assert_eq!(d.len(), 4);
        assert!(d.get(&id(7)).unwrap().archived());
        assert!(d.get(&id(2)).is_none());
        // A new id, and an id of the base.
        assert!(d.insert(id(4), Slot::Mem(Arc::new(record(4)))).is_none());
        let (old, from_base) = d.insert(id(3), Slot::Mem(Arc::new(record(3)))).unwrap();
        assert!(from_base && matches!(old, Slot::Disk(l) if l.offset == 3));
        assert_eq!(d.len(), 5);
        assert!(d.changed(&id(3)) && !d.changed(&id(5)));
        assert!(matches!(d.get(&id(3)), Some(Slot::Mem(_))));
        assert_eq!(ids(d.iter()), vec![1, 3, 4, 5, 7]);
        let range = (Bound::Excluded(id(1)), Bound::Included(id(5)));
        assert_eq!(ids(d.range(range, true)), vec![5, 4, 3]);
        assert_eq!(ids(d.clone().into_iter()), vec![1, 3, 4, 5, 7]);
        // Undoing both inserts gives back the base alone.
        d.restore(id(3), Some((old, true)));
        d.restore(id(4), None);
        assert_eq!(d.len(), 4);
        assert!(!d.changed(&id(3)));
        assert_eq!(ids(d.iter()), vec![1, 3, 5, 7]);
        // A map built with ids already in the base counts them once.
        let mut b = BaseBuilder::new(3);
        b.push(id(1), loc(1, 1, false), 1);
        b.push(id(3), loc(3, 1, false), 3);
        let delta: OrdMap<Uuid, Slot<u32>> = [3, 4]
            .into_iter()
            .map(|n| (id(n), Slot::Mem(Arc::new(record(n)))))
            .collect();
        assert_eq!(Directory::new(b.build().0, delta).len(), 3);
    }

    fn record(n: u128) -> crate::record::Record<u32> {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        crate::record::Record {
            id: id(n),
            version: 1,
            created_at: now,
            updated_at: now,
            archived: false,
            data: n as u32,
        }
    }
}
