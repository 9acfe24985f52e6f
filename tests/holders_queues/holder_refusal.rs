//! Refused work is visible (SEMANTICS, Task holder; issue 23 item 1): work given to a
//! holder whose context is done, or that finished, is not run, but the task it returns
//! has already finished as cancelled when the call returns (its done callbacks ran), a
//! joinable holder hands that task out from `join_next` like every task it was given, and
//! a `try_` form gives the work itself back, not dropped. Written from the rule; each
//! scenario runs on the current-thread and the multi-thread runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use machinery::helpers as hp;

use crate::common::{self, in_child_process, multi_thread, with_watchdog};

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Panics when dropped, with a payload that panics again when it is dropped.
struct PanicOnDrop;

struct PanickyPayload;

impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("the payload's own drop panics");
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(PanickyPayload);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Runs `body` on the current-thread runtime (paused clock) and on the multi-thread one.
fn both_runtimes<F, Fut>(body: F)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let b = body.clone();
    with_watchdog(move || common::paused_current_thread().block_on(b()));
    multi_thread(async move { body().await });
}

/// The ways a holder stops taking work.
#[derive(Clone, Copy, Debug)]
enum Closed {
    Finished,
    CtxCancelled,
    CancelAll,
    Dropped,
}

const CLOSINGS: [Closed; 4] = [
    Closed::Finished,
    Closed::CtxCancelled,
    Closed::CancelAll,
    Closed::Dropped,
];

/// A handle to a holder closed in the given way (joinable if asked).
async fn closed_holder(how: Closed, joinable: bool) -> (hp::Ctx, hp::TaskHolderHandle) {
    let ctx = hp::Ctx::beginning("app");
    let b = hp::TaskHolder::builder(&ctx);
    let ts = if joinable { b.joinable() } else { b }.build();
    let h = ts.handle();
    match how {
        Closed::Finished => ts.finish().await,
        Closed::CtxCancelled => {
            ctx.cancel();
            drop(ts);
        }
        Closed::CancelAll => {
            ts.cancel_all();
            drop(ts);
        }
        Closed::Dropped => drop(ts),
    }
    assert!(h.is_closed(), "{how:?}");
    (ctx, h)
}

/// Work that counts its runs and its drops.
fn counted_work(
    ran: &Arc<AtomicUsize>,
    dropped: &Arc<AtomicUsize>,
) -> impl Future<Output = u32> + Send + use<> {
    let (r, d) = (ran.clone(), dropped.clone());
    let guard = OnDrop(move || {
        d.fetch_add(1, SeqCst);
    });
    async move {
        let _g = guard;
        r.fetch_add(1, SeqCst);
        7
    }
}

/// The rule, checked right after the call returned (no await in between): finished,
/// cancelled, its callbacks run at once (the one added now runs before `add` returns),
/// the work dropped once and never run.
fn assert_refused<T: Send + 'static>(
    task: &hp::Task<T>,
    ran: &AtomicUsize,
    dropped: &AtomicUsize,
    what: &str,
) {
    assert!(
        task.done() && task.cancelled(),
        "{what}: finished as cancelled"
    );
    assert_eq!(ran.load(SeqCst), 0, "{what}: never run");
    assert_eq!(
        dropped.load(SeqCst),
        1,
        "{what}: the work was dropped before the call returned"
    );
    let called = counter();
    let c = called.clone();
    task.add_done_callback(move |how| {
        assert!(matches!(how, Err(hp::Failure::Cancelled)));
        c.fetch_add(1, SeqCst);
    });
    assert_eq!(called.load(SeqCst), 1, "{what}: done callbacks run at once");
}

#[test]
fn every_add_on_a_closed_holder_returns_a_task_already_finished_as_cancelled() {
    both_runtimes(|| async {
        for how in CLOSINGS {
            let (_ctx, h) = closed_holder(how, false).await;
            let (ran, dropped) = (counter(), counter());
            let t = h.spawn(counted_work(&ran, &dropped));
            assert_refused(&t, &ran, &dropped, &format!("spawn, {how:?}"));
            assert!(matches!(t.join().await, Err(hp::Failure::Cancelled)));

            let (ran, dropped) = (counter(), counter());
            let t = h.spawn_silent(counted_work(&ran, &dropped));
            assert_refused(&t, &ran, &dropped, &format!("spawn_silent, {how:?}"));

            for silent in [false, true] {
                let (ran, dropped) = (counter(), counter());
                let work = counted_work(&ran, &dropped);
                let called = counter();
                let c = called.clone();
                let scoped = move |_ctx: hp::Ctx| {
                    c.fetch_add(1, SeqCst);
                    work
                };
                let t = if silent {
                    h.spawn_scoped_silent("late", scoped)
                } else {
                    h.spawn_scoped("late", scoped)
                };
                assert_refused(&t, &ran, &dropped, &format!("spawn_scoped, {how:?}"));
                assert_eq!(called.load(SeqCst), 0, "the work closure is never called");
                assert_eq!(t.name().as_deref(), Some("late"));
            }
            assert_eq!((h.pending(), h.len()), (0, 0), "nothing is held");
        }
    });
}

