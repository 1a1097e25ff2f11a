//! Secondary indexes: (key, id) entries in key order.
//!
//! An [`Index`] is a flat sorted array of the last snapshot's entries ([`IndexBase`]) with a
//! persistent set of the entries of records written since in front of it. An entry of the
//! array stands for a position in the key directory's [`Base`] (4 bytes, not a 16-byte id) and
//! an offset into one arena where each distinct key is stored once, order-preserving encoded
//! (4 more bytes and the key's own). It counts only while its record is still the snapshot's
//! version, i.e. while the directory's map of changes does not have it: the set has the
//! entries of every record in that map. In memory mode the array is empty and the set is
//! everything, as the directory's map is.

use std::cmp::Ordering;
use std::ops::{Bound, Range};
use std::sync::Arc;

use imbl::OrdSet;
use uuid::Uuid;

use crate::directory::{Base, Directory, Merge};
use crate::query::Position;
use crate::record::IndexKey;
use crate::state::Slot;

/// Encodes a key so that comparing encodings byte-wise orders them as the keys are ordered
/// (variant first, then the value; strings are the rest of the encoding, so a prefix sorts
/// first, as `String` does).
pub(crate) fn encode(key: &IndexKey, out: &mut Vec<u8>) {
    match key {
        IndexKey::Bool(b) => out.extend([0, u8::from(*b)]),
        IndexKey::Int(i) => {
            out.push(1);
            out.extend((*i as u64 ^ 1 << 63).to_be_bytes());
        }
        IndexKey::Str(s) => {
            out.push(2);
            out.extend(s.as_bytes());
        }
        IndexKey::Uuid(u) => {
            out.push(3);
            out.extend(u.as_bytes());
        }
        IndexKey::Time(t) => {
            out.push(4);
            out.extend((*t as u128 ^ 1 << 127).to_be_bytes());
        }
    }
}

/// The key [`encode`] wrote as `bytes`.
fn decode(bytes: &[u8]) -> IndexKey {
    let (tag, v) = bytes.split_first().expect("an encoded key has a tag");
    match tag {
        0 => IndexKey::Bool(v[0] == 1),
        1 => IndexKey::Int((u64::from_be_bytes(v.try_into().expect("8 bytes")) ^ 1 << 63) as i64),
        2 => IndexKey::Str(std::str::from_utf8(v).expect("encoded from a str").into()),
        3 => IndexKey::Uuid(Uuid::from_slice(v).expect("16 bytes")),
        _ => IndexKey::Time(
            (u128::from_be_bytes(v.try_into().expect("16 bytes")) ^ 1 << 127) as i128,
        ),
    }
}

/// Appends `bytes` to `arena` behind their length (LEB128); returns where it starts.
fn store(arena: &mut Vec<u8>, bytes: &[u8]) -> usize {
    let at = arena.len();
    let mut n = bytes.len();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            arena.push(low);
            break;
        }
        arena.push(low | 0x80);
    }
    arena.extend_from_slice(bytes);
    at
}

/// The bytes [`store`] put at `at`.
fn stored(arena: &[u8], at: u32) -> &[u8] {
    let mut i = at as usize;
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = arena[i];
        i += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    &arena[i..i + n]
}

/// One index's entries for the records of a directory [`Base`], sorted by (key, id).
#[derive(Default)]
pub(crate) struct IndexBase {
    /// (position in the directory's base, offset of the key in `arena`).
    entries: Box<[(u32, u32)]>,
    arena: Box<[u8]>,
}

