//! Loom model checks of the context tree's concurrent core.
//!
//! Run: `RUSTFLAGS="--cfg machinery_loom" cargo test --release --test loom_ctx`
//! (LOOM_MAX_PREEMPTIONS bounds the search; `.ci/run` uses 3).
//! Each model explores every interleaving of the threads at the crate's mutexes and
//! state atomics and asserts what must hold in all of them.
#![cfg(machinery_loom)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use loom::thread;
use machinery::helpers as hp;

use crate::loom_model;
use loom_model::model;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn count_on(ctx: &hp::Ctx, runs: &Arc<AtomicUsize>) -> hp::CallbackHandle {
    let runs = runs.clone();
    ctx.add_done_callback(move |_| {
        runs.fetch_add(1, SeqCst);
    })
}

#[test]
fn loom_cancel_races_child_creation() {
    // Race: the parent is cancelled while a child is being created. Either way the child
    // ends done, and its callback runs exactly once.
    model("cancel races child creation", || {
        let root = hp::Ctx::beginning("r");
        let runs = counter();
        let r2 = root.clone();
        let runs2 = runs.clone();
        let t = thread::spawn(move || {
            let child = r2.child("c").drop_guard().detach();
            count_on(&child, &runs2);
            child
        });
        root.cancel();
        let child = t.join().unwrap();
        assert!(child.done());
        assert!(child.cancelled());
        assert_eq!(runs.load(SeqCst), 1);
    });
}

#[test]
fn loom_callback_registration_races_completion() {
    // Race: a callback is added while another thread cancels. It runs exactly once.
    model("callback registration races completion", || {
        let ctx = hp::Ctx::beginning("r");
        let runs = counter();
        let c2 = ctx.clone();
        let t = thread::spawn(move || {
            c2.cancel();
        });
        count_on(&ctx, &runs);
        t.join().unwrap();
        assert_eq!(runs.load(SeqCst), 1);
    });
}

#[test]
fn loom_parent_and_child_cancelled_concurrently() {
    // Race: parent and child cancelled from two threads. The child's callbacks run once,
    // and the grandchild's once.
    model("parent and child cancelled concurrently", || {
        let root = hp::Ctx::beginning("r");
        let child = root.child("c").drop_guard().detach();
        let grandchild = child.child("g").drop_guard().detach();
        let (runs_c, runs_g) = (counter(), counter());
        count_on(&child, &runs_c);
        count_on(&grandchild, &runs_g);
        let c2 = child.clone();
        let t = thread::spawn(move || {
            c2.cancel();
        });
        root.cancel();
        t.join().unwrap();
        assert!(grandchild.done());
        assert_eq!(runs_c.load(SeqCst), 1);
        assert_eq!(runs_g.load(SeqCst), 1);
    });
}

#[test]
fn loom_last_handle_drop_races_parent_cancel() {
    // Race: the child's last handle is dropped while the parent is cancelled. Its callback
    // runs exactly once and the parent ends with no registered children.
    model("last handle drop races parent cancel", || {
        let root = hp::Ctx::beginning("r");
        let child = root.child("c").drop_guard().detach();
        let runs = counter();
        count_on(&child, &runs);
        let t = thread::spawn(move || drop(child));
        root.cancel();
        t.join().unwrap();
        assert_eq!(runs.load(SeqCst), 1);
        assert_eq!(root.child_count(), 0);
    });
}

#[test]
fn loom_remove_races_completion() {
    // Race: a callback is removed while the context finishes. Exactly one of "removed"
    // and "ran" happens.
    model("remove races completion", || {
        let ctx = hp::Ctx::beginning("r");
        let runs = counter();
        let handle = count_on(&ctx, &runs);
        let c2 = ctx.clone();
        let t = thread::spawn(move || {
            c2.cancel();
        });
        let removed = ctx.remove_done_callback(handle);
        t.join().unwrap();
        assert_eq!(removed + runs.load(SeqCst), 1);
    });
}

