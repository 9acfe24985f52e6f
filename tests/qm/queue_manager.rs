//! Queue manager: sources of every kind, turns, chains, contexts, failures, stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::common;
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
            ..
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
            ..
        } => {
            format!("end {} @{context} [{}]", err(error), kinds(sources))
        }
        R::Stopped { error } => format!("stopped {}", err(error)),
    }
}

fn manager(ctx: &hp::Ctx) -> (Streamer<i32, String>, hp::QueueFeeder<i32, String>) {
    hp::queue_manager_with_empty_context(ctx, "queue_manager", || "e".to_string())
}

async fn drain(streamer: &mut Streamer<i32, String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(r) = streamer.next().await {
        out.push(show(&r));
    }
    out
}

// --- The turn model, whole sequences worked out by hand from SEMANTICS ---
//
// Notation in the comments: `St n` is the step of source n, `E x` the extend
// instruction for item x, `C f` the call instruction for a produced function, `S x`,
// `F`, `IS` results. The queue is shown after each entry the consumer takes.

/// `(kind, value or error, chain producer first, context)` for one result.
type Row = (&'static str, String, String, String);

fn row<V: std::fmt::Debug>(r: &R<V, String>) -> Row {
    let err = |e: &hp::Failure| match e {
        hp::Failure::Cancelled => "cancelled".to_string(),
        hp::Failure::Error(e) => e.to_string(),
    };
    match r {
        R::Success {
            sources,
            value,
            context,
        } => (
            "ok",
            format!("{value:?}"),
            format!("{sources:?}"),
            context.to_string(),
        ),
        R::Failure {
            sources,
            error,
            context,
            ..
        } => (
            "fail",
            err(error),
            format!("{sources:?}"),
            context.to_string(),
        ),
        R::IterationStop {
            sources,
            error,
            context,
            ..
        } => (
            "end",
            error.as_ref().map_or("-".to_string(), err),
            format!("{sources:?}"),
            context.to_string(),
        ),
        R::Stopped { error } => (
            "stopped",
            error.as_ref().map_or("-".to_string(), err),
            "-".to_string(),
            "-".to_string(),
        ),
    }
}

fn r(kind: &'static str, value: &str, chain: &str, ctx: &str) -> Row {
    (kind, value.to_string(), chain.to_string(), ctx.to_string())
}

async fn rows<V: std::fmt::Debug + Send + 'static>(s: &mut Streamer<V, String>) -> Vec<Row> {
    let mut out = Vec::new();
    while let Some(res) = s.next().await {
        out.push(row(&res));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn turns_values_and_lists_together() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<Vec<i32>, String>(&root, "queue_manager", || {
            "e".into()
        });
    feeder.add_value_with_context(vec![1, 2], "a".into()); // VALUE#1, extended now: [S [1,2]]
    feeder.add_sync_iterator_with_context([vec![3], vec![4, 5]], "b".into()); // [S, St2]
    feeder.add_value(vec![]); // VALUE#3: [S [1,2], St2, S []]
    feeder.set_as_finished_if_out_of_sources(); // queue not empty: no Stopped yet
    // S [1,2] out | St2 -> [S [], E [3], St2] | S [] out | E [3] -> [St2, S [3]]
    // St2 -> [S [3], E [4,5], St2] | S [3] out | E -> [St2, S [4,5]]
    // St2 exhausted -> [S [4,5], IS] | out, out | empty, no source -> Stopped
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "[1, 2]", "[VALUE#1]", "a"),
            r("ok", "[]", "[VALUE#3]", "e"),
            r("ok", "[3]", "[SYNC_ITERATOR#2]", "b"),
            r("ok", "[4, 5]", "[SYNC_ITERATOR#2]", "b"),
            r("end", "-", "[SYNC_ITERATOR#2]", "b"),
            r("stopped", "-", "-", "-"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_two_generators_and_a_list() {
    turns_two_generators_and_a_list_body().await;
}

#[test]
fn turns_two_generators_and_a_list_on_the_multi_thread_runtime() {
    common::multi_thread(turns_two_generators_and_a_list_body());
}

async fn turns_two_generators_and_a_list_body() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_generator([1, 2]); // SG#1
    feeder.add_sync_generator([10, 20]); // SG#2
    feeder.add_sync_iterator([100]); // SI#3: [St1, St2, St3]
    feeder.set_as_finished_if_out_of_sources();
    // St1 -> [St2,St3,E1,St1]   St2 -> [St3,E1,St1,E10,St2]   St3 -> [E1,St1,E10,St2,E100,St3]
    // E1 -> [..,S1]  St1 -> [..,S1,E2,St1]  E10 -> [..,S10]  St2 -> [..,E20,St2]
    // E100 -> [St3,S1,E2,St1,S10,E20,St2,S100]  St3 ends -> [S1,E2,St1,S10,E20,St2,S100,IS3]
    // S1 out | E2 -> [St1,S10,E20,St2,S100,IS3,S2] | St1 ends -> [..,S2,IS1] | S10 out
    // E20 -> [St2,S100,IS3,S2,IS1,S20] | St2 ends -> [S100,IS3,S2,IS1,S20,IS2]
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "1", "[SYNC_GENERATOR#1]", "e"),
            r("ok", "10", "[SYNC_GENERATOR#2]", "e"),
            r("ok", "100", "[SYNC_ITERATOR#3]", "e"),
            r("end", "-", "[SYNC_ITERATOR#3]", "e"),
            r("ok", "2", "[SYNC_GENERATOR#1]", "e"),
            r("end", "-", "[SYNC_GENERATOR#1]", "e"),
            r("ok", "20", "[SYNC_GENERATOR#2]", "e"),
            r("end", "-", "[SYNC_GENERATOR#2]", "e"),
            r("stopped", "-", "-", "-"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_a_function_returning_a_function_returning_a_generator() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    // SYNC_FUNCTION#1 is called now; it returns a function: [C g]
    feeder
        .add_sync_function_with_context(|| Feed::function(|| Feed::generator([1, 2])), "f".into());
    feeder.add_value(7); // VALUE#2: [C g, S7]
    feeder.set_as_finished_if_out_of_sources();
    // C g: SYNC_FUNCTION#3 under #1, called; its generator is SYNC_GENERATOR#4: [S7, St4]
    // S7 out | St4 -> [E1,St4] | E1 -> [St4,S1] | St4 -> [S1,E2,St4] | S1 out
    // E2 -> [St4,S2] | St4 ends -> [S2,IS4]
    let chain = "[SYNC_GENERATOR#4, SYNC_FUNCTION#3, SYNC_FUNCTION#1]";
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "7", "[VALUE#2]", "e"),
            r("ok", "1", chain, "f"),
            r("ok", "2", chain, "f"),
            r("end", "-", chain, "f"),
            r("stopped", "-", "-", "-"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_a_future_resolving_to_a_stream_and_a_stream_waiting_for_its_waker() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    // COROUTINE#1 spawns its future as TASK#2 under it.
    feeder.add_coroutine_with_context(
        async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Feed::stream(futures::stream::iter([1, 2]))
        },
        "c".into(),
    );
    // ASYNC_GENERATOR#3: 5 at once, then 6 after a second.
    let slow = futures::stream::unfold(0, |n| async move {
        match n {
            0 => Some((5, 1)),
            1 => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((6, 2))
            }
            _ => None,
        }
    });
    feeder.add_async_generator(slow);
    feeder.add_sync_iterator([10, 20]); // SI#4: [St3, St4]
    feeder.set_as_finished_if_out_of_sources();
    // St3 polls: 5 ready -> [St4,E5,St3] | St4 -> [E5,St3,E10,St4] | E5 -> [St3,E10,St4,S5]
    // St3 polls: pending, waits for its waker -> [E10,St4,S5] | E10 -> [St4,S5,S10]
    // St4 -> [S5,S10,E20,St4] | S5, S10 out | E20 -> [St4,S20] | St4 ends -> [S20,IS4]
    // S20, IS4 out | empty: the stream and the task are live, wait
    // at 1 s the stream wakes: polled before the next entry, 6 ready -> [E6,St3]
    // E6 -> [St3,S6] | St3 ends -> [S6,IS3] | S6, IS3 out | wait
    // at 2 s TASK#2 finishes: its stream is ASYNC_GENERATOR#5 under it -> [St5]
    // St5 -> [E1,St5] | E1 -> [St5,S1] | St5 -> [S1,E2,St5] | S1 out | E2 -> [St5,S2]
    // St5 ends -> [S2,IS5] | out, out | no source left: Stopped
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(res) = streamer.next().await {
        seen.push((row(&res), (Instant::now() - start).as_secs()));
    }
    let late = "[ASYNC_GENERATOR#5, TASK#2, COROUTINE#1]";
    assert_eq!(
        seen,
        [
            (r("ok", "5", "[ASYNC_GENERATOR#3]", "e"), 0),
            (r("ok", "10", "[SYNC_ITERATOR#4]", "e"), 0),
            (r("ok", "20", "[SYNC_ITERATOR#4]", "e"), 0),
            (r("end", "-", "[SYNC_ITERATOR#4]", "e"), 0),
            (r("ok", "6", "[ASYNC_GENERATOR#3]", "e"), 1),
            (r("end", "-", "[ASYNC_GENERATOR#3]", "e"), 1),
            (r("ok", "1", late, "c"), 2),
            (r("ok", "2", late, "c"), 2),
            (r("end", "-", late, "c"), 2),
            (r("stopped", "-", "-", "-"), 2),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_a_task_resolving_to_a_coroutine() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    // COROUTINE#1 spawns TASK#2; when it finishes, its output (a future) is extended:
    // COROUTINE#4 under TASK#2, which spawns TASK#5. Numbers are given when a source is
    // added, so the user's task added now is TASK#3.
    feeder.add_coroutine_with_context(async { Feed::future(async { 5 }) }, "t".into());
    let task = hp::Task::spawn(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        9
    });
    feeder.add_task(task); // TASK#3
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "5", "[TASK#5, COROUTINE#4, TASK#2, COROUTINE#1]", "t"),
            r("ok", "9", "[TASK#3]", "e"),
            r("stopped", "-", "-", "-"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_an_error_in_the_middle_of_an_iterator_ends_it() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    let items = [
        Feed::Value(1),
        Feed::error(hp::Error::msg("bad item")),
        Feed::Value(3),
    ];
    feeder.add_sync_iterator_with_context(
        items.into_iter().inspect(move |_| {
            a.fetch_add(1, SeqCst);
        }),
        "i".into(),
    ); // SI#1: [St1]
    feeder.add_value(100); // VALUE#2: [St1, S100]
    feeder.set_as_finished_if_out_of_sources();
    // St1 -> [S100,E1,St1] | S100 out | E1 -> [St1,S1] | St1: error -> [S1,F,IS(error)]
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "100", "[VALUE#2]", "e"),
            r("ok", "1", "[SYNC_ITERATOR#1]", "i"),
            r("fail", "bad item", "[SYNC_ITERATOR#1]", "i"),
            r("end", "bad item", "[SYNC_ITERATOR#1]", "i"),
            r("stopped", "-", "-", "-"),
        ]
    );
    assert_eq!(advanced.load(SeqCst), 2, "never advanced after its error");
}

