//! Task holder beside tokio `JoinSet` and tokio-util `TaskTracker`.
//!
//! 1. tasks.spawn_join: 1 000 000 trivial tasks added, then all awaited (`finish()`,
//!    `join_next` until empty, `close()` + `wait()`), current- and multi-thread: ns/task.
//! 2. tasks.detached_growth: N trivial tasks added in batches of 10 000 (yielding between
//!    batches so they run) and never awaited; RSS growth once all have finished. Each
//!    figure is taken in a fresh child process so allocator reuse does not mix runs.
//!
//! `cargo bench --bench task_holder` (N defaults to 2 000 000; `-- --growth-n 10000000`)

use std::time::{Duration, Instant};

use machinery::helpers as hp;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

const SPAWN_N: usize = 1_000_000;

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

async fn ours(n: usize, silent: bool) {
    let ctx = hp::Ctx::beginning("bench");
    let ts = hp::task_holder(&ctx);
    for i in 0..n {
        ts.add_coroutine(
            async move {
                std::hint::black_box(i);
            },
            silent,
        );
    }
    ts.finish().await;
}

/// The crate's bare `Task` (what the holder spawns), awaited one by one: the holder's
/// own cost is the difference.
async fn bare_tasks(n: usize) {
    let tasks: Vec<hp::Task<()>> = (0..n)
        .map(|i| {
            hp::Task::spawn(async move {
                std::hint::black_box(i);
            })
        })
        .collect();
    for t in &tasks {
        t.wait().await;
    }
}

async fn joinset(n: usize) {
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(async move {
            std::hint::black_box(i);
        });
    }
    while set.join_next().await.is_some() {}
}

async fn tracker(n: usize) {
    let t = TaskTracker::new();
    for i in 0..n {
        t.spawn(async move {
            std::hint::black_box(i);
        });
    }
    t.close();
    t.wait().await;
}

fn time(multi: bool, f: impl std::future::Future<Output = ()>) -> f64 {
    let rt = runtime(multi);
    let start = Instant::now();
    rt.block_on(f);
    start.elapsed().as_nanos() as f64 / SPAWN_N as f64
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// In a child process: adds `n` tasks nobody awaits and prints the RSS growth in KiB.
fn growth(which: &str, n: usize) {
    let rt = runtime(false);
    rt.block_on(async {
        let ctx = hp::Ctx::beginning("bench");
        let ts = hp::task_holder(&ctx);
        let mut set = JoinSet::new();
        let tracker = TaskTracker::new();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let before = rss_kib();
        for batch in 0..n / 10_000 {
            for i in 0..10_000 {
                let r = ran.clone();
                let work = async move {
                    std::hint::black_box(i);
                    r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                };
                match which {
                    "machinery" => drop(ts.add_coroutine(work, true)),
                    "joinset" => drop(set.spawn(work)),
                    _ => drop(tracker.spawn(work)),
                }
            }
            // Let the batch run (a current-thread runtime runs ~61 tasks per yield).
            while ran.load(std::sync::atomic::Ordering::Relaxed) < (batch + 1) * 10_000 {
                tokio::task::yield_now().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let held = match which {
            "machinery" => ts.pending(),
            "joinset" => set.len(),
            _ => tracker.len(),
        };
        println!("{} {}", rss_kib().saturating_sub(before), held);
        std::mem::forget(set); // measured; not joined on purpose
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--growth-child") {
        growth(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    let growth_n: usize = args
        .iter()
        .position(|a| a == "--growth-n")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(2_000_000);

    println!("tasks.spawn_join: {SPAWN_N} trivial tasks added then awaited (ns/task, best of 3)");
    println!(
        "{:<40} {:>14} {:>14}",
        "impl", "current-thread", "multi-thread"
    );
    type Case = (&'static str, fn(bool) -> f64);
    let cases: [Case; 5] = [
        ("machinery task_holder (silent)", |m| {
            time(m, ours(SPAWN_N, true))
        }),
        ("machinery task_holder (reporter)", |m| {
            time(m, ours(SPAWN_N, false))
        }),
        ("machinery bare hp::Task (no holder)", |m| {
            time(m, bare_tasks(SPAWN_N))
        }),
        ("tokio JoinSet", |m| time(m, joinset(SPAWN_N))),
        ("tokio-util TaskTracker", |m| time(m, tracker(SPAWN_N))),
    ];
    for (name, f) in cases {
        let best = |multi| (0..3).map(|_| f(multi)).fold(f64::MAX, f64::min);
        println!("{:<40} {:>14.0} {:>14.0}", name, best(false), best(true));
    }

    println!("\ntasks.detached_growth: {growth_n} finished tasks nobody awaited (current-thread)");
    println!(
        "{:<40} {:>14} {:>14}",
        "impl", "RSS growth MiB", "still held"
    );
    let exe = std::env::current_exe().unwrap();
    for which in ["machinery", "joinset", "tracker"] {
        let out = std::process::Command::new(&exe)
            .args(["--growth-child", which, &growth_n.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let kib: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let held = it.next().unwrap_or("?");
        println!("{:<40} {:>14.1} {:>14}", which, kib / 1024.0, held);
    }
}
