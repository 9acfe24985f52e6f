//! Hostile tests of the queue manager's hot path (issue 26 item 2): the consumer keeps the
//! front of the queue in its own part and steps *hot* iterators and streams (a value and
//! its source travelling together) without the shared lock, while producers push to an
//! inbox. Each test is written from the turn model (SEMANTICS, "Turn model") and the
//! robustness rules: the order the consumer sees, what a stop hands back, the
//! `Stopped` of `set_as_finished_if_out_of_sources`, and that nothing is lost or left
//! live with producers racing the consumer.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::multi_thread;
use futures::{Stream, StreamExt};
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};

/// One line per result: `ok V`, `end ERR?`, `fail ERR`, `stopped ERR?`.
fn line<C>(r: &R<i64, C>) -> String {
    match r {
        R::Success { value, .. } => format!("ok {value}"),
        R::IterationStop { error, .. } => match error {
            Some(e) => format!("end {e}"),
            None => "end".into(),
        },
        R::Failure { error, .. } => format!("fail {error}"),
        R::Stopped { error } => match error {
            Some(e) => format!("stopped {e}"),
            None => "stopped".into(),
        },
    }
}

/// Two sync iterators, then `remaining()` between two results: it hands out the
/// result the consumer already holds in its own part, leaving the hot steps queued in
/// their order. Worked by hand (Vk: a value and its source's next step, Sk: its
/// `Success`): [St1, St2] -> St1: 0 -> [St2, V0]; St2: 10 -> [V0, V10];
/// V0 -> [V10, S0, V1]; V10 -> [S0, V1, S10, V11]; S0 handed out.
/// `remaining()` -> [S10]; queue [V1, V11].
/// V1 -> [V11, S1, V2]; V11 -> [S1, V2, S11, V12]; S1.
/// V2 -> [S11, V12, S2, IS1] (iterator 1 exhausted); S11.
/// V12 -> [S2, IS1, S12, IS2]; S2; IS1; S12; IS2; then `Stopped` (finished: no source).
#[tokio::test]
async fn remaining_takes_the_results_the_consumer_holds() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
    f.add_sync_iterator(0..3);
    f.add_sync_iterator(10..13);
    let first = s.next().await.unwrap();
    assert_eq!(line(&first), "ok 0");
    let rest: Vec<String> = s.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["ok 10"]);
    f.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        seen.push(line(&r));
    }
    assert_eq!(
        seen,
        ["ok 1", "ok 11", "ok 2", "end", "ok 12", "end", "stopped"]
    );
}

/// `set_as_finished_if_out_of_sources` while the consumer holds a result in its own
/// part: the queue is not empty, so `Stopped` comes only after that result (SEMANTICS:
/// "at the first check that finds no live source and nothing queued").
#[tokio::test]
async fn finishing_waits_for_a_result_the_consumer_holds() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
    f.add_value(1);
    f.add_value(2);
    assert_eq!(line(&s.next().await.unwrap()), "ok 1");
    f.set_as_finished_if_out_of_sources();
    let rest: Vec<String> = s.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["ok 2"]);
    assert_eq!(line(&s.next().await.unwrap()), "stopped");
    assert!(s.next().await.is_none());
}

/// A value added while hot sources are queued goes behind them (the back of the
/// queue), exactly where it would without the consumer's own part. By hand:
/// [St1] -> 0 -> [V0]; V0 -> [S0, V1]; S0 handed out. `add_value(100)` -> [V1, S100].
/// V1 -> [S100, S1, V2]; S100; S1; V2 -> [S2, IS1]; S2; IS1.
#[tokio::test]
async fn a_value_added_between_results_goes_behind_the_hot_steps() {
    let ctx = hp::Ctx::beginning("t");
    let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
    f.add_sync_iterator(0..3);
    assert_eq!(line(&s.next().await.unwrap()), "ok 0");
    f.add_value(100);
    f.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = s.next().await {
        seen.push(line(&r));
    }
    assert_eq!(seen, ["ok 100", "ok 1", "ok 2", "end", "stopped"]);
}

