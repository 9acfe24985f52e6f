//! Hostile tests of `hp::Task` and the task holder, by class (SEMANTICS, Robustness
//! rules): user `Drop`s that call back into the holder, panics in every piece of user code,
//! long chains, several consumers, cancellation at every await point, both runtimes.
//! Each test states the rule it checks; a hang fails through the watchdog.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers as hp;
use tokio::time::sleep;

use crate::common;
use common::{Capture, Log, in_child_process, multi_thread, take, with_watchdog};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn logged_ctx(name: &'static str) -> (hp::Ctx, Log) {
    let log = Capture::default();
    let ctx = hp::Ctx::beginning_with(name, hp::CtxOptions::new().log(log.clone()));
    (ctx, log.0)
}

/// Runs `f` when dropped (a user value whose `Drop` calls back into the crate).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Panics when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A future that is ready at once with its value and drops `D` only when it is dropped
/// itself (after returning the value: an async block would drop it inside its last poll).
struct ReadyThenDrop<T, D>(Option<T>, D);

impl<T: Unpin, D: Unpin> std::future::Future for ReadyThenDrop<T, D> {
    type Output = T;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        std::task::Poll::Ready(self.0.take().expect("polled once"))
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

// --- A user `Drop` that re-enters the holder ---

#[test]
fn a_finished_futures_drop_may_add_work_and_finish_waits_for_it() {
    // The future's `Drop` runs before the task is done (SEMANTICS: finish waits for work
    // added meanwhile), so the work it adds is held, not rejected.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let ran = counter();
        for _ in 0..50 {
            let (h, r) = (ts.handle(), ran.clone());
            let guard = OnDrop(move || {
                let r = r.clone();
                h.spawn(async move {
                    r.fetch_add(1, SeqCst);
                });
            });
            ts.spawn(ReadyThenDrop(Some(()), guard));
        }
        ts.finish().await;
        assert_eq!(ran.load(SeqCst), 50);
    });
}

#[test]
fn a_cancelled_futures_drop_may_add_work_cancel_the_ctx_and_query_the_holder() {
    // Cancelling drops the futures; their `Drop`s add work (rejected: the holder is
    // closed), cancel the ctx again and read the holder. No deadlock, finish returns.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let drops = counter();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (h, c, d) = (ts.handle(), ctx.clone(), drops.clone());
            let guard = OnDrop(move || {
                let late = h.spawn(async {});
                assert!(h.is_closed());
                let _ = (h.pending(), h.iter().count(), h.contains(&late));
                c.cancel();
                d.fetch_add(1, SeqCst);
            });
            tasks.push(ts.spawn(async move {
                let _g = guard;
                std::future::pending::<()>().await
            }));
        }
        tokio::task::yield_now().await;
        ctx.cancel();
        ts.finish().await;
        assert_eq!(drops.load(SeqCst), 50);
        assert!(tasks.iter().all(hp::Task::cancelled));
    });
}

#[test]
fn an_outputs_drop_may_re_enter_the_holder_when_the_holder_lets_it_go() {
    // Nobody joins: the holder's release drops the last handle, and with it the output,
    // whose `Drop` adds work and reads the holder (outside the holder's lock).
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let ran = counter();
        for _ in 0..50 {
            let (h, r) = (ts.handle(), ran.clone());
            drop(ts.spawn(async move {
                OnDrop(move || {
                    let _ = h.pending();
                    let r = r.clone();
                    h.spawn(async move {
                        r.fetch_add(1, SeqCst);
                    });
                })
            }));
        }
        ts.finish().await;
        // Outputs dropped before the holder closed added work that finish waited for;
        // any dropped later (by the runtime's last handle) was rejected, never lost in a
        // deadlock: the count is at most 50 and finish returned.
        assert!(ran.load(SeqCst) <= 50);
    });
}

