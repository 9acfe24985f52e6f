//! Bad input: zero and huge durations, zero iterations, use after finish, adding to
//! finished things, dropping things mid-operation, cancelling twice. Each test is one row
//! of the table in docs/RELIABILITY.md and shows the documented result: never a hang, a
//! panic or a leak.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Counts its drops: shows that what was given was freed.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

// ---- durations ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn ticker_every_zero_without_min_wait_is_rejected() {
    let ctx = hp::Ctx::beginning("app");
    let err = hp::tick(Duration::ZERO, &ctx).min_wait(None).build();
    assert!(matches!(err, Err(hp::TickerError::ZeroEveryWithoutMinWait)));
}

#[tokio::test(start_paused = true)]
async fn ticker_every_zero_and_min_wait_zero_ticks_back_to_back() {
    let ctx = hp::Ctx::beginning("app");
    let t = hp::tick(Duration::ZERO, &ctx)
        .min_wait(Duration::ZERO)
        .max_iterations(3)
        .build()
        .unwrap();
    let start = Instant::now();
    let ticks: Vec<_> = t.collect().await;
    assert_eq!(
        ticks,
        [
            (1, Duration::ZERO),
            (2, Duration::ZERO),
            (3, Duration::ZERO)
        ]
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn ticker_every_max_ticks_once_then_waits_without_panicking() {
    let ctx = hp::Ctx::beginning("app");
    let mut t = hp::tick(Duration::MAX, &ctx).build().unwrap();
    let (i, till_next) = t.next().await.unwrap();
    assert_eq!(i, 1);
    assert!(till_next > s(100 * 365 * 24 * 3600), "{till_next:?}");
    // The next tick is centuries away: the ctx ends the wait.
    let c = ctx.clone();
    tokio::spawn(async move {
        sleep(s(1)).await;
        c.cancel();
    });
    assert_eq!(t.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn ticker_min_wait_max_does_not_panic() {
    let ctx = hp::Ctx::beginning("app");
    let mut t = hp::tick(s(1), &ctx)
        .min_wait(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(t.next().await.unwrap().0, 1);
    ctx.cancel();
    assert_eq!(t.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn ticker_max_time_zero_yields_nothing() {
    let ctx = hp::Ctx::beginning("app");
    let t = hp::tick(s(1), &ctx)
        .max_time(Duration::ZERO)
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(t.collect::<Vec<_>>().await, []);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn ticker_max_time_max_is_no_limit() {
    let ctx = hp::Ctx::beginning("app");
    let t = hp::tick(s(1), &ctx)
        .max_time(Duration::MAX)
        .max_iterations(3)
        .build()
        .unwrap();
    let ticks: Vec<u64> = t.map(|(i, _)| i).collect().await;
    assert_eq!(ticks, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn ticker_zero_iterations_yields_nothing() {
    let ctx = hp::Ctx::beginning("app");
    let t = hp::tick(s(1), &ctx).max_iterations(0).build().unwrap();
    assert_eq!(t.collect::<Vec<_>>().await, []);
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_zero_cuts_pending_work_short_at_once() {
    let ctx = hp::Ctx::beginning("app");
    let ev = hp::Event::new();
    let start = Instant::now();
    let out = ctx
        .async_with_timeout(sleep(s(5)))
        .timeout(Duration::ZERO)
        .timeout_event(&ev)
        .await;
    assert!(matches!(out, Err(hp::Failure::Cancelled)));
    assert!(ev.is_set());
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Work that is ready at once still gives its value.
    let ready = ctx
        .async_with_timeout(async { 7 })
        .timeout(Duration::ZERO)
        .await;
    assert_eq!(ready.ok(), Some(7));
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_max_never_times_out() {
    let ctx = hp::Ctx::beginning("app");
    let out = ctx
        .async_with_timeout(async {
            sleep(s(3600)).await;
            1
        })
        .timeout(Duration::MAX)
        .await;
    assert_eq!(out.ok(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn child_with_timeout_zero_is_done_at_once_with_deadline_exceeded() {
    let ctx = hp::Ctx::beginning("app");
    let child = ctx.child_with_timeout("c", Duration::ZERO).drop_guard();
    assert!(child.done());
    let err = child.exception().unwrap().unwrap();
    assert!(err.downcast_ref::<hp::DeadlineExceeded>().is_some());
}

#[tokio::test(start_paused = true)]
async fn child_with_timeout_max_never_expires_and_does_not_panic() {
    let ctx = hp::Ctx::beginning("app");
    let child = ctx.child_with_timeout("c", Duration::MAX).drop_guard();
    sleep(s(10 * 365 * 24 * 3600)).await;
    assert!(!child.done());
    ctx.cancel();
    assert!(child.cancelled());
}

#[test]
fn sync_queue_timeout_zero_and_max_still_wake_on_cancel() {
    for timeout in [Duration::ZERO, Duration::MAX] {
        let ctx = hp::Ctx::beginning("app");
        let q = hp::sync_queue::<u32>(&ctx).timeout(timeout).build();
        let c = ctx.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            c.cancel();
        });
        assert_eq!(q.get_all().count(), 0);
        t.join().unwrap();
    }
}

// ---- use after finish -----------------------------------------------------------------

#[test]
fn child_of_a_finished_context_is_born_done() {
    let ctx = hp::Ctx::beginning("app");
    ctx.cancel();
    let child = ctx.child("late").drop_guard();
    assert!(child.done() && child.cancelled());
    // CTX 13: a child that exists is listed, finished or not, until it is dropped.
    assert_eq!(ctx.child_count(), 1);
    drop(child);
    assert_eq!(ctx.child_count(), 0);
}

#[test]
fn callback_added_to_a_finished_context_runs_at_once() {
    let ctx = hp::Ctx::beginning("app");
    ctx.cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    ctx.add_done_callback(move |how| {
        assert!(how.is_cancelled());
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(runs.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn background_task_on_a_finished_context_still_runs() {
    // `async_as_background` only reports through the context (the seed's behaviour); a
    // holder or `cancel()` bounds a task's life.
    let ctx = hp::Ctx::beginning("app");
    ctx.cancel();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let task = ctx.async_as_background(async move {
        r.fetch_add(1, SeqCst);
    });
    assert!(task.await.is_ok());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn setting_a_finished_future_again_returns_false_and_keeps_the_first_outcome() {
    let fut = hp::Fut::<u8>::new();
    assert!(fut.set_result(1));
    assert!(!fut.set_result(2));
    assert!(!fut.set_exception(hp::Error::msg("late")));
    assert!(!fut.cancel());
    assert_eq!(fut.result().unwrap(), 1);
}

// ---- adding to finished things --------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn adding_to_a_finished_holder_cancels_the_task_at_once() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::task_holder(&ctx);
    let handle = ts.handle();
    ts.finish().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let task = handle.spawn_silent(async move {
        r.fetch_add(1, SeqCst);
    });
    assert!(matches!(task.await, Err(hp::Failure::Cancelled)));
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(handle.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn adding_to_a_dropped_holder_cancels_the_task_at_once() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::task_holder(&ctx);
    let handle = ts.handle();
    drop(ts);
    let task = handle.spawn_silent(sleep(s(1)));
    assert!(matches!(task.await, Err(hp::Failure::Cancelled)));
    assert!(handle.is_closed());
}

#[tokio::test(start_paused = true)]
async fn appending_after_the_queue_was_dropped_gives_the_item_back() {
    let ctx = hp::Ctx::beginning("app");
    let q = hp::queue::<Counted>(&ctx).build();
    let h = q.handle();
    drop(q);
    let drops = Arc::new(AtomicUsize::new(0));
    let back = h.append(Counted(drops.clone())).unwrap_err();
    assert!(back.is_consumer_gone());
    assert_eq!(
        drops.load(SeqCst),
        0,
        "the queue dropped nothing: the item came back"
    );
    drop(back);
    assert_eq!(drops.load(SeqCst), 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let f = h
        .append_instruction_front(move || {
            r.fetch_add(1, SeqCst);
        })
        .unwrap_err()
        .into_inner();
    assert_eq!(ran.load(SeqCst), 0);
    f(); // it came back unrun: the caller may run it
    assert_eq!(ran.load(SeqCst), 1);
    assert!(h.is_empty());
}

#[tokio::test(start_paused = true)]
async fn appending_after_the_queue_context_finished_keeps_the_item_for_remaining() {
    let ctx = hp::Ctx::beginning("app");
    let mut q = hp::queue::<u32>(&ctx).build();
    ctx.cancel();
    q.append(1).unwrap();
    assert_eq!(q.get_all().collect::<Vec<_>>().await, []);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1]);
}

#[test]
fn appending_to_a_sync_queue_after_its_context_finished_keeps_the_item_for_remaining() {
    let ctx = hp::Ctx::beginning("app");
    let q = hp::sync_queue::<u32>(&ctx).build();
    ctx.cancel();
    q.append(1).unwrap();
    assert_eq!(q.get_all().count(), 0);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1]);
}

// ---- dropping things mid-operation ----------------------------------------------------

#[tokio::test(start_paused = true)]
async fn dropping_a_queue_iteration_mid_way_keeps_the_rest() {
    let ctx = hp::Ctx::beginning("app");
    let mut q = hp::queue::<u32>(&ctx).build();
    for n in 0..5 {
        q.append(n).unwrap();
    }
    {
        let mut all = q.get_all();
        assert_eq!(all.next().await, Some(0));
        // A `next()` that is waiting is dropped too: nothing is taken.
        let mut next = all.next();
        assert_eq!((&mut next).await, Some(1));
    }
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_async_with_timeout_drops_the_work() {
    let ctx = hp::Ctx::beginning("app");
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Counted(drops.clone());
    let call = ctx.async_with_timeout(async move {
        let _d = d;
        sleep(s(5)).await;
    });
    let out = tokio::time::timeout(s(1), call).await;
    assert!(out.is_err());
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(ctx.child_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_holder_finish_future_mid_way_cancels_what_is_left() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::task_holder(&ctx);
    let long = ts.spawn_silent(sleep(s(100)));
    let short = ts.spawn_silent(sleep(s(1)));
    assert!(tokio::time::timeout(s(2), ts.finish()).await.is_err());
    assert!(short.done() && !short.cancelled());
    assert!(matches!(long.await, Err(hp::Failure::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_ticker_mid_wait_finishes_its_context() {
    let ctx = hp::Ctx::beginning("app");
    let mut t = hp::tick(s(5), &ctx).build().unwrap();
    let tctx = t.ctx().clone();
    t.next().await;
    assert!(tokio::time::timeout(s(1), t.next()).await.is_err());
    drop(t);
    assert!(tctx.cancelled());
    drop(tctx);
    assert_eq!(ctx.child_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_context_wait_mid_way_leaves_no_callback_behind() {
    let ctx = hp::Ctx::beginning("app");
    for _ in 0..100 {
        let w = ctx.wait();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), w)
                .await
                .is_err()
        );
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    ctx.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    ctx.cancel();
    assert_eq!(runs.load(SeqCst), 1);
}

// ---- cancelling twice -----------------------------------------------------------------

#[test]
fn cancelling_a_context_twice_returns_false_the_second_time_and_runs_callbacks_once() {
    let ctx = hp::Ctx::beginning("app");
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    ctx.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    assert!(ctx.cancel());
    assert!(!ctx.cancel());
    assert!(!ctx.set_exception(hp::Error::msg("late")));
    assert!(ctx.cancelled());
    assert_eq!(runs.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_task_twice_returns_false_the_second_time() {
    let task = hp::Task::spawn(sleep(s(1)));
    assert!(task.cancel());
    assert!(matches!((&task).await, Err(hp::Failure::Cancelled)));
    assert!(!task.cancel());
    let done = hp::Task::spawn(async { 1u8 });
    assert_eq!((&done).await.ok(), Some(1));
    assert!(!done.cancel());
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_holder_twice_is_harmless() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::task_holder(&ctx);
    let t = ts.spawn_silent(sleep(s(10)));
    ts.cancel_all();
    ts.cancel_all();
    ts.finish().await;
    assert!(t.cancelled());
}

#[tokio::test(start_paused = true)]
async fn setting_a_queue_breaker_twice_ends_one_iteration_only() {
    let ctx = hp::Ctx::beginning("app");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    q.append(1).unwrap();
    q.append(2).unwrap();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    h.breaker().set();
    h.breaker().set();
    assert_eq!(all.next().await, None);
    drop(all);
    assert_eq!(q.get_all().next().await, Some(2));
}

#[tokio::test(start_paused = true)]
async fn waiting_for_nothing_returns_at_once() {
    let start = Instant::now();
    hp::wait_for_first(&[]).await;
    hp::wait_for_all(&[]).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
}

// ---- queue manager --------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn adding_to_a_stopped_queue_manager_ends_new_sources_with_the_stop_error() {
    use hp::QueueManagerResult as R;
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    streamer.ctx().cancel();
    assert!(matches!(
        streamer.next().await,
        Some(R::Stopped {
            error: Some(hp::Failure::Cancelled)
        })
    ));
    assert!(streamer.next().await.is_none());
    assert!(feeder.is_stopped());
    let iter = feeder.add_sync_iterator([1u32, 2]);
    let fut = feeder.add_coroutine(async { 3u32 });
    feeder.add_value(hp::Feed::Value(4));
    // What is added after the stop is still delivered, by the turn model: a new
    // iteration over the (fused) streamer runs the iterator's step, which finds the
    // ctx done.
    streamer.resume();
    let late: Vec<R<u32, ()>> = streamer.by_ref().collect().await;
    let of = |id: hp::SourceId| {
        late.iter()
            .find(|r| r.sources().is_some_and(|s| s.added() == id))
    };
    assert!(matches!(
        of(iter),
        Some(R::IterationStop {
            error: Some(hp::Failure::Cancelled),
            ..
        })
    ));
    assert!(matches!(
        of(fut),
        Some(R::Failure {
            error: hp::Failure::Cancelled,
            ..
        })
    ));
    assert!(late.iter().any(|r| r.value() == Some(&4)));
    assert_eq!(feeder.live_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn adding_through_a_feeder_after_the_streamer_was_dropped_runs_nothing() {
    let ctx = hp::Ctx::beginning("app");
    let (streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    drop(streamer);
    assert!(feeder.is_stopped());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    feeder.add_coroutine(async move {
        r.fetch_add(1, SeqCst);
        1u32
    });
    let r = ran.clone();
    feeder.add_sync_iterator(std::iter::from_fn(move || {
        r.fetch_add(1, SeqCst);
        Some(1u32)
    }));
    sleep(s(1)).await;
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(feeder.live_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn queue_manager_with_no_sources_stops_at_once_when_told_to_finish() {
    use hp::QueueManagerResult as R;
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.set_as_finished_if_out_of_sources();
    assert!(matches!(
        streamer.next().await,
        Some(R::Stopped { error: None })
    ));
    assert!(streamer.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn queue_manager_empty_iterator_gives_only_its_iteration_stop() {
    use hp::QueueManagerResult as R;
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.add_sync_iterator(std::iter::empty::<u32>());
    feeder.set_as_finished_if_out_of_sources();
    let all: Vec<R<u32, ()>> = streamer.by_ref().collect().await;
    assert!(matches!(all[0], R::IterationStop { error: None, .. }));
    assert!(matches!(all[1], R::Stopped { error: None }));
    assert_eq!(all.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn closing_a_queue_manager_twice_is_harmless() {
    let ctx = hp::Ctx::beginning("app");
    let (streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.add_coroutine(async {
        sleep(s(3600)).await;
        1u32
    });
    let c = streamer.ctx().clone();
    assert!(c.cancel());
    assert!(!c.cancel());
    streamer.close().await;
    assert!(feeder.is_stopped());
    assert_eq!(feeder.live_sources(), 0);
}
