//! review26: hostile probes of this round's changes (detached tasks, the queue manager's
//! hot path, context waiters), written from SEMANTICS, the docs and the rustdoc only.
//! Expected sequences were worked out by hand before running.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
use tokio::time::{Instant, sleep};

use crate::common::*;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A future that counts completing (`ran`) and being dropped (`dropped`), and may run
/// a closure when dropped.
struct Tracked<F> {
    fut: Pin<Box<F>>,
    ran: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

fn tracked<F: Future>(fut: F, ran: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> Tracked<F> {
    Tracked {
        fut: Box::pin(fut),
        ran: ran.clone(),
        dropped: dropped.clone(),
        on_drop: None,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let r = self.fut.as_mut().poll(cx);
        if r.is_ready() {
            self.ran.fetch_add(1, SeqCst);
        }
        r
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

/// A waker that counts its wakes and logs them.
struct CountWake {
    n: AtomicUsize,
    log: Option<(Arc<Mutex<Vec<String>>>, String)>,
}

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.n.fetch_add(1, SeqCst);
        if let Some((log, name)) = &self.log {
            log.lock().unwrap().push(name.clone());
        }
    }
}

fn count_waker() -> (Arc<CountWake>, Waker) {
    let w = Arc::new(CountWake {
        n: AtomicUsize::new(0),
        log: None,
    });
    (w.clone(), Waker::from(w))
}

fn logging_waker(log: &Arc<Mutex<Vec<String>>>, name: &str) -> Waker {
    Waker::from(Arc::new(CountWake {
        n: AtomicUsize::new(0),
        log: Some((log.clone(), name.to_owned())),
    }))
}

fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

/// `kind value` for one result.
fn line<V: std::fmt::Debug, C>(r: &R<V, C>) -> String {
    match r {
        R::Success { value, .. } => format!("ok {value:?}"),
        R::Failure { .. } => "fail".to_owned(),
        R::IterationStop { error, sources, .. } => {
            format!(
                "end {:?}{}",
                sources.added().kind(),
                if error.is_some() { " err" } else { "" }
            )
        }
        R::Stopped { error } => format!("stopped {}", error.is_some()),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Detached tasks
// ---------------------------------------------------------------------------------------

/// Task holder: `finish` waits for a detached task, for one spawned by a detached task
/// while finishing, and for one spawned from the `Drop` of a detached task's future.
/// A completes at 5 (spawning B, 3 s) and its future's Drop spawns C (2 s): finish at 8.
#[tokio::test(start_paused = true)]
async fn detached_finish_waits_for_late_and_drop_spawned_work() {
    let ctx = hp::Ctx::beginning("d1");
    let ts = hp::task_holder(&ctx);
    let h = ts.handle();
    let t0 = Instant::now();
    let ended = Arc::new(Mutex::new(Vec::new()));
    let (ran, dropped) = (counter(), counter());
    let (hb, eb) = (h.clone(), ended.clone());
    let mut a = tracked(
        async move {
            sleep(Duration::from_secs(5)).await;
            let e = eb.clone();
            assert!(hb.spawn_detached(async move {
                sleep(Duration::from_secs(3)).await;
                e.lock().unwrap().push(("B", t0.elapsed().as_secs()));
            }));
            eb.lock().unwrap().push(("A", t0.elapsed().as_secs()));
        },
        &ran,
        &dropped,
    );
    let (hc, ec) = (h.clone(), ended.clone());
    a.on_drop = Some(Box::new(move || {
        let accepted = hc.spawn_detached(async move {
            sleep(Duration::from_secs(2)).await;
            ec.lock().unwrap().push(("C", t0.elapsed().as_secs()));
        });
        assert!(accepted, "spawn from a detached future's Drop refused");
    }));
    assert!(ts.spawn_detached(a));
    assert_eq!(ts.pending(), 1);
    ts.finish().await;
    assert_eq!(t0.elapsed(), Duration::from_secs(8));
    assert_eq!(*ended.lock().unwrap(), [("A", 5), ("C", 7), ("B", 8)]);
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (1, 1));
}

/// Task holder: `cancel_all` stops detached tasks at any await point (a sleep, and a
/// future that never registers any waker) and their Drop runs before `finish` returns;
/// `pending()`/`len()` count them until then.
#[tokio::test(start_paused = true)]
async fn detached_cancel_all_drops_at_await_before_finish_returns() {
    let ctx = hp::Ctx::beginning("d2");
    let ts = hp::task_holder(&ctx);
    let (ran, dropped) = (counter(), counter());
    assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(100)), &ran, &dropped)));
    assert!(ts.spawn_detached(tracked(std::future::pending::<()>(), &ran, &dropped)));
    assert!(ts.spawn_detached(tracked(
        async {
            loop {
                tokio::task::yield_now().await;
            }
        },
        &ran,
        &dropped
    )));
    assert_eq!((ts.pending(), ts.len()), (3, 3));
    let t0 = Instant::now();
    for _ in 0..5 {
        tokio::task::yield_now().await; // (a busy task: paused time does not advance)
    }
    assert_eq!(ts.pending(), 3);
    ts.cancel_all();
    ts.finish().await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 3));
}

/// Task holder: the holder's parent context cancelled stops a detached task; its Drop
/// runs before the holder counts it finished (inside Drop, `pending()` still counts it).
#[tokio::test(start_paused = true)]
async fn detached_context_cancel_drop_runs_before_settle() {
    let ctx = hp::Ctx::beginning("d3");
    let ts = hp::task_holder(&ctx);
    let h = ts.handle();
    let (ran, dropped) = (counter(), counter());
    let seen = Arc::new(Mutex::new(None));
    let mut f = tracked(std::future::pending::<()>(), &ran, &dropped);
    let s = seen.clone();
    f.on_drop = Some(Box::new(move || *s.lock().unwrap() = Some(h.pending())));
    assert!(ts.spawn_detached(f));
    sleep(Duration::from_secs(2)).await;
    ctx.cancel();
    ts.finish().await;
    assert_eq!(dropped.load(SeqCst), 1);
    assert_eq!(*seen.lock().unwrap(), Some(1), "pending() inside the Drop");
}

/// Task holder: dropping the holder stops a detached task waiting forever (its future
/// is dropped by the runtime soon after).
#[tokio::test(start_paused = true)]
async fn detached_holder_drop_stops_it() {
    let ctx = hp::Ctx::beginning("d3b");
    let ts = hp::task_holder(&ctx);
    let (ran, dropped) = (counter(), counter());
    assert!(ts.spawn_detached(tracked(std::future::pending::<()>(), &ran, &dropped)));
    tokio::task::yield_now().await;
    drop(ts);
    sleep(Duration::from_millis(1)).await;
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 1));
    assert!(
        !ctx.done(),
        "the parent context is not cancelled by the holder's drop"
    );
}

/// Task holder: a detached panic is a failure under `fail_fast`: the holder is cancelled
/// (a detached sibling is dropped) and `try_finish` returns the panic; it is logged.
#[tokio::test(start_paused = true)]
async fn detached_panic_counts_for_fail_fast_and_is_logged() {
    let cap = Capture::default();
    let ctx = hp::Ctx::beginning_with("d4", hp::CtxOptions::new().log(cap.clone()));
    let ts = hp::TaskHolder::builder(&ctx).fail_fast().build();
    let (ran, dropped) = (counter(), counter());
    assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(100)), &ran, &dropped)));
    assert!(ts.spawn_detached(async {
        sleep(Duration::from_secs(1)).await;
        panic!("detached boom");
    }));
    let t0 = Instant::now();
    let out = ts.try_finish().await;
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    let err = out.expect_err("fail_fast returns the detached panic");
    assert!(err.to_string().contains("detached boom"), "{err}");
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 1));
    let log = take(&cap.0);
    assert!(
        log.iter()
            .any(|l| l.starts_with("exception") && l.contains("detached boom")),
        "{log:?}"
    );
}

