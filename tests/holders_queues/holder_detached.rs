//! `spawn_detached` / `try_spawn_detached`: a held task without a `Task` handle keeps
//! every holder rule (SEMANTICS "Task holder"; issue 26 item 1): `finish` waits for it,
//! a done context or `cancel_all` stops it (its `Drop` runs before `finish` returns), a
//! panic (a bomb payload too) is caught, logged and counts for `fail_fast`, `pending()`
//! and `len()` count it, the limit applies, refused work comes back or is dropped once,
//! a runtime's shutdown settles it. Hostile: `Drop`s that spawn into the holder, chains
//! of 100 000, both runtimes, cancellation at every await point.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

use crate::common;
use common::{Capture, Log, block_on_paused, in_child_process, multi_thread, take};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn logged_ctx(name: &'static str) -> (hp::Ctx, Log) {
    let log = Capture::default();
    let ctx = hp::Ctx::beginning_with(name, hp::CtxOptions::new().log(log.clone()));
    (ctx, log.0)
}

/// Counts its drop.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A panic payload whose own `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop");
    }
}

/// Rule: `finish` returns once every detached task has ended, at the instant the last
/// one does; `pending()` and `len()` count them meanwhile.
#[test]
fn finish_waits_for_every_detached_task_at_the_last_ones_instant() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        for (name, secs) in [("b", 2), ("a", 1), ("c", 3)] {
            let log = log.clone();
            assert!(ts.spawn_detached(async move {
                sleep(Duration::from_secs(secs)).await;
                log.lock().unwrap().push(name);
            }));
        }
        assert_eq!((ts.pending(), ts.len()), (3, 3));
        assert_eq!(ts.iter().count(), 0, "no handles to list");
        sleep(Duration::from_millis(1500)).await;
        assert_eq!(ts.pending(), 2);
        ts.finish().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(*log.lock().unwrap(), ["a", "b", "c"]);
    });
}

/// Rule: on the multi-thread runtime too, `finish` waits for all of them, including
/// detached tasks that detached tasks spawn while finishing.
#[test]
fn finish_waits_for_detached_tasks_spawned_by_detached_tasks_on_the_multi_thread_runtime() {
    let ran = multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let ran = counter();
        for i in 0..2_000u64 {
            let (h, ran) = (ts.handle(), ran.clone());
            assert!(ts.spawn_detached(async move {
                sleep(ms(i % 3)).await;
                let r = ran.clone();
                assert!(h.spawn_detached(async move {
                    tokio::task::yield_now().await;
                    r.fetch_add(1, SeqCst);
                }));
                ran.fetch_add(1, SeqCst);
            }));
        }
        let h = ts.handle();
        ts.finish().await;
        assert_eq!((h.pending(), h.len()), (0, 0));
        ran.load(SeqCst)
    });
    assert_eq!(ran, 4_000);
}

/// Rule: `cancel_all` stops every detached task, those waiting and those never polled
/// yet, and each one's `Drop` has run when `finish` returns; the holder then refuses.
#[test]
fn cancel_all_stops_waiting_and_unpolled_detached_tasks_before_finish_returns() {
    for multi in [false, true] {
        let scenario = async {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            let (dropped, finished) = (counter(), counter());
            for _ in 0..100 {
                let (d, f) = (Dropped(dropped.clone()), finished.clone());
                assert!(ts.spawn_detached(async move {
                    let _d = d;
                    sleep(Duration::from_secs(3600)).await;
                    f.fetch_add(1, SeqCst);
                }));
            }
            tokio::task::yield_now().await; // some wait now, the rest are still queued
            for _ in 0..100 {
                let (d, f) = (Dropped(dropped.clone()), finished.clone());
                assert!(ts.spawn_detached(async move {
                    let _d = d;
                    f.fetch_add(1, SeqCst);
                }));
            }
            ts.cancel_all();
            let late = Dropped(dropped.clone());
            assert!(!ts.spawn_detached(async move { drop(late) }), "refused");
            let h = ts.handle();
            ts.finish().await;
            assert_eq!(h.pending(), 0);
            (dropped.load(SeqCst), finished.load(SeqCst))
        };
        let (dropped, finished) = if multi {
            multi_thread(scenario)
        } else {
            common::current_thread().block_on(scenario)
        };
        assert_eq!(
            dropped, 201,
            "every future dropped once, the refused one too"
        );
        if !multi {
            // Current thread: nothing ran between the spawns and the cancel.
            assert_eq!(finished, 0);
        }
    }
}

