//! Queue manager, issue 23 items 4-6 (SEMANTICS "Queue manager": "Nothing new starts
//! after the stop", "`Feed::Error` is an error wherever it sits", "What a stop or an
//! error leaves unread"): what the manager does not run comes back to the caller.
//!
//! Every sequence is worked out by hand under the turn model (SEMANTICS "Turn model")
//! above each assertion: `St n` the step of source n, `VS x` a value and its source's
//! next step (one entry), `E x` an extension, `C` a call, `S x`/`F`/`IS` results.
//! Each scenario runs on the paused current-thread runtime and on the multi-thread
//! runtime (the consumer does all the work, so the order is the same on both).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R, Streamer};

use crate::common;

type Res = R<u32, &'static str>;

/// `ok V @CTX [chain]`, `fail ERR @CTX [chain]`, `end ERR @CTX [chain]`, `stopped ERR`,
/// with ` +unread KIND` when the result hands something back.
fn line(r: &Res) -> String {
    let err = |e: &hp::Failure| match e {
        hp::Failure::Cancelled => "cancelled".to_string(),
        hp::Failure::Error(e) => e.to_string(),
    };
    let unread = |u: &Option<Box<Feed<u32, &'static str>>>| match u {
        Some(f) => format!(" +unread {:?}", f.kind().expect("a source")),
        None => String::new(),
    };
    match r {
        R::Success {
            value,
            context,
            sources,
        } => format!("ok {value} @{context} {sources:?}"),
        R::Failure {
            error,
            context,
            sources,
            unread: u,
        } => format!("fail {} @{context} {sources:?}{}", err(error), unread(u)),
        R::IterationStop {
            error,
            context,
            sources,
            unread: u,
        } => format!(
            "end {} @{context} {sources:?}{}",
            error.as_ref().map_or("-".to_string(), err),
            unread(u)
        ),
        R::Stopped { error } => format!("stopped {}", error.as_ref().map_or("-".into(), err)),
    }
}

fn manager(
    ctx: &hp::Ctx,
) -> (
    Streamer<u32, &'static str>,
    hp::QueueFeeder<u32, &'static str>,
) {
    hp::queue_manager_with_empty_context(ctx, "queue_manager", || "-")
}

/// Runs `make()`'s scenario on the paused current-thread runtime, then on the
/// multi-thread runtime, under the watchdog.
fn both<F, Fut>(make: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let make = Arc::new(make);
    let m = make.clone();
    common::with_watchdog(move || common::paused_current_thread().block_on(m()));
    common::multi_thread(async move { make().await });
}

/// The unread rest of an iterator feed, as values.
fn rest_of(feed: Feed<u32, &'static str>) -> Vec<u32> {
    match feed {
        Feed::Iterator(it) | Feed::Generator(it) => it
            .map(|f| match f {
                Feed::Value(v) => v,
                other => panic!("not a value: {:?}", other.kind()),
            })
            .collect(),
        other => panic!("not an iterator: {:?}", other.kind()),
    }
}

// --- Item 4: after a stop, a produced function is not called ---

/// A function that returns the next function for ever, counting its calls; the third
/// call stops the manager.
fn forever(calls: Arc<AtomicUsize>, stop: hp::Ctx) -> Feed<u32, &'static str> {
    Feed::function(move || {
        if calls.fetch_add(1, SeqCst) + 1 == 3 {
            stop.cancel();
        }
        forever(calls, stop)
    })
}

async fn a_function_returning_functions_for_ever_ends_after_stopped() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    let calls = Arc::new(AtomicUsize::new(0));
    feeder.add_value_with_context(forever(calls.clone(), streamer.ctx().clone()), "f");
    // VALUE#1 extends a function now: [C(f0)]
    // C: SYNC_FUNCTION#2 calls f0 (1) -> [C(f1)] | C: #3 calls f1 (2) -> [C(f2)]
    // C: #4 calls f2 (3): the stop puts Stopped at the front, f3 at the back:
    //   [Stopped, C(f3)] | Stopped out | C after the stop: #5 is not called, a Failure
    //   handing f3 back -> [F] | out | empty and stopped: the stream ends.
    let mut got = Vec::new();
    let mut unread = None;
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        if let Some(u) = r.take_unread() {
            unread = Some(u);
        }
    }
    let chain = "[SYNC_FUNCTION#5, SYNC_FUNCTION#4, SYNC_FUNCTION#3, SYNC_FUNCTION#2, VALUE#1]";
    assert_eq!(
        got,
        [
            "stopped cancelled".to_string(),
            format!("fail cancelled @f {chain} +unread SYNC_FUNCTION"),
        ]
    );
    assert_eq!(calls.load(SeqCst), 3, "nothing was called after the stop");
    // The cut-short list names it, with its context.
    let cut: Vec<String> = streamer
        .cut_short()
        .iter()
        .map(|c| format!("{:?} @{}", c.sources, c.context))
        .collect();
    assert_eq!(cut, [format!("{chain} @f")]);
    // The caller has the function back: calling it is the fourth call.
    let Some(Feed::Function(f)) = unread else {
        panic!("the function comes back")
    };
    let next = f();
    assert_eq!(calls.load(SeqCst), 4);
    assert!(matches!(next, Feed::Function(_)));
}

