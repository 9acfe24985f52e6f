//! Robustness round 3 (issue 22): chains finished or dropped at thread exit, and what a
//! holder's `finish()` waits for when a task ends inside a callback.
//!
//! Thread exit (SEMANTICS CTX 3, Robustness rules): a user's thread-local registered
//! before the crate's is destroyed after them, so its destructor runs when the crate's
//! own per-thread bookkeeping (the finishing trampoline, the drop lists) is gone. A chain
//! it finishes or drops there must still run iteratively, on a 2 MiB stack, to the end.
//! Each test builds its chain on a fresh 2 MiB thread whose user thread-local was
//! touched first, hands the finishing work to that thread-local's destructor, and checks
//! after the thread is joined (its destructors have run) that every link was done.
//! Everything runs in a child process: an overflow kills the child, not the suite.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};

use futures::StreamExt;
use machinery::helpers::{self as hp, Ctx, Fut};

use crate::common;
use common::{in_child_process, on_small_stack};

const CHAIN: usize = 100_000;

/// Counts drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Work run by a user thread-local's destructor.
type ExitWork = Box<dyn FnOnce()>;

/// A user thread-local whose destructor runs the work it was given.
struct AtExit(RefCell<Vec<ExitWork>>);

impl Drop for AtExit {
    fn drop(&mut self) {
        for work in self.0.take() {
            work();
        }
    }
}

thread_local! {
    static AT_EXIT: AtExit = const { AtExit(RefCell::new(Vec::new())) };
}

/// Uses every per-thread list of the crate once, so each is set up (and its destructor
/// registered) after [`AT_EXIT`]'s, hence destroyed before it runs.
fn touch_the_crates_thread_locals() {
    // The finishing trampoline: a finish with a callback.
    let f = Fut::<()>::new();
    f.add_done_callback(|_| {});
    f.set_result(());
    // The queues' drop list: a queue dropped with an item in it.
    let ctx = Ctx::beginning("touch");
    let q = hp::sync_queue::<u8>(&ctx).build();
    q.append(1).unwrap();
    drop(q);
    // The generators' trampoline, scope and drop list: one polled to its end, then dropped.
    let mut g = counter(1);
    assert_eq!(poll_to_end(&mut g, 100), [0]);
    drop(g);
}

/// Runs `setup` on a new thread with a 2 MiB stack whose user thread-local is set up
/// before the crate's; the work `setup` returns runs in that thread-local's destructor,
/// after the crate's thread-locals were destroyed. Returns once the thread is gone.
fn at_thread_exit(setup: impl FnOnce() -> ExitWork + Send + 'static) {
    on_small_stack(move || {
        AT_EXIT.with(|_| {}); // first: destroyed last
        touch_the_crates_thread_locals();
        let work = setup();
        AT_EXIT.with(|a| a.0.borrow_mut().push(work));
    });
}

/// `n` roots, each one's done callback cancelling the next; at thread exit the first is
/// cancelled. Every callback has run when that `cancel()` returns.
fn a_context_chain_cancelled_at_thread_exit(n: usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let when_returned = Arc::new(AtomicUsize::new(usize::MAX));
    let (c, w) = (count.clone(), when_returned.clone());
    at_thread_exit(move || {
        let roots: Vec<Ctx> = (0..n).map(|i| Ctx::beginning(format!("r{i}"))).collect();
        for i in 0..n - 1 {
            let next = roots[i + 1].clone();
            let count = c.clone();
            roots[i].add_done_callback(move |_| {
                count.fetch_add(1, SeqCst);
                assert!(next.cancel());
            });
        }
        Box::new(move || {
            assert!(roots[0].cancel());
            w.store(c.load(SeqCst), SeqCst);
            assert!(roots[n - 1].cancelled());
        })
    });
    assert_eq!(count.load(SeqCst), n - 1);
    assert_eq!(when_returned.load(SeqCst), n - 1);
}

#[test]
fn a_3_000_context_chain_cancelled_by_a_thread_local_destructor_runs_every_callback() {
    in_child_process(
        module_path!(),
        "a_3_000_context_chain_cancelled_by_a_thread_local_destructor_runs_every_callback",
        || a_context_chain_cancelled_at_thread_exit(3_000),
    );
}

#[test]
fn a_100_000_context_chain_cancelled_by_a_thread_local_destructor_runs_every_callback() {
    in_child_process(
        module_path!(),
        "a_100_000_context_chain_cancelled_by_a_thread_local_destructor_runs_every_callback",
        || a_context_chain_cancelled_at_thread_exit(CHAIN),
    );
}

