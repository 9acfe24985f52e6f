//! `hp::Ctx`: names, outcome resolution, callbacks, guards, memory, logging, Debug, tree.
//! Rules refer to SEMANTICS.md's CTX section.

use std::sync::{Arc, Mutex};

use machinery::helpers::{self as hp, Ctx, CtxOptions, FutureStatus};

use crate::common;
use common::{Boom, Capture, Log, take};

/// Pushes `label how` to `log` when `ctx` is done.
fn note(ctx: &Ctx, log: &Log, label: &'static str) -> hp::CallbackHandle {
    let l = log.clone();
    ctx.add_done_callback(move |how| l.lock().unwrap().push(format!("{label} {how}")))
}

fn err_of(ctx: &Ctx) -> String {
    ctx.exception().unwrap().unwrap().to_string()
}

// --- names (rule 7) ---

#[test]
fn child_names_join_with_arrows() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let c = b.child(String::from("c")).drop_guard();
    assert_eq!(a.name(), "a");
    assert_eq!(b.name(), "a-->b");
    assert_eq!(c.name(), "a-->b-->c");
}

#[test]
fn a_prefix_shows_in_brackets_between_parent_and_child() {
    let a = Ctx::beginning("a");
    let b = a
        .child_with("b", CtxOptions::new().prefix("p"))
        .drop_guard();
    assert_eq!(b.name(), "a-->[p]-->b");
    assert_eq!(b.child("c").drop_guard().name(), "a-->[p]-->b-->c");
    let root = Ctx::beginning_with("r", CtxOptions::new().prefix("ignored"));
    assert_eq!(root.name(), "r");
}

// --- done / cancel / set_exception / exception / cancelled (rules 1, 2) ---

#[test]
fn a_pending_context_reports_pending_from_exception_and_result() {
    let a = Ctx::beginning("a");
    assert!(!a.done() && !a.cancelled());
    assert!(matches!(a.exception(), Err(hp::StatusError::Pending)));
    assert!(matches!(
        FutureStatus::result(&a),
        Err(hp::StatusError::Pending)
    ));
    assert!(a.outcome().is_none());
}

#[test]
fn cancel_finishes_the_context_and_every_descendant_once() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let c = b.child("c").drop_guard();
    assert!(a.cancel());
    assert!(!a.cancel(), "second cancel is a no-op");
    for x in [&a, b.ctx(), c.ctx()] {
        assert!(x.done() && x.cancelled());
        assert!(matches!(x.exception(), Err(hp::StatusError::Cancelled)));
        assert!(matches!(
            FutureStatus::result(x),
            Err(hp::StatusError::Cancelled)
        ));
    }
    assert!(!a.set_exception(Boom("late")), "own slot already set");
    assert!(a.cancelled());
}

#[test]
fn set_exception_is_the_cause_every_descendant_reports() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let c = b.child("c").drop_guard();
    let e = hp::Error::new(Boom("cause"));
    assert!(a.set_exception(e.clone()));
    assert!(!a.cancel());
    for x in [&a, b.ctx(), c.ctx()] {
        assert!(x.done() && !x.cancelled());
        assert!(x.exception().unwrap().unwrap().same(&e));
        assert!(x.outcome().unwrap().error().unwrap().same(&e));
    }
}

#[test]
fn finishing_a_child_leaves_the_parent_pending() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    b.cancel();
    assert!(b.done() && !a.done());
}

#[test]
fn a_child_done_through_its_parent_still_accepts_its_own_exception() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let c = b.child("c").drop_guard();
    let log = Log::default();
    note(&b, &log, "b");
    a.cancel();
    assert_eq!(take(&log), ["b cancelled"]);
    assert!(b.cancelled());
    assert!(b.set_exception(Boom("own")));
    assert!(!b.set_exception(Boom("again")));
    assert!(!b.cancel());
    assert_eq!(err_of(&b), "own");
    assert!(!b.cancelled());
    assert_eq!(
        err_of(&c),
        "own",
        "descendants without an own outcome report it"
    );
    assert!(a.cancelled());
    assert!(take(&log).is_empty(), "callbacks do not run again");
}

#[test]
fn a_context_reports_its_own_outcome_over_a_later_ancestor_outcome() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    b.cancel();
    a.set_exception(Boom("parent"));
    assert!(b.cancelled());
    assert_eq!(err_of(&a), "parent");
}

