//! The change feed outlives compactions and restarts: events come from memory, the journal
//! and the journals compaction retired, within the retention window; past it, a resync.

use std::sync::Arc;
use std::time::Duration;

use store_actor::fs::SimFs;
use store_actor::{Event, FeedHistory, Op, Store, StoreError};

use crate::helpers::{Item, item, sim_options};

fn seqs(events: &[Arc<Event<Item>>]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Every event after `after`, page by page, as a consumer reads them.
fn drain(store: &Store<Item>, mut after: u64, page: usize) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    loop {
        let events = store.events_after(after, page)?;
        let Some(last) = events.last() else {
            return Ok(out);
        };
        after = last.seq;
        out.extend(seqs(&events));
    }
}

/// Writes 50 rounds of one create and one batch of three, compacting every 10 rounds.
async fn write_and_compact(store: &Store<Item>) -> u64 {
    let first = store.create(item("first", 0)).await.unwrap();
    for round in 0..50 {
        store.create(item("r", round)).await.unwrap();
        let ops = (0..3)
            .map(|i| Op::replace(first.id, None, item("first", round * 3 + i)))
            .collect();
        store.batch(ops).await.unwrap();
        if round % 10 == 9 {
            store.compact().await.unwrap();
        }
    }
    store.last_seq()
}

#[tokio::test]
async fn events_survive_compaction_and_restart_within_the_window() {
    let fs = SimFs::new();
    let opts = || sim_options(&fs).feed_retention(20);
    let store = Store::open(opts()).await.unwrap();
    let last = write_and_compact(&store).await;
    assert_eq!(last, 201);
    let every: Vec<u64> = (1..=last).collect();
    assert_eq!(drain(&store, 0, 7).unwrap(), every);
    store.close().await.unwrap();

    // After a restart (memory holds only the live journal's tail) and a power loss.
    let store = Store::open(opts()).await.unwrap();
    assert_eq!(drain(&store, 0, 64).unwrap(), every);
    for after in [0, 1, 2, 3, 4, 5, 99, 150, 200] {
        assert_eq!(
            drain(&store, after, 5).unwrap(),
            (after + 1..=last).collect::<Vec<_>>(),
            "after {after}"
        );
    }
    // The waiting form reads old events on a blocking thread.
    let got = store.wait_events_after(10, 3).await.unwrap();
    assert_eq!(seqs(&got), [11, 12, 13]);
    store.close().await.unwrap();
    let fs = fs.crash();
    let store = Store::open(sim_options(&fs).feed_retention(20))
        .await
        .unwrap();
    assert_eq!(drain(&store, 0, 64).unwrap(), every);
    store.close().await.unwrap();
}

#[tokio::test]
async fn past_the_window_a_consumer_must_resync() {
    let fs = SimFs::new();
    // No retired journal is kept: after a compaction only the live journal and memory remain.
    let none = FeedHistory {
        max_age: Duration::from_secs(3600),
        max_bytes: 0,
    };
    let opts = || sim_options(&fs).feed_retention(5).feed_history(none);
    let store = Store::open(opts()).await.unwrap();
    let last = write_and_compact(&store).await;
    // Retired journals are deleted in the background after a switch, and at open: reopen.
    store.close().await.unwrap();
    let store = Store::open(opts()).await.unwrap();
    // The last compaction (after round 49) left an empty journal, and memory starts empty at
    // open: nothing before the next write is kept.
    let err = store.events_after(0, 10).unwrap_err();
    assert!(
        matches!(err, StoreError::TooOld { requested: 0, oldest_available } if oldest_available == last + 1),
        "{err:?}"
    );
    assert!(store.events_after(last - 1, 10).is_err());
    assert!(store.events_after(last, 10).unwrap().is_empty());
    store.create(item("next", 1)).await.unwrap();
    assert_eq!(drain(&store, last, 10).unwrap(), [last + 1]);
    let retired: Vec<_> = fs
        .paths()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".retired."))
        .collect();
    assert!(retired.is_empty(), "{retired:?}");
    store.close().await.unwrap();

    // A window by age: a retired journal older than it is deleted at the next open.
    let fs = SimFs::new();
    let store = Store::open(sim_options(&fs)).await.unwrap();
    write_and_compact(&store).await;
    store.close().await.unwrap();
    let kept = fs
        .paths()
        .iter()
        .filter(|p| p.to_string_lossy().contains(".retired."))
        .count();
    assert_eq!(kept, 5, "one retired journal per compaction");
    let store = Store::open(sim_options(&fs).feed_history(FeedHistory {
        max_age: Duration::ZERO,
        max_bytes: 1 << 30,
    }))
    .await
    .unwrap();
    let kept = fs
        .paths()
        .iter()
        .filter(|p| p.to_string_lossy().contains(".retired."))
        .count();
    assert_eq!(kept, 0);
    assert!(matches!(
        store.events_after(0, 10),
        Err(StoreError::TooOld { requested: 0, .. })
    ));
    store.close().await.unwrap();
}
