//! `hp::Fut`: the settable shared future (asyncio.Future), and `fut_to_string`.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers::{self as hp, FutureStatus, NamedFuture, WaitByCallback, WithRepr};

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskOnFire;

fn recorder() -> (Arc<Mutex<Vec<String>>>, impl Fn(&str) + Clone) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |s: &str| l.lock().unwrap().push(s.to_owned()))
}

#[test]
fn set_result_finishes_once_and_later_setters_return_false() {
    let f = hp::Fut::new();
    assert!(!f.done());
    assert!(f.set_result(1));
    assert!(!f.set_result(2));
    assert!(!f.set_exception(DiskOnFire));
    assert!(!f.cancel());
    assert!(!f.set_outcome(Err(hp::Failure::Cancelled)));
    assert!(f.done());
    assert!(!f.cancelled());
    assert_eq!(f.result().unwrap(), 1);
    assert!(f.exception().unwrap().is_none());
    assert!(matches!(f.outcome(), Some(Ok(1))));
}

#[test]
fn set_exception_keeps_the_error_readable() {
    let f = hp::Fut::<u8>::new();
    assert!(f.set_exception(DiskOnFire));
    assert!(f.done() && !f.cancelled());
    let e = f.exception().unwrap().unwrap();
    assert!(e.is::<DiskOnFire>());
    match f.result() {
        Err(hp::StatusError::Error(e2)) => assert!(e2.same(&e)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn cancel_marks_it_cancelled() {
    let f = hp::Fut::<u8>::new();
    assert!(f.cancel());
    assert!(!f.cancel());
    assert!(f.done() && f.cancelled());
    assert!(matches!(f.exception(), Err(hp::StatusError::Cancelled)));
    assert!(matches!(f.result(), Err(hp::StatusError::Cancelled)));
}

#[test]
fn set_outcome_takes_any_of_the_three_ways() {
    let f = hp::Fut::<u8>::new();
    assert!(f.set_outcome(Ok(3)));
    assert_eq!(f.result().unwrap(), 3);
    let g = hp::Fut::<u8>::new();
    assert!(g.set_outcome(Err(hp::Failure::Error(hp::Error::msg("m")))));
    assert_eq!(g.exception().unwrap().unwrap().to_string(), "m");
}

#[test]
fn pending_future_reports_pending_from_exception_and_result() {
    let f = hp::Fut::<u8>::default();
    assert!(matches!(f.exception(), Err(hp::StatusError::Pending)));
    assert!(matches!(f.result(), Err(hp::StatusError::Pending)));
    assert!(f.outcome().is_none());
    assert!(!f.cancelled());
}

#[test]
fn clones_share_one_outcome_and_ptr_eq_says_so() {
    let f = hp::Fut::<u8>::new();
    let g = f.clone();
    assert!(f.ptr_eq(&g));
    assert!(!f.ptr_eq(&hp::Fut::new()));
    g.set_result(9);
    assert_eq!(f.result().unwrap(), 9);
}

#[test]
fn callbacks_run_once_in_registration_order_with_the_outcome() {
    let (log, rec) = recorder();
    let f = hp::Fut::<u8>::new();
    for i in 0..5 {
        let rec = rec.clone();
        f.add_done_callback(move |o: &hp::Outcome<u8>| rec(&format!("{i}:{:?}", o.as_ref().ok())));
    }
    assert!(log.lock().unwrap().is_empty());
    f.set_result(4);
    f.set_result(5);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "0:Some(4)",
            "1:Some(4)",
            "2:Some(4)",
            "3:Some(4)",
            "4:Some(4)"
        ]
    );
}

#[test]
fn remove_done_callback_returns_one_then_zero_and_the_callback_never_runs() {
    let ran = Arc::new(AtomicUsize::new(0));
    let f = hp::Fut::<u8>::new();
    let r = ran.clone();
    let h = f.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    assert!(f.has_done_callback(h));
    assert_eq!(f.remove_done_callback(h), 1);
    assert_eq!(f.remove_done_callback(h), 0);
    assert!(!f.has_done_callback(h));
    f.cancel();
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn removing_a_callback_that_already_ran_returns_zero() {
    let f = hp::Fut::<u8>::new();
    let h = f.add_done_callback(|_| {});
    f.set_result(1);
    assert_eq!(f.remove_done_callback(h), 0);
}

#[test]
fn callback_added_after_completion_runs_before_add_returns() {
    let f = hp::Fut::<u8>::new();
    f.set_result(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let h = f.add_done_callback(move |o| {
        assert_eq!(*o.as_ref().unwrap(), 1);
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(ran.load(SeqCst), 1);
    assert!(!f.has_done_callback(h));
}

#[test]
fn panicking_callback_is_reported_and_the_others_still_run() {
    let (log, rec) = recorder();
    let f = hp::Fut::<u8>::new();
    let r1 = rec.clone();
    f.add_done_callback(move |_| r1("first"));
    f.add_done_callback(|_| panic!("callback boom"));
    let r3 = rec.clone();
    f.add_done_callback(move |_| r3("third"));
    assert!(f.set_result(1));
    assert_eq!(*log.lock().unwrap(), ["first", "third"]);
    // Added after completion: the panic is caught there too.
    f.add_done_callback(|_| panic!("late boom"));
    assert_eq!(f.result().unwrap(), 1);
}

#[test]
fn a_callback_may_add_callbacks_and_finish_other_futures_without_deadlock() {
    let f = hp::Fut::<u8>::new();
    let g = hp::Fut::<u8>::new();
    let (f2, g2) = (f.clone(), g.clone());
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    f.add_done_callback(move |_| {
        let s2 = s.clone();
        f2.add_done_callback(move |_| {
            s2.fetch_add(1, SeqCst);
        });
        assert_eq!(f2.remove_done_callback(hp::CallbackHandle::new()), 0);
        g2.set_result(2);
    });
    f.set_result(1);
    assert_eq!(seen.load(SeqCst), 1);
    assert_eq!(g.result().unwrap(), 2);
}

#[tokio::test]
async fn awaiting_gives_a_clone_of_the_outcome_to_every_waiter_current_thread() {
    let f = hp::Fut::<Arc<str>>::new();
    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.await })
        })
        .collect();
    tokio::task::yield_now().await;
    f.set_result(Arc::from("v"));
    for w in waiters {
        assert_eq!(&*w.await.unwrap().unwrap(), "v");
    }
    assert_eq!(&*(&f).await.unwrap(), "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_awaiters_all_wake_on_the_multi_thread_runtime() {
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..20 {
            let f = hp::Fut::<u32>::new();
            let waiters: Vec<_> = (0..200)
                .map(|_| {
                    let f = f.clone();
                    tokio::spawn(async move { f.await })
                })
                .collect();
            let setter = {
                let f = f.clone();
                std::thread::spawn(move || f.set_result(5))
            };
            for w in waiters {
                assert_eq!(w.await.unwrap().unwrap(), 5);
            }
            assert!(setter.join().unwrap());
        }
    })
    .await
    .expect("watchdog: awaiters hung");
}

