//! Hostile tests of the queue manager's per-item fast path (taking a `ValueStep` steps
//! its source without a second lookup; boxed stream bodies; parking_lot's mutex): the
//! exact turn model over 100 000 items, a stop in the middle of a round, a stream that
//! wakes another one while it is stepped, a panicking stream after many items, on both
//! runtimes.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::Poll;

use common::{block_on_paused as current_thread, multi_thread};
use futures::StreamExt;
use machinery::helpers::{self as hp, Failure, QueueManagerResult as R};

const K: usize = 10;
const PER: usize = 10_000;
const TAG: usize = 1_000_000;

/// Source `j` yields `j * TAG + r` for round `r`: nine streams and one sync iterator
/// (the last), added in that order.
fn add_sources(feeder: &hp::QueueFeeder<usize, ()>) {
    for j in 0..K - 1 {
        feeder.add_async_generator(futures::stream::iter((0..PER).map(move |r| j * TAG + r)));
    }
    feeder.add_sync_iterator((0..PER).map(|r| (K - 1) * TAG + r));
}

async fn round_robin_over_a_hundred_thousand_items() {
    let ctx = hp::Ctx::beginning("fast");
    let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
    add_sources(&feeder);
    feeder.set_as_finished_if_out_of_sources();
    // Every round delivers one value of each source, in the order they were added; a
    // source's end comes after its last value (a round after the step that found it).
    let (mut i, mut finished, mut ends) = (0, 0, 0);
    while ends < K {
        match streamer.next().await {
            Some(R::Success { value, .. }) => {
                assert_eq!(value, (i % K) * TAG + i / K, "item {i}");
                if value % TAG == PER - 1 {
                    finished += 1;
                }
                i += 1;
            }
            Some(R::IterationStop { error: None, .. }) => {
                ends += 1;
                assert!(ends <= finished, "an end ahead of its source's last value");
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
    assert_eq!(i, K * PER);
    assert!(matches!(
        streamer.next().await,
        Some(R::Stopped { error: None })
    ));
    assert!(streamer.next().await.is_none());
    assert_eq!(streamer.live_sources(), 0);
}

#[test]
fn ten_sources_deliver_in_exact_rounds_over_a_hundred_thousand_items() {
    current_thread(round_robin_over_a_hundred_thousand_items());
    multi_thread(round_robin_over_a_hundred_thousand_items());
}

async fn stopped_in_the_middle_of_a_round() {
    let ctx = hp::Ctx::beginning("fast");
    let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
    add_sources(&feeder);
    let taken = 5 * K + 3;
    let mut last = [None::<usize>; K];
    for i in 0..taken {
        match streamer.next().await {
            Some(R::Success { value, .. }) => {
                assert_eq!(value, (i % K) * TAG + i / K);
                last[value / TAG] = Some(value % TAG);
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
    streamer.ctx().cancel();
    assert!(matches!(
        streamer.next().await,
        Some(R::Stopped {
            error: Some(Failure::Cancelled)
        })
    ));
    // What was queued still comes, in order and without gaps; every source then ends
    // with the stop's failure, exactly once.
    let mut stops = 0;
    while let Some(r) = streamer.next().await {
        match r {
            R::Success { value, .. } => {
                let (j, v) = (value / TAG, value % TAG);
                assert_eq!(v, last[j].map_or(0, |l| l + 1), "source {j}");
                last[j] = Some(v);
            }
            R::IterationStop {
                error: Some(Failure::Cancelled),
                ..
            } => stops += 1,
            other => panic!("after the stop: {other:?}"),
        }
    }
    assert_eq!(stops, K);
    assert_eq!(streamer.live_sources(), 0);
    assert_eq!(streamer.cut_short().len(), K);
}

#[test]
fn a_stop_in_the_middle_of_a_round_ends_every_source_once_and_loses_nothing_queued() {
    current_thread(stopped_in_the_middle_of_a_round());
    multi_thread(stopped_in_the_middle_of_a_round());
}

/// A stream that, each time it is polled, wakes the waker another stream left (so that
/// stream is on the woken list when the `ValueStep` of this one is taken).
async fn a_step_that_wakes_another_stream() {
    let ctx = hp::Ctx::beginning("fast");
    let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
    let slot: Arc<std::sync::Mutex<Option<std::task::Waker>>> = Arc::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let (s2, r2) = (slot.clone(), ready.clone());
    // The waiting stream: ready once per wake, 1000 items.
    let mut given = 0;
    feeder.add_async_generator(futures::stream::poll_fn(move |cx| {
        if given == 1000 {
            return Poll::Ready(None);
        }
        if r2.load(SeqCst) > given {
            given += 1;
            return Poll::Ready(Some(TAG + given));
        }
        *s2.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }));
    // The waking one: each item wakes the other.
    feeder.add_sync_iterator((0..1000).inspect(move |_| {
        ready.fetch_add(1, SeqCst);
        if let Some(w) = slot.lock().unwrap().take() {
            w.wake();
        }
    }));
    feeder.set_as_finished_if_out_of_sources();
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    let mut ends = 0;
    while let Some(r) = streamer.next().await {
        match r {
            R::Success { value, .. } if value >= TAG => theirs.push(value - TAG),
            R::Success { value, .. } => mine.push(value),
            R::IterationStop { error: None, .. } => ends += 1,
            R::Stopped { error: None } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(mine, (0..1000).collect::<Vec<_>>());
    assert_eq!(theirs, (1..=1000).collect::<Vec<_>>());
    assert_eq!(ends, 2);
}

#[test]
fn a_step_waking_another_stream_keeps_both_in_order() {
    current_thread(a_step_that_wakes_another_stream());
    multi_thread(a_step_that_wakes_another_stream());
}

async fn a_stream_panicking_after_many_items() {
    let ctx = hp::Ctx::beginning("fast");
    let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
    feeder.add_async_generator(futures::stream::iter(0..50_000usize).map(|i| {
        if i == 49_999 {
            panic!("boom at the end");
        }
        i
    }));
    feeder.add_sync_iterator(TAG..TAG + 50_000);
    feeder.set_as_finished_if_out_of_sources();
    let (mut values, mut failures, mut stops) = (0, 0, 0);
    while let Some(r) = streamer.next().await {
        match r {
            R::Success { .. } => values += 1,
            R::Failure { .. } => failures += 1,
            R::IterationStop { error, .. } => {
                stops += 1;
                assert_eq!(error.is_some(), failures == 1 && stops == 1);
            }
            R::Stopped { error: None } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((values, failures, stops), (49_999 + 50_000, 1, 2));
    assert_eq!(streamer.live_sources(), 0);
}

#[test]
fn a_stream_panicking_after_fifty_thousand_items_fails_once_and_the_other_goes_on() {
    current_thread(a_stream_panicking_after_many_items());
    multi_thread(a_stream_panicking_after_many_items());
}
