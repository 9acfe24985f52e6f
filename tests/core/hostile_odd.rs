//! Hostile tests for the odd helpers (generators and `stop_async_generator`, `using` and
//! `ensure_aexit`, the result helpers), by class: long chains on a 2 MiB stack, panics
//! wherever user code runs, user `Drop` re-entering the crate, cancellation at every
//! await point, both runtimes.

use crate::common;

use std::future::IntoFuture;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{in_child_process, multi_thread, paused_current_thread as current_thread};
use futures::{FutureExt, StreamExt};
use machinery::helpers::{self as hp, AsyncContextManager};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

fn seen(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Counts drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Yields `0..n`, sleeping `pause` before each item.
fn counter(n: u32, pause: Duration) -> hp::AsyncGenerator<u32> {
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        for i in 0..n {
            tokio::time::sleep(pause).await;
            co.yield_(i).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

/// A stage that relays every item of the stage before it (`yield from`).
fn relay(inner: hp::AsyncGenerator<u32>, drops: &Arc<AtomicUsize>) -> hp::AsyncGenerator<u32> {
    let dropped = Counted(drops.clone());
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        let _dropped = dropped;
        let mut inner = inner;
        while let Some(v) = inner.next().await {
            co.yield_(v).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

fn relay_chain(
    stages: usize,
    inner: hp::AsyncGenerator<u32>,
    drops: &Arc<AtomicUsize>,
) -> hp::AsyncGenerator<u32> {
    let mut g = inner;
    for _ in 0..stages {
        g = relay(g, drops);
    }
    g
}

// ---- long chains (2 MiB stack, child process)

#[test]
fn a_100_000_stage_relay_chain_yields_every_item_on_time_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_100_000_stage_relay_chain_yields_every_item_on_time_on_a_small_stack",
        || {
            current_thread().block_on(async {
                let start = Instant::now();
                let drops = Arc::new(AtomicUsize::new(0));
                let mut g = relay_chain(100_000, counter(3, secs(1)), &drops);
                let mut got = Vec::new();
                while let Some(v) = g.next().await {
                    got.push((v, start.elapsed()));
                }
                assert_eq!(got, [(0, secs(1)), (1, secs(2)), (2, secs(3))]);
                assert!(g.finished());
                assert_eq!(drops.load(SeqCst), 100_000);
            });
        },
    );
}

#[test]
fn dropping_a_100_000_stage_chain_suspended_mid_way_drops_every_stage_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "dropping_a_100_000_stage_chain_suspended_mid_way_drops_every_stage_on_a_small_stack",
        || {
            current_thread().block_on(async {
                let drops = Arc::new(AtomicUsize::new(0));
                let mut g = relay_chain(100_000, counter(3, secs(1)), &drops);
                assert_eq!(g.next().await, Some(0));
                drop(g);
                assert_eq!(drops.load(SeqCst), 100_000);
                // Never started: dropped without running, as deep.
                let g = relay_chain(100_000, counter(3, secs(1)), &drops);
                drop(g);
                assert_eq!(drops.load(SeqCst), 200_000);
            });
        },
    );
}

/// Generator `i` yields once; on being stopped it stops generator `i + 1` in its cleanup.
fn stopping_chain(n: usize, cleaned: &Arc<AtomicUsize>) -> hp::AsyncGenerator<u32> {
    let mut next: Option<hp::AsyncGenerator<u32>> = None;
    for _ in 0..n {
        let cleaned = cleaned.clone();
        let mut inner = next.take();
        next = Some(hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
            if let Some(inner) = inner.as_mut() {
                inner.asend(()).await?;
            }
            let thrown = co.yield_(1).await;
            if let Some(inner) = inner.as_mut() {
                let _ = hp::stop_async_generator(inner).await;
                assert!(inner.finished());
            }
            cleaned.fetch_add(1, SeqCst);
            thrown
        }));
    }
    next.expect("n > 0")
}

