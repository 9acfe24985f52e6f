//! Hostile tests for the core: contexts, futures, events, tasks and the waits over them.
//!
//! By class (SEMANTICS, Robustness rules and CTX 3):
//! - a user value dropped by the crate (a removed callback, a callback that never ran, a
//!   refused outcome) re-enters the crate, on the same object and on its relatives;
//! - chains of 100 000 links (callbacks that finish the next context, future, event or
//!   task; a 100 000-deep context tree; chains of drops) on a 2 MiB stack, each in a
//!   child process so an overflow fails the test instead of aborting the suite;
//! - panics in every piece of user code (callbacks and their `Drop`s);
//! - several waiters, and cancellation at every await point;
//! - both runtimes, the multi-thread one under a watchdog.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use machinery::helpers::{self as hp, Ctx, Event, Fut, Task};

use crate::common;
use common::{Boom, in_child_process, multi_thread, with_watchdog};

/// Runs `f` when dropped: the user `Drop` of a value captured by a closure.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A value whose `Drop` panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a user Drop panicked");
    }
}

const CHAIN: usize = 100_000;

// ---------------------------------------------------------------------------------------
// Class 1: no user value is dropped, and no user code runs, under a lock of the crate.
// ---------------------------------------------------------------------------------------

/// The callback on `root` captures the last handle of a child of `root`: removing it
/// drops the child, whose drop unregisters from `root`.
fn remove_a_callback_holding_the_last_child_handle() {
    let root = Ctx::beginning("root");
    let child = root.child("child");
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let h = root.add_done_callback(move |_| {
        let _keep = &child;
        s.fetch_add(1, SeqCst);
    });
    assert_eq!(root.remove_done_callback(h), 1);
    assert_eq!(
        root.child_count(),
        0,
        "the child was dropped and unregistered"
    );
    assert_eq!(root.remove_done_callback(h), 0);
    root.cancel();
    assert_eq!(seen.load(SeqCst), 0, "a removed callback never runs");
}

#[test]
fn removing_a_callback_that_holds_the_last_handle_of_a_child_returns_one() {
    with_watchdog(remove_a_callback_holding_the_last_child_handle);
}