#[tokio::test]
async fn a_grandchild_reports_the_parent_error_whichever_failed_first() {
    for parent_first in [true, false] {
        let g = Ctx::beginning("g");
        let p = g.child("p").drop_guard();
        let c = p.child("c").drop_guard();
        if parent_first {
            p.set_exception(Boom("parent"));
            g.set_exception(Boom("grandparent"));
        } else {
            g.set_exception(Boom("grandparent"));
            p.set_exception(Boom("parent"));
        }
        assert_eq!(err_of(&c), "parent");
        assert_eq!(c.wait().await.to_string(), "parent");
        assert_eq!((&*c).await.to_string(), "parent");
    }
}

#[test]
fn a_child_of_a_done_context_is_created_done() {
    let a = Ctx::beginning("a");
    a.set_exception(Boom("before"));
    let b = a.child("b").drop_guard();
    assert!(b.done());
    assert_eq!(err_of(&b), "before");
    assert_eq!(
        a.child_count(),
        1,
        "a child that exists is listed, finished or not"
    );
    let log = Log::default();
    note(&b, &log, "b");
    assert_eq!(take(&log), ["b before"]);
}

// --- callbacks (rules 3, 4) ---

#[test]
fn callbacks_run_once_in_registration_order_before_cancel_returns() {
    let a = Ctx::beginning("a");
    let log = Log::default();
    note(&a, &log, "1");
    let l = log.clone();
    a.add_on_done(move |ctx, how| l.lock().unwrap().push(format!("2 {} {how}", ctx.name())));
    note(&a, &log, "3");
    a.cancel();
    assert_eq!(take(&log), ["1 cancelled", "2 a cancelled", "3 cancelled"]);
    a.cancel();
    a.set_exception(Boom("x"));
    assert!(take(&log).is_empty());
}

#[test]
fn a_child_callback_runs_when_an_ancestor_finishes_and_gets_the_child() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let c = b.child("c").drop_guard();
    let log = Log::default();
    let l = log.clone();
    c.add_on_done(move |ctx, how| l.lock().unwrap().push(format!("{} {how}", ctx.name())));
    note(&b, &log, "b");
    a.set_exception(Boom("e"));
    let mut got = take(&log);
    got.sort();
    assert_eq!(got, ["a-->b-->c e", "b e"]);
}

#[test]
fn a_callback_added_to_a_done_context_runs_before_add_returns() {
    let a = Ctx::beginning("a");
    a.cancel();
    let log = Log::default();
    let h = note(&a, &log, "late");
    assert_eq!(take(&log), ["late cancelled"]);
    assert!(!a.has_direct_done_callback(h));
    assert_eq!(a.remove_done_callback(h), 0);
}

#[test]
fn remove_done_callback_returns_one_then_zero_and_index_keys_work() {
    let a = Ctx::beginning("a");
    let log = Log::default();
    let h = note(&a, &log, "removed");
    assert!(a.has_direct_done_callback(h));
    assert_eq!(a.remove_done_callback(h), 1);
    assert_eq!(a.remove_done_callback(h), 0);
    assert!(!a.has_direct_done_callback(h));
    let idx = hp::CallbackHandle::new();
    let got = a.add_on_done_keyed(|_, _| panic!("never"), idx);
    assert_eq!(got, idx);
    assert!(a.has_direct_done_callback(idx));
    assert_eq!(a.remove_done_callback(idx), 1);
    assert_eq!(a.remove_done_callback(idx), 0);
    note(&a, &log, "kept");
    a.cancel();
    assert_eq!(take(&log), ["kept cancelled"]);
}

#[test]
fn has_direct_done_callback_is_false_for_a_registration_on_the_parent_only() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let h = a.add_done_callback(|_| {});
    assert!(a.has_direct_done_callback(h));
    assert!(!b.has_direct_done_callback(h));
    assert_eq!(b.remove_done_callback(h), 0);
    assert!(a.has_direct_done_callback(h));
}

#[test]
fn a_panicking_callback_is_reported_and_the_others_still_run() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let log = Log::default();
    note(&a, &log, "a1");
    a.add_done_callback(|_| panic!("callback boom"));
    note(&a, &log, "a3");
    b.add_on_done(|_, _| panic!("child boom"));
    note(&b, &log, "b2");
    assert!(a.cancel());
    assert_eq!(take(&log), ["a1 cancelled", "a3 cancelled", "b2 cancelled"]);
    a.add_done_callback(|_| panic!("late boom"));
    assert!(a.done());
}