#[test]
fn stop_a_function_returning_functions_for_ever_ends_after_stopped() {
    both(a_function_returning_functions_for_ever_ends_after_stopped);
}

async fn a_future_added_after_the_stop_comes_back_unspawned() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    streamer.ctx().cancel(); // [Stopped]
    // COROUTINE#1 after the stop: not spawned, a Failure handing it back -> [Stopped, F]
    feeder.add_coroutine_with_context(async { 5u32 }, "c");
    let mut got = Vec::new();
    let mut back = None;
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        back = back.or(r.take_unread());
    }
    assert_eq!(
        got,
        [
            "stopped cancelled",
            "fail cancelled @c [COROUTINE#1] +unread COROUTINE"
        ]
    );
    let Some(Feed::Future(fut)) = back else {
        panic!("the future comes back")
    };
    assert!(matches!(fut.await, Feed::Value(5)));
}

#[test]
fn stop_a_future_added_after_the_stop_comes_back_unspawned() {
    both(a_future_added_after_the_stop_comes_back_unspawned);
}

// --- Item 5: every wrapped error is an error; one bad item and go on ---

async fn a_wrapped_error_ends_an_iterator_as_a_bare_one_does() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    // The case: [Value(10), Feed::error(e).with_context("err"), Value(11)].
    let items = vec![
        Feed::Value(10),
        Feed::error(hp::Error::msg("e")).with_context("err"),
        Feed::Value(11),
    ];
    feeder.add_sync_iterator_with_context(items, "it"); // SYNC_ITERATOR#1: [St1]
    feeder.set_as_finished_if_out_of_sources();
    // St1 takes 10 -> [VS10] | VS10: S10 at the back, then St1 takes the wrapped
    // error: F (with the error's context), IS (with the source's, handing back the
    // rest) -> [S10, F, IS] | out, out, out | empty, no source -> Stopped
    let mut got = Vec::new();
    let mut rest = Vec::new();
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        if let Some(u) = r.take_unread() {
            rest = rest_of(u);
        }
    }
    assert_eq!(
        got,
        [
            "ok 10 @it [SYNC_ITERATOR#1]",
            "fail e @err [SYNC_ITERATOR#1]",
            "end e @it [SYNC_ITERATOR#1] +unread SYNC_ITERATOR",
            "stopped -",
        ]
    );
    assert_eq!(rest, [11], "11 was not delivered: it comes back unread");
}

#[test]
fn error_a_wrapped_error_ends_an_iterator_as_a_bare_one_does() {
    both(a_wrapped_error_ends_an_iterator_as_a_bare_one_does);
}

async fn a_wrapped_error_ends_a_stream_and_hands_the_stream_back() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    let items = vec![
        Feed::Value(10),
        Feed::error(hp::Error::msg("e")).with_context("err"),
        Feed::Value(11),
    ];
    feeder.add_async_generator_with_context(futures::stream::iter(items), "s"); // [St1]
    feeder.set_as_finished_if_out_of_sources();
    // As for the iterator: St1 polls 10 -> [VS10] | VS10 -> [S10, F, IS]
    let mut got = Vec::new();
    let mut rest = Vec::new();
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        if let Some(Feed::Stream(s)) = r.take_unread() {
            rest = s
                .map(|f| match f {
                    Feed::Value(v) => v,
                    _ => panic!("a value"),
                })
                .collect()
                .await;
        }
    }
    assert_eq!(
        got,
        [
            "ok 10 @s [ASYNC_GENERATOR#1]",
            "fail e @err [ASYNC_GENERATOR#1]",
            "end e @s [ASYNC_GENERATOR#1] +unread ASYNC_GENERATOR",
            "stopped -",
        ]
    );
    assert_eq!(rest, [11]);
}

#[test]
fn error_a_wrapped_error_ends_a_stream_and_hands_the_stream_back() {
    both(a_wrapped_error_ends_a_stream_and_hands_the_stream_back);
}

