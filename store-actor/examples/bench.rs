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
//!   all          all of the above, with their defaults
//!
//! common flags: --dir PATH   where temporary stores go (default /work/tmp-bench; use a
//!                            directory on the file system you want to measure)
//! ```
//!
//! Each subcommand prints its own flags with `--help` and stays well under a minute with its
//! defaults on a 2-core machine. Stores are prefilled by writing a snapshot file (the format
//! of `NAME.json`, serialized from [`Record`] exactly as the store writes it), which is much
//! faster than inserting through the actor; everything measured goes through the public API.
//!
//! The records are small products, `{"name":"product 123456","price":"12.34"}`, in a store
//! with one index, `name`, as a products service would declare.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use store_actor::{
    Durability, FORMAT, IndexKey, Query, Record, SortKey, Status, Store, StoreOptions,
};
use time::OffsetDateTime;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = std::result::Result<T, BoxError>;

/// The record type: a small product.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Product {
    name: String,
    price: String,
}

/// Product `n`. Names are a permutation of 0..1,000,000 unrelated to creation order, as real
/// names would be (so the `name` index is not filled in sorted order).
fn product(n: u64) -> Product {
    Product {
        name: format!("product {:06}", (n % 1_000_000) * 611_953 % 1_000_000),
        price: format!("{}.{:02}", 1 + n % 997, n % 100),
    }
}

const NAME: &str = "products";

/// Options for the benchmark store with the `name` index.
fn options(dir: &Path, durability: Durability) -> StoreOptions<Product> {
    options_with(dir, durability, 1)
}

/// Options with the first `indexes` of: `name` (unique), `price` (about 100,000 values).
fn options_with(dir: &Path, durability: Durability, indexes: u64) -> StoreOptions<Product> {
    let mut o = StoreOptions::new(dir, NAME).durability(durability);
    if indexes >= 1 {
        o = o.index("name", |p: &Product| vec![IndexKey::from(p.name.as_str())]);
    }
    if indexes >= 2 {
        o = o.index("price", |p: &Product| {
            vec![IndexKey::from(p.price.as_str())]
        });
    }
    o
}

const INDEX_NAMES: [&str; 3] = ["none", "name", "name + price"];

/// Turns automatic compaction off, so that an insert benchmark measures inserts only.
fn no_auto_compaction(o: StoreOptions<Product>) -> StoreOptions<Product> {
    o.compaction(u64::MAX, f64::INFINITY)
}

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    sub: String,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse() -> Res<Self> {
        let mut it = std::env::args().skip(1);
        let sub = it.next().unwrap_or_else(|| "help".into());
        let mut flags = HashMap::new();
        let rest: Vec<String> = it.collect();
        let mut i = 0;
        while i < rest.len() {
            let a = &rest[i];
            let Some(flag) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}").into());
            };
            if let Some((k, v)) = flag.split_once('=') {
                flags.insert(k.to_owned(), v.to_owned());
            } else if flag == "help" {
                flags.insert("help".into(), String::new());
            } else {
                let v = rest
                    .get(i + 1)
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                flags.insert(flag.to_owned(), v.clone());
                i += 1;
            }
            i += 1;
        }
        Ok(Self { sub, flags })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.flags.remove(key)
    }
    fn u64(&mut self, key: &str, default: u64) -> Res<u64> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => Ok(v
                .replace('_', "")
                .parse()
                .map_err(|e| format!("--{key}: {e}"))?),
        }
    }
    fn secs(&mut self, key: &str, default: f64) -> Res<Duration> {
        match self.take(key) {
            None => Ok(Duration::from_secs_f64(default)),
            Some(v) => Ok(Duration::from_secs_f64(
                v.parse().map_err(|e| format!("--{key}: {e}"))?,
            )),
        }
    }
    fn list(&mut self, key: &str, default: &[u64]) -> Res<Vec<u64>> {
        match self.take(key) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .replace('_', "")
                        .parse()
                        .map_err(|e| format!("--{key}: {e}").into())
                })
                .collect(),
        }
    }
    fn bool(&mut self, key: &str, default: bool) -> Res<bool> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("yes" | "true" | "1") => Ok(true),
            Some("no" | "false" | "0") => Ok(false),
            Some(v) => Err(format!("--{key}: expected yes or no, got {v:?}").into()),
        }
    }
    fn dir(&mut self) -> PathBuf {
        PathBuf::from(
            self.take("dir")
                .unwrap_or_else(|| "/work/tmp-bench".to_owned()),
        )
    }
    fn help(&mut self) -> bool {
        self.take("help").is_some()
    }
    fn done(&self) -> Res<()> {
        match self.flags.keys().next() {
            Some(k) => Err(format!("unknown flag --{k} for {}", self.sub).into()),
            None => Ok(()),
        }
    }
}

