//! The process metrics Prometheus users expect (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...), read from `/proc/self` on Linux
//! at each scrape; elsewhere none are exported.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux's `USER_HZ`, the unit of `/proc/self/stat`'s times: 100 on every architecture Linux
/// supports today (it is fixed by the kernel's ABI, not by `CONFIG_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The figures of one scrape.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sample {
    /// User and system CPU time of all threads, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// The soft limit on open file descriptors.
    pub max_fds: f64,
    /// Threads.
    pub threads: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat` (after the command name, which may hold spaces and parentheses):
/// CPU seconds, threads, and the start time in ticks after boot.
pub fn parse_stat(stat: &str) -> Option<(f64, f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime 15, num_threads 20, starttime 22.
    let num = |i: usize| fields.get(i)?.parse::<f64>().ok();
    let cpu = (num(11)? + num(12)?) / TICKS_PER_SECOND;
    Some((cpu, num(17)?, num(19)?))
}

/// A `kB` line of `/proc/self/status` (`VmRSS:    1234 kB`), in bytes.
pub fn status_bytes(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024.0)
}

/// The soft "Max open files" of `/proc/self/limits`.
pub fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads this process's figures (`None` where `/proc` is missing).
pub fn sample() -> Option<Sample> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let (cpu_seconds, threads, start_ticks) = parse_stat(&read("/proc/self/stat")?)?;
    let status = read("/proc/self/status")?;
    let boot = read("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    Some(Sample {
        cpu_seconds,
        resident_bytes: status_bytes(&status, "VmRSS:").unwrap_or(0.0),
        virtual_bytes: status_bytes(&status, "VmSize:").unwrap_or(0.0),
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64,
        max_fds: read("/proc/self/limits")
            .and_then(|l| max_open_files(&l))
            .unwrap_or(0.0),
        threads,
        start_time_seconds: boot + start_ticks / TICKS_PER_SECOND,
    })
}

/// Exports [`sample`] at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let Some(s) = sample() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size",
                s.virtual_bytes,
            ),
            ("process_open_fds", "Open file descriptors", s.open_fds),
            (
                "process_max_fds",
                "Limit on open file descriptors",
                s.max_fds,
            ),
            ("process_threads", "Threads", s.threads),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 12345 1000 200";
        assert_eq!(parse_stat(stat), Some((3.0, 7.0, 12345.0)));
        let status = "Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_bytes(status, "VmRSS:"), Some(1024.0 * 1024.0));
        assert_eq!(status_bytes(status, "VmSize:"), Some(2048.0 * 1024.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_samples_sensible_figures() {
        let s = sample().expect("/proc on Linux");
        assert!(
            s.resident_bytes > 1e5 && s.open_fds >= 3.0 && s.threads >= 1.0,
            "{s:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0);
    }
}
