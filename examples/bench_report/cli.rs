//! The command line shared by `cargo run --release --example bench_report` and
//! `cargo bench` (benches/report.rs includes these same files): run every workload,
//! then print the table or the TSV lines.

use crate::measure::Report;

/// Parses the arguments, runs the wanted workloads and prints the report.
///
/// `--tsv`: one line per figure; `--only <prefix>`: only workloads whose name starts with
/// the prefix. Other arguments (such as the `--bench` that `cargo bench` passes) are
/// ignored.
pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tsv = args.iter().any(|a| a == "--tsv");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let mut report = Report::new(only);
    report.header();
    crate::ctx::run(&mut report);
    crate::chan::run(&mut report);
    crate::tasks::run(&mut report);
    crate::merge::run(&mut report);
    crate::tick::run(&mut report);
    if tsv {
        report.print_tsv();
    } else {
        report.print_table();
    }
}
