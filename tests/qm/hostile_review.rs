//! Hostile review probes, written from SEMANTICS.md and the rustdoc only: the queue
//! manager's turn model worked out by hand, re-entrant `Drop`s, panics in user code,
//! chains of 100 000, wake paths, several consumers, cancellation at await points, both
//! runtimes.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
use tokio::time::Instant;

use common::{Boom, current_thread};

/// One result as a line: `ok V [chain] @ctx`, `fail E [chain]`, `end E [chain]`,
/// `stopped E` (`-` for no error).
fn line<C: std::fmt::Display>(r: &R<i32, C>) -> String {
    fn e(f: &Option<hp::Failure>) -> String {
        f.as_ref().map_or("-".to_owned(), ToString::to_string)
    }
    match r {
        R::Success {
            value,
            sources,
            context,
        } => format!("ok {value} {sources:?} @{context}"),
        R::Failure { error, sources, .. } => format!("fail {error} {sources:?}"),
        R::IterationStop { error, sources, .. } => format!("end {} {sources:?}", e(error)),
        R::Stopped { error } => format!("stopped {}", e(error)),
    }
}

async fn drain<C: std::fmt::Display + Clone + Send + Sync + 'static>(
    s: &mut hp::Streamer<i32, C>,
) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        seen.push(line(&r));
    }
    seen
}

fn ticker_stream(n: i32, every: Duration) -> impl futures::Stream<Item = i32> + Send + 'static {
    futures::stream::unfold(0, move |i| async move {
        if i < n {
            tokio::time::sleep(every).await;
            Some((i, i + 1))
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------- turn model

/// Values, a sync iterator, a function returning a function returning a function, and
/// a ready stream. Worked by hand (St n: step of n, Cf: call, E x: extend, S x: result):
/// start [St1, Cf', St3]
/// St1:1 -> [Cf', St3, E1, St1]; Cf' adds #4, returns f'' -> [St3, E1, St1, Cf'']
/// St3:7 -> [E1, St1, Cf'', E7, St3]; E1 -> [St1, Cf'', E7, St3, S1]
/// St1:2 -> [Cf'', E7, St3, S1, E2, St1]; Cf'' adds #5, returns 5 -> [.., S5]
/// E7 -> [St3, S1, E2, St1, S5, S7]; St3:8 -> [S1, E2, St1, S5, S7, E8, St3]
/// S1; E2 -> [St1, S5, S7, E8, St3, S2]; St1 done -> [S5, S7, E8, St3, S2, IS1]
/// S5; S7; E8 -> [St3, S2, IS1, S8]; St3 done -> [S2, IS1, S8, IS3]; S2 IS1 S8 IS3.
#[tokio::test(start_paused = true)]
async fn turns_iterator_function_chain_and_ready_stream() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_sync_iterator([1, 2]);
    f.add_sync_function(|| Feed::function(|| Feed::function(|| 5)));
    f.add_async_generator(futures::stream::iter([7, 8]));
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "ok 1 [SYNC_ITERATOR#1] @-",
            "ok 5 [SYNC_FUNCTION#5, SYNC_FUNCTION#4, SYNC_FUNCTION#2] @-",
            "ok 7 [ASYNC_GENERATOR#3] @-",
            "ok 2 [SYNC_ITERATOR#1] @-",
            "end - [SYNC_ITERATOR#1]",
            "ok 8 [ASYNC_GENERATOR#3] @-",
            "end - [ASYNC_GENERATOR#3]",
            "stopped -",
        ]
    );
}

/// A future resolving to a stream: COROUTINE#1 spawns TASK#2; its output (a stream)
/// becomes ASYNC_GENERATOR#3 under TASK#2. [St3] -> [E1, St3] -> [St3, S1] ->
/// [S1, E2, St3] -> S1; [St3, S2] -> [S2, IS3] -> S2, IS3, then Stopped.
#[tokio::test(start_paused = true)]
async fn turns_future_resolving_to_a_stream() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_coroutine(async { Feed::stream(futures::stream::iter([1, 2])) });
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "ok 1 [ASYNC_GENERATOR#3, TASK#2, COROUTINE#1] @-",
            "ok 2 [ASYNC_GENERATOR#3, TASK#2, COROUTINE#1] @-",
            "end - [ASYNC_GENERATOR#3, TASK#2, COROUTINE#1]",
            "stopped -",
        ]
    );
}

/// A stream that is not ready when its step is taken waits for its own waker while a
/// sync iterator takes its turns; each item surfaces at the instant the stream woke.
#[tokio::test(start_paused = true)]
async fn turns_pending_stream_interleaves_with_iterator_at_exact_instants() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let t0 = Instant::now();
    f.add_async_generator(ticker_stream(2, Duration::from_secs(1)));
    f.add_sync_iterator([10, 11, 12]);
    f.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        seen.push(format!(
            "{} t={}",
            line(&r),
            (Instant::now() - t0).as_secs()
        ));
    }
    assert_eq!(
        seen,
        [
            "ok 10 [SYNC_ITERATOR#2] @- t=0",
            "ok 11 [SYNC_ITERATOR#2] @- t=0",
            "ok 12 [SYNC_ITERATOR#2] @- t=0",
            "end - [SYNC_ITERATOR#2] t=0",
            "ok 0 [ASYNC_GENERATOR#1] @- t=1",
            "ok 1 [ASYNC_GENERATOR#1] @- t=2",
            "end - [ASYNC_GENERATOR#1] t=2",
            "stopped - t=2",
        ]
    );
}

/// Stop in the middle: Stopped goes to the front, queued entries are still taken in
/// order (steps end their sources with the ctx's failure, extensions deliver), and a
/// value added after the stop is delivered.
/// After S1 the queue is [E2, St1, S10, E20, St2]; cancel -> [Stopped, E2, St1, S10,
/// E20, St2]; add_value(99) -> [.., S99]. Stopped; E2 -> [.., S2]; St1 -> [.., IS1(c)];
/// S10; E20 -> [.., S20]; St2 -> [.., IS2(c)]; S99, S2, IS1, S20, IS2; end.
#[tokio::test(start_paused = true)]
async fn turns_stop_in_the_middle_keeps_queued_order() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_sync_iterator([1, 2, 3]);
    f.add_sync_iterator([10, 20]);
    let first = s.next().await.unwrap();
    assert_eq!(line(&first), "ok 1 [SYNC_ITERATOR#1] @-");
    s.ctx().cancel();
    f.add_value(99);
    assert_eq!(
        drain(&mut s).await,
        [
            "stopped cancelled",
            "ok 10 [SYNC_ITERATOR#2] @-",
            "ok 99 [VALUE#3] @-",
            "ok 2 [SYNC_ITERATOR#1] @-",
            "end cancelled [SYNC_ITERATOR#1]",
            "ok 20 [SYNC_ITERATOR#2] @-",
            "end cancelled [SYNC_ITERATOR#2]",
        ]
    );
    let cut: Vec<String> = s
        .cut_short()
        .iter()
        .map(|c| format!("{:?}", c.sources))
        .collect();
    assert_eq!(cut, ["[SYNC_ITERATOR#1]", "[SYNC_ITERATOR#2]"]);
}

/// A failing iterator: Failure, then IterationStop(error), never advanced again; after
/// it (a step that produced nothing) `set_as_finished_if_out_of_sources` still ends.
#[tokio::test(start_paused = true)]
async fn turns_error_in_iterator_then_finished_after_a_step_that_produced_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    let items = vec![Feed::Value(1), Feed::error(Boom("bad")), Feed::Value(3)];
    f.add_sync_iterator(items.into_iter().inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "ok 1 [SYNC_ITERATOR#1] @-",
            "fail bad [SYNC_ITERATOR#1]",
            "end bad [SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
    assert_eq!(advanced.load(SeqCst), 2);
}

/// `set_as_finished_if_out_of_sources` called from another task while the consumer
/// waits on an empty queue: Stopped comes at once (no hang).
#[tokio::test(start_paused = true)]
async fn finished_while_consumer_waits_on_empty_queue() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let t0 = Instant::now();
    let consumer = tokio::spawn(async move {
        let seen = drain(&mut s).await;
        (seen, Instant::now())
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    f.add_value(4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    f.set_as_finished_if_out_of_sources();
    let (seen, at) = tokio::time::timeout(Duration::from_secs(60), consumer)
        .await
        .expect("consumer woken")
        .unwrap();
    assert_eq!(seen, ["ok 4 [VALUE#1] @-", "stopped -"]);
    assert_eq!(at - t0, Duration::from_secs(5));
}

/// A value the consumer adds while handling the last result comes before Stopped.
#[tokio::test(start_paused = true)]
async fn finished_value_added_while_handling_last_result_comes_first() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_value(1);
    f.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        if r.value() == Some(&1) {
            f.add_value(2);
        }
        seen.push(line(&r));
    }
    assert_eq!(
        seen,
        ["ok 1 [VALUE#1] @-", "ok 2 [VALUE#2] @-", "stopped -"]
    );
}

/// The breaker ends the stream before the next entry; results already produced stay for
/// `remaining()`; no source is advanced after it is set.
#[tokio::test(start_paused = true)]
async fn breaker_keeps_results_and_advances_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_value(5);
    f.add_value(6);
    f.add_sync_iterator((0..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert_eq!(line(&s.next().await.unwrap()), "ok 5 [VALUE#1] @-");
    s.breaker().set();
    assert!(s.next().await.is_none());
    let rest: Vec<String> = s.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["ok 6 [VALUE#2] @-"]);
    assert_eq!(advanced.load(SeqCst), 0);
}

/// Contexts: the one given with the first source of the chain, else a fresh
/// `make_empty_context()` per result; a produced feed's own context wins.
#[tokio::test(start_paused = true)]
async fn contexts_per_source_and_fresh_empty_context_per_result() {
    let ctx = hp::Ctx::beginning("t");
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, String>(&ctx, "queue_manager", move || {
            format!("e{}", m.fetch_add(1, SeqCst))
        });
    f.add_value(1);
    f.add_value_with_context(2, "a".to_owned());
    f.add_sync_function_with_context(|| Feed::generator([3]), "b".to_owned());
    f.add_value(Feed::function(|| {
        Feed::Value(4).with_context("c".to_owned())
    }));
    f.add_value(5);
    f.set_as_finished_if_out_of_sources();
    // [S1, S2, St4(gen under fn#3), C(#5's fn), S5]
    // S1, S2; St4:3 -> [C, S5, E3, St4]; C -> value 4 with ctx c -> [S5, E3, St4, S4]
    // S5; E3 -> [St4, S4, S3]; St4 end -> [S4, S3, IS4]
    let seen = drain(&mut s).await;
    assert_eq!(
        seen,
        [
            "ok 1 [VALUE#1] @e0",
            "ok 2 [VALUE#2] @a",
            "ok 5 [VALUE#6] @e1",
            "ok 4 [SYNC_FUNCTION#7, VALUE#5] @c",
            "ok 3 [SYNC_GENERATOR#4, SYNC_FUNCTION#3] @b",
            "end - [SYNC_GENERATOR#4, SYNC_FUNCTION#3]",
            "stopped -",
        ]
    );
    assert_eq!(made.load(SeqCst), 2);
}

// ---------------------------------------------------------------- panics in sources

/// A panicking sync function is a Failure at the back inside the call; a panicking
/// iterator gives Failure then IterationStop(that error) and is never advanced again.
/// [St1, F2]; St1:0 -> [F2, E0, St1]; F2; E0 -> [St1, S0]; St1 panics -> [S0, F1, IS1].
#[tokio::test(start_paused = true)]
async fn panics_in_function_and_iterator_are_failures_in_turn() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_sync_iterator((0..3).inspect(move |&i| {
        a.fetch_add(1, SeqCst);
        if i == 1 {
            panic!("it");
        }
    }));
    f.add_sync_function(|| -> i32 { panic!("fn") });
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "fail panicked: fn [SYNC_FUNCTION#2]",
            "ok 0 [SYNC_ITERATOR#1] @-",
            "fail panicked: it [SYNC_ITERATOR#1]",
            "end panicked: it [SYNC_ITERATOR#1]",
            "stopped -",
        ]
    );
    assert_eq!(advanced.load(SeqCst), 2);
}

/// A stream whose poll panics and a coroutine that panics: Failures, the stream also
/// ends; the manager then finishes.
#[tokio::test(start_paused = true)]
async fn panics_in_stream_poll_and_coroutine_are_failures() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_async_generator(futures::stream::poll_fn(
        |_| -> std::task::Poll<Option<i32>> { panic!("st") },
    ));
    f.add_coroutine(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if true {
            panic!("co");
        }
        1
    });
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "fail panicked: st [ASYNC_GENERATOR#1]",
            "end panicked: st [ASYNC_GENERATOR#1]",
            "fail panicked: co [TASK#3, COROUTINE#2]",
            "stopped -",
        ]
    );
}

// ---------------------------------------------------------------- re-entrant drops

/// Runs `f` once when dropped (user code in a `Drop`).
struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    fn new(f: impl FnOnce() + Send + 'static) -> Self {
        OnDrop(Some(Box::new(f)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// An iterator that runs `OnDrop` when the manager drops it.
struct DropIter {
    items: std::vec::IntoIter<i32>,
    _on_drop: OnDrop,
}

impl Iterator for DropIter {
    type Item = i32;
    fn next(&mut self) -> Option<i32> {
        self.items.next()
    }
}

/// A source whose `Drop` adds a source to the same manager and cancels another context:
/// no deadlock, the added value is delivered, the manager still finishes.
#[tokio::test(start_paused = true)]
async fn drop_of_exhausted_source_adds_a_source_and_cancels_a_ctx() {
    let ctx = hp::Ctx::beginning("t");
    let other = ctx.child("other");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let (f2, o2) = (f.clone(), other.clone());
    f.add_sync_iterator(DropIter {
        items: vec![1].into_iter(),
        _on_drop: OnDrop::new(move || {
            f2.add_value(100);
            o2.cancel();
        }),
    });
    f.set_as_finished_if_out_of_sources();
    let mut seen = tokio::time::timeout(Duration::from_secs(10), drain(&mut s))
        .await
        .expect("no hang");
    assert_eq!(seen.pop().as_deref(), Some("stopped -"));
    seen.sort();
    assert_eq!(
        seen,
        [
            "end - [SYNC_ITERATOR#1]",
            "ok 1 [SYNC_ITERATOR#1] @-",
            "ok 100 [VALUE#2] @-"
        ]
    );
    assert!(other.cancelled());
}

/// A source whose `Drop` panics: logged, the manager carries on (later sources deliver,
/// Stopped comes).
#[tokio::test(start_paused = true)]
async fn drop_of_source_that_panics_does_not_stop_the_manager() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_sync_iterator(DropIter {
        items: vec![1].into_iter(),
        _on_drop: OnDrop::new(|| panic!("drop")),
    });
    f.add_sync_iterator([2]);
    f.set_as_finished_if_out_of_sources();
    let seen = tokio::time::timeout(Duration::from_secs(10), drain(&mut s))
        .await
        .expect("no hang");
    assert_eq!(
        seen,
        [
            // [St1, St2] -> [St2, E1, St1] -> [E1, St1, E2, St2] -> [St1, E2, St2, S1]
            // -> [E2, St2, S1, IS1] (#1 dropped: its Drop panics) -> [St2, S1, IS1, S2]
            // -> [S1, IS1, S2, IS2]
            "ok 1 [SYNC_ITERATOR#1] @-",
            "end - [SYNC_ITERATOR#1]",
            "ok 2 [SYNC_ITERATOR#2] @-",
            "end - [SYNC_ITERATOR#2]",
            "stopped -",
        ]
    );
}

/// Dropping the streamer drops live sources whose `Drop` re-enters the feeder, cancels
/// the manager's parent context and panics: no deadlock, nothing left live, the feeder
/// still answers afterwards.
#[tokio::test(start_paused = true)]
async fn drop_of_streamer_with_reentrant_and_panicking_source_drops() {
    let ctx = hp::Ctx::beginning("t");
    let parent = ctx.child("p");
    let (s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&parent, "queue_manager", || "-");
    let dropped = Arc::new(AtomicUsize::new(0));
    for k in 0..3 {
        let (f2, p2, d2) = (f.clone(), parent.clone(), dropped.clone());
        let pending = futures::stream::pending::<i32>();
        let guard = OnDrop::new(move || {
            d2.fetch_add(1, SeqCst);
            f2.add_value(k);
            f2.add_sync_iterator([k]);
            p2.cancel();
            if k == 1 {
                panic!("drop {k}");
            }
        });
        f.add_async_generator(pending.map(move |x| {
            let _ = &guard;
            x
        }));
    }
    let (f3, d3) = (f.clone(), dropped.clone());
    f.add_coroutine(async move {
        let _g = OnDrop::new(move || {
            d3.fetch_add(1, SeqCst);
            f3.add_value(9);
        });
        std::future::pending::<i32>().await
    });
    tokio::task::yield_now().await;
    drop(s);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(dropped.load(SeqCst), 4);
    assert!(f.is_stopped());
    assert_eq!(f.live_sources(), 0);
    assert!(parent.cancelled());
    f.add_value(1);
}

/// A queue item whose `Drop` appends to the same queue through a handle and cancels the
/// queue's context, and one whose `Drop` panics: dropping the queue drops all of them
/// (no deadlock, appends refused after the drop), the panic is caught.
#[tokio::test(start_paused = true)]
async fn queue_drop_with_reentrant_item_drops() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<OnDrop>(&ctx).build();
    let h = q.handle();
    let qctx = q.ctx().clone();
    let refused = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    for k in 0..4 {
        let (h2, c2, r2, d2) = (h.clone(), qctx.clone(), refused.clone(), dropped.clone());
        q.append(OnDrop::new(move || {
            d2.fetch_add(1, SeqCst);
            if h2.append(OnDrop::new(|| {})).is_err() {
                r2.fetch_add(1, SeqCst);
            }
            c2.cancel();
            if k == 2 {
                panic!("item drop");
            }
        }))
        .unwrap();
    }
    let (h3, d3) = (h.clone(), dropped.clone());
    q.append_instruction(move || {
        let _keep = &h3;
        unreachable!("never run");
    })
    .unwrap();
    let _ = d3;
    drop(q);
    assert_eq!(dropped.load(SeqCst), 4);
    assert_eq!(refused.load(SeqCst), 4);
    assert!(qctx.cancelled());
    assert!(h.append(OnDrop::new(|| {})).is_err());
}

/// A consumer's instruction and hook that panic: caught, the consumer carries on and
/// sees every item in order; a hook's append is yielded.
#[tokio::test(start_paused = true)]
async fn queue_panicking_instruction_and_hook_do_not_stop_the_consumer() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let hooked = Arc::new(AtomicUsize::new(0));
    let hk = hooked.clone();
    q.process_after_yielded(move |lq| {
        let n = hk.fetch_add(1, SeqCst);
        if n == 0 {
            lq.append(100).unwrap();
            panic!("hook");
        }
    });
    q.append(1).unwrap();
    q.append_instruction(|| panic!("instruction")).unwrap();
    q.append(2).unwrap();
    let h = q.handle();
    let mut seen = Vec::new();
    {
        let mut all = q.get_all();
        while let Some(x) = tokio::time::timeout(Duration::from_secs(1), all.next())
            .await
            .ok()
            .flatten()
        {
            seen.push(x);
            if seen.len() == 3 {
                h.breaker().set();
            }
        }
    }
    assert_eq!(seen, [1, 2, 100]);
    assert_eq!(hooked.load(SeqCst), 3);
}

