//! Issue 26, items 3 and 4: a context keeps its waiters' wakers apart from its callbacks
//! (keys of their own, reused once freed), wakes them after the callbacks, in one loop
//! that survives a panicking waker; a parent's children registry reuses freed keys; a
//! ticker ends through a done callback instead of a `CtxWait`.
//!
//! Expected sequences were worked out from the rules (SEMANTICS CTX 3, 5, 13; Ticker 4)
//! before running anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Ctx, Failure};

use crate::common;

/// A panic payload whose own drop panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics");
    }
}

/// Counts its wakes and logs them; a `panic` waker panics in `wake` (after counting).
struct Probe {
    name: String,
    woken: AtomicUsize,
    log: Arc<Mutex<Vec<String>>>,
    panic: bool,
}

impl Probe {
    fn new(name: &str, log: &Arc<Mutex<Vec<String>>>) -> Arc<Self> {
        Arc::new(Probe {
            name: name.to_owned(),
            woken: AtomicUsize::new(0),
            log: log.clone(),
            panic: false,
        })
    }

    fn panicking(name: &str, log: &Arc<Mutex<Vec<String>>>) -> Arc<Self> {
        Arc::new(Probe {
            panic: true,
            ..Arc::into_inner(Probe::new(name, log)).unwrap()
        })
    }

    fn woken(&self) -> usize {
        self.woken.load(SeqCst)
    }
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, SeqCst);
        self.log.lock().unwrap().push(format!("wake {}", self.name));
        if self.panic {
            // A payload whose own drop panics too.
            std::panic::panic_any(Bomb);
        }
    }
}

