//! Lock-free readers (`read_all`, `verify`, the CLI's export and verify) next to a live store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use store_actor::{Durability, Store};

use crate::helpers::{item, options};

/// A reader that runs while the store writes and compacts never reports damage, and never goes
/// back in time: compaction swaps the snapshot and the journal under it, and old snapshot + new
/// journal would look like a sequence gap.
#[test]
fn lock_free_reads_survive_concurrent_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Tiny thresholds: a compaction every few writes.
    let store = rt
        .block_on(Store::open(
            options(&path)
                .durability(Durability::Never)
                .compaction(1_000, 0.2),
        ))
        .unwrap();
    rt.block_on(async {
        for i in 0..200 {
            store.create(item("seed", i)).await.unwrap();
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        rt.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                store.create(item("w", n)).await.unwrap();
                n += 1;
                if n % 16 == 0 {
                    store.compact().await.unwrap();
                }
            }
        })
    };
    let mut last = 0;
    let mut failure = None;
    for round in 0..200 {
        let result = if round % 2 == 0 {
            store_actor::read_all(&options(&path)).map(|r| r.len() as u64)
        } else {
            store_actor::verify(&options(&path)).map(|r| r.records)
        };
        match result {
            Ok(n) if n >= last => last = n,
            Ok(n) => failure = Some(format!("round {round}: {n} records after {last}")),
            Err(e) => failure = Some(format!("round {round}: {e}")),
        }
        if failure.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(writer).unwrap();
    assert_eq!(failure, None);
    assert!(store.status().compactions > 10, "{:?}", store.status());
    assert!(last > 200);
    rt.block_on(store.close()).unwrap();
}
