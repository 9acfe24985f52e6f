//! Measuring helpers: timing, heap bytes from a counting allocator, RSS, thread CPU time,
//! and the report that collects figures.
//!
//! The counting allocator counts only while switched on ([`set_counting`]): the timed
//! child runs leave it off, so neither we nor the peers pay for counting in a timed
//! figure, and the byte figures come from separate counting runs (see cli.rs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The system allocator, counting net heap bytes while [`COUNTING`] is on.
struct Counting;

/// Whether allocations are counted. Relaxed everywhere: a flag set once before a run, and
/// a counter read only after the measured work is done on the reading thread or joined.
static COUNTING: AtomicBool = AtomicBool::new(true);
static NET_BYTES: AtomicI64 = AtomicI64::new(0);

// The one `unsafe` of the benchmarks: `GlobalAlloc` is an unsafe trait. Every method
// forwards to `System` unchanged; the counting is plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            NET_BYTES.fetch_add(layout.size() as i64, Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract; we pass it on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            NET_BYTES.fetch_sub(layout.size() as i64, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            NET_BYTES.fetch_add(layout.size() as i64, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            NET_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Switches the counting allocator on or off (on by default: a plain in-process run
/// counts, as before).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Relaxed);
}

/// Bytes currently allocated on the heap (allocated minus freed) while counting was on;
/// with counting off, a constant, so differences read 0.
pub fn heap_bytes() -> i64 {
    NET_BYTES.load(Relaxed)
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

/// How many times the short workloads run in one in-process report; the report keeps
/// the fastest run. In a child run (one workload per process) each runs once and the
/// parent takes the median over processes.
pub const ROUNDS: usize = 5;

/// Whether this process is a child run of one workload (`--one`).
static CHILD: AtomicBool = AtomicBool::new(false);

/// Marks this process as a child run: [`best`] runs its workload once.
pub fn set_child() {
    CHILD.store(true, Relaxed);
}

/// The fastest of `ROUNDS` runs of `f` (one run in a child process), which returns its
/// own measured duration (so it can leave set-up and tear-down out of the figure).
pub fn best(mut f: impl FnMut() -> Duration) -> Duration {
    let rounds = if CHILD.load(Relaxed) { 1 } else { ROUNDS };
    (0..rounds).map(|_| f()).min().unwrap_or_default()
}

/// Whether a unit is a memory figure (taken from counting runs) rather than a time.
pub fn is_memory_unit(unit: &str) -> bool {
    let head = unit.split(['/', ' ']).next().unwrap_or(unit);
    matches!(head, "B" | "KiB" | "MiB")
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
    pub workload: String,
    pub imp: String,
    pub variant: String,
    pub value: f64,
    pub unit: String,
}

/// The figures collected so far.
pub struct Report {
    only: Option<String>,
    /// Which figures to keep: all, only times (timed child run) or only memory (counting
    /// child run).
    pub keep: Keep,
    /// In `--list` mode: the workload names asked for (nothing runs).
    pub listing: Option<Vec<String>>,
    /// How the figures were taken, for the footer (empty: no footer).
    pub method: String,
    figures: Vec<Figure>,
    notes: Vec<String>,
    started: Instant,
    load_before: String,
}

/// Which figures a run keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    /// Every figure (an in-process report).
    All,
    /// Time figures only (a timed child run, counting allocator off).
    Times,
    /// Memory figures only (a counting child run).
    Memory,
    /// None (a warm-up pass).
    Nothing,
}

/// Our crate's name in the report.
pub const OURS: &str = "machinery";

impl Report {
    pub fn new(only: Option<String>) -> Self {
        Report {
            only,
            keep: Keep::All,
            listing: None,
            method: format!(
                "in one process, best of {ROUNDS} runs, except ctx.churn, \
                 tasks.detached_growth and tick.interval (one run each)"
            ),
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
            "{}; {} cores, load average {} at start and {} at end, {:.0} s in all",
            self.method,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_before,
            load_avg(),
            self.started.elapsed().as_secs_f64()
        )
    }

    /// Whether `workload` was asked for.
    pub fn wants(&mut self, workload: &str) -> bool {
        let wanted = self.only.as_deref().is_none_or(|p| workload.starts_with(p));
        if let Some(names) = &mut self.listing {
            if wanted && !names.iter().any(|n| n == workload) {
                names.push(workload.to_owned());
            }
            return false;
        }
        wanted
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
        let memory = is_memory_unit(unit);
        let kept = match self.keep {
            Keep::All => true,
            Keep::Times => !memory,
            Keep::Memory => memory,
            Keep::Nothing => false,
        };
        if !kept {
            return;
        }
        self.add_owned((workload.into(), imp.into(), variant, unit.into()), value);
    }

    /// Records one figure given as owned (workload, impl, variant, unit), as a child
    /// run's TSV gives it.
    pub fn add_owned(&mut self, key: (String, String, String, String), value: f64) {
        let (workload, imp, variant, unit) = key;
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
            let key = (f.workload.as_str(), f.variant.as_str(), f.unit.as_str());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let same: Vec<&Figure> = self
                .figures
                .iter()
                .filter(|g| (g.workload.as_str(), g.variant.as_str(), g.unit.as_str()) == key)
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
        // A table read back from a saved TSV has no run of its own to describe.
        if !self.method.is_empty() {
            println!("- {}", self.footer());
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
