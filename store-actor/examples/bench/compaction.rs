//! 5. Compaction pause under concurrent writes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use store_actor::{Durability, Status, Store};

use crate::cli;
use crate::common::{Budget, Op, Res, lat_summary, mb, options, prefill, run_writers, tempdir};

/// Compaction pause under concurrent durable writes, 1,000,000 records.
///
/// Durable writers run throughout; after --warmup seconds a compaction is started and awaited;
/// writers go on for --after seconds more.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Records in the store
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "1000000")]
    pub records: u64,
    /// Concurrent durable writers
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "16")]
    pub writers: u64,
    /// How long writers run before the compaction starts
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "2")]
    pub warmup: Duration,
    /// How long writers go on after it
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "1")]
    pub after: Duration,
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        records,
        writers,
        warmup,
        after,
    } = args;
    println!("\n== 5. compaction of {records} records while {writers} durable writers go on ==");
    let dir = tempdir(base)?;
    prefill(dir.path(), records)?;
    let store = Store::open(options(dir.path(), Durability::Always)).await?;
    let s_before = store.status();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let run = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move { run_writers(&store, writers, Budget::Until(stop), 0).await })
    };
    tokio::time::sleep(warmup).await;
    let c0 = t0.elapsed();
    let report = store.compact().await?;
    let c1 = t0.elapsed();
    tokio::time::sleep(after).await;
    stop.store(true, Ordering::Relaxed);
    let run = run.await??;
    let status: Status = store.status();
    store.close().await?;

    // Op start times are relative to run_writers' own start, a hair after t0: close enough.
    let (c0us, c1us) = (c0.as_micros() as u64, c1.as_micros() as u64);
    let mut slowest: Vec<Op> = run.ops.clone();
    slowest.sort_by_key(|o| std::cmp::Reverse(o.lat));
    let window = |ops: &[Op], from: u64, to: u64| -> Vec<u32> {
        // Inserts in flight at any moment of [from, to].
        ops.iter()
            .filter(|o| o.start <= to && o.start + o.lat as u64 >= from)
            .map(|o| o.lat)
            .collect()
    };
    let mut before = window(&run.ops, 0, c0us.saturating_sub(1));
    let mut during = window(&run.ops, c0us, c1us);
    let mut later = window(&run.ops, c1us + 1, u64::MAX);
    let rate_in = |from: u64, to: u64| {
        let n = run
            .ops
            .iter()
            .filter(|o| o.start >= from && o.start < to)
            .count();
        n as f64 / ((to - from) as f64 / 1e6)
    };
    println!(
        "compaction report: snapshot of {} records, {} MB written in {} ms; pause (journal cut) {} µs",
        report.records,
        mb(report.snapshot_bytes),
        report.snapshot_time.as_millis(),
        report.pause.as_micros()
    );
    println!(
        "store status after: compactions {}, last_compaction_pause {} µs, journal {} KB",
        status.compactions,
        status.last_compaction_pause.as_micros(),
        status.journal_bytes / 1000
    );
    println!(
        "compact() call took {} ms (from {:.2} s to {:.2} s of the run)\n",
        (c1 - c0).as_millis(),
        c0.as_secs_f64(),
        c1.as_secs_f64()
    );
    println!(
        "journal fsyncs during the run: {}, mean {} µs, max {} µs (store status)",
        status.fsyncs - s_before.fsyncs,
        (status.fsync_total - s_before.fsync_total).as_micros() as u64
            / (status.fsyncs - s_before.fsyncs).max(1),
        status.fsync_max.as_micros()
    );
    let slow: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|o| {
            format!(
                "{} µs at {:+.0} ms",
                o.lat,
                (o.start as f64 - c0us as f64) / 1e3
            )
        })
        .collect();
    println!(
        "slowest inserts (start relative to the compaction's start; it ended at +{} ms): {}\n",
        (c1 - c0).as_millis(),
        slow.join(", ")
    );
    println!("| window | inserts/s | inserts | writer latency |");
    println!("|---|---:|---:|---|");
    let end_us = run.elapsed.as_micros() as u64;
    for (name, lats, rate) in [
        ("before compaction", &mut before, rate_in(0, c0us)),
        ("during compaction", &mut during, rate_in(c0us, c1us)),
        ("after compaction", &mut later, rate_in(c1us, end_us)),
    ] {
        let n = lats.len();
        println!("| {name} | {rate:.0} | {n} | {} |", lat_summary(lats));
    }
    Ok(())
}
