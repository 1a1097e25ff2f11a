//! 4. Get and list throughput.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store_actor::{Durability, IndexKey, Query, SortKey, Store};

use crate::cli;
use crate::common::{Product, Res, Rng, options, prefill, product, tempdir};

/// Get and list throughput with 100,000 records.
///
/// Each measurement runs --secs on each thread count.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Records in the store
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "100000")]
    pub records: u64,
    /// How long each measurement runs
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "1")]
    pub secs: Duration,
    /// Reader thread counts
    #[arg(long, value_name = "N,...", default_value = "1,2")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub threads: Vec<u64>,
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        records,
        secs,
        threads,
    } = args;
    println!("\n== 4. get and list throughput ({records} records, index `name`) ==");
    let dir = tempdir(base)?;
    let ids = Arc::new(prefill(dir.path(), records)?);
    let store = Store::open(options(dir.path(), Durability::Always)).await?;
    assert_eq!(store.count(), records);
    // Warm up: touch every record once.
    for id in ids.iter() {
        black_box(store.get(*id)?);
    }

    type Op = Arc<dyn Fn(&Store<Product>, &mut Rng, &mut Option<String>) + Send + Sync>;
    let ids2 = ids.clone();
    let by_id = Query::<Product>::new().limit(20);
    let by_name = Query::<Product>::new()
        .limit(20)
        .sort(SortKey::Index("name".into()), false);
    let page = |q: fn() -> Query<Product>| -> Op {
        Arc::new(move |s, _, cursor| {
            let p = s.list(&q().cursor(cursor.take())).unwrap();
            assert!(!p.items.is_empty());
            *cursor = p.next_cursor;
            black_box(p.items);
        })
    };
    let benches: Vec<(&str, Op)> = vec![
        (
            "get by random id",
            Arc::new(move |s, rng, _| {
                let id = ids2[rng.below(ids2.len())];
                black_box(s.get(id).unwrap());
            }),
        ),
        (
            "list 20, by id, first page",
            Arc::new(move |s, _, _| {
                black_box(s.list(&by_id).unwrap());
            }),
        ),
        (
            "list 20, by id, walking pages by cursor",
            page(|| Query::new().limit(20)),
        ),
        (
            "list 20, by index name, first page",
            Arc::new(move |s, _, _| {
                black_box(s.list(&by_name).unwrap());
            }),
        ),
        (
            "list 20, by index name, walking pages by cursor",
            page(|| {
                Query::new()
                    .limit(20)
                    .sort(SortKey::Index("name".into()), false)
            }),
        ),
        (
            "lookup name = random product (index)",
            Arc::new(move |s, rng, _| {
                let n = rng.below(records as usize) as u64;
                let key = IndexKey::from(product(n).name);
                black_box(s.lookup("name", &key).unwrap());
            }),
        ),
    ];
    println!("\n| operation | threads | ops/s | µs/op per thread |");
    println!("|---|---:|---:|---:|");
    for (name, op) in &benches {
        for &t in &threads {
            let t0 = Instant::now();
            let total: u64 = std::thread::scope(|sc| {
                let hs: Vec<_> = (0..t)
                    .map(|i| {
                        let store = store.clone();
                        let op = op.clone();
                        sc.spawn(move || {
                            let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (i + 1));
                            let mut cursor = None;
                            let mut n = 0u64;
                            while t0.elapsed() < secs {
                                for _ in 0..64 {
                                    op(&store, &mut rng, &mut cursor);
                                }
                                n += 64;
                            }
                            n
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            let el = t0.elapsed().as_secs_f64();
            let rate = total as f64 / el;
            println!(
                "| {name} | {t} | {rate:.0} | {:.2} |",
                1e6 * t as f64 / rate
            );
        }
    }
    store.close().await?;
    Ok(())
}
