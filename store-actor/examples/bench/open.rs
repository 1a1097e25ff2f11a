//! 3. Open time and resident memory, in a fresh process.
//!
//! `open` builds the store, then re-executes this program as `open-child --dir D --indexes N`
//! for each measurement, so that every open starts from an idle process.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use store_actor::{Durability, Store};

use crate::cli;
use crate::common::{
    Budget, INDEX_NAMES, NAME, Res, file_len, mb, options, options_with, prefill_ordered, rss,
    run_writers, tempdir,
};

/// Open (load + replay) time and resident memory for 1,000,000 records.
///
/// Builds a store of --records records: a snapshot of records - journal, then --journal
/// inserts through the store (Never) so that open also replays a journal; then, for each
/// --indexes variant (0: none, 1: name, 2: name + price), re-executes this program --repeat
/// times to open it in a fresh process (`open-child --dir D --indexes N`; --keep yes leaves the
/// store in place, e.g. to profile that).
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Records in the store
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "1000000")]
    pub records: u64,
    /// How many of them are inserted through the store, to be replayed from the journal
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "10000")]
    pub journal: u64,
    /// Index variants to open with: 0 (none), 1 (name), 2 (name + price)
    #[arg(long = "indexes", value_name = "N,...", default_value = "0,1")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub variants: Vec<u64>,
    /// Opens per variant, each in a fresh process (at least 1); the median is reported
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "3")]
    pub repeat: u64,
    /// Leave the store in place afterwards (yes or no)
    #[arg(long, value_name = "yes|no", default_value = "no")]
    #[arg(value_parser = cli::yes_no, action = clap::ArgAction::Set)]
    pub keep: bool,
    /// A diagnostic: write the snapshot's records in even-then-odd id order, to see how much
    /// memory loading sorted data into imbl B-trees in that order would save (yes or no)
    #[arg(long, value_name = "yes|no", default_value = "no")]
    #[arg(value_parser = cli::yes_no, action = clap::ArgAction::Set)]
    pub two_pass: bool,
}

/// The fresh process of `open`: opens the store in --dir and prints `key=value` pairs on stdout.
#[derive(Debug, clap::Parser)]
pub struct ChildArgs {
    /// Index variant: 0 (none), 1 (name), 2 (name + price)
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "0")]
    pub indexes: u64,
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        records,
        journal,
        variants,
        repeat,
        keep,
        two_pass,
    } = args;
    let journal = journal.min(records);
    let repeat = repeat.max(1);
    if variants.iter().any(|&v| v > 2) {
        return Err("--indexes: 0 (none), 1 (name) or 2 (name + price)".into());
    }
    println!("\n== 3. open (load + replay) time and resident memory, fresh process ==");
    let dir = tempdir(base)?;
    prefill_ordered(dir.path(), records - journal, two_pass)?;
    {
        let store = Store::open(options(dir.path(), Durability::Never)).await?;
        run_writers(&store, 4, Budget::Count(journal), 5_000_000).await?;
        assert_eq!(store.count(), records);
        store.close().await?;
    }
    let json = file_len(&dir.path().join(format!("{NAME}.json")));
    let jrnl = file_len(&dir.path().join(format!("{NAME}.journal")));
    println!(
        "store: {records} records; {NAME}.json {} MB ({} records), {NAME}.journal {} MB ({journal} lines)",
        mb(json),
        records - journal,
        mb(jrnl)
    );
    if two_pass {
        println!("(diagnostic: snapshot records written in even-then-odd id order)");
    }
    println!(
        "\n| index | open time (median) | all runs (s) | RSS idle | RSS after open | peak RSS (VmHWM) | RSS after / JSON | (RSS after - idle) / JSON |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for &indexes in &variants {
        let mut runs = Vec::new();
        for _ in 0..repeat {
            let out = Command::new(std::env::current_exe()?)
                .arg("open-child")
                .arg("--dir")
                .arg(dir.path())
                .arg("--indexes")
                .arg(indexes.to_string())
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "open-child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let kv: HashMap<&str, f64> = text
                .split_whitespace()
                .filter_map(|t| t.split_once('='))
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect();
            let get = |k: &str| kv.get(k).copied().unwrap_or(f64::NAN);
            assert_eq!(get("count") as u64, records, "child saw every record");
            runs.push([get("open_s"), get("rss_idle"), get("rss"), get("hwm")]);
        }
        let all: Vec<String> = runs.iter().map(|r| format!("{:.2}", r[0])).collect();
        runs.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let [secs, idle, after, hwm] = runs[runs.len() / 2];
        println!(
            "| {} | {secs:.2} s | {} | {} MB | {} MB | {} MB | {:.2}× | {:.2}× |",
            INDEX_NAMES[indexes as usize],
            all.join(", "),
            mb(idle as u64),
            mb(after as u64),
            mb(hwm as u64),
            after / json as f64,
            (after - idle) / json as f64,
        );
        verdicts.push((indexes, runs[runs.len() - 1][0], after / json as f64));
    }
    println!();
    for (indexes, secs, ratio) in verdicts {
        let which = format!("indexes: {}", INDEX_NAMES[indexes as usize]);
        println!(
            "target ({which}): open < 3 s: slowest run {secs:.2} s → {}; RSS < 2.5× JSON: {ratio:.2}× → {}",
            if secs < 3.0 { "MET" } else { "MISSED" },
            if ratio < 2.5 { "MET" } else { "MISSED" },
        );
    }
    if keep {
        println!("store kept in {}", dir.keep().display());
    }
    Ok(())
}

/// The fresh process of `open`, for the store in `dir`: prints `key=value` pairs on stdout.
pub fn child(args: ChildArgs, dir: &Path) -> Res<()> {
    let ChildArgs { indexes } = args;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (idle, _) = rss();
    let t = Instant::now();
    let store = rt.block_on(Store::open(options_with(dir, Durability::Always, indexes)))?;
    let secs = t.elapsed().as_secs_f64();
    let (after, hwm) = rss();
    let count = store.count();
    rt.block_on(store.close())?;
    println!("open_s={secs} rss_idle={idle} rss={after} hwm={hwm} count={count}");
    Ok(())
}
