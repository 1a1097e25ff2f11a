//! Atomic batches (`Store::batch`): all or nothing, one journal line, per-op events, whole
//! batches for readers and the feed, group commit, compaction.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use store_actor::fs::SimFs;
use store_actor::{
    Durability, EventKind, IndexKey, Op, Record, Store, StoreError, StoreOptions, read_all, verify,
};
use uuid::Uuid;

use crate::helpers::{
    Item, check_groups, create_groups, item, open_sim, options, sim_options, step,
};

fn journal(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("items.journal")).unwrap()
}

fn plus(n: i64) -> impl FnOnce(&Item) -> Result<Item, StoreError> + Send + 'static {
    move |i: &Item| {
        Ok(Item {
            price: i.price + n,
            ..i.clone()
        })
    }
}

/// Takes `n` from the price ("stock"), refusing to go below zero.
fn take(n: i64) -> impl FnOnce(&Item) -> Result<Item, String> + Send + 'static {
    move |i: &Item| {
        if i.price < n {
            return Err(format!("only {} left", i.price));
        }
        Ok(Item {
            price: i.price - n,
            ..i.clone()
        })
    }
}

fn everything(store: &Store<Item>) -> Vec<Arc<Record<Item>>> {
    store.all().collect()
}

/// Every op kind in one batch: results in op order, each op on the state the earlier ones left
/// (a record touched twice, a record created then replaced), versions and timestamps, indexes,
/// counts, one event per op with consecutive sequence numbers, one journal line; and the same
/// after reopening and after compaction.
#[tokio::test]
async fn a_batch_applies_every_op_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 10)).await.unwrap();
    let b = store.create(item("b", 20)).await.unwrap();
    store.create(item("c", 30)).await.unwrap();
    let new_id = Uuid::new_v4();

    let done = store
        .batch(vec![
            Op::create(item("n", 1)),
            Op::create_with_id(new_id, item("m", 2)),
            Op::update(a.id, Some(1), plus(5)),
            Op::archive(b.id, None),
            Op::replace(new_id, Some(1), item("m2", 3)),
            Op::update(a.id, Some(2), plus(5)),
        ])
        .await
        .unwrap();

    let summary: Vec<(u64, bool, &str, i64)> = done
        .iter()
        .map(|r| (r.version, r.archived, r.data.name.as_str(), r.data.price))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, false, "n", 1),
            (1, false, "m", 2),
            (2, false, "a", 15),
            (2, true, "b", 20),
            (2, false, "m2", 3),
            (3, false, "a", 20),
        ]
    );
    assert_eq!(done[1].id, new_id);
    assert_eq!((done[2].id, done[5].id, done[3].id), (a.id, a.id, b.id));
    // One time for the whole batch; created_at kept, updated_at moved on.
    let now = done[0].created_at;
    assert!(done.iter().all(|r| r.updated_at == now), "{done:?}");
    assert_eq!(done[0].created_at, done[0].updated_at);
    assert_eq!(done[4].created_at, now);
    assert_eq!(done[5].created_at, a.created_at);
    assert!(done[5].updated_at >= a.updated_at);

    // The state after the batch.
    assert_eq!(store.get(a.id).unwrap(), done[5]);
    assert_eq!(store.get(new_id).unwrap(), done[4]);
    assert_eq!(store.get(done[0].id).unwrap(), done[0]);
    assert_eq!(store.count(), 4, "a, c, n, m2 live; b archived");
    assert_eq!(store.last_seq(), 9);
    let ids = |v: Vec<Arc<Record<Item>>>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.lookup("name", &"m2".into()).unwrap()),
        vec![new_id]
    );
    assert!(store.lookup("name", &"m".into()).unwrap().is_empty());
    assert!(
        store
            .lookup("price", &IndexKey::Int(15))
            .unwrap()
            .is_empty(),
        "an intermediate value of the batch is not indexed"
    );
    let mut at_20 = ids(store.lookup("price", &IndexKey::Int(20)).unwrap());
    at_20.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(at_20, want);

    // One event per op, consecutive, in op order, each with the record as that op left it.
    let feed = store.events_after(3, 100).unwrap();
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8, 9]
    );
    use EventKind::*;
    assert_eq!(
        feed.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![Created, Created, Updated, Archived, Updated, Updated]
    );
    for (e, r) in feed.iter().zip(&done) {
        assert_eq!(e.record, *r);
    }

    // On disk: three single lines and one batch line; the lock-free readers read it.
    let text = journal(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[..3].iter().all(|l| l.contains("\"event\":")));
    assert!(lines[3].starts_with("{\"seq\":4,") && lines[3].contains("\"batch\":["));
    let report = verify(&options(dir.path())).unwrap();
    assert_eq!(
        (
            report.records,
            report.live,
            report.last_seq,
            report.journal_lines
        ),
        (5, 4, 9, 4)
    );
    assert_eq!(read_all(&options(dir.path())).unwrap(), everything(&store));

    // Reopened, from the journal: the same records and the same feed.
    let before = everything(&store);
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(everything(&store), before);
    assert_eq!(store.events_after(3, 100).unwrap(), feed);
    assert_eq!(store.last_seq(), 9);
    // Compacted (the snapshot holds records, not batches), then reopened.
    assert_eq!(store.compact().await.unwrap().seq, 9);
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(everything(&store), before);
    assert_eq!(store.last_seq(), 9);
    let next = store.create(item("after", 0)).await.unwrap();
    assert_eq!(store.events_after(9, 10).unwrap()[0].record, next);
    store.close().await.unwrap();
}