#[tokio::test]
async fn wait_returns_on_completion_without_needing_clone() {
    struct NotClone;
    let f = hp::Fut::<NotClone>::new();
    let f2 = f.clone();
    let t = tokio::spawn(async move { f2.wait().await });
    tokio::task::yield_now().await;
    assert!(!t.is_finished());
    assert!(f.set_result(NotClone));
    t.await.unwrap();
    assert!(f.outcome().unwrap().is_ok());
}

struct CountingWake;
impl futures::task::ArcWake for CountingWake {
    fn wake_by_ref(_: &Arc<Self>) {}
}

#[test]
fn dropping_an_await_leaves_no_callback_behind() {
    use std::future::Future;
    let f = hp::Fut::<u8>::new();
    let w = Arc::new(CountingWake);
    let waker = futures::task::waker(w.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut awaiting = Box::pin(f.clone().into_future());
    assert!(awaiting.as_mut().poll(&mut cx).is_pending());
    assert!(
        Arc::strong_count(&w) > 2,
        "the registration holds the waker"
    );
    drop(awaiting);
    assert_eq!(Arc::strong_count(&w), 2, "registration removed on drop");
    drop(waker);
    f.set_result(1);
}

#[tokio::test]
async fn awaiting_wakes_exactly_once_on_completion() {
    let f = hp::Fut::<u8>::new();
    let mut w = tokio_test::task::spawn(f.clone().into_future());
    tokio_test::assert_pending!(w.poll());
    tokio_test::assert_pending!(w.poll());
    assert!(!w.is_woken());
    f.cancel();
    assert!(w.is_woken());
    assert!(
        tokio_test::assert_ready!(w.poll())
            .unwrap_err()
            .is_cancelled()
    );
}

#[test]
fn protocol_traits_report_the_same_as_the_methods() {
    let f = hp::Fut::<u8>::new();
    assert!(!FutureStatus::done(&f));
    assert!(WaitByCallback::cancel(&f));
    assert!(FutureStatus::cancelled(&f));
    assert!(WaitByCallback::done(&f));
    assert!(matches!(
        FutureStatus::result(&f),
        Err(hp::StatusError::Cancelled)
    ));
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    WaitByCallback::add_done_callback(
        &f,
        Box::new(move || {
            r.fetch_add(1, SeqCst);
        }),
    );
    assert_eq!(ran.load(SeqCst), 1);
    let g = hp::Fut::<u8>::new();
    let h = WaitByCallback::add_done_callback(&g, Box::new(|| {}));
    assert_eq!(WaitByCallback::remove_done_callback(&g, h), 1);
    assert_eq!(WaitByCallback::remove_done_callback(&g, h), 0);
}

// --- fut_to_string (SEMANTICS rule 8) ---

#[test]
fn fut_to_string_shows_each_state_with_the_name() {
    let f = hp::Fut::<u8>::named("answer");
    assert_eq!(hp::fut_to_string(&f), "<Future#answer(pending)>");
    assert_eq!(hp::fut_state_to_string(&f), "(pending)");
    f.set_result(42);
    assert_eq!(hp::fut_to_string(&f), "<Future#answer(result)>");
    assert_eq!(hp::fut_state_to_string(&f), "(result)");

    let c = hp::Fut::<u8>::named("c");
    c.cancel();
    assert_eq!(hp::fut_to_string(&c), "<Future#c(cancelled)>");
    assert_eq!(hp::fut_state_to_string(&c), "(cancelled)");

    let e = hp::Fut::<u8>::named("e");
    e.set_exception(DiskOnFire);
    assert_eq!(
        hp::fut_to_string(&e),
        "<Future#e(exception:DiskOnFire:disk on fire)>"
    );
    assert_eq!(
        hp::fut_state_to_string(&e),
        "(exception:DiskOnFire:disk on fire)"
    );
}

#[test]
fn fut_to_string_of_an_unnamed_future_shows_none_and_never_the_value() {
    let f = hp::Fut::<&str>::new();
    assert_eq!(hp::fut_to_string(&f), "<Future#None(pending)>");
    f.set_result("secret");
    let s = hp::fut_to_string(&f);
    assert_eq!(s, "<Future#None(result)>");
    assert!(!s.contains("secret"));
    assert_eq!(format!("{f:?}"), "<Future#None(result)>");
}

#[test]
fn fut_to_string_shows_a_message_error_with_its_type() {
    let f = hp::Fut::<u8>::named("m");
    f.set_exception(hp::Error::msg("nope"));
    assert_eq!(hp::fut_to_string(&f), "<Future#m(exception:Message:nope)>");
}

#[test]
fn fut_to_string_shows_other_values_by_their_debug() {
    #[derive(Debug)]
    struct Thing {
        #[allow(dead_code)]
        a: u8,
    }
    impl WithRepr for Thing {}
    assert_eq!(hp::fut_to_string(&Thing { a: 1 }), "Thing { a: 1 }");
    assert_eq!(hp::fut_state_to_string(&Thing { a: 1 }), "Thing { a: 1 }");
}

#[test]
fn set_future_name_and_get_future_name_round_trip_and_names_do_not_keep_futures_alive() {
    let ctx = hp::Ctx::beginning("n");
    let f = hp::Fut::<u8>::new();
    assert!(ctx.get_future_name(&f).is_none());
    ctx.set_future_name(&f, "named");
    assert_eq!(ctx.get_future_name(&f).as_deref(), Some("named"));
    assert_eq!(f.future_name().as_deref(), Some("named"));
    assert_eq!(ctx.fut_to_string(&f), "<Future#named(pending)>");
    // The name lives in the future: dropping the future frees it (no global registry).
    let weak = {
        let g = hp::Fut::<Arc<u8>>::new();
        g.set_future_name("gone");
        let v = Arc::new(1u8);
        g.set_result(v.clone());
        Arc::downgrade(&v)
    };
    assert!(weak.upgrade().is_none());
}

#[test]
fn errors_clone_cheaply_downcast_and_compare_by_identity() {
    let e = hp::Error::new(DiskOnFire);
    let same = e.clone();
    let other = hp::Error::new(DiskOnFire);
    assert!(e.same(&same));
    assert!(!e.same(&other));
    assert_eq!(e.type_name(), "DiskOnFire");
    assert_eq!(e.to_string(), "disk on fire");
    assert_eq!(format!("{e:?}"), "DiskOnFire(\"disk on fire\")");
    assert!(e.downcast_ref::<DiskOnFire>().is_some());
    assert!(hp::Failure::Cancelled.same(&hp::Failure::Cancelled));
    assert!(hp::Failure::from(e.clone()).same(&hp::Failure::Error(same)));
    assert_eq!(hp::Failure::Cancelled.to_string(), "cancelled");
    let group = hp::ErrorGroup {
        errors: vec![e, other],
    };
    assert_eq!(group.to_string(), "Futures failed (2 sub-exceptions)");
    let boxed: Box<dyn std::error::Error + Send + Sync> = hp::Error::msg("x").into();
    assert_eq!(boxed.to_string(), "x");
    assert_eq!(hp::StatusError::Pending.to_string(), "not finished yet");
}

#[test]
fn handles_are_send_and_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<hp::Fut<u8>>();
    is_send_sync::<hp::FutOutcome<u8>>();
    is_send_sync::<hp::Event>();
    is_send_sync::<hp::Task<u8>>();
    is_send_sync::<hp::TaskJoin<u8>>();
    is_send_sync::<hp::AnyTask>();
    is_send_sync::<hp::TaskId>();
    is_send_sync::<hp::Error>();
    is_send_sync::<hp::Failure>();
    is_send_sync::<hp::StatusError>();
    is_send_sync::<hp::ErrorGroup>();
    is_send_sync::<hp::CallbackHandle>();
    is_send_sync::<hp::WaitDone<hp::Fut<u8>>>();
    is_send_sync::<hp::WaitDone<&'static hp::Event>>();
    is_send_sync::<hp::Ctx>();
    is_send_sync::<hp::CtxGuard>();
    is_send_sync::<hp::CtxWait>();
    is_send_sync::<hp::CtxOptions>();
    fn is_send<T: Send>(_: &T) {}
    let ctx = hp::Ctx::beginning("s");
    let ev = hp::Event::new();
    is_send(&ctx.async_with_timeout(async { 1u8 }));
    is_send(&hp::wait_for_first(&[&ev]));
    is_send(&hp::wait_for_all(&[&ev]));
    is_send(&ctx.wait_for_first(&[&ev]));
}
