//! Each operation and each error, on the real file system.

use std::time::Duration;

use store_actor::{
    Durability, EventKind, IndexKey, Query, SortKey, Store, StoreError, StoreOptions, verify,
};
use uuid::Uuid;

use crate::helpers::{Item, item, options};

/// Create assigns id, version 1 and equal timestamps; get returns what was stored.
#[tokio::test]
async fn create_then_get() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let rec = store.create(item("apple", 120)).await.unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(rec.created_at, rec.updated_at);
    assert!(!rec.archived);
    assert_eq!(rec.id.get_version_num(), 7);
    let got = store.get(rec.id).unwrap();
    assert_eq!(got, rec);
    assert_eq!(store.count(), 1);
    assert!(matches!(
        store.get(Uuid::nil()),
        Err(StoreError::NotFound { .. })
    ));
    store.close().await.unwrap();
}

/// A chosen id is used; reusing it is AlreadyExists and changes nothing.
#[tokio::test]
async fn create_with_id_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let id = Uuid::new_v4();
    store.create_with_id(id, item("a", 1)).await.unwrap();
    let err = store.create_with_id(id, item("b", 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { id: e } if e == id));
    assert_eq!(store.get(id).unwrap().data, item("a", 1));
    assert_eq!(store.last_seq(), 1);
}

/// Updates bump the version, keep created_at, honour the expected version and can be refused.
#[tokio::test]
async fn update_conditions_and_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let rec = store.create(item("a", 1)).await.unwrap();
    let up = store
        .update(rec.id, Some(1), |i: &Item| {
            Ok::<_, StoreError>(Item {
                price: i.price + 10,
                ..i.clone()
            })
        })
        .await
        .unwrap();
    assert_eq!((up.version, up.data.price), (2, 11));
    assert_eq!(up.created_at, rec.created_at);
    assert!(up.updated_at >= rec.updated_at);

    let stale = store
        .replace(rec.id, Some(1), item("x", 0))
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        }
    ));
    let refused = store
        .update(rec.id, None, |_: &Item| Err::<Item, _>("no, thanks"))
        .await
        .unwrap_err();
    assert!(matches!(&refused, StoreError::Rejected(e) if e.to_string() == "no, thanks"));
    let panicked = store
        .update(rec.id, None, |_: &Item| -> Result<Item, StoreError> {
            panic!("boom")
        })
        .await
        .unwrap_err();
    assert!(matches!(&panicked, StoreError::Rejected(e) if e.to_string().contains("panicked")));
    let missing = store
        .replace(Uuid::nil(), None, item("x", 0))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));
    assert_eq!(store.get(rec.id).unwrap(), up);
    assert_eq!(store.last_seq(), 2);
}

/// Archiving keeps the record readable but out of lists, counts and further writes.
#[tokio::test]
async fn archive_is_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 1)).await.unwrap();
    let b = store.create(item("b", 2)).await.unwrap();
    let stale = store.archive(a.id, Some(7)).await.unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }));
    let gone = store.archive(a.id, Some(1)).await.unwrap();
    assert!(gone.archived);
    assert_eq!(gone.version, 2);
    assert!(store.get(a.id).unwrap().archived);
    assert_eq!(store.count(), 1);
    let page = store.list(&Query::new()).unwrap();
    assert_eq!(
        page.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    let all = store.list(&Query::new().include_archived(true)).unwrap();
    assert_eq!(all.items.len(), 2);
    for err in [
        store.archive(a.id, None).await.unwrap_err(),
        store.replace(a.id, None, item("z", 0)).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Archived { .. }), "{err}");
    }
}

/// get_many answers every id from one state, None for unknown ones.
#[tokio::test]
async fn get_many_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 1)).await.unwrap();
    let b = store.create(item("b", 2)).await.unwrap();
    let got = store.get_many(&[b.id, Uuid::nil(), a.id]).unwrap();
    assert_eq!(got[0].as_ref().unwrap().id, b.id);
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().id, a.id);
}