/// The stop comes at every point of a run of hot sources (after k results, k = 0..):
/// `Stopped(cancelled)` is the next result, each source then ends with an
/// `IterationStop(cancelled)` handing back its unread rest (unless it had ended before
/// the stop), the values already produced still arrive, and delivered + unread =
/// everything each source had, in order.
#[tokio::test]
async fn a_stop_at_every_point_hands_back_every_unread_item() {
    const SOURCES: i64 = 3;
    const ITEMS: i64 = 20;
    // Every point: after k results, up to every success and every end.
    for k in 0..=(SOURCES * (ITEMS + 1)) as usize {
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
        for src in 0..SOURCES {
            f.add_sync_iterator((0..ITEMS).map(move |i| src * 1000 + i));
        }
        let mut delivered: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut unread: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut ended = 0;
        for _ in 0..k {
            match s.next().await.unwrap() {
                R::Success { value, .. } => delivered.entry(value / 1000).or_default().push(value),
                R::IterationStop {
                    error: None,
                    sources,
                    ..
                } => {
                    unread.insert(sources.producer().number() as i64 - 1, Vec::new());
                    ended += 1;
                }
                other => panic!("before the stop: {}", line(&other)),
            }
        }
        ctx.cancel();
        assert_eq!(line(&s.next().await.unwrap()), "stopped cancelled", "k={k}");
        while let Some(mut r) = s.next().await {
            match &r {
                R::Success { value, .. } => delivered.entry(value / 1000).or_default().push(*value),
                R::IterationStop {
                    error: None,
                    sources,
                    ..
                } => {
                    // Exhausted before the stop (its end was queued then): nothing unread.
                    let src = sources.producer().number() as i64 - 1;
                    assert!(r.take_unread().is_none(), "k={k}");
                    unread.insert(src, Vec::new());
                    ended += 1;
                }
                R::IterationStop { error, sources, .. } => {
                    assert_eq!(error.as_ref().unwrap().to_string(), "cancelled", "k={k}");
                    let src = sources.producer().number() as i64 - 1;
                    ended += 1;
                    let Some(Feed::Iterator(it)) = r.take_unread() else {
                        panic!("k={k}: an iterator's unread rest comes back");
                    };
                    let rest: Vec<i64> = it
                        .map(|feed| match feed {
                            Feed::Value(v) => v,
                            _ => panic!("a value"),
                        })
                        .collect();
                    unread.insert(src, rest);
                }
                other => panic!("k={k}: after the stop: {}", line(other)),
            }
        }
        assert_eq!(ended, SOURCES, "k={k}: every source ended once");
        for src in 0..SOURCES {
            let mut all = delivered.remove(&src).unwrap_or_default();
            all.extend(unread.remove(&src).unwrap_or_default());
            let want: Vec<i64> = (0..ITEMS).map(|i| src * 1000 + i).collect();
            assert_eq!(all, want, "k={k}: source {src} in order, nothing lost");
        }
    }
}

/// A stream that is ready for a burst, then pending, and woken from another thread
/// right away: the wake can land while the consumer polls it from its hot entry (not
/// marked busy in the table). Every item still arrives, in order, and the stream ends.
struct Bursty {
    next: i64,
    end: i64,
}

impl Stream for Bursty {
    type Item = i64;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<i64>> {
        if self.next == self.end {
            return Poll::Ready(None);
        }
        if self.next % 7 == 3 {
            // Pending once per burst: the waker fires from another thread, maybe while
            // this poll has not returned yet.
            self.next += 1;
            let waker = cx.waker().clone();
            std::thread::spawn(move || waker.wake());
            return Poll::Pending;
        }
        let v = self.next;
        self.next += 1;
        Poll::Ready(Some(v))
    }
}

