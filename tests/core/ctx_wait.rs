//! `hp::Ctx` over time: awaiting, wait_for_first/all, async_with_timeout, background
//! tasks with reporters, deadline children. Exact virtual instants on paused time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers::{self as hp, Ctx, CtxOptions, WaitByCallback};
use tokio::time::Instant;

use crate::common;
use common::{Boom, Capture, Log};

fn logged(name: &'static str) -> (Ctx, Log) {
    let cap = Capture::default();
    let log = cap.0.clone();
    (Ctx::beginning_with(name, CtxOptions::new().log(cap)), log)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

struct Resource(Arc<AtomicBool>);
impl Drop for Resource {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

// --- awaiting ---

#[tokio::test(start_paused = true)]
async fn awaiting_a_context_returns_when_an_ancestor_finishes() {
    let root = Ctx::beginning("r");
    let child = root.child("c").drop_guard();
    let start = Instant::now();
    let r = root.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(3)).await;
        r.set_exception(Boom("stop"));
    });
    let how = child.ctx().clone().await;
    assert_eq!(how.to_string(), "stop");
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(child.wait().await.to_string(), "stop");
}

#[tokio::test]
async fn a_context_wait_wakes_once_and_is_cancel_safe() {
    let root = Ctx::beginning("r");
    let mut w = tokio_test::task::spawn(root.wait());
    tokio_test::assert_pending!(w.poll());
    assert!(!w.is_woken());
    drop(w);
    let mut w = tokio_test::task::spawn(root.wait());
    tokio_test::assert_pending!(w.poll());
    root.cancel();
    assert!(w.is_woken());
    assert!(tokio_test::assert_ready!(w.poll()).is_cancelled());
}

// --- wait_for_first / wait_for_all (rule 6) ---

#[test]
fn wait_for_first_and_all_with_nothing_return_at_once() {
    let mut first = tokio_test::task::spawn(hp::wait_for_first(&[]));
    tokio_test::assert_ready!(first.poll());
    let mut all = tokio_test::task::spawn(hp::wait_for_all(&[]));
    tokio_test::assert_ready!(all.poll());
}

#[test]
fn when_already_satisfied_they_yield_exactly_once() {
    let ev = hp::Event::new();
    ev.set();
    let fut = hp::Fut::<u8>::new();
    let waits: [&dyn WaitByCallback; 2] = [&ev, &fut];
    let mut first = tokio_test::task::spawn(hp::wait_for_first(&waits));
    tokio_test::assert_pending!(first.poll());
    assert!(first.is_woken(), "a yield, not a wait");
    tokio_test::assert_ready!(first.poll());

    fut.set_result(1);
    let ctx = Ctx::beginning("c");
    let mut all = tokio_test::task::spawn(ctx.wait_for_all(&waits));
    tokio_test::assert_pending!(all.poll());
    assert!(all.is_woken());
    tokio_test::assert_ready!(all.poll());
}

#[tokio::test]
async fn an_already_satisfied_wait_lets_other_ready_tasks_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    tokio::spawn(async move {
        r.fetch_add(1, SeqCst);
    });
    let ev = hp::Event::new();
    ev.set();
    hp::wait_for_first(&[&ev]).await;
    assert_eq!(ran.load(SeqCst), 1);
}

#[tokio::test]
async fn wait_for_all_returns_for_two_siblings_finished_through_their_parent() {
    let root = Ctx::beginning("r");
    let a = root.child("a").drop_guard();
    let b = root.child("b").drop_guard();
    let w = {
        let (a, b) = (a.ctx().clone(), b.ctx().clone());
        tokio::spawn(async move { hp::wait_for_all(&[&a, &b]).await })
    };
    tokio::task::yield_now().await;
    assert!(!w.is_finished());
    root.cancel();
    w.await.unwrap();
    // And when they are already done.
    root.wait_for_all(&[&*a, &*b]).await;
}

