//! Hostile tests of the queue manager, by class: long chains, user `Drop` re-entering
//! the crate, panics in every piece of user code, wake paths, cancellation at every
//! await point, both runtimes.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    block_on_paused as current_thread, in_child_process, multi_thread, on_small_stack,
    with_watchdog,
};
use futures::StreamExt;
use machinery::helpers::{self as hp, CHAIN_KEEP, Feed, QueueInput as Q, QueueManagerResult as R};
use tokio::time::{Instant, sleep, timeout};

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Panics when dropped (unless the thread is already panicking).
struct PanicOnDrop(&'static str);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

// --- Chains whose length the user controls ---

fn hop(n: u32) -> Feed<u32> {
    if n == 0 {
        Feed::Value(7)
    } else {
        Feed::function(move || hop(n - 1))
    }
}

#[test]
fn a_function_returning_the_next_function_a_million_times_delivers_with_a_bounded_chain() {
    in_child_process(
        module_path!(),
        "a_function_returning_the_next_function_a_million_times_delivers_with_a_bounded_chain",
        || {
            current_thread(async {
                let ctx = hp::Ctx::beginning("app");
                let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                let first = feeder.add_sync_function(|| hop(1_000_000));
                let res = streamer.next().await.unwrap();
                let R::Success { sources, value, .. } = &res else {
                    panic!("{res:?}")
                };
                assert_eq!(*value, 7);
                assert_eq!(sources.depth(), 1_000_001);
                assert_eq!(sources.len(), 2 * CHAIN_KEEP, "memory per chain is bounded");
                assert_eq!(sources.elided(), 1_000_001 - 2 * CHAIN_KEEP as u64);
                assert_eq!(sources.added(), first);
                assert_eq!(sources.producer().kind(), Q::SyncFunction);
                assert_eq!(sources.producer().number(), 1_000_001);
                let shown = format!("{sources:?}");
                assert!(
                    shown.contains(&format!("..{} elided..", sources.elided())),
                    "{shown}"
                );
                assert!(shown.len() < 2_000, "printing is bounded too");
                assert_eq!(feeder.live_sources(), 0);
                drop(res); // dropping the chain does not recurse
            })
        },
    );
}

#[test]
fn a_feed_with_its_context_replaced_a_hundred_thousand_times_does_not_nest() {
    in_child_process(
        module_path!(),
        "a_feed_with_its_context_replaced_a_hundred_thousand_times_does_not_nest",
        || {
            let mut feed = Feed::<u32, u32>::Value(1);
            for i in 0..100_000u32 {
                feed = feed.with_context(i);
            }
            drop(feed);
        },
    );
}

/// An iterator whose only item is the next iterator, `n` deep, then a value.
fn nested(n: u32) -> Feed<u32> {
    if n == 0 {
        return Feed::Value(n);
    }
    Feed::iterator(std::iter::once_with(move || nested(n - 1)))
}

#[test]
fn sources_producing_sources_a_hundred_thousand_deep() {
    in_child_process(
        module_path!(),
        "sources_producing_sources_a_hundred_thousand_deep",
        || {
            current_thread(async {
                let ctx = hp::Ctx::beginning("app");
                let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                feeder.add_value(nested(100_000));
                feeder.set_as_finished_if_out_of_sources();
                let mut ends = 0;
                let mut value = None;
                while let Some(r) = streamer.next().await {
                    match r {
                        R::Success {
                            value: v, sources, ..
                        } => {
                            assert_eq!(sources.depth(), 100_001);
                            value = Some(v);
                        }
                        R::IterationStop { error: None, .. } => ends += 1,
                        R::Stopped { error: None } => break,
                        other => panic!("{other:?}"),
                    }
                }
                assert_eq!(value, Some(0));
                assert_eq!(ends, 100_000);
            })
        },
    );
}

/// A future resolving to the next future, `n` deep.
fn futures_deep(n: u32) -> Feed<u32> {
    if n == 0 {
        return Feed::Value(9);
    }
    Feed::future(async move { futures_deep(n - 1) })
}

#[test]
fn futures_resolving_to_futures_ten_thousand_deep() {
    in_child_process(
        module_path!(),
        "futures_resolving_to_futures_ten_thousand_deep",
        || {
            current_thread(async {
                let ctx = hp::Ctx::beginning("app");
                let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                feeder.add_value(futures_deep(10_000));
                let r = streamer.next().await.unwrap();
                assert_eq!(r.value(), Some(&9));
                // VALUE, then COROUTINE and TASK for each level
                assert_eq!(r.sources().unwrap().depth(), 1 + 2 * 10_000);
            })
        },
    );
}

#[test]
fn dropping_a_manager_with_a_long_chain_still_queued_does_not_recurse() {
    in_child_process(
        module_path!(),
        "dropping_a_manager_with_a_long_chain_still_queued_does_not_recurse",
        || {
            current_thread(async {
                let ctx = hp::Ctx::beginning("app");
                let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                feeder.add_sync_function(|| hop(1_000_000));
                // Take a few hops, then drop everything mid-way.
                let _ = timeout(Duration::from_millis(1), streamer.next()).await;
                drop(streamer);
                drop(feeder);
            })
        },
    );
}

// --- A panicking Drop of a source when the manager stops ---

/// A stream that never yields and panics when dropped.
fn panicking_stream() -> impl futures::Stream<Item = u32> + Send {
    let guard = PanicOnDrop("stream drop boom");
    futures::stream::pending::<u32>().map(move |v| {
        let _ = &guard;
        v
    })
}

async fn a_stream_drop_panicking_at_the_stop(multi: bool) {
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<u32, &'static str>(&ctx, "queue_manager", || "-");
    let dropped = Arc::new(AtomicUsize::new(0));
    feeder.add_async_generator_with_context(panicking_stream(), "s1");
    let flag = DropFlag(dropped.clone());
    feeder.add_coroutine_with_context(
        async move {
            let _flag = flag;
            std::future::pending::<u32>().await
        },
        "c",
    );
    feeder.add_async_generator_with_context(panicking_stream(), "s2");
    let c = ctx.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(10)).await;
        c.cancel();
    });
    // The consumer waits; the stop must wake it although both streams' Drop panic. The
    // streams the stop cut short come back in their `IterationStop` (issue 23 item 6):
    // their panicking `Drop` runs where the consumer drops them (caught here).
    let got: Vec<String> = streamer
        .by_ref()
        .map(|mut r| {
            let unread = r.take_unread().map(|u| {
                let kind = format!("{:?}", u.kind());
                let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(u)));
                format!(
                    " unread {kind} drop {}",
                    if dropped.is_err() { "panicked" } else { "ok" }
                )
            });
            let unread = unread.unwrap_or_default();
            match r {
                R::Stopped { error } => format!("stopped {error:?}"),
                R::IterationStop { context, .. } => format!("end {context}{unread}"),
                R::Failure { context, .. } => format!("fail {context}{unread}"),
                R::Success { context, .. } => format!("ok {context}"),
            }
        })
        .collect()
        .await;
    assert_eq!(
        got,
        [
            "stopped Some(Cancelled)",
            "end s1 unread Some(ASYNC_GENERATOR) drop panicked",
            "fail c",
            "end s2 unread Some(ASYNC_GENERATOR) drop panicked"
        ],
        "multi-thread: {multi}"
    );
    // The pending coroutine was cancelled and its future dropped.
    timeout(Duration::from_secs(5), async {
        while dropped.load(SeqCst) == 0 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the coroutine's future was dropped");
    assert_eq!(feeder.live_sources(), 0);
}

#[test]
fn a_panicking_stream_drop_at_the_stop_still_wakes_the_consumer_and_cancels_tasks() {
    with_watchdog(|| current_thread(a_stream_drop_panicking_at_the_stop(false)));
    multi_thread(a_stream_drop_panicking_at_the_stop(true));
}

#[test]
fn a_panicking_drop_of_an_exhausted_iterator_is_caught_and_the_manager_goes_on() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let guard = PanicOnDrop("iterator drop boom");
            feeder.add_sync_iterator([1u32].into_iter().inspect(move |_| {
                let _ = &guard;
            }));
            feeder.add_value(2);
            feeder.set_as_finished_if_out_of_sources();
            let kinds: Vec<&str> = streamer
                .by_ref()
                .map(|r| match r {
                    R::Success { .. } => "ok",
                    R::IterationStop { error: None, .. } => "end",
                    R::Stopped { error: None } => "stopped",
                    _ => "other",
                })
                .collect()
                .await;
            assert_eq!(kinds, ["ok", "ok", "end", "stopped"]);
        })
    });
}