struct BadPayload;
impl Drop for BadPayload {
    fn drop(&mut self) {
        panic!("payload drop panics");
    }
}

/// Task holder: a detached panic whose payload panics when dropped is caught and logged;
/// a sibling still completes and `finish` returns. A refused future whose Drop panics
/// is caught too (`spawn_detached` returns false).
#[test]
fn detached_panic_payload_drop_panics_is_caught() {
    in_child_process(
        module_path!(),
        "detached_panic_payload_drop_panics_is_caught",
        || {
            block_on_paused(async {
                let cap = Capture::default();
                let ctx = hp::Ctx::beginning_with("d4b", hp::CtxOptions::new().log(cap.clone()));
                let ts = hp::task_holder(&ctx);
                let (ran, dropped) = (counter(), counter());
                assert!(ts.spawn_detached(async {
                    sleep(Duration::from_secs(1)).await;
                    std::panic::panic_any(BadPayload);
                }));
                assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(2)), &ran, &dropped)));
                let h = ts.handle();
                ts.finish().await;
                assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (1, 1));
                assert!(!take(&cap.0).is_empty(), "the panic is logged");
                let mut f = tracked(async {}, &ran, &dropped);
                f.on_drop = Some(Box::new(|| panic!("refused drop panics")));
                assert!(!h.spawn_detached(f));
                assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (1, 2));
            });
        },
    );
}

/// Task holder: the limit applies to detached tasks (limit 2, five 1 s tasks: at most
/// two at once, finish at 3); `pending()` and `len()` count the waiting ones.
#[tokio::test(start_paused = true)]
async fn detached_limit_applies() {
    let ctx = hp::Ctx::beginning("d5");
    let ts = hp::TaskHolder::builder(&ctx).limit(2).build();
    let running = counter();
    let max = counter();
    for _ in 0..5 {
        let (running, max) = (running.clone(), max.clone());
        assert!(ts.spawn_detached(async move {
            let now = running.fetch_add(1, SeqCst) + 1;
            max.fetch_max(now, SeqCst);
            sleep(Duration::from_secs(1)).await;
            running.fetch_sub(1, SeqCst);
        }));
    }
    assert_eq!((ts.pending(), ts.len()), (5, 5));
    let t0 = Instant::now();
    ts.finish().await;
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!(max.load(SeqCst), 2);
}

/// Task holder: refusal drops the future exactly once, unpolled (`spawn_detached` →
/// false), or hands it back untouched (`try_spawn_detached`), after `cancel_all` and
/// after `finish`.
#[tokio::test(start_paused = true)]
async fn detached_refusal_exactly_once() {
    let ctx = hp::Ctx::beginning("d6");
    let ts = hp::task_holder(&ctx);
    let h = ts.handle();
    ts.cancel_all();
    let (ran, dropped) = (counter(), counter());
    assert!(!ts.spawn_detached(tracked(async {}, &ran, &dropped)));
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 1));
    let back = ts
        .try_spawn_detached(tracked(async { 7 }, &ran, &dropped))
        .expect_err("refused");
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 1));
    assert_eq!(back.into_inner().await, 7);
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (1, 2));
    ts.finish().await;

    let ctx2 = hp::Ctx::beginning("d6b");
    let ts2 = hp::task_holder(&ctx2);
    let h2 = ts2.handle();
    ts2.finish().await;
    assert!(!h2.spawn_detached(tracked(async {}, &ran, &dropped)));
    assert!(h2.try_spawn_detached(async {}).is_err());
    assert!(!h.spawn_detached(async {}));
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (1, 3));
}

/// Task holder: a runtime shut down with detached tasks waiting drops their futures and
/// settles them: `pending()` is 0 and `finish` on another runtime returns.
#[test]
fn detached_runtime_shutdown_settles() {
    with_watchdog(|| {
        let rt = current_thread();
        let (ran, dropped) = (counter(), counter());
        let (r2, d2) = (ran.clone(), dropped.clone());
        let (ts, _ctx) = rt.block_on(async move {
            let ctx = hp::Ctx::beginning("d7");
            let ts = hp::task_holder(&ctx);
            assert!(ts.spawn_detached(tracked(std::future::pending::<()>(), &r2, &d2)));
            assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(1000)), &r2, &d2)));
            assert!(ts.spawn_detached(tracked(async {}, &r2, &d2))); // never polled
            tokio::task::yield_now().await;
            (ts, ctx)
        });
        drop(rt);
        assert_eq!(dropped.load(SeqCst), 3);
        assert_eq!(ts.pending(), 0);
        current_thread().block_on(async {
            tokio::time::timeout(Duration::from_secs(5), ts.finish())
                .await
                .expect("finish settles after the runtime shut down");
        });
    });
}

