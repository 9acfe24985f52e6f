//! `cargo bench` (or `cargo bench --bench report -- --only chan --tsv`): the same
//! workloads and report as `cargo run --release --example bench_report`. The workload
//! code lives once, in examples/bench_report/, and is included here.

#[path = "../examples/bench_report/chan.rs"]
mod chan;
#[path = "../examples/bench_report/cli.rs"]
mod cli;
#[path = "../examples/bench_report/ctx.rs"]
mod ctx;
#[path = "../examples/bench_report/measure.rs"]
mod measure;
#[path = "../examples/bench_report/merge.rs"]
mod merge;
#[path = "../examples/bench_report/tasks.rs"]
mod tasks;
#[path = "../examples/bench_report/tick.rs"]
mod tick;

fn main() {
    cli::main();
}
