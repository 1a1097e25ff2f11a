//! store-actor without actix-web: a plain tokio program.
//!
//! Opens a store in a temporary directory (or `$1`), writes from concurrent tasks, follows the
//! change feed from another task, reads and lists, then closes cleanly.
//!
//! ```sh
//! cargo run -p store-actor --example plain_tokio
//! ```

use std::time::Duration;

use store_actor::{IndexKey, Query, SortKey, Store, StoreError, StoreOptions};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Task {
    title: String,
    owner: String,
    done: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or(tmp.path().to_owned(), Into::into);
    let options = StoreOptions::<Task>::new(&dir, "tasks")
        .index("owner", |t: &Task| vec![IndexKey::from(t.owner.as_str())])
        .index("title", |t: &Task| vec![IndexKey::from(t.title.as_str())]);
    let store = Store::open(options).await?;

    // A follower of the change feed, as a service would stream it to clients.
    let follower = {
        let store = store.clone();
        let start = store.last_seq();
        tokio::spawn(async move {
            let mut after = start;
            let mut seen = 0;
            while seen < 40 {
                let events = store.wait_events_after(after, 100).await?;
                for e in &events {
                    after = e.seq;
                    seen += 1;
                }
            }
            Ok::<_, StoreError>(seen)
        })
    };

    // Concurrent writers: their writes share fsyncs.
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let task = Task {
                    title: format!("task {w}-{i}"),
                    owner: format!("user{w}"),
                    done: false,
                };
                store.create(task).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let events = tokio::time::timeout(Duration::from_secs(10), follower).await???;

    let mine = store.list(&Query::new().index_eq("owner", "user2").limit(100))?;
    let first = &mine.items[0];
    let done = store
        .update(first.id, Some(first.version), |t: &Task| {
            Ok::<_, StoreError>(Task {
                done: true,
                ..t.clone()
            })
        })
        .await?;
    let by_title = store.list(
        &Query::new()
            .sort(SortKey::Index("title".into()), true)
            .limit(3),
    )?;
    let status = store.status();
    println!(
        "stored {} tasks in {} fsyncs; the feed delivered {events} events",
        status.live, status.fsyncs
    );
    println!(
        "user2 has {} tasks; {:?} is now done (version {})",
        mine.items.len(),
        done.data.title,
        done.version
    );
    println!(
        "last titles: {:?}",
        by_title
            .items
            .iter()
            .map(|r| r.data.title.as_str())
            .collect::<Vec<_>>()
    );
    store.close().await?;
    Ok(())
}