/// Task holder: multi-thread races of spawn_detached/try_spawn_detached against finish
/// (and cancel_all): every future is dropped exactly once, without cancel every accepted
/// one ran to its end, and finish never hangs.
#[test]
fn detached_spawn_races_finish_and_cancel_lose_nothing() {
    multi_thread(async {
        for round in 0..150u32 {
            let ctx = hp::Ctx::beginning("d8");
            let ts = hp::task_holder(&ctx);
            let (ran, dropped, refused) = (counter(), counter(), counter());
            let mut producers = Vec::new();
            for _ in 0..3 {
                let h = ts.handle();
                let (ran, dropped, refused) = (ran.clone(), dropped.clone(), refused.clone());
                producers.push(tokio::spawn(async move {
                    for i in 0..40u32 {
                        let f = tracked(
                            async move {
                                if i % 3 == 0 {
                                    tokio::task::yield_now().await;
                                }
                                if i % 5 == 0 {
                                    sleep(Duration::from_micros(200)).await;
                                }
                            },
                            &ran,
                            &dropped,
                        );
                        if i % 2 == 0 {
                            if !h.spawn_detached(f) {
                                refused.fetch_add(1, SeqCst);
                            }
                        } else if let Err(r) = h.try_spawn_detached(f) {
                            refused.fetch_add(1, SeqCst);
                            drop(r.into_inner());
                        }
                        if i % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            tokio::task::yield_now().await;
            let cancel = round % 2 == 0;
            if cancel {
                ts.cancel_all();
            }
            ts.finish().await;
            for p in producers {
                p.await.unwrap();
            }
            assert_eq!(dropped.load(SeqCst), 120, "round {round}");
            if !cancel {
                assert_eq!(
                    ran.load(SeqCst) + refused.load(SeqCst),
                    120,
                    "round {round}: an accepted future did not run to its end"
                );
            }
        }
    });
}

/// A future that stores its waker and stays pending; optionally cancels a context
/// during its first poll.
struct StoreWaker {
    slot: Arc<Mutex<Option<Waker>>>,
    cancel: Option<hp::Ctx>,
}

impl Future for StoreWaker {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(c) = self.cancel.take() {
            c.cancel();
            return Poll::Pending; // registers nothing: only the holder can wake it
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Task holder: a detached task woken after it was cancelled (its stored waker used
/// after the holder finished) is harmless; a detached future that cancels the holder's
/// context during its own first poll (and returns Pending with no waker kept) is still
/// stopped, and `finish` returns.
#[tokio::test(start_paused = true)]
async fn detached_woken_after_cancel_and_self_cancel_in_poll() {
    let ctx = hp::Ctx::beginning("d9");
    let ts = hp::task_holder(&ctx);
    let slot = Arc::new(Mutex::new(None));
    let (ran, dropped) = (counter(), counter());
    let sw = StoreWaker {
        slot: slot.clone(),
        cancel: None,
    };
    assert!(ts.spawn_detached(tracked(sw, &ran, &dropped)));
    sleep(Duration::from_secs(1)).await;
    ts.cancel_all();
    ts.finish().await;
    assert_eq!(dropped.load(SeqCst), 1);
    let w = slot.lock().unwrap().take().expect("the task was polled");
    w.wake_by_ref();
    w.wake();
    tokio::task::yield_now().await;

    let ctx2 = hp::Ctx::beginning("d9b");
    let ts2 = hp::task_holder(&ctx2);
    let sw = StoreWaker {
        slot: Arc::new(Mutex::new(None)),
        cancel: Some(ts2.ctx().clone()),
    };
    assert!(ts2.spawn_detached(tracked(sw, &ran, &dropped)));
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), ts2.finish())
        .await
        .expect("finish returns after a self-cancel inside the detached poll");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(dropped.load(SeqCst), 2);
}

// ---------------------------------------------------------------------------------------
// 2. Queue manager hot path
// ---------------------------------------------------------------------------------------

/// QM turn model: a sync iterator, a stream and a value, plus a value the consumer adds
/// while handling a result. Queue: [St1, St2, S100] → St1(1) → St2(10) → yield 100, add
/// 200 → E1, St1(2), E10, St2(20) → 200, 1, E2, St1 end → 10, E20, St2 end → 2, end1, 20,
/// end2, stopped.
#[tokio::test(start_paused = true)]
async fn qm_turn_order_mixed_sources_added_during_iteration() {
    let ctx = hp::Ctx::beginning("q1");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.add_sync_iterator([1u32, 2]);
    feeder.add_async_generator(futures::stream::iter([10u32, 20]));
    feeder.add_value(100u32);
    feeder.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
        .await
        .unwrap()
    {
        let l = line(&r);
        if l == "ok 100" {
            feeder.add_value(200u32);
        }
        seen.push(l);
    }
    assert_eq!(
        seen,
        [
            "ok 100",
            "ok 200",
            "ok 1",
            "ok 10",
            "ok 2",
            "end SYNC_ITERATOR",
            "ok 20",
            "end ASYNC_GENERATOR",
            "stopped false"
        ]
    );
}

/// QM turn model: a coroutine, a task and a function producing an iterator, added
/// during iteration from another task. The consumer waits on an empty queue; at 1 the
/// other task adds `add_sync_function(|| Feed::iterator([5, 6]))` (SYNC_FUNCTION → its
/// iterator's St at the back) and a coroutine returning 9 (spawned, delivered when it
/// ends). On the current-thread runtime the spawned task runs before the woken consumer
/// is polled, so its output is extended first: [St, S9] → St(5) → [S9, E5, St] → 9,
/// E5, St(6) → 5, E6, St end → 6, end (chain added by SYNC_FUNCTION), stopped.
#[tokio::test(start_paused = true)]
async fn qm_turn_order_sources_added_from_another_task() {
    let ctx = hp::Ctx::beginning("q1b");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    let f = feeder.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(1)).await;
        f.add_sync_function(|| Feed::iterator([5u32, 6]));
        f.add_coroutine(async { 9u32 });
        f.set_as_finished_if_out_of_sources();
    });
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
        .await
        .unwrap()
    {
        seen.push(line(&r));
    }
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    assert_eq!(
        seen,
        ["ok 9", "ok 5", "ok 6", "end SYNC_FUNCTION", "stopped false"]
    );
}

/// A stream that wakes itself during its first poll and returns Pending, then yields 5.
struct SelfWaking {
    polls: u32,
}

impl futures::Stream for SelfWaking {
    type Item = u32;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
        self.polls += 1;
        match self.polls {
            1 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            2 => Poll::Ready(Some(5)),
            _ => Poll::Ready(None),
        }
    }
}

/// QM: a stream that wakes itself during its own poll is polled again before the
/// consumer takes its next entry: [St1, S7] → St1 pending (woke itself) → re-polled: 5 →
/// [S7, E5, St1] → 7, then E5, St1 end → 5, end, stopped.
#[tokio::test(start_paused = true)]
async fn qm_stream_waking_itself_during_poll() {
    let ctx = hp::Ctx::beginning("q2");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.add_async_generator(SelfWaking { polls: 0 });
    feeder.add_value(7u32);
    feeder.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
        .await
        .unwrap()
    {
        seen.push(line(&r));
    }
    assert_eq!(
        seen,
        ["ok 7", "ok 5", "end ASYNC_GENERATOR", "stopped false"]
    );
}

async fn feed_values(f: Feed<u32, ()>) -> Vec<u32> {
    match f {
        Feed::Iterator(it) | Feed::Generator(it) => it
            .map(|x| match x {
                Feed::Value(v) => v,
                _ => panic!("not a value"),
            })
            .collect(),
        Feed::Stream(s) => {
            s.map(|x| match x {
                Feed::Value(v) => v,
                _ => panic!("not a value"),
            })
            .collect()
            .await
        }
        _ => panic!("unexpected unread feed"),
    }
}

/// QM: a stop (ctx cancelled) after k entries, for every k: every item of a sync
/// iterator and of a stream is either delivered or handed back unread (take_unread),
/// exactly once; exactly one Stopped.
#[tokio::test(start_paused = true)]
async fn qm_stop_at_every_point_hands_back_unread() {
    for k in 0..10 {
        let ctx = hp::Ctx::beginning("q3");
        let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_sync_iterator(1u32..=6);
        feeder.add_async_generator(futures::stream::iter(11u32..=16));
        let mut got = Vec::new();
        let mut stopped = 0;
        for _ in 0..k {
            let mut r = st.next().await.unwrap();
            if let Some(u) = r.take_unread() {
                got.extend(feed_values(u).await);
            }
            if r.is_stopped() {
                stopped += 1;
            }
            got.extend(r.into_value());
        }
        st.ctx().cancel();
        while let Some(mut r) = tokio::time::timeout(Duration::from_secs(5), st.next())
            .await
            .unwrap()
        {
            if let Some(u) = r.take_unread() {
                got.extend(feed_values(u).await);
            }
            if r.is_stopped() {
                stopped += 1;
            }
            got.extend(r.into_value());
        }
        got.sort_unstable();
        let want: Vec<u32> = (1..=6).chain(11..=16).collect();
        assert_eq!(got, want, "k = {k}");
        assert_eq!(stopped, 1, "k = {k}");
    }
}

/// An item that counts its drops and, when asked, adds a value back into the manager
/// from its Drop.
struct Item {
    n: u32,
    back: Option<hp::QueueFeeder<Item, ()>>,
    drops: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.n)
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if let Some(f) = self.back.take() {
            f.add_value(Item {
                n: self.n + 100,
                back: None,
                drops: self.drops.clone(),
            });
        }
    }
}

