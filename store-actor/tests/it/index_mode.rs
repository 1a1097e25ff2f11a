//! Index mode: records stay in the files and are read back through a bounded cache; every
//! other promise is the same (every suite also runs in index mode with `STORE_ACTOR_MEMORY`).

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use store_actor::{Durability, Memory, Op, Query, Store, StoreError};
use uuid::Uuid;

use crate::helpers::{Item, item, options, walk_ids};

fn index(cache_bytes: u64) -> Memory {
    Memory::Index { cache_bytes }
}

#[tokio::test]
async fn records_are_read_from_the_files_and_survive_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(dir.path()).memory(index(16 << 10));
    let store = Store::open(opts()).await.unwrap();
    let mut model: HashMap<Uuid, (i64, bool)> = HashMap::new();
    for round in 0..5 {
        let ops = (0..200)
            .map(|i| Op::create(item(&format!("r{round}-{i}"), i)))
            .collect();
        for r in store.batch(ops).await.unwrap() {
            model.insert(r.id, (r.data.price, false));
        }
        let ids: Vec<Uuid> = model.keys().copied().take(150).collect();
        for (n, id) in ids.iter().enumerate() {
            if model[id].1 {
                continue;
            }
            if n % 10 == 0 {
                store.archive(*id, None).await.unwrap();
                model.get_mut(id).unwrap().1 = true;
            } else {
                let price = model[id].0 + 1000;
                store
                    .update(*id, None, move |it: &Item| {
                        Ok::<_, StoreError>(Item {
                            price,
                            ..it.clone()
                        })
                    })
                    .await
                    .unwrap();
                model.get_mut(id).unwrap().0 = price;
            }
        }
        if round % 2 == 1 {
            store.compact().await.unwrap();
        }
    }
    let check = |store: &Store<Item>| {
        for (id, (price, archived)) in &model {
            let r = store.get(*id).unwrap();
            assert_eq!((r.data.price, r.archived), (*price, *archived), "{id}");
        }
        let live: usize = model.values().filter(|v| !v.1).count();
        let mut listed = 0;
        let mut cursor = None;
        loop {
            let page = store.list(&Query::new().limit(97).cursor(cursor)).unwrap();
            listed += page.items.len();
            assert!(page.items.iter().all(|r| !r.archived));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(listed, live);
        let status = store.status();
        assert!(status.cached_bytes <= 16 << 10, "{status:?}");
        assert!(status.cached_bytes > 0, "{status:?}");
    };
    check(&store);
    store.close().await.unwrap();
    let store = Store::open(opts()).await.unwrap();
    check(&store);

    // The bytes come from the file: after a compaction (every record in the new snapshot, none
    // of it cached), damage a record in place and its read is refused naming the file.
    store.compact().await.unwrap();
    let victim = *model.keys().next().unwrap();
    let path = dir.path().join("items.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find(&victim.to_string()).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(b"XXXX").unwrap();
    drop(f);
    match store.get(victim) {
        Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, path),
        other => panic!("{other:?}"),
    }
    store.close().await.unwrap();
    // And opening checks the snapshot's checksum first.
    assert!(matches!(
        Store::open(opts()).await,
        Err(StoreError::Corrupt { .. })
    ));
}

