//! ctx.* workloads: `hp::Ctx` beside tokio-util's `CancellationToken`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use machinery::helpers as hp;
use tokio_util::sync::CancellationToken;

use crate::measure::{OURS, Report, best, heap_bytes, multi_thread, ns_per, rss_kib, time};

const PEER: &str = "tokio-util";
const LIVE: usize = 1_000_000;
const CHURN: usize = 10_000_000;
const CHECKS: usize = 10_000_000;
const DEPTH: usize = 1_000;
const WAITERS: usize = 10_000;

pub fn run(r: &mut Report) {
    if r.wants("ctx.child_create") {
        child_create(r);
    }
    if r.wants("ctx.cancel_fanout") {
        cancel_fanout(r);
    }
    if r.wants("ctx.is_cancelled") {
        is_cancelled(r);
    }
    if r.wants("ctx.churn") {
        churn(r);
    }
    if r.wants("ctx.await_cancel") {
        await_cancel(r);
    }
}

/// Creates `LIVE` children held in a pre-sized Vec, best of `ROUNDS` (the later rounds
/// reuse pages the first one faulted in, for either side); returns (ns/child, heap
/// bytes/child).
fn create_live<T>(make: impl Fn() -> T) -> (f64, f64) {
    let mut bytes = 0.0;
    let d = best(|| {
        let mut held = Vec::with_capacity(LIVE);
        let before = heap_bytes();
        let d = time(|| {
            for _ in 0..LIVE {
                held.push(make());
            }
        });
        bytes = (heap_bytes() - before) as f64 / LIVE as f64;
        d
    });
    (ns_per(d, LIVE), bytes)
}

fn child_create(r: &mut Report) {
    let v = "1M live children";
    let root = hp::Ctx::beginning("root");
    let (ns, bytes) = create_live(|| root.child("c").drop_guard());
    r.add("ctx.child_create", OURS, v, ns, "ns/child");
    r.add("ctx.child_create", OURS, v, bytes, "B/child");
    let token = CancellationToken::new();
    let (ns, bytes) = create_live(|| token.child_token());
    r.add("ctx.child_create", PEER, v, ns, "ns/child");
    r.add("ctx.child_create", PEER, v, bytes, "B/child");
}

/// Time to cancel a root with `LIVE` children (creation and drop left out), best of
/// `ROUNDS`.
fn fanout_of<T>(make: impl Fn() -> (Box<dyn Fn()>, Vec<T>), seen: impl Fn(&T) -> bool) -> f64 {
    let d = best(|| {
        let (cancel, kids) = make();
        let d = time(cancel);
        assert!(kids.iter().all(&seen));
        d
    });
    ns_per(d, LIVE)
}

/// Time to cancel a root over a chain of `DEPTH` children, best of `ROUNDS`.
fn chain_of<T>(make: impl Fn() -> (Box<dyn Fn()>, Vec<T>), seen: impl Fn(&T) -> bool) -> f64 {
    let d = best(|| {
        let (cancel, chain) = make();
        let d = time(cancel);
        assert!(seen(chain.last().unwrap()));
        d
    });
    d.as_nanos() as f64 / DEPTH as f64
}

fn cancel_fanout(r: &mut Report) {
    let v = "1M children";
    let ns = fanout_of(
        || {
            let root = hp::Ctx::beginning("root");
            let kids: Vec<_> = (0..LIVE).map(|_| root.child("c").drop_guard()).collect();
            (
                Box::new(move || {
                    root.cancel();
                }),
                kids,
            )
        },
        |k| k.done(),
    );
    r.add("ctx.cancel_fanout", OURS, v, ns, "ns/child");
    let ns = fanout_of(
        || {
            let token = CancellationToken::new();
            let kids: Vec<_> = (0..LIVE).map(|_| token.child_token()).collect();
            (Box::new(move || token.cancel()), kids)
        },
        |k| k.is_cancelled(),
    );
    r.add("ctx.cancel_fanout", PEER, v, ns, "ns/child");

    let v = "chain depth 1000";
    let ns = chain_of(
        || {
            let root = hp::Ctx::beginning("root");
            let mut chain = vec![root.child("0").drop_guard()];
            for _ in 1..DEPTH {
                let next = chain.last().unwrap().child("n").drop_guard();
                chain.push(next);
            }
            (
                Box::new(move || {
                    root.cancel();
                }),
                chain,
            )
        },
        |k| k.done(),
    );
    r.add("ctx.cancel_fanout", OURS, v, ns, "ns/level");
    let ns = chain_of(
        || {
            let token = CancellationToken::new();
            let mut chain = vec![token.child_token()];
            for _ in 1..DEPTH {
                let next = chain.last().unwrap().child_token();
                chain.push(next);
            }
            (Box::new(move || token.cancel()), chain)
        },
        |k| k.is_cancelled(),
    );
    r.add("ctx.cancel_fanout", PEER, v, ns, "ns/level");
}

/// `CHECKS` checks on each of `threads` threads at once, best of `ROUNDS`: ns per check
/// (wall time, so with 2 threads each does `CHECKS` in that time).
fn checks<F: Fn() -> bool + Sync>(f: F, threads: usize) -> f64 {
    let d = best(|| {
        time(|| {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..CHECKS {
                            black_box(f());
                        }
                    });
                }
            })
        })
    });
    ns_per(d, CHECKS)
}