/// Context callbacks: one panics, one drops the last handle of another context (whose
/// own callback cancels a third), one drops a guard. All run before `cancel()` returns,
/// each exactly once, in registration order.
#[test]
fn ctx_callbacks_panic_and_reenter_through_drops() {
    let root = hp::Ctx::beginning("r");
    let a = root.child("a");
    let other = root.child("other");
    let third = root.child("third");
    let guarded = root.child("g").drop_guard();
    let guarded_ctx = guarded.ctx().clone();
    let order = Arc::new(Mutex::new(Vec::new()));
    let t2 = third.clone();
    let o = order.clone();
    other.add_done_callback(move |f| {
        o.lock().unwrap().push(format!("other {f}"));
        t2.cancel();
    });
    let o = order.clone();
    a.add_done_callback(move |_| o.lock().unwrap().push("1".to_owned()));
    a.add_done_callback(|_| panic!("cb"));
    let o = order.clone();
    a.add_done_callback(move |_| {
        drop(other);
        o.lock().unwrap().push("3".to_owned());
    });
    let o = order.clone();
    a.add_on_done(move |_, _| {
        drop(guarded);
        o.lock().unwrap().push("4".to_owned());
    });
    assert!(a.cancel());
    // Finishing started inside a callback (dropping `other`'s last handle) is queued
    // and runs after a's callbacks, before the outer cancel() returns (CTX rule 3).
    let got = order.lock().unwrap().clone();
    assert_eq!(got, ["1", "3", "4", "other cancelled"]);
    assert!(third.cancelled());
    assert!(guarded_ctx.cancelled());
    assert!(!a.cancel());
    assert_eq!(order.lock().unwrap().len(), 4);
}

// ---------------------------------------------------------------- chains of 100 000

const N: usize = 100_000;

/// Callback i cancels context i+1: 100 000 links on a 2 MiB stack.
#[test]
fn chain_ctx_callbacks_cancel_the_next_100k() {
    common::in_child_process(
        module_path!(),
        "chain_ctx_callbacks_cancel_the_next_100k",
        || {
            let root = hp::Ctx::beginning("r");
            let ctxs: Vec<hp::Ctx> = (0..N).map(|_| root.child("c")).collect();
            let ran = Arc::new(AtomicUsize::new(0));
            for i in 0..N {
                let next = ctxs.get(i + 1).cloned();
                let ran = ran.clone();
                ctxs[i].add_done_callback(move |_| {
                    ran.fetch_add(1, SeqCst);
                    if let Some(n) = next {
                        n.cancel();
                    }
                });
            }
            assert!(ctxs[0].cancel());
            assert_eq!(ran.load(SeqCst), N);
            assert!(ctxs[N - 1].cancelled());
        },
    );
}

/// A 100 000-deep context chain held only by its leaf: the leaf's drop finishes and
/// unregisters every level (callbacks run once each); `tree()` and `Debug` work while
/// it is alive; cancelling the root with it alive is iterative too.
#[test]
fn chain_nested_ctx_100k_deep_drop_leaf_and_cancel_root() {
    common::in_child_process(
        module_path!(),
        "chain_nested_ctx_100k_deep_drop_leaf_and_cancel_root",
        || {
            let root = hp::Ctx::beginning("r");
            let ran = Arc::new(AtomicUsize::new(0));
            let build = |ran: &Arc<AtomicUsize>| {
                let mut c = root.child("0");
                for _ in 1..N {
                    let r = ran.clone();
                    c.add_done_callback(move |_| {
                        r.fetch_add(1, SeqCst);
                    });
                    c = c.child("x");
                }
                c
            };
            let leaf = build(&ran);
            assert_eq!(root.child_count(), 1);
            let tree = root.tree();
            assert!(tree.lines().count() >= N, "tree lists every level");
            let longest = tree.lines().map(str::len).max().unwrap();
            assert!(longest < 400, "tree lines stay bounded: {longest}");
            drop(leaf);
            assert_eq!(ran.load(SeqCst), N - 1);
            assert_eq!(root.child_count(), 0);

            let ran2 = Arc::new(AtomicUsize::new(0));
            let leaf = build(&ran2);
            root.cancel();
            assert_eq!(ran2.load(SeqCst), N - 1);
            assert!(leaf.cancelled());
            drop(leaf);
            assert_eq!(root.child_count(), 0);
        },
    );
}

/// Fut i's callback sets Fut i+1; event i's callback sets event i+1.
#[test]
fn chain_futures_and_events_100k() {
    common::in_child_process(module_path!(), "chain_futures_and_events_100k", || {
        let futs: Vec<hp::Fut<u32>> = (0..N).map(|_| hp::Fut::new()).collect();
        for i in 0..N - 1 {
            let next = futs[i + 1].clone();
            futs[i].add_done_callback(move |o| {
                let v = match o {
                    hp::Outcome::Ok(v) => *v,
                    _ => 0,
                };
                next.set_result(v + 1);
            });
        }
        futs[0].set_result(0);
        assert_eq!(futs[N - 1].result().unwrap(), (N - 1) as u32);

        let evs: Vec<hp::Event> = (0..N).map(|_| hp::Event::new()).collect();
        for i in 0..N - 1 {
            let next = evs[i + 1].clone();
            evs[i].add_done_callback(move || next.set());
        }
        evs[0].set();
        assert!(evs[N - 1].is_set());
    });
}

fn instruction_link(h: hp::QueueHandle<u32>, n: usize) {
    if n == 0 {
        h.append(7).unwrap();
    } else {
        let h2 = h.clone();
        h.append_instruction(move || instruction_link(h2, n - 1))
            .unwrap();
    }
}

/// An instruction that appends the next instruction, 100 000 times, then an item: the
/// consumer (async iteration and `remaining()`) gets the item.
#[test]
fn chain_queue_instructions_appending_instructions_100k() {
    common::in_child_process(
        module_path!(),
        "chain_queue_instructions_appending_instructions_100k",
        || {
            current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("r");
                let mut q = hp::queue::<u32>(&ctx).build();
                instruction_link(q.handle(), N);
                assert_eq!(q.get_all().next().await, Some(7));
                instruction_link(q.handle(), N);
                assert_eq!(q.remaining().collect::<Vec<_>>(), [7]);
            });
        },
    );
}

#[allow(dead_code)] // held only to be dropped
struct Nest(Option<hp::Queue<Nest>>);
#[allow(dead_code)] // held only to be dropped
struct SyncNest(Option<hp::SyncQueue<SyncNest>>);

/// A queue holding the only handle of a queue holding ... 100 000 deep: dropping the
/// outermost drops them all iteratively (async and sync queues).
#[test]
fn chain_nested_queues_100k_drop() {
    common::in_child_process(module_path!(), "chain_nested_queues_100k_drop", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<Nest>(&ctx).build();
        for _ in 0..N {
            let outer = hp::queue::<Nest>(&ctx).build();
            outer.append(Nest(Some(q))).unwrap();
            q = outer;
        }
        drop(q);
        assert_eq!(ctx.child_count(), 0);
        let mut s = hp::sync_queue::<SyncNest>(&ctx).build();
        for _ in 0..N {
            let outer = hp::sync_queue::<SyncNest>(&ctx).build();
            outer.append(SyncNest(Some(s))).unwrap();
            s = outer;
        }
        drop(s);
        assert_eq!(ctx.child_count(), 0);
    });
}

fn hop(n: u32) -> Feed<i32> {
    if n == 0 {
        Feed::Value(0)
    } else {
        Feed::function(move || hop(n - 1))
    }
}

/// A function that returns the next function, 1 000 000 times (SEMANTICS' robustness
/// rule), added as a value and as a sync function.
#[test]
fn chain_qm_functions_returning_functions_1m() {
    common::in_child_process(
        module_path!(),
        "chain_qm_functions_returning_functions_1m",
        || {
            current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("r");
                let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
                f.add_value(hop(1_000_000));
                f.add_sync_function(|| hop(1_000_000));
                f.set_as_finished_if_out_of_sources();
                let mut depths = Vec::new();
                while let Some(r) = s.next().await {
                    if let R::Success { sources, .. } = &r {
                        depths.push(sources.depth());
                    } else {
                        assert!(r.is_stopped());
                    }
                }
                assert_eq!(depths, [1_000_001, 1_000_001]);
            });
        },
    );
}

fn nested_stream(n: u32) -> Feed<i32> {
    if n == 0 {
        Feed::Value(0)
    } else {
        Feed::stream(futures::stream::once(async move { nested_stream(n - 1) }))
    }
}

fn nested_generator(n: u32) -> Feed<i32> {
    if n == 0 {
        Feed::Value(1)
    } else {
        Feed::generator(std::iter::once_with(move || nested_generator(n - 1)))
    }
}

fn nested_future(n: u32) -> Feed<i32> {
    if n == 0 {
        Feed::Value(2)
    } else {
        Feed::future(async move { nested_future(n - 1) })
    }
}

/// Sources producing sources 100 000 deep: streams of streams, generators of
/// generators, futures resolving to futures; each ends once, the value arrives with the
/// full depth, and the manager then finishes; a stop in the middle of such chains ends
/// them without recursion.
#[test]
fn chain_qm_sources_producing_sources_100k() {
    common::in_child_process(
        module_path!(),
        "chain_qm_sources_producing_sources_100k",
        || {
            current_thread().block_on(async {
                let ctx = hp::Ctx::beginning("r");
                let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
                f.add_value(nested_stream(N as u32));
                f.add_value(nested_generator(N as u32));
                f.add_value(nested_future(N as u32));
                f.set_as_finished_if_out_of_sources();
                let (mut ok, mut ends, mut other) = (Vec::new(), 0, 0);
                while let Some(r) = s.next().await {
                    match &r {
                        R::Success { sources, value, .. } => ok.push((*value, sources.depth())),
                        R::IterationStop { error: None, .. } => ends += 1,
                        R::Stopped { error: None } => {}
                        _ => other += 1,
                    }
                }
                ok.sort();
                let d = N as u64 + 1;
                // the future chain: each level is COROUTINE then TASK
                assert_eq!(ok, [(0, d), (1, d), (2, 2 * N as u64 + 1)]);
                assert_eq!((ends, other), (2 * N, 0));

                let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
                f.add_value(nested_stream(N as u32));
                f.add_value(nested_generator(N as u32));
                f.add_value(nested_future(N as u32));
                for _ in 0..N {
                    if s.next().await.is_none() {
                        break;
                    }
                }
                s.ctx().cancel();
                while s.next().await.is_some() {}
                drop(s);
                assert_eq!(f.live_sources(), 0);
            });
        },
    );
}

// ---------------------------------------------------------------- wake paths

/// Every route by which an item (or the end) becomes available wakes a consumer that
/// waits on an empty async queue. Returns what the consumer saw.
async fn async_queue_wake(route: u8) -> Vec<i32> {
    let root = hp::Ctx::beginning("r");
    let parent = root.child("p");
    let mut q = hp::queue::<i32>(&parent).build();
    let h = q.handle();
    let qctx = q.ctx().clone();
    // The route waits until the iteration has started: starting one clears the breaker
    // (SEMANTICS), so a breaker set before it would be erased, not missed.
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut all = q.get_all();
        let _ = started_tx.send(());
        while let Some(x) = all.next().await {
            seen.push(x);
            if seen.len() == 2 {
                break;
            }
        }
        seen
    });
    started.await.expect("the consumer started its iteration");
    tokio::time::sleep(Duration::from_millis(50)).await;
    match route {
        0 => {
            h.append(1).unwrap();
            h.append(2).unwrap();
        }
        1 => {
            // (two fronts would race with the consumer on the multi-thread runtime)
            h.append_front(1).unwrap();
            h.append(2).unwrap();
        }
        2 => {
            let h2 = h.clone();
            h.append_instruction(move || {
                h2.append(1).unwrap();
                h2.append(2).unwrap();
            })
            .unwrap();
        }
        3 => {
            let h2 = h.clone();
            h.append_instruction_front(move || {
                h2.append_front(2).unwrap();
                h2.append_front(1).unwrap();
            })
            .unwrap();
        }
        4 => {
            let h2 = h.clone();
            std::thread::spawn(move || {
                h2.append(1).unwrap();
                h2.append(2).unwrap();
            })
            .join()
            .unwrap();
        }
        5 => {
            qctx.cancel();
        }
        6 => {
            h.breaker().set();
        }
        7 => {
            parent.cancel();
        }
        _ => unreachable!(),
    }
    tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .unwrap_or_else(|_| panic!("route {route}: the waiting consumer was not woken"))
        .unwrap()
}

const WAKE_EXPECT: [&[i32]; 8] = [&[1, 2], &[1, 2], &[1, 2], &[1, 2], &[1, 2], &[], &[], &[]];

#[tokio::test(start_paused = true)]
async fn wake_async_queue_every_route_current_thread() {
    for (route, want) in WAKE_EXPECT.iter().enumerate() {
        assert_eq!(async_queue_wake(route as u8).await, *want, "route {route}");
    }
}

#[test]
fn wake_async_queue_every_route_multi_thread() {
    common::multi_thread(async {
        for _ in 0..20 {
            for (route, want) in WAKE_EXPECT.iter().enumerate() {
                assert_eq!(async_queue_wake(route as u8).await, *want, "route {route}");
            }
        }
    });
}

/// With `empty_on_finished`, items appended after the context finished (while the
/// consumer drains) are yielded; the iteration ends when the queue is empty.
#[tokio::test(start_paused = true)]
async fn async_queue_empty_on_finished_yields_what_is_appended_during_the_drain() {
    let ctx = hp::Ctx::beginning("r");
    let mut q = hp::queue::<i32>(&ctx).empty_on_finished(true).build();
    let h = q.handle();
    q.append(1).unwrap();
    let h2 = h.clone();
    q.append_instruction(move || {
        h2.append(3).unwrap();
    })
    .unwrap();
    q.append(2).unwrap();
    ctx.cancel();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(x) = all.next().await {
        if x == 1 {
            h.append(4).unwrap();
        }
        seen.push(x);
    }
    // [1, I, 2]; 1 is yielded, the consumer appends 4 -> [I, 2, 4]; I appends 3.
    assert_eq!(seen, [1, 2, 4, 3]);
}