#[test]
fn a_wake_during_a_hot_poll_is_not_lost_multi_thread() {
    multi_thread(async {
        for round in 0..20 {
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
            f.add_async_generator(Bursty { next: 0, end: 200 });
            f.add_async_generator(Bursty {
                next: 1000,
                end: 1200,
            });
            f.set_as_finished_if_out_of_sources();
            let mut got: HashMap<i64, Vec<i64>> = HashMap::new();
            let mut ends = 0;
            while let Some(r) = s.next().await {
                match r {
                    R::Success { value, .. } => got.entry(value / 1000).or_default().push(value),
                    R::IterationStop { error: None, .. } => ends += 1,
                    R::Stopped { error: None } => {}
                    other => panic!("round {round}: {}", line(&other)),
                }
            }
            assert_eq!(ends, 2, "round {round}");
            for (src, base) in [(0, 0), (1, 1000)] {
                let want: Vec<i64> = (base..base + 200).filter(|v| v % 7 != 3).collect();
                assert_eq!(got[&src], want, "round {round}: source {src}");
            }
        }
    });
}

/// Several producers race the consumer on the multi-thread runtime: each adds values,
/// sync iterators and always-ready streams while the consumer drains. Every item
/// arrives exactly once, each source's items in their order, each iterator and stream
/// ends once, and after the producers are done `Stopped` ends the stream.
#[test]
fn producers_racing_the_consumer_lose_nothing_multi_thread() {
    multi_thread(async {
        const PRODUCERS: i64 = 4;
        const ROUNDS: i64 = 50;
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
        let consumer = tokio::spawn(async move {
            let mut got: HashMap<i64, Vec<i64>> = HashMap::new();
            let mut ends = 0;
            while let Some(r) = s.next().await {
                match r {
                    R::Success { value, .. } => got.entry(value / 1_000).or_default().push(value),
                    R::IterationStop { error: None, .. } => ends += 1,
                    R::Stopped { error: None } => {}
                    other => panic!("{}", line(&other)),
                }
            }
            (got, ends)
        });
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let f = f.clone();
            producers.push(tokio::spawn(async move {
                for r in 0..ROUNDS {
                    // Source ids: p * ROUNDS * 3 + r * 3 + kind; each value carries its
                    // source's id in its thousands.
                    let base = (p * ROUNDS * 3 + r * 3) * 1_000;
                    f.add_value(base);
                    let it = base + 1_000;
                    f.add_sync_iterator(it..it + 10);
                    let st = base + 2_000;
                    f.add_async_generator(futures::stream::iter(st..st + 10));
                    if r % 5 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for p in producers {
            p.await.unwrap();
        }
        f.set_as_finished_if_out_of_sources();
        let (got, ends) = tokio::time::timeout(Duration::from_secs(30), consumer)
            .await
            .expect("the stream ends")
            .unwrap();
        assert_eq!(ends, (PRODUCERS * ROUNDS * 2) as usize);
        assert_eq!(got.len(), (PRODUCERS * ROUNDS * 3) as usize);
        for (id, values) in got {
            let base = id * 1_000;
            let want: Vec<i64> = match id % 3 {
                0 => vec![base],
                _ => (base..base + 10).collect(),
            };
            assert_eq!(values, want, "source {id}");
        }
    });
}

/// 100 000 sources, all hot at once: every item arrives once, and each source's
/// items in order; the streamer dropped, the feeder sees no live source.
#[test]
fn a_hundred_thousand_hot_sources() {
    common::current_thread().block_on(async {
        const SOURCES: i64 = 100_000;
        let ctx = hp::Ctx::beginning("t");
        let (mut s, f) = hp::queue_manager::<i64, ()>(&ctx);
        for src in 0..SOURCES {
            if src % 2 == 0 {
                f.add_sync_iterator([src * 10, src * 10 + 1]);
            } else {
                f.add_async_generator(futures::stream::iter([src * 10, src * 10 + 1]));
            }
        }
        f.set_as_finished_if_out_of_sources();
        let mut next_of = vec![0u8; SOURCES as usize];
        let (mut ok, mut ends) = (0, 0);
        while let Some(r) = s.next().await {
            match r {
                R::Success { value, .. } => {
                    let src = (value / 10) as usize;
                    assert_eq!(value % 10, i64::from(next_of[src]), "source {src} in order");
                    next_of[src] += 1;
                    ok += 1;
                }
                R::IterationStop { error: None, .. } => ends += 1,
                R::Stopped { error: None } => {}
                other => panic!("{}", line(&other)),
            }
        }
        assert_eq!((ok, ends), (2 * SOURCES, SOURCES));
        assert!(next_of.iter().all(|&n| n == 2));
        drop(s);
        assert_eq!(f.live_sources(), 0);
    });
}

/// A value whose `Drop` calls back into the manager (takes its lock through the
/// feeder) and counts itself.
struct Tracked {
    feeder: Option<hp::QueueFeeder<Tracked, ()>>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self.feeder.take() {
            let _ = f.live_sources();
        }
    }
}

/// Dropping the streamer while such values sit in hot entries of the consumer's own
/// part drops each exactly once, with no lock held (a drop under the lock would
/// deadlock on the callback), on the multi-thread runtime; values handed out are
/// dropped by the test; made = dropped at the end.
#[test]
fn values_dropped_with_the_consumers_part_call_back_without_deadlock_multi_thread() {
    multi_thread(async {
        for taken in [0usize, 1, 5, 29] {
            let drops = Arc::new(AtomicUsize::new(0));
            let made = Arc::new(AtomicUsize::new(0));
            let ctx = hp::Ctx::beginning("t");
            let (mut s, f) = hp::queue_manager::<Tracked, ()>(&ctx);
            for _ in 0..3 {
                let (feeder, drops, made) = (f.clone(), drops.clone(), made.clone());
                f.add_async_generator(futures::stream::iter(0..1_000).map(move |_| {
                    made.fetch_add(1, Ordering::SeqCst);
                    Tracked {
                        feeder: Some(feeder.clone()),
                        drops: drops.clone(),
                    }
                }));
            }
            for _ in 0..taken {
                assert!(matches!(s.next().await, Some(R::Success { .. })));
            }
            // The consumer's part now holds hot entries (values and their streams).
            drop(s);
            assert_eq!(f.live_sources(), 0, "taken {taken}");
            assert_eq!(
                drops.load(Ordering::SeqCst),
                made.load(Ordering::SeqCst),
                "taken {taken}: every value made was dropped once"
            );
        }
    });
}

type Log = Arc<std::sync::Mutex<Vec<String>>>;

/// Logs `NAME dropped` when dropped (a generator body's synchronous cleanup).
struct Guard(&'static str, Log);
impl Drop for Guard {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(format!("{} dropped", self.0));
    }
}

/// Yields 0, 1, 2, ...; when a failure is thrown in, sleeps 1 ms, logs, returns it.
fn generator(name: &'static str, log: &Log) -> hp::AsyncGenerator<i64> {
    let log = log.clone();
    hp::AsyncGenerator::new(move |co: hp::Co<i64>| async move {
        let _guard = Guard(name, log.clone());
        let mut i = 0;
        loop {
            match co.yield_(i).await {
                Ok(()) => i += 1,
                Err(f) => {
                    log.lock().unwrap().push(format!("{name} thrown {f}"));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    log.lock().unwrap().push(format!("{name} cleaned"));
                    return Err(f);
                }
            }
        }
    })
}

/// The scoped form's close has no streamer to ask: a body that hands its streamer out
/// (alive, with values and steps in its own part of the queue) still has every
/// generator source stopped as `stop_async_generator` does (thrown in, async cleanup
/// run) before the scoped call returns, because generators never travel in the
/// consumer's part. The plain stream beside them is left to the streamer.
#[tokio::test(start_paused = true)]
async fn the_scoped_close_stops_generators_when_the_body_keeps_its_streamer() {
    let ctx = hp::Ctx::beginning("t");
    let log: Log = Arc::default();
    let l = log.clone();
    let out = hp::queue_manager_scoped::<i64, (), _, _, _, hp::Error>(
        &ctx,
        "qm",
        |mut s, f| async move {
            f.add_async_generator(generator("g1", &l));
            f.add_async_generator(futures::stream::iter(100..200));
            f.add_async_generator(generator("g2", &l));
            for _ in 0..7 {
                assert!(matches!(s.next().await, Some(R::Success { .. })));
            }
            assert!(l.lock().unwrap().is_empty());
            Ok(s)
        },
    )
    .await;
    let streamer = out.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "g1 thrown cancelled",
            "g1 cleaned",
            "g1 dropped",
            "g2 thrown cancelled",
            "g2 cleaned",
            "g2 dropped",
        ]
    );
    drop(streamer);
}