/// A batch with one failing op applies nothing, writes nothing and uses no sequence number,
/// whatever the failure; the error names the op and carries its own error.
#[tokio::test]
async fn a_failing_op_applies_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 10)).await.unwrap().id;
    let b = store.create(item("b", 20)).await.unwrap().id;
    let c = store.create(item("c", 30)).await.unwrap().id;
    let gone = store.create(item("gone", 40)).await.unwrap().id;
    store.archive(gone, None).await.unwrap();
    let fresh = Uuid::new_v4();
    let unknown = Uuid::new_v4();

    type Check = fn(&StoreError) -> bool;
    let cases: Vec<(&str, Vec<Op<Item>>, usize, Check)> = vec![
        (
            "a refusing closure in the 3rd of 4 ops",
            vec![
                Op::update(a, None, plus(1)),
                Op::update(b, None, plus(1)),
                Op::update(c, None, |_: &Item| Err::<Item, _>("no, thanks")),
                Op::update(a, None, plus(1)),
            ],
            2,
            |e| matches!(e, StoreError::Rejected(r) if r.to_string() == "no, thanks"),
        ),
        (
            "not found",
            vec![Op::update(a, None, plus(1)), Op::archive(unknown, None)],
            1,
            |e| matches!(e, StoreError::NotFound { .. }),
        ),
        (
            "archived before the batch",
            vec![
                Op::create(item("x", 1)),
                Op::replace(gone, None, item("y", 0)),
            ],
            1,
            |e| matches!(e, StoreError::Archived { .. }),
        ),
        (
            "archived by an earlier op",
            vec![Op::archive(c, None), Op::update(c, None, plus(1))],
            1,
            |e| matches!(e, StoreError::Archived { .. }),
        ),
        (
            "a version conflict with the version an earlier op made",
            vec![
                Op::update(a, Some(1), plus(1)),
                Op::update(a, Some(1), plus(1)),
            ],
            1,
            |e| {
                matches!(
                    e,
                    StoreError::Conflict {
                        expected: 1,
                        actual: 2,
                        ..
                    }
                )
            },
        ),
        (
            "an id taken before the batch",
            vec![Op::create_with_id(a, item("dup", 0))],
            0,
            |e| matches!(e, StoreError::AlreadyExists { .. }),
        ),
        (
            "an id taken by an earlier op",
            vec![
                Op::create_with_id(fresh, item("x", 0)),
                Op::update(fresh, None, plus(1)),
                Op::create_with_id(fresh, item("x", 0)),
            ],
            2,
            |e| matches!(e, StoreError::AlreadyExists { .. }),
        ),
        (
            "not enough left after an earlier op took some",
            vec![Op::update(a, None, take(6)), Op::update(a, None, take(6))],
            1,
            |e| matches!(e, StoreError::Rejected(r) if r.to_string() == "only 4 left"),
        ),
        (
            "a panicking closure",
            vec![
                Op::update(a, None, plus(1)),
                Op::update(b, None, |_: &Item| -> Result<Item, String> {
                    panic!("boom")
                }),
            ],
            1,
            |e| matches!(e, StoreError::Rejected(r) if r.to_string().contains("panicked")),
        ),
    ];
    let path = dir.path().join("items.journal");
    for (name, ops, index, check) in cases {
        let records = everything(&store);
        let seq = store.last_seq();
        let bytes = std::fs::read(&path).unwrap();
        let journal_bytes = store.status().journal_bytes;
        let err = store.batch(ops).await.unwrap_err();
        match &err {
            StoreError::BatchFailed { index: i, source } => {
                assert_eq!(*i, index, "{name}: {err}");
                assert!(check(source), "{name}: {err}");
                assert!(
                    err.to_string()
                        .starts_with(&format!("batch operation {index} failed: "))
                );
            }
            other => panic!("{name}: expected BatchFailed, got {other:?}"),
        }
        assert_eq!(everything(&store), records, "{name}: nothing applied");
        assert_eq!(store.last_seq(), seq, "{name}");
        assert!(store.events_after(seq, 10).unwrap().is_empty(), "{name}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: nothing written"
        );
        assert_eq!(store.status().journal_bytes, journal_bytes, "{name}");
    }
    // No sequence number was used up, and the store goes on.
    let next = store.replace(a, Some(1), item("a", 11)).await.unwrap();
    assert_eq!(store.last_seq(), 6);
    assert_eq!(store.events_after(5, 10).unwrap()[0].record, next);
    let before = everything(&store);
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(everything(&store), before);
    assert!(store.get(fresh).is_err());
}

