//! `AsyncGenerator` (asend / athrow / aclose / Stream) and `stop_async_generator`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures_core::Stream;
use machinery::helpers as hp;
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

fn seen(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Pushes `what` into the log when dropped: the body's synchronous cleanup.
struct OnDrop(Log, &'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        push(&self.0, self.1);
    }
}

/// Yields 0, 1, 2, ... and records what it is sent; catches errors whose text starts
/// with "catch" (logs them, yields again); logs its async cleanup on close.
fn recorder(log: &Log) -> hp::AsyncGenerator<u32, String> {
    let log = log.clone();
    hp::AsyncGenerator::new(move |co: hp::Co<u32, String>| async move {
        let _guard = OnDrop(log.clone(), "dropped");
        push(&log, "started");
        let mut i = 0;
        loop {
            match co.yield_(i).await {
                Ok(sent) => push(&log, format!("sent {sent}")),
                Err(hp::Failure::Error(e)) if e.to_string().starts_with("catch") => {
                    push(&log, format!("caught {e}"));
                }
                Err(f) if hp::GeneratorExit::matches(&f) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    push(&log, "cleaned up");
                    return Err(f);
                }
                Err(f) => {
                    push(&log, format!("failing with {f}"));
                    return Err(f);
                }
            }
            i += 1;
        }
    })
}

#[tokio::test(start_paused = true)]
async fn values_are_sent_in_order() {
    let log = log();
    let mut generator = recorder(&log);
    assert_eq!(generator.asend("ignored".into()).await.unwrap(), Some(0));
    for (n, word) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(
            generator.asend(word.into()).await.unwrap(),
            Some(n as u32 + 1)
        );
    }
    assert_eq!(seen(&log), ["started", "sent a", "sent b", "sent c"]);
}

