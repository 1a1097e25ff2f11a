//! Property test: random operations and atomic batches of them (failing ones included), with
//! closes, reopens and power losses in between, always agree with a plain in-memory model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use store_actor::fs::SimFs;
use store_actor::{EventKind, Query, SortKey, Store, StoreError};
use uuid::Uuid;

use crate::helpers::{Item, item, sim_options, walk_ids};

#[derive(Debug, Clone)]
enum Op {
    Create(i64),
    Update(usize, i64),
    UpdateExpecting {
        pick: usize,
        price: i64,
        stale: bool,
    },
    Archive(usize),
    /// An atomic batch: all of its ops apply, or (if one fails) none.
    Batch(Vec<BatchOp>),
    Compact,
    Reopen,
    PowerLoss,
}

/// One op of a batch. Picks choose among the records known at that point of the batch,
/// including those created by earlier ops of it with a chosen id.
#[derive(Debug, Clone)]
enum BatchOp {
    /// With a fresh id chosen by the store (not pickable within the batch).
    Create(i64),
    /// With a new id chosen by the test, or (`taken`) the id of an existing record.
    CreateWithId {
        price: i64,
        taken: Option<usize>,
    },
    Update(usize, i64),
    UpdateExpecting {
        pick: usize,
        price: i64,
        stale: bool,
    },
    /// Takes `amount` from the price, refused if the price is lower (a stock check).
    Take(usize, i64),
    Archive(usize),
    /// An update of an id that does not exist.
    Missing,
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        2 => (0i64..1000).prop_map(BatchOp::Create),
        2 => (0i64..1000, proptest::option::weighted(0.2, any::<usize>()))
            .prop_map(|(price, taken)| BatchOp::CreateWithId { price, taken }),
        3 => (any::<usize>(), 0i64..1000).prop_map(|(i, p)| BatchOp::Update(i, p)),
        1 => (any::<usize>(), 0i64..1000, proptest::bool::weighted(0.2))
            .prop_map(|(pick, price, stale)| BatchOp::UpdateExpecting { pick, price, stale }),
        3 => (any::<usize>(), 0i64..400).prop_map(|(i, n)| BatchOp::Take(i, n)),
        1 => any::<usize>().prop_map(BatchOp::Archive),
        1 => Just(BatchOp::Missing),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..1000).prop_map(Op::Create),
        4 => (any::<usize>(), 0i64..1000).prop_map(|(i, p)| Op::Update(i, p)),
        2 => (any::<usize>(), 0i64..1000, any::<bool>())
            .prop_map(|(pick, price, stale)| Op::UpdateExpecting { pick, price, stale }),
        2 => any::<usize>().prop_map(Op::Archive),
        4 => proptest::collection::vec(batch_op(), 1..7).prop_map(Op::Batch),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerLoss),
    ]
}

/// The model: id → (version, archived, price), plus creation order and the last sequence
/// number (one per applied mutation).
#[derive(Default, Clone)]
struct Model {
    order: Vec<Uuid>,
    records: BTreeMap<Uuid, (u64, bool, i64)>,
    seq: u64,
}

impl Model {
    fn pick(&self, i: usize) -> Option<Uuid> {
        (!self.order.is_empty()).then(|| self.order[i % self.order.len()])
    }
    /// What a write to `id` must do: Ok(current version) or the expected error.
    fn check(&self, id: Uuid, expected: Option<u64>) -> Result<u64, &'static str> {
        let (v, archived, _) = self.records[&id];
        if archived {
            return Err("archived");
        }
        match expected {
            Some(e) if e != v => Err("conflict"),
            _ => Ok(v),
        }
    }
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Archived { .. } => "archived",
        StoreError::Conflict { .. } => "conflict",
        StoreError::NotFound { .. } => "not found",
        StoreError::AlreadyExists { .. } => "exists",
        StoreError::Rejected(_) => "rejected",
        _ => "other",
    }
}

/// A record as the model sees it: (version, archived, price).
type Effect = (u64, bool, i64);

