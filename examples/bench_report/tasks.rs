//! tasks.* workloads: `hp::task_holder` beside tokio `JoinSet` and tokio-util `TaskTracker`.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::chan::on_runtime;
use crate::measure::{Report, heap_bytes, ns_per};

pub const SPAWNS: usize = 100_000;
pub const DETACHED: usize = 1_000_000;

pub fn run(r: &mut Report) {
    if r.wants("tasks.spawn_join") {
        for (rt_name, multi) in [("current-thread", false), ("multi-thread", true)] {
            let variant = format!("100k trivial tasks, {rt_name}");
            ours::spawn_join(r, &variant, multi);
            let (d, peak) = on_runtime_peak(multi, joinset);
            r.add(
                "tasks.spawn_join",
                "tokio JoinSet",
                variant.clone(),
                ns_per(d, SPAWNS),
                "ns/task",
            );
            r.add(
                "tasks.spawn_join",
                "tokio JoinSet",
                variant.clone(),
                peak,
                "peak B/task",
            );
            let (d, peak) = on_runtime_peak(multi, tracker);
            r.add(
                "tasks.spawn_join",
                "tokio-util TaskTracker",
                variant.clone(),
                ns_per(d, SPAWNS),
                "ns/task",
            );
            r.add(
                "tasks.spawn_join",
                "tokio-util TaskTracker",
                variant,
                peak,
                "peak B/task",
            );
        }
    }
    if r.wants("tasks.detached_growth") {
        let variant = "1M finished tasks nobody joins";
        ours::detached_growth(r, variant);
        let growth = on_runtime(false, async {
            let before = heap_bytes();
            let mut set = JoinSet::new();
            for _ in 0..DETACHED {
                set.spawn(async {});
                if set.len() % 1024 == 0 {
                    tokio::task::yield_now().await; // let them finish; nobody joins them
                }
            }
            tokio::task::yield_now().await;
            let growth = heap_bytes() - before;
            drop(set);
            Duration::from_nanos(growth.max(0) as u64)
        });
        r.add(
            "tasks.detached_growth",
            "tokio JoinSet",
            variant,
            growth.as_nanos() as f64 / 1024.0 / 1024.0,
            "MiB heap growth",
        );
    }
}

/// Runs `f` on a fresh runtime; returns its duration and peak heap bytes per task.
pub fn on_runtime_peak<F: Future<Output = (Duration, i64)>>(
    multi: bool,
    f: impl FnOnce() -> F,
) -> (Duration, f64) {
    let rt = if multi {
        crate::measure::multi_thread()
    } else {
        crate::measure::current_thread()
    };
    let (d, peak) = rt.block_on(f());
    (d, peak as f64 / SPAWNS as f64)
}

async fn joinset() -> (Duration, i64) {
    let before = heap_bytes();
    let start = std::time::Instant::now();
    let mut set = JoinSet::new();
    for i in 0..SPAWNS {
        set.spawn(async move { i });
    }
    let peak = heap_bytes() - before;
    let mut n = 0;
    while set.join_next().await.is_some() {
        n += 1;
    }
    assert_eq!(n, SPAWNS);
    (start.elapsed(), peak)
}

async fn tracker() -> (Duration, i64) {
    let before = heap_bytes();
    let start = std::time::Instant::now();
    let t = TaskTracker::new();
    for i in 0..SPAWNS {
        t.spawn(async move { i });
    }
    let peak = heap_bytes() - before;
    t.close();
    t.wait().await;
    (start.elapsed(), peak)
}

/// Our side of the tasks.* workloads.
mod ours {
    use crate::measure::Report;

    pub fn spawn_join(_r: &mut Report, _variant: &str, _multi: bool) {}
    pub fn detached_growth(_r: &mut Report, _variant: &str) {}
}
