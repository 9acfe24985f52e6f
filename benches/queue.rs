//! Queue throughput beside the peers (run by hand, not as a test):
//!
//! `cargo bench --bench queue` (optionally `-- <items>`; default 10 000 000)
//!
//! - chan.1p1c: one producer task appends N `u64`s to an unbounded queue while one
//!   consumer takes them, current-thread and multi-thread (2 workers) runtimes;
//!   `hp::queue` beside tokio `mpsc::unbounded_channel`, `flume::unbounded` and
//!   `async_channel::unbounded`.
//! - chan.burst: N items queued first, then drained (current-thread), same four.
//! - queue.priority / queue.instruction: N priority appends, or N instructions, then a
//!   drain (no peer has them).
//! - chan.1p1c.sync: one producer thread, one consumer thread; `hp::sync_queue` beside
//!   `std::sync::mpsc` and `crossbeam_channel::unbounded`.
//!
//! Each figure is the best of 3 runs, in ns per item; it prints a table and, for
//! tooling, TSV lines `workload<TAB>impl<TAB>variant<TAB>value<TAB>unit`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::runtime::{Builder, Runtime};

const RUNS: usize = 3;

fn runtime(multi: bool) -> Runtime {
    if multi {
        Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        Builder::new_current_thread().enable_all().build().unwrap()
    }
}

/// Best of `RUNS` in ns per item.
fn best(n: u64, mut run: impl FnMut() -> Duration) -> f64 {
    (0..RUNS)
        .map(|_| run())
        .min()
        .map(|d| d.as_nanos() as f64 / n as f64)
        .unwrap()
}

fn on_rt<F: Future<Output = ()>>(multi: bool, n: u64, make: impl Fn() -> F) -> f64 {
    let rt = runtime(multi);
    best(n, || {
        let fut = make();
        let start = Instant::now();
        rt.block_on(fut);
        start.elapsed()
    })
}