#[test]
fn a_chain_of_100_000_generators_each_stopping_the_next_in_its_cleanup_stops_them_all() {
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_generators_each_stopping_the_next_in_its_cleanup_stops_them_all",
        || {
            current_thread().block_on(async {
                let cleaned = Arc::new(AtomicUsize::new(0));
                let mut g = stopping_chain(100_000, &cleaned);
                assert_eq!(g.asend(()).await.unwrap(), Some(1));
                let stopped = hp::stop_async_generator(&mut g).await;
                assert!(stopped.unwrap_err().is_cancelled());
                assert_eq!(cleaned.load(SeqCst), 100_000);
                assert!(g.finished());
            });
        },
    );
}

#[test]
fn a_deep_relay_chain_on_the_multi_thread_runtime_yields_everything_in_order() {
    let got = multi_thread(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let g = relay_chain(2_000, counter(20, Duration::from_millis(1)), &drops);
        let got: Vec<u32> = g.collect().await;
        (got, drops.load(SeqCst))
    });
    assert_eq!(got, ((0..20).collect::<Vec<_>>(), 2_000));
}

#[test]
fn a_stopping_chain_on_the_multi_thread_runtime_stops_every_generator() {
    let cleaned = multi_thread(async {
        let cleaned = Arc::new(AtomicUsize::new(0));
        let mut g = stopping_chain(2_000, &cleaned);
        assert_eq!(g.asend(()).await.unwrap(), Some(1));
        assert!(
            hp::stop_async_generator(&mut g)
                .await
                .unwrap_err()
                .is_cancelled()
        );
        cleaned.load(SeqCst)
    });
    assert_eq!(cleaned, 2_000);
}

#[tokio::test(start_paused = true)]
async fn a_deep_stage_moved_out_of_its_chain_is_polled_in_place_again() {
    // The innermost generator of a deep chain is detached while the chain runs; taken
    // out and driven on its own, it still yields the rest on time.
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = counter(4, secs(1));
    let holder = Arc::new(Mutex::new(Some(inner)));
    let h = holder.clone();
    let first = hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        let mut inner = h.lock().unwrap().take().unwrap();
        let v = inner.next().await.unwrap();
        tx.send(inner).unwrap();
        co.yield_(v).await?;
        Ok::<(), hp::Failure>(())
    });
    let drops = Arc::new(AtomicUsize::new(0));
    let mut g = relay_chain(100, first, &drops);
    let start = Instant::now();
    assert_eq!(g.next().await, Some(0));
    let mut inner = rx.recv().unwrap();
    assert_eq!(inner.next().await, Some(1));
    assert_eq!(inner.next().await, Some(2));
    assert_eq!(start.elapsed(), secs(3));
    drop(g);
    assert_eq!(drops.load(SeqCst), 100);
    assert_eq!(inner.next().await, Some(3));
    assert_eq!(inner.next().await, None);
}

// ---- panics wherever user code runs

/// Panics when dropped (the body's synchronous cleanup).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

fn always() -> bool {
    true
}

fn is_panicked(f: &hp::Failure, text: &str) -> bool {
    f.error()
        .and_then(|e| e.downcast_ref::<hp::Panicked>())
        .is_some_and(|p| p.to_string().contains(text))
}

