//! The ticker (`hp::tick`): the seed's two examples and every rule of SEMANTICS.md's
//! "Ticker" section, asserted as whole timelines on paused time.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One tick as the tests see it: (virtual time since start, iteration, time_till_next).
type Seen = (Duration, u64, Duration);

/// Runs `ticker` with a loop body of `body` until it ends or `limit` ticks were seen;
/// returns the ticks and the instant the stream ended (or the limit was reached).
async fn run(mut ticker: hp::Ticker, body: Duration, limit: usize) -> (Vec<Seen>, Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some((i, till_next)) = ticker.next().await {
        seen.push((start.elapsed(), i, till_next));
        if seen.len() >= limit {
            break;
        }
        sleep(body).await;
    }
    (seen, start.elapsed())
}

fn instants(seen: &[Seen]) -> Vec<u64> {
    seen.iter().map(|(t, _, _)| t.as_secs()).collect()
}

fn till_next(seen: &[Seen]) -> Vec<Duration> {
    seen.iter().map(|(_, _, n)| *n).collect()
}

// every 10, body 8:  0 ... 8 (wait) 10 ... 18 (wait) 20 ...
#[tokio::test(start_paused = true)]
async fn seed_example_ticks_at_0_10_20_30_40_with_an_eight_second_body() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(10), &ctx).build().unwrap();
    let (seen, _) = run(ticker, s(8), 5).await;
    assert_eq!(instants(&seen), [0, 10, 20, 30, 40]);
    let iterations: Vec<u64> = seen.iter().map(|x| x.1).collect();
    assert_eq!(iterations, [1, 2, 3, 4, 5]);
    assert_eq!(till_next(&seen), [s(10); 5]);
}

// every 10: 0 10 20 | change_after(20) | 40 60 | change_once(40) | 100 | back to 20: 120 140
#[tokio::test(start_paused = true)]
async fn seed_example_change_after_sets_a_new_every_and_a_one_off() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(10), &ctx).build().unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some((i, till_next)) = ticker.next().await {
        seen.push((start.elapsed().as_secs(), till_next.as_secs()));
        if i == 3 {
            ticker.change_after(s(20)).unwrap();
        } else if i == 5 {
            ticker.change_once(s(40)).unwrap();
        } else if i == 8 {
            break;
        }
    }
    let at: Vec<u64> = seen.iter().map(|x| x.0).collect();
    assert_eq!(at, [0, 10, 20, 40, 60, 100, 120, 140]);
    // time_till_next is reported before change_after is called.
    let next: Vec<u64> = seen.iter().map(|x| x.1).collect();
    assert_eq!(next, [10, 10, 10, 20, 20, 20, 20, 20]);
}

// every 3: 0 3 6 | one-off 5 | 11 (reports 1) 12 15
#[tokio::test(start_paused = true)]
async fn a_one_off_change_returns_to_the_original_grid() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(3), &ctx).build().unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some((i, till_next)) = ticker.next().await {
        seen.push((start.elapsed().as_secs(), till_next.as_secs()));
        if i == 3 {
            ticker.change_once(s(5)).unwrap();
        } else if i == 6 {
            break;
        }
    }
    assert_eq!(seen, [(0, 3), (3, 3), (6, 3), (11, 1), (12, 3), (15, 3)]);
}

// every 5, body 9, min_wait 100 ms: ticks as soon as asked, next grid point >= now + 0.1
#[tokio::test(start_paused = true)]
async fn a_slow_body_skips_grid_points_with_the_default_min_wait() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(5), &ctx).build().unwrap();
    let (seen, _) = run(ticker, s(9), 5).await;
    assert_eq!(instants(&seen), [0, 9, 18, 27, 36]);
    assert_eq!(till_next(&seen), [s(5), s(1), s(2), s(3), s(4)]);
}

// every 5, body 7, min_wait off: late ticks at 7 and 14 report 3 and 1 (SEMANTICS rule 2).
#[tokio::test(start_paused = true)]
async fn a_slow_body_skips_grid_points_with_min_wait_off() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(5), &ctx).min_wait(None).build().unwrap();
    let (seen, _) = run(ticker, s(7), 5).await;
    assert_eq!(instants(&seen), [0, 7, 14, 21, 28]);
    assert_eq!(till_next(&seen), [s(5), s(3), s(1), s(4), s(2)]);
}