#[test]
fn a_scoped_work_closure_dropped_unused_may_re_enter_the_holder() {
    // On a closed holder the work closure is dropped without being called; its `Drop`
    // adds work and cancels the ctx.
    with_watchdog(|| {
        common::current_thread().block_on(async {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            ts.cancel_all();
            let dropped = counter();
            let (h, c, d) = (ts.handle(), ctx.clone(), dropped.clone());
            let guard = OnDrop(move || {
                h.spawn(async {});
                c.cancel();
                d.fetch_add(1, SeqCst);
            });
            let t = ts.spawn_scoped("late", move |_ctx| {
                let _g = guard;
                async {}
            });
            assert_eq!(dropped.load(SeqCst), 1);
            t.wait().await;
            assert!(t.cancelled());
            ts.finish().await;
        });
    });
}

#[test]
fn a_done_callbacks_captured_holder_handle_may_be_the_last() {
    // A done callback owns the last handle of the holder's state; when it runs and is
    // dropped, the holder's state goes with it (outside every lock): no deadlock, and the
    // captured values are dropped.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let gate = hp::Event::new();
        let g = gate.clone();
        let t = ts.spawn(async move { g.wait().await });
        let (h, dropped) = (ts.handle(), counter());
        let d = dropped.clone();
        let noted = OnDrop(move || {
            d.fetch_add(1, SeqCst);
        });
        t.add_done_callback(move |_| {
            let _noted = noted;
            drop(h);
        });
        drop(ts); // cancels t; the callback holds the last handle
        t.wait().await;
        assert!(t.cancelled());
        assert_eq!(dropped.load(SeqCst), 1);
    });
}

// --- Panics in user code ---

#[test]
fn a_panicking_drop_of_a_finished_future_keeps_the_output_and_the_holder_finishes() {
    both_runtimes(|| async {
        let (ctx, log) = logged_ctx("app");
        let ts = hp::task_holder(&ctx);
        let tasks: Vec<_> = (0..20u32)
            .map(|i| {
                // Dropped with the finished future, after it returned its output.
                ts.spawn(ReadyThenDrop(Some(i), PanicOnDrop("future drop boom")))
            })
            .collect();
        ts.finish().await;
        for (i, t) in tasks.iter().enumerate() {
            assert_eq!(t.try_join().unwrap().unwrap(), i as u32);
        }
        let lines = take(&log);
        assert!(
            lines.is_empty(),
            "the output stands, nothing failed: {lines:?}"
        );
    });
}

#[test]
fn a_panicking_drop_of_a_cancelled_future_still_ends_the_task_cancelled() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let bomb = PanicOnDrop("cancelled drop boom");
                ts.spawn_silent(async move {
                    let _b = bomb;
                    std::future::pending::<()>().await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        ts.cancel_all();
        ts.finish().await;
        for t in &tasks {
            assert!(
                t.done(),
                "the task ended although its future's Drop panicked"
            );
        }
    });
}

#[test]
fn a_panicking_drop_of_an_output_leaves_the_holder_consistent() {
    // Outputs nobody joins are dropped with the last handle, possibly the holder's.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        for _ in 0..20 {
            drop(ts.spawn(async { PanicOnDrop("output drop boom") }));
        }
        let kept = ts.spawn(async { 5 });
        ts.finish().await;
        assert_eq!(kept.join().await.unwrap(), 5);
    });
}

#[test]
fn panicking_done_callbacks_do_not_stop_finish_or_the_other_callbacks() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let after = counter();
        for _ in 0..20 {
            let t = ts.spawn(async { tokio::task::yield_now().await });
            t.add_done_callback(|_| panic!("callback boom"));
            let (a, h) = (after.clone(), ts.handle());
            t.add_done_callback(move |_| {
                // Runs after the panicking one, and may still add work.
                let a2 = a.clone();
                h.spawn(async move {
                    a2.fetch_add(1, SeqCst);
                });
            });
        }
        ts.finish().await;
        assert_eq!(after.load(SeqCst), 20);
    });
}

#[test]
fn a_panicking_scoped_body_and_panicking_work_end_with_every_task_done() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        let out = hp::task_holder_scope(&ctx, async move |ts| {
            for i in 0..10 {
                k.lock()
                    .unwrap()
                    .push(ts.spawn_scoped_silent(format!("w{i}"), |c| async move {
                        c.wait().await;
                        panic!("cleanup boom");
                    }));
            }
            tokio::task::yield_now().await;
            if true {
                panic!("body boom");
            }
            Ok::<_, hp::Error>(())
        })
        .await;
        assert!(out.unwrap_err().to_string().contains("body boom"));
        assert!(kept.lock().unwrap().iter().all(|t| t.done()));
    });
}