#[tokio::test(start_paused = true)]
async fn nothing_runs_before_the_first_asend() {
    let log = log();
    let generator = recorder(&log);
    tokio::task::yield_now().await;
    assert!(seen(&log).is_empty());
    drop(generator);
    assert_eq!(
        seen(&log),
        [] as [&str; 0],
        "an unstarted body holds no guard yet"
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_thrown_in_and_caught_lets_it_yield_again() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let got = generator.athrow(hp::Error::msg("catch me")).await.unwrap();
    assert_eq!(got, Some(1));
    assert_eq!(generator.asend("after".into()).await.unwrap(), Some(2));
    assert_eq!(seen(&log), ["started", "caught catch me", "sent after"]);
}

#[tokio::test(start_paused = true)]
async fn an_error_not_caught_ends_it_and_comes_back_unchanged() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let boom = hp::Error::msg("boom");
    let failure = generator.athrow(boom.clone()).await.unwrap_err();
    assert!(failure.error().unwrap().same(&boom));
    assert!(generator.finished());
    assert!(generator.failure().unwrap().error().unwrap().same(&boom));
    assert_eq!(seen(&log), ["started", "failing with boom", "dropped"]);
    assert_eq!(generator.asend("more".into()).await.unwrap(), None);
    assert_eq!(
        generator.athrow(hp::Failure::Cancelled).await.unwrap(),
        None
    );
    assert!(generator.aclose().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_propagated_with_question_mark_through_error_stays_a_cancellation() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        Ok::<(), hp::Error>(())
    });
    generator.asend(()).await.unwrap();
    let failure = generator.athrow(hp::Failure::Cancelled).await.unwrap_err();
    assert!(failure.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn throwing_into_an_unstarted_generator_never_runs_its_body() {
    let log = log();
    let mut generator = recorder(&log);
    let boom = hp::Error::msg("boom");
    let failure = generator.athrow(boom.clone()).await.unwrap_err();
    assert!(failure.error().unwrap().same(&boom));
    assert!(generator.finished());
    assert!(seen(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn close_while_suspended_runs_the_async_cleanup() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let start = Instant::now();
    generator.aclose().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(seen(&log), ["started", "cleaned up", "dropped"]);
    assert!(generator.finished());
    assert!(generator.failure().is_none(), "closing is not a failure");
}

#[tokio::test(start_paused = true)]
async fn close_before_start_never_runs_the_body() {
    let log = log();
    let mut generator = recorder(&log);
    generator.aclose().await.unwrap();
    assert!(generator.finished());
    assert_eq!(generator.asend(String::new()).await.unwrap(), None);
    assert!(seen(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn drop_without_close_runs_the_drop_cleanup() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    drop(generator);
    assert_eq!(seen(&log), ["started", "dropped"]);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_ignores_close_is_dropped_and_close_fails() {
    let log = log();
    let inner = log.clone();
    let mut generator = hp::AsyncGenerator::new(async move |co: hp::Co<u8>| -> () {
        let _guard = OnDrop(inner, "dropped");
        loop {
            let _ = co.yield_(1).await;
        }
    });
    generator.asend(()).await.unwrap();
    let failure = generator.aclose().await.unwrap_err();
    assert!(failure.error().unwrap().is::<hp::IgnoredGeneratorExit>());
    assert!(generator.finished());
    assert_eq!(seen(&log), ["dropped"]);
}

#[tokio::test(start_paused = true)]
async fn a_body_failing_differently_on_close_reports_that_failure() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        if co.yield_(1).await.is_err() {
            return Err(hp::Error::msg("cleanup failed"));
        }
        Ok(())
    });
    generator.asend(()).await.unwrap();
    let failure = generator.aclose().await.unwrap_err();
    assert_eq!(failure.to_string(), "cleanup failed");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_returns_ends_with_none() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8, u8>| async move {
        let got = co.yield_(1).await.unwrap();
        co.yield_(got * 2).await.unwrap();
    });
    assert_eq!(generator.asend(0).await.unwrap(), Some(1));
    assert_eq!(generator.asend(21).await.unwrap(), Some(42));
    assert_eq!(generator.asend(0).await.unwrap(), None);
    assert!(generator.finished() && generator.failure().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_body_becomes_a_failure() {
    let mut generator = hp::AsyncGenerator::new(async |co: hp::Co<u8>| -> () {
        co.yield_(1).await.unwrap();
        panic!("generator blew up");
    });
    generator.asend(()).await.unwrap();
    let failure = generator.asend(()).await.unwrap_err();
    let panicked = failure
        .error()
        .unwrap()
        .downcast_ref::<hp::Panicked>()
        .unwrap();
    assert_eq!(panicked.message, "generator blew up");
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn the_body_can_wait_between_yields_on_paused_time() {
    let start = Instant::now();
    let generator = hp::AsyncGenerator::new(|co: hp::Co<Duration>| async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            co.yield_(start.elapsed()).await?;
        }
        Ok::<(), hp::Failure>(())
    });
    let times: Vec<_> = generator.collect().await;
    let secs = |s| Duration::from_secs(s);
    assert_eq!(times, [secs(2), secs(4), secs(6)]);
}

#[tokio::test(start_paused = true)]
async fn iterating_as_a_stream_sends_the_default_and_keeps_the_failure() {
    let log = log();
    let inner = log.clone();
    let mut generator = hp::AsyncGenerator::new(move |co: hp::Co<u8, Option<u8>>| async move {
        for i in 0..3 {
            let sent = co.yield_(i).await?;
            push(&inner, format!("{sent:?}"));
        }
        Err::<(), _>(hp::Error::msg("ran dry"))
    });
    let items: Vec<u8> = (&mut generator).collect().await;
    assert_eq!(items, [0, 1, 2]);
    assert_eq!(seen(&log), ["None", "None", "None"]);
    assert_eq!(generator.failure().unwrap().to_string(), "ran dry");
    assert!(futures_core::FusedStream::is_terminated(&generator));
    assert_eq!(generator.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn the_try_stream_gives_the_failure_as_its_last_item() {
    let generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        co.yield_(2).await?;
        Err::<(), _>(hp::Failure::Cancelled)
    });
    let mut stream = generator.into_try_stream();
    assert_eq!(stream.next().await.unwrap().unwrap(), 1);
    assert_eq!(stream.next().await.unwrap().unwrap(), 2);
    assert!(stream.next().await.unwrap().unwrap_err().is_cancelled());
    assert!(stream.next().await.is_none());
    assert!(stream.into_inner().finished());
}

#[tokio::test(start_paused = true)]
async fn a_stream_next_dropped_mid_step_loses_nothing() {
    let start = Instant::now();
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        co.yield_(7).await?;
        Ok::<(), hp::Failure>(())
    });
    let early = tokio::time::timeout(Duration::from_secs(1), generator.next()).await;
    assert!(early.is_err());
    assert_eq!(generator.next().await, Some(7));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn an_asend_dropped_mid_step_is_finished_by_the_next_call() {
    let log = log();
    let inner = log.clone();
    let mut generator =
        hp::AsyncGenerator::new(async move |co: hp::Co<u8, u8>| -> Result<(), hp::Failure> {
            let mut got = co.yield_(0).await?;
            loop {
                push(&inner, format!("got {got}"));
                tokio::time::sleep(Duration::from_secs(5)).await;
                got = co.yield_(got).await?;
            }
        });
    generator.asend(0).await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), generator.asend(1)).await;
    assert!(early.is_err());
    // The step that `1` started finishes first (its yield is dropped), then `2` is sent.
    assert_eq!(generator.asend(2).await.unwrap(), Some(2));
    assert_eq!(seen(&log), ["got 1", "got 2"]);
}