// every 5, body 10: a late tick yielded exactly on a grid point.
#[tokio::test(start_paused = true)]
async fn min_wait_zero_and_min_wait_off_differ_on_a_grid_point() {
    let ctx = hp::Ctx::beginning("t");
    let zero = hp::tick(s(5), &ctx)
        .min_wait(Duration::ZERO)
        .build()
        .unwrap();
    let (seen, _) = run(zero, s(10), 4).await;
    assert_eq!(instants(&seen), [0, 10, 20, 30]);
    assert_eq!(till_next(&seen), [s(5), s(0), s(0), s(0)]);

    let off = hp::tick(s(5), &ctx).min_wait(None).build().unwrap();
    let (seen, _) = run(off, s(10), 4).await;
    assert_eq!(instants(&seen), [0, 10, 20, 30]);
    assert_eq!(till_next(&seen), [s(5), s(5), s(5), s(5)]);
}

#[tokio::test(start_paused = true)]
async fn the_default_min_wait_makes_a_fast_ticker_skip_periods() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(ms(50), &ctx).max_iterations(4).build().unwrap();
    let start = Instant::now();
    let at: Vec<Duration> = ticker.map(|_| start.elapsed()).collect().await;
    assert_eq!(at, [ms(0), ms(100), ms(200), ms(300)]);

    let ticker = hp::tick(ms(50), &ctx)
        .min_wait(None)
        .max_iterations(4)
        .build()
        .unwrap();
    let start = Instant::now();
    let at: Vec<Duration> = ticker.map(|_| start.elapsed()).collect().await;
    assert_eq!(at, [ms(0), ms(50), ms(100), ms(150)]);
}

#[tokio::test(start_paused = true)]
async fn max_iterations_ends_the_stream_right_after_the_last_tick() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(3), &ctx).max_iterations(5).build().unwrap();
    let (seen, ended) = run(ticker, Duration::ZERO, 100).await;
    assert_eq!(instants(&seen), [0, 3, 6, 9, 12]);
    assert_eq!(ended, s(12));
}

#[tokio::test(start_paused = true)]
async fn max_time_ends_the_stream_when_the_next_tick_would_be_at_or_after_it() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(3), &ctx).max_time(s(10)).build().unwrap();
    let (seen, ended) = run(ticker, Duration::ZERO, 100).await;
    assert_eq!(instants(&seen), [0, 3, 6, 9]);
    assert_eq!(ended, s(9));

    // A tick would fall exactly on max_time: not yielded.
    let ticker = hp::tick(s(3), &ctx).max_time(s(9)).build().unwrap();
    let (seen, ended) = run(ticker, Duration::ZERO, 100).await;
    assert_eq!(instants(&seen), [0, 3, 6]);
    assert_eq!(ended, s(6));
}

#[tokio::test(start_paused = true)]
async fn max_time_ends_a_late_consumer_without_a_tick() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(3), &ctx).max_time(s(10)).build().unwrap();
    // body 4: ticks at 0, 4, 8; the consumer comes back at 12, past max_time.
    let (seen, ended) = run(ticker, s(4), 100).await;
    assert_eq!(instants(&seen), [0, 4, 8]);
    assert_eq!(ended, s(12));
}

#[tokio::test(start_paused = true)]
async fn max_time_passing_while_paused_ends_the_stream_at_max_time() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(3), &ctx).max_time(s(10)).build().unwrap();
    let start = Instant::now();
    assert_eq!(ticker.next().await, Some((1, s(3))));
    let _held = ticker.pauser().clone().acquire_owned().await.unwrap();
    assert_eq!(ticker.next().await, None);
    assert_eq!(start.elapsed(), s(10));
}