async fn an_item_error_reports_one_bad_item_and_the_iterator_goes_on() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    let items = vec![
        Feed::Value(1),
        Feed::item_error(hp::Error::msg("bad line 2")).with_context("line 2"),
        Feed::Value(3),
    ];
    feeder.add_sync_iterator_with_context(items, "it"); // [St1]
    feeder.set_as_finished_if_out_of_sources();
    // St1 takes 1 -> [VS1] | VS1: S1, then St1 takes the item error (an item):
    //   [S1, E(ie), St1] | S1 out | E: F at the back -> [St1, F]
    // St1 takes 3 -> [F, VS3] | F out | VS3: S3, then St1 ends -> [S3, IS] | out, out
    let got: Vec<String> = streamer.by_ref().map(|r| line(&r)).collect().await;
    assert_eq!(
        got,
        [
            "ok 1 @it [SYNC_ITERATOR#1]",
            "fail bad line 2 @line 2 [SYNC_ITERATOR#1]",
            "ok 3 @it [SYNC_ITERATOR#1]",
            "end - @it [SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
}

#[test]
fn error_an_item_error_reports_one_bad_item_and_the_iterator_goes_on() {
    both(an_item_error_reports_one_bad_item_and_the_iterator_goes_on);
}

/// A wrapped error returned by a function, a future or a task is a `Failure` with its
/// own context, as a bare one is (with the source's).
async fn a_wrapped_error_from_a_function_future_or_task_is_a_failure() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    // SYNC_FUNCTION#1 runs now: F -> [F1]
    feeder.add_sync_function_with_context(
        || Feed::error(hp::Error::msg("f")).with_context("fe"),
        "fn",
    );
    // COROUTINE#2 spawns TASK#3 (its F comes when it finishes)
    feeder.add_coroutine_with_context(
        async { Feed::<u32, &str>::error(hp::Error::msg("c")).with_context("ce") },
        "co",
    );
    feeder.set_as_finished_if_out_of_sources();
    let got: Vec<String> = streamer.by_ref().map(|r| line(&r)).collect().await;
    assert_eq!(
        got,
        [
            "fail f @fe [SYNC_FUNCTION#1]",
            "fail c @ce [TASK#3, COROUTINE#2]",
            "stopped -",
        ]
    );
}

#[test]
fn error_a_wrapped_error_from_a_function_future_or_task_is_a_failure() {
    both(a_wrapped_error_from_a_function_future_or_task_is_a_failure);
}

// --- Item 6: what a stop or an error leaves unread comes back ---

async fn an_iterator_cut_short_by_the_stop_is_handed_back_and_can_be_requeued() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    feeder.add_sync_iterator_with_context([1u32, 2, 3, 4], "it"); // [St1]
    // St1 takes 1 -> [VS1] | VS1: S1, St1 takes 2 -> [S1, VS2] | S1 out
    let first = streamer.next().await.expect("a result");
    assert_eq!(line(&first), "ok 1 @it [SYNC_ITERATOR#1]");
    streamer.ctx().cancel(); // -> [Stopped, VS2]
    // Stopped out | VS2: S2 at the back, then the step finds the stop: IS handing the
    // iterator back -> [S2, IS] | out, out | the stream ends
    let mut got = Vec::new();
    let mut unread = None;
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        unread = unread.or(r.take_unread());
    }
    assert_eq!(
        got,
        [
            "stopped cancelled",
            "ok 2 @it [SYNC_ITERATOR#1]",
            "end cancelled @it [SYNC_ITERATOR#1] +unread SYNC_ITERATOR",
        ]
    );
    let cut: Vec<String> = streamer
        .cut_short()
        .iter()
        .map(|c| format!("{:?} @{}", c.sources, c.context))
        .collect();
    assert_eq!(cut, ["[SYNC_ITERATOR#1] @it"]);
    // Re-queue the rest on another manager: 3 and 4 are delivered there.
    let other = hp::Ctx::beginning("other");
    let (mut s2, f2) = manager(&other);
    f2.add_value_with_context(unread.expect("the rest comes back"), "again");
    f2.set_as_finished_if_out_of_sources();
    let again: Vec<String> = s2.by_ref().map(|r| line(&r)).collect().await;
    assert_eq!(
        again,
        [
            "ok 3 @again [SYNC_ITERATOR#2, VALUE#1]",
            "ok 4 @again [SYNC_ITERATOR#2, VALUE#1]",
            "end - @again [SYNC_ITERATOR#2, VALUE#1]",
            "stopped -",
        ]
    );
}

#[test]
fn unread_an_iterator_cut_short_by_the_stop_is_handed_back_and_can_be_requeued() {
    both(an_iterator_cut_short_by_the_stop_is_handed_back_and_can_be_requeued);
}