async fn machinery_1p1c(n: u64) {
    let ctx = hp::Ctx::beginning("bench");
    let mut q = hp::queue::<u64>(&ctx).build();
    let h = q.handle();
    tokio::spawn(async move {
        for i in 0..n {
            h.append(i, false);
        }
    });
    let mut all = q.get_all();
    let mut sum = 0;
    for _ in 0..n {
        sum += all.next().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn tokio_1p1c(n: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn flume_1p1c(n: u64) {
    let (tx, rx) = flume::unbounded();
    tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv_async().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn async_channel_1p1c(n: u64) {
    let (tx, rx) = async_channel::unbounded();
    tokio::spawn(async move {
        for i in 0..n {
            tx.try_send(i).unwrap();
        }
    });
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

/// Burst: N items already queued, then one consumer drains them.
async fn machinery_burst(n: u64) {
    let ctx = hp::Ctx::beginning("bench");
    let mut q = hp::queue::<u64>(&ctx).build();
    (0..n).for_each(|i| q.append(i, false));
    let mut all = q.get_all();
    let mut sum = 0;
    for _ in 0..n {
        sum += all.next().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn tokio_burst(n: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    (0..n).for_each(|i| tx.send(i).unwrap());
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn flume_burst(n: u64) {
    let (tx, rx) = flume::unbounded();
    (0..n).for_each(|i| tx.send(i).unwrap());
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv_async().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn async_channel_burst(n: u64) {
    let (tx, rx) = async_channel::unbounded();
    (0..n).for_each(|i| tx.try_send(i).unwrap());
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await.unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

async fn machinery_priority(n: u64) {
    let ctx = hp::Ctx::beginning("bench");
    let mut q = hp::queue::<u64>(&ctx).build();
    for i in 0..n {
        q.append(i, true);
    }
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(n - 1));
    for _ in 1..n {
        all.next().await.unwrap();
    }
}

async fn machinery_instruction(n: u64) {
    let ctx = hp::Ctx::beginning("bench");
    let mut q = hp::queue::<u64>(&ctx).build();
    let count = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let c = count.clone();
        q.append_instruction(
            move || {
                c.fetch_add(1, Relaxed);
            },
            false,
        );
    }
    q.append(0, false);
    assert_eq!(q.get_all().next().await, Some(0));
    assert_eq!(count.load(Relaxed), n);
}

fn sync_pair(
    n: u64,
    produce: impl FnOnce(u64) + Send + 'static,
    consume: impl FnOnce(u64) -> u64,
) -> Duration {
    let start = Instant::now();
    let t = std::thread::spawn(move || produce(n));
    let sum = consume(n);
    t.join().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
}

fn machinery_sync(n: u64) -> Duration {
    let ctx = hp::Ctx::beginning("bench");
    let q = hp::sync_queue::<u64>(&ctx).build();
    let p = q.clone();
    sync_pair(
        n,
        move |n| (0..n).for_each(|i| p.append(i)),
        |n| q.get_all().take(n as usize).sum(),
    )
}

fn std_sync(n: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    sync_pair(
        n,
        move |n| (0..n).for_each(|i| tx.send(i).unwrap()),
        |n| rx.iter().take(n as usize).sum(),
    )
}

fn crossbeam_sync(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    sync_pair(
        n,
        move |n| (0..n).for_each(|i| tx.send(i).unwrap()),
        |n| rx.iter().take(n as usize).sum(),
    )
}

type Job = (
    &'static str,
    &'static str,
    &'static str,
    Box<dyn Fn(u64) -> f64>,
);

fn jobs() -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for (variant, multi) in [("current_thread", false), ("multi_thread", true)] {
        let w = "chan.1p1c";
        jobs.push((
            w,
            "machinery",
            variant,
            Box::new(move |n| on_rt(multi, n, || machinery_1p1c(n))),
        ));
        jobs.push((
            w,
            "tokio",
            variant,
            Box::new(move |n| on_rt(multi, n, || tokio_1p1c(n))),
        ));
        jobs.push((
            w,
            "flume",
            variant,
            Box::new(move |n| on_rt(multi, n, || flume_1p1c(n))),
        ));
        jobs.push((
            w,
            "async-channel",
            variant,
            Box::new(move |n| on_rt(multi, n, || async_channel_1p1c(n))),
        ));
    }
    let (ct, w) = ("current_thread", "chan.burst");
    jobs.push((
        w,
        "machinery",
        ct,
        Box::new(|n| on_rt(false, n, || machinery_burst(n))),
    ));
    jobs.push((
        w,
        "tokio",
        ct,
        Box::new(|n| on_rt(false, n, || tokio_burst(n))),
    ));
    jobs.push((
        w,
        "flume",
        ct,
        Box::new(|n| on_rt(false, n, || flume_burst(n))),
    ));
    jobs.push((
        w,
        "async-channel",
        ct,
        Box::new(|n| on_rt(false, n, || async_channel_burst(n))),
    ));
    jobs.push((
        "queue.priority",
        "machinery",
        ct,
        Box::new(|n| on_rt(false, n, || machinery_priority(n))),
    ));
    jobs.push((
        "queue.instruction",
        "machinery",
        ct,
        Box::new(|n| on_rt(false, n, || machinery_instruction(n))),
    ));
    let (w, t) = ("chan.1p1c.sync", "2_threads");
    jobs.push((
        w,
        "machinery",
        t,
        Box::new(|n| best(n, || machinery_sync(n))),
    ));
    jobs.push((w, "std-mpsc", t, Box::new(|n| best(n, || std_sync(n)))));
    jobs.push((
        w,
        "crossbeam-channel",
        t,
        Box::new(|n| best(n, || crossbeam_sync(n))),
    ));
    jobs
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    // Other arguments filter by workload or impl name, e.g. `-- 1000000 burst`.
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<u64>().is_err() && !a.starts_with("--"))
        .collect();
    let rows: Vec<_> = jobs()
        .into_iter()
        .filter(|(w, i, _, _)| {
            filters.is_empty() || filters.iter().any(|f| w.contains(f.as_str()) || i == f)
        })
        .map(|(w, i, v, job)| (w, i, v, job(n)))
        .collect();

    println!("{n} items, best of {RUNS} runs, ns per item\n");
    println!("| workload | impl | variant | ns/item |\n|---|---|---|---|");
    for (w, i, v, ns) in &rows {
        println!("| {w} | {i} | {v} | {ns:.1} |");
    }
    println!();
    for (w, i, v, ns) in &rows {
        println!("{w}\t{i}\t{v}\t{ns:.2}\tns");
    }
}
