//! Leak tests: the live-object counters (`hp::debug`, feature `leak-counters`, on for the
//! crate's tests) return to zero once the scopes that made contexts, tasks, queues and
//! task holders end, on the multi-thread runtime, including after cancellations, panics
//! and timeouts.
//!
//! The counters are process-wide, so this binary's tests run one at a time (a lock) and
//! nothing else in this binary creates those objects.

use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::sleep;

static SERIAL: Mutex<()> = Mutex::new(());

fn counts() -> [usize; 5] {
    [
        hp::debug::live_contexts(),
        hp::debug::live_tasks(),
        hp::debug::live_queues(),
        hp::debug::live_holders(),
        hp::debug::live_managers(),
    ]
}

/// Runs `body` on a fresh two-worker runtime under a real-time watchdog, then waits
/// (real time, bounded) for every counter to return to zero while the runtime still
/// runs: task bodies are dropped by the workers shortly after they finish.
fn check<F>(body: impl FnOnce() -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(counts(), [0; 5], "something leaked before this test");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fut = body();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .expect("watchdog: the scenario hung");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while counts() != [0; 5] && std::time::Instant::now() < deadline {
            sleep(Duration::from_millis(1)).await;
        }
    });
    assert_eq!(
        counts(),
        [0; 5],
        "live [contexts, tasks, queues, holders, managers]"
    );
    drop(rt);
    assert_eq!(counts(), [0; 5]);
}

#[test]
fn contexts_created_cancelled_and_dropped_are_all_freed() {
    check(|| async {
        let root = hp::Ctx::beginning("root");
        for i in 0..10_000 {
            let child = root.child("c").drop_guard();
            let grand = child.child("g").drop_guard();
            let detached = grand.child("d").drop_guard().detach();
            if i % 3 == 0 {
                child.cancel();
            }
            if i % 5 == 0 {
                detached.set_exception(hp::Error::msg("x"));
            }
            let _cb = detached.add_done_callback(|_| {});
        }
        assert_eq!(root.child_count(), 0);
        assert_eq!(hp::debug::live_contexts(), 1);
    });
}

#[test]
fn a_deep_chain_and_a_wide_fan_out_are_freed() {
    check(|| async {
        let root = hp::Ctx::beginning("root");
        let mut chain: Vec<hp::CtxGuard> = vec![root.child("0").drop_guard()];
        for _ in 1..5_000 {
            let next = chain.last().unwrap().child("n").drop_guard();
            chain.push(next);
        }
        let wide: Vec<hp::CtxGuard> = (0..20_000).map(|_| root.child("w").drop_guard()).collect();
        assert_eq!(hp::debug::live_contexts(), 1 + 5_000 + 20_000);
        root.cancel();
        drop(wide);
        drop(chain);
    });
}

#[test]
fn tasks_finished_cancelled_and_panicked_are_all_freed() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        let mut tasks = Vec::new();
        for i in 0..3_000u32 {
            let t = ctx.async_as_background(async move {
                if i % 7 == 0 {
                    panic!("boom {i}");
                }
                sleep(Duration::from_millis(u64::from(i % 5))).await;
                i
            });
            if i % 4 == 0 {
                t.cancel();
            }
            tasks.push(t);
        }
        for t in &tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn timeouts_and_deadlines_free_their_children_and_timers() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        for i in 0..500u64 {
            let _ = ctx
                .async_with_timeout(sleep(Duration::from_millis(i % 3)))
                .timeout(Duration::from_millis(1))
                .await;
            let c = ctx
                .child_with_timeout("d", Duration::from_millis(i % 2))
                .drop_guard();
            c.wait().await;
        }
        // A deadline abandoned before it fires frees its timer task too.
        for _ in 0..500 {
            drop(
                ctx.child_with_timeout("long", Duration::from_secs(3600))
                    .drop_guard(),
            );
        }
    });
}

#[test]
fn a_task_holder_under_churn_frees_every_task_and_itself() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        let ts = hp::task_holder(&ctx);
        let h = ts.handle();
        for i in 0..2_000u64 {
            let h2 = h.clone();
            ts.spawn_silent(async move {
                sleep(Duration::from_millis(i % 3)).await;
                if i % 10 == 0 {
                    h2.spawn_silent(async {});
                }
            });
        }
        ts.finish().await;
        assert_eq!(h.pending(), 0);
        // A dropped holder cancels and frees what it held.
        let ts = hp::task_holder(&ctx);
        for _ in 0..500 {
            ts.spawn_silent(sleep(Duration::from_secs(3600)));
        }
        drop(ts);
    });
}

#[test]
fn queues_and_their_handles_are_freed() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        for round in 0..200u32 {
            let mut q = hp::queue::<u32>(&ctx).build();
            let h = q.handle();
            let producer = tokio::spawn(async move {
                for n in 0..50 {
                    if n % 7 == 0 {
                        h.append_front(n).unwrap();
                    } else {
                        h.append(n).unwrap();
                    }
                }
            });
            producer.await.unwrap();
            let got: Vec<u32> = q.get_all().take(25).collect().await;
            assert_eq!(got.len(), 25);
            if round % 2 == 0 {
                q.ctx().cancel();
            }
            // Dropped with items still queued: they are freed with it.
        }
        let q = hp::sync_queue::<u32>(&ctx).build();
        let q2 = q.clone();
        std::thread::spawn(move || {
            (0..1_000).for_each(|n| {
                q2.append(n).unwrap();
            })
        })
        .join()
        .unwrap();
        assert_eq!(q.remaining().count(), 1_000);
    });
}

