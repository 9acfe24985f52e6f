//! Stress on the multi-thread runtime: thousands of tasks creating and cancelling
//! children of a shared tree while other tasks wait on those children. Asserts counts
//! and outcomes only (every waiter returns, every callback runs exactly once, nothing
//! stays registered); a real-time watchdog fails the test instead of hanging it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use machinery::helpers as hp;

use crate::common;
use common::{Rng, WATCHDOG};

#[derive(Default)]
struct Tally {
    registered: AtomicUsize,
    ran: AtomicUsize,
    waited: AtomicUsize,
}

impl Tally {
    fn watch(self: &Arc<Self>, ctx: &hp::Ctx) {
        self.registered.fetch_add(1, SeqCst);
        let t = self.clone();
        ctx.add_done_callback(move |_| {
            t.ran.fetch_add(1, SeqCst);
        });
    }
}

/// One worker: makes a child with grandchildren, lets a waiter task wait on the child and
/// a canceller task cancel parts of it, in an order chosen by `seed`.
async fn worker(root: hp::Ctx, seed: u64, tally: Arc<Tally>) {
    let mut rng = Rng(seed | 1);
    let child = root.child("w").drop_guard();
    tally.watch(&child);
    let grands: Vec<hp::Ctx> = (0..4)
        .map(|_| {
            let g = child.child("g").drop_guard().detach();
            tally.watch(&g);
            g
        })
        .collect();
    let waiter = {
        let (c, g, t) = (child.ctx().clone(), grands.clone(), tally.clone());
        tokio::spawn(async move {
            c.wait().await;
            let waits: Vec<&dyn hp::WaitByCallback> =
                g.iter().map(|g| g as &dyn hp::WaitByCallback).collect();
            hp::wait_for_all(&waits).await;
            t.waited.fetch_add(1, SeqCst);
        })
    };
    let canceller = {
        let (c, g) = (child.ctx().clone(), grands.clone());
        let pick = rng.below(4) as usize;
        let yields = rng.below(3);
        tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            g[pick].cancel();
            if pick.is_multiple_of(2) {
                c.cancel();
            }
        })
    };
    // Meanwhile this task creates and drops more grandchildren.
    for _ in 0..rng.below(4) {
        let g = child.child("late").drop_guard();
        tally.watch(&g);
        tokio::task::yield_now().await;
    }
    canceller.await.unwrap();
    drop(child); // cancels whatever is left
    waiter.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_tasks_create_cancel_and_wait_on_children() {
    const WORKERS: u64 = 10_000;
    let root = hp::Ctx::beginning("stress");
    let tally = Arc::new(Tally::default());
    let start = std::time::Instant::now();
    let run = async {
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| tokio::spawn(worker(root.clone(), 0x9e37_79b9 ^ i, tally.clone())))
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    };
    tokio::time::timeout(WATCHDOG, run)
        .await
        .expect("watchdog: the stress test hung");
    assert_eq!(tally.waited.load(SeqCst), WORKERS as usize);
    let registered = tally.registered.load(SeqCst);
    assert!(registered >= WORKERS as usize * 5);
    assert_eq!(
        tally.ran.load(SeqCst),
        registered,
        "each callback exactly once"
    );
    assert_eq!(root.child_count(), 0);
    assert!(!root.done());
    eprintln!(
        "stress_ctx: {WORKERS} workers, {registered} contexts in {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn root_cancelled_while_thousands_of_tasks_build_subtrees() {
    // The root is cancelled while tasks are still creating children under it: every
    // context ends done, every callback runs once, every waiter returns.
    const WORKERS: u64 = 5_000;
    let root = hp::Ctx::beginning("stress");
    let tally = Arc::new(Tally::default());
    let run = async {
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| {
                let (r, t) = (root.clone(), tally.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(i + 1);
                    let mut kept = Vec::new();
                    for _ in 0..5 {
                        let c = r.child("c").drop_guard().detach();
                        t.watch(&c);
                        kept.push(c);
                        if rng.below(2) == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    for c in &kept {
                        c.wait().await;
                    }
                    t.waited.fetch_add(1, SeqCst);
                })
            })
            .collect();
        tokio::task::yield_now().await;
        root.cancel();
        for h in handles {
            h.await.unwrap();
        }
    };
    tokio::time::timeout(WATCHDOG, run)
        .await
        .expect("watchdog: the stress test hung");
    assert_eq!(tally.waited.load(SeqCst), WORKERS as usize);
    assert_eq!(tally.registered.load(SeqCst), WORKERS as usize * 5);
    assert_eq!(tally.ran.load(SeqCst), WORKERS as usize * 5);
    assert_eq!(root.child_count(), 0);
}
