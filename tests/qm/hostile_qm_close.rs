//! Hostile tests of closing a queue manager whose sources are `hp::AsyncGenerator`s:
//! `close()` stops each as `stop_async_generator` does (the cancellation thrown in at its
//! yield, its async cleanup run before `close()` returns), whatever the generator does
//! with the throw; the scoped form does the same; a stop of the context stops them before
//! the stream ends; dropping the streamer drops them (no async `Drop`).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::multi_thread;
use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
use tokio::time::{Instant, sleep, timeout};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn seen(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Logs `NAME dropped` when dropped (the body's synchronous cleanup).
struct Guard(&'static str, Log);
impl Drop for Guard {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(format!("{} dropped", self.0));
    }
}

/// What a generator does when a failure is thrown in at its yield.
#[derive(Clone, Copy)]
enum Cleanup {
    /// Sleeps `ms`, then returns the failure.
    Sleep(u64),
    /// Panics (after logging).
    Panic,
    /// Catches it and yields again once; then cleans up when closed.
    YieldAgain,
    /// Catches everything and yields for ever.
    Ignore,
}

/// Yields 0, 1, 2, ... and logs what is thrown in and its cleanup.
fn generator(name: &'static str, log: &Log, cleanup: Cleanup) -> hp::AsyncGenerator<i32> {
    let log = log.clone();
    hp::AsyncGenerator::new(move |co: hp::Co<i32>| async move {
        let _guard = Guard(name, log.clone());
        let say = |s: String| log.lock().unwrap().push(format!("{name} {s}"));
        let mut i = 0;
        loop {
            match co.yield_(i).await {
                Ok(()) => i += 1,
                Err(f) => {
                    say(format!("thrown {f}"));
                    match cleanup {
                        Cleanup::Sleep(ms) => {
                            sleep(Duration::from_millis(ms)).await;
                            say("cleaned".to_owned());
                            return Err(f);
                        }
                        Cleanup::Panic => panic!("{name} cleanup"),
                        Cleanup::YieldAgain => {
                            let again = co.yield_(-1).await;
                            say(format!("then {}", again.unwrap_err()));
                            return Ok(());
                        }
                        Cleanup::Ignore => i = -1,
                    }
                }
            }
        }
    })
}

/// A manager fed one generator per `(name, cleanup)`, each polled once (one result
/// taken per generator): the setup every close scenario starts from.
async fn started(
    gens: &[(&'static str, Cleanup)],
) -> (
    hp::Ctx,
    hp::Streamer<i32, &'static str>,
    hp::QueueFeeder<i32, &'static str>,
    Log,
) {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    for &(name, cleanup) in gens {
        f.add_async_generator(generator(name, &log, cleanup));
    }
    take(&mut s, gens.len()).await;
    (ctx, s, f, log)
}

/// Closes `s` (a hang fails the test after 60 virtual seconds) and returns the log.
async fn close_and_see(s: hp::Streamer<i32, &'static str>, log: &Log) -> Vec<String> {
    timeout(Duration::from_secs(60), s.close())
        .await
        .expect("close does not hang");
    seen(log)
}

/// What a generator that sleeps through its cleanup logs when stopped, for each name.
fn stopped_cleanly(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| {
            [
                format!("{n} thrown cancelled"),
                format!("{n} cleaned"),
                format!("{n} dropped"),
            ]
        })
        .collect()
}

/// Takes `n` results (so that every generator was polled).
async fn take(s: &mut hp::Streamer<i32, &'static str>, n: usize) {
    for _ in 0..n {
        s.next().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn close_stops_several_generators_in_order_and_drops_the_rest() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    f.add_async_generator(generator("g1", &log, Cleanup::Sleep(5)));
    f.add_async_generator(generator("g2", &log, Cleanup::Sleep(1)));
    let plain = Arc::new(());
    let p = plain.clone();
    f.add_async_generator(futures::stream::iter(0..).map(move |i| {
        let _keep = &p;
        i
    }));
    f.add_async_generator(generator("g3", &log, Cleanup::Sleep(0)));
    take(&mut s, 4).await;
    // Added now: never polled, so its body never runs (as stop_async_generator: not run).
    f.add_async_generator(generator("g4", &log, Cleanup::Sleep(0)));
    let start = Instant::now();
    s.close().await;
    assert_eq!(start.elapsed(), Duration::from_millis(6));
    assert_eq!(
        seen(&log),
        [
            "g1 thrown cancelled",
            "g1 cleaned",
            "g1 dropped",
            "g2 thrown cancelled",
            "g2 cleaned",
            "g2 dropped",
            "g3 thrown cancelled",
            "g3 cleaned",
            "g3 dropped",
        ]
    );
    // The plain stream was dropped.
    assert_eq!(Arc::strong_count(&plain), 1);
}

#[tokio::test(start_paused = true)]
async fn cleanup_awaiting_another_task_is_awaited() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    let (tx, rx) = tokio::sync::oneshot::channel::<&'static str>();
    let l = log.clone();
    let g = hp::AsyncGenerator::new(move |co: hp::Co<i32>| async move {
        loop {
            if let Err(f) = co.yield_(1).await {
                let got = rx.await.unwrap();
                l.lock().unwrap().push(format!("cleanup got {got}"));
                return Err::<(), _>(f);
            }
        }
    });
    f.add_async_generator(g);
    take(&mut s, 1).await;
    tokio::spawn(async move {
        sleep(Duration::from_secs(3)).await;
        tx.send("flushed").unwrap();
    });
    let start = Instant::now();
    s.close().await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(seen(&log), ["cleanup got flushed"]);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_one_cleanup_is_reported_and_the_others_still_stop() {
    let (_ctx, s, _f, log) = started(&[("g1", Cleanup::Panic), ("g2", Cleanup::Sleep(1))]).await;
    let mut want = vec!["g1 thrown cancelled".to_owned(), "g1 dropped".to_owned()];
    want.extend(stopped_cleanly(&["g2"]));
    assert_eq!(close_and_see(s, &log).await, want);
}

/// A generator whose `Drop` panics while it is stopped: reported, the next still stops.
#[tokio::test(start_paused = true)]
async fn a_panicking_drop_of_a_stopped_generator_is_reported() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("drop");
            }
        }
    }
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    f.add_async_generator(hp::AsyncGenerator::new(|co: hp::Co<i32>| async move {
        let _p = PanicOnDrop;
        co.yield_(1).await?;
        Ok::<(), hp::Failure>(())
    }));
    f.add_async_generator(generator("g2", &log, Cleanup::Sleep(1)));
    take(&mut s, 2).await;
    s.close().await;
    assert_eq!(
        seen(&log),
        ["g2 thrown cancelled", "g2 cleaned", "g2 dropped"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_generator_that_yields_again_is_closed_at_that_yield() {
    let (_ctx, s, _f, log) = started(&[
        ("g1", Cleanup::YieldAgain),
        ("g2", Cleanup::Ignore),
        ("g3", Cleanup::Sleep(0)),
    ])
    .await;
    assert_eq!(
        close_and_see(s, &log).await,
        [
            "g1 thrown cancelled",
            "g1 then generator closed",
            "g1 dropped",
            // Ignores the throw and the close: dropped at its yield.
            "g2 thrown cancelled",
            "g2 thrown generator closed",
            "g2 dropped",
            "g3 thrown cancelled",
            "g3 cleaned",
            "g3 dropped",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_produced_generator_behind_feed_stream_is_stopped_too() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    let l = log.clone();
    f.add_sync_function(move || Feed::stream(generator("inner", &l, Cleanup::Sleep(2))));
    take(&mut s, 2).await;
    s.close().await;
    assert_eq!(
        seen(&log),
        ["inner thrown cancelled", "inner cleaned", "inner dropped"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_try_generator_is_stopped_too() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    let g = generator("g", &log, Cleanup::Sleep(1)).into_try_stream();
    f.add_async_generator(g.map(|r| Feed::from_result(r.map_err(hp::Error::new))));
    take(&mut s, 1).await;
    s.close().await;
    assert_eq!(seen(&log), ["g thrown cancelled", "g cleaned", "g dropped"]);
}

/// Without `close()`: Rust has no async `Drop`, so dropping the streamer drops the
/// generators where they wait: their synchronous cleanup runs, their async cleanup not.
#[tokio::test(start_paused = true)]
async fn dropping_the_streamer_drops_generators_without_async_cleanup() {
    let (_ctx, s, f, log) = started(&[("g1", Cleanup::Sleep(1)), ("g2", Cleanup::Sleep(1))]).await;
    drop(s);
    assert_eq!(seen(&log), ["g1 dropped", "g2 dropped"]);
    assert_eq!(f.live_sources(), 0);
}

/// The context stops while the consumer iterates: the generators are stopped (async
/// cleanup included) before the stream ends; their results say they were cut short.
#[tokio::test(start_paused = true)]
async fn a_stopped_context_stops_generators_before_the_stream_ends() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    f.add_async_generator(generator("g1", &log, Cleanup::Sleep(4)));
    f.add_async_generator(generator("g2", &log, Cleanup::Sleep(4)));
    take(&mut s, 2).await;
    ctx.cancel();
    let mut rest = Vec::new();
    while let Some(r) = s.next().await {
        rest.push(match r {
            R::Stopped { error } => format!("stopped {}", error.unwrap()),
            R::IterationStop { error, sources, .. } => {
                format!("end {} {sources:?}", error.unwrap())
            }
            R::Success { value, .. } => format!("ok {value}"),
            R::Failure { error, .. } => format!("fail {error}"),
        });
        // Nothing is stopped before the consumer reached the end.
        if rest.len() == 1 {
            assert_eq!(seen(&log), Vec::<String>::new());
        }
    }
    assert_eq!(rest[0], "stopped cancelled");
    assert!(
        rest.iter()
            .any(|r| r == "end cancelled [ASYNC_GENERATOR#1]"),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|r| r == "end cancelled [ASYNC_GENERATOR#2]"),
        "{rest:?}"
    );
    // In the order the stop ended them: g2 waited for its waker (ended by the stop at
    // once), g1 had its step queued (ended when the consumer took that step).
    assert_eq!(
        seen(&log),
        [
            "g2 thrown cancelled",
            "g2 cleaned",
            "g2 dropped",
            "g1 thrown cancelled",
            "g1 cleaned",
            "g1 dropped",
        ]
    );
    assert_eq!(s.cut_short().len(), 2);
    // Closing afterwards stops nothing twice.
    s.close().await;
    assert_eq!(seen(&log).len(), 6);
}

/// `close()` after the context stopped (the consumer did not reach the end): each
/// generator is stopped once, with the context's failure.
#[tokio::test(start_paused = true)]
async fn close_after_a_context_stop_stops_each_generator_once() {
    let (ctx, mut s, _f, log) =
        started(&[("g1", Cleanup::Sleep(1)), ("g2", Cleanup::Sleep(1))]).await;
    ctx.cancel();
    // The consumer takes one entry (Stopped) and is left mid-way.
    assert!(matches!(s.next().await, Some(R::Stopped { .. })));
    assert_eq!(close_and_see(s, &log).await, stopped_cleanly(&["g1", "g2"]));
}

/// `close()` racing a cancel of the context from another thread: every generator is
/// stopped exactly once and `close()` returns after all cleanups (multi-thread).
#[test]
fn close_racing_a_context_cancel_stops_each_generator_once() {
    multi_thread(async {
        for round in 0..50 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) =
                hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
            let log = log();
            for name in ["g1", "g2", "g3"] {
                f.add_async_generator(generator(name, &log, Cleanup::Sleep(1)));
            }
            take(&mut s, 3).await;
            let c = ctx.clone();
            let canceller = tokio::spawn(async move {
                if round % 2 == 0 {
                    tokio::task::yield_now().await;
                }
                c.cancel();
            });
            s.close().await;
            canceller.await.unwrap();
            let mut got = seen(&log);
            assert_eq!(got.len(), 9, "round {round}: {got:?}");
            got.sort();
            for name in ["g1", "g2", "g3"] {
                for what in ["thrown cancelled", "cleaned", "dropped"] {
                    let line = format!("{name} {what}");
                    assert_eq!(got.iter().filter(|l| **l == line).count(), 1, "{line}");
                }
            }
        }
    });
}

/// The close future dropped while a cleanup awaits: the generator being stopped and
/// those waiting their turn are dropped (sync cleanup), nothing hangs or leaks.
#[tokio::test(start_paused = true)]
async fn dropping_close_mid_cleanup_drops_the_rest() {
    let (_ctx, s, f, log) =
        started(&[("g1", Cleanup::Sleep(10_000)), ("g2", Cleanup::Sleep(1))]).await;
    assert!(timeout(Duration::from_secs(1), s.close()).await.is_err());
    assert_eq!(
        seen(&log),
        ["g1 thrown cancelled", "g1 dropped", "g2 dropped"]
    );
    assert_eq!(f.live_sources(), 0);
}

/// The scoped form closes after its body, also when the body dropped the streamer: the
/// generators still get their async cleanup.
#[tokio::test(start_paused = true)]
async fn the_scoped_form_stops_generators_after_its_body() {
    let ctx = hp::Ctx::beginning("t");
    let log = log();
    let l = log.clone();
    let out = hp::queue_manager_scoped::<i32, &str, _, _, _, hp::Error>(
        &ctx,
        "qm",
        |mut s, f| async move {
            f.add_async_generator(generator("g1", &l, Cleanup::Sleep(1)));
            f.add_async_generator(generator("g2", &l, Cleanup::Sleep(1)));
            take(&mut s, 2).await;
            drop(s);
            assert_eq!(seen(&l), Vec::<String>::new());
            Ok(5)
        },
    )
    .await;
    assert_eq!(out.unwrap(), 5);
    assert_eq!(
        seen(&log),
        [
            "g1 thrown cancelled",
            "g1 cleaned",
            "g1 dropped",
            "g2 thrown cancelled",
            "g2 cleaned",
            "g2 dropped",
        ]
    );
}

/// The scoped future dropped in its body: the generators kept for its close are dropped.
#[tokio::test(start_paused = true)]
async fn the_scoped_form_dropped_mid_body_drops_generators() {
    let ctx = hp::Ctx::beginning("t");
    let log = log();
    let l = log.clone();
    let scoped = hp::queue_manager_scoped::<i32, &str, _, _, (), hp::Error>(
        &ctx,
        "qm",
        |mut s, f| async move {
            f.add_async_generator(generator("g1", &l, Cleanup::Sleep(1)));
            take(&mut s, 1).await;
            drop(s);
            std::future::pending().await
        },
    );
    assert!(timeout(Duration::from_secs(1), scoped).await.is_err());
    assert_eq!(seen(&log), ["g1 dropped"]);
}

/// 1 000 generator sources: all stopped by one close, in order.
#[tokio::test(start_paused = true)]
async fn a_thousand_generators_are_all_stopped() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    let names: Vec<&'static str> = (0..1_000)
        .map(|i| &*Box::leak(format!("g{i}").into_boxed_str()))
        .collect();
    for name in &names {
        f.add_async_generator(generator(name, &log, Cleanup::Sleep(0)));
    }
    take(&mut s, 1_000).await;
    s.close().await;
    let got = seen(&log);
    assert_eq!(got.len(), 3_000);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(got[3 * i], format!("{name} thrown cancelled"));
    }
}

/// A cleanup that calls back into the manager (adds a value and a generator, reads
/// `live_sources`) while `close()` stops it: no lock is held, nothing deadlocks; what
/// it adds after the close is dropped unrun.
#[tokio::test(start_paused = true)]
async fn a_cleanup_calling_back_into_the_manager_does_not_deadlock() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = log();
    let (l, f2, l2) = (log.clone(), f.clone(), log.clone());
    f.add_async_generator(hp::AsyncGenerator::new(move |co: hp::Co<i32>| async move {
        loop {
            if let Err(e) = co.yield_(1).await {
                f2.add_value(5);
                f2.add_async_generator(generator("late", &l2, Cleanup::Sleep(1)));
                l.lock()
                    .unwrap()
                    .push(format!("cleanup live {}", f2.live_sources()));
                return Err::<(), _>(e);
            }
        }
    }));
    take(&mut s, 1).await;
    timeout(Duration::from_secs(60), s.close())
        .await
        .expect("no deadlock");
    // The late generator was never polled: its body never ran.
    assert_eq!(seen(&log), ["cleanup live 0"]);
}

/// The context cancelled from another thread while the consumer iterates on a
/// multi-thread runtime: every generator is stopped once, before the stream ends.
#[test]
fn a_context_cancel_from_another_thread_stops_generators_before_the_end() {
    multi_thread(async {
        for _ in 0..30 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) =
                hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
            let log = log();
            for name in ["g1", "g2", "g3"] {
                f.add_async_generator(generator(name, &log, Cleanup::Sleep(1)));
            }
            let l = log.clone();
            let consumer = tokio::spawn(async move {
                let mut n = 0;
                while s.next().await.is_some() {
                    n += 1;
                }
                // Every cleanup ran before the stream ended.
                assert_eq!(seen(&l).len(), 9, "{:?}", seen(&l));
                n
            });
            sleep(Duration::from_millis(1)).await;
            let c = ctx.clone();
            std::thread::spawn(move || c.cancel()).join().unwrap();
            assert!(consumer.await.unwrap() > 0);
            let mut got = seen(&log);
            got.sort();
            got.dedup();
            assert_eq!(got.len(), 9);
        }
    });
}
