//! 7. Memory modes side by side.
//!
//! Open time, memory, get, insert and list cost by record count, in a fresh process per
//! measurement, with an SVG chart of memory and get latency.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use store_actor::{Durability, Memory, Query, SortKey, Store};
use uuid::Uuid;

use crate::cli;
use crate::common::{
    INDEX_NAMES, NAME, Res, Rng, file_len, mb, options_with, prefill, product, rss, tempdir,
};

/// In-memory and index mode at several record counts: open time, settled and peak RSS as a
/// ratio of NAME.json, get by random id with the working set in the cache and with every read
/// missing it, insert cost, and a list page by id and by index.
///
/// For each --records size a snapshot is prefilled (once, ids in ascending order, the `name`
/// index declared with --indexes 1), then each --modes mode opens it in a fresh process
/// (`modes-child`). Index mode runs with --cache-mb of cache. The tables go to stdout and the
/// chart to --svg.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Record counts
    #[arg(long, value_name = "N,...", default_value = "100000,1000000")]
    #[arg(value_parser = cli::count, value_delimiter = ',')]
    pub records: Vec<u64>,
    /// Modes: in-memory, index
    #[arg(long, value_name = "MODE,...", default_value = "in-memory,index")]
    #[arg(value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Index mode's cache, in MiB
    #[arg(long, value_name = "MB", value_parser = cli::count, default_value = "64")]
    pub cache_mb: u64,
    /// Secondary indexes: 0 (none), 1 (name) or 2 (name and price)
    #[arg(long, value_name = "N", value_parser = cli::count, default_value = "0")]
    pub indexes: u64,
    /// How long each get measurement runs
    #[arg(long, value_name = "SECS", value_parser = cli::secs, default_value = "1")]
    pub secs: Duration,
    /// Where to write the chart (SVG)
    #[arg(long, value_name = "FILE", default_value = "modes.svg")]
    pub svg: PathBuf,
}

/// The fresh process of `modes`: opens the store in --dir and prints `key=value` pairs.
#[derive(Debug, clap::Parser)]
pub struct ChildArgs {
    #[arg(long)]
    pub mode: String,
    #[arg(long, value_parser = cli::count, default_value = "64")]
    pub cache_mb: u64,
    #[arg(long, value_parser = cli::count, default_value = "0")]
    pub indexes: u64,
    #[arg(long, value_parser = cli::secs, default_value = "1")]
    pub secs: Duration,
}

fn memory(mode: &str, cache_mb: u64) -> Res<Memory> {
    match mode {
        "in-memory" => Ok(Memory::InMemory),
        "index" => Ok(Memory::Index {
            cache_bytes: cache_mb << 20,
        }),
        other => Err(format!("unknown mode {other:?}: in-memory or index").into()),
    }
}

/// One measurement: a mode at a record count.
struct Row {
    records: u64,
    mode: String,
    json: u64,
    kv: HashMap<String, f64>,
}

impl Row {
    fn get(&self, k: &str) -> f64 {
        self.kv.get(k).copied().unwrap_or(f64::NAN)
    }
}

pub async fn run(args: Args, base: &Path) -> Res<()> {
    let Args {
        records,
        modes,
        cache_mb,
        indexes,
        secs,
        svg,
    } = args;
    for m in &modes {
        memory(m, cache_mb)?;
    }
    println!(
        "\n== 7. memory modes (index mode's cache {cache_mb} MiB; secondary indexes: {}) ==",
        INDEX_NAMES[indexes.min(2) as usize]
    );
    let mut rows = Vec::new();
    for &n in &records {
        let dir = tempdir(base)?;
        let ids = prefill(dir.path(), n)?;
        // The child reads the ids from here rather than from the store (which, in index mode,
        // would read every record).
        let bytes: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
        std::fs::write(dir.path().join("ids.bin"), bytes)?;
        drop(ids);
        let json = file_len(&dir.path().join(format!("{NAME}.json")));
        for mode in &modes {
            let out = Command::new(std::env::current_exe()?)
                .arg("modes-child")
                .arg("--dir")
                .arg(dir.path())
                .args(["--mode", mode])
                .args(["--cache-mb", &cache_mb.to_string()])
                .args(["--indexes", &indexes.to_string()])
                .args(["--secs", &secs.as_secs_f64().to_string()])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "modes-child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let kv = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|t| t.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect();
            let row = Row {
                records: n,
                mode: mode.clone(),
                json,
                kv,
            };
            assert_eq!(row.get("count") as u64, n, "the child saw every record");
            rows.push(row);
            // The child's inserts went to the journal only: drop them for the next mode.
            std::fs::remove_file(dir.path().join(format!("{NAME}.journal")))?;
        }
    }
    println!(
        "\n| records | mode | NAME.json | open | settled RSS | peak RSS | settled / JSON | get, cache hits | get, cache misses | insert (1k, Never) | list 20 by id | list 20 by name |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} MB | {:.2} s | {} MB | {} MB | {:.1}% | {:.0}/s | {:.0}/s | {:.1} µs | {:.1} µs | {} |",
            r.records,
            r.mode,
            mb(r.json),
            r.get("open_s"),
            mb(r.get("rss") as u64),
            mb(r.get("hwm") as u64),
            100.0 * r.get("rss") / r.json as f64,
            r.get("hit_per_s"),
            r.get("miss_per_s"),
            r.get("insert_us"),
            r.get("list_id_us"),
            if r.get("list_name_us").is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1} µs", r.get("list_name_us"))
            },
        );
    }
    // Ratios of index mode to in-memory mode at each size measured in both.
    for &n in &records {
        let find = |m: &str| rows.iter().find(|r| r.records == n && r.mode == m);
        if let (Some(mem), Some(idx)) = (find("in-memory"), find("index")) {
            println!(
                "\n{n} records: index mode gets at {:.0}% (hits) and {:.0}% (misses) of in-memory's rate; settled RSS {:.1}% of NAME.json vs {:.1}%",
                100.0 * idx.get("hit_per_s") / mem.get("hit_per_s"),
                100.0 * idx.get("miss_per_s") / mem.get("hit_per_s"),
                100.0 * idx.get("rss") / idx.json as f64,
                100.0 * mem.get("rss") / mem.json as f64,
            );
        }
    }
    chart(&rows, &modes, &svg)?;
    println!("\nchart: {}", svg.display());
    Ok(())
}