/// Rule: the holder's context finishing (its parent cancelled) stops detached tasks,
/// at every await point of theirs: the steps done before the cancel are the ones seen.
#[test]
fn a_cancelled_context_stops_a_detached_task_at_every_await_point() {
    for cut in 0..5u64 {
        block_on_paused(async move {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            let steps = Arc::new(Mutex::new(Vec::new()));
            let dropped = counter();
            let (s, d) = (steps.clone(), Dropped(dropped.clone()));
            assert!(ts.spawn_detached(async move {
                let _d = d;
                for step in 0..4u64 {
                    s.lock().unwrap().push(step);
                    sleep(Duration::from_secs(1)).await;
                }
                s.lock().unwrap().push(99);
            }));
            // Cancelled at `cut` s + 0.5 (cut 4: after it finished at 4 s).
            sleep(Duration::from_millis(cut * 1000 + 500)).await;
            ctx.cancel();
            ts.finish().await;
            let expected: Vec<u64> = if cut < 4 {
                (0..=cut).collect()
            } else {
                vec![0, 1, 2, 3, 99]
            };
            assert_eq!(*steps.lock().unwrap(), expected, "cut at {cut}");
            assert_eq!(dropped.load(SeqCst), 1);
        });
    }
}

/// Rule: a panic is caught and logged through the holder's context (one exception line,
/// the panic's message), a bomb payload included; the other tasks go on and `finish`
/// returns.
#[test]
fn a_panic_and_a_bomb_payload_are_caught_and_logged() {
    for multi in [false, true] {
        let scenario = async {
            let (ctx, log) = logged_ctx("app");
            let ts = hp::task_holder(&ctx);
            let ran = counter();
            assert!(ts.spawn_detached(async { panic!("disk on fire") }));
            assert!(ts.spawn_detached(async { std::panic::panic_any(Bomb) }));
            let r = ran.clone();
            assert!(ts.spawn_detached(async move {
                sleep(ms(5)).await;
                r.fetch_add(1, SeqCst);
            }));
            ts.finish().await;
            let mut lines = take(&log);
            lines.sort();
            (lines, ran.load(SeqCst))
        };
        let (lines, ran) = if multi {
            multi_thread(scenario)
        } else {
            common::current_thread().block_on(scenario)
        };
        assert_eq!(ran, 1);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("disk on fire")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("exception app-->task_holder"))
        );
    }
}

/// Rule: under `fail_fast`, a detached task's panic cancels the holder with it as the
/// cause: a waiting sibling is dropped, and `try_finish` returns the panic.
#[test]
fn a_detached_panic_fails_a_fail_fast_holder_and_stops_its_siblings() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).fail_fast().build();
        let dropped = counter();
        let d = Dropped(dropped.clone());
        assert!(ts.spawn_detached(async move {
            let _d = d;
            sleep(Duration::from_secs(3600)).await;
        }));
        assert!(ts.spawn_detached(async {
            sleep(Duration::from_secs(1)).await;
            panic!("bad input");
        }));
        let start = Instant::now();
        let err = ts.try_finish().await.expect_err("the panic");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(err.to_string().contains("bad input"), "{err}");
        assert_eq!(dropped.load(SeqCst), 1);
        assert!(
            !ctx.done(),
            "the holder's own context failed, not its parent"
        );
    });
}