#[tokio::test(start_paused = true)]
async fn wait_for_first_takes_any_mix_and_returns_on_the_first() {
    let ctx = Ctx::beginning("r");
    let child = ctx.child("c").drop_guard();
    let fut = hp::Fut::<u8>::new();
    let ev = hp::Event::new();
    let task = hp::Task::spawn(tokio::time::sleep(secs(5)));
    let start = Instant::now();
    let e = ev.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(2)).await;
        e.set();
    });
    ctx.wait_for_first(&[&*child, &fut, &ev, &task]).await;
    assert_eq!(start.elapsed(), secs(2));
    assert!(
        !fut.done() && !child.done(),
        "completion only, nothing consumed"
    );
    hp::wait_for_all(&[&ev, &task]).await;
    assert_eq!(start.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_for_first_leaves_no_callback_on_its_items() {
    let ctx = Ctx::beginning("r");
    let fut = hp::Fut::<u8>::new();
    let r = tokio::time::timeout(secs(1), hp::wait_for_first(&[&ctx, &fut])).await;
    assert!(r.is_err());
    let h = ctx.add_done_callback(|_| {});
    // Only our own registration is left: removing it empties the context.
    assert_eq!(ctx.remove_done_callback(h), 1);
    assert_eq!(ctx.tree(), "r [pending]\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_all_on_the_multi_thread_runtime_sees_every_completion() {
    tokio::time::timeout(secs(20), async {
        for _ in 0..200 {
            let root = Ctx::beginning("r");
            let kids: Vec<_> = (0..8).map(|_| root.child("k").drop_guard()).collect();
            let ctxs: Vec<Ctx> = kids.iter().map(|k| k.ctx().clone()).collect();
            let w = tokio::spawn(async move {
                let refs: Vec<&dyn WaitByCallback> =
                    ctxs.iter().map(|c| c as &dyn WaitByCallback).collect();
                hp::wait_for_all(&refs).await;
            });
            let k = std::thread::spawn(move || drop(kids));
            k.join().unwrap();
            w.await.unwrap();
        }
    })
    .await
    .expect("watchdog");
}

// --- async_with_timeout (rules 9, 10) ---

#[tokio::test(start_paused = true)]
async fn async_with_timeout_returns_the_value_and_leaves_the_event_unset() {
    let ctx = Ctx::beginning("r");
    let ev = hp::Event::new();
    let start = Instant::now();
    let out = ctx
        .async_with_timeout(async {
            tokio::time::sleep(secs(3)).await;
            7
        })
        .timeout_event(&ev)
        .await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(start.elapsed(), secs(3));
    tokio::time::sleep(secs(60)).await;
    assert!(!ev.is_set(), "never set after the call returned");
    assert_eq!(ctx.child_count(), 0, "its child context is gone");
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_turns_a_panic_into_an_error() {
    let ctx = Ctx::beginning("r");
    let out = ctx
        .async_with_timeout(async {
            panic!("inside");
        })
        .await;
    let failure: hp::Failure = out.unwrap_err();
    assert!(failure.error().unwrap().is::<hp::Panicked>());
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_defaults_to_ten_seconds_and_cancelled() {
    let ctx = Ctx::beginning("r");
    let ev = hp::Event::new();
    let start = Instant::now();
    let out = ctx
        .async_with_timeout(std::future::pending::<u8>())
        .timeout_event(&ev)
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(start.elapsed(), secs(10));
    assert!(ev.is_set());
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_returns_the_timeout_error_after_dropping_plain_work() {
    let ctx = Ctx::beginning("r");
    let dropped = Arc::new(AtomicBool::new(false));
    let res = Resource(dropped.clone());
    let err = hp::Error::new(Boom("too slow"));
    let start = Instant::now();
    let out = ctx
        .async_with_timeout(async move {
            let _res = res;
            tokio::time::sleep(secs(60)).await;
        })
        .timeout(secs(2))
        .timeout_error(err.clone())
        .name("slow")
        .await;
    assert!(out.unwrap_err().error().unwrap().same(&err));
    assert!(
        dropped.load(SeqCst),
        "returned only after the work was dropped"
    );
    assert_eq!(start.elapsed(), secs(2));
}

#[tokio::test(start_paused = true)]
async fn scoped_async_with_timeout_returns_after_async_cleanup_and_sets_the_event_first() {
    let ctx = Ctx::beginning("r");
    let ev = hp::Event::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (e, s) = (ev.clone(), seen.clone());
    let start = Instant::now();
    let out = ctx
        .async_with_timeout_scoped(move |work_ctx| async move {
            s.lock().unwrap().push(work_ctx.name());
            tokio::select! {
                how = work_ctx.wait() => {
                    s.lock().unwrap().push(format!("event set {} how {how}", e.is_set()));
                    tokio::time::sleep(secs(1)).await; // async cleanup
                    s.lock().unwrap().push("cleaned".to_owned());
                    0
                }
                _ = tokio::time::sleep(secs(60)) => 1,
            }
        })
        .name("job")
        .timeout(secs(5))
        .timeout_event(&ev)
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(start.elapsed(), secs(6), "5 s timeout + 1 s cleanup");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "r-->async_with_timeout[job]",
            "event set true how cancelled",
            "cleaned"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn scoped_work_sees_the_timeout_error_as_its_context_cause() {
    let ctx = Ctx::beginning("r");
    let out = ctx
        .async_with_timeout_scoped(|c| async move { c.wait().await.to_string() })
        .timeout(secs(1))
        .timeout_error(Boom("deadline"))
        .await;
    assert_eq!(out.unwrap_err().to_string(), "deadline");
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_stops_when_the_parent_finishes_without_setting_the_event() {
    let root = Ctx::beginning("r");
    let ev = hp::Event::new();
    let r = root.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(3)).await;
        r.set_exception(Boom("parent"));
    });
    let start = Instant::now();
    let out = root
        .async_with_timeout(std::future::pending::<()>())
        .timeout_event(&ev)
        .await;
    assert_eq!(out.unwrap_err().to_string(), "parent");
    assert_eq!(start.elapsed(), secs(3));
    assert!(!ev.is_set());
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_logs_a_failure_only_when_not_silent() {
    let (ctx, log) = logged("r");
    let _ = ctx
        .async_with_timeout(async { Err::<(), _>(()) })
        .silent(false)
        .await;
    let _ = ctx
        .async_with_timeout(async {
            panic!("quiet");
        })
        .name("q")
        .await;
    assert!(
        log.lock().unwrap().is_empty(),
        "silent by default; Err value is a value"
    );
    let _ = ctx
        .async_with_timeout(async {
            panic!("loud");
        })
        .name("l")
        .silent(false)
        .await;
    let _ = ctx
        .async_with_timeout(std::future::pending::<()>())
        .timeout(secs(1))
        .silent(false)
        .await;
    assert_eq!(
        *log.lock().unwrap(),
        [
            "exception r-->async_with_timeout[l]: async_with_timeout work failed: Panicked:panicked: loud"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_cuts_pending_work_at_once() {
    let ctx = Ctx::beginning("r");
    let start = Instant::now();
    let out = ctx
        .async_with_timeout(tokio::time::sleep(secs(1)))
        .timeout(Duration::ZERO)
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let ready = ctx
        .async_with_timeout(async { 5 })
        .timeout(Duration::ZERO)
        .await;
    assert_eq!(ready.unwrap(), 5);
}

// --- async_as_background and reporters (rules 9, 12) ---

#[tokio::test]
async fn async_as_background_reports_errors_unless_silent_and_never_cancellations() {
    let (ctx, log) = logged("r");
    let t = ctx.async_as_background_reported(async { panic!("bg") });
    let _ = t.wait().await;
    let c = ctx.async_as_background_reported(std::future::pending::<()>());
    c.cancel();
    c.wait().await;
    let ok = ctx.async_as_background_reported(async { 1 });
    assert_eq!(ok.clone().await.unwrap(), 1);
    let quiet = ctx.async_as_background(async { panic!("quiet") });
    quiet.wait().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["exception r: panicked: bg: Panicked:panicked: bg"]
    );
    assert!(matches!(t.result(), Err(hp::StatusError::Error(_))));
}

#[tokio::test]
async fn a_detached_background_task_still_reports() {
    let (ctx, log) = logged("r");
    let gate = hp::Event::new();
    let g = gate.clone();
    drop(ctx.async_as_background_reported(async move {
        g.wait().await;
        panic!("later")
    }));
    gate.set();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn reporter_logs_errors_only_and_silent_reporter_logs_nothing_but_can_be_removed() {
    let (ctx, log) = logged("r");
    let child = ctx.child("c").drop_guard();
    let f = hp::Fut::<u8>::new();
    f.add_done_callback(child.reporter());
    f.set_exception(Boom("oops"));
    let c = hp::Fut::<u8>::new();
    c.add_done_callback(child.reporter());
    c.cancel();
    let v = hp::Fut::<u8>::new();
    v.add_done_callback(child.reporter());
    v.set_result(1);
    let s = hp::Fut::<u8>::new();
    s.add_done_callback(child.silent_reporter());
    s.set_exception(Boom("silent"));
    let removable = hp::Fut::<u8>::new();
    let h = removable.add_done_callback(ctx.silent_reporter());
    assert_eq!(removable.remove_done_callback(h), 1);
    assert_eq!(removable.remove_done_callback(h), 0);
    assert_eq!(*log.lock().unwrap(), ["exception r-->c: oops: Boom:oops"]);
}

// --- deadline children (rule 11) ---

#[tokio::test(start_paused = true)]
async fn a_timeout_child_finishes_with_deadline_exceeded_at_the_exact_instant() {
    let root = Ctx::beginning("r");
    let start = Instant::now();
    let child = root.child_with_timeout("d", secs(5)).drop_guard();
    let grand = child.child("g").drop_guard();
    let how = grand.wait().await;
    assert_eq!(start.elapsed(), secs(5));
    assert!(how.error().unwrap().is::<hp::DeadlineExceeded>());
    assert!(child.done() && !child.cancelled());
    assert!(
        child
            .exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );
    assert_eq!(how.to_string(), "deadline exceeded");
    assert!(!root.done());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_child_at_an_instant_and_one_already_passed() {
    let root = Ctx::beginning("r");
    let start = Instant::now();
    let past = root.child_with_deadline("past", start).drop_guard();
    assert!(
        past.exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );
    let at = root
        .child_with_deadline("at", start + Duration::from_millis(2500))
        .drop_guard();
    at.wait().await;
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_child_cancelled_first_reports_cancelled_and_its_timer_ends() {
    let root = Ctx::beginning("r");
    let metrics = tokio::runtime::Handle::current().metrics();
    let child = root.child_with_timeout("d", secs(5)).drop_guard();
    assert_eq!(metrics.num_alive_tasks(), 1, "the timer task");
    root.cancel();
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
    tokio::time::sleep(secs(10)).await;
    assert!(child.cancelled());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_deadline_child_releases_its_timer() {
    let root = Ctx::beginning("r");
    let metrics = tokio::runtime::Handle::current().metrics();
    let guard = root.child_with_timeout("d", secs(5)).drop_guard();
    let detached = root.child_with_timeout("e", secs(5)).drop_guard().detach();
    assert_eq!(metrics.num_alive_tasks(), 2);
    drop(guard);
    drop(detached);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
    assert_eq!(root.child_count(), 0);
}

// --- async_with_timeout: the event before the work, a done context (CTX 9, 10) ---

/// The scoped work and a task waiting on the timeout event both log what they saw.
async fn timeout_event_sequence() -> (Vec<String>, hp::Outcome<&'static str>) {
    let root = Ctx::beginning("r");
    let ev = hp::Event::new();
    let log = Log::default();
    let l = log.clone();
    let e = ev.clone();
    let waiter = tokio::spawn(async move {
        e.wait().await;
        l.lock().unwrap().push("event waiter ran".to_owned());
    });
    tokio::task::yield_now().await; // the waiter is waiting
    let l = log.clone();
    let out = root
        .async_with_timeout_scoped(move |ctx| async move {
            tokio::select! {
                _ = ctx.wait() => {
                    l.lock().unwrap().push("work saw its context finish".to_owned());
                    tokio::task::yield_now().await; // async cleanup
                    l.lock().unwrap().push("work cleaned up".to_owned());
                    "cut"
                }
                _ = tokio::time::sleep(secs(60)) => "finished",
            }
        })
        .timeout(secs(1))
        .timeout_event(&ev)
        .await;
    waiter.await.unwrap();
    let seen = common::take(&log);
    (seen, out)
}

#[tokio::test(start_paused = true)]
async fn tasks_waiting_on_the_timeout_event_run_before_the_work_sees_its_context_finish() {
    let start = Instant::now();
    let (seen, out) = timeout_event_sequence().await;
    assert_eq!(
        seen,
        [
            "event waiter ran",
            "work saw its context finish",
            "work cleaned up"
        ]
    );
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(start.elapsed(), secs(1));
}

#[test]
fn the_timeout_event_waiter_and_the_work_cleanup_both_happen_on_the_multi_thread_runtime() {
    let (mut seen, out) = common::multi_thread(timeout_event_sequence());
    seen.sort();
    assert_eq!(
        seen,
        [
            "event waiter ran",
            "work cleaned up",
            "work saw its context finish"
        ]
    );
    assert!(out.unwrap_err().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn async_with_timeout_on_a_done_context_returns_its_outcome_without_polling_the_work() {
    let root = Ctx::beginning("r");
    root.set_exception(Boom("down"));
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let ev = hp::Event::new();
    let start = Instant::now();
    let out = root
        .async_with_timeout(async move {
            p.store(true, SeqCst);
            1
        })
        .timeout(Duration::ZERO)
        .timeout_event(&ev)
        .await;
    assert_eq!(out.unwrap_err().to_string(), "down");
    assert!(!polled.load(SeqCst), "the work was never polled");
    assert!(!ev.is_set());
    assert_eq!(start.elapsed(), Duration::ZERO);

    let called = Arc::new(AtomicBool::new(false));
    let c = called.clone();
    let cancelled = Ctx::beginning("c");
    cancelled.cancel();
    let out = cancelled
        .async_with_timeout_scoped(move |_ctx| {
            c.store(true, SeqCst);
            async { 2 }
        })
        .await;
    assert!(out.unwrap_err().is_cancelled());
    assert!(!called.load(SeqCst), "the scoped work was never started");
    assert_eq!(root.child_count(), 0);
}

#[test]
fn reporter_logs_one_error_event_whose_message_is_the_error_text_with_its_type_as_a_field() {
    use tracing_subscriber::layer::SubscriberExt;
    #[derive(Default, Clone)]
    struct Events(Arc<Mutex<Vec<(tracing::Level, String, String)>>>);
    struct Visit(String, String);
    impl tracing::field::Visit for Visit {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "message" => self.0 = format!("{value:?}"),
                "error_type" => self.1 = format!("{value:?}"),
                _ => {}
            }
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            match field.name() {
                "message" => self.0 = value.to_owned(),
                "error_type" => self.1 = value.to_owned(),
                _ => {}
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut v = Visit(String::new(), String::new());
            event.record(&mut v);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), v.0, v.1));
        }
    }
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let ctx = Ctx::beginning("app");
        let f = hp::Fut::<u8>::new();
        f.add_done_callback(ctx.reporter());
        f.set_exception(Boom("disk full"));
        let c = hp::Fut::<u8>::new();
        c.add_done_callback(ctx.reporter());
        c.cancel();
    });
    assert_eq!(
        *events.0.lock().unwrap(),
        [(
            tracing::Level::ERROR,
            "disk full".to_owned(),
            "Boom".to_owned()
        )]
    );
}
