//! `Ctx::wait` registers the polling task's waker itself with the context (no callback
//! box): re-polls with another waker, dropped waits, waits racing the finish, a waker
//! whose `Drop` or `wake` re-enters the crate, and many waiters at once.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use machinery::helpers::{Ctx, Failure};

/// Counts its wakes; optionally runs `on_wake` / `on_drop` (user code in a waker).
struct Counting {
    woken: AtomicUsize,
    on_wake: Option<Box<dyn Fn() + Send + Sync>>,
    on_drop: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::new(Counting {
            woken: AtomicUsize::new(0),
            on_wake: None,
            on_drop: None,
        })
    }
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, SeqCst);
        if let Some(f) = &self.on_wake {
            f();
        }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if let Some(f) = &self.on_drop {
            f();
        }
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F, w: &Arc<Counting>) -> Poll<F::Output> {
    let waker = Waker::from(w.clone());
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

#[test]
fn a_repoll_with_another_waker_moves_the_registration_to_it() {
    let root = Ctx::beginning("root");
    let mut wait = root.wait();
    let (a, b) = (Counting::new(), Counting::new());
    assert!(poll_once(&mut wait, &a).is_pending());
    assert!(poll_once(&mut wait, &a).is_pending()); // same task: kept as is
    assert!(poll_once(&mut wait, &b).is_pending());
    // The replaced waker was dropped (only our handle is left).
    assert_eq!(Arc::strong_count(&a), 1);
    root.cancel();
    assert_eq!((a.woken.load(SeqCst), b.woken.load(SeqCst)), (0, 1));
    assert!(matches!(
        poll_once(&mut wait, &b),
        Poll::Ready(Failure::Cancelled)
    ));
    drop(wait);
    assert_eq!(Arc::strong_count(&b), 1);
}

#[test]
fn dropped_pending_waits_leave_no_waker_behind() {
    let root = Ctx::beginning("root");
    let w = Counting::new();
    for _ in 0..100_000 {
        let mut wait = root.wait();
        assert!(poll_once(&mut wait, &w).is_pending());
    }
    assert_eq!(Arc::strong_count(&w), 1);
    root.cancel();
    assert_eq!(w.woken.load(SeqCst), 0);
}

#[test]
fn a_wait_on_a_done_context_is_ready_at_once_and_keeps_no_waker() {
    let root = Ctx::beginning("root");
    let child = root.child("c").drop_guard();
    root.set_exception(machinery::helpers::Error::msg("boom"));
    let w = Counting::new();
    let mut wait = child.wait();
    assert!(matches!(
        poll_once(&mut wait, &w),
        Poll::Ready(Failure::Error(_))
    ));
    assert_eq!(Arc::strong_count(&w), 1);
}

/// A waker whose `wake` cancels another context and whose `Drop` (run when the finish
/// lets go of it) creates and cancels one: user code re-entering the crate while the
/// finish runs its registrations, with no lock held.
#[test]
fn a_waker_re_entering_the_crate_from_wake_and_drop_is_run_outside_the_lock() {
    let root = Ctx::beginning("root");
    let other = Ctx::beginning("other");
    let dropped = Arc::new(AtomicUsize::new(0));
    let (o, r, d) = (other.clone(), root.clone(), dropped.clone());
    let w = Arc::new(Counting {
        woken: AtomicUsize::new(0),
        on_wake: Some(Box::new(move || {
            o.cancel();
            // The same node's lock is free: this registers and runs at once.
            let _ = r.child("from wake").drop_guard();
        })),
        on_drop: Some(Box::new(move || {
            let c = Ctx::beginning("from drop").drop_guard();
            c.cancel();
            d.fetch_add(1, SeqCst);
        })),
    });
    let mut wait = root.wait();
    assert!(poll_once(&mut wait, &w).is_pending());
    drop(w); // the registration holds the last handle
    root.cancel();
    assert!(other.done());
    assert_eq!(dropped.load(SeqCst), 1);
    let w2 = Counting::new();
    assert!(poll_once(&mut wait, &w2).is_ready());
}

#[test]
fn waits_racing_the_finish_on_another_thread_are_each_woken_or_ready() {
    for _ in 0..200 {
        let root = Ctx::beginning("root");
        let barrier = Arc::new(Barrier::new(2));
        let (r, b) = (root.clone(), barrier.clone());
        let t = thread::spawn(move || {
            b.wait();
            r.cancel();
        });
        barrier.wait();
        let wakers: Vec<_> = (0..200).map(|_| Counting::new()).collect();
        let mut waits: Vec<_> = (0..200).map(|_| root.wait()).collect();
        let pending: Vec<bool> = waits
            .iter_mut()
            .zip(&wakers)
            .map(|(w, k)| poll_once(w, k).is_pending())
            .collect();
        t.join().unwrap();
        for ((w, k), was_pending) in waits.iter_mut().zip(&wakers).zip(pending) {
            if was_pending {
                assert_eq!(k.woken.load(SeqCst), 1);
            }
            assert!(poll_once(w, k).is_ready());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_awaiting_one_context_all_finish_after_the_cancel() {
    let root = Ctx::beginning("root");
    let tasks: Vec<_> = (0..10_000).map(|_| tokio::spawn(root.wait())).collect();
    tokio::task::yield_now().await;
    root.cancel();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Failure::Cancelled));
    }
}

#[tokio::test(start_paused = true)]
async fn a_select_loop_polling_a_wait_again_and_again_keeps_one_registration() {
    let root = Ctx::beginning("root");
    let mut wait = pin!(root.wait());
    for _ in 0..1_000 {
        tokio::select! {
            biased;
            _ = &mut wait => unreachable!(),
            _ = tokio::task::yield_now() => {}
        }
    }
    let r = root.clone();
    tokio::spawn(async move { r.cancel() });
    assert!(matches!(wait.await, Failure::Cancelled));
}