/// Sync queue: an item appended, or the context finishing, wakes a blocked consumer at
/// once whatever its `timeout` (zero, default, one hour), and `get` with a long timeout.
#[test]
fn wake_sync_queue_blocked_consumer_any_timeout() {
    common::with_watchdog(|| {
        for timeout in [Some(Duration::ZERO), None, Some(Duration::from_secs(3600))] {
            for route in 0..4 {
                let root = hp::Ctx::beginning("r");
                let parent = root.child("p");
                let mut b = hp::sync_queue::<i32>(&parent);
                if let Some(t) = timeout {
                    b = b.timeout(t);
                }
                let q = b.build();
                let q2 = q.clone();
                let started = std::time::Instant::now();
                let consumer = std::thread::spawn(move || {
                    if route == 3 {
                        return q2.get(Duration::from_secs(3600)).ok().into_iter().collect();
                    }
                    let mut seen = Vec::new();
                    for x in &q2 {
                        seen.push(x);
                        if seen.len() == 2 {
                            break;
                        }
                    }
                    seen
                });
                std::thread::sleep(Duration::from_millis(30));
                match route {
                    0 | 3 => {
                        q.append(1).unwrap();
                        q.append(2).unwrap();
                    }
                    1 => {
                        q.ctx().cancel();
                    }
                    _ => {
                        parent.cancel();
                    }
                }
                let seen = consumer.join().unwrap();
                let want: &[i32] = match route {
                    0 => &[1, 2],
                    3 => &[1],
                    _ => &[],
                };
                assert_eq!(seen, want, "route {route} timeout {timeout:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "route {route} timeout {timeout:?}: woken late"
                );
            }
        }
    });
}

/// `get` on an empty queue with timeout zero: Timeout; with an item: the item; after the
/// context finished: Finished (with `empty_on_finished`: the items first).
#[test]
fn sync_queue_get_outcomes() {
    let ctx = hp::Ctx::beginning("r");
    let q = hp::sync_queue::<i32>(&ctx).build();
    assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Timeout));
    q.append(5).unwrap();
    assert_eq!(q.get(Duration::ZERO), Ok(5));
    q.append(6).unwrap();
    ctx.cancel();
    assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Finished));
    assert_eq!(q.remaining().collect::<Vec<_>>(), [6]);

    let ctx = hp::Ctx::beginning("r");
    let q = hp::sync_queue::<i32>(&ctx).empty_on_finished(true).build();
    q.append(7).unwrap();
    ctx.cancel();
    assert_eq!(q.get(Duration::from_secs(3600)), Ok(7));
    assert_eq!(
        q.get(Duration::from_secs(3600)),
        Err(hp::SyncGetError::Finished)
    );
}

/// Four consumers and two producers share one sync queue: every item exactly once.
#[test]
fn sync_queue_several_consumers_every_item_once() {
    common::with_watchdog(|| {
        for empty_on_finished in [true, false] {
            let ctx = hp::Ctx::beginning("r");
            let q = hp::sync_queue::<u32>(&ctx)
                .empty_on_finished(empty_on_finished)
                .build();
            let consumers: Vec<_> = (0..4)
                .map(|_| {
                    let q = q.clone();
                    std::thread::spawn(move || q.get_all().collect::<Vec<_>>())
                })
                .collect();
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let q = q.clone();
                    std::thread::spawn(move || {
                        for i in 0..10_000 {
                            q.append(p * 10_000 + i).unwrap();
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            ctx.cancel();
            let mut all: Vec<u32> = consumers
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            all.extend(q.remaining());
            all.sort_unstable();
            assert_eq!(all, (0..20_000).collect::<Vec<_>>());
        }
    });
}

/// An item taken at the instant the context finishes is yielded or kept, never lost.
#[test]
fn sync_queue_item_at_the_instant_of_finishing_is_never_lost() {
    common::with_watchdog(|| {
        let mut rng = common::Rng(0x5eed);
        for _ in 0..300 {
            let ctx = hp::Ctx::beginning("r");
            let q = hp::sync_queue::<u32>(&ctx).timeout(Duration::ZERO).build();
            let cut = rng.below(50) as u32;
            let (q2, c2) = (q.clone(), ctx.clone());
            let producer = std::thread::spawn(move || {
                for i in 0..50 {
                    if i == cut {
                        c2.cancel();
                    }
                    q2.append(i).unwrap();
                }
            });
            let mut seen: Vec<u32> = q.get_all().collect();
            producer.join().unwrap();
            seen.extend(q.remaining());
            seen.sort_unstable();
            assert_eq!(seen, (0..50).collect::<Vec<_>>());
        }
    });
}

/// The queue manager wakes a waiting consumer by every route: a value added from another
/// task, from another thread, a task finishing, a stream waking, a stop, and
/// `set_as_finished_if_out_of_sources`.
async fn qm_wake(route: u8) -> Vec<String> {
    let ctx = hp::Ctx::beginning("r");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
    let gate = Arc::new(tokio::sync::Notify::new());
    match route {
        2 => {
            f.add_coroutine(async move { rx.await.unwrap_or(-1) });
        }
        3 => {
            let g = gate.clone();
            f.add_async_generator(
                futures::stream::once(async move {
                    g.notified().await;
                    5
                })
                .boxed(),
            );
        }
        _ => {}
    }
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(r) = s.next().await {
            let stop = r.is_stopped() || matches!(r, R::Success { .. });
            seen.push(line(&r));
            if stop {
                break;
            }
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    match route {
        0 => {
            f.add_value(1);
        }
        1 => {
            let f2 = f.clone();
            std::thread::spawn(move || {
                f2.add_value(1);
            })
            .join()
            .unwrap();
        }
        2 => tx.send(5).unwrap(),
        3 => gate.notify_one(),
        4 => ctx.cancel().then_some(()).unwrap(),
        5 => f.set_as_finished_if_out_of_sources(),
        _ => unreachable!(),
    }
    tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .unwrap_or_else(|_| panic!("route {route}: the waiting consumer was not woken"))
        .unwrap()
}

const QM_WAKE_EXPECT: [&str; 6] = [
    "ok 1 [VALUE#1] @-",
    "ok 1 [VALUE#1] @-",
    "ok 5 [TASK#2, COROUTINE#1] @-",
    "ok 5 [ASYNC_GENERATOR#1] @-",
    "stopped cancelled",
    "stopped -",
];

#[tokio::test(start_paused = true)]
async fn wake_queue_manager_every_route_current_thread() {
    for (route, want) in QM_WAKE_EXPECT.iter().enumerate() {
        assert_eq!(qm_wake(route as u8).await, [*want], "route {route}");
    }
}

#[test]
fn wake_queue_manager_every_route_multi_thread() {
    common::multi_thread(async {
        for _ in 0..20 {
            for (route, want) in QM_WAKE_EXPECT.iter().enumerate() {
                assert_eq!(qm_wake(route as u8).await, [*want], "route {route}");
            }
        }
    });
}

// ---------------------------------------------------------------- turn model, multi-thread

/// The iterator/function/stream scenario and the stop in the middle have no timing in
/// them: the multi-thread runtime must see the same order.
#[test]
fn turns_same_order_on_multi_thread() {
    common::multi_thread(async {
        for _ in 0..50 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) =
                hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
            f.add_sync_iterator([1, 2]);
            f.add_sync_function(|| Feed::function(|| Feed::function(|| 5)));
            f.add_async_generator(futures::stream::iter([7, 8]));
            f.set_as_finished_if_out_of_sources();
            assert_eq!(
                drain(&mut s).await,
                [
                    "ok 1 [SYNC_ITERATOR#1] @-",
                    "ok 5 [SYNC_FUNCTION#5, SYNC_FUNCTION#4, SYNC_FUNCTION#2] @-",
                    "ok 7 [ASYNC_GENERATOR#3] @-",
                    "ok 2 [SYNC_ITERATOR#1] @-",
                    "end - [SYNC_ITERATOR#1]",
                    "ok 8 [ASYNC_GENERATOR#3] @-",
                    "end - [ASYNC_GENERATOR#3]",
                    "stopped -",
                ]
            );

            let (mut s, f) =
                hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
            f.add_sync_iterator([1, 2, 3]);
            f.add_sync_iterator([10, 20]);
            assert_eq!(line(&s.next().await.unwrap()), "ok 1 [SYNC_ITERATOR#1] @-");
            s.ctx().cancel();
            f.add_value(99);
            assert_eq!(
                drain(&mut s).await,
                [
                    "stopped cancelled",
                    "ok 10 [SYNC_ITERATOR#2] @-",
                    "ok 99 [VALUE#3] @-",
                    "ok 2 [SYNC_ITERATOR#1] @-",
                    "end cancelled [SYNC_ITERATOR#1]",
                    "ok 20 [SYNC_ITERATOR#2] @-",
                    "end cancelled [SYNC_ITERATOR#2]",
                ]
            );
        }
    });
}

// ---------------------------------------------------------------- cancellation at await points

/// Dropping `next()` while it waits (for a task, for a stream's waker) loses nothing:
/// the result comes with the next call.
#[tokio::test(start_paused = true)]
async fn cancel_streamer_next_while_waiting_loses_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_coroutine(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        1
    });
    f.add_async_generator(ticker_stream(1, Duration::from_secs(4)));
    // The first step of #3 is queued: [St3]; it finds the stream pending.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), s.next())
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_secs(5)).await; // both are ready now, nobody polled
    f.set_as_finished_if_out_of_sources();
    let seen = drain(&mut s).await;
    assert_eq!(
        seen,
        [
            "ok 1 [TASK#2, COROUTINE#1] @-",
            "ok 0 [ASYNC_GENERATOR#3] @-",
            "end - [ASYNC_GENERATOR#3]",
            "stopped -",
        ]
    );
}

/// A `GetAll` dropped in the middle of a batch, or its `next()` dropped while waiting:
/// a new iteration continues where the last one stopped.
#[tokio::test(start_paused = true)]
async fn cancel_queue_iteration_mid_batch_and_while_waiting_loses_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let h = q.handle();
    for i in 1..=4 {
        q.append(i).unwrap();
    }
    {
        let mut all = q.get_all();
        assert_eq!(all.next().await, Some(1));
    }
    {
        let mut all = q.get_all();
        assert_eq!(all.next().await, Some(2));
    }
    assert_eq!(q.len(), 2);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [3, 4]);
    {
        let mut all = q.get_all();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), all.next())
                .await
                .is_err()
        );
    }
    h.append(5).unwrap();
    assert_eq!(q.get_all().next().await, Some(5));
}

/// Dropping `close()` after its first poll still stops the manager: the running task is
/// cancelled (its future dropped) soon after; awaiting `close()` returns only after it.
#[tokio::test(start_paused = true)]
async fn cancel_close_future_still_cancels_running_tasks() {
    for await_it in [false, true] {
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) =
            hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        f.add_coroutine(async move {
            let _g = OnDrop::new(move || {
                d.fetch_add(1, SeqCst);
            });
            std::future::pending::<i32>().await
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(10), s.next())
                .await
                .is_err()
        );
        if await_it {
            s.close().await;
            assert_eq!(
                dropped.load(SeqCst),
                1,
                "close returned before the task ended"
            );
        } else {
            let mut close = Box::pin(s.close());
            let _ = futures::poll!(close.as_mut());
            drop(close);
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            assert_eq!(dropped.load(SeqCst), 1);
        }
        assert!(f.is_stopped());
        assert_eq!(f.live_sources(), 0);
    }
}

/// The scoped form returns the body's error and closes the manager (the task's future is
/// dropped before it returns).
#[tokio::test(start_paused = true)]
async fn scoped_manager_body_error_closes_and_returns_it() {
    let ctx = hp::Ctx::beginning("t");
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let out: Result<(), hp::Error> =
        hp::queue_manager_scoped::<i32, (), _, _, _, _>(&ctx, "m", |mut s, f| async move {
            // (the guard is made outside the future: it may be dropped unpolled)
            let g = OnDrop::new(move || {
                d.fetch_add(1, SeqCst);
            });
            f.add_coroutine(async move {
                let _g = g;
                std::future::pending::<i32>().await
            });
            f.add_value(1);
            assert_eq!(s.next().await.and_then(R::into_value), Some(1));
            Err::<(), _>(Boom("body"))
        })
        .await;
    assert_eq!(out.unwrap_err().to_string(), "body");
    assert_eq!(dropped.load(SeqCst), 1);
}

/// `async_with_timeout` dropped while it runs: the plain work is dropped at once (its
/// synchronous cleanup runs); the scoped work's context is cancelled.
#[tokio::test(start_paused = true)]
async fn cancel_async_with_timeout_mid_way() {
    let ctx = hp::Ctx::beginning("t");
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let fut = ctx
        .async_with_timeout(async move {
            let _g = OnDrop::new(move || {
                d.fetch_add(1, SeqCst);
            });
            tokio::time::sleep(Duration::from_secs(100)).await;
        })
        .timeout(Duration::from_secs(50))
        .into_future();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .is_err()
    );
    assert_eq!(dropped.load(SeqCst), 1);

    let seen = Arc::new(Mutex::new(None));
    let s2 = seen.clone();
    let fut = ctx
        .async_with_timeout_scoped(move |c: hp::Ctx| async move {
            *s2.lock().unwrap() = Some(c.clone());
            c.wait().await;
        })
        .timeout(Duration::from_secs(50))
        .into_future();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .is_err()
    );
    let c = seen.lock().unwrap().clone().expect("work started");
    assert!(c.done());
    assert!(!ctx.done());
}

// ---------------------------------------------------------------- queue rules

#[tokio::test(start_paused = true)]
async fn queue_priority_len_breaker_restart_and_hooks() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    q.append(1).unwrap();
    q.append_front(2).unwrap();
    q.append_front(3).unwrap();
    q.append_instruction(|| {}).unwrap();
    assert_eq!((q.len(), q.is_empty()), (4, false));
    assert_eq!(q.remaining().collect::<Vec<_>>(), [3, 2, 1]);
    assert!(q.is_empty());

    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    q.process_after_yielded(move |lq| {
        l.lock().unwrap().push(format!("hook len={}", lq.len()));
        if lq.len() == 2 {
            lq.breaker().set();
        }
    });
    for i in 1..=4 {
        q.append(i).unwrap();
    }
    {
        let mut all = q.get_all();
        while let Some(x) = all.next().await {
            log.lock().unwrap().push(format!("saw {x}"));
        }
    }
    // hooks run when the next item is asked for: after 1 (len 3), after 2 (len 2: sets
    // the breaker, so nothing more is yielded)
    assert_eq!(
        *log.lock().unwrap(),
        ["saw 1", "hook len=3", "saw 2", "hook len=2"]
    );
    assert!(q.breaker().is_set());
    // a new iteration clears the breaker and continues where the last one stopped
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(3));
}

/// A consumer with 10 000 ready items lets another ready task run before it is done.
#[tokio::test(start_paused = true)]
async fn queue_consumer_of_ready_items_respects_the_coop_budget() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..10_000 {
        q.append(i).unwrap();
    }
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    tokio::spawn(async move { r.store(true, SeqCst) });
    let h = q.handle();
    let mut ran_at = None;
    let mut all = q.get_all();
    while let Some(i) = all.next().await {
        if ran_at.is_none() && ran.load(SeqCst) {
            ran_at = Some(i);
        }
        if i == 9_999 {
            h.breaker().set();
        }
    }
    assert!(ran_at.is_some_and(|i| i < 9_999), "{ran_at:?}");
}

