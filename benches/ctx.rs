//! CTX benchmarks beside tokio-util's `CancellationToken`, same workloads, same run.
//!
//! Run: `cargo bench --bench ctx` (prints a table; add `-- --tsv` for one line per figure).
//! Bytes come from a counting global allocator; RSS from /proc/self/status.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

use machinery::helpers::{Ctx, CtxGuard};
use tokio_util::sync::CancellationToken;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Relaxed)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Report {
    tsv: bool,
}

impl Report {
    fn row(&self, workload: &str, imp: &str, variant: &str, value: f64, unit: &str) {
        if self.tsv {
            println!("{workload}\t{imp}\t{variant}\t{value:.2}\t{unit}");
        } else {
            println!("| {workload} | {imp} | {variant} | {value:.2} | {unit} |");
        }
    }
}

/// Best of `rounds` runs of `f(n)`, in ns per op.
fn best_ns(rounds: usize, n: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f(n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn create_drop(r: &Report) {
    const N: usize = 1_000_000;
    let root = Ctx::beginning("root");
    let ns = best_ns(3, N, |n| {
        for _ in 0..n {
            drop(black_box(root.child("c")));
        }
    });
    r.row(
        "ctx.child_create_drop",
        "machinery",
        "guard (cancels on drop)",
        ns,
        "ns/op",
    );
    let ns = best_ns(3, N, |n| {
        for _ in 0..n {
            drop(black_box(root.child("c").detach()));
        }
    });
    r.row(
        "ctx.child_create_drop",
        "machinery",
        "detached handle",
        ns,
        "ns/op",
    );
    let tok = CancellationToken::new();
    let ns = best_ns(3, N, |n| {
        for _ in 0..n {
            drop(black_box(tok.child_token()));
        }
    });
    r.row(
        "ctx.child_create_drop",
        "tokio-util",
        "child_token",
        ns,
        "ns/op",
    );
    let ns = best_ns(3, N, |n| {
        for _ in 0..n {
            drop(black_box(tok.child_token().drop_guard()));
        }
    });
    r.row(
        "ctx.child_create_drop",
        "tokio-util",
        "drop_guard (cancels on drop)",
        ns,
        "ns/op",
    );
}

fn fanout(r: &Report) {
    const N: usize = 100_000;
    best_ns(3, N, |n| {
        let root = Ctx::beginning("root");
        let kids: Vec<CtxGuard> = (0..n).map(|_| root.child("c")).collect();
        let t = Instant::now();
        root.cancel();
        assert!(kids.iter().all(|k| black_box(k.done())));
        let spent = t.elapsed();
        drop(kids);
        // best_ns times the whole closure; report only the cancel part via a side channel.
        FANOUT.with(|c| c.set(spent.as_nanos() as f64 / n as f64));
    });
    r.row(
        "ctx.cancel_fanout",
        "machinery",
        "100k children",
        FANOUT.with(|c| c.get()),
        "ns/child",
    );
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let root = CancellationToken::new();
        let kids: Vec<CancellationToken> = (0..N).map(|_| root.child_token()).collect();
        let t = Instant::now();
        root.cancel();
        assert!(kids.iter().all(|k| black_box(k.is_cancelled())));
        best = best.min(t.elapsed().as_nanos() as f64 / N as f64);
    }
    r.row(
        "ctx.cancel_fanout",
        "tokio-util",
        "100k children",
        best,
        "ns/child",
    );
    // Depth 1 000 chain.
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let root = Ctx::beginning("root");
        let mut chain: Vec<CtxGuard> = vec![root.child("0")];
        for _ in 1..1_000 {
            let next = chain.last().unwrap().child("n");
            chain.push(next);
        }
        let t = Instant::now();
        root.cancel();
        assert!(chain.last().unwrap().done());
        best = best.min(t.elapsed().as_nanos() as f64 / 1_000.0);
    }
    r.row(
        "ctx.cancel_fanout",
        "machinery",
        "chain depth 1000",
        best,
        "ns/level",
    );
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let root = CancellationToken::new();
        let mut chain = vec![root.child_token()];
        for _ in 1..1_000 {
            let next = chain.last().unwrap().child_token();
            chain.push(next);
        }
        let t = Instant::now();
        root.cancel();
        assert!(chain.last().unwrap().is_cancelled());
        best = best.min(t.elapsed().as_nanos() as f64 / 1_000.0);
    }
    r.row(
        "ctx.cancel_fanout",
        "tokio-util",
        "chain depth 1000",
        best,
        "ns/level",
    );
}

thread_local! {
    static FANOUT: std::cell::Cell<f64> = const { std::cell::Cell::new(f64::INFINITY) };
}