#[test]
fn loom_set_exception_races_cancel() {
    // Race: cancel and set_exception on one context. Exactly one wins, the other returns
    // false, and callbacks see the winner.
    model("set exception races cancel", || {
        let ctx = hp::Ctx::beginning("r");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        ctx.add_done_callback(move |how| s.lock().unwrap().push(how.is_cancelled()));
        let c2 = ctx.clone();
        let t = thread::spawn(move || c2.set_exception(hp::Error::msg("boom")));
        let cancelled = ctx.cancel();
        let errored = t.join().unwrap();
        assert!(cancelled ^ errored);
        assert_eq!(*seen.lock().unwrap(), [cancelled]);
        assert_eq!(ctx.cancelled(), cancelled);
    });
}

#[test]
fn loom_future_set_races_callback_registration() {
    // Race: a settable future is completed while a callback is added. It runs once.
    model("future set races callback registration", || {
        let fut = hp::Fut::<u8>::new();
        let runs = counter();
        let f2 = fut.clone();
        let t = thread::spawn(move || f2.set_result(1));
        let r = runs.clone();
        fut.add_done_callback(move |_| {
            r.fetch_add(1, SeqCst);
        });
        assert!(t.join().unwrap());
        assert_eq!(runs.load(SeqCst), 1);
    });
}

#[test]
fn loom_three_threads_cancel_set_exception_and_create_a_grandchild() {
    // Three threads: the root is cancelled, the child gets an error, a grandchild is
    // created under the child. The grandchild ends done whatever the order, each
    // callback runs exactly once, and nothing stays registered once it is dropped.
    model(
        "three threads cancel, set exception, create grandchild",
        || {
            let root = hp::Ctx::beginning("r");
            let child = root.child("c").drop_guard().detach();
            let (runs_c, runs_g) = (counter(), counter());
            count_on(&child, &runs_c);
            let (c2, rg) = (child.clone(), runs_g.clone());
            let creator = thread::spawn(move || {
                let g = c2.child("g").drop_guard().detach();
                count_on(&g, &rg);
                g
            });
            let r2 = root.clone();
            let canceller = thread::spawn(move || {
                r2.cancel();
            });
            child.set_exception(hp::Error::msg("boom"));
            let g = creator.join().unwrap();
            canceller.join().unwrap();
            assert!(g.done());
            assert_eq!(runs_c.load(SeqCst), 1);
            assert_eq!(runs_g.load(SeqCst), 1);
            // CTX 13: the grandchild is listed while it exists, finished or not.
            assert_eq!(child.child_count(), 1);
            drop(g);
            assert_eq!(child.child_count(), 0);
        },
    );
}

#[test]
fn loom_callback_cancelling_a_sibling_races_the_parent_cancel() {
    // A callback of `a` cancels its sibling `b` while another thread cancels the parent:
    // no deadlock, and each callback runs exactly once.
    model("callback cancels sibling while parent cancelled", || {
        let root = hp::Ctx::beginning("r");
        let a = root.child("a").drop_guard().detach();
        let b = root.child("b").drop_guard().detach();
        let (runs_a, runs_b) = (counter(), counter());
        let b2 = b.clone();
        let ra = runs_a.clone();
        a.add_done_callback(move |_| {
            ra.fetch_add(1, SeqCst);
            b2.cancel();
        });
        count_on(&b, &runs_b);
        let r2 = root.clone();
        let t = thread::spawn(move || {
            r2.cancel();
        });
        a.cancel();
        t.join().unwrap();
        assert!(b.done());
        assert_eq!(runs_a.load(SeqCst), 1);
        assert_eq!(runs_b.load(SeqCst), 1);
    });
}