// ---------------------------------------------------------------- ctx rules

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Other(&'static str);

#[tokio::test(start_paused = true)]
async fn ctx_outcome_resolution_nearest_own_slot() {
    let a = hp::Ctx::beginning("a");
    let b = a.child("b");
    let c = b.child("c");
    let d = c.child("d");
    assert!(c.exception().is_err(), "pending: not finished");
    assert!(b.cancel());
    assert!(c.done() && c.cancelled() && d.cancelled());
    assert!(c.exception().is_err(), "cancelled: the cancelled failure");
    assert!(c.set_exception(Boom("own")));
    assert!(!c.cancelled() && !d.cancelled());
    assert_eq!(d.exception().unwrap().unwrap().to_string(), "own");
    assert!(!c.cancel() && !c.set_exception(Boom("again")));
    // grandchild after both grandparent and parent failed: the parent's error, in
    // either order
    for parent_first in [true, false] {
        let g = hp::Ctx::beginning("g");
        let p = g.child("p");
        let k = p.child("k");
        if parent_first {
            p.set_exception(Other("parent"));
            g.set_exception(Other("grand"));
        } else {
            g.set_exception(Other("grand"));
            p.set_exception(Other("parent"));
        }
        assert_eq!(k.wait().await.to_string(), "parent");
    }
}

#[test]
fn ctx_callbacks_once_in_order_and_removal() {
    let a = hp::Ctx::beginning("a");
    let b = a.child("b");
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let h1 = b.add_on_done(move |_, f| o.lock().unwrap().push(format!("1 {f}")));
    let o = order.clone();
    let h2 = b.add_done_callback(move |f| o.lock().unwrap().push(format!("2 {f}")));
    let o = order.clone();
    b.add_on_done(move |_, f| o.lock().unwrap().push(format!("3 {f}")));
    assert!(b.has_direct_done_callback(h1));
    assert!(!a.has_direct_done_callback(h1));
    assert_eq!(b.remove_done_callback(h2), 1);
    assert_eq!(b.remove_done_callback(h2), 0);
    a.cancel();
    assert_eq!(*order.lock().unwrap(), ["1 cancelled", "3 cancelled"]);
    assert!(!b.has_direct_done_callback(h1));
    b.set_exception(Boom("later"));
    let o = order.clone();
    b.add_done_callback(move |f| o.lock().unwrap().push(format!("late {f}")));
    assert_eq!(
        *order.lock().unwrap(),
        ["1 cancelled", "3 cancelled", "late later"]
    );
}

#[test]
fn ctx_unreferenced_child_finishes_and_unregisters_and_guard_cancels_with_clones() {
    let root = hp::Ctx::beginning("r");
    let ran = Arc::new(AtomicUsize::new(0));
    let c = root.child("x");
    let r = ran.clone();
    c.add_done_callback(move |f| {
        assert!(f.is_cancelled());
        r.fetch_add(1, SeqCst);
    });
    let grandchild = c.child("y");
    drop(c);
    assert_eq!(ran.load(SeqCst), 0, "a live child keeps its parent alive");
    drop(grandchild);
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(root.child_count(), 0);
    let g = root.child("g").drop_guard();
    let clone = g.ctx().clone();
    drop(g);
    assert!(clone.cancelled());
}

#[tokio::test(start_paused = true)]
async fn ctx_wait_for_siblings_finished_through_parent_and_names() {
    let root = hp::Ctx::beginning("a");
    let p = root.child("p");
    let x = p.child("x");
    let y = p.child("y");
    hp::wait_for_all(&[]).await;
    hp::wait_for_first(&[]).await;
    p.cancel();
    tokio::time::timeout(Duration::from_secs(1), hp::wait_for_all(&[&x, &y]))
        .await
        .expect("siblings finished through their parent");
    assert_eq!(x.name(), "a-->p-->x");
    let pre = root.child_with("b", hp::CtxOptions::new().prefix("q"));
    assert_eq!(pre.name(), "a-->[q]-->b");
    assert_eq!(
        format!("{x:?}"),
        "CTX[a-->p-->x](PENDING(FUT{a})|CANCELLED(FUT{a-->p})|PENDING(FUT{a-->p-->x}))"
    );
}

#[tokio::test(start_paused = true)]
async fn ctx_deadline_is_an_error_not_a_cancellation() {
    let root = hp::Ctx::beginning("a");
    let c = root.child_with_timeout("t", Duration::from_secs(3));
    let t0 = Instant::now();
    let f = c.wait().await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(3));
    assert!(!c.cancelled());
    assert!(f.error().is_some_and(|e| e.is::<hp::DeadlineExceeded>()));
}

#[test]
fn fut_to_string_forms() {
    use hp::NamedFuture;
    let f = hp::Fut::<u8>::new();
    assert_eq!(hp::fut_to_string(&f), "<Future#None(pending)>");
    f.set_future_name("n");
    f.set_exception(Boom("bad"));
    assert_eq!(hp::fut_state_to_string(&f), "(exception:Boom:bad)");
    let g = hp::Fut::<u8>::named("g");
    g.cancel();
    assert_eq!(hp::fut_to_string(&g), "<Future#g(cancelled)>");
}

// ---------------------------------------------------------------- ticker

async fn ticks(t: &mut hp::Ticker, t0: Instant, n: usize) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for _ in 0..n {
        match t.next().await {
            Some((i, till)) => out.push((
                i,
                (Instant::now() - t0).as_millis() as u64,
                till.as_millis() as u64,
            )),
            None => break,
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn ticker_late_consumer_grid_and_min_wait() {
    let ctx = hp::Ctx::beginning("a");
    for (min_wait, want) in [
        (None, [(2, 14_000, 1_000), (3, 15_000, 5_000)]),
        (
            Some(Duration::from_secs(2)),
            [(2, 14_000, 6_000), (3, 20_000, 5_000)],
        ),
    ] {
        let t0 = Instant::now();
        let mut t = hp::tick(Duration::from_secs(5), &ctx)
            .min_wait(min_wait)
            .build()
            .unwrap();
        assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 5_000)]);
        tokio::time::sleep(Duration::from_secs(14)).await;
        assert_eq!(ticks(&mut t, t0, 2).await, want);
    }
}

#[tokio::test(start_paused = true)]
async fn ticker_change_once_and_change_after() {
    let ctx = hp::Ctx::beginning("a");
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx).build().unwrap();
    let c = t.control();
    let mut seen = ticks(&mut t, t0, 3).await;
    c.change_once(Duration::from_secs(5)).unwrap();
    seen.extend(ticks(&mut t, t0, 3).await);
    assert_eq!(
        seen,
        [
            (1, 0, 3_000),
            (2, 3_000, 3_000),
            (3, 6_000, 3_000),
            (4, 11_000, 1_000),
            (5, 12_000, 3_000),
            (6, 15_000, 3_000)
        ]
    );
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx).build().unwrap();
    let mut seen = ticks(&mut t, t0, 3).await;
    t.change_after(Duration::from_secs(5)).unwrap();
    seen.extend(ticks(&mut t, t0, 2).await);
    assert_eq!(
        seen,
        [
            (1, 0, 3_000),
            (2, 3_000, 3_000),
            (3, 6_000, 3_000),
            (4, 11_000, 5_000),
            (5, 16_000, 5_000)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ticker_limits_end_at_once() {
    let ctx = hp::Ctx::beginning("a");
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx)
        .max_time(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(ticks(&mut t, t0, 9).await.len(), 4);
    assert_eq!(Instant::now() - t0, Duration::from_secs(9));
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx)
        .max_iterations(3)
        .build()
        .unwrap();
    assert_eq!(ticks(&mut t, t0, 9).await.len(), 3);
    assert_eq!(Instant::now() - t0, Duration::from_secs(6));
    assert_eq!(
        hp::tick(Duration::ZERO, &ctx).min_wait(None).build().err(),
        Some(hp::TickerError::ZeroEveryWithoutMinWait)
    );
}

/// Paused after the first tick: when a permit comes at 7 one tick is yielded at once,
/// then the grid (0, 5, 10, ...) resumes: the next tick at 10.
#[tokio::test(start_paused = true)]
async fn ticker_pauser_resumes_the_grid_and_ctx_ends_while_paused() {
    let ctx = hp::Ctx::beginning("a");
    let pauser = Arc::new(tokio::sync::Semaphore::new(1));
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(5), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 5_000)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    pauser.acquire().await.unwrap().forget();
    let p2 = pauser.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        p2.add_permits(1);
    });
    assert_eq!(
        ticks(&mut t, t0, 2).await,
        [(2, 7_000, 3_000), (3, 10_000, 5_000)]
    );
    assert_eq!(pauser.available_permits(), 1, "the ticker keeps no permit");
    pauser.acquire().await.unwrap().forget();
    let c = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        c.cancel();
    });
    let t1 = Instant::now();
    assert_eq!(t.next().await, None);
    assert_eq!(Instant::now() - t1, Duration::from_secs(30));
}

/// Paused from the first poll: the grid starts at the first tick (the builder's docs,
/// corrected by this review: they said "at the first poll", which the module docs, the
/// `max_time` rule and the behaviour contradict): permit at 7 -> ticks at 7 and 12.
#[tokio::test(start_paused = true)]
async fn ticker_paused_from_the_first_poll_anchors_the_grid_at_the_first_tick() {
    let ctx = hp::Ctx::beginning("a");
    let pauser = Arc::new(tokio::sync::Semaphore::new(0));
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(5), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    let p2 = pauser.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await;
        p2.add_permits(1);
    });
    assert_eq!(
        ticks(&mut t, t0, 2).await,
        [(1, 7_000, 5_000), (2, 12_000, 5_000)]
    );
}

// ---------------------------------------------------------------- more queue manager rules

/// A stop while a stream waits for its waker and a task runs: Stopped at the front, the
/// queued IterationStop, then the waiting stream's IterationStop and the task's Failure
/// (both at once, in the order added), all carrying the cancellation; Stopped comes once
/// although the manager is then closed; sources added after the stop follow the rules.
/// [St1, St4] -> St1 pending -> [St4]; St4:1 -> [E1, St4] -> [St4, S1] -> [S1, IS4]; S1.
#[tokio::test(start_paused = true)]
async fn stop_with_waiting_stream_and_running_task() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_async_generator(ticker_stream(5, Duration::from_secs(100)));
    f.add_coroutine(async {
        tokio::time::sleep(Duration::from_secs(100)).await;
        1
    });
    f.add_sync_iterator([1]);
    assert_eq!(line(&s.next().await.unwrap()), "ok 1 [SYNC_ITERATOR#4] @-");
    s.ctx().cancel();
    s.ctx().cancel();
    assert_eq!(
        drain(&mut s).await,
        [
            "stopped cancelled",
            "end - [SYNC_ITERATOR#4]",
            "end cancelled [ASYNC_GENERATOR#1]",
            "fail cancelled [TASK#3, COROUTINE#2]",
        ]
    );
    assert_eq!(f.live_sources(), 0);
    // after the stop: an iterator ends with the stop's failure when its step is taken, a
    // finished task delivers, a value is delivered, a future is not spawned (a failure)
    let done = hp::Task::spawn(async { 7 });
    done.wait().await; // finished, its output still there for the manager's join
    f.add_sync_iterator([1]);
    f.add_task(done);
    f.add_value(8);
    let spawned = Arc::new(AtomicBool::new(false));
    let sp = spawned.clone();
    f.add_coroutine(async move {
        sp.store(true, SeqCst);
        9
    });
    s.resume();
    let seen = drain(&mut s).await;
    // [St5, S7, S8, F8] -> St5 finds the manager stopped -> [S7, S8, F8, IS5]
    assert_eq!(
        seen,
        [
            "ok 7 [TASK#6] @-",
            "ok 8 [VALUE#7] @-",
            "fail cancelled [COROUTINE#8]",
            "end cancelled [SYNC_ITERATOR#5]"
        ]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!spawned.load(SeqCst));
    s.close().await;
}

/// A task source: finished already -> delivered inside the call; failed, panicked or
/// cancelled -> Failure; `set_as_finished` waits for a live stream.
/// [St1, S5]; St1:1 -> [S5, E1, St1]; S5; E1 -> [St1, S1]; St1 -> [S1, IS1].
#[tokio::test(start_paused = true)]
async fn task_sources_in_turn_and_finished_waits_for_live_stream() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let five = hp::Task::spawn(async { 5 });
    five.wait().await; // finished, its output still there for the manager's join
    f.add_sync_iterator([1]);
    f.add_task(five);
    f.add_async_generator(ticker_stream(1, Duration::from_secs(3)));
    f.set_as_finished_if_out_of_sources();
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        seen.push(format!(
            "{} t={}",
            line(&r),
            (Instant::now() - t0).as_secs()
        ));
    }
    // [St1, S5, St3]; St1:1 -> [S5, St3, E1, St1]; S5; St3 pending; E1 -> [St1, S1];
    // St1 -> [S1, IS1]; S1; IS1; wait; at 3: 0 -> [E0, St3] -> [St3, S0] -> [S0, IS3]
    assert_eq!(
        seen,
        [
            "ok 5 [TASK#2] @- t=0",
            "ok 1 [SYNC_ITERATOR#1] @- t=0",
            "end - [SYNC_ITERATOR#1] t=0",
            "ok 0 [ASYNC_GENERATOR#3] @- t=3",
            "end - [ASYNC_GENERATOR#3] t=3",
            "stopped - t=3",
        ]
    );

    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let bad: hp::Task<i32> = hp::Task::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        panic!("task")
    });
    let cancelled: hp::Task<i32> = hp::Task::spawn(std::future::pending());
    f.add_task(bad);
    f.add_task(cancelled.clone());
    cancelled.cancel();
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "fail cancelled [TASK#2]",
            "fail panicked: task [TASK#1]",
            "stopped -"
        ]
    );
}

/// Values whose `Drop` re-enters the manager (adds a value, cancels its context) while
/// the streamer is dropped with them queued, and `make_empty_context` panicking once:
/// that result is lost, the next poll goes on.
#[tokio::test(start_paused = true)]
async fn result_drops_reenter_and_make_empty_context_panics_once() {
    let ctx = hp::Ctx::beginning("t");
    let (s, f) = hp::queue_manager::<OnDrop, ()>(&ctx);
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (f2, c2, d2) = (f.clone(), ctx.clone(), dropped.clone());
        f.add_value(OnDrop::new(move || {
            d2.fetch_add(1, SeqCst);
            f2.add_value(OnDrop::new(|| {}));
            c2.cancel();
        }));
    }
    drop(s);
    assert_eq!(dropped.load(SeqCst), 3);

    use futures::FutureExt;
    let ctx = hp::Ctx::beginning("t");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, u32>(&ctx, "queue_manager", move || {
            if c.fetch_add(1, SeqCst) == 1 {
                panic!("make_empty_context");
            }
            7
        });
    f.add_value(1);
    f.add_value(2);
    f.add_value(3);
    f.set_as_finished_if_out_of_sources();
    assert_eq!(s.next().await.and_then(R::into_value), Some(1));
    let second = std::panic::AssertUnwindSafe(s.next()).catch_unwind().await;
    assert!(second.is_err());
    assert_eq!(s.next().await.and_then(R::into_value), Some(3));
    assert!(s.next().await.is_some_and(|r| r.is_stopped()));
}

/// Several producer threads and tasks feed one manager while the consumer takes: every
/// value exactly once, then Stopped (multi-thread runtime).
#[test]
fn qm_concurrent_producers_every_value_once() {
    common::multi_thread(async {
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
        let consumer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(r) = s.next().await {
                match r {
                    R::Success { value, .. } => got.push(value),
                    R::Stopped { error: None } => {}
                    R::IterationStop { error: None, .. } => {}
                    _ => panic!("unexpected result"),
                }
            }
            got
        });
        let mut threads = Vec::new();
        for p in 0..3 {
            let f = f.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..2_000 {
                    match i % 3 {
                        0 => f.add_value(p * 10_000 + i),
                        1 => f.add_sync_function(move || p * 10_000 + i),
                        _ => f.add_sync_iterator([p * 10_000 + i]),
                    };
                }
            }));
        }
        for i in 0..500 {
            f.add_coroutine(async move { 90_000 + i });
            f.add_async_generator(futures::stream::iter([95_000 + i]));
        }
        for t in threads {
            t.join().unwrap();
        }
        f.set_as_finished_if_out_of_sources();
        let mut got = consumer.await.unwrap();
        got.sort_unstable();
        let mut want: Vec<i32> = (0..3)
            .flat_map(|p| (0..2_000).map(move |i| p * 10_000 + i))
            .chain((0..500).map(|i| 90_000 + i))
            .chain((0..500).map(|i| 95_000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

// ---------------------------------------------------------------- more queue rules

/// With `empty_on_finished`, a breaker set in the middle does not end the iteration
/// while anything is queued; it ends (without waiting) once the queue is empty.
#[tokio::test(start_paused = true)]
async fn queue_empty_on_finished_breaker_drains_then_ends() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).empty_on_finished(true).build();
    for i in 1..=3 {
        q.append(i).unwrap();
    }
    let h = q.handle();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(x) = tokio::time::timeout(Duration::from_secs(1), all.next())
        .await
        .expect("ends without waiting")
    {
        if x == 1 {
            h.breaker().set();
        }
        seen.push(x);
    }
    assert_eq!(seen, [1, 2, 3]);
}

/// `iterations()` starts a new iteration after each end (breaker cleared).
#[tokio::test(start_paused = true)]
async fn queue_iterations_restart_after_breaker() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let h = q.handle();
    for i in 1..=3 {
        q.append(i).unwrap();
    }
    let mut it = q.iterations();
    assert_eq!(it.next().await, Some(1));
    h.breaker().set();
    assert_eq!(it.next().await, None);
    assert_eq!(it.next().await, Some(2));
    assert_eq!(it.next().await, Some(3));
}