#[test]
fn spawn_local_on_a_closed_holder_returns_a_task_already_finished_as_cancelled() {
    let body = || async {
        for how in CLOSINGS {
            let (_ctx, h) = closed_holder(how, false).await;
            for silent in [false, true] {
                let (ran, dropped) = (counter(), counter());
                let local = std::rc::Rc::new(());
                let work = counted_work(&ran, &dropped);
                let fut = async move {
                    let _not_send = local;
                    work.await
                };
                let t = if silent {
                    h.spawn_local_silent(fut)
                } else {
                    h.spawn_local(fut)
                };
                assert_refused(&t, &ran, &dropped, &format!("spawn_local, {how:?}"));
            }
        }
    };
    with_watchdog(move || {
        let local = tokio::task::LocalSet::new();
        common::paused_current_thread().block_on(local.run_until(body()));
        let local = tokio::task::LocalSet::new();
        common::multi_thread_runtime().block_on(local.run_until(body()));
    });
}

#[test]
fn a_joinable_holder_hands_out_every_task_it_was_given_refused_ones_too() {
    // `a` finishes before the holder does; `b`, `c`, `d` come after it closed. join_next
    // gives all four, in the order they finished (the refused ones at their call), then
    // None.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).joinable().build();
        let h = ts.handle();
        let a = ts.spawn(async { 1u32 });
        ts.finish().await;
        let b = h.spawn(async { 2u32 });
        let c = h.spawn_scoped("c", |_ctx| async { 3u32 });
        let d = h.spawn_silent(async { 4u32 });
        assert_eq!(h.len(), 4, "a, b, c and d wait for join_next");
        let mut ids = Vec::new();
        while let Some(t) = h.join_next().await {
            ids.push(t.id());
        }
        assert_eq!(ids, [a.id(), b.id(), c.id(), d.id()]);
        assert!(a.join().await.is_ok());
        for t in [b, c, d] {
            assert!(matches!(t.join().await, Err(hp::Failure::Cancelled)));
        }
        assert!(h.join_next().await.is_none() && h.is_empty());
    });
}

#[test]
fn a_typed_join_holder_gives_refused_work_as_cancelled_outcomes() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<u32>(&ctx);
        let first = js.spawn(async { 1 });
        first.wait().await;
        ctx.cancel();
        let late = js.spawn_scoped("late", |_ctx| async { 2 });
        let mut seen = Vec::new();
        while let Some((id, out)) = js.join_next_with_id().await {
            seen.push((id, out.map_err(|f| f.is_cancelled())));
        }
        assert_eq!(seen, [(first.id(), Ok(1)), (late.id(), Err(true))]);
    });
}

#[test]
fn add_task_on_a_closed_holder_cancels_the_task_and_a_joinable_holder_hands_it_out() {
    // The task runs elsewhere: it is cancelled, ends once its runtime dropped its future
    // (its `Drop` cleanup ran), and then comes out of join_next.
    both_runtimes(|| async {
        for how in CLOSINGS {
            let (_ctx, h) = closed_holder(how, true).await;
            let dropped = counter();
            let d = dropped.clone();
            let guard = OnDrop(move || {
                d.fetch_add(1, SeqCst);
            });
            let running = hp::Task::spawn(async move {
                let _g = guard;
                std::future::pending::<u8>().await
            });
            let t = h.add_task(running.clone());
            assert_eq!(t, running);
            assert!(!h.contains(&t) && h.pending() == 0, "not held");
            let joined = h.join_next().await.expect("handed out once finished");
            assert_eq!(joined.id(), t.id());
            assert!(t.cancelled(), "{how:?}");
            assert_eq!(dropped.load(SeqCst), 1, "its future was dropped first");
            assert!(h.join_next().await.is_none());
        }
    });
}