#[test]
fn tickers_cancelled_mid_wait_are_freed() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        for _ in 0..200 {
            let mut t = hp::tick(Duration::from_millis(1), &ctx)
                .max_iterations(3)
                .build()
                .unwrap();
            t.next().await;
        }
        let mut t = hp::tick(Duration::from_secs(3600), &ctx).build().unwrap();
        t.next().await;
        let c = ctx.clone();
        tokio::spawn(async move { c.cancel() });
        assert_eq!(t.next().await, None);
    });
}

#[test]
fn queue_managers_stopped_closed_and_dropped_are_freed() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        for round in 0..100u32 {
            let (mut streamer, feeder) =
                hp::queue_manager_with_empty_context::<u32, u32>(&ctx, "queue_manager", || 0);
            feeder.add_sync_iterator_with_context(0..50u32, round);
            let pause = Duration::from_millis(u64::from(round % 3));
            feeder.add_coroutine_with_context(
                async move {
                    sleep(pause).await;
                    2u32
                },
                round,
            );
            feeder.add_coroutine_with_context(
                async {
                    sleep(Duration::from_secs(3600)).await;
                    3u32
                },
                round,
            );
            feeder.add_async_generator_with_context(futures::stream::iter(0..10u32), round);
            feeder.add_value(hp::Feed::Value(1));
            let _: Vec<_> = streamer.by_ref().take(20).collect().await;
            match round % 3 {
                0 => streamer.close().await,
                1 => {
                    streamer.ctx().cancel();
                    let _: Vec<_> = streamer.by_ref().collect().await;
                    drop(streamer);
                }
                _ => drop(streamer),
            }
            drop(feeder);
        }
    });
}

/// The queue manager's hot path (issue 26): hot iterators and streams (values and
/// their sources travelling in the consumer's own part of the queue) fed by producers
/// on other workers, then stopped, closed or dropped at once after k results: every
/// context, task and manager is freed.
#[test]
fn queue_manager_hot_sources_fed_from_other_workers_are_freed() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        for round in 0..60u32 {
            let (mut streamer, feeder) =
                hp::queue_manager_with_empty_context::<u32, u32>(&ctx, "queue_manager", || 0);
            let producers: Vec<_> = (0..3u32)
                .map(|p| {
                    let feeder = feeder.clone();
                    tokio::spawn(async move {
                        for i in 0..20u32 {
                            feeder.add_sync_iterator_with_context(0..30u32, p * 100 + i);
                            feeder.add_async_generator(futures::stream::iter(0..30u32));
                            feeder.add_value(hp::Feed::Value(i));
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let k = (round as usize * 37) % 400;
            let _: Vec<_> = streamer.by_ref().take(k).collect().await;
            match round % 3 {
                0 => streamer.close().await,
                1 => {
                    streamer.ctx().cancel();
                    let _: Vec<_> = streamer.by_ref().collect().await;
                    drop(streamer);
                }
                _ => drop(streamer),
            }
            for p in producers {
                p.await.unwrap();
            }
            drop(feeder);
        }
    });
}

/// Detached held tasks (`spawn_detached`) that finish, panic, wait when the holder is
/// dropped, or are refused: the holder and everything the tasks captured are freed.
#[test]
fn detached_tasks_finished_panicked_aborted_and_refused_free_everything() {
    check(|| async {
        let ctx = hp::Ctx::beginning("root");
        let ts = hp::task_holder(&ctx);
        for i in 0..3_000u64 {
            let child = ctx.child("captured");
            assert!(ts.spawn_detached(async move {
                if i % 7 == 0 {
                    panic!("boom {i}");
                }
                sleep(Duration::from_millis(i % 3)).await;
                drop(child);
            }));
        }
        ts.finish().await;
        // A dropped holder stops its waiting detached tasks and frees them.
        let ts = hp::task_holder(&ctx);
        let h = ts.handle();
        for _ in 0..500 {
            let child = ctx.child("captured");
            assert!(ts.spawn_detached(async move {
                sleep(Duration::from_secs(3600)).await;
                drop(child);
            }));
        }
        tokio::task::yield_now().await;
        drop(ts);
        let child = ctx.child("refused");
        assert!(!h.spawn_detached(async move { drop(child) }));
    });
}

/// Issue 26: 10 000 waiters on 100 children, half woken by the root's cancel, half
/// dropped pending by a timeout first (their wakers removed, keys freed and reused):
/// every context and task is freed.
#[test]
fn waiters_woken_or_dropped_pending_free_every_context() {
    check(|| async {
        let root = hp::Ctx::beginning("root");
        let kids: Vec<_> = (0..100).map(|i| root.child(format!("k{i}"))).collect();
        let tasks: Vec<_> = (0..10_000)
            .map(|i| {
                let k = kids[i % 100].clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        k.wait().await;
                    } else {
                        let _ = tokio::time::timeout(Duration::from_millis(1), k.wait()).await;
                    }
                })
            })
            .collect();
        sleep(Duration::from_millis(20)).await;
        root.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        drop(kids);
    });
}