#[tokio::test(start_paused = true)]
async fn a_panicking_drop_of_an_unstarted_body_is_the_close_failure() {
    let guard = PanicOnDrop("drop boom");
    let mut g = hp::AsyncGenerator::<u32>::new(move |_co| async move {
        let _guard = guard;
    });
    let closed = g.aclose().await;
    assert!(is_panicked(&closed.unwrap_err(), "drop boom"));
    assert!(g.finished());
    assert_eq!(g.asend(()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_drop_of_an_unstarted_body_is_the_stop_failure() {
    let guard = PanicOnDrop("drop boom");
    let mut g = hp::AsyncGenerator::<u32>::new(move |_co| async move {
        let _guard = guard;
    });
    let stopped = hp::stop_async_generator(&mut g).await;
    assert!(is_panicked(&stopped.unwrap_err(), "drop boom"));
    assert!(g.finished());
}

#[tokio::test(start_paused = true)]
async fn a_body_ignoring_close_whose_drop_panics_fails_close_with_the_panic() {
    let mut g = hp::AsyncGenerator::<u32>::new(|co| async move {
        let _guard = PanicOnDrop("drop boom");
        for _ in 0..100 {
            let _ = co.yield_(1).await;
        }
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(1));
    assert!(is_panicked(&g.aclose().await.unwrap_err(), "drop boom"));
    assert!(g.finished());
}

#[test]
fn a_panicking_body_drop_continues_after_every_nested_generator_is_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let inner = relay_chain(1_000, counter(3, secs(1)), &d);
        let guard = PanicOnDrop("outer drop boom");
        let g = hp::AsyncGenerator::<u32>::new(move |_co| async move {
            let _guard = guard;
            let _inner = inner;
        });
        let g = relay(g, &d);
        drop(g);
    }));
    let payload = outcome.unwrap_err();
    assert!(
        hp::Panicked::from_payload(&*payload)
            .to_string()
            .contains("outer drop boom")
    );
    assert_eq!(drops.load(SeqCst), 1_001);
    // The thread's drop queue is usable again.
    let g = relay_chain(10, counter(1, secs(1)), &drops);
    drop(g);
    assert_eq!(drops.load(SeqCst), 1_011);
}