const USAGE: &str = "\
usage: bench <subcommand> [--dir PATH] [flags]   (--help after a subcommand lists its flags)

  writers      durable inserts/s with 1, 16, 64 writers beside this disk's fsync rate
  insert-cost  insert cost with 1,000 and 1,000,000 records already stored
  open         open (load + replay) time and resident memory for 1,000,000 records
  reads        get and list throughput with 100,000 records
  compaction   compaction pause under concurrent durable writes, 1,000,000 records
  fsync-interference
               journal-like fsyncs while a snapshot-sized file is written and synced
  all          all of the above with their defaults";

fn main() -> Res<()> {
    let mut args = Args::parse()?;
    let sub = args.sub.clone();
    if sub == "open-child" {
        return open_child(args);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = args.dir();
    let created_base = !base.exists();
    std::fs::create_dir_all(&base)?;
    let result = rt.block_on(async {
        match sub.as_str() {
            "writers" => writers(&mut args, &base).await,
            "insert-cost" => insert_cost(&mut args, &base).await,
            "open" => open(&mut args, &base).await,
            "reads" => reads(&mut args, &base).await,
            "compaction" => compaction(&mut args, &base).await,
            "fsync-interference" => fsync_interference(&mut args, &base),
            "all" => {
                args.done()?;
                machine(&base);
                let none = || Args {
                    sub: String::new(),
                    flags: HashMap::new(),
                };
                writers(&mut none(), &base).await?;
                insert_cost(&mut none(), &base).await?;
                open(&mut none(), &base).await?;
                reads(&mut none(), &base).await?;
                compaction(&mut none(), &base).await?;
                fsync_interference(&mut none(), &base)
            }
            _ => {
                println!("{USAGE}");
                Ok(())
            }
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

// ---------------------------------------------------------------------------------------------
// Helpers

fn tempdir(base: &Path) -> Res<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("bench-").tempdir_in(base)?)
}

/// A small, fast, deterministic pseudo-random generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Writes `DIR/NAME.json` holding `count` records (increasing v7 ids, creation times a
/// microsecond apart), as the store's own compaction would. Returns the ids, in id order.
fn prefill(dir: &Path, count: u64) -> Res<Vec<Uuid>> {
    prefill_ordered(dir, count, false)
}

/// [`prefill`], optionally writing the records in "two-pass" order (even positions of the id
/// order, then odd ones) instead of id order. The store inserts snapshot records in file order,
/// so this shows, without changing the library, what loading in that order would save.
fn prefill_ordered(dir: &Path, count: u64, two_pass: bool) -> Res<Vec<Uuid>> {
    let t = Instant::now();
    let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, count, "v7 ids are unique");
    let order: Vec<u64> = if two_pass {
        (0..count).step_by(2).chain((1..count).step_by(2)).collect()
    } else {
        (0..count).collect()
    };
    let path = dir.join(format!("{NAME}.json"));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    writeln!(
        w,
        "{{\"format\":\"{FORMAT}\",\"seq\":{count},\"count\":{count},\"records\":["
    )?;
    let base = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    for (written, i) in order.into_iter().enumerate() {
        let at = base + Duration::from_micros(i);
        let rec = Record {
            id: ids[i as usize],
            version: 1,
            created_at: at,
            updated_at: at,
            archived: false,
            data: product(i),
        };
        serde_json::to_writer(&mut w, &rec)?;
        w.write_all(if written as u64 + 1 == count {
            b"\n"
        } else {
            b",\n"
        })?;
    }
    w.write_all(b"]}\n")?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    eprintln!(
        "  (prefilled {count} records, {} MB, in {:.2} s)",
        mb(std::fs::metadata(&path)?.len()),
        t.elapsed().as_secs_f64()
    );
    Ok(ids)
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// VmRSS and VmHWM of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of this process, all threads (10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Latency percentiles, in microseconds.
fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn lat_summary(lats: &mut [u32]) -> String {
    lats.sort_unstable();
    format!(
        "p50 {} µs, p99 {} µs, max {} µs",
        pct(lats, 0.5),
        pct(lats, 0.99),
        lats.last().copied().unwrap_or(0)
    )
}

/// How long writers keep going.
#[derive(Clone)]
enum Budget {
    For(Duration),
    Count(u64),
    Until(Arc<AtomicBool>),
}

/// One insert, as a writer saw it: when it started (µs after the run's start) and how long it
/// took (µs).
#[derive(Clone, Copy)]
struct Op {
    start: u64,
    lat: u32,
}

struct Run {
    inserts: u64,
    elapsed: Duration,
    /// CPU time of the whole process (all threads) during the run.
    cpu: Duration,
    ops: Vec<Op>,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.inserts as f64 / self.elapsed.as_secs_f64()
    }
    fn lats(&self) -> Vec<u32> {
        self.ops.iter().map(|o| o.lat).collect()
    }
}

/// Runs `writers` tokio tasks, each awaiting `store.create` in a loop, until the budget is spent.
async fn run_writers(store: &Store<Product>, writers: u64, budget: Budget, seed: u64) -> Res<Run> {
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let left = Arc::new(AtomicU64::new(match budget {
        Budget::Count(n) => n,
        _ => u64::MAX,
    }));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let budget = budget.clone();
        let left = left.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::with_capacity(4096);
            let mut n = seed + w * 10_000_000;
            loop {
                let go = match &budget {
                    Budget::For(d) => t0.elapsed() < *d,
                    Budget::Count(_) => left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                        .is_ok(),
                    Budget::Until(stop) => !stop.load(Ordering::Relaxed),
                };
                if !go {
                    break;
                }
                let start = Instant::now();
                store.create(product(n)).await?;
                ops.push(Op {
                    start: (start - t0).as_micros() as u64,
                    lat: start.elapsed().as_micros().min(u32::MAX as u128) as u32,
                });
                n += 1;
            }
            Ok::<_, BoxError>(ops)
        }));
    }
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await??);
    }
    Ok(Run {
        inserts: ops.len() as u64,
        elapsed: t0.elapsed(),
        cpu: cpu_time().saturating_sub(cpu0),
        ops,
    })
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

