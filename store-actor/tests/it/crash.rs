//! Crash test: a child process writes under concurrent load and is killed with SIGKILL at a
//! random moment, many times; every write it acknowledged must be there afterwards.
//!
//! The child is this same test binary, re-executed to run only [`crash_child`], which does
//! nothing unless `STORE_ACTOR_CRASH_DIR` is set. It reports each acknowledged write on stdout
//! as `ACK <id> <value>`. [`sigkill_while_writing_batches`] does the same with atomic batches
//! and its own child, [`batch_crash_child`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use store_actor::{Store, StoreError, StoreOptions};
use uuid::Uuid;

use crate::helpers::{Item, check_groups, create_groups, find_groups, item, step};

const KEYS: usize = 24;
const DIR_VAR: &str = "STORE_ACTOR_CRASH_DIR";

fn options(dir: &Path) -> StoreOptions<Item> {
    // A small compaction threshold, so that kills also land during compactions.
    StoreOptions::new(dir, "crash")
        .compaction(32 << 10, 1.0)
        .memory(crate::helpers::memory())
}

/// Not a test on its own: the child process of `sigkill_at_random_moments`.
#[test]
#[ignore = "run as the child of sigkill_at_random_moments"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(options(Path::new(&dir))).await.unwrap();
        println!("READY");
        let mut tasks = Vec::new();
        for rec in store.all() {
            let store = store.clone();
            // One writer per key, so at most one unacknowledged write per key is in flight.
            tasks.push(tokio::spawn(async move {
                #[allow(clippy::infinite_loop)]
                loop {
                    let r = store
                        .update(rec.id, None, |i: &Item| {
                            Ok::<_, StoreError>(Item {
                                price: i.price + 1,
                                ..i.clone()
                            })
                        })
                        .await
                        .unwrap();
                    println!("ACK {} {}", r.id, r.data.price);
                }
            }));
        }
        // The writers loop until the parent kills this process.
        futures_like_join(tasks).await;
    });
}

async fn futures_like_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.await.unwrap();
    }
}

/// A tiny xorshift generator: random kill moments without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// SIGKILL at random moments, 50 times: the files always open and hold every acknowledged
/// write with its last acknowledged value (or the one write after it that was in flight).
#[test]
fn sigkill_at_random_moments() {
    let rounds: usize = std::env::var("STORE_ACTOR_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Arrange: the keys exist before the first child starts.
    let mut acked: HashMap<Uuid, i64> = rt.block_on(async {
        let store = Store::open(options(dir.path())).await.unwrap();
        let mut acked = HashMap::new();
        for _ in 0..KEYS {
            acked.insert(store.create(item("k", 0)).await.unwrap().id, 0);
        }
        store.close().await.unwrap();
        acked
    });
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    let exe = std::env::current_exe().unwrap();
    let mut total_acks = 0usize;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            let mut ready = false;
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if line == "READY" {
                    ready = true;
                } else if let Some(rest) = line.strip_prefix("ACK ") {
                    let (id, v) = rest.split_once(' ').unwrap();
                    acks.push((id.parse::<Uuid>().unwrap(), v.parse::<i64>().unwrap()));
                }
            }
            (ready, acks)
        });
        // Kill somewhere between startup and well into the write load.
        let wait = 20 + next_random(&mut seed) % 180;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let (_ready, acks) = reader.join().unwrap();
        total_acks += acks.len();
        for (id, v) in acks {
            let last = acked.get_mut(&id).expect("known key");
            assert!(v > *last, "acks of one key increase");
            *last = v;
        }
        // Assert: the store opens and every acknowledged value is there.
        rt.block_on(async {
            let store = Store::open(options(dir.path()))
                .await
                .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
            for (id, last) in &acked {
                let stored = store.get(*id).unwrap().data.price;
                assert!(
                    stored == *last || stored == *last + 1,
                    "round {round}: key {id} acknowledged {last}, stored {stored}"
                );
            }
            // The next round starts from what is stored.
            for rec in store.all() {
                acked.insert(rec.id, rec.data.price);
            }
            store.close().await.unwrap();
        });
    }
    eprintln!("{rounds} kills, {total_acks} acknowledged writes checked");
    assert!(
        total_acks > rounds,
        "the children did write ({total_acks} acks)"
    );
}

const BATCH_DIR_VAR: &str = "STORE_ACTOR_BATCH_CRASH_DIR";
const GROUPS: usize = 8;

/// Not a test on its own: the child process of `sigkill_while_writing_batches`. One writer per
/// group loops on [`step`] batches (3 updates and a create each) and reports `ACK <group> <n>`.
#[test]
#[ignore = "run as the child of sigkill_while_writing_batches"]
fn batch_crash_child() {
    let Ok(dir) = std::env::var(BATCH_DIR_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(options(Path::new(&dir))).await.unwrap();
        let all: Vec<_> = store.all().collect();
        let groups = find_groups(all.iter().map(|r| &**r), GROUPS);
        let values = check_groups(all.iter().map(|r| &**r), &groups).unwrap();
        println!("READY");
        let mut tasks = Vec::new();
        for (g, (keys, v)) in groups.into_iter().zip(values).enumerate() {
            let store = store.clone();
            // One writer per group: at most one unacknowledged batch per group is in flight.
            tasks.push(tokio::spawn(async move {
                for n in v + 1.. {
                    store.batch(step(&keys, g, n)).await.unwrap();
                    println!("ACK {g} {n}");
                }
            }));
        }
        futures_like_join(tasks).await;
    });
}

/// SIGKILL a process writing atomic batches at random moments (also during compactions): after
/// every kill the files open, every batch is wholly present or wholly absent (a group's keys
/// agree and its created records match them), and every acknowledged batch is present.
#[test]
fn sigkill_while_writing_batches() {
    let rounds: usize = std::env::var("STORE_ACTOR_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let groups = rt.block_on(async {
        let store = Store::open(options(dir.path())).await.unwrap();
        let groups = create_groups(&store, GROUPS, 3).await;
        store.close().await.unwrap();
        groups
    });
    let mut acked = vec![0i64; GROUPS];
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    let exe = std::env::current_exe().unwrap();
    let mut total_acks = 0usize;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash::batch_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(BATCH_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (g, n) = rest.split_once(' ').unwrap();
                    acks.push((g.parse::<usize>().unwrap(), n.parse::<i64>().unwrap()));
                }
            }
            acks
        });
        let wait = 20 + next_random(&mut seed) % 180;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        total_acks += acks.len();
        for (g, n) in acks {
            assert_eq!(
                n,
                acked[g] + 1,
                "a group's batches are acknowledged in order"
            );
            acked[g] = n;
        }
        rt.block_on(async {
            let store = Store::open(options(dir.path()))
                .await
                .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
            let all: Vec<_> = store.all().collect();
            let values = check_groups(all.iter().map(|r| &**r), &groups)
                .unwrap_or_else(|e| panic!("round {round}: a batch is split: {e}"));
            for (g, v) in values.iter().enumerate() {
                assert!(
                    *v == acked[g] || *v == acked[g] + 1,
                    "round {round}: group {g} acknowledged {}, stored {v}",
                    acked[g]
                );
            }
            acked = values;
            store.close().await.unwrap();
        });
    }
    eprintln!("{rounds} kills, {total_acks} acknowledged batches checked");
    assert!(
        total_acks > rounds,
        "the children did write ({total_acks} acks)"
    );
}