#[test]
fn removing_a_callback_that_holds_the_last_handle_of_a_child_returns_one_on_both_runtimes() {
    multi_thread(async {
        let mut joins = Vec::new();
        for _ in 0..64 {
            joins.push(tokio::spawn(async {
                remove_a_callback_holding_the_last_child_handle();
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
    });
}

#[test]
fn removing_a_callback_that_holds_a_guard_cancels_the_child_and_returns_one() {
    with_watchdog(|| {
        let root = Ctx::beginning("root");
        let guard = root.child("guarded").drop_guard();
        let watch = guard.ctx().clone();
        let h = root.add_done_callback(move |_| drop(guard));
        assert_eq!(root.remove_done_callback(h), 1);
        assert!(
            watch.cancelled(),
            "dropping the guard cancelled its context"
        );
        assert!(!root.done());
    });
}

#[test]
fn removing_a_callback_that_holds_a_queue_built_on_the_context_returns_one() {
    with_watchdog(|| {
        let rt = common::current_thread();
        rt.block_on(async {
            let root = Ctx::beginning("root");
            let q: hp::Queue<u32> = hp::queue(&root).build();
            let h = root.add_done_callback(move |_| drop(q));
            assert_eq!(root.remove_done_callback(h), 1);
            assert_eq!(root.child_count(), 0);
        });
    });
}

#[test]
fn removing_a_callback_whose_drop_re_enters_the_same_object_returns_one() {
    with_watchdog(|| {
        // Context: the captured value's Drop adds and removes callbacks on the same node.
        let root = Ctx::beginning("root");
        let r = root.clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let guard = OnDrop(move || {
            let ran = ran2.clone();
            let h = r.add_done_callback(move |_| {
                ran.fetch_add(1, SeqCst);
            });
            assert!(r.has_direct_done_callback(h));
        });
        let h = root.add_done_callback(move |_| drop(guard));
        assert_eq!(root.remove_done_callback(h), 1);
        root.cancel();
        assert_eq!(ran.load(SeqCst), 1, "the callback added from the Drop ran");

        // Future.
        let fut = Fut::<u32>::new();
        let f2 = fut.clone();
        let guard = OnDrop(move || {
            f2.add_done_callback(|_| {});
            let _ = f2.done();
        });
        let h = fut.add_done_callback(move |_| drop(guard));
        assert_eq!(fut.remove_done_callback(h), 1);
        assert!(fut.set_result(1));

        // Event.
        let ev = Event::new();
        let e2 = ev.clone();
        let guard = OnDrop(move || e2.set());
        let h = ev.add_done_callback(move || drop(guard));
        assert_eq!(ev.remove_done_callback(h), 1);
        assert!(ev.is_set(), "the Drop set the event");
    });
}

#[test]
fn a_refused_outcome_is_dropped_outside_the_lock() {
    with_watchdog(|| {
        let fut = Fut::<OnDrop<Box<dyn FnMut() + Send + Sync>>>::new();
        assert!(fut.set_result(OnDrop(Box::new(|| {}))));
        let f2 = fut.clone();
        let refused = OnDrop(Box::new(move || {
            // Re-enters the same future while its outcome is being refused.
            f2.add_done_callback(|_| {});
            assert!(!f2.cancel());
        }) as Box<dyn FnMut() + Send + Sync>);
        assert!(!fut.set_result(refused));
    });
}

#[test]
fn a_removed_callback_whose_drop_panics_is_still_removed_and_the_panic_is_caught() {
    let root = Ctx::beginning("root");
    let p = PanicOnDrop;
    let h = root.add_done_callback(move |_| drop(p));
    assert_eq!(root.remove_done_callback(h), 1);
    assert!(!root.has_direct_done_callback(h));

    let fut = Fut::<()>::new();
    let p = PanicOnDrop;
    let h = fut.add_done_callback(move |_| drop(p));
    assert_eq!(fut.remove_done_callback(h), 1);

    let ev = Event::new();
    let p = PanicOnDrop;
    let h = ev.add_done_callback(move || drop(p));
    assert_eq!(ev.remove_done_callback(h), 1);
}

#[test]
fn a_callback_may_drop_the_last_handle_of_the_context_it_is_registered_on() {
    with_watchdog(|| {
        let root = Ctx::beginning("root");
        let child = root.child("c");
        let slot = Arc::new(Mutex::new(Some(child.clone())));
        let s = slot.clone();
        let seen = Arc::new(AtomicUsize::new(0));
        let n = seen.clone();
        child.add_done_callback(move |_| {
            s.lock().unwrap().take(); // the last handle but the callback's own context
            n.fetch_add(1, SeqCst);
        });
        drop(child);
        root.cancel();
        assert_eq!(seen.load(SeqCst), 1);
        assert!(slot.lock().unwrap().is_none());
        assert_eq!(root.child_count(), 0);
    });
}

// ---------------------------------------------------------------------------------------
// Class 2: chains of 100 000 links in constant stack (2 MiB, in a child process).
// ---------------------------------------------------------------------------------------

#[test]
fn a_chain_of_100000_futures_each_completing_the_next_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100000_futures_each_completing_the_next_runs_on_a_small_stack",
        || {
            let futs: Vec<Fut<usize>> = (0..CHAIN).map(|_| Fut::new()).collect();
            let order = Arc::new(Mutex::new(Vec::with_capacity(CHAIN)));
            for i in 0..CHAIN - 1 {
                let next = futs[i + 1].clone();
                let order = order.clone();
                futs[i].add_done_callback(move |o| {
                    let v = *o.as_ref().unwrap();
                    order.lock().unwrap().push(v);
                    assert!(next.set_result(v + 1));
                    assert!(next.done(), "a nested finish changes the state at once");
                });
            }
            assert!(futs[0].set_result(0));
            // Every callback ran before the outermost set_result returned.
            assert_eq!(futs[CHAIN - 1].result().unwrap(), CHAIN - 1);
            let order = order.lock().unwrap();
            assert_eq!(order.len(), CHAIN - 1);
            assert!(order.iter().enumerate().all(|(i, v)| i == *v));
        },
    );
}

#[test]
fn a_chain_of_100000_events_each_setting_the_next_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100000_events_each_setting_the_next_runs_on_a_small_stack",
        || {
            let events: Vec<Event> = (0..CHAIN).map(|_| Event::new()).collect();
            let count = Arc::new(AtomicUsize::new(0));
            for i in 0..CHAIN - 1 {
                let next = events[i + 1].clone();
                let count = count.clone();
                events[i].add_done_callback(move || {
                    count.fetch_add(1, SeqCst);
                    next.set();
                });
            }
            events[0].set();
            assert!(events[CHAIN - 1].is_set());
            assert_eq!(count.load(SeqCst), CHAIN - 1);
        },
    );
}

#[test]
fn a_chain_of_100000_contexts_each_cancelling_the_next_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100000_contexts_each_cancelling_the_next_runs_on_a_small_stack",
        || {
            let roots: Vec<Ctx> = (0..CHAIN)
                .map(|i| Ctx::beginning(format!("r{i}")))
                .collect();
            let count = Arc::new(AtomicUsize::new(0));
            for i in 0..CHAIN - 1 {
                let next = roots[i + 1].clone();
                let count = count.clone();
                roots[i].add_done_callback(move |_| {
                    count.fetch_add(1, SeqCst);
                    assert!(next.cancel());
                });
            }
            assert!(roots[0].cancel());
            assert!(roots[CHAIN - 1].cancelled());
            assert_eq!(count.load(SeqCst), CHAIN - 1);
        },
    );
}

