//! One command, one report: every workload for machinery and for its peers, side by side.
//!
//! `cargo run --release --example bench_report` prints a table; `-- --tsv` prints one line
//! per figure: `workload<TAB>impl<TAB>variant<TAB>value<TAB>unit`. `-- --only ctx` runs the
//! workloads whose name starts with `ctx` (any prefix works).
//!
//! These are measurements, not tests: nothing here asserts a speed.

mod chan;
mod ctx;
mod measure;
mod merge;
mod tasks;
mod tick;

use measure::Report;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tsv = args.iter().any(|a| a == "--tsv");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let mut report = Report::new(only);
    ctx::run(&mut report);
    chan::run(&mut report);
    tasks::run(&mut report);
    merge::run(&mut report);
    tick::run(&mut report);
    if tsv {
        report.print_tsv();
    } else {
        report.print_table();
    }
}
