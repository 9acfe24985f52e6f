//! Hostile tests of the task holder's fast path (issue 15): a held task is made and held
//! before it is spawned, and its link tells the holder that it is done and settled
//! without a done callback. Each test states the rule it checks; a hang fails through
//! the watchdog.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use machinery::helpers as hp;

use crate::common;
use common::{current_thread, in_child_process, multi_thread, with_watchdog};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn a_spawn_without_a_runtime_panics_and_leaves_nothing_held_or_counted() {
    // The task is held before it is spawned; the spawn panics (no runtime), the body is
    // dropped, and its guard finishes the task as cancelled: it is released and settled
    // exactly once (a second settle would wrap the count and keep `finish` waiting).
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let cleaned = Arc::new(AtomicBool::new(false));
        let c = cleaned.clone();
        let guard = OnDrop(move || c.store(true, SeqCst));
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ts.spawn(async move {
                let _guard = guard;
            })
        }));
        assert!(spawned.is_err(), "spawning needs a runtime");
        assert!(cleaned.load(SeqCst), "the future was dropped");
        assert_eq!(ts.pending(), 0);
        assert_eq!(ts.iter().count(), 0);
        assert!(!ts.is_closed());
        current_thread().block_on(async {
            let t = ts.spawn(async { 7 });
            assert_eq!(t.await.unwrap(), 7);
            ts.finish().await;
        });
    });
}

#[test]
fn a_task_added_to_a_closed_holder_is_never_polled_and_its_future_is_dropped() {
    // Rejected work is cancelled before it is spawned: it never runs, its `Drop` cleanup
    // does, and it ends cancelled without being held.
    with_watchdog(|| {
        current_thread().block_on(async {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            ts.cancel_all();
            let (ran, dropped) = (counter(), counter());
            let mut tasks = Vec::new();
            for _ in 0..100 {
                let (r, d) = (ran.clone(), dropped.clone());
                let guard = OnDrop(move || {
                    d.fetch_add(1, SeqCst);
                });
                tasks.push(ts.spawn(async move {
                    let _guard = guard;
                    r.fetch_add(1, SeqCst);
                }));
            }
            assert_eq!(ts.pending(), 0);
            for t in &tasks {
                t.wait().await;
                assert!(t.cancelled());
                assert!(!ts.contains(t));
            }
            assert_eq!(ran.load(SeqCst), 0);
            assert_eq!(dropped.load(SeqCst), 100);
        });
    });
}

#[test]
fn cancelling_the_holder_while_another_thread_spawns_leaves_nothing_running() {
    // A task cancelled between being held and being spawned is aborted as soon as it is
    // spawned: every task ends, so `finish` returns (else the watchdog fails the test).
    for round in 0..20 {
        multi_thread(async move {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            let h = ts.handle();
            let added = counter();
            let a = added.clone();
            let spawner = tokio::spawn(async move {
                let mut tasks = Vec::new();
                while !h.is_closed() {
                    tasks.push(h.spawn(std::future::pending::<()>()));
                    a.fetch_add(1, SeqCst);
                }
                // A few more on the closed holder.
                for _ in 0..10 {
                    tasks.push(h.spawn(std::future::pending::<()>()));
                }
                tasks
            });
            while added.load(SeqCst) < 200 + round * 50 {
                tokio::task::yield_now().await;
            }
            ts.cancel_all();
            let tasks = spawner.await.unwrap();
            ts.finish().await;
            for t in &tasks {
                t.wait().await;
                assert!(t.cancelled());
            }
        });
    }
}

/// A holder whose tasks go to a runtime of their own that nobody drives: dropping that
/// runtime drops their bodies wherever it is dropped.
fn holder_on_an_idle_runtime() -> (hp::TaskHolder, tokio::runtime::Runtime) {
    let idle = current_thread();
    let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().runtime(idle.handle().clone()));
    (hp::task_holder(&ctx), idle)
}