#[test]
fn a_panicking_drop_when_the_streamer_is_dropped_does_not_keep_the_rest() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let dropped = Arc::new(AtomicUsize::new(0));
            for _ in 0..3 {
                let guard = PanicOnDrop("source drop boom");
                let flag = DropFlag(dropped.clone());
                feeder.add_sync_iterator(std::iter::from_fn(move || {
                    let _ = (&guard, &flag);
                    Some(1u32)
                }));
            }
            drop(streamer);
            assert_eq!(dropped.load(SeqCst), 3, "every source was dropped");
            assert_eq!(feeder.live_sources(), 0);
        })
    });
}

// --- Panics in every piece of user code ---

#[test]
fn a_panic_in_make_empty_context_reaches_the_poll_and_the_manager_goes_on() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let (mut streamer, feeder) = hp::queue_manager_with_empty_context::<u32, u32>(
                &ctx,
                "queue_manager",
                move || {
                    if c.fetch_add(1, SeqCst) == 0 {
                        panic!("empty context boom");
                    }
                    0
                },
            );
            feeder.add_value(1);
            feeder.add_value(2);
            let first =
                futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(streamer.next()))
                    .await;
            assert!(first.is_err(), "the panic reaches the poll");
            let second = streamer.next().await.unwrap();
            assert_eq!(second.value(), Some(&2));
        })
    });
}