/// A hook and an instruction capturing values whose `Drop` re-enters the queue (append
/// through a handle) and panics, dropped with the queue or after running.
#[tokio::test(start_paused = true)]
async fn queue_hook_and_instruction_captures_reenter_on_drop() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let h = q.handle();
    let refused = Arc::new(AtomicUsize::new(0));
    let (h2, r2) = (h.clone(), refused.clone());
    let g = OnDrop::new(move || {
        if h2.append(1).is_err() {
            r2.fetch_add(1, SeqCst);
        }
    });
    q.process_after_yielded(move |_| {
        let _ = &g;
    });
    // an instruction whose captured value re-enters and panics once the instruction ran
    let h3 = h.clone();
    let g2 = OnDrop::new(move || {
        h3.append(42).unwrap();
        panic!("capture drop");
    });
    q.append_instruction(move || {
        let _g = g2;
    })
    .unwrap();
    q.append(5).unwrap();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(5));
    assert_eq!(all.next().await, Some(42));
    drop(all);
    drop(q);
    assert_eq!(refused.load(SeqCst), 1);
}

/// While the consumer holds a private batch, the handle's `len` counts it, and an item or
/// instruction appended at the front by a producer is still the very next entry.
#[tokio::test(start_paused = true)]
async fn queue_front_appends_and_len_while_consumer_holds_a_batch() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let h = q.handle();
    for i in 1..=4 {
        q.append(i).unwrap();
    }
    let h2 = h.clone();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    assert_eq!((h.len(), h.is_empty()), (3, false));
    h.append_front(0).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(all.next().await, Some(0));
    h.append_instruction_front(move || {
        h2.append_front(-1).unwrap();
    })
    .unwrap();
    assert_eq!(all.next().await, Some(-1));
    assert_eq!(all.next().await, Some(2));
    h.breaker().set();
    assert_eq!(all.next().await, None);
    drop(all);
    assert_eq!(q.len(), 2);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [3, 4]);
}

/// `change_after` / `change_once` through the control handle while the consumer waits
/// for a far grid point: the consumer is woken for the new one; a change whose next tick
/// is already past ticks at once.
#[tokio::test(start_paused = true)]
async fn ticker_change_while_waiting_wakes_the_consumer() {
    let ctx = hp::Ctx::beginning("a");
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(10), &ctx).build().unwrap();
    let c = t.control();
    assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 10_000)]);
    let c2 = c.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c2.change_after(Duration::from_secs(3)).unwrap();
    });
    // next at 0 + 3 = 3, then the grid continues every 3: 6
    assert_eq!(
        ticks(&mut t, t0, 2).await,
        [(2, 3_000, 3_000), (3, 6_000, 3_000)]
    );
    tokio::time::sleep(Duration::from_secs(5)).await; // now 11
    c.change_once(Duration::from_secs(1)).unwrap(); // next at 6 + 1 = 7: already past
    // a one-off: the tick comes at once (11), then the original grid (3-period from 3)
    // resumes: first point strictly... at least 100 ms after 11 -> 12
    assert_eq!(
        ticks(&mut t, t0, 2).await,
        [(4, 11_000, 1_000), (5, 12_000, 3_000)]
    );
}

/// `async_with_timeout` on a done context returns its outcome without polling the work;
/// the scoped form's `timeout_event` is seen by a waiting task before the work observes
/// its context finishing.
#[tokio::test(start_paused = true)]
async fn async_with_timeout_done_ctx_and_event_before_the_work_sees_it() {
    let ctx = hp::Ctx::beginning("t");
    let done = ctx.child("d");
    done.set_exception(Boom("gone"));
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let out = done
        .async_with_timeout(async move {
            p.store(true, SeqCst);
            1
        })
        .await;
    assert_eq!(out.unwrap_err().to_string(), "gone");
    assert!(!polled.load(SeqCst));

    let order = Arc::new(Mutex::new(Vec::<&str>::new()));
    let ev = hp::Event::new();
    let (o, e2) = (order.clone(), ev.clone());
    tokio::spawn(async move {
        e2.wait().await;
        o.lock().unwrap().push("event seen");
    });
    let o = order.clone();
    let out = ctx
        .async_with_timeout_scoped(move |c: hp::Ctx| async move {
            c.wait().await;
            o.lock().unwrap().push("work saw its ctx finish");
            5
        })
        .timeout(Duration::from_secs(2))
        .timeout_event(&ev)
        .await;
    assert!(out.as_ref().is_err() || matches!(out, Ok(5)));
    assert!(ev.is_set());
    assert_eq!(
        *order.lock().unwrap(),
        ["event seen", "work saw its ctx finish"]
    );
}

/// User code running inside a step (an iterator's `next`, a function called inside
/// `add_sync_function`, a stream's poll) re-enters the feeder: no deadlock, and the
/// order follows the rules. Inside add_sync_function#1: VALUE#2 -> [S10]; then 20 ->
/// [S10, S20]. Iterator#3 whose next() adds VALUE#4 -> [S10, S20, St3];
/// S10, S20; St3: adds S30, yields 1 -> [S30, E1, St3]; S30; E1 -> [St3, S1];
/// St3: exhausted -> [S1, IS3].
#[tokio::test(start_paused = true)]
async fn user_code_inside_steps_reenters_the_feeder() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let f2 = f.clone();
    f.add_sync_function(move || {
        f2.add_value(10);
        20
    });
    let f3 = f.clone();
    let mut first = true;
    f.add_sync_iterator(std::iter::from_fn(move || {
        if std::mem::take(&mut first) {
            f3.add_value(30);
            Some(1)
        } else {
            f3.set_as_finished_if_out_of_sources();
            None
        }
    }));
    assert_eq!(
        drain(&mut s).await,
        [
            "ok 10 [VALUE#2] @-",
            "ok 20 [SYNC_FUNCTION#1] @-",
            "ok 30 [VALUE#4] @-",
            "ok 1 [SYNC_ITERATOR#3] @-",
            "end - [SYNC_ITERATOR#3]",
            "stopped -",
        ]
    );
}

/// An iterator whose `next` stops the manager (cancels its context) and still returns an
/// item: Stopped goes to the front of what is queued, the item is delivered, then the
/// iterator ends with the cancellation. [St1] -> [E1, St1] -> [St1, S1]; St1 cancels:
/// [Stopped, S1], returns 2 -> [Stopped, S1, E2, St1].
#[tokio::test(start_paused = true)]
async fn stop_from_inside_a_step() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let mctx = s.ctx().clone();
    let mut n = 0;
    f.add_sync_iterator(std::iter::from_fn(move || {
        n += 1;
        if n == 2 {
            mctx.cancel();
        }
        Some(n)
    }));
    assert_eq!(
        drain(&mut s).await,
        [
            "stopped cancelled",
            "ok 1 [SYNC_ITERATOR#1] @-",
            "ok 2 [SYNC_ITERATOR#1] @-",
            "end cancelled [SYNC_ITERATOR#1]",
        ]
    );
}

/// The breaker set while the consumer waits on an empty queue wakes it (the stream
/// ends); clearing it and `resume()` continue in order.
#[tokio::test(start_paused = true)]
async fn breaker_wakes_a_waiting_consumer_and_resume_continues() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let breaker = s.breaker().clone();
    let consumer = tokio::spawn(async move {
        let first = s.next().await.is_none();
        (first, s)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    breaker.set();
    let (ended, mut s) = tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .expect("the breaker wakes the waiting consumer")
        .unwrap();
    assert!(ended);
    f.add_value(1);
    f.add_value(2);
    assert!(s.next().await.is_none(), "fused until resumed");
    s.breaker().clear();
    s.resume();
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        ["ok 1 [VALUE#1] @-", "ok 2 [VALUE#2] @-", "stopped -"]
    );
}

/// Callbacks that read the tree, format contexts, add callbacks to the context being
/// finished and create children of it: no deadlock; the late callback runs at once with
/// the outcome, and a child of a done context is done.
#[test]
fn ctx_callbacks_read_and_extend_the_finishing_context() {
    let root = hp::Ctx::beginning("r");
    let a = root.child("a");
    let b = a.child("b");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (r2, b2, l2) = (root.clone(), b.clone(), log.clone());
    b.add_done_callback(move |_| {
        let tree = r2.tree();
        let dbg = format!("{b2:?}");
        l2.lock()
            .unwrap()
            .push(format!("tree has b: {} debug: {dbg}", tree.contains("b")));
        let l3 = l2.clone();
        b2.add_done_callback(move |f| l3.lock().unwrap().push(format!("late {f}")));
        let child = b2.child("c");
        l2.lock()
            .unwrap()
            .push(format!("child done: {}", child.done()));
    });
    a.cancel();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "tree has b: true debug: CTX[r-->a-->b](PENDING(FUT{r})|CANCELLED(FUT{r-->a})|PENDING(FUT{r-->a-->b}))",
            "late cancelled",
            "child done: true",
        ]
    );
}

/// A sync function is a live source while it runs: `set_as_finished_if_out_of_sources`
/// called from inside it (directly added, or a produced function run by its call
/// instruction) must not put Stopped ahead of the value it is about to return.
#[tokio::test(start_paused = true)]
async fn finished_called_from_inside_a_running_sync_function() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let f2 = f.clone();
    f.add_sync_function(move || {
        let live = f2.live_sources();
        f2.set_as_finished_if_out_of_sources();
        live as i32
    });
    assert_eq!(
        drain(&mut s).await,
        ["ok 1 [SYNC_FUNCTION#1] @-", "stopped -"]
    );

    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let f2 = f.clone();
    f.add_value(Feed::function(move || {
        let live = f2.live_sources();
        f2.set_as_finished_if_out_of_sources();
        live as i32
    }));
    assert_eq!(
        drain(&mut s).await,
        ["ok 1 [SYNC_FUNCTION#2, VALUE#1] @-", "stopped -"]
    );
}

/// `set_as_finished_if_out_of_sources` with no sources queues Stopped at once; a value
/// added before the consumer takes it is still delivered after it, then the stream ends.
#[tokio::test(start_paused = true)]
async fn finished_with_no_sources_then_a_value_before_the_consumer_takes_it() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.set_as_finished_if_out_of_sources();
    f.add_value(1);
    assert_eq!(drain(&mut s).await, ["stopped -", "ok 1 [VALUE#1] @-"]);
}

/// Rule 13: the tree shows finished children that still exist, with their own state.
#[test]
fn ctx_tree_and_child_count_include_finished_live_children() {
    let root = hp::Ctx::beginning("r");
    let a = root.child("a");
    let b = root.child("b");
    a.cancel();
    assert_eq!(root.child_count(), 2);
    let tree = root.tree();
    assert!(tree.contains("a") && tree.contains("b"), "{tree}");
    assert!(tree.contains("r-->a [cancelled]"), "{tree}");
    drop(a);
    assert_eq!(root.child_count(), 1);
    drop(b);
    assert_eq!(root.child_count(), 0);
}

// ---------------------------------------------------------------- generators

/// `stop_async_generator`'s four cases (SEMANTICS, odd helpers), with cleanup that
/// re-enters the crate (cancels a context, appends to a queue) from a `Drop`.
#[tokio::test(start_paused = true)]
async fn stop_async_generator_cases_with_reentrant_cleanup() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<i32>(&ctx).build();
    // suspended, does not catch: cleanup runs, the thrown failure is returned
    let (c2, h2) = (ctx.child("c"), q.handle());
    let c3 = c2.clone();
    let mut g = hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        let _cleanup = OnDrop::new(move || {
            c2.cancel();
            h2.append(1).unwrap();
        });
        for i in 0.. {
            co.yield_(i).await?;
        }
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(0));
    assert!(
        hp::stop_async_generator(&mut g)
            .await
            .unwrap_err()
            .is_cancelled()
    );
    assert!(c3.cancelled());
    assert_eq!(q.len(), 1);
    assert!(
        hp::stop_async_generator(&mut g).await.is_ok(),
        "finished: Ok"
    );

    // never started: the body never runs, the thrown failure is returned
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut g = hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        r.store(true, SeqCst);
        co.yield_(1).await?;
        Ok::<(), hp::Failure>(())
    });
    let err = hp::stop_async_generator(&mut g)
        .throw(hp::Error::msg("exc"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "exc");
    assert!(!ran.load(SeqCst));

    // catches and yields again: receives provide, is closed, Ok
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let mut g = hp::AsyncGenerator::new(move |co: hp::Co<u32, u32>| async move {
        let mut v = 0;
        loop {
            match co.yield_(v).await {
                Ok(s) => {
                    g2.lock().unwrap().push(format!("sent {s}"));
                    v = s;
                }
                Err(f) if f.is_cancelled() => {
                    g2.lock().unwrap().push("caught".to_owned());
                    v = 100;
                }
                Err(other) => {
                    g2.lock().unwrap().push(format!("closing: {other}"));
                    return Err::<(), _>(other);
                }
            }
        }
    });
    assert_eq!(g.asend(0).await.unwrap(), Some(0));
    hp::stop_async_generator(&mut g).provide(7).await.unwrap();
    assert!(g.finished());
    let got = got.lock().unwrap().clone();
    assert_eq!(&got[..2], ["caught", "sent 7"]);
    assert_eq!(got.len(), 3, "{got:?}");
}

/// A generator body that panics ends with Panicked; the next call says exhausted; a
/// panic in its `Drop` while the generator itself is dropped is caught.
#[tokio::test(start_paused = true)]
async fn generator_panics_in_body_and_drop() {
    let mut g = hp::AsyncGenerator::new(|co: hp::Co<u32>| async move {
        co.yield_(1).await?;
        if true {
            panic!("body");
        }
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(1));
    let err = g.asend(()).await.unwrap_err();
    assert!(err.error().is_some_and(|e| e.is::<hp::Panicked>()), "{err}");
    assert_eq!(g.asend(()).await.unwrap(), None);

    let mut g = hp::AsyncGenerator::new(|co: hp::Co<u32>| async move {
        let _bad = OnDrop::new(|| panic!("drop"));
        co.yield_(1).await?;
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(1));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(g)));
    // either caught inside or resumed: the process must not abort and later code runs
    let _ = dropped;
}

fn relay(n: usize) -> hp::AsyncGenerator<u32, ()> {
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        if n == 0 {
            for i in 0..3 {
                co.yield_(i).await?;
            }
            return Ok::<(), hp::Failure>(());
        }
        let mut inner = relay(n - 1);
        while let Some(v) = inner.asend(()).await? {
            co.yield_(v + 1).await?;
        }
        Ok(())
    })
}

/// A pipeline of 100 000 nested generators relaying values, stopped in the middle and
/// dropped, on a 2 MiB stack.
#[test]
fn chain_generator_pipeline_100k() {
    common::in_child_process(module_path!(), "chain_generator_pipeline_100k", || {
        current_thread().block_on(async {
            let mut g = relay(N);
            assert_eq!(g.asend(()).await.unwrap(), Some(N as u32));
            assert_eq!(g.asend(()).await.unwrap(), Some(N as u32 + 1));
            assert!(hp::stop_async_generator(&mut g).await.is_err());
            let mut g = relay(N);
            assert_eq!(g.asend(()).await.unwrap(), Some(N as u32));
            drop(g);
        });
    });
}

/// Hooks: a front append from a hook is the very next item even while the consumer
/// holds a batch; a hook that appends after the last item (the consumer then asks for
/// more) is not missed: the consumer does not wait.
#[tokio::test(start_paused = true)]
async fn queue_hook_appends_are_seen_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let mut calls = 0;
    q.process_after_yielded(move |lq| {
        calls += 1;
        match calls {
            1 => {
                lq.append_front(10).unwrap();
            }
            4 => {
                lq.append(20).unwrap();
            }
            _ => {}
        }
    });
    for i in 1..=3 {
        q.append(i).unwrap();
    }
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Ok(Some(x)) = tokio::time::timeout(Duration::from_secs(1), all.next()).await {
        seen.push(x);
    }
    // 1, hook#1 -> 10 at the front; 10, #2; 2, #3; 3, then asking runs #4: appends 20
    assert_eq!(seen, [1, 10, 2, 3, 20]);
}