// ---------------------------------------------------------------------------------------------
// 1. Durable inserts/s with concurrent writers, beside the disk's fsync rate

async fn writers(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "writers [--writers 1,16,64] [--secs 2] [--fsync-secs 1] [--rounds 2]\n  \
             per round: an fsync probe, then for each writer count a fresh empty store (index\n  \
             `name`, Durability::Always) run for --secs, followed by another fsync probe; each\n  \
             store run is compared with the mean of the probes just before and just after it"
        );
        return Ok(());
    }
    let counts = args.list("writers", &[1, 16, 64])?;
    let secs = args.secs("secs", 2.0)?;
    let fsync_secs = args.secs("fsync-secs", 1.0)?;
    let rounds = args.u64("rounds", 2)?;
    args.done()?;
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

// ---------------------------------------------------------------------------------------------
// 2. Insert cost with 1,000 and 1,000,000 records already stored

async fn insert_cost(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "insert-cost [--sizes 1000,1000000] [--writers 1,64] [--n-always 500,20000]\n  \
             [--n-never 10000,50000] [--rounds 5]\n  \
             prefills one store per size; per durability mode (always, then never) opens them all\n  \
             at once, then alternates between them for --rounds rounds, each running the inserts\n  \
             given for each writer count (--n-always / --n-never pair with --writers); reports the\n  \
             median round. Auto compaction is off so that only inserts are measured."
        );
        return Ok(());
    }
    let sizes = args.list("sizes", &[1_000, 1_000_000])?;
    let writer_counts = args.list("writers", &[1, 64])?;
    let n_always = args.list("n-always", &[500, 20_000])?;
    let n_never = args.list("n-never", &[10_000, 50_000])?;
    let rounds = args.u64("rounds", 5)?.max(1);
    args.done()?;
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