#[tokio::test(start_paused = true)]
async fn zero_max_iterations_or_max_time_gives_an_empty_stream() {
    let ctx = hp::Ctx::beginning("t");
    let start = Instant::now();
    let n = hp::tick(s(3), &ctx).max_iterations(0).build().unwrap();
    assert_eq!(n.count().await, 0);
    let n = hp::tick(s(3), &ctx)
        .max_time(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(n.count().await, 0);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

// every 5: 0 | paused from 1 to 12 | 12 (next 15) 15 20
#[tokio::test(start_paused = true)]
async fn pausing_holds_the_ticks_and_resuming_ticks_at_once_then_follows_the_grid() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(5), &ctx).build().unwrap();
    let pauser = ticker.pauser().clone();
    let start = Instant::now();
    assert_eq!(ticker.next().await, Some((1, s(5))));
    sleep(s(1)).await;
    let permit = pauser.clone().acquire_owned().await.unwrap();
    tokio::spawn(async move {
        sleep(s(11)).await;
        drop(permit);
    });
    let mut seen = Vec::new();
    while let Some((i, till_next)) = ticker.next().await {
        seen.push((start.elapsed().as_secs(), till_next.as_secs()));
        if i == 4 {
            break;
        }
    }
    assert_eq!(seen, [(12, 3), (15, 5), (20, 5)]);
    assert_eq!(pauser.available_permits(), 1, "the ticker keeps no permit");
}

#[tokio::test(start_paused = true)]
async fn a_pauser_without_permits_delays_the_first_tick_and_starts_the_grid_then() {
    let ctx = hp::Ctx::beginning("t");
    let pauser = Arc::new(Semaphore::new(0));
    let ticker = hp::tick(s(5), &ctx)
        .pauser(pauser.clone())
        .max_iterations(3)
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(ticker.pauser(), &pauser));
    let p = pauser.clone();
    tokio::spawn(async move {
        sleep(s(7)).await;
        p.add_permits(1);
    });
    let start = Instant::now();
    let at: Vec<u64> = ticker.map(|_| start.elapsed().as_secs()).collect().await;
    assert_eq!(at, [7, 12, 17]);
    assert_eq!(pauser.available_permits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_ctx_cancelled_mid_wait_ends_the_stream_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(10), &ctx).build().unwrap();
    let start = Instant::now();
    assert!(ticker.next().await.is_some());
    let c = ctx.clone();
    tokio::spawn(async move {
        sleep(s(4)).await;
        c.cancel();
    });
    assert_eq!(ticker.next().await, None);
    assert_eq!(start.elapsed(), s(4));
    assert_eq!(ticker.next().await, None, "an ended ticker stays ended");
}

#[tokio::test(start_paused = true)]
async fn a_ctx_cancelled_while_paused_ends_the_stream_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(2), &ctx).build().unwrap();
    let _held = ticker.pauser().clone().acquire_owned().await.unwrap();
    let start = Instant::now();
    let c = ctx.clone();
    tokio::spawn(async move {
        sleep(s(30)).await;
        c.cancel();
    });
    assert_eq!(ticker.next().await, None);
    assert_eq!(start.elapsed(), s(30));
}

#[tokio::test(start_paused = true)]
async fn a_done_ctx_gives_an_empty_stream() {
    let ctx = hp::Ctx::beginning("t");
    ctx.cancel();
    let ticker = hp::tick(s(2), &ctx).build().unwrap();
    assert_eq!(ticker.count().await, 0);
}

#[tokio::test(start_paused = true)]
async fn every_zero_ticks_min_wait_apart() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(Duration::ZERO, &ctx)
        .min_wait(s(2))
        .max_iterations(4)
        .build()
        .unwrap();
    let start = Instant::now();
    let seen: Vec<(u64, Duration)> = ticker
        .map(|(_, n)| (start.elapsed().as_secs(), n))
        .collect()
        .await;
    assert_eq!(seen, [(0, s(2)), (2, s(2)), (4, s(2)), (6, s(2))]);
}