#[tokio::test(start_paused = true)]
async fn two_yields_in_flight_at_once_are_handed_over_one_at_a_time() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8, u8>| async move {
        let (a, b) = tokio::join!(co.yield_(1), co.yield_(2));
        co.yield_(a? + b?).await?;
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(generator.asend(0).await.unwrap(), Some(1));
    assert_eq!(generator.asend(10).await.unwrap(), Some(2));
    assert_eq!(generator.asend(20).await.unwrap(), Some(30));
}

#[test]
fn a_co_moved_into_another_task_still_yields() {
    let rt = common::multi_thread_runtime();
    rt.block_on(async {
        let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u32, u32>| async move {
            let helper = tokio::spawn(async move {
                let mut total = 0;
                for i in 0..100 {
                    total += co.yield_(i).await?;
                }
                Ok::<u32, hp::Failure>(total)
            });
            helper.await.unwrap().map(|_| ())
        });
        let run = async {
            let mut sum = 0;
            while let Some(v) = generator.asend(1).await.unwrap() {
                sum += v;
            }
            sum
        };
        let sum = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("watchdog");
        assert_eq!(sum, (0..100).sum::<u32>());
    });
}

#[test]
fn a_yield_left_in_another_task_ends_when_the_generator_is_dropped() {
    let rt = common::multi_thread_runtime();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
            tokio::spawn(async move {
                co.yield_(1).await.unwrap();
                let _ = tx.send(co.yield_(2).await);
            });
            std::future::pending::<()>().await;
        });
        assert_eq!(generator.asend(()).await.unwrap(), Some(1));
        assert_eq!(generator.asend(()).await.unwrap(), Some(2));
        drop(generator);
        let got = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("watchdog")
            .unwrap();
        assert!(hp::GeneratorExit::matches(&got.unwrap_err()));
    });
}

#[test]
fn generators_are_send_static_streams() {
    fn stream_source<T: Stream + Send + 'static>(_: &T) {}
    let generator = hp::AsyncGenerator::new(|co: hp::Co<String, ()>| async move {
        co.yield_("x".to_owned()).await?;
        Ok::<(), hp::Failure>(())
    });
    stream_source(&generator);
    stream_source(&generator.into_try_stream());
}

