//! `hp::Event`: set / clear / is_set / wait, and its callbacks as a `WaitByCallback`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers::{self as hp, WaitByCallback};

#[test]
fn set_and_clear_flip_is_set() {
    let ev = hp::Event::default();
    assert!(!ev.is_set());
    ev.set();
    assert!(ev.is_set());
    ev.set();
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
    assert!(ev.ptr_eq(&ev.clone()));
    assert!(!ev.ptr_eq(&hp::Event::new()));
    assert_eq!(format!("{ev:?}"), "Event { set: false }");
}

#[tokio::test]
async fn wait_returns_at_once_when_set_and_waits_when_clear() {
    let ev = hp::Event::new();
    ev.set();
    ev.wait().await;
    ev.clear();
    let mut w = tokio_test::task::spawn(ev.wait());
    tokio_test::assert_pending!(w.poll());
    ev.set();
    assert!(w.is_woken());
    tokio_test::assert_ready!(w.poll());
}

#[tokio::test]
async fn a_waiter_woken_by_set_returns_even_if_cleared_before_it_runs() {
    let ev = hp::Event::new();
    let mut w = tokio_test::task::spawn(ev.wait());
    tokio_test::assert_pending!(w.poll());
    ev.set();
    ev.clear();
    assert!(w.is_woken());
    tokio_test::assert_ready!(w.poll());
}

#[tokio::test]
async fn after_clear_new_waiters_wait_for_the_next_set() {
    let ev = hp::Event::new();
    ev.set();
    ev.clear();
    let mut w = tokio_test::task::spawn(ev.wait());
    tokio_test::assert_pending!(w.poll());
    assert!(!w.is_woken());
    ev.set();
    tokio_test::assert_ready!(w.poll());
}

#[test]
fn callbacks_run_once_in_order_on_set_and_at_once_when_already_set() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ev = hp::Event::new();
    for i in 0..3 {
        let l = log.clone();
        ev.add_done_callback(Box::new(move || l.lock().unwrap().push(i)));
    }
    ev.set();
    ev.set();
    assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
    let l = log.clone();
    ev.add_done_callback(Box::new(move || l.lock().unwrap().push(9)));
    assert_eq!(*log.lock().unwrap(), [0, 1, 2, 9]);
}

#[test]
fn remove_done_callback_returns_one_then_zero() {
    let ran = Arc::new(AtomicUsize::new(0));
    let ev = hp::Event::new();
    let r = ran.clone();
    let h = ev.add_done_callback(Box::new(move || {
        r.fetch_add(1, SeqCst);
    }));
    assert_eq!(ev.remove_done_callback(h), 1);
    assert_eq!(ev.remove_done_callback(h), 0);
    ev.set();
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn panicking_event_callback_is_reported_and_the_others_still_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let ev = hp::Event::new();
    ev.add_done_callback(Box::new(|| panic!("event boom")));
    let r = ran.clone();
    ev.add_done_callback(Box::new(move || {
        r.fetch_add(1, SeqCst);
    }));
    ev.set();
    assert_eq!(ran.load(SeqCst), 1);
    assert!(ev.is_set());
}

#[test]
fn an_event_cannot_be_cancelled_and_done_means_set() {
    let ev = hp::Event::new();
    assert!(!WaitByCallback::cancel(&ev));
    assert!(!WaitByCallback::done(&ev));
    ev.set();
    assert!(WaitByCallback::done(&ev));
    assert!(!WaitByCallback::cancel(&ev));
}

#[test]
fn a_callback_may_clear_and_set_the_event_without_deadlock() {
    let ev = hp::Event::new();
    let e2 = ev.clone();
    ev.add_done_callback(Box::new(move || {
        e2.clear();
        e2.set();
    }));
    ev.set();
    assert!(ev.is_set());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_wake_on_the_multi_thread_runtime() {
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..20 {
            let ev = hp::Event::new();
            let waiters: Vec<_> = (0..200)
                .map(|_| {
                    let ev = ev.clone();
                    tokio::spawn(async move { ev.wait().await })
                })
                .collect();
            let e = ev.clone();
            std::thread::spawn(move || e.set()).join().unwrap();
            for w in waiters {
                w.await.unwrap();
            }
        }
    })
    .await
    .expect("watchdog: waiters hung");
}

#[tokio::test]
async fn many_waiters_wake_on_the_current_thread_runtime() {
    let ev = hp::Event::new();
    let done = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..500)
        .map(|_| {
            let (ev, done) = (ev.clone(), done.clone());
            tokio::spawn(async move {
                ev.wait().await;
                done.fetch_add(1, SeqCst);
            })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(done.load(SeqCst), 0);
    ev.set();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(done.load(SeqCst), 500);
}