fn is_cancelled(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    let mut chain = vec![root.child("0").drop_guard()];
    for _ in 1..DEPTH {
        let next = chain.last().unwrap().child("n").drop_guard();
        chain.push(next);
    }
    let token = CancellationToken::new();
    let mut tchain = vec![token.child_token()];
    for _ in 1..DEPTH {
        let next = tchain.last().unwrap().child_token();
        tchain.push(next);
    }
    for threads in [1, 2] {
        for (depth, ours, peer) in [
            (1, &chain[0], &tchain[0]),
            (DEPTH, chain.last().unwrap(), tchain.last().unwrap()),
        ] {
            let v = format!("depth {depth}, {threads} thread(s)");
            r.add(
                "ctx.is_cancelled",
                OURS,
                v.clone(),
                checks(|| ours.done(), threads),
                "ns/check",
            );
            r.add(
                "ctx.is_cancelled",
                PEER,
                v,
                checks(|| peer.is_cancelled(), threads),
                "ns/check",
            );
        }
    }
}

/// Runs `op` `CHURN` times after a warm-up (so that the first slab allocations do not
/// count as growth) and records ns/op, heap growth and RSS growth.
fn churn_one(r: &mut Report, imp: &'static str, variant: &str, op: impl Fn()) {
    for _ in 0..1000 {
        op();
    }
    let (heap0, rss0) = (heap_bytes(), rss_kib());
    let d = time(|| (0..CHURN).for_each(|_| op()));
    // Read both before `r.add` grows the report's own Vec.
    let (heap, rss) = ((heap_bytes() - heap0) as f64, (rss_kib() - rss0) as f64);
    r.add("ctx.churn", imp, variant, ns_per(d, CHURN), "ns/op");
    r.add("ctx.churn", imp, variant, heap, "B heap growth");
    r.add("ctx.churn", imp, variant, rss, "KiB RSS growth");
}

/// 10 M create+drop: a guard (cancels on drop) beside the peer's `drop_guard` (cancels
/// on drop too); a detached handle beside a plain `child_token` (neither cancels); and
/// ours with a done callback on each child (no peer has callbacks).
fn churn(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    let token = CancellationToken::new();
    let v = "10M create+drop, cancels on drop";
    churn_one(r, OURS, v, || drop(black_box(root.child("c").drop_guard())));
    churn_one(r, PEER, v, || {
        drop(black_box(token.child_token().drop_guard()))
    });
    let v = "10M create+drop, detached";
    churn_one(r, OURS, v, || {
        drop(black_box(root.child("c").drop_guard().detach()))
    });
    churn_one(r, PEER, v, || drop(black_box(token.child_token())));
    let ran = Arc::new(AtomicUsize::new(0));
    churn_one(r, OURS, "10M create+drop, callback each", || {
        let c = root.child("c").drop_guard();
        let ran = ran.clone();
        c.add_done_callback(move |_| {
            ran.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(ran.load(Ordering::Relaxed), CHURN + 1000);
}

/// 10 k tasks await one context on a multi-thread runtime; time from `cancel` until every
/// task has been joined (spawning and the first polls left out), best of `ROUNDS`; then
/// the same from the first spawn to the last join, per task.
fn await_cancel(r: &mut Report) {
    let v = "10k waiters, multi-thread";
    let rt = multi_thread();
    let d = best(|| {
        rt.block_on(async {
            let root = hp::Ctx::beginning("root");
            let tasks: Vec<_> = (0..WAITERS).map(|_| tokio::spawn(root.wait())).collect();
            tokio::time::sleep(Duration::from_millis(50)).await; // all are waiting
            let start = Instant::now();
            root.cancel();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        })
    });
    r.add("ctx.await_cancel", OURS, v, d.as_secs_f64() * 1e6, "µs");

    let d = best(|| {
        rt.block_on(async {
            let token = CancellationToken::new();
            let tasks: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let t = token.clone();
                    tokio::spawn(async move { t.cancelled().await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let start = Instant::now();
            token.cancel();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        })
    });
    r.add("ctx.await_cancel", PEER, v, d.as_secs_f64() * 1e6, "µs");

    // The whole life of the waiters, timed from the first spawn: what a harness that
    // times spawn + wait + cancel + join sees. No pause before the cancel: some tasks
    // are first polled after it (ready at once), as in a program that cancels early.
    let v = "10k waiters, spawn to join, multi-thread";
    let d = best(|| {
        rt.block_on(async {
            let start = Instant::now();
            let root = hp::Ctx::beginning("root");
            let tasks: Vec<_> = (0..WAITERS).map(|_| tokio::spawn(root.wait())).collect();
            tokio::task::yield_now().await;
            root.cancel();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        })
    });
    r.add("ctx.await_cancel", OURS, v, ns_per(d, WAITERS), "ns/task");
    let d = best(|| {
        rt.block_on(async {
            let start = Instant::now();
            let token = CancellationToken::new();
            let tasks: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let t = token.clone();
                    tokio::spawn(async move { t.cancelled().await })
                })
                .collect();
            tokio::task::yield_now().await;
            token.cancel();
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed()
        })
    });
    r.add("ctx.await_cancel", PEER, v, ns_per(d, WAITERS), "ns/task");
}