/// QM: a user value whose Drop calls back into the manager (adds a value): dropped by
/// the consumer, the new value is delivered in turn (1, 2, 101, 102, stopped); dropped
/// by the manager (streamer dropped, or closed, with such values queued) nothing
/// deadlocks and every value is dropped exactly once.
#[test]
fn qm_value_drop_calls_back_into_manager() {
    with_watchdog(|| {
        block_on_paused(async {
            let drops = counter();
            let ctx = hp::Ctx::beginning("q6");
            let (mut st, feeder) = hp::queue_manager::<Item, ()>(&ctx);
            for n in [1, 2] {
                feeder.add_value(Item {
                    n,
                    back: Some(feeder.clone()),
                    drops: drops.clone(),
                });
            }
            feeder.set_as_finished_if_out_of_sources();
            let mut seen = Vec::new();
            while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
                .await
                .unwrap()
            {
                seen.push(line(&r));
            }
            assert_eq!(seen, ["ok 1", "ok 2", "ok 101", "ok 102", "stopped false"]);
            assert_eq!(drops.load(SeqCst), 4);

            for close in [false, true] {
                let drops = counter();
                let ctx = hp::Ctx::beginning("q6b");
                let (st, feeder) = hp::queue_manager::<Item, ()>(&ctx);
                for n in 0..5 {
                    feeder.add_value(Item {
                        n,
                        back: Some(feeder.clone()),
                        drops: drops.clone(),
                    });
                }
                feeder.add_sync_iterator((10..13).map({
                    let (f, d) = (feeder.clone(), drops.clone());
                    move |n| Item {
                        n,
                        back: Some(f.clone()),
                        drops: d.clone(),
                    }
                }));
                if close {
                    st.close().await;
                } else {
                    drop(st);
                }
                drop(feeder);
                tokio::task::yield_now().await;
                // 5 queued values, 0 produced by the unstepped iterator; each may add one
                // more (dropped or queued); none twice.
                let d = drops.load(SeqCst);
                assert!((5..=10).contains(&d), "close={close}: {d} drops");
            }
        });
    });
}

/// An iterator that yields 1, then panics.
struct PanicIter(u32);
impl Iterator for PanicIter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        self.0 += 1;
        if self.0 == 2 {
            panic!("iterator boom");
        }
        Some(self.0)
    }
}

/// A stream that yields 1, then panics.
struct PanicStream(u32);
impl futures::Stream for PanicStream {
    type Item = u32;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u32>> {
        self.0 += 1;
        if self.0 == 2 {
            panic!("stream boom");
        }
        Poll::Ready(Some(self.0))
    }
}

/// QM: a panic in a user iterator / stream: [St1] → E1, St1 → S1, St1 panics → Failure,
/// IterationStop(err): ok 1, fail, end err; the iterator's rest is handed back; a value
/// added afterwards still comes, then stopped.
#[tokio::test(start_paused = true)]
async fn qm_panics_in_user_iterator_and_stream() {
    for stream in [false, true] {
        let ctx = hp::Ctx::beginning("q7");
        let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        if stream {
            feeder.add_async_generator(PanicStream(0));
        } else {
            feeder.add_sync_iterator(PanicIter(0));
        }
        let mut seen = Vec::new();
        let mut unread = 0;
        for _ in 0..3 {
            let mut r = tokio::time::timeout(Duration::from_secs(5), st.next())
                .await
                .unwrap()
                .unwrap();
            if r.take_unread().is_some() {
                unread += 1;
            }
            seen.push(line(&r));
        }
        feeder.add_value(3u32);
        feeder.set_as_finished_if_out_of_sources();
        while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
            .await
            .unwrap()
        {
            seen.push(line(&r));
        }
        let kind = if stream {
            "ASYNC_GENERATOR"
        } else {
            "SYNC_ITERATOR"
        };
        assert_eq!(
            seen,
            [
                "ok 1".to_owned(),
                "fail".into(),
                format!("end {kind} err"),
                "ok 3".into(),
                "stopped false".into()
            ]
        );
        assert_eq!(unread, 1, "stream={stream}: the rest is handed back");
    }
}

/// QM: 100 000 sources (one-item iterators) and 100 000 values: [St1..StN, S0..] → each
/// step queues E, St → values 0..N, then per iterator E → S, St end → IS: its item then
/// its end, in order; live sources back to 0.
#[test]
fn qm_hundred_thousand_sources() {
    with_watchdog(|| {
        block_on_paused(async {
            const N: u32 = 100_000;
            let ctx = hp::Ctx::beginning("q8");
            let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            for i in 0..N {
                feeder.add_sync_iterator([N + i]);
            }
            for i in 0..N {
                feeder.add_value(i);
            }
            feeder.set_as_finished_if_out_of_sources();
            let mut values = Vec::new();
            let mut ends = 0;
            let mut stops = 0;
            while let Some(r) = st.next().await {
                match r {
                    R::Success { value, .. } => {
                        let want_ends = (values.len() as u32).saturating_sub(N);
                        assert_eq!(ends, want_ends, "value {value}");
                        values.push(value)
                    }
                    R::IterationStop { .. } => {
                        ends += 1;
                        assert_eq!(values.len() as u32, N + ends, "an end out of turn");
                    }
                    R::Stopped { .. } => stops += 1,
                    R::Failure { .. } => panic!("failure"),
                }
            }
            let want: Vec<u32> = (0..2 * N).collect();
            assert!(values == want, "values out of order");
            assert_eq!((ends, stops), (N, 1));
            assert_eq!(feeder.live_sources(), 0);
        });
    });
}

/// QM: several producers on the multi-thread runtime (tasks adding values, std threads
/// adding iterators) while the consumer reads: everything delivered once, each
/// producer's values in its order.
#[test]
fn qm_several_producers_multi_thread() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("q9");
        let (mut st, feeder) = hp::queue_manager::<(u32, u32), ()>(&ctx);
        let consumer = tokio::spawn(async move {
            let mut last = [None::<u32>; 6];
            let (mut n, mut ends) = (0, 0);
            while let Some(r) = st.next().await {
                match r {
                    R::Success { value: (p, i), .. } => {
                        if p < 4 {
                            assert!(
                                last[p as usize].is_none_or(|l| l < i),
                                "producer {p} out of order"
                            );
                            last[p as usize] = Some(i);
                        }
                        n += 1;
                    }
                    R::IterationStop { error, .. } => {
                        assert!(error.is_none());
                        ends += 1
                    }
                    R::Stopped { .. } => {}
                    R::Failure { .. } => panic!("failure"),
                }
            }
            (n, ends)
        });
        let mut tasks = Vec::new();
        for p in 0..4u32 {
            let f = feeder.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..2000u32 {
                    f.add_value((p, i));
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        let threads: Vec<_> = (4..6u32)
            .map(|p| {
                let f = feeder.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        f.add_sync_iterator([(p, 3 * i), (p, 3 * i + 1), (p, 3 * i + 2)]);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        feeder.set_as_finished_if_out_of_sources();
        let (n, ends) = consumer.await.unwrap();
        assert_eq!((n, ends), (4 * 2000 + 2 * 3000, 2000));
    });
}

// ---------------------------------------------------------------------------------------
// 3. Context waiters
// ---------------------------------------------------------------------------------------

/// Ctx waiters: custom raw wakers with the same data address and different vtables.
/// (a) W1 polls a wait, the wait is dropped, a new wait is polled with W2 (same
/// address, the slot reused): cancel wakes W2 once and not W1. (b) one wait polled with
/// W1 then with W2: cancel wakes W2.
#[test]
fn ctx_wait_custom_wakers_same_address_reused_slot() {
    static A: AtomicUsize = AtomicUsize::new(0);
    static B: AtomicUsize = AtomicUsize::new(0);
    fn clone_a(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VT_A)
    }
    fn clone_b(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VT_B)
    }
    fn wake_a(_: *const ()) {
        A.fetch_add(1, SeqCst);
    }
    fn wake_b(_: *const ()) {
        B.fetch_add(1, SeqCst);
    }
    fn nop(_: *const ()) {}
    static VT_A: RawWakerVTable = RawWakerVTable::new(clone_a, wake_a, wake_a, nop);
    static VT_B: RawWakerVTable = RawWakerVTable::new(clone_b, wake_b, wake_b, nop);
    static DATA: u8 = 0;
    let p = &DATA as *const u8 as *const ();
    // SAFETY: the vtables ignore the data pointer's target; clone/drop are no-ops.
    let w1 = unsafe { Waker::from_raw(RawWaker::new(p, &VT_A)) };
    let w2 = unsafe { Waker::from_raw(RawWaker::new(p, &VT_B)) };

    // (a)
    let ctx = hp::Ctx::beginning("c1");
    let mut f1 = Box::pin(ctx.wait());
    assert!(poll_once(f1.as_mut(), &w1).is_pending());
    drop(f1);
    let mut f2 = Box::pin(ctx.wait());
    assert!(poll_once(f2.as_mut(), &w2).is_pending());
    ctx.cancel();
    assert_eq!((A.load(SeqCst), B.load(SeqCst)), (0, 1), "(a)");
    assert!(poll_once(f2.as_mut(), &w2).is_ready());

    // (b)
    let ctx = hp::Ctx::beginning("c1b");
    let mut f = Box::pin(ctx.wait());
    assert!(poll_once(f.as_mut(), &w1).is_pending());
    assert!(poll_once(f.as_mut(), &w2).is_pending());
    ctx.cancel();
    assert_eq!(B.load(SeqCst), 2, "(b): W2 woken");
    assert!(poll_once(f.as_mut(), &w2).is_ready());
}

