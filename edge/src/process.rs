//! The process's own series, under the names Prometheus client libraries use for them:
//! CPU time, resident memory, open file descriptors, threads and start time. Read from
//! `/proc/self` at each scrape (Linux); on other systems they stay at zero.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge};

/// Linux reports CPU times and start times in clock ticks of this rate (`USER_HZ`, 100
/// on every architecture Parlor runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A collector of the process's series; register one per registry that a `/metrics`
/// serves.
#[derive(Debug)]
pub struct ProcessMetrics {
    cpu: Counter,
    resident: IntGauge,
    open_fds: IntGauge,
    threads: IntGauge,
    start: Gauge,
    /// CPU seconds as of the last scrape: the counter grows by the difference.
    last_cpu: Mutex<f64>,
}

impl ProcessMetrics {
    pub fn new() -> Result<ProcessMetrics, prometheus::Error> {
        Ok(ProcessMetrics {
            cpu: Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds",
            )?,
            resident: IntGauge::new(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            )?,
            open_fds: IntGauge::new("process_open_fds", "Number of open file descriptors")?,
            threads: IntGauge::new("process_threads", "Number of OS threads in the process")?,
            start: Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
            )?,
            last_cpu: Mutex::new(0.0),
        })
    }

    /// Registers a new collector in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(ProcessMetrics::new()?))
    }

    fn refresh(&self) {
        if let Some(s) = read_stat() {
            let cpu = (s.utime + s.stime) as f64 / TICKS_PER_SECOND;
            let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
            if cpu > *last {
                self.cpu.inc_by(cpu - *last);
                *last = cpu;
            }
            self.threads.set(s.threads);
            if let Some(boot) = boot_time() {
                self.start
                    .set(boot as f64 + s.start_ticks as f64 / TICKS_PER_SECOND);
            }
        }
        if let Some(kb) = status_kb("VmRSS:") {
            self.resident.set(kb * 1024);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.cpu.desc();
        d.extend(self.resident.desc());
        d.extend(self.open_fds.desc());
        d.extend(self.threads.desc());
        d.extend(self.start.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut out = self.cpu.collect();
        out.extend(self.resident.collect());
        out.extend(self.open_fds.collect());
        out.extend(self.threads.collect());
        out.extend(self.start.collect());
        out
    }
}

/// What `/proc/self/stat` says, of what is needed here.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: i64,
    start_ticks: u64,
}

fn read_stat() -> Option<Stat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Parses `/proc/<pid>/stat`: the fields after the command name, which is in parentheses
/// and may itself hold spaces and parentheses.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is f[n - 3].
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)? as i64,
        start_ticks: field(22)?,
    })
}

/// The boot time, Unix seconds (`btime` in `/proc/stat`).
fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/self/status`.
fn status_kb(key: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let line = "4242 (parlor (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 75 0 0 20 0 9 0 123456 100000000 5000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 75,
                threads: 9,
                start_ticks: 123456,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_time_memory_and_descriptors() {
        let m = ProcessMetrics::new().unwrap_or_else(|e| panic!("{e}"));
        // Spend a little CPU so the counter moves.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let families = m.collect();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.get_name() == name)
                .and_then(|f| f.get_metric().first())
                .map(|m| {
                    if name.ends_with("_total") {
                        m.get_counter().get_value()
                    } else {
                        m.get_gauge().get_value()
                    }
                })
                .unwrap_or(-1.0)
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_start_time_seconds") > 1_600_000_000.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