impl IndexBase {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        stored(&self.arena, self.entries[i].1)
    }

    fn cmp_at(&self, i: usize, dir: &Base, key: &[u8], id: &Uuid) -> Ordering {
        self.key(i)
            .cmp(key)
            .then_with(|| dir.id_at(self.entries[i].0 as usize).cmp(id))
    }

    /// The positions of the entries between `lo` and `hi`.
    fn positions(&self, dir: &Base, lo: &Bound<Position>, hi: &Bound<Position>) -> Range<usize> {
        let start = self.bound(dir, lo, true);
        start..self.bound(dir, hi, false).max(start)
    }

    /// The first position not before the bound (`lower`) or the first after it (upper).
    fn bound(&self, dir: &Base, b: &Bound<Position>, lower: bool) -> usize {
        let (p, strict) = match b {
            Bound::Unbounded => return if lower { 0 } else { self.entries.len() },
            Bound::Included(p) => (p, !lower),
            Bound::Excluded(p) => (p, lower),
        };
        let mut enc = Vec::new();
        encode(&p.0, &mut enc);
        let (mut lo, mut hi) = (0, self.entries.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let o = self.cmp_at(mid, dir, &enc, &p.1);
            if o == Ordering::Less || (strict && o == Ordering::Equal) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Collects (position, key) entries in any order into an [`IndexBase`]. Keys go to the arena
/// as they come; `build` sorts the entries and writes each distinct key once.
pub(crate) struct IndexBuilder {
    entries: Vec<(u32, u32)>,
    arena: Vec<u8>,
    /// Entries whose key did not fit the arena's 4 GiB (they go to the index's set).
    overflow: Vec<(IndexKey, u32)>,
    scratch: Vec<u8>,
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            arena: Vec::new(),
            overflow: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds `key` for the record at `pos` (a position in the directory's base, or any number
    /// the caller maps with [`IndexBuilder::renumber`]).
    pub fn push(&mut self, pos: u32, key: &IndexKey) {
        self.scratch.clear();
        encode(key, &mut self.scratch);
        match u32::try_from(self.arena.len() + self.scratch.len() + 10) {
            Ok(_) => {
                let at = store(&mut self.arena, &self.scratch);
                self.entries.push((pos, at as u32));
            }
            Err(_) => self.overflow.push((key.clone(), pos)),
        }
    }

    /// Maps every entry's number through `to` (`None`: the record is not in the base, so its
    /// entries go to the set, with the id `id_of` gives).
    pub fn renumber(
        &mut self,
        to: impl Fn(u32) -> Option<u32>,
        id_of: impl Fn(u32) -> Uuid,
    ) -> Vec<(IndexKey, Uuid)> {
        let mut out = Vec::new();
        let arena = &self.arena;
        self.entries.retain_mut(|(pos, at)| match to(*pos) {
            Some(p) => {
                *pos = p;
                true
            }
            None => {
                out.push((decode(stored(arena, *at)), id_of(*pos)));
                false
            }
        });
        for (key, pos) in std::mem::take(&mut self.overflow) {
            match to(pos) {
                Some(p) => self.overflow.push((key, p)),
                None => out.push((key, id_of(pos))),
            }
        }
        out
    }

    /// The base (positions now refer to `dir`, which is sorted by id, so position order is id
    /// order), and the entries that did not fit it, with their ids.
    pub fn build(self, dir: &Base) -> (IndexBase, Vec<(IndexKey, Uuid)>) {
        let IndexBuilder {
            mut entries,
            arena,
            overflow,
            ..
        } = self;
        entries.sort_unstable_by(|a, b| {
            stored(&arena, a.1)
                .cmp(stored(&arena, b.1))
                .then(a.0.cmp(&b.0))
        });
        // A record that gives the same key twice has one entry.
        entries.dedup_by(|b, a| a.0 == b.0 && stored(&arena, a.1) == stored(&arena, b.1));
        // Rewrite the arena with each distinct key once when that saves at least half of it
        // (keys shared by many records, such as prices); otherwise keep it as it is, rather than
        // hold two copies of it at once.
        let distinct: usize = entries
            .iter()
            .enumerate()
            .filter(|&(i, e)| i == 0 || stored(&arena, entries[i - 1].1) != stored(&arena, e.1))
            .map(|(_, e)| stored(&arena, e.1).len() + 2)
            .sum();
        let arena = if distinct * 2 > arena.len() {
            arena
        } else {
            let mut packed = Vec::with_capacity(distinct);
            let mut last: Option<(u32, u32)> = None;
            for e in entries.iter_mut() {
                let key = stored(&arena, e.1);
                let at = match last {
                    Some((old, new)) if stored(&arena, old) == key => new,
                    _ => store(&mut packed, key) as u32,
                };
                last = Some((e.1, at));
                e.1 = at;
            }
            packed
        };
        let overflow = overflow
            .into_iter()
            .map(|(k, pos)| (k, dir.id_at(pos as usize)))
            .collect();
        let base = IndexBase {
            entries: entries.into_boxed_slice(),
            arena: arena.into_boxed_slice(),
        };
        (base, overflow)
    }
}

/// One secondary index of a state: the snapshot's entries, and those of records changed since.
pub(crate) struct Index {
    base: Arc<IndexBase>,
    delta: OrdSet<(IndexKey, Uuid)>,
}

impl Clone for Index {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            delta: self.delta.clone(),
        }
    }
}

impl Index {
    pub fn new(base: IndexBase, delta: OrdSet<(IndexKey, Uuid)>) -> Self {
        Self {
            base: Arc::new(base),
            delta,
        }
    }

    /// Adds an entry for a record in the directory's map of changes.
    pub fn insert(&mut self, key: IndexKey, id: Uuid) {
        self.delta.insert((key, id));
    }

    /// Removes an entry of a record in the directory's map of changes (the base's entries of a
    /// changed record no longer count anyway).
    pub fn remove(&mut self, key: IndexKey, id: Uuid) {
        self.delta.remove(&(key, id));
    }

    /// The ids of the entries between `lo` and `hi` (in no particular order), each with its
    /// slot when it comes from the base (found by position, no search of the directory).
    pub fn candidates<'a, T>(
        &'a self,
        records: &'a Directory<T>,
        (lo, hi): (Bound<Position>, Bound<Position>),
    ) -> impl Iterator<Item = (Uuid, Option<Slot<T>>)> + 'a {
        let dir = records.base();
        let base = self.base.positions(dir, &lo, &hi).filter_map(move |i| {
            let (id, slot) = dir.slot(self.base.entries[i].0 as usize);
            (!records.changed(&id)).then_some((id, Some(slot)))
        });
        let delta = self.delta.range((lo, hi)).map(|(_, id)| (*id, None));
        base.chain(delta)
    }

    /// The entries between `lo` and `hi` of a state whose directory is `records`, in key order
    /// or its reverse.
    pub fn range<'a, T>(
        &'a self,
        records: &'a Directory<T>,
        (lo, hi): (Bound<Position>, Bound<Position>),
        descending: bool,
    ) -> Box<dyn Iterator<Item = Position> + 'a> {
        let dir = records.base();
        let range = self.base.positions(dir, &lo, &hi);
        let positions: Box<dyn Iterator<Item = usize>> = if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let base = positions.filter_map(move |i| {
            let id = dir.id_at(self.base.entries[i].0 as usize);
            (!records.changed(&id)).then(|| (decode(self.base.key(i)), id))
        });
        let delta = self.delta.range((lo, hi)).cloned();
        let delta: Box<dyn Iterator<Item = Position>> = if descending {
            Box::new(delta.rev())
        } else {
            Box::new(delta)
        };
        Box::new(Merge::new(base, delta, descending, Ord::cmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::BaseBuilder;
    use crate::disk::Loc;
    use proptest::prelude::*;

    fn key_strategy() -> impl Strategy<Value = IndexKey> {
        prop_oneof![
            any::<bool>().prop_map(IndexKey::Bool),
            any::<i64>().prop_map(IndexKey::Int),
            "[a-c]{0,4}".prop_map(IndexKey::from),
            any::<u128>().prop_map(|n| IndexKey::Uuid(Uuid::from_u128(n))),
            any::<i128>().prop_map(IndexKey::Time),
        ]
    }

    proptest! {
        #[test]
        fn encodings_order_as_the_keys_do(a in key_strategy(), b in key_strategy()) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode(&a, &mut ea);
            encode(&b, &mut eb);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
            prop_assert_eq!(decode(&ea), a);
        }

        /// An index of a base plus changes walks exactly the entries a plain ordered set of
        /// the current records' keys holds, both ways and from any bound.
        #[test]
        fn base_and_changes_walk_as_one_set(
            snapshot in prop::collection::vec(prop::collection::vec(0u8..6, 0..3), 0..40),
            changes in prop::collection::vec((0usize..50, prop::collection::vec(0u8..6, 0..3)), 0..20),
            from in (0u8..7, 0u128..60),
            descending in any::<bool>(),
        ) {
            let key = |k: u8| IndexKey::from(format!("k{k}"));
            let id = |i: usize| Uuid::from_u128(i as u128 * 2 + 1);
            let mut b = BaseBuilder::new(0);
            for i in 0..snapshot.len() {
                let loc = Loc { offset: i as u64, len: 1, generation: 0, archived: false };
                b.push(id(i), loc, 0);
            }
            let (dir_base, _) = b.build();
            let mut ib = IndexBuilder::new();
            let mut model = std::collections::BTreeSet::new();
            for (i, keys) in snapshot.iter().enumerate() {
                for &k in keys {
                    ib.push(i as u32, &key(k));
                    model.insert((key(k), id(i)));
                }
            }
            let (ibase, overflow) = ib.build(&dir_base);
            prop_assert!(overflow.is_empty());
            let mut records: Directory<()> = Directory::new(dir_base, imbl::OrdMap::new());
            let mut index = Index::new(ibase, OrdSet::new());
            let mut current: Vec<Option<Vec<u8>>> = snapshot.iter().cloned().map(Some).collect();
            for (i, keys) in changes {
                let loc = Loc { offset: 0, len: 1, generation: 1, archived: false };
                let old = records.insert(id(i), Slot::Disk(loc));
                if let Some(Some(old_keys)) = current.get(i) {
                    for &k in old_keys {
                        if matches!(old, Some((_, false))) {
                            index.remove(key(k), id(i));
                        }
                        model.remove(&(key(k), id(i)));
                    }
                }
                for &k in &keys {
                    index.insert(key(k), id(i));
                    model.insert((key(k), id(i)));
                }
                if current.len() <= i {
                    current.resize(i + 1, None);
                }
                current[i] = Some(keys);
            }
            let after = (key(from.0), Uuid::from_u128(from.1));
            let bounds = if descending {
                (Bound::Unbounded, Bound::Excluded(after.clone()))
            } else {
                (Bound::Excluded(after.clone()), Bound::Unbounded)
            };
            let got: Vec<Position> = index.range(&records, bounds.clone(), descending).collect();
            let mut want: Vec<Position> = model.range(bounds).cloned().collect();
            if descending {
                want.reverse();
            }
            prop_assert_eq!(got, want);
        }
    }

    /// A directory base of `n` records with ids 0, 1, ...
    fn dir_of(n: u128) -> Base {
        let mut b = BaseBuilder::new(0);
        for i in 0..n {
            let loc = Loc {
                offset: i as u64,
                len: 1,
                generation: 0,
                archived: false,
            };
            b.push(Uuid::from_u128(i), loc, 0);
        }
        b.build().0
    }

    #[test]
    fn equal_keys_are_stored_once() {
        let dir = dir_of(100);
        let mut ib = IndexBuilder::new();
        for i in (0..100u32).rev() {
            ib.push(i, &IndexKey::Str("the same name".into()));
            ib.push(i, &IndexKey::Str("the same name".into()));
        }
        let (base, _) = ib.build(&dir);
        assert_eq!(base.len(), 100);
        // One length byte, the tag, the 13 bytes.
        assert_eq!(base.arena.len(), 15);
    }

    #[test]
    fn distinct_keys_keep_their_arena_and_walk_in_order() {
        let dir = dir_of(50);
        let mut ib = IndexBuilder::new();
        for i in 0..50u32 {
            ib.push(i, &IndexKey::from(format!("name {:02}", 49 - i)));
        }
        let before = ib.arena.len();
        let (base, _) = ib.build(&dir);
        assert_eq!(base.arena.len(), before);
        let records: Directory<()> = Directory::new(dir, imbl::OrdMap::new());
        let index = Index::new(base, OrdSet::new());
        let walked: Vec<Position> = index
            .range(&records, (Bound::Unbounded, Bound::Unbounded), false)
            .collect();
        let want: Vec<Position> = (0..50u128)
            .rev()
            .map(|i| {
                (
                    IndexKey::from(format!("name {:02}", 49 - i)),
                    Uuid::from_u128(i),
                )
            })
            .collect();
        assert_eq!(walked, want);
    }
}