/// Ctx waiters: slot reuse across many waits with Arc wakers: of 3 waits, the middle
/// one dropped and a new one registered in its place: cancel wakes exactly the 3 live
/// ones, once each.
#[test]
fn ctx_wait_slot_reuse_wakes_live_only() {
    let ctx = hp::Ctx::beginning("c1c");
    let mk = || {
        let (c, w) = count_waker();
        let mut f = Box::pin(ctx.wait());
        assert!(poll_once(f.as_mut(), &w).is_pending());
        (c, f)
    };
    let a = mk();
    let b = mk();
    let c = mk();
    let (bc, bf) = b;
    drop(bf);
    let d = mk();
    ctx.cancel();
    assert_eq!(bc.n.load(SeqCst), 0);
    for (c, _) in [&a, &c, &d] {
        assert_eq!(c.n.load(SeqCst), 1);
    }
}

/// Ctx waiters: a waiter dropped while the cancel runs on another thread: no hang, no
/// crash; every waiter kept is woken exactly once and then ready.
#[test]
fn ctx_wait_dropped_during_cancel_on_other_thread() {
    with_watchdog(|| {
        for round in 0..3000u32 {
            let ctx = hp::Ctx::beginning("c2");
            let mut kept = Vec::new();
            let mut gone = Vec::new();
            for i in 0..4 {
                let (c, w) = count_waker();
                let mut f = Box::pin(ctx.wait());
                assert!(poll_once(f.as_mut(), &w).is_pending());
                if i % 2 == 0 {
                    kept.push((c, f, w))
                } else {
                    gone.push(f)
                }
            }
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let (c2, b2) = (ctx.clone(), barrier.clone());
            let t = std::thread::spawn(move || {
                b2.wait();
                c2.cancel();
            });
            barrier.wait();
            if round % 2 == 0 {
                std::hint::spin_loop();
            }
            drop(gone);
            t.join().unwrap();
            for (c, f, w) in &mut kept {
                assert_eq!(c.n.load(SeqCst), 1, "round {round}");
                assert!(poll_once(f.as_mut(), w).is_ready());
            }
        }
    });
}

/// Ctx waiters: callbacks first, then waiters, per context: cancelling a parent runs
/// each context's callbacks before that context's waiters' wakers are woken (even a
/// waiter registered before the callbacks); a waker sees the context done. Each fires
/// exactly once.
#[test]
fn ctx_callbacks_before_waiters() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let p = hp::Ctx::beginning("c3");
    let k = p.child("k");
    let mut wp = Box::pin(p.wait());
    let mut wk = Box::pin(k.wait());
    assert!(poll_once(wp.as_mut(), &logging_waker(&log, "P-wake")).is_pending());
    assert!(poll_once(wk.as_mut(), &logging_waker(&log, "K-wake")).is_pending());
    let l = log.clone();
    p.add_done_callback(move |_| l.lock().unwrap().push("P-cb".into()));
    let l = log.clone();
    k.add_done_callback(move |_| l.lock().unwrap().push("K-cb".into()));
    p.cancel();
    let log = log.lock().unwrap().clone();
    let pos = |s: &str| {
        assert_eq!(
            log.iter().filter(|x| *x == s).count(),
            1,
            "{s} once: {log:?}"
        );
        log.iter().position(|x| x == s).unwrap()
    };
    assert!(pos("P-cb") < pos("P-wake"), "{log:?}");
    assert!(pos("K-cb") < pos("K-wake"), "{log:?}");
    // Across contexts nothing is promised beyond each context's own order (the
    // fan-out finishes them one after another).
}

/// Ctx: a guard dropped wakes a waiter on its context (the child is cancelled); a
/// waiter on a child created after the parent finished is ready at once.
#[test]
fn ctx_guard_drop_wakes_waiter_and_late_child_ready() {
    let p = hp::Ctx::beginning("c6");
    let g = p.child("g").drop_guard();
    let c = g.ctx().clone();
    let (n, w) = count_waker();
    let mut f = Box::pin(c.wait());
    assert!(poll_once(f.as_mut(), &w).is_pending());
    drop(g);
    assert_eq!(n.n.load(SeqCst), 1);
    assert!(c.cancelled());
    assert!(poll_once(f.as_mut(), &w).is_ready());
    p.cancel();
    let late = p.child("late");
    let mut f = Box::pin(late.wait());
    assert!(poll_once(f.as_mut(), &w).is_ready());
}

/// Ticker: awaiting its next tick (every 10 s), cancelled by its parent at 3: the stream
/// ends at 3 exactly (paused current-thread runtime).
#[tokio::test(start_paused = true)]
async fn ticker_cancelled_by_parent_while_waiting_paused() {
    let parent = hp::Ctx::beginning("c4");
    let mut t = hp::tick(Duration::from_secs(10), &parent).build().unwrap();
    let t0 = Instant::now();
    assert_eq!(t.next().await.map(|x| x.0), Some(1));
    let p = parent.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(3)).await;
        p.cancel();
    });
    assert_eq!(t.next().await, None);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
}

/// Ticker: the same on the multi-thread runtime (every hour, parent cancelled after
/// 20 ms from another task): the stream ends.
#[test]
fn ticker_cancelled_by_parent_while_waiting_multi_thread() {
    multi_thread(async {
        for _ in 0..20 {
            let parent = hp::Ctx::beginning("c4m");
            let mut t = hp::tick(Duration::from_secs(3600), &parent)
                .build()
                .unwrap();
            assert_eq!(t.next().await.map(|x| x.0), Some(1));
            let p = parent.clone();
            tokio::spawn(async move {
                sleep(Duration::from_millis(20)).await;
                p.cancel();
            });
            assert_eq!(t.next().await, None);
        }
    });
}

/// Ctx: a 100 000-deep chain on a 2 MiB stack with a waiter polled on every context:
/// cancelling the root wakes all 100 000 waiters once; the leaf's callback runs once;
/// the leaf's and the root's waits are ready; dropping the chain is fine.
#[test]
fn ctx_deep_chain_waiters_small_stack() {
    in_child_process(module_path!(), "ctx_deep_chain_waiters_small_stack", || {
        deep_chain(100_000, false);
    });
}

/// Ctx: the same chain, every one of the 100 000 woken waits polled to ready: awaiting
/// a context done through an ancestor should not cost its depth each time (the whole
/// set should resolve in about linear time, within the 30 s watchdog).
#[test]
fn ctx_deep_chain_every_waiter_resolves_in_linear_time() {
    with_watchdog(|| deep_chain(100_000, true));
}