#[test]
fn loom_event_set_races_callback_registration_and_clear() {
    // An event is set (then cleared) on one thread while a callback is added on another:
    // the callback runs exactly once if it was added before the set, else at once; a
    // callback never runs twice.
    model("event set and clear race callback registration", || {
        let ev = hp::Event::new();
        let runs = counter();
        let e2 = ev.clone();
        let t = thread::spawn(move || {
            e2.set();
            e2.clear();
        });
        let r = runs.clone();
        ev.add_done_callback(Box::new(move || {
            r.fetch_add(1, SeqCst);
        }));
        t.join().unwrap();
        let n = runs.load(SeqCst);
        assert!(n <= 1);
        if n == 0 {
            // Added after the clear: still registered, runs on the next set.
            ev.set();
            assert_eq!(runs.load(SeqCst), 1);
        }
    });
}

#[test]
fn loom_a_chained_finish_races_registration_and_removal_on_the_next_link() {
    // Thread A completes `first`, whose callback completes `second` (a nested finish:
    // queued on A's own finishing loop). Thread B meanwhile registers a callback on
    // `second` and removes another. Whatever the order: `second` is done when A's
    // `set_result` returns, B's callback runs exactly once (on A, or on B if it came
    // late), and the removed one never runs.
    model("a chained finish races registration and removal", || {
        let first = hp::Fut::<u8>::new();
        let second = hp::Fut::<u8>::new();
        let (runs, removed_runs) = (counter(), counter());
        let s2 = second.clone();
        first.add_done_callback(move |_| {
            s2.set_result(2);
        });
        let r = removed_runs.clone();
        let h = second.add_done_callback(move |_| {
            r.fetch_add(1, SeqCst);
        });
        let (s3, r3) = (second.clone(), runs.clone());
        let b = thread::spawn(move || {
            s3.add_done_callback(move |_| {
                r3.fetch_add(1, SeqCst);
            });
            s3.remove_done_callback(h)
        });
        assert!(first.set_result(1));
        assert!(second.done());
        let removed = b.join().unwrap();
        assert_eq!(runs.load(SeqCst), 1);
        assert_eq!(removed_runs.load(SeqCst), 1 - removed);
    });
}

/// Counts wakes (a waker made from `std::task::Wake`).
struct WakeCount(AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn loom_a_wait_registering_its_waker_races_the_cancel() {
    // Race: a `Ctx::wait` registers its task's waker (no callback of its own) while
    // another thread cancels. Either the first poll is ready, or the waker is woken
    // exactly once and the next poll is ready; the wait then keeps no registration.
    model("a wait registering its waker races the cancel", || {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let ctx = hp::Ctx::beginning("r");
        let c2 = ctx.clone();
        let t = thread::spawn(move || {
            c2.cancel();
        });
        let count = Arc::new(WakeCount(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut wait = Box::pin(ctx.wait());
        let first = wait.as_mut().poll(&mut Context::from_waker(&waker));
        t.join().unwrap();
        match first {
            Poll::Ready(_) => assert_eq!(count.0.load(SeqCst), 0),
            Poll::Pending => {
                assert_eq!(count.0.load(SeqCst), 1);
                assert!(
                    wait.as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_ready()
                );
            }
        }
        drop(wait);
        drop(waker);
        assert_eq!(Arc::strong_count(&count), 1);
    });
}

#[test]
fn loom_a_pending_wait_dropped_races_the_cancel_and_a_re_poll_with_another_waker() {
    // Race (issue 26: wakers in a slab of their own): wait a is pending and dropped on
    // one thread, wait b is re-polled with another waker on a second, while a third
    // cancels. a's waker is woken at most once and never kept; b's first waker is never
    // woken once replaced unless the cancel came first (then it is woken at most once),
    // and b is woken or ready; every waker is released in the end.
    model(
        "a pending wait dropped races the cancel and a re-poll",
        || {
            use std::future::Future;
            use std::task::{Context, Waker};
            let ctx = hp::Ctx::beginning("r");
            let (ca, cb1, cb2) = (
                Arc::new(WakeCount(AtomicUsize::new(0))),
                Arc::new(WakeCount(AtomicUsize::new(0))),
                Arc::new(WakeCount(AtomicUsize::new(0))),
            );
            let mut a = Box::pin(ctx.wait());
            let mut b = Box::pin(ctx.wait());
            let wa = Waker::from(ca.clone());
            let wb1 = Waker::from(cb1.clone());
            assert!(a.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb1)).is_pending());
            drop((wa, wb1));
            let c2 = ctx.clone();
            let canceller = thread::spawn(move || {
                c2.cancel();
            });
            let dropper = thread::spawn(move || drop(a));
            let wb2 = Waker::from(cb2.clone());
            let second = b.as_mut().poll(&mut Context::from_waker(&wb2));
            canceller.join().unwrap();
            dropper.join().unwrap();
            assert!(ca.0.load(SeqCst) <= 1);
            assert!(cb1.0.load(SeqCst) <= 1);
            if second.is_pending() {
                // Registered b's new waker before the cancel took the wakers: woken once.
                assert_eq!(cb2.0.load(SeqCst), 1);
                assert_eq!(cb1.0.load(SeqCst), 0);
            }
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb2)).is_ready());
            drop((b, wb2));
            for c in [&ca, &cb1, &cb2] {
                assert_eq!(Arc::strong_count(c), 1);
            }
        },
    );
}