/// Rule: refused work is visible: `try_spawn_detached` gives the future back unpolled;
/// `spawn_detached` returns `false` and drops it exactly once (a panic in its `Drop` is
/// caught).
#[test]
fn refused_detached_work_comes_back_or_is_dropped_once() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let h = ts.handle();
        ts.finish().await;
        let batch = String::from("abc");
        let refused = h
            .try_spawn_detached(async move { batch.len() })
            .expect_err("closed");
        assert_eq!(refused.into_inner().await, 3);
        let dropped = counter();
        let d = Dropped(dropped.clone());
        assert!(!h.spawn_detached(async move { drop(d) }));
        assert_eq!(dropped.load(SeqCst), 1);
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("refused work's drop");
            }
        }
        let p = PanicOnDrop;
        assert!(!h.spawn_detached(async move { drop(p) }));
        assert_eq!((h.pending(), h.len()), (0, 0));
    });
}

/// Rule: a future whose `Drop` spawns into the holder: while the holder is open the
/// new task is held and waited for (a chain of 100 000, each task's drop spawning the
/// next); once it is cancelled, each refused future's drop spawns again and is refused,
/// 100 000 times, in constant stack (a child process on a 2 MiB stack).
#[test]
fn drops_that_spawn_into_the_holder_chain_100_000_times_in_constant_stack() {
    in_child_process(
        module_path!(),
        "drops_that_spawn_into_the_holder_chain_100_000_times_in_constant_stack",
        || {
            struct Next(hp::TaskHolderHandle, Arc<AtomicUsize>);
            impl Drop for Next {
                fn drop(&mut self) {
                    if self.1.fetch_add(1, SeqCst) + 1 < 100_000 {
                        let next = Next(self.0.clone(), self.1.clone());
                        let _ = self.0.spawn_detached(async move { drop(next) });
                    }
                }
            }
            common::current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("app");
                // Open: every link runs as a task.
                let ts = hp::task_holder(&ctx);
                let links = counter();
                let first = Next(ts.handle(), links.clone());
                assert!(ts.spawn_detached(async move { drop(first) }));
                ts.finish().await;
                assert_eq!(links.load(SeqCst), 100_000);
                // Closed: every link is refused and dropped where it is refused.
                let ts = hp::task_holder(&ctx);
                let h = ts.handle();
                ts.cancel_all();
                let links = counter();
                let first = Next(h.clone(), links.clone());
                assert!(!h.spawn_detached(async move { drop(first) }));
                assert_eq!(links.load(SeqCst), 100_000);
            });
        },
    );
}

/// Rule: the limit applies to detached tasks: at most `n` run at once; all count as
/// pending meanwhile.
#[test]
fn the_limit_applies_to_detached_tasks() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).limit(2).build();
        let (now, max) = (counter(), counter());
        for _ in 0..10 {
            let (now, max) = (now.clone(), max.clone());
            assert!(ts.spawn_detached(async move {
                let n = now.fetch_add(1, SeqCst) + 1;
                max.fetch_max(n, SeqCst);
                sleep(Duration::from_secs(1)).await;
                now.fetch_sub(1, SeqCst);
            }));
        }
        assert_eq!(ts.pending(), 10);
        let start = Instant::now();
        ts.finish().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(max.load(SeqCst), 2);
    });
}

/// Rule: a runtime's shutdown drops the detached tasks on it: each `Drop` runs, the
/// holder settles, and `finish` (on another runtime) returns at once.
#[test]
fn a_runtime_shutdown_settles_its_detached_tasks() {
    let dropped = counter();
    let rt = common::current_thread();
    let ts = rt.block_on(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        for _ in 0..50 {
            let d = Dropped(dropped.clone());
            assert!(ts.spawn_detached(async move {
                let _d = d;
                std::future::pending::<()>().await;
            }));
        }
        tokio::task::yield_now().await;
        ts
    });
    assert_eq!(ts.pending(), 50);
    drop(rt);
    assert_eq!(dropped.load(SeqCst), 50);
    assert_eq!(ts.pending(), 0);
    common::current_thread().block_on(async move {
        tokio::time::timeout(Duration::from_secs(5), ts.finish())
            .await
            .expect("finish returns at once");
    });
}

