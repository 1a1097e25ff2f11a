//! 2. Insert cost with 1,000 and 1,000,000 records already stored.

use std::path::Path;
use std::time::Instant;

use store_actor::{Durability, Store};

use crate::cli;
use crate::common::{
    Budget, Res, Run, lat_summary, no_auto_compaction, options, prefill, run_writers, tempdir,
};

/// Insert cost with 1,000 and 1,000,000 records already stored.
///
/// Prefills one store per size; per durability mode (always, then never) opens them all at
/// once, then alternates between them for --rounds rounds, each running the inserts given for
/// each writer count (--n-always / --n-never pair with --writers); reports the median round.
/// Auto compaction is off so that only inserts are measured.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Records already stored, one store each
    #[arg(long, value_name = "N,...", default_value = "1000,1000000")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub sizes: Vec<u64>,
    /// Writer counts
    #[arg(long = "writers", value_name = "N,...", default_value = "1,64")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub writer_counts: Vec<u64>,
    /// Inserts per run with Durability::Always, one count per --writers entry
    #[arg(long, value_name = "N,...", default_value = "500,20000")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub n_always: Vec<u64>,
    /// Inserts per run with Durability::Never, one count per --writers entry
    #[arg(long, value_name = "N,...", default_value = "10000,50000")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub n_never: Vec<u64>,
    /// Rounds (at least 1); the median one is reported
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "5")]
    pub rounds: u64,
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        sizes,
        writer_counts,
        n_always,
        n_never,
        rounds,
    } = args;
    let rounds = rounds.max(1);
    if n_always.len() != writer_counts.len() || n_never.len() != writer_counts.len() {
        return Err("--n-always and --n-never need one count per --writers entry".into());
    }
    println!("\n== 2. insert cost vs records already stored (index `name`) ==");
    let mut dirs = Vec::new();
    for &size in &sizes {
        let dir = tempdir(base)?;
        prefill(dir.path(), size)?;
        dirs.push(dir);
    }
    println!(
        "\n| durability | writers | inserts per run | records stored | µs/insert (wall), median of {rounds} | all rounds | CPU µs/insert (median) | inserts/s | latency (median round) |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---|");
    let mut verdicts = Vec::new();
    for (mode, durability, counts) in [
        ("always", Durability::Always, &n_always),
        ("never", Durability::Never, &n_never),
    ] {
        let mut stores = Vec::new();
        for (dir, &size) in dirs.iter().zip(&sizes) {
            let t = Instant::now();
            let o = no_auto_compaction(options(dir.path(), durability));
            let store = Store::open(o).await?;
            eprintln!(
                "  (opened {size} records in {:.2} s)",
                t.elapsed().as_secs_f64()
            );
            // Warm up: the first inserts after open copy the paths they touch.
            run_writers(&store, 1, Budget::Count(200), 900_000_000).await?;
            stores.push(store);
        }
        // [writer count][size] -> runs
        let mut runs: Vec<Vec<Vec<Run>>> = writer_counts
            .iter()
            .map(|_| sizes.iter().map(|_| Vec::new()).collect())
            .collect();
        let mut seed = 0;
        for _ in 0..rounds {
            for (wi, (&w, &n)) in writer_counts.iter().zip(counts.iter()).enumerate() {
                for (si, store) in stores.iter().enumerate() {
                    seed += 100_000_000;
                    runs[wi][si].push(run_writers(store, w, Budget::Count(n), seed).await?);
                }
            }
        }
        for store in &stores {
            store.close().await?;
        }
        for (wi, (&w, &n)) in writer_counts.iter().zip(counts.iter()).enumerate() {
            let mut medians = Vec::new();
            for (si, &size) in sizes.iter().enumerate() {
                let rs = &mut runs[wi][si];
                let per = |r: &Run| r.elapsed.as_secs_f64() * 1e6 / r.inserts as f64;
                let all: Vec<String> = rs.iter().map(|r| format!("{:.1}", per(r))).collect();
                let mut cpu: Vec<f64> = rs
                    .iter()
                    .map(|r| r.cpu.as_secs_f64() * 1e6 / r.inserts as f64)
                    .collect();
                cpu.sort_by(f64::total_cmp);
                rs.sort_by(|a, b| per(a).total_cmp(&per(b)));
                let med = &rs[rs.len() / 2];
                println!(
                    "| {mode} | {w} | {n} | {size} | {:.1} | {} | {:.1} | {:.0} | {} |",
                    per(med),
                    all.join(", "),
                    cpu[cpu.len() / 2],
                    med.per_sec(),
                    lat_summary(&mut med.lats())
                );
                medians.push((size, per(med)));
            }
            if let (Some(small), Some(big)) = (medians.first(), medians.last())
                && medians.len() > 1
            {
                verdicts.push((mode, w, small.0, big.0, big.1 / small.1));
            }
        }
    }
    println!();
    for (mode, w, small, big, ratio) in verdicts {
        println!(
            "target: {mode}, {w} writer(s): cost with {big} stored / cost with {small} stored = {ratio:.2} → {}",
            if (ratio - 1.0).abs() <= 0.2 {
                "within 20%, MET"
            } else {
                "MISSED"
            }
        );
    }
    Ok(())
}
