//! Measuring helpers: timing, heap bytes from a counting allocator, RSS, thread CPU time,
//! and the report that collects figures.

use std::alloc::System;
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes currently allocated on the heap (allocated minus freed).
pub fn heap_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 + s.bytes_reallocated as i64 - s.bytes_deallocated as i64
}

/// Resident set size in KiB, from /proc/self/status (0 where unavailable).
pub fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time this thread has used, from /proc/thread-self/schedstat (ns resolution).
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Runs `f` once and returns how long it took.
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// How many times the short workloads run; the report keeps the fastest run.
pub const ROUNDS: usize = 5;

/// The fastest of `ROUNDS` runs of `f`, which returns its own measured duration (so it
/// can leave set-up and tear-down out of the figure).
pub fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap_or_default()
}

/// The 1-minute load average from /proc/loadavg (the machine is shared).
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Nanoseconds per item.
pub fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// A current-thread runtime with timers.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A multi-thread runtime with 2 workers (the machine has 2 cores).
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One figure.
pub struct Figure {
    pub workload: &'static str,
    pub imp: &'static str,
    pub variant: String,
    pub value: f64,
    pub unit: &'static str,
}

/// The figures collected so far.
pub struct Report {
    only: Option<String>,
    figures: Vec<Figure>,
    notes: Vec<String>,
    started: Instant,
    load_before: String,
}

/// Our crate's name in the report.
pub const OURS: &str = "machinery";

impl Report {
    pub fn new(only: Option<String>) -> Self {
        Report {
            only,
            figures: Vec::new(),
            notes: Vec::new(),
            started: Instant::now(),
            load_before: load_avg(),
        }
    }

    /// Shows on stderr what the run is about to do.
    pub fn header(&self) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        eprintln!(
            "bench_report: {cores} cores, load average {} at start",
            self.load_before
        );
    }

    /// A remark printed under the table (and as a `#` line in TSV).
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  note: {text}");
        self.notes.push(text);
    }

    fn footer(&self) -> String {
        format!(
            "best of {ROUNDS} runs, except ctx.churn, tasks.detached_growth and \
             tick.interval (one run each); {} cores, load average {} at start and {} at end, \
             {:.0} s in all",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_before,
            load_avg(),
            self.started.elapsed().as_secs_f64()
        )
    }

    /// Whether `workload` was asked for.
    pub fn wants(&self, workload: &str) -> bool {
        self.only.as_deref().is_none_or(|p| workload.starts_with(p))
    }

    /// Records one figure and shows progress on stderr.
    pub fn add(
        &mut self,
        workload: &'static str,
        imp: &'static str,
        variant: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        let variant = variant.into();
        eprintln!("  {workload:<20} {imp:<18} {variant:<28} {value:>12.1} {unit}");
        self.figures.push(Figure {
            workload,
            imp,
            variant,
            value,
            unit,
        });
    }

    pub fn print_tsv(&self) {
        println!("# {}", self.footer());
        for n in &self.notes {
            println!("# {n}");
        }
        for f in &self.figures {
            println!(
                "{}\t{}\t{}\t{:.2}\t{}",
                f.workload, f.imp, f.variant, f.value, f.unit
            );
        }
    }

    /// One line per (workload, variant, unit, peer): ours, the peer's, ours/peer.
    pub fn print_table(&self) {
        println!(
            "| workload | variant | unit | {OURS} | peer | peer value | ours/peer |\n|---|---|---|---:|---|---:|---:|"
        );
        let mut seen = Vec::new();
        for f in &self.figures {
            let key = (f.workload, f.variant.as_str(), f.unit);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let same: Vec<&Figure> = self
                .figures
                .iter()
                .filter(|g| (g.workload, g.variant.as_str(), g.unit) == key)
                .collect();
            let ours = same.iter().find(|g| g.imp == OURS).map(|g| g.value);
            let peers: Vec<&&Figure> = same.iter().filter(|g| g.imp != OURS).collect();
            let ours_s = ours.map_or("—".to_owned(), fmt_num);
            if peers.is_empty() {
                println!(
                    "| {} | {} | {} | {} | — | — | — |",
                    key.0, key.1, key.2, ours_s
                );
            }
            for p in peers {
                let ratio = match ours {
                    Some(o) if p.value != 0.0 => format!("{:.2}", o / p.value),
                    _ => "—".to_owned(),
                };
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    key.0,
                    key.1,
                    key.2,
                    ours_s,
                    p.imp,
                    fmt_num(p.value),
                    ratio
                );
            }
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
        println!("- {}", self.footer());
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
