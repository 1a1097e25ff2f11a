//! What the benchmarks share: the data set and its store, prefilled stores, and measurements
//! (writer runs, latency percentiles, CPU time, resident memory).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use store_actor::{Durability, FORMAT, IndexKey, Record, Store, StoreOptions};
use time::OffsetDateTime;
use uuid::Uuid;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = std::result::Result<T, BoxError>;

/// The record type: a small product.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Product {
    pub name: String,
    pub price: String,
}

/// Product `n`. Names are a permutation of 0..1,000,000 unrelated to creation order, as real
/// names would be (so the `name` index is not filled in sorted order).
pub fn product(n: u64) -> Product {
    Product {
        name: format!("product {:06}", (n % 1_000_000) * 611_953 % 1_000_000),
        price: format!("{}.{:02}", 1 + n % 997, n % 100),
    }
}

pub const NAME: &str = "products";

/// Options for the benchmark store with the `name` index.
pub fn options(dir: &Path, durability: Durability) -> StoreOptions<Product> {
    options_with(dir, durability, 1)
}

/// Options with the first `indexes` of: `name` (unique), `price` (about 100,000 values).
pub fn options_with(dir: &Path, durability: Durability, indexes: u64) -> StoreOptions<Product> {
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

pub const INDEX_NAMES: [&str; 3] = ["none", "name", "name + price"];

/// Turns automatic compaction off, so that an insert benchmark measures inserts only.
pub fn no_auto_compaction(o: StoreOptions<Product>) -> StoreOptions<Product> {
    o.compaction(u64::MAX, f64::INFINITY)
}

/// A fresh directory under `base`, removed when dropped.
pub fn tempdir(base: &Path) -> Res<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("store-actor-bench-")
        .tempdir_in(base)?)
}

/// A small, fast, deterministic pseudo-random generator (xorshift64*).
pub struct Rng(u64);
impl Rng {
    /// A generator started from `seed`, which must not be 0.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Writes `DIR/NAME.json` holding `count` records (increasing v7 ids, creation times a
/// microsecond apart), as the store's own compaction would. Returns the ids, in id order.
pub fn prefill(dir: &Path, count: u64) -> Res<Vec<Uuid>> {
    prefill_ordered(dir, count, false)
}

/// [`prefill`], optionally writing the records in "two-pass" order (even positions of the id
/// order, then odd ones) instead of id order. The store inserts snapshot records in file order,
/// so this shows, without changing the library, what loading in that order would save.
pub fn prefill_ordered(dir: &Path, count: u64, two_pass: bool) -> Res<Vec<Uuid>> {
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
    let mut crc = crc32fast::Hasher::new();
    let mut line = Vec::with_capacity(512);
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
        line.clear();
        serde_json::to_writer(&mut line, &rec)?;
        line.extend_from_slice(if written as u64 + 1 == count {
            b"\n"
        } else {
            b",\n"
        });
        crc.update(&line);
        w.write_all(&line)?;
    }
    w.write_all(store_actor::snapshot_trailer(crc.finalize()).as_bytes())?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    eprintln!(
        "  (prefilled {count} records, {} MB, in {:.2} s)",
        mb(std::fs::metadata(&path)?.len()),
        t.elapsed().as_secs_f64()
    );
    Ok(ids)
}

/// Bytes as megabytes, one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// VmRSS and VmHWM of this process, in bytes.
pub fn rss() -> (u64, u64) {
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
pub fn cpu_time() -> Duration {
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

/// The `p` quantile (0 to 1) of sorted latencies, in microseconds.
pub fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Sorts `lats` and sums them up as p50, p99 and max.
pub fn lat_summary(lats: &mut [u32]) -> String {
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
pub enum Budget {
    /// Each writer goes on for this long.
    For(Duration),
    /// This many inserts, shared among the writers.
    Count(u64),
    /// Until the flag is set.
    Until(Arc<AtomicBool>),
}

/// One insert, as a writer saw it: when it started (µs after the run's start) and how long it
/// took (µs).
#[derive(Clone, Copy)]
pub struct Op {
    pub start: u64,
    pub lat: u32,
}

/// What [`run_writers`] measured.
pub struct Run {
    pub inserts: u64,
    pub elapsed: Duration,
    /// CPU time of the whole process (all threads) during the run.
    pub cpu: Duration,
    pub ops: Vec<Op>,
}

impl Run {
    pub fn per_sec(&self) -> f64 {
        self.inserts as f64 / self.elapsed.as_secs_f64()
    }
    pub fn lats(&self) -> Vec<u32> {
        self.ops.iter().map(|o| o.lat).collect()
    }
}

/// Runs `writers` tokio tasks, each awaiting `store.create` in a loop, until the budget is spent.
pub async fn run_writers(
    store: &Store<Product>,
    writers: u64,
    budget: Budget,
    seed: u64,
) -> Res<Run> {
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