#[test]
fn the_try_forms_give_the_work_back_unrun_and_undropped() {
    both_runtimes(|| async {
        for how in CLOSINGS {
            let (_ctx, h) = closed_holder(how, true).await;
            let (ran, dropped) = (counter(), counter());

            let r = h.try_spawn(counted_work(&ran, &dropped)).unwrap_err();
            assert_eq!(r.to_string(), "task holder is closed");
            assert_eq!(
                dropped.load(SeqCst),
                0,
                "{how:?}: try_spawn dropped nothing"
            );
            assert_eq!(r.into_inner().await, 7);

            let r = h
                .try_spawn_silent(counted_work(&ran, &dropped))
                .unwrap_err();
            assert_eq!(r.into_inner().await, 7);

            let scoped = {
                let w = counted_work(&ran, &dropped);
                move |_ctx: hp::Ctx| w
            };
            let r = h.try_spawn_scoped("s", scoped).unwrap_err();
            assert_eq!((r.into_inner())(hp::Ctx::beginning("here")).await, 7);
            let scoped = {
                let w = counted_work(&ran, &dropped);
                move |_ctx: hp::Ctx| w
            };
            let r = h.try_spawn_scoped_silent("s", scoped).unwrap_err();
            assert_eq!((r.into_inner())(hp::Ctx::beginning("here")).await, 7);

            // A slot taken before the holder closed gives its work back too.
            let r = h
                .reserve()
                .await
                .try_spawn(counted_work(&ran, &dropped))
                .unwrap_err();
            assert_eq!(r.into_inner().await, 7);

            // add_task: the task comes back untouched, still running, and runs to its end.
            let gate = hp::Event::new();
            let g = gate.clone();
            let task = hp::Task::spawn(async move {
                g.wait().await;
                9u8
            });
            let back = h.try_add_task(task.clone()).unwrap_err().into_inner();
            assert!(back == task && !back.done());
            gate.set();
            assert_eq!(back.join().await.unwrap(), 9);

            assert_eq!(ran.load(SeqCst), 5, "each came back and ran here, once");
            assert_eq!(dropped.load(SeqCst), 5, "dropped by us after running");
            assert!(h.join_next().await.is_none(), "given back, so not joined");
        }
    });
}

#[test]
fn try_spawn_local_gives_the_non_send_future_back() {
    with_watchdog(|| {
        let local = tokio::task::LocalSet::new();
        common::current_thread().block_on(local.run_until(async {
            let (_ctx, h) = closed_holder(Closed::CtxCancelled, false).await;
            let rc = std::rc::Rc::new(3);
            let r = h.try_spawn_local(async move { *rc }).unwrap_err();
            assert_eq!(r.into_inner().await, 3);
        }));
    });
}

#[test]
fn refused_is_an_error_that_goes_through_question_mark() {
    fn ship(h: &hp::TaskHolderHandle) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        h.try_spawn(async {})?;
        Ok(())
    }
    common::current_thread().block_on(async {
        let (_ctx, h) = closed_holder(Closed::Finished, false).await;
        let e = ship(&h).unwrap_err();
        assert_eq!(e.to_string(), "task holder is closed");
        let r = h.try_spawn(async { 1 }).unwrap_err();
        assert_eq!(format!("{r:?}"), "Refused { .. }");
        let _: &_ = r.get_ref();
    });
}

// ---- hostile refused values ------------------------------------------------------------

#[test]
fn a_refused_futures_drop_may_re_enter_the_holder() {
    // The refused future's `Drop` adds more work (refused too), reads the holder, joins
    // and cancels its context; the call still returns a finished task, and the nested
    // refusal's task is finished by the time the outer call returns.
    both_runtimes(|| async {
        let (ctx, h) = closed_holder(Closed::Finished, true).await;
        let inner_task = Arc::new(std::sync::Mutex::new(None));
        let (h2, c2, slot) = (h.clone(), ctx.clone(), inner_task.clone());
        let guard = OnDrop(move || {
            let t = h2.spawn(async { 2u8 });
            let _ = (h2.pending(), h2.len(), h2.is_closed(), h2.try_join_next());
            c2.cancel();
            *slot.lock().unwrap() = Some(t);
        });
        let outer = h.spawn(async move {
            let _g = guard;
            1u8
        });
        assert!(outer.done() && outer.cancelled());
        let inner = inner_task.lock().unwrap().take().expect("the drop ran");
        assert!(
            inner.done() && inner.cancelled(),
            "nested refusal done before the call returned"
        );
        // The drop's try_join_next took nothing (the outer task was not finished yet);
        // both come out of join_next: the outer one first, since the refusal made
        // inside its drop was queued for the outermost call (CTX 3).
        let mut ids = Vec::new();
        while let Some(t) = h.join_next().await {
            ids.push(t.id());
        }
        assert_eq!(ids, [outer.id(), inner.id()]);
    });
}