/// A chain of `n` contexts under a root, a wait polled on each, then the root cancelled.
fn deep_chain(n: usize, poll_all: bool) {
    let root = hp::Ctx::beginning("c5");
    let (woken, w) = count_waker();
    let mut waits = Vec::with_capacity(n);
    let mut cur = root.clone();
    for _ in 0..n {
        let c = cur.child("x");
        let mut f = Box::pin(c.wait());
        assert!(poll_once(f.as_mut(), &w).is_pending());
        waits.push(f);
        cur = c;
    }
    let cbs = counter();
    let cb = cbs.clone();
    cur.add_done_callback(move |_| {
        cb.fetch_add(1, SeqCst);
    });
    drop(cur);
    root.cancel();
    assert_eq!(woken.n.load(SeqCst), n);
    assert_eq!(cbs.load(SeqCst), 1);
    if poll_all {
        for f in &mut waits {
            assert!(poll_once(f.as_mut(), &w).is_ready());
        }
    } else {
        assert!(poll_once(waits[0].as_mut(), &w).is_ready());
        assert!(poll_once(waits[n - 1].as_mut(), &w).is_ready());
    }
    drop(waits);
    drop(root);
}

// ---------------------------------------------------------------------------------------
// Second batch
// ---------------------------------------------------------------------------------------

/// QM breaker: set after the first result, the stream ends before the next entry;
/// `remaining()` hands out only results already queued (50), running no instruction and
/// advancing no source; after `resume` the iteration continues where it stopped.
/// [St] → St(1) → E1 → St(2) → yield 1 (queue [E2, St]), add 50 → [E2, St, S50].
#[tokio::test(start_paused = true)]
async fn qm_breaker_remaining_advances_nothing() {
    let ctx = hp::Ctx::beginning("q10");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    let advanced = counter();
    let a = advanced.clone();
    feeder.add_sync_iterator((1u32..=5).inspect(move |_| {
        a.fetch_add(1, SeqCst);
    }));
    assert_eq!(st.next().await.and_then(R::into_value), Some(1));
    assert_eq!(advanced.load(SeqCst), 2);
    feeder.add_value(50u32);
    st.breaker().set();
    assert!(st.next().await.is_none());
    let rest: Vec<String> = st.remaining().map(|r| line(&r)).collect();
    assert_eq!(rest, ["ok 50"]);
    assert_eq!(
        advanced.load(SeqCst),
        2,
        "no source advanced after the breaker"
    );
    st.breaker().clear(); // (resume alone does not: see qm_resume_clears_the_breaker)
    st.resume();
    assert_eq!(st.next().await.and_then(R::into_value), Some(2));
    assert_eq!(advanced.load(SeqCst), 3);
}

/// QM breaker (SEMANTICS Queue: "the breaker is cleared when a new iteration starts; a
/// new iteration after an early exit continues where the last one stopped"): after a
/// breaker stop, `resume()` (documented as starting a new iteration) and `next()` give
/// the next result (2), not an immediately ended stream.
#[tokio::test(start_paused = true)]
async fn qm_resume_clears_the_breaker() {
    let ctx = hp::Ctx::beginning("q10b");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    feeder.add_sync_iterator(1u32..=5);
    assert_eq!(st.next().await.and_then(R::into_value), Some(1));
    st.breaker().set();
    assert!(st.next().await.is_none());
    st.resume();
    assert_eq!(st.next().await.and_then(R::into_value), Some(2));
}

/// An item that counts its drops.
struct Counted(u32, Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}
impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// QM close at every point: after k entries, `close().await` returns once the running
/// coroutine's future was dropped (its Drop ran), and every item an iterator or stream
/// produced is dropped exactly once (delivered or dropped with the streamer).
#[tokio::test(start_paused = true)]
async fn qm_close_at_every_point_drops_everything_once() {
    for k in 0..9 {
        let ctx = hp::Ctx::beginning("q11");
        let (mut st, feeder) = hp::queue_manager::<Counted, ()>(&ctx);
        let (made, drops) = (counter(), counter());
        let (m, d) = (made.clone(), drops.clone());
        feeder.add_sync_iterator((0..4u32).map(move |i| {
            m.fetch_add(1, SeqCst);
            Counted(i, d.clone())
        }));
        let (m, d) = (made.clone(), drops.clone());
        feeder.add_async_generator(futures::stream::iter(10..14u32).map(move |i| {
            m.fetch_add(1, SeqCst);
            Counted(i, d.clone())
        }));
        let (ran, fut_dropped) = (counter(), counter());
        let (m, d) = (made.clone(), drops.clone());
        feeder.add_coroutine(tracked(
            async move {
                sleep(Duration::from_secs(1000)).await;
                m.fetch_add(1, SeqCst);
                Counted(99, d)
            },
            &ran,
            &fut_dropped,
        ));
        for _ in 0..k {
            drop(st.next().await.unwrap());
        }
        tokio::time::timeout(Duration::from_secs(5), st.close())
            .await
            .expect("close returns");
        assert_eq!(fut_dropped.load(SeqCst), 1, "k = {k}");
        assert_eq!(made.load(SeqCst), drops.load(SeqCst), "k = {k}");
        drop(feeder);
        assert_eq!(made.load(SeqCst), drops.load(SeqCst), "k = {k}");
    }
}

/// Task holder scope: a body that panics after spawning detached tasks: every detached
/// task is stopped and its Drop has run when the scope returns the panic.
#[tokio::test(start_paused = true)]
async fn detached_scope_body_panic_cancels_and_waits() {
    let ctx = hp::Ctx::beginning("d10");
    let (ran, dropped) = (counter(), counter());
    let (r, d) = (ran.clone(), dropped.clone());
    let out: Result<(), hp::Error> = hp::task_holder_scope(&ctx, async move |ts| {
        for _ in 0..3 {
            assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(100)), &r, &d)));
        }
        sleep(Duration::from_secs(1)).await;
        if r.load(SeqCst) == 0 {
            panic!("body boom");
        }
        Ok::<(), hp::Error>(())
    })
    .await;
    assert!(out.is_err());
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 3));
    assert!(!ctx.done());
}

/// Task holder: a detached task spawned from the done callback of a held task while
/// `finish` waits is waited for: task ends at 1, its callback spawns a 2 s detached task,
/// finish returns at 3.
#[tokio::test(start_paused = true)]
async fn detached_spawned_from_task_callback_during_finish() {
    let ctx = hp::Ctx::beginning("d11");
    let ts = hp::task_holder(&ctx);
    let h = ts.handle();
    let task = ts.spawn(sleep(Duration::from_secs(1)));
    let done = counter();
    let d = done.clone();
    task.add_done_callback(move |_| {
        let accepted = h.spawn_detached(async move {
            sleep(Duration::from_secs(2)).await;
            d.fetch_add(1, SeqCst);
        });
        assert!(accepted);
    });
    drop(task);
    let t0 = Instant::now();
    ts.finish().await;
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!(done.load(SeqCst), 1);
}