#[test]
fn a_100_000_context_chain_dropped_by_a_thread_local_destructor_finishes_every_link() {
    in_child_process(
        module_path!(),
        "a_100_000_context_chain_dropped_by_a_thread_local_destructor_finishes_every_link",
        || {
            // Root i's callback holds the last handle of root i + 1: dropping root 0
            // finishes it as cancelled (CTX 5), its callback runs and is dropped, which
            // drops root i + 1's last handle, and so on.
            let count = Arc::new(AtomicUsize::new(0));
            let c = count.clone();
            at_thread_exit(move || {
                let mut next: Option<Ctx> = None;
                for i in (0..CHAIN).rev() {
                    let ctx = Ctx::beginning(format!("r{i}"));
                    let (held, count) = (next.take(), c.clone());
                    ctx.add_done_callback(move |failure| {
                        assert!(failure.is_cancelled());
                        count.fetch_add(1, SeqCst);
                        drop(held);
                    });
                    next = Some(ctx);
                }
                let head = next.expect("CHAIN > 0");
                Box::new(move || drop(head))
            });
            assert_eq!(count.load(SeqCst), CHAIN);
        },
    );
}

#[test]
fn a_100_000_future_chain_completed_by_a_thread_local_destructor_runs_every_callback() {
    in_child_process(
        module_path!(),
        "a_100_000_future_chain_completed_by_a_thread_local_destructor_runs_every_callback",
        || {
            let count = Arc::new(AtomicUsize::new(0));
            let c = count.clone();
            at_thread_exit(move || {
                let futs: Vec<Fut<usize>> = (0..CHAIN).map(|_| Fut::new()).collect();
                for i in 0..CHAIN - 1 {
                    let (next, count) = (futs[i + 1].clone(), c.clone());
                    futs[i].add_done_callback(move |o| {
                        count.fetch_add(1, SeqCst);
                        assert!(next.set_result(*o.as_ref().unwrap() + 1));
                    });
                }
                Box::new(move || {
                    assert!(futs[0].set_result(0));
                    assert_eq!(futs[CHAIN - 1].result().unwrap(), CHAIN - 1);
                })
            });
            assert_eq!(count.load(SeqCst), CHAIN - 1);
        },
    );
}

#[test]
fn a_100_000_future_chain_dropped_pending_by_a_thread_local_destructor_drops_every_link() {
    in_child_process(
        module_path!(),
        "a_100_000_future_chain_dropped_pending_by_a_thread_local_destructor_drops_every_link",
        || {
            // Future i's callback (never run) holds future i + 1 and a drop counter.
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            at_thread_exit(move || {
                let mut next: Option<Fut<()>> = None;
                for _ in 0..CHAIN {
                    let fut = Fut::<()>::new();
                    let (held, counted) = (next.take(), Counted(d.clone()));
                    fut.add_done_callback(move |_| {
                        let _ = (&held, &counted);
                        unreachable!("never finished");
                    });
                    next = Some(fut);
                }
                let head = next.expect("CHAIN > 0");
                Box::new(move || drop(head))
            });
            assert_eq!(drops.load(SeqCst), CHAIN);
        },
    );
}

#[test]
fn a_100_000_event_chain_set_by_a_thread_local_destructor_runs_every_callback() {
    in_child_process(
        module_path!(),
        "a_100_000_event_chain_set_by_a_thread_local_destructor_runs_every_callback",
        || {
            let count = Arc::new(AtomicUsize::new(0));
            let c = count.clone();
            at_thread_exit(move || {
                let events: Vec<hp::Event> = (0..CHAIN).map(|_| hp::Event::new()).collect();
                for i in 0..CHAIN - 1 {
                    let (next, count) = (events[i + 1].clone(), c.clone());
                    events[i].add_done_callback(move || {
                        count.fetch_add(1, SeqCst);
                        next.set();
                    });
                }
                Box::new(move || {
                    events[0].set();
                    assert!(events[CHAIN - 1].is_set());
                })
            });
            assert_eq!(count.load(SeqCst), CHAIN - 1);
        },
    );
}

/// An item of a sync queue holding the next queue of the chain.
struct Link {
    _next: Option<hp::SyncQueue<Link>>,
    _counted: Counted,
}

#[test]
fn a_100_000_sync_queue_chain_dropped_by_a_thread_local_destructor_drops_every_link() {
    in_child_process(
        module_path!(),
        "a_100_000_sync_queue_chain_dropped_by_a_thread_local_destructor_drops_every_link",
        || {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            at_thread_exit(move || {
                let ctx = Ctx::beginning("chain");
                let mut head: Option<hp::SyncQueue<Link>> = None;
                for _ in 0..CHAIN {
                    let q = hp::sync_queue::<Link>(&ctx).build();
                    assert!(
                        q.append(Link {
                            _next: head.take(),
                            _counted: Counted(d.clone()),
                        })
                        .is_ok()
                    );
                    head = Some(q);
                }
                Box::new(move || drop(head))
            });
            assert_eq!(drops.load(SeqCst), CHAIN);
        },
    );
}

