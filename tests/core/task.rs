//! `hp::Task` and `hp::AnyTask`: spawned named tasks with done callbacks.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers::{self as hp, FutureStatus, NamedFuture, WaitByCallback};

/// Sets its flag when dropped: stands for a resource the task's future holds.
struct Resource(Arc<AtomicBool>);
impl Drop for Resource {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[tokio::test]
async fn a_task_finishes_with_its_value() {
    let t = hp::Task::spawn(async { 40 + 2 });
    t.wait().await;
    assert!(t.done() && !t.cancelled());
    assert_eq!(t.result().unwrap(), 42, "a clone; the output stays");
    assert!(t.exception().unwrap().is_none());
    assert!(t.failure().is_none());
    assert_eq!(t.clone().await.unwrap(), 42, "joined by value");
    // The first join took the output: later joins and reads say so.
    let taken = |e: &hp::Error| e.is::<hp::OutputTaken>();
    assert!(matches!(t.join().await, Err(hp::Failure::Error(e)) if taken(&e)));
    assert!(matches!(t.try_join(), Some(Err(hp::Failure::Error(e))) if taken(&e)));
    assert!(matches!(t.result(), Err(hp::StatusError::Error(e)) if taken(&e)));
    assert!(t.name().is_none());
    assert!(!t.cancel(), "cancel of a done task is a no-op");
}

#[tokio::test(start_paused = true)]
async fn a_pending_task_reports_pending() {
    let t = hp::Task::spawn(tokio::time::sleep(Duration::from_secs(1)));
    assert!(!t.done());
    assert!(matches!(t.result(), Err(hp::StatusError::Pending)));
    assert!(matches!(t.exception(), Err(hp::StatusError::Pending)));
    assert!(t.try_join().is_none() && t.failure().is_none());
    t.wait().await;
    assert!(t.done());
}

#[tokio::test]
async fn a_panic_inside_a_task_becomes_a_panicked_error() {
    let t = hp::Task::<u8>::spawn_named("boom", async { panic!("kaboom") });
    let failure = t.clone().await.unwrap_err();
    let err = failure.error().expect("an error, not a cancel");
    let p = err.downcast_ref::<hp::Panicked>().expect("Panicked");
    assert_eq!(p.message, "kaboom");
    assert_eq!(err.type_name(), "Panicked");
    assert!(!t.cancelled());
    assert!(t.exception().unwrap().unwrap().is::<hp::Panicked>());
    assert!(matches!(t.result(), Err(hp::StatusError::Error(_))));
    assert_eq!(
        hp::fut_to_string(&t),
        "<Future#boom(exception:Panicked:panicked: kaboom)>"
    );
}

#[tokio::test]
async fn a_panic_with_a_formatted_message_keeps_the_message() {
    let n = 3;
    let t = hp::Task::<()>::spawn(async move { panic!("bad {n}") });
    let e = t.clone().await.unwrap_err();
    assert_eq!(e.error().unwrap().to_string(), "panicked: bad 3");
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_the_future_before_the_task_is_done() {
    let dropped = Arc::new(AtomicBool::new(false));
    let res = Resource(dropped.clone());
    let t = hp::Task::spawn_named("holder", async move {
        let _res = res;
        std::future::pending::<()>().await
    });
    tokio::task::yield_now().await; // let it start and take the resource
    assert!(!dropped.load(SeqCst));
    assert!(t.cancel());
    t.wait().await;
    assert!(
        dropped.load(SeqCst),
        "awaiting after cancel sees the drop already done"
    );
    assert!(t.cancelled());
    assert!(!t.cancel());
    assert!(matches!(t.exception(), Err(hp::StatusError::Cancelled)));
    assert_eq!(hp::fut_to_string(&t), "<Future#holder(cancelled)>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sees_the_drop_on_the_multi_thread_runtime() {
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..200 {
            let dropped = Arc::new(AtomicBool::new(false));
            let (res, started) = (Resource(dropped.clone()), hp::Event::new());
            let s = started.clone();
            let t = hp::Task::spawn(async move {
                let _res = res;
                s.set();
                loop {
                    tokio::task::yield_now().await;
                }
            });
            started.wait().await;
            t.cancel();
            assert!(t.clone().await.unwrap_err().is_cancelled());
            assert!(dropped.load(SeqCst));
        }
    })
    .await
    .expect("watchdog");
}

#[tokio::test]
async fn a_task_cancelled_before_it_ever_ran_still_drops_its_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let res = Resource(dropped.clone());
    let t = hp::Task::spawn(async move {
        let _res = res;
    });
    assert!(t.cancel());
    t.wait().await;
    assert!(t.cancelled());
    assert!(dropped.load(SeqCst));
}