/// Task holder (multi-thread): the holder dropped while producers spawn detached tasks
/// waiting forever: every future is eventually dropped exactly once (accepted ones by
/// the abort, refused ones at once), none runs.
#[test]
fn detached_holder_drop_races_spawns_multi_thread() {
    multi_thread(async {
        for _ in 0..100 {
            let ctx = hp::Ctx::beginning("d12");
            let ts = hp::task_holder(&ctx);
            let (ran, dropped) = (counter(), counter());
            let mut producers = Vec::new();
            for _ in 0..2 {
                let h = ts.handle();
                let (ran, dropped) = (ran.clone(), dropped.clone());
                producers.push(tokio::spawn(async move {
                    for i in 0..50 {
                        let f = tracked(std::future::pending::<()>(), &ran, &dropped);
                        let _ = h.spawn_detached(f);
                        if i % 10 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            tokio::task::yield_now().await;
            drop(ts);
            for p in producers {
                p.await.unwrap();
            }
            let mut spins = 0;
            while dropped.load(SeqCst) < 100 && spins < 2000 {
                sleep(Duration::from_millis(1)).await;
                spins += 1;
            }
            assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 100));
        }
    });
}

// ---------------------------------------------------------------------------------------
// Third batch
// ---------------------------------------------------------------------------------------

/// QM (multi-thread): a stream fed from a std thread wakes the waiting consumer each
/// time (the stream's waker is the only wake path): 2 000 items delivered in order, then
/// its end and Stopped.
#[test]
fn qm_stream_fed_from_std_thread_wakes_consumer() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("q12");
        let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        feeder.add_async_generator(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        feeder.set_as_finished_if_out_of_sources();
        let t = std::thread::spawn(move || {
            for i in 0..2000u32 {
                tx.send(i).unwrap();
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut seen = Vec::new();
        let mut tail = Vec::new();
        while let Some(r) = st.next().await {
            match r {
                R::Success { value, .. } => seen.push(value),
                other => tail.push(line(&other)),
            }
        }
        t.join().unwrap();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
        assert_eq!(tail, ["end ASYNC_GENERATOR", "stopped false"]);
    });
}

/// Task holder: a holder whose context names a runtime takes detached work from a
/// plain std thread (no current runtime): it runs there and `finish` waits for it.
#[test]
fn detached_spawn_from_thread_without_runtime_uses_ctx_runtime() {
    with_watchdog(|| {
        let rt = multi_thread_runtime();
        let ctx =
            hp::Ctx::beginning_with("d13", hp::CtxOptions::new().runtime(rt.handle().clone()));
        let ts = hp::task_holder(&ctx);
        let h = ts.handle();
        let done = counter();
        let d = done.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                let d = d.clone();
                assert!(h.spawn_detached(async move {
                    sleep(Duration::from_millis(5)).await;
                    d.fetch_add(1, SeqCst);
                }));
            }
        })
        .join()
        .unwrap();
        rt.block_on(ts.finish());
        assert_eq!(done.load(SeqCst), 10);
    });
}

/// Ctx: a child created inside the parent's done callback is done at once, and a wait
/// on it is ready at once; a wait registered from inside a callback on the finishing
/// context is woken too (or ready).
#[test]
fn ctx_child_and_wait_created_inside_done_callback() {
    let p = hp::Ctx::beginning("c7");
    let made = Arc::new(Mutex::new(None));
    let m = made.clone();
    let (n, w) = count_waker();
    let w2 = w.clone();
    p.add_on_done(move |ctx, _| {
        let c = ctx.child("late");
        let mut f = Box::pin(c.wait());
        let ready = poll_once(f.as_mut(), &w2).is_ready();
        let mut fp = Box::pin(ctx.wait());
        let ready_p = poll_once(fp.as_mut(), &w2).is_ready();
        *m.lock().unwrap() = Some((c.done(), ready, ready_p, fp));
    });
    p.cancel();
    let (done, ready, ready_p, mut fp) = made.lock().unwrap().take().unwrap();
    assert!(done && ready);
    if !ready_p {
        assert!(
            n.n.load(SeqCst) >= 1,
            "a wait registered during the callbacks is woken"
        );
    }
    assert!(poll_once(fp.as_mut(), &w).is_ready());
}

/// Ticker: paused by its pauser (no permit) while awaiting a tick, cancelled by its
/// parent at 3: the stream ends at 3 ("a done ctx ends the stream at once, also while
/// waiting or paused").
#[tokio::test(start_paused = true)]
async fn ticker_paused_then_parent_cancelled() {
    let parent = hp::Ctx::beginning("c8");
    let pauser = Arc::new(tokio::sync::Semaphore::new(1));
    let mut t = hp::tick(Duration::from_secs(1), &parent)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(t.next().await.map(|x| x.0), Some(1));
    let permit = pauser.clone().acquire_owned().await.unwrap();
    let p = parent.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(3)).await;
        p.cancel();
    });
    assert_eq!(t.next().await, None);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    drop(permit);
}

// ---------------------------------------------------------------------------------------
// Fourth batch
// ---------------------------------------------------------------------------------------

fn chain_step(i: u32, n: u32) -> Feed<u32, ()> {
    if i == n {
        Feed::Value(i)
    } else {
        Feed::function(move || chain_step(i + 1, n))
    }
}

/// QM: a function returning the next function 100 000 times, on a 2 MiB stack: one
/// value at the end, then Stopped; a stop in the middle of such a chain cuts it short
/// (its next function comes back unread) after a bounded amount of work.
#[test]
fn qm_function_chain_hundred_thousand_small_stack() {
    in_child_process(
        module_path!(),
        "qm_function_chain_hundred_thousand_small_stack",
        || {
            block_on_paused(async {
                let ctx = hp::Ctx::beginning("q13");
                let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                feeder.add_sync_function(|| chain_step(0, 100_000));
                feeder.set_as_finished_if_out_of_sources();
                let mut seen = Vec::new();
                while let Some(r) = st.next().await {
                    seen.push(line(&r));
                }
                assert_eq!(seen, ["ok 100000", "stopped false"]);
                drop(st);

                let ctx = hp::Ctx::beginning("q13b");
                let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
                feeder.add_sync_function(|| chain_step(0, u32::MAX));
                let c = st.ctx().clone();
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    c.cancel();
                });
                let mut unread = 0;
                let mut n = 0;
                while let Some(mut r) = st.next().await {
                    n += 1;
                    if let Some(Feed::Function(_)) = r.take_unread() {
                        unread += 1;
                    }
                }
                assert_eq!(unread, 1, "the chain's next function comes back");
                assert!(n <= 3, "{n} results");
                assert_eq!(st.cut_short().len(), 1);
            });
        },
    );
}

/// An iterator whose Drop calls back into the manager (adds a value, reads its counts).
struct CallbackIter {
    left: u32,
    feeder: Option<hp::QueueFeeder<u32, ()>>,
}
impl Iterator for CallbackIter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.left)
    }
}
impl Drop for CallbackIter {
    fn drop(&mut self) {
        if let Some(f) = self.feeder.take() {
            let _ = f.live_sources();
            f.add_value(1000);
        }
    }
}

