//! tasks.* workloads: `hp::task_holder` beside tokio `JoinSet` and tokio-util `TaskTracker`.
//!
//! - tasks.spawn_join: `SPAWNS` trivial tasks added, then all awaited (`finish()`,
//!   `join_next` until empty, `close()` + `wait()`), current- and multi-thread: ns per
//!   task (best of `ROUNDS`) and, on the current-thread runtime (where none has run yet),
//!   heap bytes per task once all are added. Ours also as bare
//!   `hp::Task`s awaited one by one (what the holder spawns): the holder's own cost is the
//!   difference. And the holder's handle-free form, `spawn_detached` (what its docs
//!   recommend for "spawn many, wait all"), under its own variant beside the same
//!   TaskTracker figure.
//! - tasks.detached_growth: `DETACHED` trivial tasks added in batches of 10 000 (each
//!   batch runs before the next is added) and never awaited: heap growth once all have
//!   finished, and how many the holder still holds.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use machinery::helpers as hp;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::measure::{OURS, Report, best, current_thread, heap_bytes, multi_thread, ns_per};

pub const SPAWNS: usize = 100_000;
pub const DETACHED: usize = 1_000_000;
const BATCH: usize = 10_000;

pub fn run(r: &mut Report) {
    if r.wants("tasks.spawn_join") {
        // For profiling one implementation on its own (`perf stat`, callgrind):
        // MACHINERY_BENCH_TASKS=holder|joinset|tracker|bare and/or
        // MACHINERY_BENCH_RT=current|multi keep only those runs.
        let only_impl = std::env::var("MACHINERY_BENCH_TASKS").ok();
        let only_rt = std::env::var("MACHINERY_BENCH_RT").ok();
        let keep = |what: &str, rt: &str| {
            only_impl.as_deref().is_none_or(|w| w == what)
                && only_rt.as_deref().is_none_or(|r| rt.starts_with(r))
        };
        for (rt_name, multi) in [("current-thread", false), ("multi-thread", true)] {
            let v = format!("100k trivial tasks, {rt_name}");
            let vd = format!("100k trivial tasks via spawn_detached, {rt_name}");
            if keep("holder", rt_name) {
                spawn_join(r, OURS, &[&v], multi, holder);
            }
            if keep("detached", rt_name) {
                spawn_join(r, OURS, &[&vd], multi, holder_detached);
            }
            if keep("joinset", rt_name) {
                spawn_join(r, "tokio JoinSet", &[&v], multi, joinset);
            }
            if keep("tracker", rt_name) {
                spawn_join(r, "tokio-util TaskTracker", &[&v, &vd], multi, tracker);
            }
            let v = format!("100k bare hp::Task (no holder), {rt_name}");
            if keep("bare", rt_name) {
                spawn_join(r, OURS, &[&v], multi, bare_tasks);
            }
        }
    }
    if r.wants("tasks.detached_growth") {
        let v = "1M finished tasks nobody joins, current-thread";
        for imp in [OURS, "tokio JoinSet", "tokio-util TaskTracker"] {
            let (growth, held) = current_thread().block_on(detached(imp));
            let mib = growth as f64 / 1024.0 / 1024.0;
            r.add("tasks.detached_growth", imp, v, mib, "MiB heap growth");
            r.add(
                "tasks.detached_growth",
                imp,
                v,
                held as f64,
                "tasks still held",
            );
        }
    }
}

/// Best of `ROUNDS` runs of `f` on a fresh runtime, added under each of `variants`; `f`
/// returns (duration, heap bytes once all tasks were added).
fn spawn_join<F: Future<Output = (Duration, i64)>>(
    r: &mut Report,
    imp: &'static str,
    variants: &[&str],
    multi: bool,
    f: fn() -> F,
) {
    let mut peak = 0;
    let d = best(|| {
        let rt = if multi {
            multi_thread()
        } else {
            current_thread()
        };
        let (d, p) = rt.block_on(f());
        peak = p;
        d
    });
    for &variant in variants {
        r.add(
            "tasks.spawn_join",
            imp,
            variant,
            ns_per(d, SPAWNS),
            "ns/task",
        );
        let per_task = peak as f64 / SPAWNS as f64;
        r.add(
            "tasks.spawn_join",
            imp,
            variant,
            per_task,
            "B/task when all added",
        );
    }
}

async fn holder() -> (Duration, i64) {
    let ctx = hp::Ctx::beginning("bench");
    let before = heap_bytes();
    let start = Instant::now();
    let holder = hp::task_holder(&ctx);
    for i in 0..SPAWNS {
        // Not silent: the seed's default (silent measured the same).
        holder.spawn(async move {
            black_box(i);
        });
    }
    let peak = heap_bytes() - before;
    holder.finish().await;
    (start.elapsed(), peak)
}

async fn holder_detached() -> (Duration, i64) {
    let ctx = hp::Ctx::beginning("bench");
    let before = heap_bytes();
    let start = Instant::now();
    let holder = hp::task_holder(&ctx);
    for i in 0..SPAWNS {
        assert!(holder.spawn_detached(async move {
            black_box(i);
        }));
    }
    let peak = heap_bytes() - before;
    holder.finish().await;
    (start.elapsed(), peak)
}

async fn bare_tasks() -> (Duration, i64) {
    let before = heap_bytes();
    let start = Instant::now();
    let tasks: Vec<hp::Task<()>> = (0..SPAWNS)
        .map(|i| {
            hp::Task::spawn(async move {
                black_box(i);
            })
        })
        .collect();
    let peak = heap_bytes() - before;
    for t in &tasks {
        t.wait().await;
    }
    (start.elapsed(), peak)
}

async fn joinset() -> (Duration, i64) {
    let before = heap_bytes();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..SPAWNS {
        set.spawn(async move {
            black_box(i);
        });
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
    let start = Instant::now();
    let t = TaskTracker::new();
    for i in 0..SPAWNS {
        t.spawn(async move {
            black_box(i);
        });
    }
    let peak = heap_bytes() - before;
    t.close();
    t.wait().await;
    (start.elapsed(), peak)
}

/// Adds `DETACHED` tasks nobody awaits to `imp`'s holder; returns (heap growth once all
/// finished, tasks still held).
async fn detached(imp: &str) -> (i64, usize) {
    let ctx = hp::Ctx::beginning("bench");
    let holder = hp::task_holder(&ctx);
    let mut set = JoinSet::new();
    let tracker = TaskTracker::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let before = heap_bytes();
    for batch in 1..=DETACHED / BATCH {
        for i in 0..BATCH {
            let ran = ran.clone();
            let work = async move {
                black_box(i);
                ran.fetch_add(1, Relaxed);
            };
            match imp {
                OURS => drop(holder.spawn_silent(work)),
                "tokio JoinSet" => drop(set.spawn(work)),
                _ => drop(tracker.spawn(work)),
            }
        }
        // Let the batch run (a current-thread runtime runs a few dozen tasks per yield).
        while ran.load(Relaxed) < batch * BATCH {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let growth = heap_bytes() - before;
    let held = match imp {
        OURS => holder.pending(),
        "tokio JoinSet" => set.len(),
        _ => tracker.len(),
    };
    (growth, held)
}
