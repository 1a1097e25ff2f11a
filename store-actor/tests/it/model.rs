//! Property test: random operations, with closes, reopens and power losses in between, always
//! agree with a plain in-memory model.

use std::collections::BTreeMap;

use proptest::prelude::*;
use store_actor::fs::SimFs;
use store_actor::{Query, SortKey, Store, StoreError};
use uuid::Uuid;

use crate::helpers::{Item, item, sim_options};

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
    Compact,
    Reopen,
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..1000).prop_map(Op::Create),
        4 => (any::<usize>(), 0i64..1000).prop_map(|(i, p)| Op::Update(i, p)),
        2 => (any::<usize>(), 0i64..1000, any::<bool>())
            .prop_map(|(pick, price, stale)| Op::UpdateExpecting { pick, price, stale }),
        2 => any::<usize>().prop_map(Op::Archive),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerLoss),
    ]
}

/// The model: id → (version, archived, price), plus creation order.
#[derive(Default)]
struct Model {
    order: Vec<Uuid>,
    records: BTreeMap<Uuid, (u64, bool, i64)>,
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
        _ => "other",
    }
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
    for op in ops {
        match op {
            Op::Create(price) => {
                let rec = store.create(item("p", price)).await.unwrap();
                model.order.push(rec.id);
                model.records.insert(rec.id, (1, false, price));
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
                    }
                    (Err(want), Err(e)) => prop_assert_eq!(want, kind(&e)),
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