/// Race: detached tasks spawned from several tasks while the holder is cancelled from
/// another: every future is dropped exactly once (ran or not), what was refused was
/// refused, `finish` returns and nothing stays pending.
#[test]
fn spawning_detached_tasks_while_cancelling_loses_nothing() {
    for round in 0..20u64 {
        let (accepted, refused, dropped) = multi_thread(async move {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::task_holder(&ctx);
            let (accepted, refused, dropped) = (counter(), counter(), counter());
            let mut spawners = Vec::new();
            for s in 0..4u64 {
                let (h, a, r, d) = (
                    ts.handle(),
                    accepted.clone(),
                    refused.clone(),
                    dropped.clone(),
                );
                spawners.push(tokio::spawn(async move {
                    for i in 0..500u64 {
                        let dd = Dropped(d.clone());
                        let took = h.spawn_detached(async move {
                            let _d = dd;
                            if (i + s) % 3 == 0 {
                                sleep(ms(1)).await;
                            }
                            if (i + s) % 5 == 0 {
                                std::future::pending::<()>().await;
                            }
                        });
                        if took { &a } else { &r }.fetch_add(1, SeqCst);
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            sleep(ms(round % 4)).await;
            ts.cancel_all();
            for s in spawners {
                s.await.unwrap();
            }
            let h = ts.handle();
            ts.finish().await;
            assert_eq!(h.pending(), 0);
            (
                accepted.load(SeqCst),
                refused.load(SeqCst),
                dropped.load(SeqCst),
            )
        });
        assert_eq!(accepted + refused, 2_000);
        assert_eq!(dropped, 2_000, "round {round}: every future dropped once");
    }
}

/// Rule: a joinable holder hands out the tasks that have handles, not detached ones,
/// and `join_next` ends (`None`) only once the detached tasks have ended too.
#[test]
fn a_joinable_holder_waits_for_detached_tasks_but_does_not_hand_them_out() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::TaskHolder::builder(&ctx).joinable().build();
        assert!(ts.spawn_detached(sleep(Duration::from_secs(2))));
        let t = ts.spawn(async {
            sleep(Duration::from_secs(1)).await;
            7
        });
        assert_eq!(ts.len(), 2);
        let start = Instant::now();
        let first = ts.join_next().await.expect("the spawned task");
        assert_eq!(first.id(), t.id());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(ts.join_next().await.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(ts.len(), 0);
    });
}

/// Rule: a task counts as pending until its future's `Drop` has run (completed or
/// aborted); a `Drop` that panics is caught and logged, and one that cancels the holder's
/// context stops the siblings; `finish` still returns.
#[test]
fn a_detached_futures_drop_runs_while_it_still_counts_and_may_panic_or_cancel() {
    struct Probe {
        h: hp::TaskHolderHandle,
        seen: Arc<Mutex<Vec<usize>>>,
        cancel: bool,
        panic: bool,
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            self.seen.lock().unwrap().push(self.h.pending());
            if self.cancel {
                self.h.ctx().cancel();
            }
            if self.panic {
                panic!("probe drop");
            }
        }
    }
    for multi in [false, true] {
        let scenario = async {
            let (ctx, log) = logged_ctx("app");
            let ts = hp::task_holder(&ctx);
            let seen = Arc::new(Mutex::new(Vec::new()));
            let probe = |cancel, panic| Probe {
                h: ts.handle(),
                seen: seen.clone(),
                cancel,
                panic,
            };
            // The only task: its drop (in the block's last poll) sees itself pending,
            // then panics.
            let p = probe(false, true);
            assert!(ts.spawn_detached(async move {
                let _p = p;
            }));
            while ts.pending() > 0 {
                tokio::task::yield_now().await;
            }
            assert_eq!(*seen.lock().unwrap(), [1]);
            // Three waiting siblings; a fourth's drop cancels the holder's context.
            for _ in 0..3 {
                let p = probe(false, false);
                assert!(ts.spawn_detached(async move {
                    let _p = p;
                    std::future::pending::<()>().await;
                }));
            }
            let p = probe(true, false);
            assert!(ts.spawn_detached(async move {
                sleep(ms(10)).await;
                drop(p);
            }));
            let h = ts.handle();
            ts.finish().await;
            let mut seen = seen.lock().unwrap().clone();
            seen.sort_unstable();
            let lines = take(&log);
            (seen, h.pending(), lines)
        };
        let (seen, pending, lines) = if multi {
            multi_thread(scenario)
        } else {
            common::current_thread().block_on(scenario)
        };
        assert_eq!(pending, 0);
        // The first probe saw 1; the canceller saw 4 (itself and three siblings) and
        // each sibling at least itself.
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(seen[0], 1);
        assert_eq!(*seen.last().unwrap(), 4);
        assert!(seen.iter().all(|&n| (1..=4).contains(&n)), "{seen:?}");
        // The async block drops its locals in its last poll: the probe's panic is the
        // task's own panic, caught and logged once through the holder's context.
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("probe drop"), "{lines:?}");
    }
}

/// A future that is ready at once and drops `D` only when it is dropped itself (after
/// returning: an async block would drop it inside its last poll).
struct ReadyThenDrop<D>(D);

impl<D: Unpin> std::future::Future for ReadyThenDrop<D> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

/// Rule: a finished future is dropped while its task still counts; a panic in that
/// drop (a bomb payload too) is caught and reported (through `tracing`, as `spawn`'s:
/// the task's outcome stands, it is not a failure), and `finish` returns.
#[test]
fn a_finished_futures_drop_that_panics_with_a_bomb_is_caught_and_finish_returns() {
    struct BombOnDrop(hp::TaskHolderHandle, Arc<Mutex<Vec<usize>>>);
    impl Drop for BombOnDrop {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(self.0.pending());
            std::panic::panic_any(Bomb);
        }
    }
    for multi in [false, true] {
        let scenario = async {
            let (ctx, log) = logged_ctx("app");
            let ts = hp::TaskHolder::builder(&ctx).fail_fast().build();
            let seen = Arc::new(Mutex::new(Vec::new()));
            assert!(ts.spawn_detached(ReadyThenDrop(BombOnDrop(ts.handle(), seen.clone()))));
            let h = ts.handle();
            let out = ts.try_finish().await;
            let seen = seen.lock().unwrap().clone();
            (out.is_ok(), seen, h.pending(), take(&log))
        };
        let (ok, seen, pending, lines) = if multi {
            multi_thread(scenario)
        } else {
            common::current_thread().block_on(scenario)
        };
        assert!(ok, "not a failure under fail_fast");
        assert_eq!((seen, pending), (vec![1], 0));
        assert!(lines.is_empty(), "{lines:?}");
    }
}