#[derive(Debug)]
struct PanickyClone(u32);
impl Clone for PanickyClone {
    fn clone(&self) -> Self {
        panic!("clone boom")
    }
}
impl From<PanickyClone> for Feed<u32> {
    fn from(v: PanickyClone) -> Self {
        Feed::Value(v.0)
    }
}

#[test]
fn a_tasks_output_is_taken_by_value_so_a_panicking_clone_never_runs() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let task = hp::Task::spawn(async { PanickyClone(1) });
            let id = feeder.add_task(task);
            feeder.add_value(5);
            feeder.set_as_finished_if_out_of_sources();
            let all: Vec<R<u32, ()>> = streamer.by_ref().collect().await;
            // The value is extended inside `add_value`; the task's output (joined, moved
            // out: `PanickyClone::clone` would panic) surfaces when the task finishes.
            assert_eq!(all.len(), 3, "{all:?}");
            assert_eq!(all[0].value(), Some(&5));
            let R::Success { sources, value, .. } = &all[1] else {
                panic!("{all:?}")
            };
            assert_eq!((sources.producer(), *value), (id, 1));
            assert!(all[2].is_stopped());
        })
    });
}

#[test]
fn a_panicking_drop_of_a_function_s_captures_fails_that_function() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let guard = PanicOnDrop("capture drop boom");
            feeder.add_value(Feed::function(move || {
                let _g = guard;
                3u32
            }));
            feeder.add_value(4);
            feeder.set_as_finished_if_out_of_sources();
            let all: Vec<R<u32, ()>> = streamer.by_ref().collect().await;
            assert_eq!(all[0].value(), Some(&4));
            assert!(
                matches!(&all[1], R::Failure { error, .. } if error.to_string().contains("capture drop boom"))
            );
            assert!(all[2].is_stopped());
        })
    });
}

// --- User Drop re-entering the crate ---

#[test]
fn a_source_whose_drop_adds_to_the_feeder_does_not_deadlock() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            struct AddOnDrop(hp::QueueFeeder<u32, ()>, u32);
            impl Drop for AddOnDrop {
                fn drop(&mut self) {
                    self.0.add_value(self.1);
                    self.0.add_sync_iterator([self.1 + 1]);
                    let _ = self.0.live_sources();
                }
            }
            let on_end = AddOnDrop(feeder.clone(), 10);
            feeder.add_sync_iterator([1u32].into_iter().inspect(move |_| {
                let _ = &on_end;
            }));
            let on_stop = AddOnDrop(feeder.clone(), 20);
            feeder.add_async_generator(futures::stream::pending::<u32>().map(move |v| {
                let _ = &on_stop;
                v
            }));
            let mut values = Vec::new();
            while values.len() < 2 {
                if let Some(v) = streamer.next().await.unwrap().into_value() {
                    values.push(v);
                }
            }
            assert_eq!(values, [1, 10]);
            // The stop drops the waiting stream: its Drop adds a value and an iterator.
            ctx.cancel();
            let rest: Vec<String> = streamer
                .by_ref()
                .map(|r| format!("{:?} {:?}", r.value(), r.sources().map(|s| s.producer())))
                .collect()
                .await;
            assert!(rest.iter().any(|l| l.starts_with("Some(20)")), "{rest:?}");
            assert_eq!(feeder.live_sources(), 0);
        })
    });
}