#[tokio::test(start_paused = true)]
async fn every_zero_with_min_wait_zero_ticks_back_to_back_without_starving_others() {
    let ctx = hp::Ctx::beginning("t");
    let other = Arc::new(AtomicUsize::new(0));
    let o = other.clone();
    let spinner = tokio::spawn(async move {
        loop {
            o.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
    let ticker = hp::tick(Duration::ZERO, &ctx)
        .min_wait(Duration::ZERO)
        .max_iterations(100)
        .build()
        .unwrap();
    let start = Instant::now();
    let ticks: Vec<(u64, Duration)> = ticker.collect().await;
    assert_eq!(ticks.len(), 100);
    assert!(ticks.iter().all(|(_, n)| n.is_zero()));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(
        other.load(Ordering::Relaxed) >= 99,
        "the other task ran between ticks"
    );
    spinner.abort();
}

#[tokio::test]
async fn every_zero_with_min_wait_off_is_a_clear_error() {
    let ctx = hp::Ctx::beginning("t");
    let err = hp::tick(Duration::ZERO, &ctx)
        .min_wait(None)
        .build()
        .unwrap_err();
    assert_eq!(err, hp::TickerError::ZeroEveryWithoutMinWait);
    assert!(err.to_string().contains("min_wait"));

    let ticker = hp::tick(s(1), &ctx).min_wait(None).build().unwrap();
    assert_eq!(
        ticker.change_after(Duration::ZERO),
        Err(hp::TickerError::ZeroEveryWithoutMinWait)
    );
}

#[tokio::test(start_paused = true)]
async fn the_control_handle_changes_the_schedule_while_a_combinator_owns_the_stream() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(10), &ctx).build().unwrap();
    let control = ticker.control();
    let start = Instant::now();
    let at: Vec<u64> = ticker
        .take(4)
        .map(|(i, _)| {
            if i == 2 {
                control.change_after(s(3)).unwrap();
            }
            start.elapsed().as_secs()
        })
        .collect()
        .await;
    assert_eq!(at, [0, 10, 13, 16]);
}

#[tokio::test(start_paused = true)]
async fn change_after_while_waiting_moves_the_pending_tick() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(10), &ctx).build().unwrap();
    let control = ticker.control();
    let start = Instant::now();
    assert!(ticker.next().await.is_some());
    tokio::spawn(async move {
        sleep(s(2)).await;
        control.change_once(s(4)).unwrap();
    });
    assert!(ticker.next().await.is_some());
    assert_eq!(start.elapsed(), s(4));
    assert!(ticker.next().await.is_some());
    assert_eq!(start.elapsed(), s(10), "back on the original grid");
}

#[tokio::test(start_paused = true)]
async fn change_after_before_the_first_tick_sets_the_grid_from_the_first_tick() {
    let ctx = hp::Ctx::beginning("t");
    let ticker = hp::tick(s(10), &ctx).max_iterations(3).build().unwrap();
    ticker.change_after(s(4)).unwrap();
    let start = Instant::now();
    let at: Vec<u64> = ticker.map(|_| start.elapsed().as_secs()).collect().await;
    assert_eq!(at, [0, 4, 8]);
}

#[tokio::test(start_paused = true)]
async fn the_name_names_its_child_ctx_and_drop_releases_it() {
    let ctx = hp::Ctx::beginning("app");
    let mut ticker = hp::tick(s(1), &ctx).name("heartbeat").build().unwrap();
    assert_eq!(ticker.ctx().name(), "app-->heartbeat");
    assert_eq!(ctx.child_count(), 1);
    assert!(ticker.next().await.is_some());
    let child = ticker.ctx().clone();
    drop(ticker);
    assert!(
        child.cancelled(),
        "dropping the ticker cancels its child ctx"
    );
    drop(child);
    assert_eq!(ctx.child_count(), 0);
    assert!(!ctx.done());
}

#[tokio::test(start_paused = true)]
async fn a_select_branch_that_loses_consumes_no_tick() {
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(5), &ctx).build().unwrap();
    let start = Instant::now();
    assert_eq!(ticker.next().await, Some((1, s(5))));
    tokio::select! {
        _ = ticker.next() => panic!("not due yet"),
        _ = sleep(s(2)) => {}
    }
    assert_eq!(ticker.next().await, Some((2, s(5))));
    assert_eq!(start.elapsed(), s(5));
}

#[test]
fn ticker_types_are_send_and_control_is_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<hp::Ticker>();
    send_sync::<hp::TickerControl>();
    send_sync::<hp::TickerError>();
}

#[test]
fn multi_thread_ticker_yields_counted_ticks_and_ends() {
    let rt = common::multi_thread_runtime();
    rt.block_on(async {
        let ctx = hp::Ctx::beginning("t");
        let ticker = hp::tick(ms(1), &ctx)
            .min_wait(None)
            .max_iterations(20)
            .build()
            .unwrap();
        let ticks = tokio::time::timeout(s(20), tokio::spawn(ticker.collect::<Vec<_>>()))
            .await
            .expect("watchdog")
            .unwrap();
        let iterations: Vec<u64> = ticks.iter().map(|t| t.0).collect();
        assert_eq!(iterations, (1..=20).collect::<Vec<_>>());
    });
}