/// QM: a source whose Drop calls back into the manager, dropped when exhausted, when the
/// stop ends it, and when the streamer is dropped: no deadlock; the value it adds after a
/// stop is still delivered ("what is added afterwards is still delivered").
#[test]
fn qm_source_drop_calls_back_into_manager() {
    with_watchdog(|| {
        block_on_paused(async {
            // exhausted
            let ctx = hp::Ctx::beginning("q14");
            let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            feeder.add_sync_iterator(CallbackIter {
                left: 2,
                feeder: Some(feeder.clone()),
            });
            feeder.set_as_finished_if_out_of_sources();
            let mut vals = Vec::new();
            while let Some(r) = tokio::time::timeout(Duration::from_secs(5), st.next())
                .await
                .unwrap()
            {
                vals.extend(r.into_value());
            }
            vals.sort_unstable();
            assert_eq!(vals, [0, 1, 1000]);

            // ended by the stop
            let ctx = hp::Ctx::beginning("q14b");
            let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            feeder.add_sync_iterator(CallbackIter {
                left: 1_000_000,
                feeder: Some(feeder.clone()),
            });
            assert!(st.next().await.is_some());
            st.ctx().cancel();
            let mut got_1000 = false;
            let mut unread = Vec::new();
            while let Some(mut r) = tokio::time::timeout(Duration::from_secs(5), st.next())
                .await
                .unwrap()
            {
                unread.extend(r.take_unread());
                got_1000 |= r.into_value() == Some(1000);
            }
            // the iterator comes back unread: dropping it now adds 1000 after the end
            drop(unread);
            let _ = got_1000;

            // streamer dropped with the source queued
            let ctx = hp::Ctx::beginning("q14c");
            let (st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            feeder.add_sync_iterator(CallbackIter {
                left: 5,
                feeder: Some(feeder.clone()),
            });
            drop(st);
            drop(feeder);
        });
    });
}

/// Task holder: a done callback on the holder's context that spawns detached work while
/// the context is being cancelled: refused (false), the future dropped once, no deadlock.
#[tokio::test(start_paused = true)]
async fn detached_spawn_from_holder_ctx_callback_is_refused() {
    let ctx = hp::Ctx::beginning("d14");
    let ts = hp::task_holder(&ctx);
    let h = ts.handle();
    let (ran, dropped) = (counter(), counter());
    let (r, d) = (ran.clone(), dropped.clone());
    let accepted = Arc::new(Mutex::new(None));
    let a = accepted.clone();
    ts.ctx().add_done_callback(move |_| {
        *a.lock().unwrap() = Some(h.spawn_detached(tracked(async {}, &r, &d)));
    });
    ctx.cancel();
    ts.finish().await;
    assert_eq!(*accepted.lock().unwrap(), Some(false));
    assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 1));
}

thread_local! {
    static PARKED_RT: std::cell::RefCell<Option<tokio::runtime::Runtime>> =
        const { std::cell::RefCell::new(None) };
}

/// Task holder: a runtime kept in a thread-local and dropped at thread exit (its
/// detached tasks waiting) settles them: after the thread ended, their futures were
/// dropped once, `pending()` is 0, and `finish` on another runtime returns.
#[test]
fn detached_runtime_dropped_at_thread_exit_settles() {
    in_child_process(
        module_path!(),
        "detached_runtime_dropped_at_thread_exit_settles",
        || {
            let (ran, dropped) = (counter(), counter());
            let (r, d) = (ran.clone(), dropped.clone());
            let ts = std::thread::spawn(move || {
                let rt = current_thread();
                let ts = rt.block_on(async move {
                    let ctx = hp::Ctx::beginning("d15");
                    let ts = hp::task_holder(&ctx);
                    assert!(ts.spawn_detached(tracked(std::future::pending::<()>(), &r, &d)));
                    assert!(ts.spawn_detached(tracked(sleep(Duration::from_secs(1000)), &r, &d)));
                    tokio::task::yield_now().await;
                    ts
                });
                PARKED_RT.with(|p| *p.borrow_mut() = Some(rt));
                ts
            })
            .join()
            .unwrap();
            assert_eq!((ran.load(SeqCst), dropped.load(SeqCst)), (0, 2));
            assert_eq!(ts.pending(), 0);
            current_thread().block_on(async {
                tokio::time::timeout(Duration::from_secs(5), ts.finish())
                    .await
                    .expect("finish settles");
            });
        },
    );
}

/// Ctx waiters (callbacks first, then waiters), as a program sees it on the
/// multi-thread runtime: a task awaiting `ctx.wait()` (registered before the callback)
/// resumes only after the done callback ran, so it sees the callback's effect.
#[test]
fn ctx_waiter_resumes_after_callbacks_multi_thread() {
    multi_thread(async {
        let mut early = 0;
        for _ in 0..20 {
            let ctx = hp::Ctx::beginning("c9");
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (c, f) = (ctx.clone(), flag.clone());
            let waiter = tokio::spawn(async move {
                c.wait().await;
                f.load(SeqCst)
            });
            sleep(Duration::from_millis(2)).await; // the waiter is registered
            let f = flag.clone();
            ctx.add_done_callback(move |_| {
                std::thread::sleep(Duration::from_millis(20)); // a slow callback
                f.store(true, SeqCst);
            });
            let c = ctx.clone();
            tokio::task::spawn_blocking(move || c.cancel())
                .await
                .unwrap();
            if !waiter.await.unwrap() {
                early += 1;
            }
        }
        assert_eq!(
            early, 0,
            "waiter resumed before the callback ran ({early}/20)"
        );
    });
}

/// Ctx waiters: a done callback registered before the waiter runs before the waiter's
/// waker is woken (registration order at least).
#[test]
fn ctx_callback_registered_first_runs_before_waiter() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let p = hp::Ctx::beginning("c10");
    let l = log.clone();
    p.add_done_callback(move |_| l.lock().unwrap().push("cb".to_owned()));
    let mut wp = Box::pin(p.wait());
    assert!(poll_once(wp.as_mut(), &logging_waker(&log, "wake")).is_pending());
    p.cancel();
    assert_eq!(*log.lock().unwrap(), ["cb", "wake"]);
}

/// QM turn model at exact virtual instants: a stream ready at 1 and 2 (then done), a
/// value, and a coroutine ending at 1.5: [St, S0] → St pending → 0 @0; at 1 the stream
/// wakes: 1 → E1, St → S1, St pending → 1 @1; task → 50 @1.5; at 2: 2 → E2, St → S2,
/// St exhausted → IS: 2 @2, end @2, stopped @2.
#[tokio::test(start_paused = true)]
async fn qm_turns_at_exact_instants_with_waking_stream_and_task() {
    let ctx = hp::Ctx::beginning("q15");
    let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    let t0 = Instant::now();
    feeder.add_async_generator(futures::stream::unfold(1u32, |i| async move {
        if i > 2 {
            return None;
        }
        sleep(Duration::from_secs(1)).await;
        Some((i, i + 1))
    }));
    feeder.add_value(0u32);
    feeder.add_coroutine(async {
        sleep(Duration::from_millis(1500)).await;
        50u32
    });
    feeder.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(10), st.next())
        .await
        .unwrap()
    {
        seen.push((line(&r), t0.elapsed().as_millis()));
    }
    let want: Vec<(String, u128)> = [
        ("ok 0", 0),
        ("ok 1", 1000),
        ("ok 50", 1500),
        ("ok 2", 2000),
        ("end ASYNC_GENERATOR", 2000),
        ("stopped false", 2000),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b))
    .collect();
    assert_eq!(seen, want);
}

/// QM (multi-thread): three streams fed from std threads, the manager stopped after 300
/// values: every item sent is delivered or handed back in its stream's unread rest,
/// exactly once.
#[test]
fn qm_stop_with_streams_fed_from_threads_loses_nothing() {
    multi_thread(async {
        for _ in 0..5 {
            let ctx = hp::Ctx::beginning("q16");
            let (mut st, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let mut threads = Vec::new();
            for p in 0..3u32 {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                feeder
                    .add_async_generator(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
                threads.push(std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        let _ = tx.send(p * 10_000 + i);
                        if i % 50 == 0 {
                            std::thread::yield_now();
                        }
                    }
                }));
            }
            let mut got = Vec::new();
            let mut unread = Vec::new();
            while let Some(mut r) = st.next().await {
                if let Some(u) = r.take_unread() {
                    unread.push(u);
                }
                got.extend(r.into_value());
                if got.len() == 300 {
                    st.ctx().cancel();
                }
            }
            for t in threads {
                t.join().unwrap();
            }
            for u in unread {
                got.extend(feed_values(u).await);
            }
            got.sort_unstable();
            let want: Vec<u32> = (0..3)
                .flat_map(|p| (0..1000).map(move |i| p * 10_000 + i))
                .collect();
            assert_eq!(got.len(), want.len());
            assert!(got == want, "an item lost or duplicated");
        }
    });
}