fn poll_with<F: Future + Unpin>(f: &mut F, w: &Arc<Probe>) -> Poll<F::Output> {
    let waker = Waker::from(w.clone());
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

fn log() -> Arc<Mutex<Vec<String>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn logged(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn a_waiter_registered_first_is_woken_after_every_callback_of_that_context() {
    // Waiter a, callback 1, waiter b, callback 2: the cancel runs 1 and 2 in their order,
    // then wakes the waiters (a task woken by the finish sees every callback run).
    let l = log();
    let root = Ctx::beginning("root");
    let (a, b) = (Probe::new("a", &l), Probe::new("b", &l));
    let mut wa = root.wait();
    assert!(poll_with(&mut wa, &a).is_pending());
    let l1 = l.clone();
    root.add_done_callback(move |_| l1.lock().unwrap().push("cb 1".into()));
    let mut wb = root.wait();
    assert!(poll_with(&mut wb, &b).is_pending());
    let l2 = l.clone();
    root.add_done_callback(move |_| l2.lock().unwrap().push("cb 2".into()));
    assert!(root.cancel());
    let seq = logged(&l);
    assert_eq!(&seq[..2], ["cb 1", "cb 2"]);
    let mut wakes = seq[2..].to_vec();
    wakes.sort();
    assert_eq!(wakes, ["wake a", "wake b"]);
    assert!(poll_with(&mut wa, &a).is_ready() && poll_with(&mut wb, &b).is_ready());
    assert_eq!((a.woken(), b.woken()), (1, 1));
}

#[test]
fn a_freed_waiter_key_reused_by_another_wait_never_steals_or_loses_a_wake() {
    // a, b, c register (keys 0, 1, 2); b is dropped (key 1 free); d registers (takes
    // key 1); c re-polls with c2 (replaced), d re-polls with its own waker (kept); a is
    // dropped. The cancel wakes exactly c2 and d, once each.
    let l = log();
    let root = Ctx::beginning("root");
    let probes: Vec<_> = ["a", "b", "c", "c2", "d"]
        .iter()
        .map(|n| Probe::new(n, &l))
        .collect();
    let [a, b, c, c2, d] = &probes[..] else {
        unreachable!()
    };
    let (mut wa, mut wb, mut wc) = (root.wait(), root.wait(), root.wait());
    assert!(poll_with(&mut wa, a).is_pending());
    assert!(poll_with(&mut wb, b).is_pending());
    assert!(poll_with(&mut wc, c).is_pending());
    drop(wb);
    let mut wd = root.wait();
    assert!(poll_with(&mut wd, d).is_pending());
    assert!(poll_with(&mut wc, c2).is_pending());
    assert!(poll_with(&mut wd, d).is_pending());
    drop(wa);
    // Only our own handles are left of the dropped or replaced wakers.
    for p in [a, b, c] {
        assert_eq!(Arc::strong_count(p), 1);
    }
    root.cancel();
    let woken: Vec<_> = probes.iter().map(|p| p.woken()).collect();
    assert_eq!(woken, [0, 0, 0, 1, 1]);
    assert!(poll_with(&mut wc, c2).is_ready() && poll_with(&mut wd, d).is_ready());
    drop((wc, wd));
    for p in &probes {
        assert_eq!(Arc::strong_count(p), 1, "no waker kept for {}", p.name);
    }
}

#[test]
fn a_panicking_waker_among_a_hundred_leaves_the_others_woken_once() {
    // Waiters 0..100, every tenth one's waker panicking (with a payload that panics
    // when dropped): cancel returns normally and every waker was woken exactly once.
    let l = log();
    let root = Ctx::beginning("root");
    let probes: Vec<_> = (0..100)
        .map(|i| {
            let name = i.to_string();
            if i % 10 == 3 {
                Probe::panicking(&name, &l)
            } else {
                Probe::new(&name, &l)
            }
        })
        .collect();
    let mut waits: Vec<_> = probes.iter().map(|_| root.wait()).collect();
    for (w, p) in waits.iter_mut().zip(&probes) {
        assert!(poll_with(w, p).is_pending());
    }
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    root.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    assert!(root.cancel());
    assert_eq!(ran.load(SeqCst), 1);
    assert!(probes.iter().all(|p| p.woken() == 1));
    assert_eq!(logged(&l).len(), 100);
    for (w, p) in waits.iter_mut().zip(&probes) {
        assert!(matches!(poll_with(w, p), Poll::Ready(Failure::Cancelled)));
    }
}

/// A waker that cancels the next context of a chain when woken.
struct CancelNext(Mutex<Option<Ctx>>);

impl Wake for CancelNext {
    fn wake(self: Arc<Self>) {
        if let Some(next) = self.0.lock().unwrap().take() {
            next.cancel();
        }
    }
}

#[test]
fn a_chain_of_100_000_waiters_each_cancelling_the_next_context_runs_in_constant_stack() {
    common::in_child_process(
        module_path!(),
        "a_chain_of_100_000_waiters_each_cancelling_the_next_context_runs_in_constant_stack",
        || {
            const N: usize = 100_000;
            let ctxs: Vec<_> = (0..N).map(|i| Ctx::beginning(format!("c{i}"))).collect();
            let mut waits = Vec::with_capacity(N);
            for i in 0..N {
                let mut w = ctxs[i].wait();
                let next = ctxs.get(i + 1).cloned();
                let waker = Waker::from(Arc::new(CancelNext(Mutex::new(next))));
                assert!(
                    Pin::new(&mut w)
                        .poll(&mut Context::from_waker(&waker))
                        .is_pending()
                );
                waits.push(w);
            }
            ctxs[0].cancel();
            assert!(ctxs.iter().all(Ctx::done));
            drop(waits);
            // Dropped from the end: no chain of handles recurses here either.
            drop(ctxs);
        },
    );
}

#[test]
fn children_dropped_in_any_order_free_their_keys_and_the_cancel_reaches_every_live_one() {
    // 10 000 children; every odd one dropped; 5 000 more made (reusing the freed keys,
    // last freed first); every third of all live ones gets a callback. The cancel marks
    // each live child done and runs each callback once; the tree counts the live ones.
    let root = Ctx::beginning("root");
    let mut kids: Vec<Option<Ctx>> = (0..10_000).map(|_| Some(root.child("k"))).collect();
    for k in kids.iter_mut().skip(1).step_by(2) {
        *k = None;
    }
    assert_eq!(root.child_count(), 5_000);
    kids.extend((0..5_000).map(|_| Some(root.child("n"))));
    let live: Vec<Ctx> = kids.into_iter().flatten().collect();
    assert_eq!(root.child_count(), 10_000);
    let ran = Arc::new(AtomicUsize::new(0));
    for k in live.iter().step_by(3) {
        let r = ran.clone();
        k.add_done_callback(move |_| {
            r.fetch_add(1, SeqCst);
        });
    }
    root.cancel();
    assert!(live.iter().all(Ctx::done));
    assert_eq!(ran.load(SeqCst), live.iter().step_by(3).count());
    // Creation order survives the key reuse: `tree()` lists the first 5 000 ("k") before
    // the 5 000 made later ("n").
    let tree = root.tree();
    let first_n = tree.find("-->n").expect("a later child is listed");
    let last_k = tree.rfind("-->k").expect("an early child is listed");
    assert!(last_k < first_n, "children listed in creation order");
    drop(live);
    assert_eq!(root.child_count(), 0);
}

#[test]
fn a_detached_guard_hands_its_context_back_uncancelled_and_a_dropped_one_cancels() {
    let root = Ctx::beginning("root");
    let kept = root.child("kept").drop_guard().detach();
    assert!(!kept.done());
    let seen = {
        let g = root.child("scoped").drop_guard();
        assert_eq!(g.name(), "root-->scoped");
        g.ctx().clone()
    };
    assert!(seen.cancelled());
    assert!(!root.done() && !kept.done());
}

#[tokio::test(start_paused = true)]
async fn a_waiting_ticker_ends_at_once_when_its_parent_is_cancelled_current_thread() {
    // every 1 h: the first tick at 0, then the ticker waits; the parent's cancel at 5 s
    // ends the stream at 5 s.
    let root = Ctx::beginning("root");
    let start = tokio::time::Instant::now();
    let mut ticker = hp::tick(Duration::from_secs(3600), &root).build().unwrap();
    assert_eq!(ticker.next().await.map(|t| t.0), Some(1));
    let r = root.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        r.cancel();
    });
    assert_eq!(ticker.next().await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(ticker.next().await, None);
}

#[test]
fn a_waiting_ticker_moved_between_tasks_ends_when_cancelled_multi_thread() {
    // The stream is polled by one task, then moved to another (a new waker); the cancel
    // from a third must wake the second.
    common::multi_thread(async {
        let root = Ctx::beginning("root");
        let mut ticker = hp::tick(Duration::from_secs(3600), &root).build().unwrap();
        let first = tokio::spawn(async move {
            assert_eq!(ticker.next().await.map(|t| t.0), Some(1));
            // Pending once on this task, then handed over.
            assert!(
                tokio::time::timeout(Duration::from_millis(5), ticker.next())
                    .await
                    .is_err()
            );
            ticker
        })
        .await
        .unwrap();
        let mut ticker = first;
        let second = tokio::spawn(async move { ticker.next().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        root.cancel();
        assert_eq!(second.await.unwrap(), None);
    });
}

/// What `ctx` reports, as a word: "cancelled", the error's text, or "pending".
fn reported(ctx: &Ctx) -> String {
    match ctx.exception() {
        Ok(Some(e)) => e.to_string(),
        Ok(None) => "ok".into(),
        Err(_) if ctx.cancelled() => "cancelled".into(),
        Err(_) => "pending".into(),
    }
}

/// CTX 1 at any depth (a deep node resolves its inherited outcome without walking to
/// the root): in a chain of 200 under a cancelled root, every node reports cancelled;
/// then node 100 gets its own error late (it was done through the root): nodes 100..200
/// report it, nodes 1..99 still cancelled; then node 150 gets another: 150..200 report
/// that one (nearest wins), 100..149 the first. A second chain, cancelled after both
/// late outcomes, resolves from its own fan-out again.
#[test]
fn a_late_own_outcome_deep_in_a_chain_is_reported_below_it_and_nowhere_else() {
    #[derive(Debug)]
    struct E(&'static str);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {}

    let root = Ctx::beginning("r");
    let mut chain = vec![root.clone()];
    for _ in 0..200 {
        let c = chain.last().unwrap().child("x");
        chain.push(c);
    }
    assert!(chain.iter().all(|c| reported(c) == "pending"));
    root.cancel();
    assert!(chain.iter().all(|c| reported(c) == "cancelled"));
    assert!(chain[100].set_exception(E("late at 100")));
    for (i, c) in chain.iter().enumerate() {
        let want = if i < 100 { "cancelled" } else { "late at 100" };
        assert_eq!(reported(c), want, "node {i}");
    }
    assert!(chain[150].set_exception(E("late at 150")));
    for (i, c) in chain.iter().enumerate() {
        let want = match i {
            0..100 => "cancelled",
            100..150 => "late at 100",
            _ => "late at 150",
        };
        assert_eq!(reported(c), want, "node {i}");
    }
    // A fresh chain after the late outcomes: its fan-out notes its own outcome.
    let other = Ctx::beginning("o");
    let mut deep = other.clone();
    for _ in 0..200 {
        deep = deep.child("y");
    }
    assert!(other.set_exception(E("other root")));
    assert_eq!(reported(&deep), "other root");
    // And the awaited outcome of the deepest node of the first chain is the nearest.
    let got = futures::executor::block_on(chain[200].wait());
    assert_eq!(got.to_string(), "late at 150");
}