/// Adds to task `i` (done) a callback that adds the next link to task `i + 1` (done):
/// each runs at once when added from outside finishing work, and is queued from inside.
fn link_tasks(tasks: Arc<Vec<Task<usize>>>, i: usize, count: Arc<AtomicUsize>) {
    let t = tasks[i].clone();
    t.add_done_callback(move |o| {
        // A task's callback sees how it finished; its output stays for the joiner.
        assert!(o.is_ok());
        assert_eq!(tasks[i].result().unwrap(), i);
        count.fetch_add(1, SeqCst);
        if i + 1 < tasks.len() {
            link_tasks(tasks, i + 1, count);
        }
    });
}

#[test]
fn a_chain_of_100000_tasks_each_linking_the_next_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100000_tasks_each_linking_the_next_runs_on_a_small_stack",
        || {
            let rt = common::current_thread();
            rt.block_on(async {
                let tasks: Vec<Task<usize>> =
                    (0..CHAIN).map(|i| Task::spawn(async move { i })).collect();
                let last = tasks[CHAIN - 1].clone();
                last.wait().await;
                for t in &tasks {
                    t.wait().await;
                }
                let count = Arc::new(AtomicUsize::new(0));
                link_tasks(Arc::new(tasks), 0, count.clone());
                assert_eq!(count.load(SeqCst), CHAIN);
            });
        },
    );
}

#[test]
fn a_mixed_chain_of_100000_links_through_every_kind_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_mixed_chain_of_100000_links_through_every_kind_runs_on_a_small_stack",
        || {
            // fut -> event -> ctx -> fut -> ... each link's callback finishes the next.
            let n = CHAIN / 3;
            let futs: Vec<Fut<()>> = (0..n).map(|_| Fut::new()).collect();
            let events: Vec<Event> = (0..n).map(|_| Event::new()).collect();
            let ctxs: Vec<Ctx> = (0..n).map(|_| Ctx::beginning("c")).collect();
            for i in 0..n {
                let e = events[i].clone();
                futs[i].add_done_callback(move |_| e.set());
                let c = ctxs[i].clone();
                events[i].add_done_callback(move || {
                    c.set_exception(Boom("link"));
                });
                if i + 1 < n {
                    let f = futs[i + 1].clone();
                    ctxs[i].add_done_callback(move |_| {
                        f.cancel();
                    });
                }
            }
            futs[0].set_result(());
            assert_eq!(
                ctxs[n - 1].exception().unwrap().unwrap().to_string(),
                "link"
            );
        },
    );
}

/// A chain `root --> c --> c --> ...` `CHAIN` deep; returns the root and the deepest.
fn deep_chain(depth: usize) -> (Ctx, Ctx) {
    let root = Ctx::beginning("root");
    let mut c = root.clone();
    for _ in 0..depth {
        c = c.child("c");
    }
    (root, c)
}

#[test]
fn a_100000_deep_tree_cancels_formats_and_drops_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100000_deep_tree_cancels_formats_and_drops_on_a_small_stack",
        || {
            let (root, deepest) = deep_chain(CHAIN);
            let name = deepest.name();
            assert_eq!(name.len(), "root".len() + CHAIN * "-->c".len());
            let debug = format!("{deepest:?}");
            // The full name once, then a bounded part per context.
            assert!(
                debug.len() < name.len() + 30 * (CHAIN + 1),
                "Debug is linear: {}",
                debug.len()
            );
            assert!(debug.ends_with("|PENDING(FUT{...-->c}))"));
            assert_eq!(
                deepest.tree(),
                "...-->c [pending]\n",
                "the deepest context's own tree is one bounded line"
            );
            let tree = root.tree();
            assert_eq!(tree.lines().count(), CHAIN + 1);
            assert!(
                tree.len() < 70 * (CHAIN + 1),
                "tree is linear: {}",
                tree.len()
            );

            let seen = Arc::new(AtomicUsize::new(0));
            let s = seen.clone();
            deepest.add_done_callback(move |how| {
                assert!(how.is_cancelled());
                s.fetch_add(1, SeqCst);
            });
            assert!(root.cancel());
            assert!(deepest.cancelled());
            assert_eq!(seen.load(SeqCst), 1);
            assert!(root.tree().lines().all(|l| l.len() < 200));
            drop(root);
            drop(deepest); // frees the whole chain, one node after the other
        },
    );
}

#[test]
fn dropping_a_100000_deep_chain_of_pending_contexts_runs_every_callback_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "dropping_a_100000_deep_chain_of_pending_contexts_runs_every_callback_on_a_small_stack",
        || {
            let root = Ctx::beginning("root");
            let (_, deepest) = {
                let mut c = root.child("c");
                let count = Arc::new(AtomicUsize::new(0));
                for _ in 0..CHAIN {
                    let n = count.clone();
                    c.add_done_callback(move |_| {
                        n.fetch_add(1, SeqCst);
                    });
                    c = c.child("c");
                }
                (count, c)
            };
            drop(deepest);
            assert_eq!(root.child_count(), 0, "the whole chain was freed");
        },
    );
}