/// Readers holding any published state keep reading the right records while compactions
/// replace the files under them: each state keeps its own files open.
#[test]
fn compaction_under_concurrent_reads() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(Store::open(
            options(dir.path())
                .memory(index(8 << 10))
                .durability(Durability::Never)
                .compaction(20_000, 0.1),
        ))
        .unwrap();
    // Each record's name says its version: "v<version>".
    let ids: Vec<Uuid> = rt.block_on(async {
        let ops = (0..300).map(|_| Op::create(item("v1", 0))).collect();
        store
            .batch(ops)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|k| {
            let (store, stop, ids) = (store.clone(), stop.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    let id = ids[i % ids.len()];
                    i += 7;
                    let r = store.get(id).unwrap();
                    assert_eq!(r.id, id);
                    assert_eq!(r.data.name, format!("v{}", r.version), "{id}");
                    if i % 50 == 0 {
                        let page = store.list(&Query::new().limit(40)).unwrap();
                        for r in page.items {
                            assert_eq!(r.data.name, format!("v{}", r.version));
                        }
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    rt.block_on(async {
        for round in 0..40u64 {
            for id in &ids {
                store
                    .update(*id, None, |it: &Item| {
                        let v: u64 = it.name[1..].parse().unwrap();
                        Ok::<_, StoreError>(item(&format!("v{}", v + 1), 0))
                    })
                    .await
                    .unwrap();
            }
            if round % 5 == 4 {
                store.compact().await.unwrap();
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 100, "{reads} reads");
    assert!(store.status().compactions >= 8);
    for id in &ids {
        let r = store.get(*id).unwrap();
        assert_eq!((r.version, r.data.name.as_str()), (41, "v41"));
    }
    rt.block_on(store.close()).unwrap();
}

/// A full disk in the middle of many concurrent writes and compactions: every write is answered
/// (done or refused), and the store closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_load_answers_every_write_and_closes() {
    for memory in [Memory::InMemory, index(4 << 10)] {
        for fail_at in [50, 400, 1500] {
            let fs = store_actor::fs::SimFs::new();
            let store = Store::open(
                crate::helpers::sim_options(&fs)
                    .memory(memory)
                    .compaction(2_000, 0.5),
            )
            .await
            .unwrap();
            fs.fail_after_with(fail_at, std::io::ErrorKind::StorageFull);
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..600 {
                let store = store.clone();
                tasks.spawn(async move { store.create(item("x", i)).await.map(|_| ()) });
            }
            let answered = tokio::time::timeout(std::time::Duration::from_secs(20), async {
                let mut n = 0;
                while let Some(r) = tasks.join_next().await {
                    let _ = r.unwrap();
                    n += 1;
                }
                n
            })
            .await
            .unwrap_or_else(|_| panic!("{memory}, fail at {fail_at}: writes never answered"));
            assert_eq!(answered, 600);
            tokio::time::timeout(std::time::Duration::from_secs(20), store.close())
                .await
                .unwrap_or_else(|_| panic!("{memory}, fail at {fail_at}: close hangs"))
                .unwrap();
        }
    }
}

#[tokio::test]
async fn creation_order_pages_over_a_compacted_base_whose_ids_are_not_in_creation_order() {
    use store_actor::SortKey;
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(dir.path()).memory(index(4 << 10));
    let store = Store::open(opts()).await.unwrap();
    // Ids in scrambled order (not v7), more than one sample stretch of the base's order.
    let scrambled =
        |i: u128| Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
    for i in 0..300u128 {
        store
            .create_with_id(scrambled(i), item(&format!("r{i}"), i as i64))
            .await
            .unwrap();
    }
    store.compact().await.unwrap();
    store.close().await.unwrap();
    let store = Store::open(opts()).await.unwrap();
    // Changes since the compaction: updates of base records, new ones, an archive.
    for i in (0..300u128).step_by(37) {
        store
            .update(scrambled(i), None, |it: &Item| {
                Ok::<_, StoreError>(Item {
                    price: it.price + 1,
                    ..it.clone()
                })
            })
            .await
            .unwrap();
    }
    store.archive(scrambled(5), None).await.unwrap();
    for i in 300..320u128 {
        store
            .create_with_id(scrambled(i), item(&format!("r{i}"), i as i64))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let mut want: Vec<_> = store.all().map(|r| (r.created_at, r.id)).collect();
        want.sort();
        let want: Vec<Uuid> = want.into_iter().map(|e| e.1).collect();
        assert_eq!(want.len(), 320);
        assert_eq!(walk_ids(&store, &SortKey::CreatedAt, false, 7), want);
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(walk_ids(&store, &SortKey::CreatedAt, true, 7), rev);
        let mut by_id = want.clone();
        by_id.sort();
        assert_eq!(walk_ids(&store, &SortKey::Id, false, 7), by_id);
        // Again once the changes are in a new base.
        store.compact().await.unwrap();
    }
    store.close().await.unwrap();
}

/// Index entries of records written while a compaction builds the new snapshot's indexes go
/// in front of them at the switch: every index walk and lookup afterwards (and after a
/// reopen) matches the records as they are, not as the snapshot had them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_compaction_keep_the_indexes_right() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(dir.path()).memory(index(64 << 10));
    let store = Store::open(opts()).await.unwrap();
    let ops = (0..3000)
        .map(|i| Op::create(item(&format!("n{}", i % 50), i % 97)))
        .collect();
    let ids: Vec<Uuid> = store
        .batch(ops)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    for round in 0..3i64 {
        let writes = async {
            for (n, id) in ids.iter().enumerate().skip(round as usize).step_by(7) {
                let price = 1000 + round * 100 + (n as i64 % 89);
                store
                    .update(*id, None, move |it: &Item| {
                        Ok::<_, StoreError>(Item {
                            name: format!("m{}", price % 13),
                            price,
                            ..it.clone()
                        })
                    })
                    .await
                    .unwrap();
            }
        };
        let (compacted, ()) = tokio::join!(store.compact(), writes);
        compacted.unwrap();
    }
    let check = |store: &Store<Item>| {
        let mut want: Vec<(i64, Uuid)> = store.all().map(|r| (r.data.price, r.id)).collect();
        want.sort();
        let want: Vec<Uuid> = want.into_iter().map(|e| e.1).collect();
        let price = store_actor::SortKey::Index("price".into());
        assert_eq!(walk_ids(store, &price, false, 101), want);
        let mut back = want.clone();
        back.reverse();
        assert_eq!(walk_ids(store, &price, true, 101), back);
        for name in ["n7", "m3"] {
            let mut by_name: Vec<Uuid> = store
                .all()
                .filter(|r| r.data.name == name)
                .map(|r| r.id)
                .collect();
            by_name.sort();
            let page = store
                .list(&Query::new().index_eq("name", name).limit(3000))
                .unwrap();
            let mut got: Vec<Uuid> = page.items.iter().map(|r| r.id).collect();
            got.sort();
            assert_eq!(got, by_name, "{name}");
            assert!(!got.is_empty(), "{name}");
        }
    };
    check(&store);
    store.close().await.unwrap();
    let store = Store::open(opts()).await.unwrap();
    check(&store);
    store.close().await.unwrap();
}

/// A page of an index range's candidates in creation or id order, both ways, with archived
/// records or without, over a base (ids in creation order) mixed with records changed and
/// created since: following the cursors gives exactly what sorting every match gives.
#[tokio::test]
async fn index_range_pages_over_a_base_and_later_changes_match_a_sort_of_every_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path()).memory(index(16 << 10)))
        .await
        .unwrap();
    let ops = (0..300).map(|i| Op::create(item("a", i % 30))).collect();
    let ids: Vec<Uuid> = store
        .batch(ops)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    store.compact().await.unwrap();
    for (n, id) in ids.iter().enumerate().step_by(11) {
        if n % 3 == 0 {
            store.archive(*id, None).await.unwrap();
        } else {
            let price = (n as i64 * 7) % 30;
            store
                .update(*id, None, move |it: &Item| {
                    Ok::<_, StoreError>(Item {
                        price,
                        ..it.clone()
                    })
                })
                .await
                .unwrap();
        }
    }
    for i in 0..40 {
        store.create(item("b", i % 30)).await.unwrap();
    }
    let range = store_actor::IndexKey::Int(10)..=store_actor::IndexKey::Int(19);
    for sort in [store_actor::SortKey::CreatedAt, store_actor::SortKey::Id] {
        for descending in [false, true] {
            for archived in [false, true] {
                let mut want: Vec<_> = store
                    .all()
                    .filter(|r| (10..=19).contains(&r.data.price) && (archived || !r.archived))
                    .map(|r| match sort {
                        store_actor::SortKey::CreatedAt => (Some(r.created_at), r.id),
                        _ => (None, r.id),
                    })
                    .collect();
                want.sort();
                if descending {
                    want.reverse();
                }
                let want: Vec<Uuid> = want.into_iter().map(|e| e.1).collect();
                let mut got = Vec::new();
                let mut cursor = None;
                loop {
                    let q = Query::new()
                        .index_range("price", range.clone())
                        .sort(sort.clone(), descending)
                        .include_archived(archived)
                        .limit(7)
                        .cursor(cursor.take());
                    let page = store.list(&q).unwrap();
                    got.extend(page.items.iter().map(|r| r.id));
                    match page.next_cursor {
                        None => break,
                        some => cursor = some,
                    }
                }
                assert!(want.len() > 100, "{}", want.len());
                assert_eq!(
                    got, want,
                    "{sort:?} descending {descending} archived {archived}"
                );
            }
        }
    }
    store.close().await.unwrap();
}