#[test]
fn callbacks_may_cancel_add_callbacks_create_children_and_drop_guards() {
    let a = Ctx::beginning("a");
    let other = Ctx::beginning("other");
    let b = a.child("b").drop_guard();
    let unrelated_guard = other.child("g").drop_guard();
    let slot = Arc::new(Mutex::new(Some(unrelated_guard)));
    let log = Log::default();
    let (l, o, s) = (log.clone(), other.clone(), slot.clone());
    a.add_on_done(move |ctx, _| {
        drop(s.lock().unwrap().take()); // drop a guard: cancels other-->g
        let l2 = l.clone();
        ctx.add_done_callback(move |how| l2.lock().unwrap().push(format!("nested {how}")));
        let child = ctx.child("made-in-callback").drop_guard();
        l.lock()
            .unwrap()
            .push(format!("child done {}", child.done()));
        o.cancel();
        ctx.cancel(); // already has an own outcome: no-op
    });
    let l = log.clone();
    b.add_on_done(move |ctx, _| {
        let g = ctx.child("grand").drop_guard();
        l.lock().unwrap().push(format!("b child {}", g.name()));
    });
    a.cancel();
    assert_eq!(
        take(&log),
        [
            "nested cancelled",
            "child done true",
            "b child a-->b-->grand"
        ]
    );
    assert!(other.cancelled());
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn a_callback_is_released_when_removed_or_run() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    let held = Arc::new(());
    let h1 = {
        let h = held.clone();
        b.add_done_callback(move |_| drop(h))
    };
    let h = held.clone();
    b.add_done_callback(move |_| drop(h));
    assert_eq!(Arc::strong_count(&held), 3);
    assert_eq!(b.remove_done_callback(h1), 1);
    assert_eq!(Arc::strong_count(&held), 2);
    drop(b);
    assert_eq!(Arc::strong_count(&held), 1);
}

// --- guards, lifetime, unregistering (rule 5) ---

#[test]
fn a_guard_cancels_on_drop_even_with_clones_alive() {
    let a = Ctx::beginning("a");
    let guard = a.child("b").drop_guard();
    let clone = guard.ctx().clone();
    let log = Log::default();
    note(&clone, &log, "b");
    drop(guard);
    assert!(clone.cancelled());
    assert_eq!(take(&log), ["b cancelled"]);
    assert!(!a.done());
}

#[test]
fn a_child_cloned_from_a_temporary_is_alive_and_only_an_explicit_guard_cancels_on_drop() {
    let a = Ctx::beginning("a");
    // The old trap: the child is a plain handle now, so this is a live context.
    let c = a.child("x").clone();
    assert!(!c.done());
    assert_eq!(a.child_count(), 1);
    // The last handle gone: it finishes as cancelled (CTX 5).
    let seen = a.child("gone");
    let watch = seen.clone();
    drop(seen);
    assert!(!watch.done(), "a clone still refers to it");
    // Only an explicit guard cancels on drop while clones are alive.
    let kept = {
        let guard = a.child("y").drop_guard();
        guard.ctx().clone()
    };
    assert!(kept.cancelled());
    let detached = a.child("z").drop_guard().detach();
    assert!(!detached.done());
    assert!(!c.done());
}

#[test]
fn a_dropped_child_unregisters_and_finishes_as_cancelled_running_its_callbacks_once() {
    let a = Ctx::beginning("a");
    let log = Log::default();
    let child = a.child("b").drop_guard().detach();
    assert_eq!(a.child_count(), 1);
    let l = log.clone();
    child.add_on_done(move |ctx, how| l.lock().unwrap().push(format!("{} {how}", ctx.name())));
    let grand = child.child("c").drop_guard().detach();
    drop(child);
    assert_eq!(
        a.child_count(),
        1,
        "a live grandchild keeps the child alive"
    );
    assert!(take(&log).is_empty());
    drop(grand);
    assert_eq!(a.child_count(), 0);
    assert_eq!(take(&log), ["a-->b cancelled"]);
    assert!(!a.done());
}

#[test]
fn a_guard_dropped_unregisters_from_its_parent() {
    let a = Ctx::beginning("a");
    {
        let _b = a.child("b").drop_guard();
        let _c = a.child("c").drop_guard();
        assert_eq!(a.child_count(), 2);
    }
    assert_eq!(a.child_count(), 0);
    for _ in 0..10_000 {
        let g = a.child("churn").drop_guard();
        g.add_done_callback(|_| {});
    }
    assert_eq!(a.child_count(), 0);
    assert!(!a.done());
}

#[test]
fn a_live_child_keeps_its_parent_alive_and_the_parent_finishes_when_the_last_goes() {
    let root = Ctx::beginning("r");
    let log = Log::default();
    note(&root, &log, "root");
    let child = root.child("c").drop_guard();
    drop(root);
    assert!(!child.done(), "the root lives on through its child");
    assert!(take(&log).is_empty());
    drop(child);
    assert_eq!(take(&log), ["root cancelled"]);
}

#[test]
fn ptr_eq_tells_handles_of_one_context_apart() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    assert!(a.ptr_eq(&a.clone()));
    assert!(!a.ptr_eq(b.ctx()));
}