/// Lists page through every order in both directions with cursors, filters and index matches.
#[tokio::test]
async fn list_sort_filter_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    for (i, name) in ["delta", "alpha", "echo", "charlie", "bravo"]
        .iter()
        .enumerate()
    {
        let mut it = item(name, (i as i64 * 37) % 5);
        it.tags = vec![if i % 2 == 0 { "even" } else { "odd" }.into()];
        store.create(it).await.unwrap();
    }
    // Pages of two through one order, following cursors to the end.
    let names = |sort: SortKey, descending: bool| -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let q = Query::new()
                .sort(sort.clone(), descending)
                .limit(2)
                .cursor(cursor);
            let page = store.list(&q).unwrap();
            out.extend(page.items.iter().map(|r| r.data.name.clone()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    };
    let name = || SortKey::Index("name".into());
    assert_eq!(
        names(name(), false),
        ["alpha", "bravo", "charlie", "delta", "echo"]
    );
    assert_eq!(
        names(name(), true),
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
    assert_eq!(
        names(SortKey::CreatedAt, false),
        ["delta", "alpha", "echo", "charlie", "bravo"]
    );
    assert_eq!(
        names(SortKey::Id, true),
        ["bravo", "charlie", "echo", "alpha", "delta"]
    );
    let by_name = Query::<Item>::new().sort(name(), false);

    // Filter and index match, paged.
    let cheap = store
        .list(
            &Query::new()
                .sort(SortKey::Index("price".into()), false)
                .filter(|r: &store_actor::Record<Item>| r.data.price <= 2)
                .limit(10),
        )
        .unwrap();
    let prices: Vec<i64> = cheap.items.iter().map(|r| r.data.price).collect();
    assert_eq!(prices, [0, 1, 2]);
    assert!(cheap.next_cursor.is_none());

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(
                &Query::new()
                    .index_eq("tag", "even")
                    .sort(SortKey::Index("name".into()), true)
                    .limit(2)
                    .cursor(cursor),
            )
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.data.name.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["echo", "delta", "bravo"]);

    // Counting uses the same conditions.
    assert_eq!(store.count_matching(&Query::new()).unwrap(), 5);
    assert_eq!(
        store
            .count_matching(&Query::new().index_eq("tag", "odd"))
            .unwrap(),
        2
    );
    let cheap = Query::new().filter(|r: &store_actor::Record<Item>| r.data.price < 2);
    assert_eq!(store.count_matching(&cheap).unwrap(), 2);

    // A cursor from another order is refused; so is an unknown index.
    let page = store.list(&by_name.limit(1)).unwrap();
    let foreign = Query::new()
        .sort(SortKey::CreatedAt, false)
        .cursor(page.next_cursor);
    assert!(matches!(
        store.list(&foreign),
        Err(StoreError::InvalidCursor)
    ));
    let unknown = Query::<Item>::new().sort(SortKey::Index("nope".into()), false);
    assert!(matches!(
        store.list(&unknown),
        Err(StoreError::UnknownIndex(_))
    ));
}

/// Secondary lookups follow updates: old keys are dropped, new ones found.
#[tokio::test]
async fn secondary_index_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let mut it = item("a", 1);
    it.tags = vec!["red".into(), "blue".into()];
    let rec = store.create(it).await.unwrap();
    store.create(item("b", 2)).await.unwrap();
    let red = IndexKey::from("red");
    assert_eq!(store.lookup("tag", &red).unwrap().len(), 1);
    store
        .update(rec.id, None, |i: &Item| {
            Ok::<_, StoreError>(Item {
                tags: vec!["blue".into()],
                ..i.clone()
            })
        })
        .await
        .unwrap();
    assert!(store.lookup("tag", &red).unwrap().is_empty());
    assert_eq!(store.lookup("tag", &"blue".into()).unwrap().len(), 1);
    assert!(matches!(
        store.lookup("colour", &red),
        Err(StoreError::UnknownIndex(_))
    ));
}

/// Everything written is there after close and reopen, and the files are what the format says.
#[tokio::test]
async fn reopen_restores_state_and_files_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    let a = store.create(item("a", 1)).await.unwrap();
    let b = store.create(item("b", 2)).await.unwrap();
    store.replace(a.id, None, item("a2", 3)).await.unwrap();
    store.compact().await.unwrap();
    store.archive(b.id, None).await.unwrap();
    let c = store.create(item("c", 4)).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.create(item("late", 0)).await,
        Err(StoreError::Closed)
    ));

    let snapshot = std::fs::read_to_string(dir.path().join("items.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(doc["format"], "store-actor/2");
    assert!(doc["crc"].is_u64(), "{doc}");
    assert_eq!(doc["seq"], 3);
    assert_eq!(doc["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        snapshot.lines().count(),
        4,
        "header, one line per record, footer"
    );
    let journal = std::fs::read_to_string(dir.path().join("items.journal")).unwrap();
    let seqs: Vec<u64> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [4, 5]);

    let report = verify(&options(dir.path())).unwrap();
    assert_eq!((report.records, report.live, report.last_seq), (3, 2, 5));

    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.get(a.id).unwrap().data, item("a2", 3));
    assert_eq!(store.get(a.id).unwrap().version, 2);
    assert!(store.get(b.id).unwrap().archived);
    assert_eq!(store.get(c.id).unwrap().data, item("c", 4));
    assert_eq!(store.count(), 2);
    assert_eq!(store.last_seq(), 5);
    // New writes continue the sequence.
    store.create(item("d", 5)).await.unwrap();
    assert_eq!(store.last_seq(), 6);
}

