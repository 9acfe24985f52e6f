//! `hp::Ctx` under races and at scale: concurrent finishes from several threads (each
//! callback exactly once), registration racing completion, deep chains, wide fan-out.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use machinery::helpers::{Ctx, CtxGuard};

use crate::common::on_small_stack;

fn counter(ctx: &Ctx, n: &Arc<AtomicUsize>) {
    let n = n.clone();
    ctx.add_done_callback(move |_| {
        n.fetch_add(1, SeqCst);
    });
}

/// Runs `a` and `b` on two threads released together.
fn race(a: impl FnOnce() + Send + 'static, b: impl FnOnce() + Send + 'static) {
    let barrier = Arc::new(Barrier::new(2));
    let b1 = barrier.clone();
    let t = thread::spawn(move || {
        b1.wait();
        a();
    });
    barrier.wait();
    b();
    t.join().unwrap();
}

#[test]
fn concurrent_cancel_of_parent_and_child_runs_each_callback_once() {
    for i in 0..2_000 {
        let root = Ctx::beginning("r");
        let child = root.child("c").drop_guard().detach();
        let grand = child.child("g").drop_guard().detach();
        let (nc, ng) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        counter(&child, &nc);
        counter(&grand, &ng);
        let (r, c) = (root.clone(), child.clone());
        if i % 2 == 0 {
            race(
                move || {
                    r.cancel();
                },
                move || {
                    c.cancel();
                },
            );
        } else {
            race(
                move || {
                    r.set_exception(std::io::Error::other("x"));
                },
                move || {
                    c.cancel();
                },
            );
        }
        assert_eq!(nc.load(SeqCst), 1, "iteration {i}");
        assert_eq!(ng.load(SeqCst), 1, "iteration {i}");
        assert!(grand.done() && child.done());
    }
}

#[test]
fn concurrent_cancel_of_root_and_a_deep_descendant_runs_every_callback_once() {
    for _ in 0..300 {
        let root = Ctx::beginning("r");
        let mut chain: Vec<CtxGuard> = vec![root.child("0").drop_guard()];
        for _ in 1..20 {
            let next = chain.last().unwrap().child("n").drop_guard();
            chain.push(next);
        }
        let n = Arc::new(AtomicUsize::new(0));
        for g in &chain {
            counter(g, &n);
        }
        let mid = chain[10].ctx().clone();
        let r = root.clone();
        race(
            move || {
                r.cancel();
            },
            move || {
                mid.cancel();
            },
        );
        assert_eq!(n.load(SeqCst), 20);
    }
}

#[test]
fn registering_a_callback_while_another_thread_finishes_runs_it_exactly_once() {
    for _ in 0..2_000 {
        let root = Ctx::beginning("r");
        let child = root.child("c").drop_guard().detach();
        let n = Arc::new(AtomicUsize::new(0));
        let (c, n2) = (child.clone(), n.clone());
        let r = root.clone();
        race(
            move || counter(&c, &n2),
            move || {
                r.cancel();
            },
        );
        assert_eq!(n.load(SeqCst), 1);
    }
}

#[test]
fn dropping_the_last_handle_while_the_parent_is_cancelled_runs_callbacks_once() {
    for _ in 0..2_000 {
        let root = Ctx::beginning("r");
        let child = root.child("c").drop_guard().detach();
        let n = Arc::new(AtomicUsize::new(0));
        counter(&child, &n);
        let r = root.clone();
        race(
            move || drop(child),
            move || {
                r.cancel();
            },
        );
        assert_eq!(n.load(SeqCst), 1);
        assert_eq!(root.child_count(), 0);
    }
}

#[test]
fn many_threads_creating_and_dropping_children_of_one_root_leave_it_empty() {
    let root = Ctx::beginning("r");
    let n = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (root, n) = (root.clone(), n.clone());
            thread::spawn(move || {
                for _ in 0..20_000 {
                    let c = root.child("c").drop_guard();
                    counter(&c, &n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(n.load(SeqCst), 80_000);
    assert_eq!(root.child_count(), 0);
    assert!(!root.done());
}

#[test]
fn a_chain_ten_thousand_deep_is_done_at_once_and_cancels_every_level() {
    on_small_stack(|| {
        let root = Ctx::beginning("r");
        let n = Arc::new(AtomicUsize::new(0));
        let mut chain: Vec<CtxGuard> = vec![root.child("0").drop_guard()];
        for _ in 1..10_000 {
            let next = chain.last().unwrap().child("n").drop_guard();
            counter(&next, &n);
            chain.push(next);
        }
        let leaf = chain.last().unwrap().ctx().clone();
        assert!(!leaf.done());
        root.cancel();
        assert!(leaf.done() && leaf.cancelled());
        assert_eq!(n.load(SeqCst), 9_999);
        drop(chain);
        drop(leaf); // frees the whole chain
        assert_eq!(root.child_count(), 0);
    });
}

#[test]
fn a_chain_ten_thousand_deep_frees_without_deep_recursion_when_never_cancelled() {
    on_small_stack(|| {
        let root = Ctx::beginning("r");
        let mut leaf = root.child("0").drop_guard().detach();
        for _ in 1..10_000 {
            leaf = leaf.child("n").drop_guard().detach();
        }
        assert!(!leaf.done());
        drop(leaf); // the whole chain finishes as cancelled and is freed
        assert_eq!(root.child_count(), 0);
        assert!(!root.done());
    });
}

#[test]
fn a_hundred_thousand_children_are_all_cancelled_with_their_callbacks() {
    let root = Ctx::beginning("r");
    let n = Arc::new(AtomicUsize::new(0));
    let kids: Vec<CtxGuard> = (0..100_000)
        .map(|_| {
            let c = root.child("c").drop_guard();
            counter(&c, &n);
            c
        })
        .collect();
    assert_eq!(root.child_count(), 100_000);
    root.cancel();
    assert_eq!(n.load(SeqCst), 100_000);
    assert!(kids.iter().all(|k| k.done() && k.cancelled()));
    drop(kids);
    assert_eq!(root.child_count(), 0);
    assert_eq!(n.load(SeqCst), 100_000);
}

#[test]
fn done_is_true_on_every_thread_after_cancel_returns() {
    let root = Ctx::beginning("r");
    let kids: Vec<Ctx> = (0..64)
        .map(|_| root.child("c").drop_guard().detach())
        .collect();
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (kids, b) = (kids.clone(), barrier.clone());
            thread::spawn(move || {
                b.wait();
                while !kids.iter().all(Ctx::done) {
                    std::hint::spin_loop();
                }
                kids.iter().all(Ctx::cancelled)
            })
        })
        .collect();
    barrier.wait();
    root.cancel();
    for t in threads {
        assert!(t.join().unwrap());
    }
}
