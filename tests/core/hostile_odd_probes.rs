//! Probes of the CTX and task-holder promises, written from SEMANTICS and the rustdoc only
//! (not from the code or its tests), as a hostile reviewer would. The seven findings they
//! made (callback chains of contexts, events and futures overflowing the stack, the
//! `remove_done_callback` deadlock, `async_with_timeout` polling work on a done context,
//! children missing from a finished context's tree, quadratic `Debug` of deep contexts)
//! are fixed; the probes stay as regression tests.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::in_child_process;
use common::multi_thread;
use machinery::helpers as hp;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---- CTX 3: chains of 100 000 links on a 2 MiB stack

#[test]
fn a_100_000_link_chain_of_future_callbacks_completes_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100_000_link_chain_of_future_callbacks_completes_on_a_small_stack",
        || {
            let futs: Vec<hp::Fut<u32>> = (0..100_000).map(|_| hp::Fut::new()).collect();
            for w in futs.windows(2) {
                let next = w[1].clone();
                w[0].add_done_callback(move |o| {
                    if let Ok(v) = o {
                        next.set_result(*v + 1);
                    }
                });
            }
            futs[0].set_result(1);
            assert_eq!(futs[99_999].result().unwrap(), 100_000);
        },
    );
}

#[test]
fn a_100_000_link_chain_of_context_callbacks_completes_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100_000_link_chain_of_context_callbacks_completes_on_a_small_stack",
        || {
            let ctxs: Vec<hp::Ctx> = (0..100_000)
                .map(|i| hp::Ctx::beginning(format!("c{i}")))
                .collect();
            for w in ctxs.windows(2) {
                let next = w[1].clone();
                w[0].add_done_callback(move |_| {
                    next.cancel();
                });
            }
            ctxs[0].cancel();
            assert!(ctxs.iter().all(hp::Ctx::cancelled));
        },
    );
}

#[test]
fn a_100_000_link_chain_of_event_callbacks_completes_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100_000_link_chain_of_event_callbacks_completes_on_a_small_stack",
        || {
            use hp::WaitByCallback;
            let events: Vec<hp::Event> = (0..100_000).map(|_| hp::Event::new()).collect();
            for w in events.windows(2) {
                let next = w[1].clone();
                WaitByCallback::add_done_callback(&w[0], Box::new(move || next.set()));
            }
            events[0].set();
            assert!(events.iter().all(hp::Event::is_set));
        },
    );
}

#[test]
fn a_100_000_deep_context_tree_cancels_formats_and_drops_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100_000_deep_context_tree_cancels_formats_and_drops_on_a_small_stack",
        || {
            let root = hp::Ctx::beginning("root");
            let mut chain = vec![root.clone()];
            for i in 0..100_000 {
                let next = chain.last().unwrap().child(format!("c{i}"));
                chain.push(next);
            }
            let leaf = chain.last().unwrap().clone();
            root.cancel();
            assert!(leaf.cancelled());
            // Robustness rules: every line of the dump has a bounded length.
            let tree = root.tree();
            assert!(tree.len() < 100_001 * 200, "tree is {} bytes", tree.len());
            drop(chain);
            drop(leaf);
        },
    );
}

#[test]
fn the_debug_of_a_deep_context_stays_linear_in_its_depth() {
    let root = hp::Ctx::beginning("root");
    let mut leaf = root.child("c");
    for i in 0..10_000 {
        leaf = leaf.child(format!("c{i}"));
    }
    let debug = format!("{leaf:?}");
    assert!(debug.len() < 10_001 * 300, "Debug is {} bytes", debug.len());
}

#[test]
fn dropping_the_last_handle_of_a_100_000_deep_chain_does_not_recurse() {
    in_child_process(
        module_path!(),
        "dropping_the_last_handle_of_a_100_000_deep_chain_does_not_recurse",
        || {
            let root = hp::Ctx::beginning("root");
            let mut leaf = root.child("c");
            for i in 0..100_000 {
                leaf = leaf.child(format!("c{i}"));
            }
            drop(leaf); // only the leaf's handle: every ancestor but the root goes with it
            assert_eq!(root.child_count(), 0);
        },
    );
}

// ---- CTX 1: outcome resolution