// --- Chains of 100 000 ---

#[test]
fn a_chain_of_100_000_tasks_each_added_from_the_last_ones_done_callback() {
    // Task i's done callback adds task i+1 through the handle; finish waits for all of
    // them, on a 2 MiB stack, in a child process so that an overflow fails the test.
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_tasks_each_added_from_the_last_ones_done_callback",
        || {
            common::current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("app");
                let ts = hp::task_holder(&ctx);
                let count = counter();
                fn link(h: hp::TaskHolderHandle, count: Arc<AtomicUsize>) {
                    let t = h.spawn_silent(async {});
                    let h2 = h.clone();
                    t.add_done_callback(move |_| {
                        if count.fetch_add(1, SeqCst) + 1 < 100_000 {
                            link(h2, count);
                        }
                    });
                }
                link(ts.handle(), count.clone());
                ts.finish().await;
                assert_eq!(count.load(SeqCst), 100_000);
            });
        },
    );
}

#[test]
fn a_chain_of_100_000_finished_tasks_added_from_callbacks_that_run_at_once() {
    // Each callback adds an already finished task and registers the next link on it, so
    // the callback runs at once inside the previous one's registration... which is the
    // caller's own recursion; what the holder adds per link (track, release, settle) must
    // not recurse. 2 000 links here keep the caller's recursion small while exercising
    // the at-once paths of `add_task` on finished tasks.
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_finished_tasks_added_from_callbacks_that_run_at_once",
        || {
            common::current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("app");
                let ts = hp::task_holder(&ctx);
                let done: Vec<hp::Task<u32>> = (0..100_000)
                    .map(|i| hp::Task::spawn(async move { i }))
                    .collect();
                tokio::task::yield_now().await;
                for t in &done {
                    t.wait().await;
                }
                for t in &done {
                    ts.add_task(t.clone());
                }
                assert_eq!(ts.pending(), 0);
                ts.finish().await;
                assert_eq!(done[99_999].try_join().unwrap().unwrap(), 99_999);
            });
        },
    );
}

// --- Several consumers ---

#[test]
fn several_join_next_consumers_each_get_different_tasks_and_all_of_them() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).joinable().build();
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                ts.spawn(async move {
                    sleep(ms(u64::from(i % 7))).await;
                    i
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let h = ts.handle();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(t) = h.join_next().await {
                        got.push(t.downcast::<u32>().unwrap().join().await.unwrap());
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        all.sort();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        ts.finish().await;
        assert!(tasks.iter().all(hp::Task::done));
    });
}

#[test]
fn iterating_and_adding_from_several_tasks_while_finishing() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let ran = counter();
        for _ in 0..4 {
            let (h, r) = (ts.handle(), ran.clone());
            ts.spawn(async move {
                for _ in 0..50 {
                    let r = r.clone();
                    h.spawn(async move {
                        tokio::task::yield_now().await;
                        r.fetch_add(1, SeqCst);
                    });
                    // A snapshot holds each task once (AnyTask's Eq/Hash: identity).
                    let snapshot: Vec<_> = h.iter().collect();
                    let distinct: std::collections::HashSet<_> = snapshot.iter().collect();
                    assert_eq!(distinct.len(), snapshot.len());
                    tokio::task::yield_now().await;
                }
            });
        }
        ts.finish().await;
        assert_eq!(ran.load(SeqCst), 200);
    });
}

// --- Cancellation at every await point ---

#[test]
fn dropping_finish_before_its_first_poll_or_while_it_waits_cancels_and_frees_everything() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        for polls in 0..3 {
            let ts = hp::task_holder(&ctx);
            let dropped = counter();
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let d = dropped.clone();
                    let guard = OnDrop(move || {
                        d.fetch_add(1, SeqCst);
                    });
                    ts.spawn(async move {
                        let _g = guard;
                        std::future::pending::<()>().await
                    })
                })
                .collect();
            let mut finish = Box::pin(ts.finish());
            for _ in 0..polls {
                assert!(futures::poll!(finish.as_mut()).is_pending());
                tokio::task::yield_now().await;
            }
            drop(finish);
            for t in &tasks {
                t.wait().await;
                assert!(t.cancelled());
            }
            assert_eq!(dropped.load(SeqCst), 10);
        }
    });
}

