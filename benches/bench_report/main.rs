//! One command, one report: every workload for machinery and for its peers, side by side.
//!
//! `cargo run --release -p machinery-benches --bin bench_report` prints a table; `-- --tsv` prints one line
//! per figure: `workload<TAB>impl<TAB>variant<TAB>value<TAB>unit`. `-- --only ctx` runs the
//! workloads whose name starts with `ctx` (any prefix works).
//!
//! `cargo bench -p machinery-benches` runs the very same workloads: benches/report.rs includes these files with
//! `#[path]`, so each workload is written once, here.
//!
//! These are measurements, not tests: nothing here asserts a speed.

mod chan;
mod cli;
mod ctx;
mod measure;
mod merge;
mod tasks;
mod tick;

fn main() {
    cli::main();
}