#[test]
fn dropping_chains_of_100000_unrun_callbacks_each_holding_the_next_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "dropping_chains_of_100000_unrun_callbacks_each_holding_the_next_runs_on_a_small_stack",
        || {
            // Futures: each one's pending callback holds the next future.
            let first = Fut::<()>::new();
            let mut last = first.clone();
            for _ in 0..CHAIN {
                let next = Fut::<()>::new();
                let n = next.clone();
                last.add_done_callback(move |_| drop(n));
                last = next;
            }
            drop(last);
            drop(first);

            // Events.
            let first = Event::new();
            let mut last = first.clone();
            for _ in 0..CHAIN {
                let next = Event::new();
                let n = next.clone();
                last.add_done_callback(move || drop(n));
                last = next;
            }
            drop(last);
            drop(first);

            // Contexts: dropping a pending root runs its callbacks, which drop the next.
            let dropped = Arc::new(AtomicUsize::new(0));
            let first = Ctx::beginning("r");
            let mut last = first.clone();
            for _ in 0..CHAIN {
                let next = Ctx::beginning("r");
                let n = next.clone();
                let d = dropped.clone();
                last.add_done_callback(move |how| {
                    assert!(how.is_cancelled());
                    d.fetch_add(1, SeqCst);
                    drop(n);
                });
                last = next;
            }
            drop(last);
            drop(first);
            assert_eq!(dropped.load(SeqCst), CHAIN);
        },
    );
}

// ---------------------------------------------------------------------------------------
// Class 3: the tree dump stays linear and shows what is alive (CTX 13).
// ---------------------------------------------------------------------------------------

#[test]
fn the_tree_of_a_3000_deep_chain_is_linear_with_bounded_lines() {
    let (root, deepest) = deep_chain(3000);
    let tree = root.tree();
    assert_eq!(tree.lines().count(), 3001);
    // A line: at most 32 columns of indentation, `[depth N] `, a name of at most 120
    // bytes (past that `...-->` and the own segment), the state.
    let longest = tree.lines().map(str::len).max().unwrap();
    assert!(longest <= 32 + 13 + 120 + 11, "longest line {longest}");
    assert!(tree.len() < 3001 * 70, "{} bytes", tree.len());
    // Indentation grows with depth up to the cap, then the depth is a number.
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines[0], "root [pending]");
    assert_eq!(lines[1], "  root-->c [pending]");
    assert_eq!(lines[3], "      root-->c-->c-->c [pending]");
    let pad = " ".repeat(32);
    assert_eq!(
        lines[16],
        format!("{pad}root{} [pending]", "-->c".repeat(16))
    );
    assert_eq!(
        lines[17],
        format!("{pad}[depth 17] root{} [pending]", "-->c".repeat(17))
    );
    // "root" and 29 segments are 120 bytes; the 30th makes the name long.
    assert_eq!(
        lines[29],
        format!("{pad}[depth 29] root{} [pending]", "-->c".repeat(29))
    );
    assert_eq!(lines[30], format!("{pad}[depth 30] ...-->c [pending]"));
    assert_eq!(
        lines[3000],
        format!("{}[depth 3000] ...-->c [pending]", " ".repeat(32))
    );
    drop(deepest);
}

#[test]
fn the_tree_at_shutdown_shows_every_child_still_draining_with_its_own_state() {
    let root = Ctx::beginning("srv");
    let conns: Vec<Ctx> = (0..50).map(|i| root.child(format!("conn-{i}"))).collect();
    conns[3].set_exception(Boom("reset"));
    root.cancel();
    assert_eq!(
        root.child_count(),
        50,
        "finished children that exist still count"
    );
    let tree = root.tree();
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 51);
    assert_eq!(lines[0], "srv [cancelled]");
    assert!(lines.contains(&"  srv-->conn-0 [done (through an ancestor)]"));
    assert!(lines.contains(&"  srv-->conn-3 [exception Boom: reset]"));
    // A child created after the parent finished is created done and listed too.
    let late = root.child("late");
    assert!(late.cancelled());
    assert_eq!(root.child_count(), 51);
    drop(late);
    drop(conns);
    assert_eq!(
        root.child_count(),
        0,
        "each child leaves the registry when dropped"
    );
    assert_eq!(root.tree(), "srv [cancelled]\n");
}