#[tokio::test]
async fn a_child_done_through_its_parent_still_accepts_its_own_error() {
    let root = hp::Ctx::beginning("a");
    let child = root.child("b");
    let grandchild = child.child("c");
    root.cancel();
    assert!(child.done() && child.cancelled());
    let e = hp::Error::msg("mine");
    assert!(child.set_exception(e.clone()));
    assert!(!child.cancelled() && !grandchild.cancelled());
    assert!(child.exception().unwrap().unwrap().same(&e));
    assert!(grandchild.exception().unwrap().unwrap().same(&e));
    assert!(grandchild.wait().await.error().unwrap().same(&e));
    assert!(!child.set_exception(hp::Error::msg("again")));
    assert!(!child.cancel());
}

#[tokio::test]
async fn the_nearest_failed_ancestor_wins_whatever_the_order() {
    for parent_first in [true, false] {
        let a = hp::Ctx::beginning("a");
        let b = a.child("b");
        let c = b.child("c");
        let (ea, eb) = (hp::Error::msg("a"), hp::Error::msg("b"));
        if parent_first {
            b.set_exception(eb.clone());
            a.set_exception(ea.clone());
        } else {
            a.set_exception(ea.clone());
            b.set_exception(eb.clone());
        }
        assert!(
            c.wait().await.error().unwrap().same(&eb),
            "parent first: {parent_first}"
        );
    }
}

#[test]
fn exception_of_a_pending_context_says_not_finished() {
    let ctx = hp::Ctx::beginning("a");
    assert!(matches!(ctx.exception(), Err(hp::StatusError::Pending)));
    ctx.cancel();
    assert!(matches!(ctx.exception(), Err(hp::StatusError::Cancelled)));
}

// ---- CTX 3: callbacks

#[test]
fn callbacks_run_once_in_registration_order_before_cancel_returns() {
    let ctx = hp::Ctx::beginning("a");
    let child = ctx.child("b");
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let l = log.clone();
        if i == 1 {
            child.add_on_done(move |c, how| {
                l.lock().unwrap().push(format!("{i} {} {how}", c.name()))
            });
        } else {
            child.add_done_callback(move |how| l.lock().unwrap().push(format!("{i} {how}")));
        }
    }
    ctx.cancel();
    assert_eq!(
        *log.lock().unwrap(),
        ["0 cancelled", "1 a-->b cancelled", "2 cancelled"]
    );
    child.set_exception(hp::Error::msg("later"));
    assert_eq!(log.lock().unwrap().len(), 3);
    let l = log.clone();
    child.add_done_callback(move |how| l.lock().unwrap().push(format!("late {how}")));
    assert_eq!(log.lock().unwrap().last().unwrap(), "late later");
}

#[test]
fn a_callback_may_cancel_add_create_children_and_drop_guards_without_deadlock() {
    with_deadline(|| {
        let root = hp::Ctx::beginning("a");
        let other = hp::Ctx::beginning("o");
        let guard = Mutex::new(Some(other.child("g").drop_guard()));
        let ran = Arc::new(AtomicUsize::new(0));
        let (r, root2) = (ran.clone(), root.clone());
        root.add_done_callback(move |_| {
            other.cancel();
            let c = root2.child("late");
            assert!(c.done());
            let r2 = r.clone();
            root2.add_done_callback(move |_| {
                r2.fetch_add(1, SeqCst);
            });
            drop(guard.lock().unwrap().take());
            r.fetch_add(1, SeqCst);
        });
        root.cancel();
        assert_eq!(ran.load(SeqCst), 2);
    });
}

fn with_deadline(f: impl FnOnce() + Send + 'static) {
    common::with_watchdog(f);
}

// ---- CTX 4 and Robustness: remove_done_callback with a closure owning a child's last handle

#[test]
fn removing_a_callback_that_owns_the_last_handle_of_a_child_returns_one() {
    with_deadline(|| {
        let root = hp::Ctx::beginning("a");
        let child = root.child("b");
        let guard = root.child("g").drop_guard();
        let handle = root.add_done_callback(move |_| {
            let _keep = (&child, &guard);
        });
        assert!(root.has_direct_done_callback(handle));
        assert_eq!(root.remove_done_callback(handle), 1);
        assert_eq!(root.remove_done_callback(handle), 0);
        assert_eq!(root.child_count(), 0);
    });
}

// ---- CTX 5: no context is leaked or forgotten