// ---- stop_async_generator

#[tokio::test(start_paused = true)]
async fn stopping_a_suspended_generator_that_does_not_catch_returns_the_cancellation() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let got = hp::stop_async_generator(&mut generator)
        .provide("provided".into())
        .await;
    assert!(got.unwrap_err().is_cancelled());
    assert_eq!(seen(&log), ["started", "failing with cancelled", "dropped"]);
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn stopping_with_an_error_throws_that_error_in() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let boom = hp::Error::msg("boom");
    let got = hp::stop_async_generator(&mut generator)
        .throw(boom.clone())
        .await;
    assert!(got.unwrap_err().error().unwrap().same(&boom));
    assert_eq!(seen(&log), ["started", "failing with boom", "dropped"]);
}

#[tokio::test(start_paused = true)]
async fn stopping_a_generator_never_started_never_runs_its_body() {
    let log = log();
    let mut generator = recorder(&log);
    let got = hp::stop_async_generator(&mut generator).await;
    assert!(got.unwrap_err().is_cancelled());
    assert!(seen(&log).is_empty());
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn a_generator_that_catches_receives_provide_then_is_closed() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let catch = hp::Error::msg("catch this");
    let got = hp::stop_async_generator(&mut generator)
        .throw(catch)
        .provide("provided".into())
        .await;
    assert!(got.is_ok());
    assert_eq!(
        seen(&log),
        [
            "started",
            "caught catch this",
            "sent provided",
            "cleaned up",
            "dropped"
        ]
    );
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn a_generator_that_catches_and_returns_is_stopped_quietly() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        let _ = co.yield_(1).await;
    });
    generator.asend(()).await.unwrap();
    assert!(hp::stop_async_generator(&mut generator).await.is_ok());
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn stopping_a_finished_generator_is_ok() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        Ok::<(), hp::Failure>(())
    });
    let items: Vec<_> = (&mut generator).collect().await;
    assert_eq!(items, [1]);
    assert!(hp::stop_async_generator(&mut generator).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_failing_close_wins_over_the_thrown_error() {
    let mut generator = hp::AsyncGenerator::new(async |co: hp::Co<u8>| -> () {
        let _ = co.yield_(1).await; // catches the cancellation
        let _ = co.yield_(2).await; // takes `provide`
        loop {
            let _ = co.yield_(3).await; // ignores GeneratorExit
        }
    });
    generator.asend(()).await.unwrap();
    let got = hp::stop_async_generator(&mut generator).await;
    assert!(
        got.unwrap_err()
            .error()
            .unwrap()
            .is::<hp::IgnoredGeneratorExit>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_generator_that_catches_without_provide_is_closed_at_its_next_yield() {
    let log = log();
    let mut generator = recorder(&log);
    generator.asend(String::new()).await.unwrap();
    let got = hp::stop_async_generator(&mut generator)
        .throw(hp::Error::msg("catch this"))
        .await;
    assert!(got.is_ok());
    assert_eq!(
        seen(&log),
        ["started", "caught catch this", "cleaned up", "dropped"]
    );
    assert!(generator.finished());
}

#[tokio::test(start_paused = true)]
async fn the_streams_stay_ended_once_the_body_returned_or_failed() {
    use futures::stream::FusedStream;
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(generator.next().await, Some(1));
    assert!(!generator.is_terminated());
    assert_eq!(generator.next().await, None);
    assert!(generator.is_terminated());
    assert_eq!(generator.next().await, None);
    assert_eq!(generator.asend(()).await.unwrap(), None);

    let mut failing = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        Err::<(), _>(hp::Error::msg("gone"))
    })
    .into_try_stream();
    assert_eq!(failing.next().await.unwrap().unwrap(), 1);
    assert!(failing.next().await.unwrap().is_err());
    assert!(failing.is_terminated());
    assert!(failing.next().await.is_none());
    assert!(failing.next().await.is_none());
}