#[derive(Clone)]
struct NoisyContext {
    feeder: Arc<Mutex<Option<hp::QueueFeeder<u32, NoisyContext>>>>,
}
impl Drop for NoisyContext {
    fn drop(&mut self) {
        // Re-enter the manager from a context's Drop.
        if let Some(f) = self.feeder.lock().unwrap().as_ref() {
            let _ = f.live_sources();
            let _ = f.is_stopped();
        }
    }
}

#[test]
fn a_context_whose_drop_calls_the_feeder_does_not_deadlock() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let slot = Arc::new(Mutex::new(None));
            let s2 = slot.clone();
            let (mut streamer, feeder) = hp::queue_manager_with_empty_context::<u32, NoisyContext>(
                &ctx,
                "queue_manager",
                move || NoisyContext { feeder: s2.clone() },
            );
            *slot.lock().unwrap() = Some(feeder.clone());
            let given = NoisyContext {
                feeder: slot.clone(),
            };
            feeder.add_sync_iterator_with_context([1u32, 2], given);
            feeder.add_value(3);
            feeder.set_as_finished_if_out_of_sources();
            let n = streamer.by_ref().count().await;
            assert_eq!(n, 5);
            drop(streamer);
            slot.lock().unwrap().take();
        })
    });
}

// --- Every route by which a result becomes available wakes a waiting consumer ---

/// Something to do with the feeder a little later.
type Later = Box<dyn FnOnce(&hp::QueueFeeder<u32, ()>) + Send>;

async fn wakes_within_no_time(streamer: &mut hp::Streamer<u32, ()>, route: &str) -> R<u32, ()> {
    let start = Instant::now();
    let r = timeout(Duration::from_secs(100), streamer.next())
        .await
        .unwrap_or_else(|_| panic!("{route}: the waiting consumer was not woken"))
        .unwrap_or_else(|| panic!("{route}: the stream ended"));
    assert!(start.elapsed() <= Duration::from_secs(1), "{route}");
    r
}

#[test]
fn every_route_to_a_result_wakes_a_waiting_consumer() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let later = |f: Later| {
                let feeder = feeder.clone();
                tokio::spawn(async move {
                    sleep(Duration::from_millis(500)).await;
                    f(&feeder);
                });
            };
            later(Box::new(|f| {
                f.add_value(1);
            }));
            assert_eq!(
                wakes_within_no_time(&mut streamer, "add_value")
                    .await
                    .value(),
                Some(&1)
            );
            later(Box::new(|f| {
                f.add_sync_function(|| 2u32);
            }));
            assert_eq!(
                wakes_within_no_time(&mut streamer, "function")
                    .await
                    .value(),
                Some(&2)
            );
            later(Box::new(|f| {
                f.add_sync_iterator([3u32]);
            }));
            assert_eq!(
                wakes_within_no_time(&mut streamer, "iterator")
                    .await
                    .value(),
                Some(&3)
            );
            let _ = wakes_within_no_time(&mut streamer, "iterator end").await;
            feeder.add_coroutine(async {
                sleep(Duration::from_millis(500)).await;
                4u32
            });
            assert_eq!(
                wakes_within_no_time(&mut streamer, "task").await.value(),
                Some(&4)
            );
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            feeder.add_async_generator(tokio_stream_from(rx));
            tokio::spawn(async move {
                sleep(Duration::from_millis(500)).await;
                tx.send(5).unwrap();
            });
            assert_eq!(
                wakes_within_no_time(&mut streamer, "stream").await.value(),
                Some(&5)
            );
            later(Box::new(|f| f.set_as_finished_if_out_of_sources()));
            // the stream (its sender dropped) ends first, then nothing is live
            let end = wakes_within_no_time(&mut streamer, "stream end").await;
            assert!(matches!(end, R::IterationStop { .. }), "{end:?}");
            let stop = wakes_within_no_time(&mut streamer, "finished").await;
            assert!(stop.is_stopped());
            // after Stopped the stream ends once the queue is empty; a new iteration
            // then waits for the stop of the ctx
            assert!(streamer.next().await.is_none());
            streamer.resume();
            feeder.add_async_generator(futures::stream::pending::<u32>());
            let c = ctx.clone();
            tokio::spawn(async move {
                sleep(Duration::from_millis(500)).await;
                c.cancel();
            });
            let stop = wakes_within_no_time(&mut streamer, "ctx stop").await;
            assert!(matches!(stop, R::Stopped { error: Some(_) }));
        })
    });
}