async fn a_waiting_stream_cut_short_by_the_stop_is_handed_back_alive() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
    tx.unbounded_send(1).unwrap();
    feeder.add_async_generator_with_context(rx, "rx"); // [St1]
    // St1 polls 1 -> [VS1] | VS1: S1, St1 polls: pending, it waits -> [S1] | S1 out
    let first = streamer.next().await.expect("a result");
    assert_eq!(line(&first), "ok 1 @rx [ASYNC_GENERATOR#1]");
    // The stop ends the waiting stream at once: [Stopped, IS] | out, out | ends
    streamer.ctx().cancel();
    let mut got = Vec::new();
    let mut unread = None;
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        unread = unread.or(r.take_unread());
    }
    assert_eq!(
        got,
        [
            "stopped cancelled",
            "end cancelled @rx [ASYNC_GENERATOR#1] +unread ASYNC_GENERATOR",
        ]
    );
    // The stream comes back alive: what is sent later is read from it.
    tx.unbounded_send(2).unwrap();
    tx.unbounded_send(3).unwrap();
    drop(tx);
    let Some(Feed::Stream(s)) = unread else {
        panic!("the stream comes back")
    };
    let rest: Vec<u32> = s
        .map(|f| match f {
            Feed::Value(v) => v,
            _ => panic!("a value"),
        })
        .collect()
        .await;
    assert_eq!(rest, [2, 3]);
}

#[test]
fn unread_a_waiting_stream_cut_short_by_the_stop_is_handed_back_alive() {
    both(a_waiting_stream_cut_short_by_the_stop_is_handed_back_alive);
}

/// Hostile: the rest's `Drop` re-enters the manager (adds a value) when the consumer
/// drops it; and an iterator whose `next()` panics is handed back too.
struct Reenter(hp::QueueFeeder<u32, &'static str>, u32);

impl Drop for Reenter {
    fn drop(&mut self) {
        self.0.add_value_with_context(self.1, "from drop");
    }
}

async fn a_handed_back_rest_whose_drop_reenters_the_manager() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = manager(&ctx);
    let guard = Reenter(feeder.clone(), 99);
    let items = vec![
        Feed::Value(1),
        Feed::error(hp::Error::msg("boom")),
        Feed::Value(2),
    ];
    feeder.add_sync_iterator_with_context(
        items.into_iter().inspect(move |_| {
            let _ = &guard;
        }),
        "it",
    ); // [St1]
    // St1 takes 1 -> [VS1] | VS1: S1, St1 takes the error -> [S1, F, IS] | out x3:
    // the consumer drops IS (and its rest): the guard adds VALUE#2 -> [S99] | out
    let mut got = Vec::new();
    for _ in 0..4 {
        let r = streamer.next().await.expect("a result");
        got.push(line(&r));
        drop(r); // the rest is dropped here, in the consumer, with no lock held
    }
    assert_eq!(
        got,
        [
            "ok 1 @it [SYNC_ITERATOR#1]",
            "fail boom @it [SYNC_ITERATOR#1]",
            "end boom @it [SYNC_ITERATOR#1] +unread SYNC_ITERATOR",
            "ok 99 @from drop [VALUE#2]",
        ]
    );
    // A `next()` that panics: the panic is the failure, the iterator still comes back.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    feeder.add_sync_iterator_with_context(
        std::iter::from_fn(move || {
            let n = c.fetch_add(1, SeqCst) + 1;
            if n == 2 {
                panic!("next boom");
            }
            Some(n as u32)
        }),
        "p",
    ); // SYNC_ITERATOR#3: [St3]
    feeder.set_as_finished_if_out_of_sources();
    // St3 takes 1 -> [VS1] | VS1: S1, St3 panics -> [S1, F, IS] | out x3 | Stopped
    let mut got = Vec::new();
    let mut rest = None;
    while let Some(mut r) = streamer.next().await {
        got.push(line(&r));
        rest = rest.or(r.take_unread());
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], "ok 1 @p [SYNC_ITERATOR#3]");
    assert!(
        got[1].starts_with("fail ") && got[1].contains("next boom"),
        "{}",
        got[1]
    );
    assert!(
        got[2].ends_with("@p [SYNC_ITERATOR#3] +unread SYNC_ITERATOR"),
        "{}",
        got[2]
    );
    assert_eq!(got[3], "stopped -");
    // The caller may go on reading it: the third call gives 3.
    let Some(Feed::Iterator(mut it)) = rest else {
        panic!("the iterator comes back")
    };
    assert!(matches!(it.next(), Some(Feed::Value(3))));
}

#[test]
fn hostile_a_handed_back_rest_whose_drop_reenters_the_manager() {
    both(a_handed_back_rest_whose_drop_reenters_the_manager);
}
