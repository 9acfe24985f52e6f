//! Peak memory of a burst of short tasks given to a task holder (issue 22, item 7), beside
//! tokio-util's `TaskTracker` on the same workload.
//!
//! `cargo run --release -p machinery-benches --bin holder_burst -- ours|detached|tracker
//! [tasks]` (`ours`: `spawn_silent`, a `Task` handle per task; `detached`:
//! `spawn_detached`): on a multi-thread
//! runtime with 2 workers, a spawned task adds `tasks` (default 1 000 000) trivial tasks,
//! yielding every 1 024 spawns, then waits for all (`finish()`, or `close()` + `wait()`).
//! Prints the process's peak resident set (VmHWM, KiB), the largest backlog seen at a
//! yield (spawned but not yet run), and how many had run when the spawn loop ended.
//! Run each in a fresh process: VmHWM never goes down.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use machinery::helpers as hp;
use tokio_util::task::TaskTracker;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

async fn burst(imp: String, n: usize) -> (usize, usize) {
    let ran = Arc::new(AtomicUsize::new(0));
    let ctx = hp::Ctx::beginning("burst");
    let holder = hp::task_holder(&ctx);
    let tracker = TaskTracker::new();
    let mut backlog = 0;
    for i in 0..n {
        let r = ran.clone();
        let work = async move {
            black_box(i);
            r.fetch_add(1, Relaxed);
        };
        if imp == "ours" {
            drop(holder.spawn_silent(work));
        } else if imp == "detached" {
            assert!(holder.spawn_detached(work));
        } else {
            drop(tracker.spawn(work));
        }
        if i % 1024 == 1023 {
            backlog = backlog.max(i + 1 - ran.load(Relaxed));
            tokio::task::yield_now().await;
        }
    }
    let ran_at_end = ran.load(Relaxed);
    if imp != "tracker" {
        holder.finish().await;
    } else {
        tracker.close();
        tracker.wait().await;
    }
    assert_eq!(ran.load(Relaxed), n);
    (backlog, ran_at_end)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let imp = args.next().unwrap_or_else(|| "ours".into());
    assert!(
        ["ours", "detached", "tracker"].contains(&imp.as_str()),
        "ours|detached|tracker"
    );
    let n: usize = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("a count"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (backlog, ran_at_end) = rt.block_on(async move {
        tokio::spawn(burst(imp.clone(), n))
            .await
            .expect("the burst")
    });
    println!(
        "VmHWM {} KiB, largest backlog {backlog}, ran when the spawn loop ended {ran_at_end} of {n}",
        vm_hwm_kib()
    );
}