/// A second store on the same files is refused with the file's name, until the first closes.
#[tokio::test]
async fn second_owner_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(options(dir.path())).await.unwrap();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    match &err {
        StoreError::Locked { path } => assert!(path.ends_with("items.json")),
        other => panic!("expected Locked, got {other}"),
    }
    assert!(err.to_string().contains("items.json"));
    first.close().await.unwrap();
    Store::open(options(dir.path())).await.unwrap();
}

/// A lock held for a moment (as by a child process between its fork and exec, which shares our
/// descriptors) is waited out; one held for good is refused.
#[tokio::test]
async fn a_lock_held_for_a_moment_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let lock_file = || {
        let f = std::fs::File::create(dir.path().join("items.lock")).unwrap();
        f.try_lock().unwrap();
        f
    };
    let brief = lock_file();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(brief);
    });
    let store = Store::open(options(dir.path())).await.unwrap();
    release.join().unwrap();
    store.close().await.unwrap();

    let _held = lock_file();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

/// The change feed returns events in order, waits for new ones, and says when it is too old.
#[tokio::test]
async fn change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path()).feed_retention(3))
        .await
        .unwrap();
    let a = store.create(item("a", 1)).await.unwrap();
    store.replace(a.id, None, item("a", 2)).await.unwrap();
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(
        events.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        [(1, EventKind::Created), (2, EventKind::Updated)]
    );
    assert!(store.events_after(2, 10).unwrap().is_empty());

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.wait_events_after(2, 10).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.archive(a.id, None).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].seq, got[0].kind), (3, EventKind::Archived));

    store.create(item("b", 1)).await.unwrap();
    // Memory keeps events 2..=4; older ones are read from the journal, in one answer.
    let seqs = |events: Vec<std::sync::Arc<store_actor::Event<Item>>>| -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs(store.events_after(0, 10).unwrap()), [1, 2, 3, 4]);
    assert_eq!(seqs(store.events_after(0, 2).unwrap()), [1, 2]);
    assert_eq!(seqs(store.events_after(1, 10).unwrap()), [2, 3, 4]);
}

/// Durability modes all persist across a clean close.
#[tokio::test]
async fn every_durability_mode_persists_on_close() {
    for mode in [
        Durability::Always,
        Durability::Interval(Duration::from_millis(5)),
        Durability::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(options(dir.path()).durability(mode))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(store.create(item("x", i)).await.unwrap().id);
        }
        store.close().await.unwrap();
        let store = Store::open(options(dir.path())).await.unwrap();
        assert_eq!(store.count(), 20, "{mode}");
    }
}

/// Compaction triggers by itself when the journal outgrows the snapshot, and keeps every write.
#[tokio::test]
async fn automatic_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(dir.path()).compaction(2_000, 1.0);
    let store = Store::open(opts()).await.unwrap();
    let rec = store.create(item("counter", 0)).await.unwrap();
    for i in 1..=300 {
        store
            .replace(rec.id, None, item("counter", i))
            .await
            .unwrap();
    }
    // Compaction runs in the background: wait for it with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.status().compactions == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction happened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = store.status();
    assert!(status.journal_bytes < 60_000, "{status:?}");
    store.close().await.unwrap();
    let store = Store::open(opts()).await.unwrap();
    assert_eq!(store.get(rec.id).unwrap().data.price, 300);
    assert_eq!(store.get(rec.id).unwrap().version, 301);
}

/// The handle works without actix-web: from a plain multi-threaded tokio runtime, concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_from_plain_tokio() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::<Item>::new(dir.path(), "c"))
        .await
        .unwrap();
    let id = store.create(item("n", 0)).await.unwrap().id;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .update(id, None, |i: &Item| {
                        Ok::<_, StoreError>(Item {
                            price: i.price + 1,
                            ..i.clone()
                        })
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // No lost updates: every increment landed.
    assert_eq!(store.get(id).unwrap().data.price, 320);
    assert_eq!(store.get(id).unwrap().version, 321);
    let status = store.status();
    assert!(
        status.batches < 321,
        "group commit shares fsyncs: {status:?}"
    );
}
