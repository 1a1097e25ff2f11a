//! 6. How a large file's fsync delays small journal fsyncs (no store involved).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli;
use crate::common::{Res, pct, tempdir};

/// Journal-like fsyncs while a snapshot-sized file is written and synced.
///
/// One thread appends 16 journal-sized lines (4 KB) + sync_data in a loop; another writes --mb
/// MB in 64 KB writes and syncs it: only at the end (--every 0), or also every N MB. Shows how
/// long a journal fsync can wait behind a snapshot's fsync.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Size of the snapshot-like file, in MB
    #[arg(long, value_name = "MB", value_parser = cli::count, default_value = "210")]
    pub mb: u64,
    /// Variants: sync the file every N MB while writing it (0: only at the end)
    #[arg(long, value_name = "N,...", default_value = "0,16,4")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub every: Vec<u64>,
    /// How many times the variants run
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "2")]
    pub rounds: u64,
}

pub fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        mb,
        every: variants,
        rounds,
    } = args;
    let size = mb << 20;
    println!(
        "\n== 6. journal fsync latency while a {} MB file is written and synced ==",
        size >> 20
    );
    let dir = tempdir(base)?;
    println!(
        "\n| snapshot synced | write time | final fsync | total | journal fsyncs | p50 | p99 | max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for _ in 0..rounds {
        for &every in &variants {
            let stop = Arc::new(AtomicBool::new(false));
            let jpath = dir.path().join("journal-probe");
            let journal = {
                let stop = stop.clone();
                std::thread::spawn(move || -> std::io::Result<Vec<u32>> {
                    let mut f = OpenOptions::new().create(true).append(true).open(&jpath)?;
                    let mut lats = Vec::new();
                    let batch = [b'x'; 16 * 256];
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        f.write_all(&batch)?;
                        f.sync_data()?;
                        lats.push(t.elapsed().as_micros() as u32);
                    }
                    drop(f);
                    std::fs::remove_file(&jpath)?;
                    Ok(lats)
                })
            };
            std::thread::sleep(Duration::from_millis(200));
            let spath = dir.path().join("snapshot-probe");
            let t = Instant::now();
            let mut f = File::create(&spath)?;
            let chunk = vec![b'y'; 1 << 16];
            let (mut written, mut since) = (0u64, 0u64);
            while written < size {
                f.write_all(&chunk)?;
                written += chunk.len() as u64;
                since += chunk.len() as u64;
                if every > 0 && since >= every << 20 {
                    f.sync_data()?;
                    since = 0;
                }
            }
            let write_time = t.elapsed();
            f.sync_all()?;
            let total = t.elapsed();
            drop(f);
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            let mut lats = journal.join().map_err(|_| "journal thread panicked")??;
            std::fs::remove_file(&spath)?;
            lats.sort_unstable();
            println!(
                "| {} | {} ms | {} ms | {} ms | {} | {} µs | {} µs | {} µs |",
                if every == 0 {
                    "at the end only".to_owned()
                } else {
                    format!("every {every} MB")
                },
                write_time.as_millis(),
                (total - write_time).as_millis(),
                total.as_millis(),
                lats.len(),
                pct(&lats, 0.5),
                pct(&lats, 0.99),
                lats.last().copied().unwrap_or(0)
            );
        }
    }
    Ok(())
}