#[tokio::test]
async fn done_callbacks_run_in_order_once_and_see_the_outcome() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = hp::Event::new();
    let g = gate.clone();
    let t = hp::Task::spawn(async move {
        g.wait().await;
        7u8
    });
    for i in 0..3 {
        let l = log.clone();
        t.add_done_callback(move |o| l.lock().unwrap().push((i, o.is_ok())));
    }
    let l = log.clone();
    let h = t.add_done_callback(move |_| l.lock().unwrap().push((99, false)));
    assert_eq!(t.remove_done_callback(h), 1);
    assert_eq!(t.remove_done_callback(h), 0);
    gate.set();
    t.wait().await;
    assert_eq!(*log.lock().unwrap(), [(0, true), (1, true), (2, true)]);
    // Added after completion: runs before add returns.
    let l = log.clone();
    t.add_done_callback(move |_| l.lock().unwrap().push((3, true)));
    assert_eq!(log.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_panicking_done_callback_does_not_stop_the_others_or_the_task() {
    let ran = Arc::new(AtomicUsize::new(0));
    let gate = hp::Event::new();
    let g = gate.clone();
    let t = hp::Task::spawn(async move { g.wait().await });
    t.add_done_callback(|_| panic!("cb boom"));
    let r = ran.clone();
    t.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    gate.set();
    t.wait().await;
    assert_eq!(ran.load(SeqCst), 1);
    assert!(t.result().is_ok());
}

#[tokio::test]
async fn spawn_on_and_names_and_ids() {
    let handle = tokio::runtime::Handle::current();
    let a = hp::Task::spawn_named_on("a", async { 1 }, &handle);
    let b = hp::Task::spawn_on(async { 2 }, &handle);
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id(), a.clone().id());
    assert_eq!(a.name().as_deref(), Some("a"));
    b.set_future_name("later");
    assert_eq!(b.future_name().as_deref(), Some("later"));
    assert_eq!(a.join().await.unwrap() + b.join().await.unwrap(), 3);
    assert_eq!(format!("{a:?}"), "<Future#a(result)>");
}

#[tokio::test]
async fn many_waiters_read_the_result_and_exactly_one_joiner_takes_it_current_thread() {
    let gate = hp::Event::new();
    let g = gate.clone();
    let t = hp::Task::spawn(async move {
        g.wait().await;
        5u8
    });
    let readers: Vec<_> = (0..100)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                t.wait().await;
                t.result().unwrap()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    gate.set();
    for r in readers {
        assert_eq!(r.await.unwrap(), 5);
    }
    let joiners: Vec<_> = (0..10)
        .map(|_| tokio::spawn(t.clone().into_future()))
        .collect();
    let mut got = Vec::new();
    for j in joiners {
        got.push(j.await.unwrap().ok());
    }
    got.sort();
    assert_eq!(
        got,
        [
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(5)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_joiners_exactly_one_takes_the_output_multi_thread() {
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..20 {
            let t = hp::Task::spawn(async { tokio::task::yield_now().await });
            let waiters: Vec<_> = (0..200)
                .map(|_| {
                    let t = t.clone();
                    tokio::spawn(async move { t.await.is_ok() })
                })
                .collect();
            let mut took = 0;
            for w in waiters {
                took += usize::from(w.await.unwrap());
            }
            assert_eq!(took, 1);
        }
    })
    .await
    .expect("watchdog");
}

#[tokio::test]
async fn dropping_the_handle_detaches_the_task_and_its_callbacks_still_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let fut = hp::Fut::<()>::new();
    let gate = hp::Event::new();
    let g = gate.clone();
    {
        let t = hp::Task::spawn(async move { g.wait().await });
        let (r, f) = (ran.clone(), fut.clone());
        t.add_done_callback(move |_| {
            r.fetch_add(1, SeqCst);
            f.set_result(());
        });
    }
    gate.set();
    fut.wait().await;
    assert_eq!(ran.load(SeqCst), 1);
}

#[tokio::test]
async fn any_task_erases_the_output_type() {
    let gate = hp::Event::new();
    let g = gate.clone();
    let a = hp::Task::spawn_named("a", async move {
        g.wait().await;
        1u8
    });
    let b = hp::Task::spawn_named("b", async { "s" });
    let tasks: Vec<hp::AnyTask> = vec![a.erased(), (&b).into(), b.clone().into()];
    assert_eq!(tasks[0].id(), a.id());
    assert_eq!(tasks[1].id(), tasks[2].id());
    assert_eq!(tasks[0].name().as_deref(), Some("a"));
    assert!(!tasks[0].done());
    assert!(tasks[0].failure().is_none());
    assert_eq!(format!("{:?}", tasks[0]), "<Future#a(pending)>");
    tasks[1].wait().await;
    assert!(tasks[1].done() && tasks[1].failure().is_none() && !tasks[1].cancelled());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let h = tasks[0].add_done_callback(Box::new(move || {
        r.fetch_add(1, SeqCst);
    }));
    let h2 = tasks[0].add_done_callback(Box::new(|| {}));
    assert_eq!(tasks[0].remove_done_callback(h2), 1);
    assert_eq!(tasks[0].remove_done_callback(h2), 0);
    assert!(tasks[0].cancel());
    tasks[0].wait().await;
    assert!(tasks[0].cancelled());
    assert!(tasks[0].failure().unwrap().is_cancelled());
    assert!(!WaitByCallback::cancel(&tasks[0]));
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(tasks[0].remove_done_callback(h), 0);
    assert_eq!(hp::fut_state_to_string(&tasks[0]), "(cancelled)");
}