/// An instruction that sets the breaker ends the iteration before the next item; one
/// that cancels the context with `empty_on_finished` does not stop the drain; a done
/// context at the start ends at once and leaves everything for `remaining`.
#[tokio::test(start_paused = true)]
async fn queue_instructions_that_break_or_finish() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let h = q.handle();
    q.append_instruction(move || h.breaker().set()).unwrap();
    q.append(1).unwrap();
    assert_eq!(q.get_all().next().await, None);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1]);

    let mut q = hp::queue::<i32>(&ctx).empty_on_finished(true).build();
    let c = q.ctx().clone();
    q.append(1).unwrap();
    q.append_instruction(move || {
        c.cancel();
    })
    .unwrap();
    q.append(2).unwrap();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(x) = all.next().await {
        seen.push(x);
    }
    assert_eq!(seen, [1, 2]);

    let done = ctx.child("done");
    let mut q = hp::queue::<i32>(&done).build();
    q.append(1).unwrap();
    q.append(2).unwrap();
    done.cancel();
    assert_eq!(q.get_all().next().await, None);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1, 2]);
}

/// A stream that wakes itself on every poll without an item cannot keep the queue from
/// moving: an iterator alongside it is delivered, and a stop ends both.
#[tokio::test(start_paused = true)]
async fn qm_self_waking_stream_does_not_starve_the_queue() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    f.add_async_generator(futures::stream::poll_fn(move |cx| {
        p.fetch_add(1, SeqCst);
        cx.waker().wake_by_ref();
        std::task::Poll::<Option<i32>>::Pending
    }));
    f.add_sync_iterator([1, 2, 3]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = tokio::time::timeout(Duration::from_secs(1), s.next())
            .await
            .expect("the queue moves")
            .unwrap();
        seen.push(line(&r));
    }
    assert_eq!(
        seen,
        [
            "ok 1 [SYNC_ITERATOR#2] @-",
            "ok 2 [SYNC_ITERATOR#2] @-",
            "ok 3 [SYNC_ITERATOR#2] @-",
            "end - [SYNC_ITERATOR#2]",
        ]
    );
    s.ctx().cancel();
    let rest = tokio::time::timeout(Duration::from_secs(1), drain(&mut s))
        .await
        .expect("stop ends the self-waking stream");
    assert_eq!(
        rest,
        ["stopped cancelled", "end cancelled [ASYNC_GENERATOR#1]"]
    );
    assert!(polls.load(SeqCst) > 1);
}

/// An endless ready stream: the breaker still ends the stream (no source advanced after),
/// and `remaining()` hands out only results already produced.
#[tokio::test(start_paused = true)]
async fn qm_endless_ready_stream_and_the_breaker() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    f.add_async_generator(futures::stream::iter(0..).inspect(move |_| {
        p.fetch_add(1, SeqCst);
    }));
    // [St1] -> [E0, St1] -> [St1, S0] -> [S0, E1, St1]: S0 after two polls... each
    // result is yielded when the stream has been polled once more than the results seen
    for want in 0..5 {
        let r = s.next().await.unwrap();
        assert_eq!(r.value(), Some(&want));
    }
    let before = polls.load(SeqCst);
    s.breaker().set();
    assert!(s.next().await.is_none());
    assert_eq!(polls.load(SeqCst), before);
    assert_eq!(s.remaining().count(), 0);
}

/// Many coroutines and streams on the multi-thread runtime, stopped from another task in
/// the middle: every coroutine ends exactly once (its value or the cancellation), every
/// stream ends exactly once (after at most its items), Stopped comes once, nothing stays
/// live.
#[test]
fn qm_stop_in_the_middle_multi_thread_every_source_ends_once() {
    use std::collections::HashMap;
    common::multi_thread(async {
        for round in 0..5u64 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
            let mut rng = common::Rng(round + 1);
            let mut coroutines = HashMap::new();
            let mut streams = HashMap::new();
            for i in 0..200 {
                let ms = rng.below(20);
                let id = f.add_coroutine(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    i
                });
                coroutines.insert(id, 0);
                let ms = rng.below(10);
                let id = f.add_async_generator(ticker_stream(3, Duration::from_millis(ms)));
                streams.insert(id, (0, 0));
            }
            let stopper = s.ctx().clone();
            let mut seen = 0;
            let mut stopped = 0;
            while let Some(r) = s.next().await {
                seen += 1;
                if seen == 150 {
                    let c = stopper.clone();
                    tokio::spawn(async move { c.cancel() });
                }
                match &r {
                    R::Stopped { error } => {
                        assert!(error.as_ref().is_some_and(|e| e.is_cancelled()));
                        stopped += 1;
                        continue;
                    }
                    R::Success { sources, .. } => {
                        let added = sources.added();
                        if let Some(n) = coroutines.get_mut(&added) {
                            *n += 1;
                        } else {
                            streams.get_mut(&added).unwrap().0 += 1;
                        }
                    }
                    R::Failure { sources, error, .. } => {
                        assert!(error.is_cancelled());
                        *coroutines.get_mut(&sources.added()).unwrap() += 1;
                    }
                    R::IterationStop { sources, .. } => {
                        streams.get_mut(&sources.added()).unwrap().1 += 1;
                    }
                }
            }
            assert_eq!(stopped, 1);
            assert!(coroutines.values().all(|&n| n == 1), "{coroutines:?}");
            assert!(
                streams
                    .values()
                    .all(|&(items, ends)| items <= 3 && ends == 1),
                "{streams:?}"
            );
            assert_eq!(f.live_sources(), 0);
            s.close().await;
        }
    });
}

/// Stopped(None) already queued when the context is cancelled: the manager stops once,
/// so the consumer sees one Stopped, the context's (at the front, exactly once).
#[tokio::test(start_paused = true)]
async fn finished_then_cancelled_before_the_consumer_takes_stopped() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.set_as_finished_if_out_of_sources();
    s.ctx().cancel();
    let seen = drain(&mut s).await;
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("stopped")).count(),
        1,
        "{seen:?}"
    );
}

// ---------------------------------------------------------------- result helpers

/// Clones of one error count once; an equal-text distinct error is another; cancelled and
/// pending futures are ignored; results in order. A done callback on a pending future
/// that re-enters `find_and_apply_result` on the same group only passes the outcome on.
#[test]
fn results_identity_of_errors_and_reentrant_callbacks() {
    let e1 = hp::Error::msg("same");
    let futs: Vec<hp::Fut<u8>> = (0..6).map(|_| hp::Fut::new()).collect();
    futs[0].set_exception(e1.clone());
    futs[1].set_result(5);
    futs[2].set_exception(e1.clone());
    futs[3].cancel();
    futs[4].set_exception(hp::Error::msg("same"));
    let (err, results) = hp::noncancelled_results_from_futs(&futs);
    assert_eq!(results, [5]);
    let err = err.unwrap();
    let group = err.downcast_ref::<hp::ErrorGroup>().expect("a group");
    assert_eq!(group.errors.len(), 2);
    assert!(group.errors[0].same(&e1));
    assert!(!group.errors[1].same(&e1));

    let final_fut = hp::Fut::<u8>::new();
    let group_futs: Vec<hp::Fut<u8>> = (0..3).map(|_| hp::Fut::new()).collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, f2, g2) = (calls.clone(), final_fut.clone(), group_futs.clone());
    group_futs[2].add_done_callback(move |_| {
        c.fetch_add(1, SeqCst);
        assert!(!hp::find_and_apply_result(&f2, &g2));
    });
    group_futs[0].set_result(9);
    assert!(hp::find_and_apply_result(&final_fut, &group_futs));
    assert_eq!(final_fut.result().unwrap(), 9);
    assert!(group_futs.iter().all(|f| f.result().ok() == Some(9)));
    assert_eq!(calls.load(SeqCst), 1);
}

// ---------------------------------------------------------------- sync queue drops

/// Dropping the last handle of a sync queue drops its items one by one: an item whose
/// `Drop` panics does not stop the others, one whose `Drop` appends to another sync
/// queue and cancels a context re-enters without deadlock; iterating consumers of the
/// other queue see the appended items.
#[test]
fn sync_queue_last_handle_drop_with_reentrant_and_panicking_items() {
    common::with_watchdog(|| {
        let ctx = hp::Ctx::beginning("r");
        let other = hp::sync_queue::<u32>(&ctx).build();
        let flag = ctx.child("flag");
        let q = hp::sync_queue::<OnDrop>(&ctx).build();
        let dropped = Arc::new(AtomicUsize::new(0));
        for k in 0..5u32 {
            let (o, fl, d) = (other.clone(), flag.clone(), dropped.clone());
            q.append(OnDrop::new(move || {
                d.fetch_add(1, SeqCst);
                o.append(k).unwrap();
                fl.cancel();
                if k == 1 {
                    panic!("item drop");
                }
            }))
            .unwrap();
        }
        let consumer = {
            let other = other.clone();
            std::thread::spawn(move || other.get_all().take(5).collect::<Vec<_>>())
        };
        drop(q);
        assert_eq!(dropped.load(SeqCst), 5);
        assert!(flag.cancelled());
        let mut got = consumer.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4]);
    });
}

// ---------------------------------------------------------------- more ticker rules

/// A consumer busy past `max_time` gets no tick at or after it: the stream ends.
#[tokio::test(start_paused = true)]
async fn ticker_no_tick_at_or_after_max_time_for_a_late_consumer() {
    let ctx = hp::Ctx::beginning("a");
    for late in [10, 11] {
        let t0 = Instant::now();
        let mut t = hp::tick(Duration::from_secs(3), &ctx)
            .max_time(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 3_000)]);
        tokio::time::sleep(Duration::from_secs(late)).await;
        assert_eq!(t.next().await, None, "late {late}");
    }
    let mut t = hp::tick(Duration::from_secs(3), &ctx)
        .max_iterations(0)
        .build()
        .unwrap();
    assert_eq!(t.next().await, None);
}

/// `min_wait` zero and off differ for a late tick landing exactly on a grid point (the
/// builder's own example): every 5, the tick for 10 yielded at 15 is followed by the
/// tick for 15 at once with zero, by the tick at 20 with off.
#[tokio::test(start_paused = true)]
async fn ticker_min_wait_zero_and_off_on_a_late_grid_point() {
    let ctx = hp::Ctx::beginning("a");
    for (min_wait, want) in [
        (Some(Duration::ZERO), [(3, 15_000, 0), (4, 15_000, 5_000)]),
        (None, [(3, 15_000, 5_000), (4, 20_000, 5_000)]),
    ] {
        let t0 = Instant::now();
        let mut t = hp::tick(Duration::from_secs(5), &ctx)
            .min_wait(min_wait)
            .build()
            .unwrap();
        assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 5_000)]);
        tokio::time::sleep(Duration::from_secs(9)).await; // 9: the tick for 5 is late
        let late = ticks(&mut t, t0, 1).await;
        assert_eq!(late[0].0, 2);
        assert_eq!(late[0].1, 9_000);
        // the next tick is at 10; be busy until 15 -> the tick for 10 yielded at 15
        tokio::time::sleep_until(t0 + Duration::from_secs(15)).await;
        assert_eq!(ticks(&mut t, t0, 2).await, want, "min_wait {min_wait:?}");
    }
}

/// `every` zero with `min_wait` zero ticks back to back but lets other tasks run between
/// ticks; `change_after(0)` on a ticker with `min_wait` off is refused and changes
/// nothing; dropping a paused ticker consumes no permit.
#[tokio::test(start_paused = true)]
async fn ticker_back_to_back_yields_refused_change_and_drop_while_paused() {
    let ctx = hp::Ctx::beginning("a");
    let mut t = hp::tick(Duration::ZERO, &ctx)
        .min_wait(Duration::ZERO)
        .build()
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    tokio::spawn(async move { r.store(true, SeqCst) });
    let mut seen_flag_at = None;
    for i in 0..5 {
        t.next().await.unwrap();
        if seen_flag_at.is_none() && ran.load(SeqCst) {
            seen_flag_at = Some(i);
        }
    }
    assert!(seen_flag_at.is_some_and(|i| i < 4), "{seen_flag_at:?}");

    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx)
        .min_wait(None)
        .build()
        .unwrap();
    assert_eq!(ticks(&mut t, t0, 1).await, [(1, 0, 3_000)]);
    assert_eq!(
        t.change_after(Duration::ZERO),
        Err(hp::TickerError::ZeroEveryWithoutMinWait)
    );
    assert_eq!(ticks(&mut t, t0, 1).await, [(2, 3_000, 3_000)]);

    let pauser = Arc::new(tokio::sync::Semaphore::new(0));
    let mut t = hp::tick(Duration::from_secs(1), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), t.next())
            .await
            .is_err()
    );
    drop(t);
    tokio::task::yield_now().await;
    pauser.add_permits(2);
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert_eq!(pauser.available_permits(), 2);
}

/// Formatting a 100 000-deep context (`Debug`, `name`, `Display` of its failure chain)
/// and `wait()` on it do not recurse with the depth.
#[test]
fn chain_deep_ctx_formatting_100k() {
    common::in_child_process(module_path!(), "chain_deep_ctx_formatting_100k", || {
        let root = hp::Ctx::beginning("r");
        let mut c = root.child("0");
        for _ in 1..N {
            c = c.child("x");
        }
        let dbg = format!("{c:?}");
        assert!(dbg.starts_with("CTX["), "{}", &dbg[..40]);
        assert!(c.name().len() >= N);
        root.set_exception(Boom("top"));
        assert_eq!(c.exception().unwrap().unwrap().to_string(), "top");
        let f = current_thread().block_on(c.wait());
        assert_eq!(f.to_string(), "top");
        drop(c);
        assert_eq!(root.child_count(), 0);
    });
}

/// `timeout_event` is set exactly when the timeout cut the work short: work that ends at
/// the very instant of the timeout either returns its value (event not set) or is cut
/// (event set), never both; a parent finishing first does not set it.
#[tokio::test(start_paused = true)]
async fn async_with_timeout_event_only_when_cut_short() {
    let ctx = hp::Ctx::beginning("t");
    for work_secs in [1, 2, 3] {
        let ev = hp::Event::new();
        let out = ctx
            .async_with_timeout(async move {
                tokio::time::sleep(Duration::from_secs(work_secs)).await;
                7
            })
            .timeout(Duration::from_secs(2))
            .timeout_event(&ev)
            .await;
        assert_eq!(out.is_ok(), !ev.is_set(), "work {work_secs}: {out:?}");
        if work_secs == 1 {
            assert!(matches!(out, Ok(7)));
        }
        if work_secs == 3 {
            assert!(out.unwrap_err().is_cancelled());
        }
    }
    let parent = ctx.child("p");
    let p2 = parent.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        p2.set_exception(Boom("parent"));
    });
    let ev = hp::Event::new();
    let out = parent
        .async_with_timeout(tokio::time::sleep(Duration::from_secs(10)))
        .timeout(Duration::from_secs(5))
        .timeout_event(&ev)
        .await;
    assert_eq!(out.unwrap_err().to_string(), "parent");
    assert!(!ev.is_set());
}

/// Producers on four threads append items, front items and instructions that append
/// while the consumer takes them on the multi-thread runtime; a cancel with
/// `empty_on_finished` after they joined ends the iteration only once everything was
/// yielded: every item exactly once.
#[test]
fn async_queue_concurrent_producers_every_item_once() {
    common::multi_thread(async {
        for _ in 0..3 {
            let ctx = hp::Ctx::beginning("t");
            let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
            let qctx = q.ctx().clone();
            let h = q.handle();
            let consumer = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut all = q.get_all();
                while let Some(x) = all.next().await {
                    got.push(x);
                }
                got
            });
            let producers: Vec<_> = (0..4u32)
                .map(|p| {
                    let h = h.clone();
                    std::thread::spawn(move || {
                        for i in 0..3_000 {
                            let v = p * 10_000 + i;
                            match i % 3 {
                                0 => {
                                    h.append(v).unwrap();
                                }
                                1 => {
                                    h.append_front(v).unwrap();
                                }
                                _ => {
                                    let h2 = h.clone();
                                    h.append_instruction(move || {
                                        h2.append(v).unwrap();
                                    })
                                    .unwrap();
                                }
                            }
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            qctx.cancel();
            let mut got = consumer.await.unwrap();
            got.sort_unstable();
            let want: Vec<u32> = (0..4u32)
                .flat_map(|p| (0..3_000).map(move |i| p * 10_000 + i))
                .collect();
            assert_eq!(got, want);
        }
    });
}

/// A task output whose `Clone` panics (the manager clones the task's value): the
/// source fails with the panic, the manager carries on.
#[derive(Debug)]
struct PanicClone(i32);

impl Clone for PanicClone {
    fn clone(&self) -> Self {
        panic!("clone")
    }
}

impl From<PanicClone> for Feed<i32, &str> {
    fn from(p: PanicClone) -> Self {
        Feed::Value(p.0)
    }
}

/// A task's output is joined by value (owned outputs): the manager never clones it, so a
/// panicking `Clone` cannot run.
#[tokio::test(start_paused = true)]
async fn task_value_is_moved_so_a_panicking_clone_never_runs() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let t = hp::Task::spawn(async { PanicClone(1) });
    f.add_task(t);
    f.add_value(2);
    f.set_as_finished_if_out_of_sources();
    let seen = tokio::time::timeout(Duration::from_secs(5), drain(&mut s))
        .await
        .expect("no hang");
    assert_eq!(seen, ["ok 2 [VALUE#2] @-", "ok 1 [TASK#1] @-", "stopped -"]);
}

/// A manager made outside any runtime: a coroutine added there fails with a clear error
/// (no panic), the rest is delivered when a runtime later polls the streamer.
#[test]
fn coroutine_added_without_a_runtime_fails_clearly() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_coroutine(async { 1 });
    f.add_value(2);
    f.set_as_finished_if_out_of_sources();
    let seen = current_thread().block_on(drain(&mut s));
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with("fail ") && seen[0].ends_with("COROUTINE#1]"),
        "{seen:?}"
    );
    assert!(seen[0].contains("runtime"), "a clear error: {seen:?}");
    assert_eq!(seen[1..], ["ok 2 [VALUE#3] @-", "stopped -"]);
}

