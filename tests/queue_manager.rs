//! Queue manager: sources of every kind, turns, chains, contexts, failures, stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueInput as Q, QueueManagerResult as R, Streamer};
use tokio::time::Instant;

type Res = R<i32, String>;

/// One line per result: `ok VALUE @CTX [chain kinds]`, `fail ERR`, `end ERR`, `stopped ERR`.
fn show(r: &Res) -> String {
    let kinds = |s: &hp::Sources| {
        s.ids()
            .map(|id| format!("{id:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let err = |e: &Option<hp::Failure>| match e {
        None => "-".to_string(),
        Some(hp::Failure::Cancelled) => "cancelled".to_string(),
        Some(hp::Failure::Error(e)) => e.to_string(),
    };
    match r {
        R::Success {
            sources,
            value,
            context,
        } => format!("ok {value} @{context} [{}]", kinds(sources)),
        R::Failure {
            sources,
            error,
            context,
        } => {
            format!(
                "fail {} @{context} [{}]",
                err(&Some(error.clone())),
                kinds(sources)
            )
        }
        R::IterationStop {
            sources,
            error,
            context,
        } => {
            format!("end {} @{context} [{}]", err(error), kinds(sources))
        }
        R::Stopped { error } => format!("stopped {}", err(error)),
    }
}

fn manager(ctx: &hp::Ctx) -> (Streamer<i32, String>, hp::QueueFeeder<i32, String>) {
    hp::queue_manager(ctx, || "e".to_string())
}

async fn drain(streamer: &mut Streamer<i32, String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(r) = streamer.next().await {
        out.push(show(&r));
    }
    out
}

fn ctx_of(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[tokio::test(start_paused = true)]
async fn two_iterators_take_turns_and_each_ends_after_its_values() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_iterator(vec![1, 2, 3], ctx_of("a"));
    feeder.add_sync_generator(vec![10, 20], ctx_of("b"));
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut streamer).await,
        [
            "ok 1 @a [SYNC_ITERATOR#1]",
            "ok 10 @b [SYNC_GENERATOR#2]",
            "ok 2 @a [SYNC_ITERATOR#1]",
            "ok 20 @b [SYNC_GENERATOR#2]",
            "ok 3 @a [SYNC_ITERATOR#1]",
            "end - @b [SYNC_GENERATOR#2]",
            "end - @a [SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn sync_function_is_called_inside_the_call_and_values_are_enqueued_at_once() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    let f = feeder.add_sync_function(
        move || {
            c.fetch_add(1, SeqCst);
            7
        },
        None,
    );
    assert_eq!(
        called.load(SeqCst),
        1,
        "called before add_sync_function returned"
    );
    let v = feeder.add_value(8, ctx_of("v"));
    assert_eq!(format!("{f:?} {v:?}"), "SYNC_FUNCTION#1 VALUE#2");
    assert_eq!(feeder.live_sources(), 0);
    let got: Vec<String> = streamer.remaining().map(|r| show(&r)).collect();
    assert_eq!(got, ["ok 7 @e [SYNC_FUNCTION#1]", "ok 8 @v [VALUE#2]"]);
}

#[tokio::test(start_paused = true)]
async fn a_vec_value_is_delivered_as_a_value() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = hp::queue_manager::<Vec<i32>, ()>(&root, || ());
    feeder.add_value(vec![1, 2], None);
    feeder.add_sync_iterator([vec![3], vec![]], None);
    feeder.set_as_finished_if_out_of_sources();
    let values: Vec<Vec<i32>> = streamer
        .by_ref()
        .filter_map(|r| async { r.into_value() })
        .collect()
        .await;
    assert_eq!(values, [vec![1, 2], vec![3], vec![]]);
}