#[test]
fn a_refused_work_whose_drop_panics_still_gives_a_finished_task() {
    both_runtimes(|| async {
        let (_ctx, h) = closed_holder(Closed::CtxCancelled, true).await;
        let bomb = PanicOnDrop;
        let t = h.spawn(async move {
            let _b = bomb;
        });
        assert!(t.done() && t.cancelled());
        let bomb = PanicOnDrop;
        let s = h.spawn_scoped("bomb", move |_ctx| {
            let _b = bomb;
            async {}
        });
        assert!(s.done() && s.cancelled());
        // Both handed out; the holder still works.
        assert_eq!(h.join_next().await.map(|t| t.id()), Some(t.id()));
        assert_eq!(h.join_next().await.map(|t| t.id()), Some(s.id()));
        assert!(h.join_next().await.is_none());
        // The try form never drops: the panicking value comes back to the caller, whose
        // drop (not the crate's) then panics.
        let bomb = PanicOnDrop;
        let r = h.try_spawn(async move {
            let _b = bomb;
        });
        let back = r.unwrap_err().into_inner();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(back)));
        assert!(caught.is_err());
        std::mem::forget(caught); // its payload panics when dropped
    });
}

/// Work whose `Drop` spawns the next such work on the same closed holder, `left` times.
struct Chain {
    h: hp::TaskHolderHandle,
    left: usize,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
        if self.left > 0 {
            let next = Chain {
                h: self.h.clone(),
                left: self.left - 1,
                dropped: self.dropped.clone(),
            };
            let t = self.h.spawn(async move {
                let _n = next;
            });
            drop(t);
        }
    }
}

#[test]
fn a_chain_of_100_000_refusals_runs_in_constant_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_refusals_runs_in_constant_stack",
        || {
            common::current_thread().block_on(async {
                let (_ctx, h) = closed_holder(Closed::Finished, false).await;
                let dropped = counter();
                let first = Chain {
                    h: h.clone(),
                    left: 100_000,
                    dropped: dropped.clone(),
                };
                let t = h.spawn(async move {
                    let _f = first;
                });
                assert!(t.done());
                assert_eq!(
                    dropped.load(SeqCst),
                    100_001,
                    "every link dropped before the call returned"
                );
            });
        },
    );
}

#[test]
fn work_refused_inside_a_done_callback_is_finished_when_the_outermost_cancel_returns() {
    // CTX 3: finishing started inside a callback is queued for the outermost finishing
    // call; the refused task is finished when `cancel()` returns.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).joinable().build();
        let h = ts.handle();
        let seen = Arc::new(std::sync::Mutex::new(None));
        let (h2, s2) = (h.clone(), seen.clone());
        ctx.add_done_callback(move |_| {
            let t = h2.spawn(async { 5u8 });
            *s2.lock().unwrap() = Some(t);
        });
        ctx.cancel();
        let t = seen.lock().unwrap().take().expect("the callback ran");
        assert!(t.done() && t.cancelled());
        assert_eq!(h.join_next().await.map(|j| j.id()), Some(t.id()));
        assert!(h.join_next().await.is_none());
        drop(ts);
    });
}

#[test]
fn multi_thread_adds_racing_a_close_are_each_run_or_refused_and_all_joined() {
    // Two producers add 2 000 tasks each while the ctx is cancelled mid-way: every task
    // returned is either run or refused (finished cancelled when its call returned), and
    // join_next hands out exactly the 4 000 tasks given.
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).joinable().build();
        let mut producers = Vec::new();
        for p in 0..2 {
            let h = ts.handle();
            let c = ctx.clone();
            producers.push(tokio::spawn(async move {
                let mut tasks = Vec::new();
                for i in 0..2_000u32 {
                    if p == 0 && i == 1_000 {
                        c.cancel();
                    }
                    let t = if i % 2 == 0 {
                        h.spawn(async move { i })
                    } else {
                        h.spawn_scoped("s", move |_ctx| async move { i })
                    };
                    if h.is_closed() && !t.done() {
                        // Held before the close: cancelled or finishing by now.
                    }
                    tasks.push(t);
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tasks
            }));
        }
        let mut given = std::collections::HashSet::new();
        for p in producers {
            for t in p.await.unwrap() {
                given.insert(t.id());
            }
        }
        let h = ts.handle();
        let mut joined = std::collections::HashSet::new();
        while let Some(t) = h.join_next().await {
            assert!(t.done());
            assert!(joined.insert(t.id()), "each task once");
        }
        assert_eq!(joined.len(), 4_000);
        assert_eq!(joined, given);
    });
}