thread_local! {
    static KEEP: std::cell::RefCell<Option<tokio::runtime::Runtime>> =
        const { std::cell::RefCell::new(None) };
}

/// Rule (thread exit): a runtime kept in a user thread-local registered before the
/// crate's is dropped at thread exit, after the crate's own thread-locals: its detached
/// tasks' futures are dropped there, each one settles, and `finish` returns at once
/// afterwards (a child process: an abort there fails this test, not the suite).
#[test]
fn a_runtime_dropped_at_thread_exit_settles_its_detached_tasks() {
    in_child_process(
        module_path!(),
        "a_runtime_dropped_at_thread_exit_settles_its_detached_tasks",
        || {
            let dropped = counter();
            let d = dropped.clone();
            let ts = common::on_small_stack(move || {
                KEEP.with(|_| {}); // first: destroyed after the crate's thread-locals
                let f = hp::Fut::<()>::new(); // sets up the finishing trampoline
                f.add_done_callback(|_| {});
                f.set_result(());
                let rt = common::current_thread();
                let ts = rt.block_on(async {
                    let ts = hp::task_holder(&hp::Ctx::beginning("app"));
                    for _ in 0..100 {
                        let dd = Dropped(d.clone());
                        assert!(ts.spawn_detached(async move {
                            let _d = dd;
                            std::future::pending::<()>().await;
                        }));
                    }
                    tokio::task::yield_now().await;
                    ts
                });
                assert_eq!(ts.pending(), 100);
                KEEP.with(|k| *k.borrow_mut() = Some(rt));
                ts
            });
            assert_eq!(dropped.load(SeqCst), 100);
            assert_eq!(ts.pending(), 0);
            common::current_thread().block_on(async move {
                tokio::time::timeout(Duration::from_secs(5), ts.finish())
                    .await
                    .expect("finish returns at once");
            });
        },
    );
}
