//! The command line shared by `cargo run --release -p machinery-benches --bin bench_report` and
//! `cargo bench -p machinery-benches` (benches/report.rs includes these same files): run the workloads, then
//! print the table or the TSV lines.
//!
//! # Method (the default)
//! Each workload runs in a fresh process (this binary again, `--one <workload>`), so no
//! workload inherits another's heap, threads or caches: 5 timed child runs with the
//! counting allocator off (each runs the workload once to warm up, so that ours and the
//! peer both find a grown heap, then once measured; the report keeps the median of the
//! 5), and 1 counting child run for the memory figures. The figures of
//! ours and of every peer are taken the same way, in the same child runs.
//!
//! `--in-process` runs everything in this one process instead (best of 5 inside it, the
//! allocator counting throughout): quicker, noisier, the method of the earlier reports.

use std::collections::BTreeMap;
use std::process::Command;

use crate::measure::{Keep, Report, set_child, set_counting};

/// Timed child runs per workload; the report keeps their median.
const TIMED_RUNS: usize = 5;

/// What `--help` prints.
const USAGE: &str = "\
bench_report: every workload for machinery and for its peers, side by side

usage: bench_report [--only <prefix>] [--tsv] [--in-process]
       bench_report --list [--only <prefix>]
       bench_report --table-from <file.tsv>
       bench_report --one <workload> [--keep times|memory]

  --only <prefix>      only the workloads whose name starts with <prefix>
  --tsv                one line per figure: workload, impl, variant, value, unit
  --in-process         run everything in this process (best of 5; quicker, noisier)
  --list               name the workloads, run nothing
  --table-from <file>  print the markdown table of a saved --tsv output, run nothing
  --one <workload>     child mode: run one workload, print its TSV (used by the default
                       method: each workload in fresh processes, median of 5 timed runs,
                       bytes from one counting run)
";

/// Parses the arguments, runs the wanted workloads and prints the report.
///
/// `--tsv`: one line per figure; `--only <prefix>`: only workloads whose name starts with
/// the prefix; `--in-process`: no child processes; `--one <workload> --keep
/// times|memory`: the child mode (TSV of that one workload); `--table-from <file>`: the
/// table of a saved TSV; `--help`: the usage. Other arguments (such as the `--bench` that
/// `cargo bench` passes) are ignored.
pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    if flag("--help") || flag("-h") {
        print!("{USAGE}");
        return;
    }
    if let Some(one) = value("--one") {
        child(&one, value("--keep").as_deref());
        return;
    }
    if let Some(path) = value("--table-from") {
        table_from(&path);
        return;
    }
    let only = value("--only");
    let mut report = Report::new(only.clone());
    report.header();
    if flag("--list") {
        for name in workloads(only) {
            println!("{name}");
        }
        return;
    }
    if flag("--in-process") {
        run_all(&mut report);
    } else {
        from_children(&mut report, only);
    }
    if flag("--tsv") {
        report.print_tsv();
    } else {
        report.print_table();
    }
}

/// Runs every workload module; each runs the workloads its report wants.
fn run_all(report: &mut Report) {
    crate::ctx::run(report);
    crate::chan::run(report);
    crate::tasks::run(report);
    crate::merge::run(report);
    crate::tick::run(report);
}

/// The workload names, in report order (asked of the modules without running anything).
fn workloads(only: Option<String>) -> Vec<String> {
    let mut report = Report::new(only);
    report.listing = Some(Vec::new());
    run_all(&mut report);
    report.listing.unwrap_or_default()
}

/// The child mode: one workload, figures of one kind, as TSV on stdout.
fn child(workload: &str, keep: Option<&str>) {
    set_child();
    let keep = match keep {
        Some("memory") => Keep::Memory,
        _ => Keep::Times,
    };
    set_counting(keep == Keep::Memory);
    if keep == Keep::Times {
        // A warm-up pass whose figures are dropped: otherwise whichever implementation
        // runs first in the process pays for growing the fresh heap and the other one
        // reuses it.
        let mut warm = Report::new(Some(workload.to_owned()));
        warm.keep = Keep::Nothing;
        run_all(&mut warm);
    }
    let mut report = Report::new(Some(workload.to_owned()));
    report.keep = keep;
    run_all(&mut report);
    report.print_tsv();
}

/// One figure's key: (workload, impl, variant, unit).
type Key = (String, String, String, String);

/// Runs each workload in child processes and records the median of its timed runs and
/// the figures of its counting run.
fn from_children(report: &mut Report, only: Option<String>) {
    let exe = std::env::current_exe().expect("this binary's path");
    let names = workloads(only);
    report.method = format!(
        "each workload in a fresh process: median of {TIMED_RUNS} timed runs with the \
         counting allocator off, bytes from a separate counting run"
    );
    for name in names {
        let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        let mut order: Vec<Key> = Vec::new();
        let runs = (0..TIMED_RUNS)
            .map(|_| "times")
            .chain(std::iter::once("memory"));
        for keep in runs {
            let out = Command::new(&exe)
                .args(["--one", &name, "--keep", keep])
                .stderr(std::process::Stdio::null())
                .output()
                .expect("run a child workload");
            if !out.status.success() {
                report.note(format!(
                    "{name}: a child run ({keep}) failed: {}",
                    out.status
                ));
                continue;
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((key, value)) = parse_tsv(line) else {
                    continue;
                };
                if !samples.contains_key(&key) {
                    order.push(key.clone());
                }
                samples.entry(key).or_default().push(value);
            }
        }
        for key in order {
            let value = median(&mut samples[&key].clone());
            report.add_owned(key, value);
        }
    }
}

/// Prints the table of a saved `--tsv` output (its `#` lines become the notes under it).
fn table_from(path: &str) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("bench_report: cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let mut report = Report::new(None);
    report.method = String::new();
    for line in text.lines() {
        if let Some(note) = line.strip_prefix("# ") {
            report.note(note);
        } else if let Some((key, value)) = parse_tsv(line) {
            report.add_owned(key, value);
        }
    }
    report.print_table();
}

/// A figure line of the child's TSV (`#` lines are notes and footers).
fn parse_tsv(line: &str) -> Option<(Key, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let cols: Vec<&str> = line.split('\t').collect();
    let [w, i, v, value, u] = cols.as_slice() else {
        return None;
    };
    let key = (w.to_string(), i.to_string(), v.to_string(), u.to_string());
    Some((key, value.parse().ok()?))
}

/// The median (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