/// The breaker set by user code inside a step (an iterator's `next`): the stream ends
/// before the next entry is taken, and no other source is advanced after it was set.
/// [StA, StB]; StA sets the breaker and yields 1 -> [StB, E1, StA]: end here.
#[tokio::test(start_paused = true)]
async fn breaker_set_inside_a_step_advances_no_other_source() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let breaker = s.breaker().clone();
    let mut first = true;
    f.add_sync_iterator(std::iter::from_fn(move || {
        if std::mem::take(&mut first) {
            breaker.set();
        }
        Some(1)
    }));
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_sync_iterator((10..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert!(s.next().await.is_none());
    assert_eq!(
        advanced.load(SeqCst),
        0,
        "a source was advanced after the breaker"
    );
    assert_eq!(s.remaining().count(), 0);
}

/// The breaker set by a stream's poll, and by a produced function's call: same rule.
#[tokio::test(start_paused = true)]
async fn breaker_set_inside_a_stream_poll_or_a_call_advances_nothing_more() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let breaker = s.breaker().clone();
    f.add_value(Feed::function(move || {
        breaker.set();
        1
    }));
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_async_generator(futures::stream::iter(10..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    // [C, StB]; C sets the breaker, 1 -> [StB, S1]: end here
    assert!(s.next().await.is_none());
    assert_eq!(
        advanced.load(SeqCst),
        0,
        "a source was advanced after the breaker"
    );
    let rest: Vec<String> = s.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["ok 1 [SYNC_FUNCTION#3, VALUE#1] @-"]);
}

/// The breaker set by a source's `Drop` (run when the manager drops the exhausted
/// source): no other source is advanced after it was set.
/// [StA, StB]; StA: exhausted -> [StB, ISA], A dropped (sets the breaker): end here.
#[tokio::test(start_paused = true)]
async fn breaker_set_by_a_source_drop_advances_no_other_source() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let breaker = s.breaker().clone();
    f.add_sync_iterator(DropIter {
        items: Vec::new().into_iter(),
        _on_drop: OnDrop::new(move || breaker.set()),
    });
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_sync_iterator((10..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert!(s.next().await.is_none());
    assert_eq!(
        advanced.load(SeqCst),
        0,
        "a source was advanced after the breaker"
    );
    let rest: Vec<String> = s.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["end - [SYNC_ITERATOR#1]"]);
}

/// A source's `Drop` that stops the manager: the next step finds the manager stopped
/// (its source ends with the cancellation, never advanced).
/// [StA, StB]; StA exhausted -> [StB, ISA]; A's Drop stops -> [Stopped, StB, ISA];
/// Stopped; StB -> [ISA, ISB(c)].
#[tokio::test(start_paused = true)]
async fn stop_by_a_source_drop_advances_no_other_source() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let mctx = s.ctx().clone();
    f.add_sync_iterator(DropIter {
        items: Vec::new().into_iter(),
        _on_drop: OnDrop::new(move || {
            mctx.cancel();
        }),
    });
    let advanced = Arc::new(AtomicUsize::new(0));
    let a = advanced.clone();
    f.add_sync_iterator((10..).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert_eq!(
        drain(&mut s).await,
        [
            "stopped cancelled",
            "end - [SYNC_ITERATOR#1]",
            "end cancelled [SYNC_ITERATOR#2]"
        ]
    );
    assert_eq!(advanced.load(SeqCst), 0);
}

/// `get(Duration::MAX)` and an `empty_on_finished` iteration blocked on an empty queue
/// both end at once when the context finishes (whatever the queue's `timeout`).
#[test]
fn sync_queue_long_waits_end_when_the_ctx_finishes() {
    common::with_watchdog(|| {
        for empty_on_finished in [false, true] {
            let ctx = hp::Ctx::beginning("r");
            let q = hp::sync_queue::<u32>(&ctx)
                .timeout(Duration::from_secs(3600))
                .empty_on_finished(empty_on_finished)
                .build();
            let (q1, q2) = (q.clone(), q.clone());
            let getter = std::thread::spawn(move || q1.get(Duration::MAX));
            let iter = std::thread::spawn(move || q2.get_all().collect::<Vec<_>>());
            std::thread::sleep(Duration::from_millis(30));
            let t0 = std::time::Instant::now();
            ctx.cancel();
            assert_eq!(getter.join().unwrap(), Err(hp::SyncGetError::Finished));
            assert_eq!(iter.join().unwrap(), Vec::<u32>::new());
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
    });
}

/// The user drops its own handle of the context given to a manager: the manager's child
/// context keeps it alive, nothing stops, values are delivered.
#[tokio::test(start_paused = true)]
async fn manager_outlives_the_users_ctx_handle() {
    let ctx = hp::Ctx::beginning("t");
    let parent = ctx.child("p");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&parent, "queue_manager", || "-");
    drop(parent);
    f.add_value(1);
    f.set_as_finished_if_out_of_sources();
    assert_eq!(drain(&mut s).await, ["ok 1 [VALUE#1] @-", "stopped -"]);
    assert!(!s.ctx().done());
}

/// The context finished by user code the consumer runs (an instruction, a hook) ends the
/// iteration before the next item, also one already in the consumer's batch.
#[tokio::test(start_paused = true)]
async fn queue_ctx_finished_by_an_instruction_or_hook_ends_before_the_next_item() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<i32>(&ctx).build();
    let c = q.ctx().clone();
    q.append(1).unwrap();
    q.append_instruction(move || {
        c.cancel();
    })
    .unwrap();
    q.append(2).unwrap();
    q.append(3).unwrap();
    let mut seen = Vec::new();
    {
        let mut all = q.get_all();
        while let Some(x) = all.next().await {
            seen.push(x);
        }
    }
    assert_eq!(seen, [1]);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3]);

    let mut q = hp::queue::<i32>(&ctx).build();
    let c = q.ctx().clone();
    q.process_after_yielded(move |_| {
        c.cancel();
    });
    q.append(1).unwrap();
    q.append(2).unwrap();
    let mut seen = Vec::new();
    {
        let mut all = q.get_all();
        while let Some(x) = all.next().await {
            seen.push(x);
        }
    }
    assert_eq!(seen, [1]);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2]);
}

// ---------------------------------------------------------------- scope

#[derive(Default)]
struct Cm {
    enter_panics: bool,
    exit_fails: bool,
    log: Vec<String>,
}

impl hp::AsyncContextManager for Cm {
    type Value = u32;

    async fn enter(&mut self) -> Result<u32, hp::Error> {
        self.log.push("enter".into());
        if self.enter_panics {
            panic!("enter");
        }
        Ok(1)
    }

    async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
        self.log.push(format!(
            "exit({})",
            error.map_or("-".into(), |e| e.to_string())
        ));
        if self.exit_fails {
            return Err(hp::Error::msg("exit failed"));
        }
        Ok(())
    }
}

/// `using`: exit runs exactly once after a body that fails or panics, and after an
/// `enter` that panics; a failing exit's error wins.
#[tokio::test(start_paused = true)]
async fn using_runs_exit_once_in_every_case() {
    use futures::FutureExt;
    let mut cm = Cm::default();
    let out: Result<(), _> = hp::using(&mut cm, async |_| Err(hp::Error::msg("body"))).await;
    assert_eq!(out.unwrap_err().to_string(), "body");
    assert_eq!(cm.log, ["enter", "exit(body)"]);

    let mut cm = Cm::default();
    let out =
        std::panic::AssertUnwindSafe(hp::using(&mut cm, async |_| -> Result<(), hp::Error> {
            panic!("in body")
        }))
        .catch_unwind()
        .await;
    assert!(out.is_err(), "the panic continues");
    assert_eq!(cm.log, ["enter", "exit(panicked: in body)"]);

    let mut cm = Cm {
        enter_panics: true,
        ..Cm::default()
    };
    let out = std::panic::AssertUnwindSafe(hp::using(&mut cm, async |v| Ok(v)))
        .catch_unwind()
        .await;
    assert!(out.is_err());
    assert_eq!(cm.log, ["enter", "exit(panicked: enter)"]);

    let mut cm = Cm {
        exit_fails: true,
        ..Cm::default()
    };
    let out: Result<(), _> = hp::using(&mut cm, async |_| Err(hp::Error::msg("body"))).await;
    assert_eq!(out.unwrap_err().to_string(), "exit failed");
    assert_eq!(cm.log, ["enter", "exit(body)"]);
}

/// Breaker set from another task while the consumer runs an endless iterator and an
/// endless stream (multi-thread), cleared and resumed ten times: each source's values
/// arrive in order, none lost or repeated.
#[test]
fn breaker_cycles_lose_and_repeat_nothing_multi_thread() {
    common::multi_thread(async {
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
        let it = f.add_sync_iterator(0..);
        f.add_async_generator(futures::stream::iter(1_000_000..));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            let breaker = s.breaker().clone();
            let setter = tokio::spawn(async move {
                tokio::task::yield_now().await;
                breaker.set();
            });
            while let Some(r) = s.next().await {
                if let R::Success { value, sources, .. } = r {
                    if sources.added() == it {
                        a.push(value);
                    } else {
                        b.push(value);
                    }
                }
                tokio::task::yield_now().await;
            }
            setter.await.unwrap();
            for r in s.remaining() {
                if let R::Success { value, sources, .. } = r {
                    if sources.added() == it {
                        a.push(value);
                    } else {
                        b.push(value);
                    }
                }
            }
            s.breaker().clear();
            s.resume();
        }
        assert!(!a.is_empty() && !b.is_empty());
        assert_eq!(a, (0..a.len() as i32).collect::<Vec<_>>());
        assert_eq!(
            b,
            (1_000_000..1_000_000 + b.len() as i32).collect::<Vec<_>>()
        );
    });
}

/// More wake routes for a consumer waiting on the manager: a task resolving to a stream
/// (its first item), a stream woken from a std thread, and a value added by the `Drop`
/// of a task's future when the user cancels the task.
async fn qm_wake_more(route: u8) -> Vec<String> {
    let ctx = hp::Ctx::beginning("r");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (stx, srx) = std::sync::mpsc::channel::<()>();
    let mut task = None;
    let mut waker_thread = None;
    match route {
        0 => {
            f.add_coroutine(async move {
                let _ = rx.await;
                Feed::stream(futures::stream::iter([5]))
            });
        }
        1 => {
            let flag = Arc::new(AtomicBool::new(false));
            let waker_slot: Arc<Mutex<Option<std::task::Waker>>> = Arc::new(Mutex::new(None));
            let (fl, ws) = (flag.clone(), waker_slot.clone());
            f.add_async_generator(futures::stream::poll_fn(move |cx| {
                if fl.load(SeqCst) {
                    return std::task::Poll::<Option<i32>>::Ready(None);
                }
                *ws.lock().unwrap() = Some(cx.waker().clone());
                std::task::Poll::Pending
            }));
            waker_thread = Some(std::thread::spawn(move || {
                let _ = srx.recv();
                flag.store(true, SeqCst);
                if let Some(w) = waker_slot.lock().unwrap().take() {
                    w.wake();
                }
            }));
        }
        2 => {
            let f2 = f.clone();
            let g = OnDrop::new(move || {
                f2.add_value(5);
            });
            let t = hp::Task::spawn(async move {
                let _g = g;
                std::future::pending::<i32>().await
            });
            task = Some(t.clone());
            f.add_task(t);
        }
        _ => unreachable!(),
    }
    let consumer = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(r) = s.next().await {
            let stop = matches!(r, R::Success { .. } | R::IterationStop { .. });
            seen.push(line(&r));
            if (route != 2 && stop) || seen.len() == 2 {
                break;
            }
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    match route {
        0 => tx.send(()).unwrap(),
        1 => {
            stx.send(()).unwrap();
            // (joined before waiting: a paused clock would otherwise jump to the
            // timeout while the thread is still on its way)
            waker_thread.take().unwrap().join().unwrap();
        }
        _ => {
            task.unwrap().cancel();
        }
    }
    tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .unwrap_or_else(|_| panic!("route {route}: the waiting consumer was not woken"))
        .unwrap()
}

fn qm_wake_more_expect(route: u8, seen: &[String]) {
    match route {
        0 => assert_eq!(seen, ["ok 5 [ASYNC_GENERATOR#3, TASK#2, COROUTINE#1] @-"]),
        1 => assert_eq!(seen, ["end - [ASYNC_GENERATOR#1]"]),
        _ => {
            let mut sorted = seen.to_vec();
            sorted.sort();
            assert_eq!(sorted, ["fail cancelled [TASK#1]", "ok 5 [VALUE#2] @-"]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn wake_queue_manager_more_routes_current_thread() {
    for route in 0..3 {
        qm_wake_more_expect(route, &qm_wake_more(route).await);
    }
}

#[test]
fn wake_queue_manager_more_routes_multi_thread() {
    common::multi_thread(async {
        for _ in 0..20 {
            for route in 0..3 {
                qm_wake_more_expect(route, &qm_wake_more(route).await);
            }
        }
    });
}

/// SEMANTICS (queue manager): closing stops generators "as `stop_async_generator` does":
/// a generator source suspended at a yield gets the cancellation thrown in and its
/// (async) cleanup runs before `close()` returns.
#[tokio::test(start_paused = true)]
async fn close_stops_a_generator_source_as_stop_async_generator_does() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    let g = hp::AsyncGenerator::new(move |co: hp::Co<i32>| async move {
        for i in 0.. {
            if let Err(f) = co.yield_(i).await {
                l.lock().unwrap().push(format!("thrown {f}"));
                tokio::time::sleep(Duration::from_millis(1)).await;
                l.lock().unwrap().push("async cleanup done".to_owned());
                return Err(f);
            }
        }
        Ok::<(), hp::Failure>(())
    });
    f.add_async_generator(g);
    assert_eq!(s.next().await.and_then(R::into_value), Some(0));
    s.close().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["thrown cancelled", "async cleanup done"]
    );
}

/// A sync function running on another thread is live: `set_as_finished` called while it
/// runs (and the consumer waits) gives Stopped only after its value (multi-thread).
#[test]
fn finished_while_a_sync_function_runs_on_another_thread() {
    common::multi_thread(async {
        for _ in 0..20 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) =
                hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
            let consumer = tokio::spawn(async move { drain(&mut s).await });
            let (in_tx, in_rx) = std::sync::mpsc::channel::<()>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let f2 = f.clone();
            let runner = std::thread::spawn(move || {
                f2.add_sync_function(move || {
                    in_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    7
                });
            });
            in_rx.recv().unwrap();
            f.set_as_finished_if_out_of_sources();
            tokio::time::sleep(Duration::from_millis(5)).await;
            go_tx.send(()).unwrap();
            runner.join().unwrap();
            let seen = consumer.await.unwrap();
            assert_eq!(seen, ["ok 7 [SYNC_FUNCTION#1] @-", "stopped -"]);
        }
    });
}

/// Callbacks that cancel the next context and then panic, 1 000 links: every context is
/// still cancelled and every callback ran once.
#[test]
fn ctx_panicking_callback_chain_carries_on() {
    let root = hp::Ctx::beginning("r");
    let ctxs: Vec<hp::Ctx> = (0..1_000).map(|_| root.child("c")).collect();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..ctxs.len() {
        let next = ctxs.get(i + 1).cloned();
        let ran = ran.clone();
        ctxs[i].add_done_callback(move |_| {
            ran.fetch_add(1, SeqCst);
            if let Some(n) = next {
                n.cancel();
            }
            panic!("link {i}");
        });
    }
    assert!(ctxs[0].cancel());
    assert_eq!(ran.load(SeqCst), 1_000);
    assert!(ctxs.iter().all(hp::Ctx::cancelled));
}

/// A worker pool: two consumers blocked on an empty queue (timeout one hour); two items
/// appended at once are handled at the same time by both (each consumer holds its item
/// until the other has one too), for bursts appended before, while and after they sleep.
#[test]
fn sync_queue_worker_pool_spreads_a_burst() {
    common::with_watchdog(|| {
        for round in 0..50 {
            let ctx = hp::Ctx::beginning("r");
            let q = hp::sync_queue::<u32>(&ctx)
                .timeout(Duration::from_secs(3600))
                .build();
            let (tx, rx) = std::sync::mpsc::channel::<u32>();
            let go = Arc::new((Mutex::new(0u32), std::sync::Condvar::new()));
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let (q, tx, go) = (q.clone(), tx.clone(), go.clone());
                    std::thread::spawn(move || {
                        let mut handled = 0;
                        for item in &q {
                            tx.send(item).unwrap();
                            let (m, cv) = &*go;
                            let mut n = m.lock().unwrap();
                            *n += 1;
                            cv.notify_all();
                            while *n < 2 {
                                n = cv.wait(n).unwrap();
                            }
                            handled += 1;
                        }
                        handled
                    })
                })
                .collect();
            if round % 2 == 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
            q.append(1).unwrap();
            q.append(2).unwrap();
            let mut got = vec![rx.recv().unwrap(), rx.recv().unwrap()];
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
            ctx.cancel();
            let handled: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            assert_eq!(handled, [1, 1], "round {round}");
        }
    });
}