/// What a batch must do: each op's record and, for creates with a store-chosen id, their
/// positions; or the first failing op and its error kind.
type Expected = Result<(Vec<Effect>, Vec<usize>), (usize, &'static str)>;

/// Builds the store's ops of a batch while running it on `tentative` (a copy of the model):
/// on success `tentative` is the model after the batch, except for the records created with a
/// store-chosen id, which the caller adds from the results.
fn plan(
    ops: &[BatchOp],
    tentative: &mut Model,
    next_id: &mut u128,
) -> (Vec<store_actor::Op<Item>>, Expected) {
    use store_actor::Op as S;
    let mut out = Vec::new();
    let mut effects = Vec::new();
    let mut fresh = Vec::new();
    let mut failed = None;
    for (index, op) in ops.iter().enumerate() {
        let mut new_id = || {
            *next_id += 1;
            Uuid::from_u128(*next_id)
        };
        let pick = match *op {
            BatchOp::Update(p, _)
            | BatchOp::UpdateExpecting { pick: p, .. }
            | BatchOp::Take(p, _)
            | BatchOp::Archive(p) => Some(p),
            _ => None,
        };
        // The record an update, take or archive is for: an unknown one if there is none yet.
        let target = pick.map(|p| tentative.pick(p).unwrap_or_else(&mut new_id));
        let check = |id: Uuid, expected: Option<u64>| match tentative.records.get(&id) {
            None => Err("not found"),
            Some(_) => tentative.check(id, expected),
        };
        // Each op is built even after a failure (the store must refuse at the first one), but
        // only simulated before it. `id`: the record it changes in `tentative`.
        let (id, outcome): (Option<Uuid>, Result<Effect, &'static str>) = match *op {
            BatchOp::Create(price) => {
                out.push(S::create(item("p", price)));
                fresh.push(index);
                (None, Ok((1, false, price)))
            }
            BatchOp::CreateWithId { price, taken } => {
                let id = taken
                    .and_then(|t| tentative.pick(t))
                    .unwrap_or_else(&mut new_id);
                out.push(S::create_with_id(id, item("p", price)));
                match tentative.records.contains_key(&id) {
                    true => (None, Err("exists")),
                    false => (Some(id), Ok((1, false, price))),
                }
            }
            BatchOp::Missing => {
                out.push(S::replace(new_id(), None, item("p", 0)));
                (None, Err("not found"))
            }
            BatchOp::Update(_, price) => {
                let id = target.unwrap();
                out.push(S::replace(id, None, item("p", price)));
                (Some(id), check(id, None).map(|v| (v + 1, false, price)))
            }
            BatchOp::UpdateExpecting { price, stale, .. } => {
                let id = target.unwrap();
                let current = tentative.records.get(&id).map_or(1, |r| r.0);
                let expect = current + u64::from(stale);
                out.push(S::replace(id, Some(expect), item("p", price)));
                (
                    Some(id),
                    check(id, Some(expect)).map(|v| (v + 1, false, price)),
                )
            }
            BatchOp::Take(_, amount) => {
                let id = target.unwrap();
                out.push(S::update(id, None, move |i: &Item| {
                    if i.price < amount {
                        return Err("not enough");
                    }
                    Ok(item("p", i.price - amount))
                }));
                let outcome = check(id, None).and_then(|v| {
                    let left = tentative.records[&id].2;
                    match left < amount {
                        true => Err("rejected"),
                        false => Ok((v + 1, false, left - amount)),
                    }
                });
                (Some(id), outcome)
            }
            BatchOp::Archive(_) => {
                let id = target.unwrap();
                out.push(S::archive(id, None));
                let outcome = check(id, None).map(|v| (v + 1, true, tentative.records[&id].2));
                (Some(id), outcome)
            }
        };
        if failed.is_some() {
            continue;
        }
        match outcome {
            Ok(effect) => {
                if let Some(id) = id {
                    if effect.0 == 1 {
                        tentative.order.push(id);
                    }
                    tentative.records.insert(id, effect);
                }
                tentative.seq += 1;
                effects.push(effect);
            }
            Err(kind) => failed = Some((index, kind)),
        }
    }
    let expected = match failed {
        Some(f) => Err(f),
        None => Ok((effects, fresh)),
    };
    (out, expected)
}

async fn open(disk: &SimFs) -> Store<Item> {
    Store::open(sim_options(disk).compaction(700, 0.5))
        .await
        .expect("open")
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut disk = SimFs::new();
    let mut store = open(&disk).await;
    let mut model = Model::default();
    let mut next_id = 0u128;
    for op in ops {
        let seq_before = model.seq;
        match op {
            Op::Create(price) => {
                let rec = store.create(item("p", price)).await.unwrap();
                model.order.push(rec.id);
                model.records.insert(rec.id, (1, false, price));
                model.seq += 1;
            }
            Op::Update(i, price)
            | Op::UpdateExpecting {
                pick: i,
                price,
                stale: false,
            } => {
                let Some(id) = model.pick(i) else { continue };
                let expect = matches!(op, Op::UpdateExpecting { .. }).then(|| model.records[&id].0);
                let got = store.replace(id, expect, item("p", price)).await;
                match (model.check(id, expect), got) {
                    (Ok(v), Ok(rec)) => {
                        prop_assert_eq!(rec.version, v + 1);
                        model.records.insert(id, (v + 1, false, price));
                        model.seq += 1;
                    }
                    (Err(want), Err(e)) => prop_assert_eq!(want, kind(&e)),
                    (want, got) => prop_assert!(false, "model {want:?}, store {got:?}"),
                }
            }
            Op::UpdateExpecting {
                pick,
                price,
                stale: true,
            } => {
                let Some(id) = model.pick(pick) else { continue };
                let stale = model.records[&id].0 + 1;
                let err = store
                    .replace(id, Some(stale), item("p", price))
                    .await
                    .unwrap_err();
                let want = model.check(id, Some(stale)).unwrap_err();
                prop_assert_eq!(want, kind(&err));
            }
            Op::Archive(i) => {
                let Some(id) = model.pick(i) else { continue };
                match (model.check(id, None), store.archive(id, None).await) {
                    (Ok(v), Ok(rec)) => {
                        prop_assert!(rec.archived);
                        let price = model.records[&id].2;
                        model.records.insert(id, (v + 1, true, price));
                        model.seq += 1;
                    }
                    (Err(want), Err(e)) => prop_assert_eq!(want, kind(&e)),
                    (want, got) => prop_assert!(false, "model {want:?}, store {got:?}"),
                }
            }
            Op::Batch(ops) => {
                let mut tentative = model.clone();
                let (batch, expected) = plan(&ops, &mut tentative, &mut next_id);
                match (expected, store.batch(batch).await) {
                    (Ok((effects, fresh)), Ok(records)) => {
                        let got: Vec<Effect> = records
                            .iter()
                            .map(|r| (r.version, r.archived, r.data.price))
                            .collect();
                        prop_assert_eq!(&got, &effects);
                        for i in fresh {
                            tentative.order.push(records[i].id);
                            tentative.records.insert(records[i].id, effects[i]);
                        }
                        model = tentative;
                        // One event per op, consecutive, each with the record its op left.
                        let feed = store.events_after(seq_before, 1000).unwrap();
                        prop_assert_eq!(feed.len(), records.len());
                        for (i, (e, r)) in feed.iter().zip(&records).enumerate() {
                            prop_assert_eq!(e.seq, seq_before + 1 + i as u64);
                            prop_assert_eq!(&e.record, r);
                            let want = match (r.version, r.archived) {
                                (1, _) => EventKind::Created,
                                (_, true) => EventKind::Archived,
                                _ => EventKind::Updated,
                            };
                            prop_assert_eq!(e.kind, want);
                        }
                    }
                    (Err((index, want)), Err(StoreError::BatchFailed { index: i, source })) => {
                        prop_assert_eq!((index, want), (i, kind(&source)));
                    }
                    (want, got) => prop_assert!(false, "model {want:?}, store {got:?}"),
                }
            }
            Op::Compact => {
                store.compact().await.unwrap();
            }
            Op::Reopen => {
                store.close().await.unwrap();
                store = open(&disk).await;
            }
            Op::PowerLoss => {
                disk = disk.crash();
                store = open(&disk).await;
            }
        }
        // The store agrees with the model after every step.
        prop_assert_eq!(store.last_seq(), model.seq);
        let actual: BTreeMap<Uuid, (u64, bool, i64)> = store
            .all()
            .map(|r| (r.id, (r.version, r.archived, r.data.price)))
            .collect();
        prop_assert_eq!(&actual, &model.records);
        let live = model.records.values().filter(|r| !r.1).count() as u64;
        prop_assert_eq!(store.count(), live);
        let page = store
            .list(
                &Query::new()
                    .sort(SortKey::Index("price".into()), false)
                    .limit(1000),
            )
            .unwrap();
        let mut prices: Vec<i64> = model
            .records
            .values()
            .filter(|r| !r.1)
            .map(|r| r.2)
            .collect();
        prices.sort();
        let listed: Vec<i64> = page.items.iter().map(|r| r.data.price).collect();
        prop_assert_eq!(listed, prices);
        // Pages in creation order and in id order, both ways, agree with sorting everything.
        let mut by_created: Vec<(time::OffsetDateTime, Uuid)> =
            store.all().map(|r| (r.created_at, r.id)).collect();
        by_created.sort();
        let by_created: Vec<Uuid> = by_created.into_iter().map(|e| e.1).collect();
        let by_id: Vec<Uuid> = actual.keys().copied().collect();
        // Archived records included, as `walk_ids` asks.
        let mut by_price: Vec<(i64, Uuid)> =
            model.records.iter().map(|(id, r)| (r.2, *id)).collect();
        by_price.sort();
        let by_price: Vec<Uuid> = by_price.into_iter().map(|e| e.1).collect();
        let price = SortKey::Index("price".into());
        for (sort, want) in [
            (SortKey::CreatedAt, &by_created),
            (SortKey::Id, &by_id),
            (price, &by_price),
        ] {
            for descending in [false, true] {
                let walked = walk_ids(&store, &sort, descending, 3);
                let mut want = want.clone();
                if descending {
                    want.reverse();
                }
                prop_assert_eq!(walked, want, "{:?} descending {}", sort, descending);
            }
        }
    }
    store.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random operation sequences agree with the model across reopens and power losses.
    #[test]
    fn store_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