fn is_cancelled(r: &Report) {
    const N: usize = 20_000_000;
    for depth in [1usize, 1_000] {
        let root = Ctx::beginning("root");
        let mut chain: Vec<CtxGuard> = vec![root.child("0")];
        for _ in 1..depth {
            let next = chain.last().unwrap().child("n");
            chain.push(next);
        }
        let leaf = chain.last().unwrap().ctx().clone();
        let ns = best_ns(3, N, |n| {
            for _ in 0..n {
                black_box(black_box(&leaf).done());
            }
        });
        r.row(
            "ctx.is_cancelled",
            "machinery",
            &format!("done() depth {depth}"),
            ns,
            "ns",
        );
        let tok = CancellationToken::new();
        let mut chain = vec![tok.child_token()];
        for _ in 1..depth {
            let next = chain.last().unwrap().child_token();
            chain.push(next);
        }
        let leaf = chain.last().unwrap().clone();
        let ns = best_ns(3, N / 4, |n| {
            for _ in 0..n {
                black_box(black_box(&leaf).is_cancelled());
            }
        });
        r.row(
            "ctx.is_cancelled",
            "tokio-util",
            &format!("is_cancelled() depth {depth}"),
            ns,
            "ns",
        );
    }
    // Two threads checking one context.
    let root = Ctx::beginning("root");
    let leaf = root.child("c");
    let ns = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    best_ns(3, N, |n| {
                        for _ in 0..n {
                            black_box(black_box(&leaf).done());
                        }
                    })
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold(0.0, f64::max)
    });
    r.row(
        "ctx.is_cancelled",
        "machinery",
        "done() 2 threads, one ctx",
        ns,
        "ns",
    );
    let tok = CancellationToken::new().child_token();
    let ns = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    best_ns(3, N / 4, |n| {
                        for _ in 0..n {
                            black_box(black_box(&tok).is_cancelled());
                        }
                    })
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold(0.0, f64::max)
    });
    r.row(
        "ctx.is_cancelled",
        "tokio-util",
        "is_cancelled() 2 threads, one token",
        ns,
        "ns",
    );
}

/// Creates `n` live children with `make`, three rounds; best ns/child and bytes/child.
fn live<T>(n: usize, mut make: impl FnMut() -> T) -> (f64, f64) {
    let (mut ns, mut bytes) = (f64::INFINITY, 0.0);
    for _ in 0..3 {
        let mut kids: Vec<T> = Vec::with_capacity(n);
        let before = live_bytes();
        let t = Instant::now();
        for _ in 0..n {
            kids.push(make());
        }
        ns = ns.min(t.elapsed().as_nanos() as f64 / n as f64);
        bytes = (live_bytes() - before) as f64 / n as f64;
    }
    (ns, bytes)
}

fn memory(r: &Report) {
    const N: usize = 100_000;
    let root = Ctx::beginning("root");
    let tok = CancellationToken::new();
    // Warm the heap once so that neither side pays first-touch page faults.
    let _warm = live(N, || root.child("c"));
    let (ns, bytes) = live(N, || root.child("c"));
    r.row(
        "ctx.child_create",
        "machinery",
        "100k live children",
        ns,
        "ns/child",
    );
    r.row(
        "ctx.child_create",
        "machinery",
        "100k live children",
        bytes,
        "B/child",
    );
    let (ns, bytes) = live(N, || tok.child_token());
    r.row(
        "ctx.child_create",
        "tokio-util",
        "100k live children",
        ns,
        "ns/child",
    );
    r.row(
        "ctx.child_create",
        "tokio-util",
        "100k live children",
        bytes,
        "B/child",
    );
}

fn churn(r: &Report) {
    const N: usize = 10_000_000;
    let root = Ctx::beginning("root");
    for (variant, with_cb) in [
        ("10M create+drop", false),
        ("10M create+callback+drop", true),
    ] {
        let (rss0, heap0) = (rss_kib(), live_bytes());
        let t = Instant::now();
        for _ in 0..N {
            let c = root.child("c");
            if with_cb {
                c.add_done_callback(|f| {
                    black_box(f);
                });
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / N as f64;
        let (rss1, heap1) = (rss_kib(), live_bytes());
        r.row("ctx.churn", "machinery", variant, ns, "ns/op");
        r.row(
            "ctx.churn",
            "machinery",
            variant,
            (rss1 as f64 - rss0 as f64) / 1024.0,
            "MiB RSS growth",
        );
        r.row(
            "ctx.churn",
            "machinery",
            variant,
            (heap1 - heap0) as f64,
            "B heap growth",
        );
    }
    let tok = CancellationToken::new();
    let (rss0, heap0) = (rss_kib(), live_bytes());
    let t = Instant::now();
    for _ in 0..N {
        drop(black_box(tok.child_token()));
    }
    let ns = t.elapsed().as_nanos() as f64 / N as f64;
    let (rss1, heap1) = (rss_kib(), live_bytes());
    r.row("ctx.churn", "tokio-util", "10M create+drop", ns, "ns/op");
    r.row(
        "ctx.churn",
        "tokio-util",
        "10M create+drop",
        (rss1 as f64 - rss0 as f64) / 1024.0,
        "MiB RSS growth",
    );
    r.row(
        "ctx.churn",
        "tokio-util",
        "10M create+drop",
        (heap1 - heap0) as f64,
        "B heap growth",
    );
}

fn main() {
    let tsv = std::env::args().any(|a| a == "--tsv");
    let r = Report { tsv };
    if !tsv {
        println!("| workload | impl | variant | value | unit |");
        println!("|---|---|---|---|---|");
    }
    memory(&r);
    create_drop(&r);
    fanout(&r);
    is_cancelled(&r);
    churn(&r);
}