/// Memory (MB, settled) and get latency (µs, cache misses for index mode) against records.
fn chart(rows: &[Row], modes: &[String], path: &Path) -> Res<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let max_n = rows.iter().map(|r| r.records).max().unwrap_or(1) as f64;
    let min_n = rows.iter().map(|r| r.records).min().unwrap_or(1) as f64;
    let colors = [RED, BLUE, GREEN];
    type Series = Vec<(f64, f64)>;
    let series = |mode: &str, f: &dyn Fn(&Row) -> f64| -> Series {
        rows.iter()
            .filter(|r| r.mode == mode)
            .map(|r| (r.records as f64, f(r)))
            .collect()
    };
    type Panel<'a, 'b> = (
        &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
        &'static str,
        &'a dyn Fn(&Row) -> f64,
    );
    let panels: [Panel<'_, '_>; 2] = [
        (&left, "settled RSS (MB)", &|r: &Row| r.get("rss") / 1e6),
        (
            &right,
            "get by random id, cache misses (µs)",
            &|r: &Row| 1e6 / r.get("miss_per_s"),
        ),
    ];
    for (area, title, f) in panels {
        let all: Vec<f64> = rows.iter().map(f).filter(|v| v.is_finite()).collect();
        let top = all.iter().cloned().fold(1.0, f64::max) * 1.2;
        let bottom = all.iter().cloned().fold(top, f64::min).max(0.01) / 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((min_n..max_n).log_scale(), (bottom..top).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("records")
            .x_label_formatter(&|x| format!("{:.0e}", x))
            .draw()?;
        for (i, mode) in modes.iter().enumerate() {
            let color = colors[i % colors.len()];
            let points = series(mode, f);
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(mode.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The fresh process of `modes`.
pub fn child(args: ChildArgs, dir: &Path) -> Res<()> {
    let ChildArgs {
        mode,
        cache_mb,
        indexes,
        secs,
    } = args;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let opts = || -> Res<_> {
        Ok(options_with(dir, Durability::Never, indexes).memory(memory(&mode, cache_mb)?))
    };
    let t = Instant::now();
    let store = rt.block_on(Store::open(opts()?))?;
    let open_s = t.elapsed().as_secs_f64();
    let count = store.count();
    // Settled: after the open's transient buffers are returned.
    std::thread::sleep(Duration::from_millis(300));
    let (rss_settled, hwm) = rss();
    let ids: Vec<Uuid> = std::fs::read(dir.join("ids.bin"))?
        .chunks_exact(16)
        .map(|b| Uuid::from_slice(b).expect("16 bytes"))
        .collect();
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let rate = |ids: &[Uuid], rng: &mut Rng| {
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < secs {
            for _ in 0..64 {
                black_box(store.get(ids[rng.below(ids.len())]).unwrap());
            }
            n += 64;
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    // Hits: a working set of 1,000 records, read once to load it into the cache.
    let hot: Vec<Uuid> = ids
        .iter()
        .step_by((ids.len() / 1000).max(1))
        .copied()
        .collect();
    for id in &hot {
        black_box(store.get(*id)?);
    }
    let hit = rate(&hot, &mut rng);
    // Misses: all records at random; with a cache much smaller than the data, nearly every
    // read goes to the file (in the OS page cache: warm).
    let miss = rate(&ids, &mut rng);
    let list = |q: &dyn Fn(Option<String>) -> Query<_>| {
        let t0 = Instant::now();
        let mut cursor = None;
        let mut n = 0u64;
        while n < 2_000 {
            let page = store.list(&q(cursor.take())).unwrap();
            cursor = page.next_cursor;
            n += 1;
        }
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let list_id = list(&|c| Query::new().limit(20).cursor(c));
    let list_name = (indexes > 0).then(|| {
        list(&|c| {
            Query::new()
                .limit(20)
                .sort(SortKey::Index("name".into()), false)
                .cursor(c)
        })
    });
    // Insert cost: 1,000 creates (Never: the store's cost, not the disk's), one at a time.
    let t0 = Instant::now();
    rt.block_on(async {
        for i in 0..1_000u64 {
            store.create(product(10_000_000 + i)).await?;
        }
        Ok::<_, store_actor::StoreError>(())
    })?;
    let insert_us = t0.elapsed().as_secs_f64() * 1e6 / 1_000.0;
    rt.block_on(store.close())?;
    print!(
        "open_s={open_s} rss={rss_settled} hwm={hwm} count={count} hit_per_s={hit} miss_per_s={miss} insert_us={insert_us} list_id_us={list_id}"
    );
    if let Some(v) = list_name {
        print!(" list_name_us={v}");
    }
    println!();
    Ok(())
}
