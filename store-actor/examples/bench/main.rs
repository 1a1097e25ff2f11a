//! Benchmarks of store-actor, as one example program (see `BENCHMARKS.md` for figures).
//!
//! ```text
//! cargo run --release -p store-actor --example bench -- <subcommand> [flags]
//!
//!   writers      durable inserts/s with 1, 16, 64 writers beside this disk's fsync rate
//!   insert-cost  insert cost with 1,000 and 1,000,000 records already stored
//!   open         open (load + replay) time and resident memory for 1,000,000 records
//!   reads        get and list throughput with 100,000 records
//!   compaction   compaction pause under concurrent durable writes, 1,000,000 records
//!   fsync-interference
//!                journal-like fsyncs while a snapshot-sized file is written and synced
//!   modes        in-memory and index mode by record count: open, memory, get, insert, list;
//!                writes an SVG chart
//!   all          all of the above, with their defaults
//!
//! common flags: --dir PATH   where temporary stores go (default: the system's temporary
//!                            directory; use a directory on the file system you want to measure)
//! ```
//!
//! Each subcommand prints its own flags with `--help` and stays well under a minute with its
//! defaults on a 2-core machine. Stores are prefilled by writing a snapshot file (the format
//! of `NAME.json`, serialized from [`Record`](store_actor::Record) exactly as the store writes
//! it), which is much faster than inserting through the actor; everything measured goes through
//! the public API.
//!
//! The records are small products, `{"name":"product 123456","price":"12.34"}`, in a store
//! with one index, `name`, as a products service would declare.
//!
//! One module per subcommand; `common` holds the data set, prefilling and the measurements
//! they share, `cli` the command line.

mod cli;
mod common;
mod compaction;
mod fsync_interference;
mod insert_cost;
mod modes;
mod open;
mod reads;
mod writers;

use std::path::Path;

use clap::Parser;

use crate::cli::{Cli, Command, defaults};
use crate::common::Res;

fn main() -> Res<()> {
    let Cli { dir, command } = Cli::parse();
    if let Command::OpenChild(args) = command {
        let dir = dir.ok_or("open-child needs --dir, the store's directory")?;
        return open::child(args, &dir);
    }
    if let Command::ModesChild(args) = command {
        let dir = dir.ok_or("modes-child needs --dir, the store's directory")?;
        return modes::child(args, &dir);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let created_base = !base.exists();
    std::fs::create_dir_all(&base)?;
    let result = rt.block_on(async {
        match command {
            Command::Writers(args) => writers::run(args, &base).await,
            Command::InsertCost(args) => insert_cost::run(args, &base).await,
            Command::Open(args) => open::run(args, &base).await,
            Command::Reads(args) => reads::run(args, &base).await,
            Command::Compaction(args) => compaction::run(args, &base).await,
            Command::FsyncInterference(args) => fsync_interference::run(args, &base),
            Command::Modes(args) => modes::run(args, &base).await,
            Command::All => {
                machine(&base);
                writers::run(defaults(), &base).await?;
                insert_cost::run(defaults(), &base).await?;
                open::run(defaults(), &base).await?;
                reads::run(defaults(), &base).await?;
                compaction::run(defaults(), &base).await?;
                fsync_interference::run(defaults(), &base)
            }
            Command::OpenChild(_) | Command::ModesChild(_) => unreachable!("handled above"),
        }
    });
    if created_base {
        // Only removes it if empty: every store lives in a tempdir that is already gone.
        let _ = std::fs::remove_dir(&base);
    }
    result
}

fn machine(dir: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    println!("machine: {cores} cores, {mem}, stores in {}", dir.display());
}