#[tokio::test(start_paused = true)]
async fn a_panic_deep_in_a_detached_stage_ends_the_chain_and_is_kept_there() {
    let drops = Arc::new(AtomicUsize::new(0));
    let failing = hp::AsyncGenerator::<u32>::new(|co| async move {
        co.yield_(7).await?;
        tokio::time::sleep(secs(1)).await;
        if always() {
            panic!("deep boom");
        }
        Ok::<(), hp::Failure>(())
    });
    let g = relay_chain(100, failing, &drops);
    let mut g = g.into_try_stream();
    assert_eq!(g.next().await.unwrap().unwrap(), 7);
    // The relays end quietly when their inner stream ends; the outermost ends with Ok.
    assert!(g.next().await.is_none());
    assert_eq!(drops.load(SeqCst), 100);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_cleanup_during_stop_is_the_stop_failure() {
    let mut g = hp::AsyncGenerator::<u32>::new(|co| async move {
        let thrown = co.yield_(1).await;
        tokio::time::sleep(secs(1)).await;
        if thrown.is_err() {
            panic!("cleanup boom");
        }
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(1));
    let stopped = hp::stop_async_generator(&mut g).await;
    assert!(is_panicked(&stopped.unwrap_err(), "cleanup boom"));
    assert!(g.finished());
}

/// A send type whose `Default` panics the first time.
#[derive(Debug)]
struct Touchy(u32);

static TOUCHY_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Default for Touchy {
    fn default() -> Self {
        if TOUCHY_CALLS.fetch_add(1, SeqCst) == 0 {
            panic!("default boom");
        }
        Touchy(0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_default_send_value_leaves_the_stream_usable() {
    let mut g = hp::AsyncGenerator::new(|co: hp::Co<u32, Touchy>| async move {
        let mut n = 1;
        for _ in 0..100 {
            n += co.yield_(n).await?.0;
        }
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(g.next().await, Some(1));
    let again = AssertUnwindSafe(g.next()).catch_unwind().await;
    assert!(again.is_err());
    assert_eq!(g.next().await, Some(1));
    assert!(g.aclose().await.is_ok());
}

/// Counts enter/exit; panics or fails where told.
struct Hostile {
    log: Log,
    enter_panics: bool,
    exit_panics: bool,
}

impl Hostile {
    fn new(log: &Log) -> Self {
        Hostile {
            log: log.clone(),
            enter_panics: false,
            exit_panics: false,
        }
    }
}

impl AsyncContextManager for Hostile {
    type Value = u32;

    async fn enter(&mut self) -> Result<u32, hp::Error> {
        tokio::time::sleep(secs(1)).await;
        push(&self.log, "enter");
        if self.enter_panics {
            panic!("enter boom");
        }
        Ok(1)
    }

    async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
        tokio::time::sleep(secs(1)).await;
        push(
            &self.log,
            format!("exit({})", error.map_or("-".into(), ToString::to_string)),
        );
        if self.exit_panics {
            panic!("exit boom");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_enter_runs_exit_once_with_the_panic_then_continues() {
    let log = Log::default();
    let mut cm = Hostile {
        enter_panics: true,
        ..Hostile::new(&log)
    };
    let out = AssertUnwindSafe(hp::using(&mut cm, async |v| Ok(v)))
        .catch_unwind()
        .await;
    assert!(out.is_err());
    assert_eq!(seen(&log), ["enter", "exit(panicked: enter boom)"]);

    log.lock().unwrap().clear();
    let out = AssertUnwindSafe(hp::ensure_aexit(&mut cm))
        .catch_unwind()
        .await;
    assert!(out.is_err());
    assert_eq!(seen(&log), ["enter", "exit(panicked: enter boom)"]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_exit_continues_and_the_manager_can_be_used_again() {
    let log = Log::default();
    let mut cm = Hostile {
        exit_panics: true,
        ..Hostile::new(&log)
    };
    let out = AssertUnwindSafe(hp::using(&mut cm, async |v| Ok(v)))
        .catch_unwind()
        .await;
    assert!(out.is_err());
    cm.exit_panics = false;
    assert_eq!(hp::using(&mut cm, async |v| Ok(v + 1)).await.unwrap(), 2);
    assert_eq!(seen(&log), ["enter", "exit(-)", "enter", "exit(-)"]);
}

// ---- cancellation at every await point

/// Catches a thrown error (yields 2 after 1 s), takes `provide` (yields 3 after 1 s),
/// cleans up on close (1 s); logs each step.
fn patient(log: &Log) -> hp::AsyncGenerator<u32, u32> {
    let log = log.clone();
    hp::AsyncGenerator::new(move |co: hp::Co<u32, u32>| async move {
        let mut next = co.yield_(1).await;
        loop {
            match next {
                Err(f) if hp::GeneratorExit::matches(&f) => {
                    tokio::time::sleep(secs(1)).await;
                    push(&log, "cleaned up");
                    return Err::<(), _>(f);
                }
                Err(f) => {
                    tokio::time::sleep(secs(1)).await;
                    push(&log, format!("caught {f}"));
                    next = co.yield_(2).await;
                }
                Ok(sent) => {
                    tokio::time::sleep(secs(1)).await;
                    push(&log, format!("got {sent}"));
                    next = co.yield_(3).await;
                }
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_stop_cut_short_at_any_await_point_is_finished_by_the_next_stop() {
    // The stop takes 3 s: throw (1 s), provide (1 s), close (1 s). Cut it at each point.
    for cut in [0, 500, 1_500, 2_500] {
        let log = Log::default();
        let mut g = patient(&log);
        assert_eq!(g.asend(0).await.unwrap(), Some(1));
        let cut = Duration::from_millis(cut);
        let first = tokio::time::timeout(cut, hp::stop_async_generator(&mut g).provide(7)).await;
        assert!(first.is_err(), "cut at {cut:?}");
        assert!(!g.finished());
        let second = hp::stop_async_generator(&mut g).provide(8).await;
        assert!(second.is_ok(), "cut at {cut:?}: {second:?}");
        assert!(g.finished());
        let log = seen(&log);
        assert_eq!(log.last().unwrap(), "cleaned up", "cut at {cut:?}");
        assert_eq!(log.iter().filter(|l| *l == "cleaned up").count(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn an_athrow_or_aclose_cut_short_is_finished_by_the_next_call() {
    let log = Log::default();
    let mut g = patient(&log);
    assert_eq!(g.asend(0).await.unwrap(), Some(1));
    let cut = tokio::time::timeout(Duration::from_millis(500), g.athrow(hp::Error::msg("x"))).await;
    assert!(cut.is_err());
    // The next call first finishes the cut step (its yield of 2 is dropped).
    assert_eq!(g.asend(5).await.unwrap(), Some(3));
    let cut = tokio::time::timeout(Duration::from_millis(500), g.aclose()).await;
    assert!(cut.is_err());
    assert!(g.aclose().await.is_ok());
    assert_eq!(seen(&log), ["caught x", "got 5", "cleaned up"]);
}

#[tokio::test(start_paused = true)]
async fn a_using_cut_short_at_each_await_point_skips_exit_and_the_manager_is_reusable() {
    // enter 1 s, body 1 s, exit 1 s: cut in each; `exit` only runs when reached.
    for (cut_ms, expected) in [
        (500, vec![]),
        (1_500, vec!["enter"]),
        (2_500, vec!["enter", "body"]),
    ] {
        let log = Log::default();
        let mut cm = Hostile::new(&log);
        let l = log.clone();
        let scope = hp::using(&mut cm, async move |v| {
            tokio::time::sleep(secs(1)).await;
            push(&l, "body");
            Ok(v)
        });
        let cut = tokio::time::timeout(Duration::from_millis(cut_ms), scope).await;
        assert!(cut.is_err());
        assert_eq!(seen(&log), expected, "cut at {cut_ms} ms");
        assert_eq!(hp::using(&mut cm, async |v| Ok(v)).await.unwrap(), 1);
    }
}

// ---- user Drop re-entering the crate

/// A value whose `Drop` uses the crate: cancels a context (whose callback drops a
/// generator chain) and stops another generator.
struct Reentrant {
    ctx: hp::Ctx,
    other: Option<hp::AsyncGenerator<u32>>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        self.ctx.cancel();
        if let Some(mut g) = self.other.take() {
            let stopped = hp::stop_async_generator(&mut g)
                .into_future()
                .now_or_never();
            assert!(stopped.is_some());
        }
        self.drops.fetch_add(1, SeqCst);
    }
}

fn reentrant(drops: &Arc<AtomicUsize>) -> Reentrant {
    let ctx = hp::Ctx::beginning("r");
    let chain = Mutex::new(Some(relay_chain(100, counter(1, secs(1)), drops)));
    ctx.add_done_callback(move |_| drop(chain.lock().unwrap().take()));
    Reentrant {
        ctx,
        other: Some(counter(3, secs(0))),
        drops: drops.clone(),
    }
}

#[tokio::test(start_paused = true)]
async fn values_dropped_by_a_generator_may_reenter_the_crate() {
    let drops = Arc::new(AtomicUsize::new(0));
    // A yielded value dropped with the generator (never taken); the body's own values.
    let d = drops.clone();
    let v = reentrant(&drops);
    let mut g =
        hp::AsyncGenerator::new(move |co: hp::Co<Reentrant, Option<Reentrant>>| async move {
            let _held = reentrant(&d);
            let mut first = Some(v);
            for _ in 0..100 {
                let item = first.take().unwrap_or_else(|| reentrant(&d));
                // A sent value is dropped here, inside the body.
                co.yield_(item).await?;
            }
            Ok::<(), hp::Failure>(())
        });
    let got = g.asend(None).await.unwrap().unwrap();
    drop(got);
    assert_eq!(drops.load(SeqCst), 101);
    let _ = g.asend(Some(reentrant(&drops))).await.unwrap();
    assert!(g.aclose().await.is_ok());
    drop(g);
    // 3 values dropped (1 + 1 sent + 1 yielded and dropped), 1 held, each with 100 stages.
    assert!(drops.load(SeqCst) >= 4 * 101, "{}", drops.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_sent_value_for_a_dropped_yield_is_dropped_outside_the_lock() {
    // The body drops a yield after handing its value over, so the value sent for it is
    // never picked up; the next send replaces it and drops it (it re-enters the crate).
    let drops = Arc::new(AtomicUsize::new(0));
    let mut g = hp::AsyncGenerator::new(|co: hp::Co<u32, Option<Reentrant>>| async move {
        let _ = co.yield_(1).now_or_never();
        co.yield_(2).await?;
        co.yield_(3).await?;
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(g.asend(None).await.unwrap(), Some(1));
    assert_eq!(g.asend(Some(reentrant(&drops))).await.unwrap(), Some(2));
    assert_eq!(g.asend(Some(reentrant(&drops))).await.unwrap(), Some(3));
    assert!(g.aclose().await.is_ok());
    assert_eq!(drops.load(SeqCst), 2 * 101);
}

// ---- the result helpers

/// A `FutureStatus` whose `result` panics.
struct Liar;

impl hp::FutureStatus<u32> for Liar {
    fn cancelled(&self) -> bool {
        false
    }
    fn done(&self) -> bool {
        true
    }
    fn exception(&self) -> Result<Option<hp::Error>, hp::StatusError> {
        Ok(None)
    }
    fn result(&self) -> Result<u32, hp::StatusError> {
        panic!("liar boom")
    }
}

#[test]
fn a_panicking_future_status_propagates_from_noncancelled_results() {
    let out = catch_unwind(|| hp::noncancelled_results_from_futs([&Liar]));
    assert!(out.is_err());
}

#[test]
fn a_panicking_callback_of_a_future_does_not_stop_find_and_apply_result() {
    let futs: Vec<hp::Fut<u32>> = (0..3).map(|_| hp::Fut::new()).collect();
    futs[0].add_done_callback(|_| panic!("callback boom"));
    let final_fut = hp::Fut::new();
    futs[1].set_result(5);
    assert!(hp::find_and_apply_result(&final_fut, &futs));
    assert_eq!(final_fut.result().unwrap(), 5);
    assert!(futs.iter().all(|f| f.result().unwrap() == 5));
}

#[test]
fn a_callback_reentering_find_and_apply_result_on_the_same_group_settles_it() {
    let futs: Arc<Vec<hp::Fut<u32>>> = Arc::new((0..4).map(|_| hp::Fut::new()).collect());
    let final_fut = hp::Fut::new();
    let (f2, fin) = (futs.clone(), final_fut.clone());
    futs[0].add_done_callback(move |_| {
        hp::find_and_apply_result(&fin, &f2);
    });
    futs[3].set_result(9);
    assert!(hp::find_and_apply_result(&final_fut, &futs));
    assert!(futs.iter().all(|f| f.result().unwrap() == 9));
}

#[test]
fn find_and_apply_result_over_100_000_futures_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "find_and_apply_result_over_100_000_futures_runs_on_a_small_stack",
        || {
            let runs = Arc::new(AtomicUsize::new(0));
            let futs: Vec<hp::Fut<u32>> = (0..100_000).map(|_| hp::Fut::new()).collect();
            for f in &futs {
                let runs = runs.clone();
                f.add_done_callback(move |_| {
                    runs.fetch_add(1, SeqCst);
                });
            }
            futs[50_000].set_exception(hp::Error::msg("one"));
            let final_fut = hp::Fut::new();
            assert!(hp::find_and_apply_result(&final_fut, &futs));
            assert_eq!(runs.load(SeqCst), 100_000);
            let (err, results) = hp::noncancelled_results_from_futs(&futs);
            assert_eq!(err.unwrap().to_string(), "one");
            assert!(results.is_empty());
        },
    );
}

#[test]
fn a_yield_from_another_task_wakes_a_consumer_through_a_deep_chain() {
    // The innermost generator yields from a task of its own, so its values arrive by a
    // waker from another thread while its stage is detached (50 stages deep).
    let got = multi_thread(async {
        let inner = hp::AsyncGenerator::new(|co: hp::Co<u32>| async move {
            let helper = tokio::spawn(async move {
                for i in 0..20 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    co.yield_(i).await?;
                }
                Ok::<(), hp::Failure>(())
            });
            helper.await.unwrap()
        });
        let drops = Arc::new(AtomicUsize::new(0));
        relay_chain(50, inner, &drops).collect::<Vec<u32>>().await
    });
    assert_eq!(got, (0..20).collect::<Vec<_>>());
}

/// Wakes its own task at once and returns `Pending` once (as `futures_lite`'s
/// `yield_now` and tokio's cooperative budget do).
async fn wake_and_yield() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

#[test]
fn a_detached_stage_that_yields_to_the_runtime_lets_other_tasks_run() {
    // The innermost stage busy-waits with `yield_now` for a flag another task sets: a
    // detached body that wakes itself must go back to the runtime, not spin in place.
    let got = common::with_watchdog(|| {
        current_thread().block_on(async {
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let f = flag.clone();
            let inner = hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
                while !f.load(SeqCst) {
                    wake_and_yield().await;
                }
                co.yield_(1).await?;
                Ok::<(), hp::Failure>(())
            });
            let setter = tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                flag.store(true, SeqCst);
            });
            let drops = Arc::new(AtomicUsize::new(0));
            let got: Vec<u32> = relay_chain(50, inner, &drops).collect().await;
            setter.await.unwrap();
            got
        })
    });
    assert_eq!(got, [1]);
}

#[test]
fn a_hundred_thousand_distinct_errors_are_grouped_in_linear_time() {
    let futs: Vec<hp::Fut<u8>> = (0..100_000).map(|_| hp::Fut::new()).collect();
    let shared = hp::Error::msg("shared");
    for (i, f) in futs.iter().enumerate() {
        if i % 2 == 0 {
            f.set_exception(hp::Error::msg(format!("e{i}")));
        } else {
            f.set_exception(shared.clone());
        }
    }
    let (err, results) = common::with_watchdog(move || hp::noncancelled_results_from_futs(&futs));
    assert!(results.is_empty());
    let err = err.unwrap();
    let group = err.downcast_ref::<hp::ErrorGroup>().unwrap();
    assert_eq!(group.errors.len(), 50_001);
    assert_eq!(group.errors[0].to_string(), "e0");
    assert!(group.errors[1].same(&shared));
    assert_eq!(group.errors[2].to_string(), "e2");
}

/// Like `stopping_chain`, but each cleanup yields to the runtime, one in eight after a
/// millisecond's sleep (seeded).
fn slow_stopping_chain(
    n: usize,
    cleaned: &Arc<AtomicUsize>,
    rng: &mut common::Rng,
) -> hp::AsyncGenerator<u32> {
    let mut next: Option<hp::AsyncGenerator<u32>> = None;
    for _ in 0..n {
        let cleaned = cleaned.clone();
        let sleeps = rng.below(8) == 0;
        let mut inner = next.take();
        next = Some(hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
            if let Some(inner) = inner.as_mut() {
                inner.asend(()).await?;
            }
            let thrown = co.yield_(1).await;
            if let Some(inner) = inner.as_mut() {
                let _ = hp::stop_async_generator(inner).await;
            }
            if sleeps {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
            cleaned.fetch_add(1, SeqCst);
            thrown
        }));
    }
    next.expect("n > 0")
}

#[test]
fn stops_of_deep_chains_cut_at_random_instants_are_completed_by_a_second_stop() {
    let outcomes = multi_thread(async {
        let mut rng = common::Rng(0x05ee_d0dd);
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            let cleaned = Arc::new(AtomicUsize::new(0));
            let mut g = slow_stopping_chain(200, &cleaned, &mut rng);
            assert_eq!(g.asend(()).await.unwrap(), Some(1));
            let cut = Duration::from_micros(rng.below(30_000));
            let _ = tokio::time::timeout(cut, hp::stop_async_generator(&mut g)).await;
            let _ = hp::stop_async_generator(&mut g).await;
            outcomes.push((g.finished(), cleaned.load(SeqCst)));
        }
        outcomes
    });
    assert!(outcomes.iter().all(|o| *o == (true, 200)), "{outcomes:?}");
}