// --- Debug and tree dump ---

#[test]
fn debug_shows_the_chain_with_each_own_state() {
    let a = Ctx::beginning("a");
    let b = a.child("b").drop_guard();
    assert_eq!(
        format!("{:?}", *b),
        "CTX[a-->b](PENDING(FUT{a})|PENDING(FUT{a-->b}))"
    );
    a.cancel();
    assert_eq!(
        format!("{b:?}"),
        "CTX[a-->b](CANCELLED(FUT{a})|PENDING(FUT{a-->b}))"
    );
    let c = b
        .child_with("c", CtxOptions::new().prefix("p"))
        .drop_guard();
    c.set_exception(Boom("e"));
    assert_eq!(
        format!("{c:?}"),
        "CTX[a-->b-->[p]-->c](CANCELLED(FUT{a})|PENDING(FUT{a-->b})|EXCEPTION(FUT{a-->b-->[p]-->c}))"
    );
}

#[test]
fn tree_lists_live_descendants_with_names_and_states() {
    let root = Ctx::beginning("app");
    let server = root.child("server").drop_guard();
    let conn1 = server.child("conn-1").drop_guard();
    let conn2 = server.child("conn-2").drop_guard();
    let worker = root
        .child_with("w", CtxOptions::new().prefix("jobs"))
        .drop_guard();
    conn2.cancel();
    worker.set_exception(Boom("bad job"));
    {
        let _gone = root.child("dropped").drop_guard();
    }
    assert_eq!(
        root.tree(),
        "app [pending]\n\
         \x20 app-->server [pending]\n\
         \x20   app-->server-->conn-1 [pending]\n\
         \x20   app-->server-->conn-2 [cancelled]\n\
         \x20 app-->[jobs]-->w [exception Boom: bad job]\n"
    );
    server.cancel();
    assert_eq!(
        server.tree(),
        "app-->server [cancelled]\n\
         \x20 app-->server-->conn-1 [done (through an ancestor)]\n\
         \x20 app-->server-->conn-2 [cancelled]\n",
        "a finished context still lists the children that exist, with their own states"
    );
    assert!(conn1.done());
    assert_eq!(
        conn1.tree(),
        "app-->server-->conn-1 [done (through an ancestor)]\n"
    );
}

// --- logging, runtime ---

#[test]
fn log_info_and_log_exception_go_through_the_logger_and_children_inherit_it() {
    let cap = Capture::default();
    let root = Ctx::beginning_with("r", CtxOptions::new().log(cap.clone()));
    root.log_info("hello");
    let child = root.child("c").drop_guard();
    child.log_info("from child");
    child.log_exception("failed", &hp::Error::new(Boom("x")));
    child.log_error("no error");
    assert_eq!(
        take(&cap.0),
        [
            "info r: hello",
            "info r-->c: from child",
            "exception r-->c: failed: Boom:x",
            "exception r-->c: no error: -",
        ]
    );
    let own = Capture::default();
    let other = child
        .child_with("o", CtxOptions::new().log(own.clone()))
        .drop_guard();
    other.log_info("mine");
    other.child("deeper").drop_guard().log_info("inherited");
    assert_eq!(
        take(&own.0),
        ["info r-->c-->o: mine", "info r-->c-->o-->deeper: inherited"]
    );
    assert!(take(&cap.0).is_empty());
    let via_logger = child.logger();
    via_logger.info("x", "y");
    assert_eq!(take(&cap.0), ["info x: y"]);
}

#[test]
fn the_default_logger_is_tracing_and_does_not_panic() {
    let root = Ctx::beginning("plain");
    root.log_info("to tracing");
    root.log_exception("to tracing", &hp::Error::msg("m"));
    root.logger().info("plain", "direct");
}

#[test]
fn runtime_is_none_outside_a_runtime_and_inherits_a_given_handle() {
    assert!(Ctx::beginning("none").runtime().is_none());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("given-rt")
        .enable_all()
        .build()
        .unwrap();
    let root = Ctx::beginning_with("r", CtxOptions::new().runtime(rt.handle().clone()));
    let child = root.child("c").drop_guard();
    assert!(child.runtime().is_some());
    // Spawning through the child lands on the given runtime (no runtime is current here).
    let task =
        child.async_as_background(async { std::thread::current().name().map(str::to_owned) });
    let name = rt.block_on(async { task.clone().await.unwrap() });
    assert_eq!(name.as_deref(), Some("given-rt"));
}

#[tokio::test]
async fn runtime_is_the_current_one_when_none_was_given() {
    assert!(Ctx::beginning("cur").runtime().is_some());
}