// tick(100 ms), default min_wait 100 ms, each tick asked for 1 ms after its grid point:
// yielded at 0, 101, 201, 301, 401 (grid 0, 100, 200, 300, 400), none skipped.
#[tokio::test(start_paused = true)]
async fn timer_jitter_does_not_skip_grid_points() {
    let ctx = hp::Ctx::beginning("t");
    let start = Instant::now();
    let mut ticker = hp::tick(ms(100), &ctx).build().unwrap();
    let mut seen = Vec::new();
    for k in 0..5u64 {
        if k > 0 {
            tokio::time::sleep_until(start + ms(100 * k + 1)).await;
        }
        let (i, till_next) = ticker.next().await.unwrap();
        seen.push((start.elapsed(), i, till_next));
    }
    assert_eq!(
        seen,
        [
            (ms(0), 1, ms(100)),
            (ms(101), 2, ms(99)),
            (ms(201), 3, ms(99)),
            (ms(301), 4, ms(99)),
            (ms(401), 5, ms(99)),
        ]
    );
}

// A tenth of min(every, min_wait) late is lateness: asked for 10 ms after the grid point
// 100, the tick is yielded at 110 and the next one is the first grid point at least
// 100 ms later: 300 (200 is skipped). 9 ms late is still jitter.
#[tokio::test(start_paused = true)]
async fn lateness_of_a_tenth_of_the_period_counts_min_wait_from_the_late_instant() {
    let ctx = hp::Ctx::beginning("t");
    let start = Instant::now();
    let mut ticker = hp::tick(ms(100), &ctx).build().unwrap();
    let mut seen = Vec::new();
    for at in [0, 110, 209, 309] {
        tokio::time::sleep_until(start + ms(at)).await;
        let (i, till_next) = ticker.next().await.unwrap();
        seen.push((start.elapsed(), i, till_next));
    }
    assert_eq!(
        seen,
        [
            (ms(0), 1, ms(100)),
            (ms(110), 2, ms(190)),
            (ms(300), 3, ms(100)),
            (ms(400), 4, ms(100)),
        ]
    );
}

// start_at(start + 5 s), every 2: ticks at 5, 7, 9 (the first one waits for the anchor).
#[tokio::test(start_paused = true)]
async fn start_at_anchors_the_grid_at_the_given_instant() {
    let ctx = hp::Ctx::beginning("t");
    let start = Instant::now();
    let ticker = hp::tick(s(2), &ctx)
        .start_at(start + s(5))
        .max_time(s(5))
        .build()
        .unwrap();
    let (seen, ended) = run(ticker, Duration::ZERO, 10).await;
    assert_eq!(instants(&seen), [5, 7, 9]);
    assert_eq!(till_next(&seen), [s(2); 3]);
    // max_time counts from the anchor: no tick at or after 10; ends right after 9.
    assert_eq!(ended, s(9));
}

// An anchor in the past: the first tick at once for the grid point `start - 3`
// (every 2: grid -3, -1, 1, 3 ...), then the grid, missed points not replayed.
#[tokio::test(start_paused = true)]
async fn start_at_in_the_past_ticks_at_once_then_follows_the_anchored_grid() {
    let ctx = hp::Ctx::beginning("t");
    sleep(s(10)).await;
    let start = Instant::now();
    let ticker = hp::tick(s(2), &ctx)
        .start_at(start - s(3))
        .min_wait(None)
        .build()
        .unwrap();
    let (seen, _) = run(ticker, Duration::ZERO, 3).await;
    assert_eq!(instants(&seen), [0, 1, 3]);
    assert_eq!(till_next(&seen), [s(1), s(2), s(2)]);
}

#[tokio::test(start_paused = true)]
async fn an_ended_ticker_stays_ended() {
    use futures::stream::FusedStream;
    let ctx = hp::Ctx::beginning("t");
    let mut ticker = hp::tick(s(1), &ctx).max_iterations(1).build().unwrap();
    assert!(!ticker.is_terminated());
    assert_eq!(ticker.next().await.map(|t| t.0), Some(1));
    assert_eq!(ticker.next().await, None);
    assert!(ticker.is_terminated());
    assert_eq!(ticker.next().await, None);
}