#[test]
fn dropping_the_scoped_form_in_its_body_or_in_its_finish_cancels_everything() {
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning("app");
        for polls in 0..4 {
            let kept = Arc::new(Mutex::new(Vec::new()));
            let k = kept.clone();
            let scope = hp::task_holder_scope(&ctx, async move |ts| {
                k.lock()
                    .unwrap()
                    .push(ts.spawn(std::future::pending::<()>()));
                let scoped = ts.spawn_scoped("s", |c| async move {
                    c.wait().await;
                });
                k.lock().unwrap().push(scoped);
                tokio::task::yield_now().await; // an await point in the body
                Ok::<_, hp::Error>(())
            });
            let mut scope = Box::pin(scope);
            for _ in 0..polls {
                assert!(futures::poll!(scope.as_mut()).is_pending());
                tokio::task::yield_now().await;
            }
            drop(scope);
            let kept = kept.lock().unwrap().clone();
            for t in &kept {
                t.wait().await;
            }
            assert!(kept.iter().all(hp::Task::done));
        }
    });
}

#[test]
fn cancelling_the_ctx_at_each_point_of_a_scoped_holder_ends_every_task() {
    both_runtimes(|| async {
        for step in 0..4 {
            let ctx = hp::Ctx::beginning("app");
            let c = ctx.clone();
            let out = hp::task_holder_scope(&ctx, async move |ts| {
                let mut tasks = Vec::new();
                for i in 0..4 {
                    if i == step {
                        c.cancel();
                    }
                    tasks.push(ts.spawn(sleep(ms(50))));
                    tasks.push(ts.spawn_scoped("s", |cx| async move {
                        cx.wait().await;
                    }));
                    tokio::task::yield_now().await;
                }
                Ok::<_, hp::Error>(tasks)
            })
            .await;
            let tasks = out.unwrap();
            // Work added after the cancel was rejected: cancelled at once, done once the
            // runtime dropped it.
            for t in &tasks {
                t.wait().await;
            }
            // Plain work is cancelled (aborted, or rejected once the holder closed);
            // scoped work added before the cancel saw its ctx and returned; added after,
            // it was rejected (cancelled) without running.
            for (i, pair) in tasks.chunks(2).enumerate() {
                assert!(pair[0].cancelled(), "plain {i} at step {step}");
                assert_eq!(pair[1].cancelled(), i >= step, "scoped {i} at step {step}");
            }
        }
    });
}

/// A logger that panics on every report.
struct PanickingLogger;

impl hp::Logger for PanickingLogger {
    fn info(&self, _: &str, _: &str) {
        panic!("logger boom");
    }
    fn exception(&self, _: &str, _: &str, _: Option<&hp::Error>) {
        panic!("logger boom");
    }
}

#[test]
fn a_panicking_logger_does_not_keep_failed_tasks_held() {
    // The report of a failed task runs the context's logger (user code) before the
    // holder releases the task: its panic must not skip the release, or finish hangs.
    both_runtimes(|| async {
        let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(PanickingLogger));
        let ts = hp::task_holder(&ctx);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                ts.spawn(async {
                    tokio::task::yield_now().await;
                    panic!("task boom")
                })
            })
            .collect();
        ts.finish().await;
        assert!(tasks.iter().all(|t| t.failure().is_some()));
    });
}

#[test]
fn a_panicking_clone_of_an_output_leaves_the_output_in_place() {
    // `result()` clones the output; a panicking `Clone` is the caller's panic, and the
    // output stays for the joiner.
    #[derive(Debug)]
    struct BadClone(u8);
    impl Clone for BadClone {
        fn clone(&self) -> Self {
            panic!("clone boom")
        }
    }
    with_watchdog(|| {
        common::current_thread().block_on(async {
            let t = hp::Task::spawn(async { BadClone(4) });
            t.wait().await;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.result()));
            assert!(r.is_err());
            assert_eq!(t.join().await.unwrap().0, 4);
        });
    });
}