#[tokio::test(start_paused = true)]
async fn turns_a_stop_in_the_middle_with_steps_and_extensions_still_queued() {
    turns_a_stop_in_the_middle_with_steps_and_extensions_still_queued_body().await;
}

#[test]
fn turns_a_stop_in_the_middle_with_steps_and_extensions_still_queued_on_the_multi_thread_runtime() {
    common::multi_thread(turns_a_stop_in_the_middle_with_steps_and_extensions_still_queued_body());
}

async fn turns_a_stop_in_the_middle_with_steps_and_extensions_still_queued_body() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_iterator([1, 2, 3]); // SI#1
    feeder.add_sync_iterator_with_context([10, 20], "b".into()); // SI#2
    feeder.add_async_generator_with_context(futures::stream::pending::<i32>(), "s".into()); // AG#3
    feeder.add_coroutine_with_context(std::future::pending::<i32>(), "c".into()); // COROUTINE#4, TASK#5
    // [St1,St2,St3] | St1 -> [St2,St3,E1,St1] | St2 -> [St3,E1,St1,E10,St2]
    // St3: pending, waits -> [E1,St1,E10,St2] | E1 -> [St1,E10,St2,S1]
    // St1 -> [E10,St2,S1,E2,St1] | E10 -> [St2,S1,E2,St1,S10] | St2 -> [S1,E2,St1,S10,E20,St2]
    assert_eq!(
        row(&streamer.next().await.unwrap()),
        r("ok", "1", "[SYNC_ITERATOR#1]", "e")
    );
    root.cancel();
    // Stopped to the front; the waiting stream and the running task end now, at the back:
    // [Stopped,E2,St1,S10,E20,St2,IS3,F5]
    // Stopped out | E2 -> [..,S2] | St1 finds the ctx done -> [..,IS1] | S10 out
    // E20 -> [..,S20] | St2 -> [..,IS2] | IS3, F5, S2, IS1, S20, IS2 out | empty: end
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("stopped", "cancelled", "-", "-"),
            r("ok", "10", "[SYNC_ITERATOR#2]", "b"),
            r("end", "cancelled", "[ASYNC_GENERATOR#3]", "s"),
            r("fail", "cancelled", "[TASK#5, COROUTINE#4]", "c"),
            r("ok", "2", "[SYNC_ITERATOR#1]", "e"),
            r("end", "cancelled", "[SYNC_ITERATOR#1]", "e"),
            r("ok", "20", "[SYNC_ITERATOR#2]", "b"),
            r("end", "cancelled", "[SYNC_ITERATOR#2]", "b"),
        ]
    );
    let cut: Vec<(String, String)> = streamer
        .cut_short()
        .into_iter()
        .map(|c| (format!("{:?}", c.sources), c.context.to_string()))
        .collect();
    assert_eq!(
        cut,
        [
            ("[ASYNC_GENERATOR#3]".to_string(), "s".to_string()),
            ("[TASK#5, COROUTINE#4]".to_string(), "c".to_string()),
            ("[SYNC_ITERATOR#1]".to_string(), "e".to_string()),
            ("[SYNC_ITERATOR#2]".to_string(), "b".to_string()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_the_breaker_ends_before_the_next_entry_and_resume_goes_on() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    feeder.add_sync_iterator([1, 2, 3].into_iter().inspect(move |_| {
        a.fetch_add(1, SeqCst);
    })); // SI#1
    feeder.add_value(100); // VALUE#2
    feeder.add_value(200); // VALUE#3: [St1, S100, S200]
    feeder.set_as_finished_if_out_of_sources();
    // St1 -> [S100,S200,E1,St1] | S100 out
    assert_eq!(
        row(&streamer.next().await.unwrap()),
        r("ok", "100", "[VALUE#2]", "e")
    );
    streamer.breaker().set();
    assert!(streamer.next().await.is_none());
    assert!(streamer.next().await.is_none(), "fused: stays ended");
    let left: Vec<Row> = streamer.remaining().map(|x| row(&x)).collect();
    assert_eq!(left, [r("ok", "200", "[VALUE#3]", "e")]);
    assert_eq!(
        advanced.load(SeqCst),
        1,
        "no source advanced after the breaker"
    );
    // Clear it and start a new iteration: [E1, St1] are still queued.
    streamer.breaker().clear();
    streamer.resume();
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("ok", "1", "[SYNC_ITERATOR#1]", "e"),
            r("ok", "2", "[SYNC_ITERATOR#1]", "e"),
            r("ok", "3", "[SYNC_ITERATOR#1]", "e"),
            r("end", "-", "[SYNC_ITERATOR#1]", "e"),
            r("stopped", "-", "-", "-"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn turns_finished_if_out_of_sources_with_work_still_queued() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_iterator([1]); // SI#1: [St1]
    feeder.set_as_finished_if_out_of_sources(); // work queued: no Stopped yet
    // St1 -> [E1,St1] | E1 -> [St1,S1] | St1 ends -> [S1,IS1] | S1 out
    assert_eq!(
        row(&streamer.next().await.unwrap()),
        r("ok", "1", "[SYNC_ITERATOR#1]", "e")
    );
    // A value added while handling the last result comes before Stopped.
    feeder.add_value(2); // VALUE#2: [IS1, S2]
    // A future that fails: the last entry taken produces no result, Stopped still comes.
    feeder.add_coroutine(async { Feed::<i32, String>::error(hp::Error::msg("no")) }); // #3, TASK#4
    assert_eq!(
        rows(&mut streamer).await,
        [
            r("end", "-", "[SYNC_ITERATOR#1]", "e"),
            r("ok", "2", "[VALUE#2]", "e"),
            r("fail", "no", "[TASK#4, COROUTINE#3]", "e"),
            r("stopped", "-", "-", "-"),
        ]
    );
    // With no sources at all Stopped is queued at once, and what is added before the
    // stream ends is still delivered.
    streamer.resume();
    feeder.set_as_finished_if_out_of_sources();
    feeder.add_value(5); // VALUE#5: [Stopped, S5]
    assert_eq!(
        rows(&mut streamer).await,
        [r("stopped", "-", "-", "-"), r("ok", "5", "[VALUE#5]", "e")]
    );
}

#[tokio::test(start_paused = true)]
async fn two_iterators_take_turns_and_each_ends_after_its_values() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_iterator_with_context(vec![1, 2, 3], "a".to_string());
    feeder.add_sync_generator_with_context(vec![10, 20], "b".to_string());
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut streamer).await,
        [
            "ok 1 @a [SYNC_ITERATOR#1]",
            "ok 10 @b [SYNC_GENERATOR#2]",
            "ok 2 @a [SYNC_ITERATOR#1]",
            "ok 20 @b [SYNC_GENERATOR#2]",
            // SG#2's last step (finding it exhausted) was queued before the extension of 3
            "end - @b [SYNC_GENERATOR#2]",
            "ok 3 @a [SYNC_ITERATOR#1]",
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
    let f = feeder.add_sync_function(move || {
        c.fetch_add(1, SeqCst);
        7
    });
    assert_eq!(
        called.load(SeqCst),
        1,
        "called before add_sync_function returned"
    );
    let v = feeder.add_value_with_context(8, "v".to_string());
    assert_eq!(format!("{f:?} {v:?}"), "SYNC_FUNCTION#1 VALUE#2");
    assert_eq!(feeder.live_sources(), 0);
    let got: Vec<String> = streamer.remaining().map(|r| show(&r)).collect();
    assert_eq!(got, ["ok 7 @e [SYNC_FUNCTION#1]", "ok 8 @v [VALUE#2]"]);
}

#[tokio::test(start_paused = true)]
async fn a_vec_value_is_delivered_as_a_value() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = hp::queue_manager::<Vec<i32>, ()>(&root);
    feeder.add_value(vec![1, 2]);
    feeder.add_sync_iterator([vec![3], vec![]]);
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
    let added = feeder.add_sync_iterator_with_context(
        [Feed::function(|| {
            Feed::generator([Feed::future(async { 5 })])
        })],
        "deep".to_string(),
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
            Q::Task,
            Q::Coroutine,
            Q::SyncGenerator,
            Q::SyncFunction,
            Q::SyncIterator
        ]
    );
    assert_eq!(sources.added(), added);
    assert_eq!(sources.producer().kind(), Q::Task);
    assert_eq!(sources.to_vec()[4], (Q::SyncIterator, added));
    assert_eq!(success.context().unwrap(), "deep");
    assert_eq!(
        results.iter().map(show).collect::<Vec<_>>(),
        [
            // [St1] St1 -> [Ef,St1] Ef -> [St1,Call] St1 ends -> [Call,IS1]
            // Call: SYNC_FUNCTION#2, its generator SYNC_GENERATOR#3 -> [IS1,St3]
            // St3 -> [Efut,St3] Efut: COROUTINE#4 spawns TASK#5 -> [St3] St3 ends
            "end - @deep [SYNC_ITERATOR#1]",
            "end - @deep [SYNC_GENERATOR#3,SYNC_FUNCTION#2,SYNC_ITERATOR#1]",
            "ok 5 @deep [TASK#5,COROUTINE#4,SYNC_GENERATOR#3,SYNC_FUNCTION#2,SYNC_ITERATOR#1]",
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
    feeder.add_async_generator_with_context(stream, "s".to_string());
    feeder.set_as_finished_if_out_of_sources();
    let start = Instant::now();
    let mut got = Vec::new();
    while let Some(r) = streamer.next().await {
        got.push(format!("{}ms {}", start.elapsed().as_millis(), show(&r)));
    }
    assert_eq!(
        got,
        [
            // 1 s: the first future is COROUTINE#2 (TASK#3); 2 s: the second is
            // COROUTINE#4 (TASK#5), and the stream ends
            "2000ms end - @s [ASYNC_GENERATOR#1]",
            "2500ms ok 10 @s [SYNC_ITERATOR#6,TASK#3,COROUTINE#2,ASYNC_GENERATOR#1]",
            "2500ms ok 11 @s [SYNC_ITERATOR#6,TASK#3,COROUTINE#2,ASYNC_GENERATOR#1]",
            "2500ms end - @s [SYNC_ITERATOR#6,TASK#3,COROUTINE#2,ASYNC_GENERATOR#1]",
            "5000ms ok 20 @s [SYNC_ITERATOR#7,TASK#5,COROUTINE#4,ASYNC_GENERATOR#1]",
            "5000ms ok 21 @s [SYNC_ITERATOR#7,TASK#5,COROUTINE#4,ASYNC_GENERATOR#1]",
            "5000ms end - @s [SYNC_ITERATOR#7,TASK#5,COROUTINE#4,ASYNC_GENERATOR#1]",
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
        hp::queue_manager_with_empty_context::<i32, String>(&root, "queue_manager", move || {
            format!("empty{}", m.fetch_add(1, SeqCst))
        });
    feeder.add_sync_iterator([1, 2]);
    feeder.add_sync_iterator_with_context([Feed::generator([3])], "given".to_string());
    feeder.set_as_finished_if_out_of_sources();
    let got = drain(&mut streamer).await;
    assert_eq!(
        got,
        [
            // [St1,St2] St1 -> [St2,E1,St1] St2 -> [E1,St1,Eg,St2] E1 -> [..,S1]
            // St1 -> [Eg,St2,S1,E2,St1] Eg -> [St2,S1,E2,St1,St3] St2 ends -> [..,IS2]
            // S1 | E2 -> [St1,St3,IS2,S2] | St1 ends, St3 -> [IS2,S2,IS1,E3,St3]
            "ok 1 @empty0 [SYNC_ITERATOR#1]",
            "end - @given [SYNC_ITERATOR#2]",
            "ok 2 @empty1 [SYNC_ITERATOR#1]",
            "end - @empty2 [SYNC_ITERATOR#1]",
            "ok 3 @given [SYNC_GENERATOR#3,SYNC_ITERATOR#2]",
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
    feeder.add_sync_function_with_context(
        || Feed::<i32, String>::error(hp::Error::msg("no")),
        "f".to_string(),
    );
    feeder.add_sync_function_with_context(|| -> i32 { panic!("boom") }, "p".to_string());
    feeder.add_sync_iterator_with_context(
        [
            Feed::Value(1),
            Feed::error(hp::Error::msg("bad")),
            Feed::Value(2),
        ],
        "i".to_string(),
    );
    let mut n = 0;
    feeder.add_sync_iterator_with_context(
        std::iter::from_fn(move || {
            n += 1;
            if n == 2 {
                panic!("iter panic")
            }
            Some(n)
        }),
        "ip".to_string(),
    );
    feeder.add_async_generator_with_context(
        futures::stream::iter([1, 2]).map(|i| if i == 2 { panic!("stream panic") } else { i }),
        "sp".to_string(),
    );
    feeder.add_coroutine_with_context(
        async {
            if true {
                panic!("future panic")
            }
            1
        },
        "fp".to_string(),
    );
    feeder.set_as_finished_if_out_of_sources();
    let got = drain(&mut streamer).await;
    let panicked = |what: &str| format!("panicked: {what}");
    assert_eq!(
        got,
        [
            "fail no @f [SYNC_FUNCTION#1]".to_string(),
            format!("fail {} @p [SYNC_FUNCTION#2]", panicked("boom")),
            // [F1,F2,St3,St4,St5] -> after the three steps [E1,St3,E1',St4,E1'',St5];
            // each extension puts its value at the back, then the next step of the
            // same source fails it there (Failure, then IterationStop)
            "ok 1 @i [SYNC_ITERATOR#3]".to_string(),
            "fail bad @i [SYNC_ITERATOR#3]".to_string(),
            "end bad @i [SYNC_ITERATOR#3]".to_string(),
            "ok 1 @ip [SYNC_ITERATOR#4]".to_string(),
            format!("fail {} @ip [SYNC_ITERATOR#4]", panicked("iter panic")),
            format!("end {} @ip [SYNC_ITERATOR#4]", panicked("iter panic")),
            "ok 1 @sp [ASYNC_GENERATOR#5]".to_string(),
            format!("fail {} @sp [ASYNC_GENERATOR#5]", panicked("stream panic")),
            format!("end {} @sp [ASYNC_GENERATOR#5]", panicked("stream panic")),
            // the spawned TASK#7 runs once the consumer waits
            format!("fail {} @fp [TASK#7,COROUTINE#6]", panicked("future panic")),
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
    feeder.add_task_with_context(ok, "ok".to_string());
    feeder.add_task_with_context(never.clone(), "never".to_string());
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
    feeder.add_coroutine_with_context(
        async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(60)).await;
            1
        },
        "fut".to_string(),
    );
    let stream_flag = DropFlag(dropped.clone());
    feeder.add_async_generator_with_context(
        futures::stream::pending::<i32>().map(move |v| {
            let _ = &stream_flag;
            v
        }),
        "st".to_string(),
    );
    feeder.add_value_with_context(9, "v".to_string());
    // COROUTINE#1 (TASK#2), ASYNC_GENERATOR#3, VALUE#4
    assert_eq!(show(&streamer.next().await.unwrap()), "ok 9 @v [VALUE#4]");
    feeder.add_value_with_context(10, "v".to_string());
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
            "ok 10 @v [VALUE#5]",
            "stopped cancelled",
            // the sources waiting when the stop came end in the order they were added
            "fail cancelled @fut [TASK#2,COROUTINE#1]",
            "end cancelled @st [ASYNC_GENERATOR#3]",
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
    feeder.add_value_with_context(1, "v".to_string());
    feeder.add_value_with_context(2, "v".to_string());
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    feeder.add_sync_iterator_with_context(
        (10..).inspect(move |_| {
            a.fetch_add(1, SeqCst);
        }),
        "i".to_string(),
    );
    root.set_exception(hp::Error::msg("bad ctx"));
    assert!(feeder.is_stopped());
    // Added after the stop: a value is delivered, an iterator ends at once unrun.
    feeder.add_value_with_context(3, "late".to_string());
    feeder.add_sync_iterator_with_context([99], "late".to_string());
    assert_eq!(
        drain(&mut streamer).await,
        [
            "stopped bad ctx",
            "ok 1 @v [VALUE#1]",
            "ok 2 @v [VALUE#2]",
            // [Stopped,S1,S2,St3,S3,St5]: St3 finds the ctx done and ends at the back
            "ok 3 @late [VALUE#4]",
            "end bad ctx @i [SYNC_ITERATOR#3]",
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
    feeder.add_sync_iterator([1]);
    assert!(streamer.next().await.is_none(), "fused until resumed");
    streamer.resume();
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
    feeder.add_coroutine(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Feed::generator([1])
    });
    feeder.set_as_finished_if_out_of_sources();
    let start = Instant::now();
    let got = drain(&mut streamer).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(
        got,
        [
            "ok 1 @e [SYNC_GENERATOR#3,TASK#2,COROUTINE#1]",
            "end - @e [SYNC_GENERATOR#3,TASK#2,COROUTINE#1]",
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
    feeder.add_sync_iterator((1..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert_eq!(
        show(&streamer.next().await.unwrap()),
        "ok 1 @e [SYNC_ITERATOR#1]"
    );
    // St1 -> [E1,St1] E1 -> [St1,S1] St1 -> [S1,E2,St1]: advanced twice before 1 is out
    assert_eq!(advanced.load(SeqCst), 2);
    feeder.add_value(5);
    feeder.add_value(6);
    streamer.breaker().set();
    assert!(streamer.next().await.is_none());
    assert_eq!(advanced.load(SeqCst), 2);
    let rest: Vec<String> = streamer.remaining().map(|r| show(&r)).collect();
    assert_eq!(rest, ["ok 5 @e [VALUE#2]", "ok 6 @e [VALUE#3]"]);
    assert_eq!(advanced.load(SeqCst), 2, "remaining() steps nothing");
    // Clearing it and resuming continues where the stream stopped: [E2, St1].
    streamer.breaker().clear();
    streamer.resume();
    assert_eq!(
        show(&streamer.next().await.unwrap()),
        "ok 2 @e [SYNC_ITERATOR#1]"
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_wakes_a_waiting_streamer() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_async_generator(futures::stream::pending::<i32>());
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
            feeder.add_sync_iterator([i].into_iter().inspect(move |_| {
                let _ = &flag;
            }));
            let flag = DropFlag(dropped.clone());
            feeder.add_coroutine(async move {
                let _flag = flag;
                round
            });
            let flag = DropFlag(dropped.clone());
            feeder.add_async_generator(futures::stream::iter([i]).map(move |v| {
                let _ = &flag;
                v
            }));
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
        feeder.add_coroutine(async move {
            let _flag = flag;
            std::future::pending::<i32>().await
        });
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
        |mut streamer: Streamer<i32, String>, feeder| async move {
            assert_eq!(streamer.ctx().name(), "t-->qm");
            let flag = DropFlag(d);
            feeder.add_coroutine(async move {
                let _f = flag;
                std::future::pending::<i32>().await
            });
            feeder.add_sync_iterator([1, 2]);
            let first = streamer.next().await.unwrap().into_value().unwrap();
            Ok::<_, hp::Error>((first, feeder))
        },
    )
    .await
    .unwrap();
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
    feeder.add_async_generator(futures::stream::pending::<i32>().map(move |v| {
        let _ = &flag;
        v
    }));
    let flag = DropFlag(dropped.clone());
    // The stream holds a feeder: a cycle that the stop breaks.
    let f2 = feeder.clone();
    feeder.add_sync_iterator(std::iter::once(1).inspect(move |_| {
        let _ = (&flag, &f2);
    }));
    drop(streamer);
    assert_eq!(dropped.load(SeqCst), 2);
    assert_eq!(feeder.live_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_source_may_feed_the_manager_while_it_is_being_stepped() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    let f2 = feeder.clone();
    feeder.add_sync_iterator((1..=2).inspect(move |&i| {
        f2.add_value(i * 100);
        f2.add_sync_function(move || i * 1000);
    }));
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
    feeder.add_task(task);
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
        feeder.add_async_generator(futures::stream::poll_fn(move |_| {
            p.fetch_add(1, SeqCst);
            std::task::Poll::<Option<i32>>::Pending
        }));
    }
    feeder.add_sync_iterator(0..1_000);
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
    let rt = common::multi_thread_runtime();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let root = hp::Ctx::beginning("t");
            let (mut streamer, feeder) = hp::queue_manager::<i32, String>(&root);
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
                feeder.add_async_generator_with_context(
                    tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
                    format!("s{s}"),
                );
                feeder.add_coroutine_with_context(
                    async move { Feed::iterator([s; 5]) },
                    format!("c{s}"),
                );
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
    feeder.add_async_generator(futures::stream::poll_fn(|cx| {
        cx.waker().wake_by_ref();
        std::task::Poll::<Option<i32>>::Pending
    }));
    let f2 = feeder.clone();
    // Paused time never advances while a task is always ready, so the other task
    // yields instead of sleeping; without the streamer yielding it would never run.
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        f2.add_value(1);
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
    feeder.add_async_generator_with_context(generator, "g".to_string());
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

#[tokio::test(start_paused = true)]
async fn a_produced_feed_carries_its_own_context() {
    let root = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&root);
    feeder.add_sync_iterator_with_context(
        // (A context of another type than the manager's is a compile error now:
        // `Feed<i32, String>::with_context` takes a `String`.)
        [Feed::iterator([1]).with_context("inner".to_string())],
        "outer".to_string(),
    ); // SI#1: [St1]
    feeder.set_as_finished_if_out_of_sources();
    // St1 -> [E,St1] | E: SI#2 under SI#1 with "inner" -> [St1,St2]
    // St1 ends -> [St2,IS1] | St2 takes 1 -> [IS1,VS1] | IS1 out
    // VS1: S1 at the back, then St2 ends -> [S1,IS2] | out, out | Stopped
    let got = drain(&mut streamer).await;
    assert_eq!(
        got,
        [
            "end - @outer [SYNC_ITERATOR#1]",
            "ok 1 @inner [SYNC_ITERATOR#2,SYNC_ITERATOR#1]",
            "end - @inner [SYNC_ITERATOR#2,SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
}

/// Issue 22 item 7: the entry queue gives its memory back once a burst is consumed (as
/// tokio's channels free their blocks), on both runtimes.
fn burst_then_consume_gives_the_queue_capacity_back(rt: tokio::runtime::Runtime) {
    rt.block_on(async {
        let ctx = hp::Ctx::beginning("t");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        let burst = 200_000;
        for i in 0..burst {
            feeder.add_value(i);
        }
        let full = streamer.queue_capacity();
        assert!(full >= burst as usize, "{full}");
        for i in 0..burst {
            let r = streamer.next().await.expect("a result");
            assert_eq!(r.into_value(), Some(i));
        }
        let after = streamer.queue_capacity();
        assert!(
            after <= 2048,
            "capacity after the burst was consumed: {after} (was {full})"
        );
        // The manager goes on as before.
        feeder.add_value(7);
        assert_eq!(streamer.next().await.and_then(R::into_value), Some(7));
    });
}

#[test]
fn memory_the_entry_queue_shrinks_after_a_burst_current_thread() {
    burst_then_consume_gives_the_queue_capacity_back(common::current_thread());
}

#[test]
fn memory_the_entry_queue_shrinks_after_a_burst_multi_thread() {
    burst_then_consume_gives_the_queue_capacity_back(common::multi_thread_runtime());
}