#[test]
fn creating_and_dropping_a_million_children_of_a_finished_context_holds_memory_flat() {
    let root = Ctx::beginning("root");
    root.cancel();
    let keep = root.child("keep");
    for _ in 0..1_000_000 {
        let c = root.child("c");
        assert!(c.done());
    }
    assert_eq!(root.child_count(), 1);
    drop(keep);
    assert_eq!(root.child_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Class 4: panics in user code are caught and everything else still happens.
// ---------------------------------------------------------------------------------------

#[test]
fn a_panicking_callback_in_the_middle_of_a_chain_does_not_stop_the_chain() {
    let futs: Vec<Fut<()>> = (0..10).map(|_| Fut::new()).collect();
    let count = Arc::new(AtomicUsize::new(0));
    for i in 0..9 {
        futs[i].add_done_callback(|_| panic!("user callback"));
        let next = futs[i + 1].clone();
        let c = count.clone();
        futs[i].add_done_callback(move |_| {
            c.fetch_add(1, SeqCst);
            next.set_result(());
        });
        futs[i].add_done_callback(|_| panic!("another"));
    }
    futs[0].set_result(());
    assert!(futs[9].done());
    assert_eq!(count.load(SeqCst), 9);

    // Contexts: the panicking callback of a parent; the child's still run.
    let root = Ctx::beginning("r");
    let child = root.child("c");
    root.add_done_callback(|_| panic!("root callback"));
    let c = count.clone();
    child.add_done_callback(move |_| {
        c.fetch_add(1, SeqCst);
    });
    root.cancel();
    assert_eq!(count.load(SeqCst), 10);
}

#[test]
fn callbacks_that_never_ran_and_panic_when_dropped_are_each_dropped_without_aborting() {
    let fut = Fut::<()>::new();
    let seen = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let p = PanicOnDrop;
        fut.add_done_callback(move |_| drop(p));
        let s = seen.clone();
        let d = OnDrop(move || {
            s.fetch_add(1, SeqCst);
        });
        fut.add_done_callback(move |_| drop(d));
    }
    drop(fut);
    assert_eq!(
        seen.load(SeqCst),
        3,
        "the other callbacks were still dropped"
    );

    let ev = Event::new();
    for _ in 0..3 {
        let p = PanicOnDrop;
        ev.add_done_callback(move || drop(p));
    }
    drop(ev);
}

#[test]
fn a_context_whose_last_handle_drops_runs_its_callbacks_even_if_one_panics() {
    let count = Arc::new(AtomicUsize::new(0));
    let root = Ctx::beginning("r");
    let child = root.child("c");
    child.add_done_callback(|_| panic!("first"));
    let c = count.clone();
    child.add_done_callback(move |how| {
        assert!(how.is_cancelled());
        c.fetch_add(1, SeqCst);
    });
    drop(child);
    assert_eq!(count.load(SeqCst), 1);
    assert_eq!(root.child_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Class 5: several waiters, cancellation at every await point, both runtimes.
// ---------------------------------------------------------------------------------------

/// Wakes 200 waiters of each kind (future, event, context, task) with one finish each.
async fn many_waiters() -> usize {
    let fut = Fut::<u32>::new();
    let ev = Event::new();
    let root = Ctx::beginning("r");
    let ctx = root.child("c");
    let gate = Fut::<()>::new();
    let g = gate.clone();
    let task = Task::spawn(async move {
        let _ = g.await;
        5u32
    });
    let woken = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..200 {
        let (f, e, c, t, w) = (
            fut.clone(),
            ev.clone(),
            ctx.clone(),
            task.clone(),
            woken.clone(),
        );
        joins.push(tokio::spawn(async move {
            assert_eq!(f.await.unwrap(), 3);
            e.wait().await;
            assert!(c.wait().await.is_cancelled());
            // Many waiters: each waits for the finish and reads a clone of the output
            // (only one joiner could take it by value).
            t.wait().await;
            assert_eq!(t.result().unwrap(), 5);
            w.fetch_add(1, SeqCst);
        }));
    }
    tokio::task::yield_now().await;
    fut.set_result(3);
    ev.set();
    root.cancel();
    gate.set_result(());
    for j in joins {
        j.await.unwrap();
    }
    woken.load(SeqCst)
}

#[tokio::test]
async fn every_waiter_of_one_finish_wakes_on_the_current_thread_runtime() {
    assert_eq!(many_waiters().await, 200);
}

#[test]
fn every_waiter_of_one_finish_wakes_on_the_multi_thread_runtime() {
    assert_eq!(multi_thread(many_waiters()), 200);
}

/// A user `WaitByCallback` that counts registrations still in place.
#[derive(Default)]
struct Counting {
    done: std::sync::atomic::AtomicBool,
    live: Mutex<Vec<(hp::CallbackHandle, hp::DoneCallback)>>,
}

impl hp::WaitByCallback for Counting {
    fn done(&self) -> bool {
        self.done.load(SeqCst)
    }
    fn cancel(&self) -> bool {
        false
    }
    fn add_done_callback(&self, cb: hp::DoneCallback) -> hp::CallbackHandle {
        let h = hp::CallbackHandle::new();
        self.live.lock().unwrap().push((h, cb));
        h
    }
    fn remove_done_callback(&self, handle: hp::CallbackHandle) -> usize {
        let mut live = self.live.lock().unwrap();
        let before = live.len();
        live.retain(|(h, _)| *h != handle);
        before - live.len()
    }
}

impl Counting {
    fn finish(&self) {
        self.done.store(true, SeqCst);
        let cbs = std::mem::take(&mut *self.live.lock().unwrap());
        for (_, cb) in cbs {
            cb();
        }
    }
    fn registered(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

#[tokio::test]
async fn waits_dropped_at_every_await_point_leave_no_registration_behind() {
    use futures_util::FutureExt;
    let a = Counting::default();
    let b = Counting::default();

    // Never polled.
    drop(hp::wait_for_first(&[&a, &b]));
    drop(hp::WaitDone::new(&a));
    assert_eq!((a.registered(), b.registered()), (0, 0));

    // Polled once (registered), then dropped: a select! branch that lost.
    assert!(hp::wait_for_all(&[&a, &b]).now_or_never().is_none());
    assert_eq!((a.registered(), b.registered()), (0, 0));
    let mut w = Box::pin(hp::WaitDone::new(&a));
    assert!((&mut w).now_or_never().is_none());
    assert_eq!(a.registered(), 1);
    drop(w);
    assert_eq!(a.registered(), 0);

    // One finished, the other still pending when wait_for_first returns.
    let both: [&dyn hp::WaitByCallback; 2] = [&a, &b];
    let mut first = Box::pin(hp::wait_for_first(&both));
    assert!((&mut first).now_or_never().is_none());
    a.finish();
    assert!((&mut first).now_or_never().is_some());
    drop(first);
    assert_eq!(b.registered(), 0, "the pending one's callback was removed");

    // The same over the crate's own types, through select!.
    let root = Ctx::beginning("r");
    let fut = Fut::<u8>::new();
    let ev = Event::new();
    for _ in 0..1000 {
        tokio::select! {
            biased;
            _ = root.wait() => unreachable!(),
            _ = fut.wait() => unreachable!(),
            _ = ev.wait() => unreachable!(),
            _ = std::future::ready(()) => {}
        }
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    fut.add_done_callback(move |_| {
        s.fetch_add(1, SeqCst);
    });
    fut.set_result(1);
    assert_eq!(seen.load(SeqCst), 1, "only the one live callback ran");
}

#[test]
fn cancelling_trees_while_others_grow_and_dump_them_never_deadlocks() {
    multi_thread(async {
        for round in 0..50 {
            let root = Ctx::beginning(format!("r{round}"));
            let r = root.clone();
            let grower = tokio::spawn(async move {
                let mut kept = Vec::new();
                for i in 0..200 {
                    let c = r.child(format!("c{i}"));
                    let g = c.child("g").drop_guard();
                    let _ = r.tree();
                    if i % 3 == 0 {
                        kept.push(c);
                    }
                    drop(g);
                    tokio::task::yield_now().await;
                }
                kept
            });
            tokio::task::yield_now().await;
            root.cancel();
            let _ = root.tree();
            let kept = grower.await.unwrap();
            assert!(kept.iter().all(Ctx::done));
            assert_eq!(root.child_count(), kept.len());
            drop(kept);
            assert_eq!(root.child_count(), 0);
        }
    });
}

// ---------------------------------------------------------------------------------------
// Class 6: the API (identity, run_until_cancelled, no clash with the trait).
// ---------------------------------------------------------------------------------------

#[test]
fn importing_wait_by_callback_keeps_the_inherent_callback_methods() {
    #[allow(unused_imports)]
    use hp::WaitByCallback;
    let root = Ctx::beginning("r");
    let guard = root.child("g").drop_guard();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let h = guard.add_done_callback(move |how| s.lock().unwrap().push(how.to_string()));
    assert_eq!(guard.remove_done_callback(h), 1);
    let s = seen.clone();
    guard.add_done_callback(move |how| s.lock().unwrap().push(how.to_string()));
    let s = seen.clone();
    root.add_done_callback(move |how| s.lock().unwrap().push(format!("root {how}")));
    let fut = Fut::<u8>::new();
    let s = seen.clone();
    fut.add_done_callback(move |o| s.lock().unwrap().push(format!("fut {}", o.is_ok())));
    let ev = Event::new();
    let s = seen.clone();
    ev.add_done_callback(move || s.lock().unwrap().push("ev".to_owned()));
    assert!(guard.cancel());
    fut.set_result(1);
    ev.set();
    root.cancel();
    assert_eq!(
        *seen.lock().unwrap(),
        ["cancelled", "fut true", "ev", "root cancelled"]
    );
}

#[test]
// Clippy sees the interior mutability of the shared state; the hash is the identity,
// which never changes (users keying maps by handles allow this lint the same way).
#[allow(clippy::mutable_key_type)]
fn contexts_futures_and_events_compare_and_hash_by_identity() {
    use std::collections::HashSet;
    let a = Ctx::beginning("same");
    let b = Ctx::beginning("same");
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    let set: HashSet<Ctx> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert!(set.contains(&a));

    let f = Fut::<u8>::new();
    let g = Fut::<u8>::new();
    assert_eq!(f, f.clone());
    assert_ne!(f, g);
    let set: HashSet<Fut<u8>> = [f.clone(), f.clone(), g].into_iter().collect();
    assert_eq!(set.len(), 2);

    let e = Event::new();
    assert_eq!(e, e.clone());
    assert_ne!(e, Event::new());
    let set: HashSet<Event> = [e.clone(), e.clone(), Event::new()].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn run_until_cancelled_never_polls_the_work_once_the_context_is_done() {
    let root = Ctx::beginning("r");
    let start = tokio::time::Instant::now();
    let out = root
        .run_until_cancelled(async {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            "done"
        })
        .await;
    assert_eq!(out, Some("done"));
    assert_eq!(start.elapsed(), std::time::Duration::from_secs(2));

    // Cancelled while the work waits: None at that instant, the work dropped.
    let child = root.child_with_timeout("t", std::time::Duration::from_secs(3));
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let out = child
        .run_until_cancelled(async move {
            let _d = OnDrop(move || {
                d.fetch_add(1, SeqCst);
            });
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), std::time::Duration::from_secs(5));
    assert_eq!(dropped.load(SeqCst), 1);

    // Already done: the work is never polled.
    root.cancel();
    let polled = Arc::new(AtomicUsize::new(0));
    let p = polled.clone();
    let out = root
        .clone()
        .run_until_cancelled_owned(async move {
            p.fetch_add(1, SeqCst);
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(polled.load(SeqCst), 0);
}

#[test]
fn run_until_cancelled_returns_none_for_a_cancel_from_another_thread() {
    let out = multi_thread(async {
        let root = Ctx::beginning("r");
        let r = root.clone();
        let canceller = tokio::spawn(async move {
            tokio::task::yield_now().await;
            r.cancel();
        });
        let out = root.run_until_cancelled(std::future::pending::<()>()).await;
        canceller.await.unwrap();
        out
    });
    assert_eq!(out, None);
}

// ---------------------------------------------------------------------------------------
// Class 1 again: user values the API keeps (outcomes, loggers, work) re-enter on drop.
// ---------------------------------------------------------------------------------------

/// A value whose `Drop` calls back into the crate: cancels `ctx`, sets `ev`, completes
/// `fut`, and adds and removes callbacks on all three.
struct ReEnter {
    ctx: Ctx,
    ev: Event,
    fut: Fut<u8>,
    hits: Arc<AtomicUsize>,
}

impl Drop for ReEnter {
    fn drop(&mut self) {
        let h = self.ctx.add_done_callback(|_| {});
        self.ctx.remove_done_callback(h);
        self.ctx.cancel();
        let h = self.ev.add_done_callback(|| {});
        self.ev.remove_done_callback(h);
        self.ev.set();
        let h = self.fut.add_done_callback(|_| {});
        self.fut.remove_done_callback(h);
        self.fut.set_result(1);
        let _ = format!("{:?} {}", self.ctx, self.ctx.tree());
        self.hits.fetch_add(1, SeqCst);
    }
}

fn re_enter(root: &Ctx, hits: &Arc<AtomicUsize>) -> (ReEnter, Ctx, Event, Fut<u8>) {
    let ctx = root.child("re");
    let (ev, fut) = (Event::new(), Fut::new());
    let value = ReEnter {
        ctx: ctx.clone(),
        ev: ev.clone(),
        fut: fut.clone(),
        hits: hits.clone(),
    };
    (value, ctx, ev, fut)
}

#[test]
fn values_kept_by_futures_contexts_and_events_may_re_enter_the_crate_when_dropped() {
    with_watchdog(|| {
        let root = Ctx::beginning("root");
        let hits = Arc::new(AtomicUsize::new(0));

        // A future's outcome, dropped with the future.
        let (v, ctx, ev, fut) = re_enter(&root, &hits);
        let holder = Fut::<Arc<ReEnter>>::new();
        holder.set_result(Arc::new(v));
        drop(holder);
        assert!(ctx.cancelled() && ev.is_set() && fut.done());

        // A callback run by a finish, on a future, an event and a context.
        for kind in 0..3 {
            let (v, ctx, ev, fut) = re_enter(&root, &hits);
            match kind {
                0 => {
                    let f = Fut::<()>::new();
                    f.add_done_callback(move |_| drop(v));
                    f.cancel();
                }
                1 => {
                    let e = Event::new();
                    e.add_done_callback(move || drop(v));
                    e.set();
                }
                _ => {
                    let c = root.child("c");
                    c.add_done_callback(move |_| drop(v));
                    c.cancel();
                }
            }
            assert!(ctx.cancelled() && ev.is_set() && fut.done());
        }

        // A callback removed, and one never run (its future dropped pending).
        let (v, ..) = re_enter(&root, &hits);
        let f = Fut::<()>::new();
        let h = f.add_done_callback(move |_| drop(v));
        assert_eq!(f.remove_done_callback(h), 1);
        let (v, ..) = re_enter(&root, &hits);
        let f = Fut::<()>::new();
        f.add_done_callback(move |_| drop(v));
        drop(f);

        // A context's logger, dropped with the context.
        #[derive(Clone)]
        struct DropLogger(#[allow(dead_code)] Arc<Mutex<Option<ReEnter>>>);
        impl hp::Logger for DropLogger {
            fn info(&self, _: &str, _: &str) {}
            fn exception(&self, _: &str, _: &str, _: Option<&hp::Error>) {}
        }
        let (v, ctx, ..) = re_enter(&root, &hits);
        let logged = Ctx::beginning_with(
            "logged",
            hp::CtxOptions::new().log(DropLogger(Arc::new(Mutex::new(Some(v))))),
        );
        drop(logged);
        assert!(ctx.cancelled());

        assert_eq!(hits.load(SeqCst), 7);
        assert!(!root.done());
    });
}

#[tokio::test(start_paused = true)]
async fn work_cut_short_by_async_with_timeout_may_re_enter_the_crate_when_dropped() {
    let root = Ctx::beginning("root");
    let hits = Arc::new(AtomicUsize::new(0));
    let (v, ctx, ev, fut) = re_enter(&root, &hits);
    let out = root
        .async_with_timeout(async move {
            let _v = v;
            std::future::pending::<()>().await;
        })
        .timeout(std::time::Duration::from_secs(1))
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert!(ctx.cancelled() && ev.is_set() && fut.done());
    assert_eq!(hits.load(SeqCst), 1);

    // And the work of run_until_cancelled, dropped when the context finishes first.
    let (v, ctx, ..) = re_enter(&root, &hits);
    let c = root.child_with_timeout("t", std::time::Duration::from_secs(1));
    let out = c
        .run_until_cancelled(async move {
            let _v = v;
            std::future::pending::<()>().await;
        })
        .await;
    assert_eq!(out, None);
    assert!(ctx.cancelled());
    assert_eq!(hits.load(SeqCst), 2);
}

#[test]
fn finishing_from_many_threads_while_callbacks_chain_runs_every_callback_once() {
    multi_thread(async {
        let futs: Vec<Fut<()>> = (0..2000).map(|_| Fut::new()).collect();
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..futs.len() - 1 {
            let next = futs[i + 1].clone();
            let r = ran.clone();
            futs[i].add_done_callback(move |_| {
                r.fetch_add(1, SeqCst);
                next.set_result(());
            });
        }
        // Several tasks race to finish links of the same chain.
        let mut joins = Vec::new();
        for k in 0..4 {
            let f: Vec<Fut<()>> = futs.iter().skip(k * 500).step_by(97).cloned().collect();
            joins.push(tokio::spawn(async move {
                for x in f {
                    x.set_result(());
                    tokio::task::yield_now().await;
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        futs[0].set_result(());
        assert!(futs.iter().all(Fut::done));
        assert_eq!(
            ran.load(SeqCst),
            futs.len() - 1,
            "each callback ran exactly once"
        );
    });
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_dropped_at_every_await_point_cancels_its_child_and_drops_the_work() {
    use std::time::Duration;
    let ms = Duration::from_millis;
    // The work runs 1 s (the timeout), then cleans up for 1 s; the caller gives up at `cut`.
    for cut in [0, 1, 500, 999, 1000, 1001, 1500, 2500] {
        let root = Ctx::beginning("root");
        let ev = Event::new();
        let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, d) = (started.clone(), dropped.clone());
        let call = root
            .async_with_timeout_scoped(move |ctx| async move {
                s.fetch_add(1, SeqCst);
                let _d = OnDrop(move || {
                    d.fetch_add(1, SeqCst);
                });
                ctx.wait().await;
                tokio::time::sleep(ms(1000)).await; // async cleanup
            })
            .timeout(ms(1000))
            .timeout_event(&ev);
        let out = tokio::time::timeout(ms(cut), call).await;
        assert!(out.is_err() || cut >= 2000, "cut {cut}: {out:?}");
        assert_eq!(
            dropped.load(SeqCst),
            started.load(SeqCst),
            "cut {cut}: the work was dropped or returned"
        );
        assert_eq!(
            root.child_count(),
            0,
            "cut {cut}: its child context is gone"
        );
        assert!(!root.done());
        if cut < 1000 {
            assert!(!ev.is_set(), "cut {cut}");
        }
        tokio::time::sleep(ms(5000)).await;
        if cut < 1000 {
            assert!(
                !ev.is_set(),
                "cut {cut}: never set after the call was dropped"
            );
        }
    }
}

#[test]
fn a_panicking_logger_inside_a_reporter_is_caught_and_the_other_callbacks_still_run() {
    struct Panicking;
    impl hp::Logger for Panicking {
        fn info(&self, _: &str, _: &str) {
            panic!("logger info");
        }
        fn exception(&self, _: &str, _: &str, _: Option<&hp::Error>) {
            panic!("logger exception");
        }
    }
    let ctx = Ctx::beginning_with("app", hp::CtxOptions::new().log(Panicking));
    let fut = Fut::<u8>::new();
    fut.add_done_callback(ctx.reporter());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    fut.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    assert!(fut.set_exception(Boom("x")));
    assert_eq!(ran.load(SeqCst), 1);
}