/// A stream of an unbounded receiver (without tokio-stream).
fn tokio_stream_from(
    rx: tokio::sync::mpsc::UnboundedReceiver<u32>,
) -> impl futures::Stream<Item = u32> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

// --- Cancellation at every await point ---

#[test]
fn next_cancelled_at_any_moment_loses_nothing() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let slow = futures::stream::iter(0..20u32).then(|i| async move {
                sleep(Duration::from_millis(7)).await;
                i
            });
            feeder.add_async_generator(slow);
            feeder.add_sync_iterator(100..120u32);
            feeder.add_coroutine(async {
                sleep(Duration::from_millis(33)).await;
                Feed::iterator(200..205u32)
            });
            feeder.set_as_finished_if_out_of_sources();
            let mut got = Vec::new();
            loop {
                // Give up on each next() after a millisecond, over and over.
                match timeout(Duration::from_millis(1), streamer.next()).await {
                    Ok(Some(r)) => {
                        if r.is_stopped() {
                            break;
                        }
                        if let Some(v) = r.into_value() {
                            got.push(v);
                        }
                    }
                    Ok(None) => panic!("ended before Stopped"),
                    Err(_) => {}
                }
            }
            got.sort_unstable();
            let want: Vec<u32> = (0..20).chain(100..120).chain(200..205).collect();
            assert_eq!(got, want);
        })
    });
}

#[test]
fn close_and_the_scoped_form_dropped_mid_way_still_stop_everything() {
    with_watchdog(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let dropped = Arc::new(AtomicUsize::new(0));
            // close() dropped before the cancelled task finished.
            let (streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let flag = DropFlag(dropped.clone());
            feeder.add_coroutine(async move {
                let _f = flag;
                std::future::pending::<u32>().await
            });
            drop(streamer.close());
            sleep(Duration::from_millis(1)).await;
            assert_eq!(dropped.load(SeqCst), 1);
            assert!(feeder.is_stopped());
            // The scoped form dropped while its body waits.
            let d = dropped.clone();
            let scoped = hp::queue_manager_scoped(
                &ctx,
                "qm",
                move |mut s: hp::Streamer<u32, ()>, f| async move {
                    let flag = DropFlag(d);
                    f.add_coroutine(async move {
                        let _f = flag;
                        std::future::pending::<u32>().await
                    });
                    let _ = s.next().await;
                    Ok::<_, hp::Error>(())
                },
            );
            assert!(timeout(Duration::from_millis(5), scoped).await.is_err());
            sleep(Duration::from_millis(1)).await;
            assert_eq!(dropped.load(SeqCst), 2);
        })
    });
}

#[test]
fn the_scoped_form_accepts_an_anyhow_error_and_still_closes() {
    on_small_stack(|| {
        current_thread(async {
            let ctx = hp::Ctx::beginning("app");
            let dropped = Arc::new(AtomicUsize::new(0));
            let d = dropped.clone();
            let out: Result<u32, hp::Error> = hp::queue_manager_scoped(
                &ctx,
                "qm",
                move |_s, f: hp::QueueFeeder<u32, ()>| async move {
                    let flag = DropFlag(d);
                    f.add_coroutine(async move {
                        let _f = flag;
                        std::future::pending::<u32>().await
                    });
                    Err(anyhow::anyhow!("crawl failed"))
                },
            )
            .await;
            assert_eq!(out.unwrap_err().to_string(), "crawl failed");
            assert_eq!(
                dropped.load(SeqCst),
                1,
                "closed: the pending future was dropped"
            );
            let ok = hp::queue_manager_scoped(
                &ctx,
                "qm",
                |_s, f: hp::QueueFeeder<u32, ()>| async move {
                    f.add_value(1);
                    anyhow::Ok(5)
                },
            )
            .await;
            assert_eq!(ok.unwrap(), 5);
        })
    });
}