/// A value that cannot be serialized (on demand): the journal line cannot be encoded. It is
/// stored as `false`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "bool")]
struct Fragile {
    fail: bool,
}

impl From<bool> for Fragile {
    fn from(fail: bool) -> Self {
        Fragile { fail }
    }
}

impl serde::Serialize for Fragile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.fail {
            return Err(serde::ser::Error::custom("cannot serialize this one"));
        }
        s.serialize_bool(false)
    }
}

/// An op whose record cannot be encoded fails the batch (naming it) and leaves the journal as
/// it was.
#[tokio::test]
async fn an_op_that_cannot_be_encoded_fails_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::<Fragile>::new(dir.path(), "f"))
        .await
        .unwrap();
    let ok = store.create(Fragile { fail: false }).await.unwrap();
    let journal = std::fs::read(dir.path().join("f.journal")).unwrap();
    let err = store
        .batch(vec![
            Op::replace(ok.id, None, Fragile { fail: false }),
            Op::create(Fragile { fail: false }),
            Op::create(Fragile { fail: true }),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::BatchFailed { index: 2, source } if matches!(**source, StoreError::Rejected(_))),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("cannot serialize this one"),
        "{err}"
    );
    assert_eq!(store.last_seq(), 1);
    assert_eq!(store.all().count(), 1);
    assert_eq!(store.get(ok.id).unwrap().version, 1);
    assert_eq!(
        std::fs::read(dir.path().join("f.journal")).unwrap(),
        journal
    );
    // The actor's pending bytes were cut back: the next write is a clean line.
    store.create(Fragile { fail: false }).await.unwrap();
    store.close().await.unwrap();
    let store = Store::open(StoreOptions::<Fragile>::new(dir.path(), "f"))
        .await
        .unwrap();
    assert_eq!((store.all().count(), store.last_seq()), (2, 2));
    store.close().await.unwrap();
}