/// Fut and Event callbacks that re-enter: a Fut callback capturing the Fut's last other
/// handle, one that adds and removes callbacks on the same Fut, an Event callback that
/// clears and sets its own event (runs the new registrations once), and a callback whose
/// captured value's `Drop` cancels a context when the Fut is dropped unfinished.
#[test]
fn fut_and_event_callbacks_reenter() {
    let f = hp::Fut::<u8>::new();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (l, f2) = (log.clone(), f.clone());
    f.add_done_callback(move |_| {
        let l2 = l.clone();
        let h = f2.add_done_callback(move |_| l2.lock().unwrap().push("late".into()));
        l.lock()
            .unwrap()
            .push(format!("removed late: {}", f2.remove_done_callback(h)));
        drop(f2);
    });
    f.set_result(1);
    assert_eq!(*log.lock().unwrap(), ["late", "removed late: 0"]);

    let ev = hp::Event::new();
    let count = Arc::new(AtomicUsize::new(0));
    let (e2, c2) = (ev.clone(), count.clone());
    ev.add_done_callback(move || {
        c2.fetch_add(1, SeqCst);
        e2.clear();
        let c3 = c2.clone();
        e2.add_done_callback(move || {
            c3.fetch_add(10, SeqCst);
        });
        e2.set();
    });
    ev.set();
    assert_eq!(count.load(SeqCst), 11);
    assert!(ev.is_set());

    let root = hp::Ctx::beginning("r");
    let victim = root.child("v");
    let v2 = victim.clone();
    let g = OnDrop::new(move || {
        v2.cancel();
    });
    let f = hp::Fut::<u8>::new();
    f.add_done_callback(move |_| {
        let _ = &g;
    });
    drop(f);
    assert!(
        victim.cancelled(),
        "the callback (and what it holds) is dropped with the Fut"
    );
}

/// A produced feed's own context covers its results and those of the sources it
/// produces; the producer's other results keep the producer's context.
/// [St1]; St1: gen(with b) -> [E, St1]; E -> St2 (under #1) -> [St1, St2];
/// St1: 9 -> [St2, E9, St1]; St2: fn -> [E9, St1, Efn, St2]; E9 -> [.., S9];
/// St1 done -> [Efn, St2, S9, IS1]; Efn -> Call -> [St2, S9, IS1, C];
/// St2 done -> [S9, IS1, C, IS2]; S9, IS1; C: 5 -> [IS2, S5]; IS2, S5.
#[tokio::test(start_paused = true)]
async fn produced_feed_context_covers_its_subtree() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let inner = Feed::generator([Feed::function(|| 5)]).with_context("b");
    f.add_sync_iterator_with_context([inner, Feed::Value(9)], "a");
    f.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        let c = r.context().copied().unwrap_or("");
        seen.push(format!("{} @{c}", line(&r).split(" @").next().unwrap()));
    }
    assert_eq!(
        seen,
        [
            "ok 9 [SYNC_ITERATOR#1] @a",
            "end - [SYNC_ITERATOR#1] @a",
            "end - [SYNC_GENERATOR#2, SYNC_ITERATOR#1] @b",
            "ok 5 [SYNC_FUNCTION#3, SYNC_GENERATOR#2, SYNC_ITERATOR#1] @b",
            "stopped - @",
        ]
    );
}

/// Changes made before the first tick: `change_once` applies to the second tick, then
/// the original grid resumes; `change_after` replaces the period from the first tick.
#[tokio::test(start_paused = true)]
async fn ticker_changes_before_the_first_tick() {
    let ctx = hp::Ctx::beginning("a");
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx).build().unwrap();
    t.change_once(Duration::from_secs(5)).unwrap();
    assert_eq!(
        ticks(&mut t, t0, 3).await,
        [(1, 0, 5_000), (2, 5_000, 1_000), (3, 6_000, 3_000)]
    );
    let t0 = Instant::now();
    let mut t = hp::tick(Duration::from_secs(3), &ctx).build().unwrap();
    t.change_after(Duration::from_secs(5)).unwrap();
    assert_eq!(
        ticks(&mut t, t0, 3).await,
        [(1, 0, 5_000), (2, 5_000, 5_000), (3, 10_000, 5_000)]
    );
}

/// A deadline already past finishes the child at once with DeadlineExceeded; a parent
/// cancelled before the deadline wins (nearest own outcome: the parent's); the deadline
/// timer of a dropped child does not keep anything alive or fire later.
#[tokio::test(start_paused = true)]
async fn ctx_deadlines_past_parent_first_and_dropped() {
    let root = hp::Ctx::beginning("a");
    let past = root.child_with_deadline("p", Instant::now());
    assert!(past.done() && !past.cancelled());
    assert!(
        past.exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );

    let parent = root.child("q");
    let c = parent.child_with_timeout("c", Duration::from_secs(5));
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    c.add_done_callback(move |f| {
        assert!(f.is_cancelled());
        r.fetch_add(1, SeqCst);
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    parent.cancel();
    assert!(c.cancelled());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        c.cancelled(),
        "the deadline does not overwrite the parent's outcome"
    );
    assert_eq!(ran.load(SeqCst), 1);

    let d = root.child_with_timeout("d", Duration::from_secs(5));
    let r = ran.clone();
    d.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    drop(d);
    assert_eq!(
        ran.load(SeqCst),
        2,
        "dropped: finished as cancelled at once"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(ran.load(SeqCst), 2);
    assert_eq!(root.child_count(), 2);
}

/// A finished task produced by an iterator is extended like a value (its value at the
/// back at once); a pending one delivers when it finishes.
/// [St1] -> [Et, St1]; Et: TASK#2 done -> [St1, S5]; St1: pending task ->
/// [S5, Ep, St1]; S5; Ep: TASK#3 waits -> [St1]; St1 exhausted -> [IS1]; IS1; at 1 s: S6.
#[tokio::test(start_paused = true)]
async fn produced_tasks_finished_and_pending() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    let done = hp::Task::spawn(async { 5 });
    done.wait().await; // finished, its output still there for the manager's join
    let pending = hp::Task::spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        6
    });
    f.add_sync_iterator([Feed::task(done), Feed::task(pending)]);
    f.set_as_finished_if_out_of_sources();
    assert_eq!(
        drain(&mut s).await,
        [
            "ok 5 [TASK#2, SYNC_ITERATOR#1] @-",
            "end - [SYNC_ITERATOR#1]",
            "ok 6 [TASK#3, SYNC_ITERATOR#1] @-",
            "stopped -",
        ]
    );
}

/// `next()` cancelled at random points (a `select!` against a short random sleep) while
/// coroutines, streams and iterators deliver: every value exactly once, then Stopped.
/// Returns how many `next()` calls the select cancelled.
async fn next_cancelled_at_random_points(seed: u64) -> usize {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) = hp::queue_manager::<i32, ()>(&ctx);
    let mut rng = common::Rng(seed);
    let mut want = Vec::new();
    for i in 0..30 {
        let ms = rng.below(30);
        f.add_coroutine(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            i
        });
        want.push(i);
        let every = Duration::from_millis(rng.below(7) + 1);
        f.add_async_generator(ticker_stream(3, every).map(move |x| 1_000 + i * 10 + x));
        want.extend((0..3).map(|x| 1_000 + i * 10 + x));
        f.add_sync_iterator([2_000 + i, 3_000 + i]);
        want.extend([2_000 + i, 3_000 + i]);
    }
    f.set_as_finished_if_out_of_sources();
    let mut got = Vec::new();
    let mut cancelled = 0;
    loop {
        let ms = rng.below(3);
        tokio::select! {
            r = s.next() => match r {
                Some(R::Success { value, .. }) => got.push(value),
                Some(R::IterationStop { error: None, .. }) => {}
                Some(R::Stopped { error: None }) => {}
                Some(_) => panic!("unexpected result"),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(ms)) => cancelled += 1,
        }
    }
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    cancelled
}

#[tokio::test(start_paused = true)]
async fn cancel_next_at_random_points_current_thread() {
    for seed in 1..20 {
        // Paused time: the schedule is exact, every seed cancels some `next()`.
        assert!(next_cancelled_at_random_points(seed).await > 0);
    }
}

#[test]
fn cancel_next_at_random_points_multi_thread() {
    common::multi_thread(async {
        // Real time on a loaded machine: one seed may find a result ready at every
        // select (CI saw it), so only the whole run must have cancelled some `next()`.
        let mut cancelled = 0;
        for seed in 1..10 {
            cancelled += next_cancelled_at_random_points(seed).await;
        }
        assert!(cancelled > 0);
    });
}

/// The async queue's `next()` cancelled at random points while a producer task appends
/// items, front items and instructions: every item exactly once.
async fn queue_next_cancelled_at_random_points(seed: u64) {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    let producer = tokio::spawn(async move {
        let mut rng = common::Rng(seed);
        for i in 0..300u32 {
            match rng.below(3) {
                0 => {
                    h.append(i).unwrap();
                }
                1 => {
                    h.append_front(i).unwrap();
                }
                _ => {
                    let h2 = h.clone();
                    h.append_instruction(move || {
                        h2.append(i).unwrap();
                    })
                    .unwrap();
                }
            }
            if rng.below(4) == 0 {
                tokio::time::sleep(Duration::from_millis(rng.below(3))).await;
            }
        }
    });
    let mut rng = common::Rng(seed + 99);
    let mut got = Vec::new();
    let mut all = q.get_all();
    while got.len() < 300 {
        let ms = rng.below(3);
        tokio::select! {
            x = all.next() => got.push(x.expect("the iteration does not end")),
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
        }
    }
    producer.await.unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn cancel_queue_next_at_random_points_current_thread() {
    for seed in 1..20 {
        queue_next_cancelled_at_random_points(seed).await;
    }
}

#[test]
fn cancel_queue_next_at_random_points_multi_thread() {
    common::multi_thread(async {
        for seed in 1..10 {
            queue_next_cancelled_at_random_points(seed).await;
        }
    });
}

/// A stream that wakes while the consumer is busy is polled when the consumer asks for
/// its next entry, before that entry: its item's extension and next step go to the back.
/// A: items 100, 101 each 1 s after it is polled; B: endless iterator; the consumer
/// spends 2 s on each result. Worked by hand (t = virtual seconds):
/// t0: [StA, StB]; StA pending (wakes at 1); StB:0 -> [E0, StB] -> [StB, S0] ->
///     [S0, E1, StB]; S0.
/// t2: A woke: 100 -> [E1, StB, E100, StA]; E1 -> [StB, E100, StA, S1];
///     StB:2 -> [E100, StA, S1, E2, StB]; E100 -> [StA, S1, E2, StB, S100];
///     StA pending (wakes at 3) -> S1.
/// t4: A: 101 -> [E2, StB, S100, E101, StA]; E2 -> [.., S2]; StB:3 -> [.., E3, StB];
///     S100.
/// t6: E101 -> [StA, S2, E3, StB, S101]; StA: exhausted -> [S2, E3, StB, S101, ISA]; S2.
/// t8: E3 -> [StB, S101, ISA, S3]; StB:4 -> [S101, ISA, S3, E4, StB]; S101.
/// t10: ISA. t12: S3.
#[tokio::test(start_paused = true)]
async fn turns_stream_woken_while_the_consumer_is_busy() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "queue_manager", || "-");
    f.add_async_generator(ticker_stream(2, Duration::from_secs(1)).map(|x| 100 + x));
    f.add_sync_iterator(0..);
    let t0 = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..7 {
        let r = s.next().await.unwrap();
        seen.push(format!(
            "{} t={}",
            line(&r),
            (Instant::now() - t0).as_secs()
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        seen,
        [
            "ok 0 [SYNC_ITERATOR#2] @- t=0",
            "ok 1 [SYNC_ITERATOR#2] @- t=2",
            "ok 100 [ASYNC_GENERATOR#1] @- t=4",
            "ok 2 [SYNC_ITERATOR#2] @- t=6",
            "ok 101 [ASYNC_GENERATOR#1] @- t=8",
            "end - [ASYNC_GENERATOR#1] t=10",
            "ok 3 [SYNC_ITERATOR#2] @- t=12",
        ]
    );
    s.close().await;
}

/// Several waiters on one context, event, future and task (multi-thread): finishing each
/// wakes every waiter; waiters dropped before it (cancelled) leave the others intact.
#[test]
fn several_waiters_all_woken_multi_thread() {
    common::multi_thread(async {
        for _ in 0..20 {
            let root = hp::Ctx::beginning("r");
            let c = root.child("c");
            let ev = hp::Event::new();
            let fut = hp::Fut::<u8>::new();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = hp::Task::spawn(async move {
                let _ = rx.await;
                3u8
            });
            let woken = Arc::new(AtomicUsize::new(0));
            let mut waiters = Vec::new();
            for k in 0..8 {
                let (c, ev, fut, task, w) = (
                    c.clone(),
                    ev.clone(),
                    fut.clone(),
                    task.clone(),
                    woken.clone(),
                );
                waiters.push(tokio::spawn(async move {
                    match k % 4 {
                        0 => {
                            c.wait().await;
                        }
                        1 => ev.wait().await,
                        2 => fut.wait().await,
                        _ => task.wait().await,
                    }
                    w.fetch_add(1, SeqCst);
                }));
            }
            // a few waiters that give up (their futures dropped) before anything finishes
            for _ in 0..4 {
                let (c, ev) = (c.clone(), ev.clone());
                let gave_up = tokio::spawn(async move {
                    tokio::select! {
                        _ = c.wait() => {}
                        () = ev.wait() => {}
                        () = tokio::task::yield_now() => {}
                    }
                });
                gave_up.await.unwrap();
            }
            tokio::task::yield_now().await;
            c.cancel();
            ev.set();
            fut.set_result(1);
            tx.send(()).unwrap();
            for w in waiters {
                w.await.unwrap();
            }
            assert_eq!(woken.load(SeqCst), 8);
        }
    });
}

/// A stop by an error of the parent context: Stopped, the ended iterator and the
/// cancelled running task all carry that error (not "cancelled"), and `cut_short` lists
/// both with their contexts.
#[tokio::test(start_paused = true)]
async fn stop_by_a_parent_error_carries_the_error() {
    let ctx = hp::Ctx::beginning("t");
    let parent = ctx.child("p");
    let (mut s, f) =
        hp::queue_manager_with_empty_context::<i32, &str>(&parent, "queue_manager", || "-");
    f.add_coroutine_with_context(std::future::pending::<i32>(), "co");
    f.add_sync_iterator_with_context(0.., "it");
    // [St3]: St3:0 -> [E0, St3] -> [St3, S0] -> [S0, E1, St3]; S0
    assert_eq!(line(&s.next().await.unwrap()), "ok 0 [SYNC_ITERATOR#3] @it");
    parent.set_exception(Boom("down"));
    // [Stopped, E1, St3, F2(down)]; Stopped; E1 -> [St3, F2, S1]; St3 -> [F2, S1, IS3]
    assert_eq!(
        drain(&mut s).await,
        [
            "stopped down",
            "fail down [TASK#2, COROUTINE#1]",
            "ok 1 [SYNC_ITERATOR#3] @it",
            "end down [SYNC_ITERATOR#3]",
        ]
    );
    let cut: Vec<String> = s
        .cut_short()
        .iter()
        .map(|c| format!("{:?} @{}", c.sources, c.context))
        .collect();
    assert_eq!(cut, ["[TASK#2, COROUTINE#1] @co", "[SYNC_ITERATOR#3] @it"]);
}