#[test]
fn a_context_nothing_refers_to_finishes_once_and_leaves_its_parent() {
    let root = hp::Ctx::beginning("a");
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let child = root.child("b");
    child.add_done_callback(move |how| {
        assert!(how.is_cancelled());
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(root.child_count(), 1);
    drop(child);
    assert_eq!(runs.load(SeqCst), 1);
    assert_eq!(root.child_count(), 0);
    root.cancel();
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn a_guard_cancels_its_context_even_while_clones_live() {
    let root = hp::Ctx::beginning("a");
    let guard = root.child("b").drop_guard();
    let clone = guard.ctx().clone();
    drop(guard);
    assert!(clone.cancelled());
    assert!(!root.done());
}

// ---- CTX 6: waits

#[tokio::test(start_paused = true)]
async fn waiting_for_two_siblings_finished_through_their_parent_returns() {
    let root = hp::Ctx::beginning("a");
    let (x, y) = (root.child("x"), root.child("y"));
    root.cancel();
    let waited = tokio::time::timeout(secs(1), root.wait_for_all(&[&x, &y])).await;
    assert!(waited.is_ok());
    let waited = tokio::time::timeout(secs(1), hp::wait_for_first(&[&x, &y])).await;
    assert!(waited.is_ok());
    tokio::time::timeout(secs(1), hp::wait_for_all(&[]))
        .await
        .unwrap();
}

// ---- CTX 7: names and Debug

#[test]
fn names_and_debug_follow_the_chain() {
    let a = hp::Ctx::beginning("a");
    let b = a.child_with("b", hp::CtxOptions::new().prefix("p"));
    assert_eq!(b.name(), "a-->[p]-->b");
    let c = a.child("c");
    a.cancel();
    assert_eq!(
        format!("{c:?}"),
        "CTX[a-->c](CANCELLED(FUT{a})|PENDING(FUT{a-->c}))"
    );
}

// ---- CTX 8: fut_to_string

#[test]
fn futures_are_formatted_as_the_seed_does() {
    let f = hp::Fut::<u8>::new();
    assert_eq!(hp::fut_to_string(&f), "<Future#None(pending)>");
    let g = hp::Fut::<u8>::named("g");
    g.set_exception(hp::Error::msg("bad"));
    assert_eq!(hp::fut_to_string(&g), "<Future#g(exception:Message:bad)>");
    assert_eq!(hp::fut_state_to_string(&g), "(exception:Message:bad)");
}

// ---- CTX 10: async_with_timeout

#[tokio::test(start_paused = true)]
async fn async_with_timeout_on_a_done_context_never_polls_the_work() {
    let ctx = hp::Ctx::beginning("a");
    ctx.cancel();
    let polled = Arc::new(AtomicUsize::new(0));
    let p = polled.clone();
    let out = ctx
        .async_with_timeout(async move {
            p.fetch_add(1, SeqCst);
            1
        })
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(polled.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_event_is_set_only_when_the_timeout_cut_the_work_short() {
    let ctx = hp::Ctx::beginning("a");
    let event = hp::Event::new();
    let out = ctx
        .async_with_timeout(async { 1 })
        .timeout(secs(1))
        .timeout_event(&event)
        .await;
    assert_eq!(out.unwrap(), 1);
    tokio::time::sleep(secs(5)).await;
    assert!(!event.is_set());

    let seen_before_cleanup = Arc::new(AtomicUsize::new(0));
    let (s, e) = (seen_before_cleanup.clone(), event.clone());
    let out = ctx
        .async_with_timeout_scoped(move |c| async move {
            c.wait().await;
            if e.is_set() {
                s.fetch_add(1, SeqCst);
            }
        })
        .timeout(secs(1))
        .timeout_event(&event)
        .await;
    assert!(out.is_err());
    assert!(event.is_set());
    assert_eq!(seen_before_cleanup.load(SeqCst), 1);
}

// ---- CTX 11: deadlines

#[tokio::test(start_paused = true)]
async fn a_deadline_finishes_with_deadline_exceeded_not_cancelled() {
    let root = hp::Ctx::beginning("a");
    let c = root.child_with_timeout("t", secs(2));
    let how = c.wait().await;
    assert!(!how.is_cancelled());
    assert!(how.error().unwrap().is::<hp::DeadlineExceeded>());
    assert!(!c.cancelled());
}

// ---- CTX 13: the tree shows what is alive

#[test]
fn a_finished_root_still_lists_its_live_children() {
    let root = hp::Ctx::beginning("a");
    let children: Vec<hp::Ctx> = (0..50).map(|i| root.child(format!("conn{i}"))).collect();
    root.cancel();
    assert_eq!(root.child_count(), 50);
    assert!(root.tree().contains("conn49"));
    drop(children);
    assert_eq!(root.child_count(), 0);
}

// ---- Task holder

#[test]
fn finish_waits_for_tasks_added_from_done_callbacks_on_the_multi_thread_runtime() {
    let (added, finished) = multi_thread(async {
        let ctx = hp::Ctx::beginning("a");
        let ts = hp::task_holder(&ctx);
        let handle = ts.handle();
        let finished = Arc::new(AtomicUsize::new(0));
        let added = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            let t = ts.spawn(tokio::task::yield_now());
            let (h, f, a) = (handle.clone(), finished.clone(), added.clone());
            t.add_done_callback(move |_| {
                let f2 = f.clone();
                a.fetch_add(1, SeqCst);
                h.spawn(async move {
                    tokio::task::yield_now().await;
                    f2.fetch_add(1, SeqCst);
                });
            });
        }
        ts.finish().await;
        (added.load(SeqCst), finished.load(SeqCst))
    });
    assert_eq!((added, finished), (200, 200));
}

#[tokio::test(start_paused = true)]
async fn pending_is_zero_inside_the_done_callback_of_the_last_task() {
    let ctx = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&ctx);
    let handle = ts.handle();
    let seen = Arc::new(Mutex::new(None));
    let t = ts.spawn(async { tokio::time::sleep(secs(1)).await });
    let s = seen.clone();
    t.add_done_callback(move |_| *s.lock().unwrap() = Some(handle.pending()));
    assert!(ts.contains(&t));
    ts.finish().await;
    assert_eq!(*seen.lock().unwrap(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn held_tasks_iterate_in_insertion_order_and_leave_when_finished() {
    let ctx = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&ctx);
    let a = ts.spawn(async { tokio::time::sleep(secs(3)).await });
    let b = ts.spawn(async {
        tokio::time::sleep(secs(1)).await;
        "b"
    });
    let c = ts.spawn(async {
        tokio::time::sleep(secs(2)).await;
        3u8
    });
    let ids: Vec<hp::TaskId> = ts.iter().map(|t| t.id()).collect();
    assert_eq!(ids, [a.id(), b.id(), c.id()]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!ts.contains(&b));
    assert!(ts.contains(&a) && ts.contains(&c));
    assert_eq!(ts.pending(), 2);
    ts.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_done_context_cancels_held_tasks_and_finish_waits_for_their_cleanup() {
    let root = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&root);
    let cleaned = Arc::new(AtomicUsize::new(0));
    let c = cleaned.clone();
    let scoped = ts.spawn_scoped("cleaner", move |ctx| async move {
        ctx.wait().await;
        tokio::time::sleep(secs(1)).await;
        c.fetch_add(1, SeqCst);
    });
    let plain = ts.spawn(std::future::pending::<()>());
    tokio::time::sleep(secs(1)).await;
    root.cancel();
    let start = tokio::time::Instant::now();
    ts.finish().await;
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(cleaned.load(SeqCst), 1);
    assert!(plain.cancelled());
    assert!(scoped.done());
}

#[tokio::test(start_paused = true)]
async fn a_failing_scoped_body_cancels_the_held_tasks_and_returns_its_error() {
    let root = hp::Ctx::beginning("a");
    let held = Arc::new(Mutex::new(None));
    let h = held.clone();
    let e = hp::Error::msg("body failed");
    let e2 = e.clone();
    let out: Result<(), hp::Error> = hp::task_holder_scope(&root, async move |ts| {
        *h.lock().unwrap() = Some(ts.spawn(std::future::pending::<()>()));
        Err(e2)
    })
    .await;
    assert!(out.unwrap_err().same(&e));
    assert!(held.lock().unwrap().as_ref().unwrap().cancelled());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_finish_future_cancels_what_is_left() {
    let root = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&root);
    let t = ts.spawn(std::future::pending::<()>());
    let cut = tokio::time::timeout(secs(1), ts.finish()).await;
    assert!(cut.is_err());
    tokio::task::yield_now().await;
    assert!(t.cancelled());
}

/// A value whose `Drop` adds a task to the holder that dropped it.
struct AddsOnDrop(hp::TaskHolderHandle, Arc<AtomicUsize>);

impl Drop for AddsOnDrop {
    fn drop(&mut self) {
        let ran = self.1.clone();
        self.0.spawn(async move {
            ran.fetch_add(1, SeqCst);
        });
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_future_whose_drop_adds_to_the_holder_does_not_deadlock() {
    let root = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&root);
    let ran = Arc::new(AtomicUsize::new(0));
    let value = AddsOnDrop(ts.handle(), ran.clone());
    ts.spawn(async move {
        let _value = value;
        tokio::time::sleep(secs(1)).await;
    });
    tokio::time::timeout(secs(10), ts.finish()).await.unwrap();
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn a_holder_of_100_000_finished_tasks_holds_none() {
    let pending = multi_thread(async {
        let ctx = hp::Ctx::beginning("a");
        let ts = hp::task_holder(&ctx);
        for _ in 0..100_000 {
            ts.spawn(async {});
        }
        while ts.pending() > 0 {
            tokio::task::yield_now().await;
        }
        let pending = ts.pending();
        ts.finish().await;
        pending
    });
    assert_eq!(pending, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_holder_cancels_what_is_left() {
    let root = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&root);
    let t = ts.spawn(std::future::pending::<()>());
    drop(ts);
    tokio::time::sleep(secs(1)).await;
    assert!(t.cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_task_spawned_elsewhere_is_held_until_it_finishes() {
    let root = hp::Ctx::beginning("a");
    let ts = hp::task_holder(&root);
    let t = hp::Task::spawn(async { tokio::time::sleep(secs(1)).await });
    let held = ts.add_task(t.clone());
    assert!(ts.contains(&t) && ts.contains(&held));
    tokio::time::sleep(secs(2)).await;
    assert!(!ts.contains(&t));
    ts.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_scoped_body_cancels_the_held_tasks_and_returns_the_panic() {
    let root = hp::Ctx::beginning("a");
    let held = Arc::new(Mutex::new(None));
    let h = held.clone();
    let out: Result<(), hp::Error> = hp::task_holder_scope(&root, async move |ts| {
        *h.lock().unwrap() = Some(ts.spawn(std::future::pending::<()>()));
        if always() {
            panic!("body boom");
        }
        Ok::<(), hp::Error>(())
    })
    .await;
    assert!(out.unwrap_err().is::<hp::Panicked>());
    assert!(held.lock().unwrap().as_ref().unwrap().cancelled());
}

fn always() -> bool {
    true
}

#[tokio::test(start_paused = true)]
async fn the_reporter_logs_each_error_once_and_never_a_cancellation() {
    let log = common::Log::default();
    let root =
        hp::Ctx::beginning_with("a", hp::CtxOptions::new().log(common::Capture(log.clone())));
    let child = root.child("b"); // no logger of its own: uses its parent's
    let failing = child.async_as_background_reported(async { Err::<(), _>(hp::Error::msg("bad")) });
    let _ = failing.await;
    let cancelled = child.async_as_background_reported(std::future::pending::<()>());
    cancelled.cancel();
    let _ = cancelled.await;
    tokio::time::sleep(secs(1)).await;
    // The task's value is an Err, not a failure: nothing to report. Fail the task itself.
    let failing = child.async_as_background_reported(async {
        if always() {
            panic!("task boom");
        }
    });
    let _ = failing.await;
    tokio::time::sleep(secs(1)).await;
    let lines = common::take(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("exception a-->b"), "{lines:?}");
    assert!(lines[0].contains("task boom"), "{lines:?}");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_task_handle_detaches_the_task_and_its_reporter_still_runs() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let t = hp::Task::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        r.fetch_add(1, SeqCst);
    });
    let reported = Arc::new(AtomicUsize::new(0));
    let rep = reported.clone();
    t.add_done_callback(move |_| {
        rep.fetch_add(1, SeqCst);
    });
    drop(t);
    tokio::time::sleep(secs(2)).await;
    assert_eq!((ran.load(SeqCst), reported.load(SeqCst)), (1, 1));
}

#[test]
fn a_live_child_keeps_its_parent_alive_until_it_goes() {
    let root = hp::Ctx::beginning("a");
    let parent = root.child("p");
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    parent.add_done_callback(move |_| {
        f.fetch_add(1, SeqCst);
    });
    let child = parent.child("c");
    drop(parent);
    assert_eq!(finished.load(SeqCst), 0);
    assert!(!child.done());
    assert_eq!(root.child_count(), 1);
    drop(child);
    assert_eq!(finished.load(SeqCst), 1);
    assert_eq!(root.child_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_something_already_done_yields_exactly_once() {
    let ctx = hp::Ctx::beginning("a");
    let done = hp::Fut::<u8>::new();
    done.set_result(1);
    let waits: [&dyn hp::WaitByCallback; 1] = [&done];
    let mut w = tokio_test::task::spawn(ctx.wait_for_first(&waits));
    assert!(w.poll().is_pending());
    tokio::time::timeout(secs(1), w).await.unwrap();
    let mut w = tokio_test::task::spawn(hp::wait_for_all(&waits));
    assert!(w.poll().is_pending());
    tokio::time::timeout(secs(1), w).await.unwrap();
}