/// An empty batch writes nothing; a batch of one is an ordinary journal line; store errors are
/// not wrapped in `BatchFailed`.
#[tokio::test]
async fn empty_batches_batches_of_one_and_closed_stores() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 1)).await.unwrap();
    let before = journal(dir.path());
    assert!(store.batch(Vec::new()).await.unwrap().is_empty());
    assert_eq!(store.last_seq(), 1);
    assert_eq!(journal(dir.path()), before);

    let one = store
        .batch(vec![Op::update(a.id, Some(1), plus(1))])
        .await
        .unwrap();
    assert_eq!((one.len(), one[0].version, one[0].data.price), (1, 2, 2));
    let text = journal(dir.path());
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("{\"seq\":2,") && last.contains("\"event\":{\"kind\":\"updated\""));
    assert!(!text.contains("\"batch\""), "{text}");

    store.close().await.unwrap();
    let err = store
        .batch(vec![Op::create(item("late", 0))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
}

/// Once writes stopped after an I/O failure, a batch gets the store's `ReadOnly` as it is.
#[tokio::test]
async fn a_poisoned_store_refuses_batches_as_read_only() {
    let disk = SimFs::new();
    let store = open_sim(&disk).await;
    let a = store.create(item("a", 1)).await.unwrap();
    disk.fail_after(0);
    let err = store
        .batch(vec![
            Op::update(a.id, None, plus(1)),
            Op::create(item("b", 2)),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(store.get(a.id).unwrap().version, 1, "not published");
    let again = store
        .batch(vec![Op::create(item("c", 3)), Op::create(item("d", 4))])
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::ReadOnly { .. }), "{again:?}");
    disk.heal();
    let reopened = open_sim(&disk.crash()).await;
    assert_eq!(reopened.count(), 1);
}

/// Readers never see part of a batch: while batches move groups of records together, every
/// `get_many`, `all` and lock-free `read_all` finds each group whole, and every
/// `wait_events_after` returns whole batches (it ends on a batch's last event).
#[test]
fn readers_and_the_feed_see_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(Store::open(
            options(dir.path()).durability(Durability::Never),
        ))
        .unwrap();
    let groups = rt.block_on(create_groups(&store, 2, 3));
    let base = store.last_seq();
    const BATCHES: i64 = 150;
    let writers: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(g, keys)| {
            let (store, keys) = (store.clone(), keys.clone());
            rt.spawn(async move {
                for n in 1..=BATCHES {
                    store.batch(step(&keys, g, n)).await.unwrap();
                }
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, groups, stop) = (store.clone(), groups.clone(), stop.clone());
        let dir = dir.path().to_owned();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for keys in &groups {
                    let prices: Vec<i64> = store
                        .get_many(keys)
                        .unwrap()
                        .iter()
                        .map(|r| r.as_ref().unwrap().data.price)
                        .collect();
                    assert!(prices.iter().all(|p| *p == prices[0]), "{prices:?}");
                }
                let all: Vec<_> = store.all().collect();
                check_groups(all.iter().map(|r| &**r), &groups).unwrap();
                if rounds.is_multiple_of(8) {
                    let read = read_all(&options(&dir)).unwrap();
                    check_groups(read.iter().map(|r| &**r), &groups).unwrap();
                }
                rounds += 1;
            }
            rounds
        })
    };
    // The feed: each batch is 4 events (3 updates, 1 create), the batches start after `base`.
    let per_batch = groups[0].len() as u64 + 1;
    let total = base + per_batch * BATCHES as u64 * groups.len() as u64;
    let mut after = base;
    let mut wakeups = 0;
    rt.block_on(async {
        while after < total {
            let events = store.wait_events_after(after, 10_000).await.unwrap();
            assert!(!events.is_empty());
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.seq, after + 1 + i as u64);
            }
            after = events.last().unwrap().seq;
            assert_eq!(
                (after - base) % per_batch,
                0,
                "woke with part of a batch: up to {after}"
            );
            // The batch's events, in op order: the keys' updates, then the create.
            let last = &events[events.len() - per_batch as usize..];
            assert!(last[..3].iter().all(|e| e.kind == EventKind::Updated));
            assert_eq!(last[3].kind, EventKind::Created);
            wakeups += 1;
        }
    });
    for w in writers {
        rt.block_on(w).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = reader.join().unwrap();
    assert!(rounds > 0 && wakeups > 0);
    let all: Vec<_> = store.all().collect();
    assert_eq!(
        check_groups(all.iter().map(|r| &**r), &groups).unwrap(),
        vec![BATCHES; groups.len()]
    );
    rt.block_on(store.close()).unwrap();
}