/// Records the order callbacks ran in: each takes the next number.
fn stamp(clock: &Arc<AtomicUsize>, at: &Arc<AtomicUsize>) -> impl Fn() + Send + 'static {
    let (clock, at) = (clock.clone(), at.clone());
    move || {
        assert_eq!(
            at.swap(clock.fetch_add(1, SeqCst) + 1, SeqCst),
            0,
            "runs once"
        );
    }
}

#[test]
fn loom_ctx_callback_added_while_the_finish_fires_runs_after_the_earlier_one() {
    // Race (issue 22, CTX 3): B is added from another thread while the cancel's callbacks
    // (A1, A2) may be running: before the finish, while firing, or after it. Each runs
    // once, and B after A1, in every interleaving.
    model("ctx callback added while firing", || {
        let ctx = hp::Ctx::beginning("r");
        let (clock, a, a2, b) = (counter(), counter(), counter(), counter());
        let sa = stamp(&clock, &a);
        ctx.add_done_callback(move |_| sa());
        let sa2 = stamp(&clock, &a2);
        ctx.add_done_callback(move |_| sa2());
        let c2 = ctx.clone();
        let t = thread::spawn(move || {
            c2.cancel();
        });
        let sb = stamp(&clock, &b);
        ctx.add_done_callback(move |_| sb());
        t.join().unwrap();
        // A1 had not started when B was added (or B was added before the finish), or
        // it has run: B starts after it. (A2, the last, may already be running when B
        // comes: B then runs at once, CTX 3.)
        assert!(a.load(SeqCst) >= 1 && a2.load(SeqCst) >= 1 && b.load(SeqCst) > a.load(SeqCst));
    });
}

#[test]
fn loom_future_callback_added_while_the_finish_fires_runs_after_the_earlier_one() {
    // The same race on a future's completion.
    model("future callback added while firing", || {
        let fut = hp::Fut::<u8>::new();
        let (clock, a, a2, b) = (counter(), counter(), counter(), counter());
        let sa = stamp(&clock, &a);
        fut.add_done_callback(move |_| sa());
        let sa2 = stamp(&clock, &a2);
        fut.add_done_callback(move |_| sa2());
        let f2 = fut.clone();
        let t = thread::spawn(move || {
            f2.set_result(1);
        });
        let sb = stamp(&clock, &b);
        fut.add_done_callback(move |_| sb());
        t.join().unwrap();
        // A1 had not started when B was added (or B was added before the finish), or
        // it has run: B starts after it. (A2, the last, may already be running when B
        // comes: B then runs at once, CTX 3.)
        assert!(a.load(SeqCst) >= 1 && a2.load(SeqCst) >= 1 && b.load(SeqCst) > a.load(SeqCst));
    });
}