#[tokio::test(start_paused = true)]
async fn extension_three_levels_deep_names_the_chain_from_producer_back_to_the_added_source() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    // iterator -> function -> generator -> future -> 5
    let added = feeder.add_sync_iterator(
        [Feed::function(|| {
            Feed::generator([Feed::future(async { 5 })])
        })],
        ctx_of("deep"),
    );
    feeder.set_as_finished_if_out_of_sources();
    let mut results = Vec::new();
    while let Some(r) = streamer.next().await {
        results.push(r);
    }
    let success = results.iter().find(|r| r.value().is_some()).unwrap();
    let sources = success.sources().unwrap();
    assert_eq!(
        sources.kinds(),
        [
            Q::Coroutine,
            Q::SyncGenerator,
            Q::SyncFunction,
            Q::SyncIterator
        ]
    );
    assert_eq!(sources.added(), added);
    assert_eq!(sources.producer().kind(), Q::Coroutine);
    assert_eq!(sources.to_vec()[3], (Q::SyncIterator, added));
    assert_eq!(success.context().unwrap(), "deep");
    assert_eq!(
        results.iter().map(show).collect::<Vec<_>>(),
        [
            "end - @deep [SYNC_ITERATOR#1]",
            "end - @deep [SYNC_GENERATOR#3,SYNC_FUNCTION#2,SYNC_ITERATOR#1]",
            "ok 5 @deep [COROUTINE#4,SYNC_GENERATOR#3,SYNC_FUNCTION#2,SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_yielding_futures_that_yield_iterators() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let stream = futures::stream::iter(1..=2).then(|i| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Feed::future(async move {
            tokio::time::sleep(Duration::from_millis(1500 * i)).await;
            Feed::iterator([i as i32 * 10, i as i32 * 10 + 1])
        })
    });
    feeder.add_async_generator(stream, ctx_of("s"));
    feeder.set_as_finished_if_out_of_sources();
    let start = Instant::now();
    let mut got = Vec::new();
    while let Some(r) = streamer.next().await {
        got.push(format!("{}ms {}", start.elapsed().as_millis(), show(&r)));
    }
    assert_eq!(
        got,
        [
            "2000ms end - @s [ASYNC_GENERATOR#1]",
            "2500ms ok 10 @s [SYNC_ITERATOR#4,COROUTINE#2,ASYNC_GENERATOR#1]",
            "2500ms ok 11 @s [SYNC_ITERATOR#4,COROUTINE#2,ASYNC_GENERATOR#1]",
            "2500ms end - @s [SYNC_ITERATOR#4,COROUTINE#2,ASYNC_GENERATOR#1]",
            "5000ms ok 20 @s [SYNC_ITERATOR#5,COROUTINE#3,ASYNC_GENERATOR#1]",
            "5000ms ok 21 @s [SYNC_ITERATOR#5,COROUTINE#3,ASYNC_GENERATOR#1]",
            "5000ms end - @s [SYNC_ITERATOR#5,COROUTINE#3,ASYNC_GENERATOR#1]",
            "5000ms stopped -",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn contexts_come_from_the_first_source_else_a_fresh_empty_context_each_time() {
    let root = hp::Ctx::beginning("t");
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let (mut streamer, feeder) =
        hp::queue_manager::<i32, String>(&root, move || format!("empty{}", m.fetch_add(1, SeqCst)));
    feeder.add_sync_iterator([1, 2], None);
    feeder.add_sync_iterator([Feed::generator([3])], ctx_of("given"));
    feeder.set_as_finished_if_out_of_sources();
    let got = drain(&mut streamer).await;
    assert_eq!(
        got,
        [
            "ok 1 @empty0 [SYNC_ITERATOR#1]",
            "ok 2 @empty1 [SYNC_ITERATOR#1]",
            "ok 3 @given [SYNC_GENERATOR#3,SYNC_ITERATOR#2]",
            "end - @given [SYNC_ITERATOR#2]",
            "end - @empty2 [SYNC_ITERATOR#1]",
            "end - @given [SYNC_GENERATOR#3,SYNC_ITERATOR#2]",
            "stopped -",
        ]
    );
    assert_eq!(made.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn failures_from_error_feeds_and_panics_are_delivered_and_end_iterations() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_function(|| Feed::<i32>::error(hp::Error::msg("no")), ctx_of("f"));
    feeder.add_sync_function(|| -> i32 { panic!("boom") }, ctx_of("p"));
    feeder.add_sync_iterator(
        [
            Feed::Value(1),
            Feed::error(hp::Error::msg("bad")),
            Feed::Value(2),
        ],
        ctx_of("i"),
    );
    let mut n = 0;
    feeder.add_sync_iterator(
        std::iter::from_fn(move || {
            n += 1;
            if n == 2 {
                panic!("iter panic")
            }
            Some(n)
        }),
        ctx_of("ip"),
    );
    feeder.add_async_generator(
        futures::stream::iter([1, 2]).map(|i| if i == 2 { panic!("stream panic") } else { i }),
        ctx_of("sp"),
    );
    feeder.add_coroutine(
        async {
            if true {
                panic!("future panic")
            }
            1
        },
        ctx_of("fp"),
    );
    feeder.set_as_finished_if_out_of_sources();
    let got = drain(&mut streamer).await;
    let panicked = |what: &str| format!("panicked: {what}");
    assert_eq!(
        got,
        [
            "fail no @f [SYNC_FUNCTION#1]".to_string(),
            format!("fail {} @p [SYNC_FUNCTION#2]", panicked("boom")),
            "ok 1 @i [SYNC_ITERATOR#3]".to_string(),
            "ok 1 @ip [SYNC_ITERATOR#4]".to_string(),
            "ok 1 @sp [ASYNC_GENERATOR#5]".to_string(),
            "fail bad @i [SYNC_ITERATOR#3]".to_string(),
            "end bad @i [SYNC_ITERATOR#3]".to_string(),
            format!("fail {} @ip [SYNC_ITERATOR#4]", panicked("iter panic")),
            format!("end {} @ip [SYNC_ITERATOR#4]", panicked("iter panic")),
            format!("fail {} @sp [ASYNC_GENERATOR#5]", panicked("stream panic")),
            format!("end {} @sp [ASYNC_GENERATOR#5]", panicked("stream panic")),
            format!("fail {} @fp [COROUTINE#6]", panicked("future panic")),
            "stopped -".to_string(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn tasks_deliver_their_value_and_a_cancelled_task_is_a_cancelled_failure() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let ok = hp::Task::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        3
    });
    let never = hp::Task::spawn(std::future::pending::<i32>());
    feeder.add_task(ok, ctx_of("ok"));
    feeder.add_task(never.clone(), ctx_of("never"));
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(show(&streamer.next().await.unwrap()), "ok 3 @ok [TASK#1]");
    never.cancel();
    assert_eq!(
        drain(&mut streamer).await,
        ["fail cancelled @never [TASK#2]", "stopped -"]
    );
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn ctx_cancelled_while_a_future_is_pending_stops_first_and_cancels_the_future() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = DropFlag(dropped.clone());
    feeder.add_coroutine(
        async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(60)).await;
            1
        },
        ctx_of("fut"),
    );
    let stream_flag = DropFlag(dropped.clone());
    feeder.add_async_generator(
        futures::stream::pending::<i32>().map(move |v| {
            let _ = &stream_flag;
            v
        }),
        ctx_of("st"),
    );
    feeder.add_value(9, ctx_of("v"));
    assert_eq!(show(&streamer.next().await.unwrap()), "ok 9 @v [VALUE#3]");
    feeder.add_value(10, ctx_of("v"));
    let r2 = root.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        r2.cancel();
    });
    let start = Instant::now();
    let got = drain(&mut streamer).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(
        got,
        [
            "ok 10 @v [VALUE#4]",
            "stopped cancelled",
            "fail cancelled @fut [COROUTINE#1]",
            "end cancelled @st [ASYNC_GENERATOR#2]",
        ]
    );
    assert_eq!(feeder.live_sources(), 0);
    streamer.close().await;
    assert_eq!(
        dropped.load(SeqCst),
        2,
        "the future and the stream were dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ctx_error_stops_ahead_of_queued_results_which_are_still_delivered() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_value(1, ctx_of("v"));
    feeder.add_value(2, ctx_of("v"));
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    feeder.add_sync_iterator(
        (10..).inspect(move |_| {
            a.fetch_add(1, SeqCst);
        }),
        ctx_of("i"),
    );
    root.set_exception(hp::Error::msg("bad ctx"));
    assert!(feeder.is_stopped());
    // Added after the stop: a value is delivered, an iterator ends at once unrun.
    feeder.add_value(3, ctx_of("late"));
    feeder.add_sync_iterator([99], ctx_of("late"));
    assert_eq!(
        drain(&mut streamer).await,
        [
            "stopped bad ctx",
            "ok 1 @v [VALUE#1]",
            "ok 2 @v [VALUE#2]",
            "end bad ctx @i [SYNC_ITERATOR#3]",
            "ok 3 @late [VALUE#4]",
            "end bad ctx @late [SYNC_ITERATOR#5]",
        ]
    );
    assert_eq!(
        advanced.load(SeqCst),
        0,
        "no source advanced after the stop"
    );
    assert!(streamer.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn finished_if_out_of_sources_with_no_sources_stops_at_once_and_adding_later_continues() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(drain(&mut streamer).await, ["stopped -"]);
    feeder.add_sync_iterator([1], None);
    assert_eq!(
        drain(&mut streamer).await,
        [
            "ok 1 @e [SYNC_ITERATOR#1]",
            "end - @e [SYNC_ITERATOR#1]",
            "stopped -"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn finished_if_out_of_sources_waits_for_pending_sources_and_queued_steps() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_coroutine(
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Feed::generator([1])
        },
        None,
    );
    feeder.set_as_finished_if_out_of_sources();
    let start = Instant::now();
    let got = drain(&mut streamer).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(
        got,
        [
            "ok 1 @e [SYNC_GENERATOR#2,COROUTINE#1]",
            "end - @e [SYNC_GENERATOR#2,COROUTINE#1]",
            "stopped -"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_ends_the_stream_and_remaining_drains_without_advancing_sources() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    feeder.add_sync_iterator(
        (1..).inspect(move |_| {
            a.fetch_add(1, SeqCst);
        }),
        None,
    );
    assert_eq!(
        show(&streamer.next().await.unwrap()),
        "ok 1 @e [SYNC_ITERATOR#1]"
    );
    feeder.add_value(5, None);
    feeder.add_value(6, None);
    streamer.breaker().set();
    assert!(streamer.next().await.is_none());
    assert_eq!(advanced.load(SeqCst), 1);
    let rest: Vec<String> = streamer.remaining().map(|r| show(&r)).collect();
    assert_eq!(rest, ["ok 5 @e [VALUE#2]", "ok 6 @e [VALUE#3]"]);
    assert_eq!(advanced.load(SeqCst), 1, "remaining() steps nothing");
    // Clearing it continues where the stream stopped.
    streamer.breaker().clear();
    assert_eq!(
        show(&streamer.next().await.unwrap()),
        "ok 2 @e [SYNC_ITERATOR#1]"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_wakes_a_waiting_streamer() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_async_generator(futures::stream::pending::<i32>(), None);
    let breaker = streamer.breaker().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        breaker.set();
    });
    let start = Instant::now();
    assert!(streamer.next().await.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(streamer.live_sources(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_lived_manager_releases_finished_sources() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let dropped = Arc::new(AtomicUsize::new(0));
    for round in 0..100 {
        for i in 0..100 {
            let flag = DropFlag(dropped.clone());
            feeder.add_sync_iterator(
                [i].into_iter().inspect(move |_| {
                    let _ = &flag;
                }),
                None,
            );
            let flag = DropFlag(dropped.clone());
            feeder.add_coroutine(
                async move {
                    let _flag = flag;
                    round
                },
                None,
            );
            let flag = DropFlag(dropped.clone());
            feeder.add_async_generator(
                futures::stream::iter([i]).map(move |v| {
                    let _ = &flag;
                    v
                }),
                None,
            );
        }
        assert_eq!(feeder.live_sources(), 300);
        let mut n = 0;
        while feeder.live_sources() > 0 {
            streamer.next().await.unwrap();
            n += 1;
        }
        assert_eq!(
            n + streamer.remaining().count(),
            500,
            "100 × (2 values + 2 stops + 1 future)"
        );
    }
    assert_eq!(feeder.live_sources(), 0);
    tokio::task::yield_now().await;
    assert_eq!(
        dropped.load(SeqCst),
        30_000,
        "every finished source was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn close_cancels_running_sources_and_waits_for_their_cleanup() {
    let root = hp::Ctx::beginning("t");
    let (streamer, feeder) = manager(&root);
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let flag = DropFlag(dropped.clone());
        feeder.add_coroutine(
            async move {
                let _flag = flag;
                std::future::pending::<i32>().await
            },
            None,
        );
    }
    streamer.close().await;
    assert_eq!(dropped.load(SeqCst), 3);
    assert!(feeder.is_stopped());
    assert!(
        !root.done(),
        "closing cancels only the manager's own context"
    );
}

#[tokio::test(start_paused = true)]
async fn the_scoped_form_returns_the_body_output_and_closes() {
    let root = hp::Ctx::beginning("t");
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let out = hp::queue_manager_scoped(
        &root,
        "qm",
        String::new,
        |mut streamer: Streamer<i32, String>, feeder| async move {
            assert_eq!(streamer.ctx().name(), "t-->qm");
            let flag = DropFlag(d);
            feeder.add_coroutine(
                async move {
                    let _f = flag;
                    std::future::pending::<i32>().await
                },
                None,
            );
            feeder.add_sync_iterator([1, 2], None);
            let first = streamer.next().await.unwrap().into_value().unwrap();
            (first, feeder)
        },
    )
    .await;
    assert_eq!(out.0, 1);
    assert_eq!(
        dropped.load(SeqCst),
        1,
        "the pending future was cancelled and dropped"
    );
    assert!(out.1.is_stopped());
    assert_eq!(out.1.live_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_streamer_cancels_everything() {
    let root = hp::Ctx::beginning("t");
    let (streamer, feeder) = manager(&root);
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = DropFlag(dropped.clone());
    feeder.add_async_generator(
        futures::stream::pending::<i32>().map(move |v| {
            let _ = &flag;
            v
        }),
        None,
    );
    let flag = DropFlag(dropped.clone());
    // The stream holds a feeder: a cycle that the stop breaks.
    let f2 = feeder.clone();
    feeder.add_sync_iterator(
        std::iter::once(1).inspect(move |_| {
            let _ = (&flag, &f2);
        }),
        None,
    );
    drop(streamer);
    assert_eq!(dropped.load(SeqCst), 2);
    assert_eq!(feeder.live_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_source_may_feed_the_manager_while_it_is_being_stepped() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let f2 = feeder.clone();
    feeder.add_sync_iterator(
        (1..=2).inspect(move |&i| {
            f2.add_value(i * 100, None);
            f2.add_sync_function(move || i * 1000, None);
        }),
        None,
    );
    feeder.set_as_finished_if_out_of_sources();
    let values: Vec<i32> = drain(&mut streamer)
        .await
        .iter()
        .filter_map(|s| {
            s.strip_prefix("ok ")
                .and_then(|s| s.split(' ').next()?.parse().ok())
        })
        .collect();
    assert_eq!(values, [100, 1000, 1, 200, 2000, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_finished_task_still_delivers_its_value_when_the_ctx_stops() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let task = hp::Task::spawn(async { 4 });
    task.wait().await;
    feeder.add_task(task, None);
    root.cancel();
    assert_eq!(
        drain(&mut streamer).await,
        ["stopped cancelled", "ok 4 @e [TASK#1]"]
    );
}

#[tokio::test(start_paused = true)]
async fn with_many_idle_streams_only_the_active_one_is_polled() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let polls = Arc::new(AtomicUsize::new(0));
    for _ in 0..1_000 {
        let p = polls.clone();
        feeder.add_async_generator(
            futures::stream::poll_fn(move |_| {
                p.fetch_add(1, SeqCst);
                std::task::Poll::<Option<i32>>::Pending
            }),
            None,
        );
    }
    feeder.add_sync_iterator(0..1_000, None);
    let mut n = 0;
    while n < 1_000 {
        if streamer.next().await.unwrap().value().is_some() {
            n += 1;
        }
    }
    assert_eq!(
        polls.load(SeqCst),
        1_000,
        "each idle stream was polled once, on its first turn"
    );
}

#[test]
fn multi_thread_streams_and_tasks_deliver_everything_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let root = hp::Ctx::beginning("t");
            let (mut streamer, feeder) = hp::queue_manager::<i32, String>(&root, String::new);
            for s in 0..20 {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    for i in 0..100 {
                        tx.send(s * 1000 + i).unwrap();
                        if i % 10 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                });
                feeder.add_async_generator(
                    tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
                    format!("s{s}"),
                );
                feeder.add_coroutine(async move { Feed::iterator([s; 5]) }, format!("c{s}"));
            }
            feeder.set_as_finished_if_out_of_sources();
            let (mut values, mut stops, mut stopped) = (Vec::new(), 0, 0);
            while let Some(r) = streamer.next().await {
                match r {
                    R::Success { value, .. } => values.push(value),
                    R::IterationStop { error: None, .. } => stops += 1,
                    R::Stopped { error: None } => stopped += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(values.len(), 20 * 105);
            assert_eq!((stops, stopped), (40, 1));
            values.sort();
            let mut expected: Vec<i32> = (0..20)
                .flat_map(|s| (0..100).map(move |i| s * 1000 + i).chain([s; 5]))
                .collect();
            expected.sort();
            assert_eq!(values, expected);
        })
        .await
        .expect("watchdog");
    });
}

#[test]
fn handles_are_send_and_sync() {
    fn is_send<T: Send>() {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send::<Streamer<i32, String>>();
    is_send_sync::<hp::QueueFeeder<i32, String>>();
    is_send_sync::<hp::Sources>();
    is_send_sync::<hp::SourceId>();
    is_send::<Res>();
    is_send::<Feed<i32>>();
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_wakes_itself_does_not_starve_other_tasks() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_async_generator(
        futures::stream::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            std::task::Poll::<Option<i32>>::Pending
        }),
        None,
    );
    let f2 = feeder.clone();
    // Paused time never advances while a task is always ready, so the other task
    // yields instead of sleeping; without the streamer yielding it would never run.
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        f2.add_value(1, None);
    });
    assert_eq!(show(&streamer.next().await.unwrap()), "ok 1 @e [VALUE#2]");
}

#[tokio::test(start_paused = true)]
async fn the_crates_async_generator_is_accepted_as_an_async_generator_source() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let generator = hp::AsyncGenerator::<i32>::new(|co| async move {
        for i in [7, 8] {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if co.yield_(i).await.is_err() {
                return;
            }
        }
    });
    feeder.add_async_generator(generator, ctx_of("g"));
    feeder.set_as_finished_if_out_of_sources();
    let start = Instant::now();
    assert_eq!(
        drain(&mut streamer).await,
        [
            "ok 7 @g [ASYNC_GENERATOR#1]",
            "ok 8 @g [ASYNC_GENERATOR#1]",
            "end - @g [ASYNC_GENERATOR#1]",
            "stopped -",
        ]
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}
