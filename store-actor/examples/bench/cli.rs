//! The command line: subcommands, the common `--dir`, and parsers for the flag values.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::{compaction, fsync_interference, insert_cost, modes, open, reads, writers};

/// Benchmarks of store-actor (see BENCHMARKS.md for figures).
///
/// Each subcommand lists its flags with --help and stays well under a minute with its defaults
/// on a 2-core machine.
#[derive(Debug, Parser)]
#[command(name = "bench")]
pub struct Cli {
    /// Base directory of the temporary stores [default: the system's temporary directory]
    ///
    /// Each store goes in its own `store-actor-bench-*` directory under PATH, removed
    /// afterwards (unless `open --keep yes`); PATH is created if missing (and then removed if
    /// empty). Use a directory on the file system you want to measure: the default, such as
    /// /tmp, may be a tmpfs.
    #[arg(long, global = true, value_name = "PATH")]
    pub dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each one's help is its `Args`' doc comment.
#[derive(Debug, Subcommand)]
pub enum Command {
    Writers(writers::Args),
    InsertCost(insert_cost::Args),
    Open(open::Args),
    Reads(reads::Args),
    Compaction(compaction::Args),
    FsyncInterference(fsync_interference::Args),
    Modes(modes::Args),
    /// All of the above, with their defaults
    All,
    /// The fresh process that `open` starts to open the store in --dir
    #[command(hide = true)]
    OpenChild(open::ChildArgs),
    /// The fresh process that `modes` starts for each measurement
    #[command(hide = true)]
    ModesChild(modes::ChildArgs),
}

/// The arguments of a subcommand when none are given: its defaults.
pub fn defaults<A: Parser>() -> A {
    A::parse_from(["bench"])
}

/// A count, optionally with `_` between digits (`1_000_000`).
pub fn count(s: &str) -> Result<u64, String> {
    s.trim()
        .replace('_', "")
        .parse()
        .map_err(|e| format!("{e}"))
}

/// Seconds, possibly fractional (`0.2`).
pub fn secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

/// `yes` or `no` (also `true`/`false`, `1`/`0`).
pub fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got {s:?}")),
    }
}