/// A generator yielding `0..n` at once.
fn counter(n: u32) -> hp::AsyncGenerator<u32> {
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        for i in 0..n {
            co.yield_(i).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

/// A stage relaying every item of the stage before it; counts its drop.
fn relay(inner: hp::AsyncGenerator<u32>, drops: &Arc<AtomicUsize>) -> hp::AsyncGenerator<u32> {
    let counted = Counted(drops.clone());
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        let _counted = counted;
        let mut inner = inner;
        while let Some(v) = inner.next().await {
            co.yield_(v).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

fn relay_chain(stages: usize, drops: &Arc<AtomicUsize>) -> hp::AsyncGenerator<u32> {
    let mut g = counter(3);
    for _ in 0..stages {
        g = relay(g, drops);
    }
    g
}

/// Polls `g` with a waker that does nothing until it ends (at most `max_polls` polls).
fn poll_to_end(g: &mut hp::AsyncGenerator<u32>, max_polls: usize) -> Vec<u32> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut got = Vec::new();
    for _ in 0..max_polls {
        let next = pin!(g.next());
        match next.poll(&mut cx) {
            Poll::Ready(Some(v)) => got.push(v),
            Poll::Ready(None) => return got,
            Poll::Pending => {}
        }
    }
    panic!("still running after {max_polls} polls, got {got:?}");
}

#[test]
fn a_100_000_generator_chain_run_and_dropped_by_a_thread_local_destructor_drops_every_stage() {
    in_child_process(
        module_path!(),
        "a_100_000_generator_chain_run_and_dropped_by_a_thread_local_destructor_drops_every_stage",
        || {
            let drops = Arc::new(AtomicUsize::new(0));
            let got = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (d, g2) = (drops.clone(), got.clone());
            at_thread_exit(move || {
                let run = relay_chain(CHAIN, &d);
                let never_started = relay_chain(CHAIN, &d);
                Box::new(move || {
                    let mut run = run;
                    *g2.lock().unwrap() = poll_to_end(&mut run, 1_000_000);
                    drop(run);
                    drop(never_started);
                })
            });
            assert_eq!(*got.lock().unwrap(), [0, 1, 2]);
            assert_eq!(drops.load(SeqCst), 2 * CHAIN);
        },
    );
}

// ---------------------------------------------------------------------------------------
// Settle order: `finish()` waits for everything a held task's callbacks queued.
// ---------------------------------------------------------------------------------------

/// What happened, in order.
type Events = Arc<std::sync::Mutex<Vec<&'static str>>>;

fn push(events: &Events, what: &'static str) {
    events.lock().unwrap().push(what);
}

/// Task → future F → future G: the task's done callback completes F, F's completes G, and
/// G's blocks 300 ms (long enough for a `finish` woken too early to close the holder)
/// before it adds a task to the holder, which records that it ran.
fn chain_to_a_late_add(task: &hp::Task<()>, ts: hp::TaskHolderHandle, events: &Events) {
    let (f, g) = (Fut::<()>::new(), Fut::<()>::new());
    let (f2, g2) = (f.clone(), g.clone());
    task.add_done_callback(move |_| {
        f2.set_result(());
    });
    f.add_done_callback(move |_| {
        g2.set_result(());
    });
    let events = events.clone();
    g.add_done_callback(move |_| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let e = events.clone();
        let added = ts.spawn(async move { push(&e, "added task ran") });
        if added.cancelled() {
            push(&events, "added task refused");
        }
    });
}

#[test]
fn finish_waits_for_work_queued_two_callbacks_deep_by_a_task_that_ends_normally() {
    // The task ends on the runtime (outermost finishing call): its callbacks, what they
    // queued and the added task all come before `finish` returns.
    let events: Events = Default::default();
    let e = events.clone();
    common::multi_thread(async move {
        let ctx = Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = ts.spawn(async move {
            let _ = rx.await;
        });
        chain_to_a_late_add(&task, ts.handle(), &e);
        drop(task);
        let _ = tx.send(());
        ts.finish().await;
        push(&e, "finish returned");
    });
    assert_eq!(
        *events.lock().unwrap(),
        ["added task ran", "finish returned"]
    );
}

#[test]
fn finish_waits_for_work_queued_two_callbacks_deep_by_a_task_ended_inside_a_callback() {
    // The held task runs on runtime B; a callback on a plain thread drops B, whose
    // shutdown drops the task's future there: the task ends inside finishing work (a
    // nested finish), and its callbacks and their work are queued behind that callback.
    // `finish` (on runtime A, already waiting) must still return only after the task
    // added two callbacks deep has run.
    let events: Events = Default::default();
    let e = events.clone();
    let rt_a = common::multi_thread_runtime();
    let rt_b = common::current_thread();
    let ctx = Ctx::beginning_with("app", hp::CtxOptions::new().runtime(rt_a.handle().clone()));
    let ts = hp::task_holder(&ctx);
    let task = {
        let _b = rt_b.enter();
        hp::Ctx::beginning("b").async_as_background(std::future::pending::<()>())
    };
    let task = ts.add_task(task);
    chain_to_a_late_add(&task, ts.handle(), &e);
    drop(task);
    let trigger = Fut::<()>::new();
    let t2 = trigger.clone();
    trigger.add_done_callback(move |_| drop(rt_b));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        rx.recv().unwrap();
        t2.set_result(());
    });
    common::with_watchdog(move || {
        rt_a.block_on(async move {
            let signal = async move {
                tx.send(()).unwrap(); // `finish` is waiting by now
            };
            tokio::join!(ts.finish(), signal);
            push(&e, "finish returned");
        });
    });
    thread.join().unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        ["added task ran", "finish returned"]
    );
}