// ---------------------------------------------------------------------------------------------
// 3. Open time and resident memory, in a fresh process

async fn open(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "open [--records 1000000] [--journal 10000] [--indexes 0,1] [--repeat 3] [--keep no]\n  \
             [--two-pass no]\n  \
             builds a store of --records records: a snapshot of records - journal, then --journal\n  \
             inserts through the store (Never) so that open also replays a journal; then, for\n  \
             each --indexes variant (0: none, 1: name, 2: name + price), re-executes this program\n  \
             --repeat times to open it in a fresh process (`open-child --dir D --indexes N`;\n  \
             --keep yes leaves the store in place, e.g. to profile that).\n  \
             --two-pass yes writes the snapshot's records in even-then-odd id order (a diagnostic:\n  \
             how much memory loading sorted data into imbl B-trees in that order would save)"
        );
        return Ok(());
    }
    let records = args.u64("records", 1_000_000)?;
    let journal = args.u64("journal", 10_000)?.min(records);
    let variants = args.list("indexes", &[0, 1])?;
    let keep = args.bool("keep", false)?;
    let two_pass = args.bool("two-pass", false)?;
    let repeat = args.u64("repeat", 3)?.max(1);
    args.done()?;
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

/// The fresh process of `open`: prints `key=value` pairs on stdout.
fn open_child(mut args: Args) -> Res<()> {
    let dir = args.dir();
    let indexes = args.u64("indexes", 0)?;
    args.done()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (idle, _) = rss();
    let t = Instant::now();
    let store = rt.block_on(Store::open(options_with(&dir, Durability::Always, indexes)))?;
    let secs = t.elapsed().as_secs_f64();
    let (after, hwm) = rss();
    let count = store.count();
    rt.block_on(store.close())?;
    println!("open_s={secs} rss_idle={idle} rss={after} hwm={hwm} count={count}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Get and list throughput

async fn reads(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "reads [--records 100000] [--secs 1] [--threads 1,2]\n  \
             each measurement runs --secs on each thread count"
        );
        return Ok(());
    }
    let records = args.u64("records", 100_000)?;
    let secs = args.secs("secs", 1.0)?;
    let threads = args.list("threads", &[1, 2])?;
    args.done()?;
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
                            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i + 1));
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

// ---------------------------------------------------------------------------------------------
// 5. Compaction pause under concurrent writes

async fn compaction(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "compaction [--records 1000000] [--writers 16] [--warmup 2] [--after 1]\n  \
             durable writers run throughout; after --warmup seconds a compaction is started\n  \
             and awaited; writers go on for --after seconds more"
        );
        return Ok(());
    }
    let records = args.u64("records", 1_000_000)?;
    let writers = args.u64("writers", 16)?;
    let warmup = args.secs("warmup", 2.0)?;
    let after = args.secs("after", 1.0)?;
    args.done()?;
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

// ---------------------------------------------------------------------------------------------
// 6. How a large file's fsync delays small journal fsyncs (no store involved)

fn fsync_interference(args: &mut Args, base: &Path) -> Res<()> {
    if args.help() {
        println!(
            "fsync-interference [--mb 210] [--every 0,16,4] [--rounds 2]\n  \
             one thread appends 16 journal-sized lines (4 KB) + sync_data in a loop; another\n  \
             writes --mb MB in 64 KB writes and syncs it: only at the end (--every 0), or also\n  \
             every N MB. Shows how long a journal fsync can wait behind a snapshot's fsync."
        );
        return Ok(());
    }
    let size = args.u64("mb", 210)? << 20;
    let variants = args.list("every", &[0, 16, 4])?;
    let rounds = args.u64("rounds", 2)?;
    args.done()?;
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