#[tokio::test]
async fn protocol_traits_on_a_task() {
    let t = hp::Task::spawn(async { 1u8 });
    t.wait().await;
    assert!(FutureStatus::done(&t));
    assert!(!FutureStatus::cancelled(&t));
    assert_eq!(FutureStatus::result(&t).unwrap(), 1);
    assert!(FutureStatus::exception(&t).unwrap().is_none());
    assert!(WaitByCallback::done(&t));
    assert!(!WaitByCallback::cancel(&t));
    let h = WaitByCallback::add_done_callback(&t, Box::new(|| {}));
    assert_eq!(WaitByCallback::remove_done_callback(&t, h), 0);
}

#[tokio::test]
async fn a_task_can_be_awaited_by_reference_and_wait_is_cancel_safe() {
    let gate = hp::Event::new();
    let g = gate.clone();
    let t = hp::Task::spawn(async move {
        g.wait().await;
        3u8
    });
    // A wait that loses a select leaves the task running.
    tokio::select! {
        biased;
        _ = t.wait() => unreachable!("gate not set"),
        _ = tokio::task::yield_now() => {}
    }
    assert!(!t.done());
    gate.set();
    assert_eq!((&t).await.unwrap(), 3);
}

#[tokio::test]
async fn outputs_need_neither_clone_nor_sync_and_are_joined_by_value() {
    // `io::Result<()>` is not Clone; `Cell` is not Sync: both can be task outputs.
    let io = hp::Task::spawn(async { std::io::Result::Ok(()) });
    assert!(io.join().await.unwrap().is_ok());
    let failed = hp::Task::spawn(async { Err::<(), _>(std::io::Error::other("disk")) });
    assert_eq!(failed.await.unwrap().unwrap_err().to_string(), "disk");
    let cell = hp::Task::spawn(async { std::cell::Cell::new(3) });
    assert_eq!(cell.await.unwrap().get(), 3);
    // A failure is given to every joiner; only an output is taken once.
    let boom = hp::Task::spawn(async { panic!("boom") });
    boom.wait().await;
    assert!(boom.join().await.unwrap_err().to_string().contains("boom"));
    assert!(boom.join().await.unwrap_err().to_string().contains("boom"));
}

#[tokio::test]
async fn an_output_nobody_joined_is_dropped_with_the_last_handle() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Noted(Arc<AtomicUsize>);
    impl Drop for Noted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let d = dropped.clone();
    let t = hp::Task::spawn(async move { Noted(d) });
    t.wait().await;
    tokio::task::yield_now().await; // the runtime lets go of the task's body
    assert_eq!(dropped.load(SeqCst), 0, "the output waits for a joiner");
    drop(t);
    assert_eq!(dropped.load(SeqCst), 1);
}

#[tokio::test]
// Hash and Eq read only the task's immutable identity; clippy sees the interior state.
#[allow(clippy::mutable_key_type)]
async fn tasks_and_erased_tasks_are_equal_and_hashed_by_identity() {
    use std::collections::HashSet;
    let a = hp::Task::spawn(async { 1u8 });
    let b = hp::Task::spawn(async { 1u8 });
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    let set: HashSet<_> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    let erased: HashSet<hp::AnyTask> = [a.erased(), a.erased(), b.erased()].into();
    assert_eq!(erased.len(), 2);
    assert_eq!(a.erased(), hp::AnyTask::from(&a));
    // Back to the typed handle, only with the right output type.
    let back = a.erased().downcast::<u8>().unwrap();
    assert_eq!(back, a);
    assert!(a.erased().downcast::<u16>().is_err());
    assert_eq!(back.join().await.unwrap(), 1);
}

#[test]
fn spawn_local_runs_a_non_send_future_in_a_local_set() {
    let rt = common::current_thread();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let shared = std::rc::Rc::new(5u32); // !Send
        let s = shared.clone();
        let t = hp::Task::spawn_local_named("local", async move {
            tokio::task::yield_now().await;
            *s + 1
        });
        assert_eq!(t.name().as_deref(), Some("local"));
        assert_eq!(t.join().await.unwrap(), 6);
        let stuck = hp::Task::spawn_local(std::future::pending::<()>());
        assert!(stuck.cancel());
        stuck.wait().await;
        assert!(stuck.cancelled());
        assert_eq!(*shared, 5);
    });
}