/// Drops `rt` inside the done callbacks of a future: inside finishing work.
fn drop_inside_finishing_work(rt: tokio::runtime::Runtime) {
    let trigger = hp::Fut::<()>::new();
    let mut rt = Some(rt);
    trigger.add_done_callback(move |_| drop(rt.take()));
    trigger.set_result(());
}

#[test]
fn held_tasks_finished_inside_finishing_work_are_released_before_their_callbacks() {
    // Dropping the runtime inside a done callback drops the held tasks' bodies there:
    // each task finishes nested (queued for the outermost finishing call). The link still
    // releases the task before its done callbacks run, each callback runs once, and the
    // holder ends empty and finishes.
    with_watchdog(|| {
        let (ts, idle) = holder_on_an_idle_runtime();
        let (seen_held, called) = (counter(), counter());
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let t = ts.spawn(std::future::pending::<()>());
            let (h, t2) = (ts.handle(), t.clone());
            let (seen, called) = (seen_held.clone(), called.clone());
            t.add_done_callback(move |outcome| {
                assert!(matches!(outcome, Err(hp::Failure::Cancelled)));
                if h.contains(&t2) {
                    seen.fetch_add(1, SeqCst);
                }
                called.fetch_add(1, SeqCst);
            });
            tasks.push(t);
        }
        assert_eq!(ts.pending(), 100);
        drop_inside_finishing_work(idle);
        for t in &tasks {
            assert!(t.cancelled());
        }
        assert_eq!(seen_held.load(SeqCst), 0, "released before its callbacks");
        assert_eq!(called.load(SeqCst), 100);
        assert_eq!(ts.pending(), 0);
        current_thread().block_on(ts.finish());
    });
}

#[test]
fn a_hundred_thousand_held_tasks_finished_inside_one_callback_run_in_constant_stack() {
    // 100 000 held tasks whose bodies are dropped inside one done callback: each finish
    // is queued, none recurses; the holder ends empty, on a 2 MiB stack.
    in_child_process(
        module_path!(),
        "a_hundred_thousand_held_tasks_finished_inside_one_callback_run_in_constant_stack",
        || {
            let (ts, idle) = holder_on_an_idle_runtime();
            let done = counter();
            for _ in 0..100_000 {
                let t = ts.spawn_silent(std::future::pending::<()>());
                let d = done.clone();
                t.add_done_callback(move |_| {
                    d.fetch_add(1, SeqCst);
                });
            }
            drop_inside_finishing_work(idle);
            assert_eq!(done.load(SeqCst), 100_000);
            assert_eq!(ts.pending(), 0);
            current_thread().block_on(ts.finish());
        },
    );
}

#[test]
fn tasks_finishing_after_their_holder_was_dropped_release_into_nothing() {
    // Scoped work outlives a dropped holder (it is never aborted, it sees its context
    // cancelled); its link then finds the holder's state emptied, and nothing breaks.
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                ts.spawn_scoped(format!("w{i}"), move |ctx| async move {
                    ctx.wait().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    i
                })
            })
            .collect();
        drop(ts);
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i);
        }
    });
}

#[test]
fn panicking_held_tasks_nobody_holds_are_reported_once_and_released() {
    // Half of 400 held tasks panic with nobody holding their handles: each failure is
    // logged once through the link, every task is released, and `finish` returns.
    with_watchdog(|| {
        let log = common::Capture::default();
        let reported = current_thread().block_on(async {
            let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(log.clone()));
            let ts = hp::task_holder(&ctx);
            for i in 0..400 {
                drop(ts.spawn(async move {
                    if i % 2 == 0 {
                        panic!("task {i}");
                    }
                }));
            }
            let h = ts.handle();
            ts.finish().await;
            assert_eq!(h.pending(), 0);
            common::take(&log.0)
        });
        assert_eq!(reported.len(), 200, "{reported:?}");
    });
}
