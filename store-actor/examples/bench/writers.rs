//! 1. Durable inserts/s with concurrent writers, beside the disk's fsync rate.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use store_actor::{Durability, Store};

use crate::cli;
use crate::common::{Budget, Res, lat_summary, options, run_writers, tempdir};

/// Durable inserts/s with 1, 16, 64 writers beside this disk's fsync rate.
///
/// Per round: an fsync probe, then for each writer count a fresh empty store (index `name`,
/// Durability::Always) run for --secs, followed by another fsync probe; each store run is
/// compared with the mean of the probes just before and just after it.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Writer counts, one store run each
    #[arg(long = "writers", value_name = "N,...", default_value = "1,16,64")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub counts: Vec<u64>,
    /// How long each store run lasts
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "2")]
    pub secs: Duration,
    /// How long each fsync probe lasts
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "1")]
    pub fsync_secs: Duration,
    /// How many times the whole series runs
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "2")]
    pub rounds: u64,
}

/// Small appends, each followed by `File::sync_data`, for `secs`, on a file in `dir` (opened
/// for appending, as the journal is). Returns (fsyncs per second, mean latency).
fn fsync_rate(dir: &Path, secs: Duration) -> Res<(f64, Duration)> {
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
    let line = [b'x'; 200];
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < secs {
        f.write_all(&line)?;
        f.sync_data()?;
        n += 1;
    }
    let el = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((n as f64 / el.as_secs_f64(), el / n.max(1) as u32))
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        counts,
        secs,
        fsync_secs,
        rounds,
    } = args;
    println!("\n== 1. durable inserts/s (Durability::Always) vs this disk's fsync rate ==");
    println!(
        "fsync probe: append 200 B + File::sync_data in a loop, {} s, same directory as the store",
        fsync_secs.as_secs_f64()
    );
    let dir = tempdir(base)?;
    println!(
        "\n| round | writers | inserts/s | fsyncs/s (probe before / after) | × fsync rate | inserts | batches | fsyncs | records/fsync | store fsync mean | latency |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    // writers -> (inserts, seconds, reference fsyncs/s per run, records, fsyncs)
    let mut sums: Vec<(u64, u64, f64, Vec<f64>, u64)> =
        counts.iter().map(|&w| (w, 0, 0.0, Vec::new(), 0)).collect();
    for round in 1..=rounds {
        let (mut probe, _) = fsync_rate(dir.path(), fsync_secs)?;
        for (i, &w) in counts.iter().enumerate() {
            let d = tempdir(dir.path())?;
            let store = Store::open(options(d.path(), Durability::Always)).await?;
            let s0 = store.status();
            let run = run_writers(&store, w, Budget::For(secs), 0).await?;
            let s1 = store.status();
            store.close().await?;
            drop(d);
            let (next, _) = fsync_rate(dir.path(), fsync_secs)?;
            let reference = (probe + next) / 2.0;
            let batches = s1.batches - s0.batches;
            let fsyncs = s1.fsyncs - s0.fsyncs;
            let mean_fsync =
                (s1.fsync_total - s0.fsync_total).as_micros() as f64 / fsyncs.max(1) as f64;
            println!(
                "| {round} | {w} | {:.0} | {reference:.0} ({probe:.0} / {next:.0}) | {:.1} | {} | {batches} | {fsyncs} | {:.1} | {mean_fsync:.0} µs | {} |",
                run.per_sec(),
                run.per_sec() / reference,
                run.inserts,
                run.inserts as f64 / fsyncs.max(1) as f64,
                lat_summary(&mut run.lats()),
            );
            let sum = &mut sums[i];
            sum.1 += run.inserts;
            sum.2 += run.elapsed.as_secs_f64();
            sum.3.push(run.per_sec() / reference);
            sum.4 += fsyncs;
            probe = next;
        }
    }
    println!(
        "\n| writers | inserts/s (all rounds) | × fsync rate (per round) | records/fsync (all rounds) |"
    );
    println!("|---:|---:|---|---:|");
    for (w, inserts, secs, ratios, fsyncs) in &sums {
        let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "| {w} | {:.0} | {} | {:.1} |",
            *inserts as f64 / secs,
            ratios.join(", "),
            *inserts as f64 / (*fsyncs).max(1) as f64
        );
    }
    if let Some((_, _, _, ratios, _)) = sums.iter().find(|r| r.0 == 64) {
        let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "\ntarget: 64 writers ≥ 10× the fsync rate: worst round {worst:.1}× → {}",
            if worst >= 10.0 { "MET" } else { "MISSED" }
        );
    }
    Ok(())
}
