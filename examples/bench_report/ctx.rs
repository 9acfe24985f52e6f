//! ctx.* workloads: `hp::Ctx` beside tokio-util's `CancellationToken`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use machinery::helpers as hp;
use tokio_util::sync::CancellationToken;

use crate::measure::{OURS, Report, heap_bytes, multi_thread, ns_per, rss_kib, time};

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

/// Creates `LIVE` children held in a pre-sized Vec; returns (ns/child, heap bytes/child).
fn create_live<T>(make: impl Fn() -> T) -> (f64, f64, Vec<T>) {
    let mut held = Vec::with_capacity(LIVE);
    let before = heap_bytes();
    let d = time(|| {
        for _ in 0..LIVE {
            held.push(make());
        }
    });
    let bytes = (heap_bytes() - before) as f64 / LIVE as f64;
    (ns_per(d, LIVE), bytes, held)
}

fn child_create(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    let (ns, bytes, held) = create_live(|| root.child("c"));
    r.add("ctx.child_create", OURS, "1M live children", ns, "ns/child");
    r.add(
        "ctx.child_create",
        OURS,
        "1M live children",
        bytes,
        "B/child",
    );
    drop(held);

    let token = CancellationToken::new();
    let (ns, bytes, held) = create_live(|| token.child_token());
    r.add("ctx.child_create", PEER, "1M live children", ns, "ns/child");
    r.add(
        "ctx.child_create",
        PEER,
        "1M live children",
        bytes,
        "B/child",
    );
    drop(held);
}

fn cancel_fanout(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    let kids: Vec<_> = (0..LIVE).map(|_| root.child("c")).collect();
    let d = time(|| {
        root.cancel();
    });
    assert!(kids.iter().all(|k| k.done()));
    r.add(
        "ctx.cancel_fanout",
        OURS,
        "1M children",
        ns_per(d, LIVE),
        "ns/child",
    );
    drop(kids);

    let token = CancellationToken::new();
    let kids: Vec<_> = (0..LIVE).map(|_| token.child_token()).collect();
    let d = time(|| token.cancel());
    assert!(kids.iter().all(|k| k.is_cancelled()));
    r.add(
        "ctx.cancel_fanout",
        PEER,
        "1M children",
        ns_per(d, LIVE),
        "ns/child",
    );
    drop(kids);

    let root = hp::Ctx::beginning("root");
    let mut chain = vec![root.child("0")];
    for _ in 1..DEPTH {
        let next = chain.last().unwrap().child("n");
        chain.push(next);
    }
    let d = time(|| {
        root.cancel();
    });
    assert!(chain.last().unwrap().done());
    r.add(
        "ctx.cancel_fanout",
        OURS,
        "chain depth 1000",
        d.as_nanos() as f64 / 1e3,
        "µs",
    );
    drop(chain);

    let token = CancellationToken::new();
    let mut chain = vec![token.child_token()];
    for _ in 1..DEPTH {
        let next = chain.last().unwrap().child_token();
        chain.push(next);
    }
    let d = time(|| token.cancel());
    assert!(chain.last().unwrap().is_cancelled());
    r.add(
        "ctx.cancel_fanout",
        PEER,
        "chain depth 1000",
        d.as_nanos() as f64 / 1e3,
        "µs",
    );
}

fn checks<F: Fn() -> bool + Sync>(f: F, threads: usize) -> f64 {
    let d = time(|| {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..CHECKS {
                        black_box(f());
                    }
                });
            }
        })
    });
    ns_per(d, CHECKS)
}

fn is_cancelled(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    let mut chain = vec![root.child("0")];
    for _ in 1..DEPTH {
        let next = chain.last().unwrap().child("n");
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

fn churn(r: &mut Report) {
    let root = hp::Ctx::beginning("root");
    for with_callback in [false, true] {
        let variant = if with_callback {
            "10M create+drop, callback each"
        } else {
            "10M create+drop"
        };
        // Warm up so that the first allocations of the slab do not count as growth.
        for _ in 0..1000 {
            drop(root.child("w"));
        }
        let (heap0, rss0) = (heap_bytes(), rss_kib());
        let ran = Arc::new(AtomicUsize::new(0));
        let d = time(|| {
            for _ in 0..CHURN {
                let c = root.child("c");
                if with_callback {
                    let ran = ran.clone();
                    c.add_done_callback(move |_| {
                        ran.fetch_add(1, Ordering::Relaxed);
                    });
                }
                drop(c);
            }
        });
        if with_callback {
            assert_eq!(ran.load(Ordering::Relaxed), CHURN);
        }
        r.add("ctx.churn", OURS, variant, ns_per(d, CHURN), "ns/op");
        r.add(
            "ctx.churn",
            OURS,
            variant,
            (heap_bytes() - heap0) as f64,
            "B heap growth",
        );
        r.add(
            "ctx.churn",
            OURS,
            variant,
            (rss_kib() - rss0) as f64,
            "KiB RSS growth",
        );
    }

    let token = CancellationToken::new();
    for _ in 0..1000 {
        drop(token.child_token());
    }
    let (heap0, rss0) = (heap_bytes(), rss_kib());
    let d = time(|| {
        for _ in 0..CHURN {
            drop(token.child_token());
        }
    });
    r.add(
        "ctx.churn",
        PEER,
        "10M create+drop",
        ns_per(d, CHURN),
        "ns/op",
    );
    r.add(
        "ctx.churn",
        PEER,
        "10M create+drop",
        (heap_bytes() - heap0) as f64,
        "B heap growth",
    );
    r.add(
        "ctx.churn",
        PEER,
        "10M create+drop",
        (rss_kib() - rss0) as f64,
        "KiB RSS growth",
    );
}

fn await_cancel(r: &mut Report) {
    let rt = multi_thread();
    let d = rt.block_on(async {
        let root = hp::Ctx::beginning("root");
        let tasks: Vec<_> = (0..WAITERS)
            .map(|_| {
                let w = root.wait();
                tokio::spawn(w)
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let start = std::time::Instant::now();
        root.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    });
    r.add(
        "ctx.await_cancel",
        OURS,
        "10k waiters, multi-thread",
        d.as_nanos() as f64 / 1e3,
        "µs",
    );

    let d = rt.block_on(async {
        let token = CancellationToken::new();
        let tasks: Vec<_> = (0..WAITERS)
            .map(|_| {
                let t = token.clone();
                tokio::spawn(async move { t.cancelled().await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let start = std::time::Instant::now();
        token.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    });
    r.add(
        "ctx.await_cancel",
        PEER,
        "10k waiters, multi-thread",
        d.as_nanos() as f64 / 1e3,
        "µs",
    );
}
