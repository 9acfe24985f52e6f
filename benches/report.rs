//! `cargo bench -p machinery-benches` (or `cargo bench -p machinery-benches -- --only
//! chan --tsv`): the same workloads and report as `cargo run --release -p
//! machinery-benches --bin bench_report`. The workload code lives once, in
//! benches/bench_report/, and is included here.

#[path = "bench_report/chan.rs"]
mod chan;
#[path = "bench_report/cli.rs"]
mod cli;
#[path = "bench_report/ctx.rs"]
mod ctx;
#[path = "bench_report/measure.rs"]
mod measure;
#[path = "bench_report/merge.rs"]
mod merge;
#[path = "bench_report/tasks.rs"]
mod tasks;
#[path = "bench_report/tick.rs"]
mod tick;

fn main() {
    cli::main();
}