/// Batches and single writes that arrive while an fsync is under way wait for durability
/// (nothing is acknowledged or visible before its fsync) and then share the next fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_wait_for_fsync_and_share_it_with_single_writes() {
    let disk = SimFs::new();
    let store = open_sim(&disk).await;
    let first = store.create(item("first", 1)).await.unwrap();
    let ops_before = disk.ops_done();
    let fsyncs_before = store.status().fsyncs;
    disk.hold_syncs();
    let mut pending = Vec::new();
    for i in 0..4 {
        let s = store.clone();
        pending.push(tokio::spawn(async move {
            s.batch(vec![Op::create(item("b", i)), Op::create(item("b", i))])
                .await
                .map(|r| r.len())
        }));
        let s = store.clone();
        pending.push(tokio::spawn(async move {
            s.create(item("s", i)).await.map(|_| 1)
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The journal length is published after the fsync: watch the disk for the append.
    while disk.ops_done() == ops_before {
        assert!(std::time::Instant::now() < deadline, "nothing was flushed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..50 {
        assert_eq!(store.count(), 1, "nothing is visible before its fsync");
        tokio::task::yield_now().await;
    }
    assert!(
        pending.iter().all(|t| !t.is_finished()),
        "nothing acknowledged"
    );
    disk.release_syncs();
    let mut written = 0;
    for t in pending {
        written += t.await.unwrap().unwrap();
    }
    assert_eq!(written, 12);
    assert_eq!(store.count(), 13);
    let fsyncs = store.status().fsyncs - fsyncs_before;
    assert!(fsyncs <= 4, "8 writes shared {fsyncs} fsyncs");
    // Acknowledged means durable.
    let reopened = open_sim(&disk.crash()).await;
    assert_eq!(reopened.count(), 13);
    assert_eq!(reopened.get(first.id).unwrap().data, item("first", 1));
}

/// Compactions running while batches are written (automatic and requested ones) never split or
/// lose a batch: lock-free readers, the reopened store and the feed find every batch whole.
#[test]
fn compaction_never_splits_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = || options(&path).compaction(2_000, 0.2);
    let store = rt.block_on(Store::open(opts())).unwrap();
    let groups = rt.block_on(create_groups(&store, 3, 3));
    const BATCHES: i64 = 60;
    let mut tasks: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(g, keys)| {
            let (store, keys) = (store.clone(), keys.clone());
            rt.spawn(async move {
                for n in 1..=BATCHES {
                    store.batch(step(&keys, g, n)).await.unwrap();
                }
            })
        })
        .collect();
    let compactor = {
        let store = store.clone();
        rt.spawn(async move {
            for _ in 0..20 {
                store.compact().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tasks.push(compactor);
    let mut reads = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        let read = read_all(&options(&path)).unwrap();
        check_groups(read.iter().map(|r| &**r), &groups).unwrap();
        reads += 1;
    }
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    assert!(reads > 0);
    assert!(store.status().compactions >= 20, "{:?}", store.status());
    let seq = store.last_seq();
    rt.block_on(store.close()).unwrap();
    let store = rt.block_on(Store::open(opts())).unwrap();
    let all: Vec<_> = store.all().collect();
    assert_eq!(
        check_groups(all.iter().map(|r| &**r), &groups).unwrap(),
        vec![BATCHES; groups.len()]
    );
    assert_eq!(store.last_seq(), seq);
    rt.block_on(store.close()).unwrap();
}

/// On the simulated disk as on the real one, a batch survives a clean close and a power loss.
#[tokio::test]
async fn acknowledged_batches_survive_power_loss() {
    let disk = SimFs::new();
    let store = Store::open(sim_options(&disk).compaction(1_500, 1.0))
        .await
        .unwrap();
    let groups = create_groups(&store, 2, 3).await;
    for n in 1..=20 {
        for (g, keys) in groups.iter().enumerate() {
            store.batch(step(keys, g, n)).await.unwrap();
        }
    }
    // Compaction runs beside the writes: give it a bounded time to finish on a busy machine.
    for _ in 0..500 {
        if store.status().compactions > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(store.status().compactions > 0, "no compaction in 5 s");
    let after = disk.crash();
    drop(store);
    let reopened = open_sim(&after).await;
    let all: Vec<_> = reopened.all().collect();
    assert_eq!(
        check_groups(all.iter().map(|r| &**r), &groups).unwrap(),
        vec![20, 20]
    );
}
