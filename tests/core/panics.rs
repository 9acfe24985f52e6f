//! Panics inside user code the crate runs: tasks, context / future / event callbacks,
//! queue instructions and `process_after_yielded` hooks, ticker consumers, task-holder
//! tasks and bodies, generator bodies, sync-queue consumers. Each is reported (a
//! `Panicked` failure or a `tracing` error), isolated (the other callbacks, items and
//! tasks go on), and leaves no lock poisoned: the next operation on the same object works.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::sleep;

/// Collects what `tracing` prints on this thread while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let l = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || l.clone())
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Records what a context's logger reports (reporters of background tasks use it).
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<String>>>);

impl hp::Logger for Reports {
    fn info(&self, _: &str, _: &str) {}
    fn exception(&self, ctx: &str, msg: &str, err: Option<&hp::Error>) {
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        self.0.lock().unwrap().push(format!("{ctx}: {msg}: {err}"));
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn is_panicked(f: &hp::Failure, msg: &str) -> bool {
    matches!(f, hp::Failure::Error(e)
        if e.downcast_ref::<hp::Panicked>().is_some_and(|p| p.message == msg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_fails_with_panicked_is_reported_and_others_finish() {
    let reports = Reports::default();
    let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(reports.clone()));
    let bad = ctx.async_as_background_reported(async { panic!("task boom") });
    let good: Vec<_> = (0..50u32)
        .map(|i| ctx.async_as_background_reported(async move { i }))
        .collect();
    let out = tokio::time::timeout(Duration::from_secs(10), &bad)
        .await
        .unwrap();
    assert!(is_panicked(&out.unwrap_err(), "task boom"));
    for (i, t) in good.iter().enumerate() {
        assert_eq!(t.await.ok(), Some(i as u32));
    }
    assert_eq!(reports.0.lock().unwrap().len(), 1);
    assert!(reports.0.lock().unwrap()[0].contains("task boom"));
    assert!(!ctx.done());
    // The task machinery still works.
    assert_eq!(ctx.async_as_background(async { 1 }).await.ok(), Some(1));
}

#[test]
fn a_panicking_context_callback_is_reported_and_the_others_still_run() {
    let (logs, _g) = Logs::capture();
    let ctx = hp::Ctx::beginning("app");
    let child = ctx.child("c").drop_guard();
    let runs = counter();
    let r1 = runs.clone();
    child.add_done_callback(move |_| {
        r1.fetch_add(1, SeqCst);
    });
    child.add_done_callback(|_| panic!("ctx callback boom"));
    let r2 = runs.clone();
    child.add_done_callback(move |_| {
        r2.fetch_add(1, SeqCst);
    });
    assert!(ctx.cancel());
    assert_eq!(runs.load(SeqCst), 2);
    assert!(logs.text().contains("ctx callback boom"), "{}", logs.text());
    // Nothing is poisoned: the same contexts take callbacks and children again.
    let r3 = runs.clone();
    child.add_done_callback(move |_| {
        r3.fetch_add(1, SeqCst);
    });
    assert_eq!(runs.load(SeqCst), 3);
    assert!(child.child("again").drop_guard().done());
    let other = hp::Ctx::beginning("other");
    assert!(other.child("x").drop_guard().cancel());
}

#[test]
fn a_panicking_future_callback_is_reported_and_the_others_still_run() {
    let (logs, _g) = Logs::capture();
    let fut = hp::Fut::<u8>::new();
    let runs = counter();
    fut.add_done_callback(|_| panic!("fut callback boom"));
    let r = runs.clone();
    fut.add_done_callback(move |o| {
        assert_eq!(o.as_ref().ok(), Some(&5));
        r.fetch_add(1, SeqCst);
    });
    assert!(fut.set_result(5));
    assert_eq!(runs.load(SeqCst), 1);
    assert_eq!(fut.result().unwrap(), 5);
    assert!(logs.text().contains("fut callback boom"));
    let r = runs.clone();
    fut.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(runs.load(SeqCst), 2);
}

#[test]
fn a_panicking_event_callback_is_reported_and_the_others_still_run() {
    let (logs, _g) = Logs::capture();
    let ev = hp::Event::new();
    let runs = counter();
    ev.add_done_callback(Box::new(|| panic!("event callback boom")));
    let r = runs.clone();
    ev.add_done_callback(Box::new(move || {
        r.fetch_add(1, SeqCst);
    }));
    ev.set();
    assert!(ev.is_set());
    assert_eq!(runs.load(SeqCst), 1);
    assert!(logs.text().contains("event callback boom"));
    ev.clear();
    let r = runs.clone();
    ev.add_done_callback(Box::new(move || {
        r.fetch_add(1, SeqCst);
    }));
    ev.set();
    assert_eq!(runs.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_queue_instruction_is_reported_and_no_item_is_lost() {
    let (logs, _g) = Logs::capture();
    let ctx = hp::Ctx::beginning("app");
    let mut q = hp::queue::<u32>(&ctx).build();
    q.append(1).unwrap();
    q.append_instruction(|| panic!("instruction boom")).unwrap();
    q.append(2).unwrap();
    q.append_instruction(|| panic!("instruction boom 2"))
        .unwrap();
    q.append(3).unwrap();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    assert_eq!(all.next().await, Some(2));
    drop(all);
    // In `remaining` too.
    assert_eq!(q.remaining().collect::<Vec<_>>(), [3]);
    assert!(logs.text().contains("instruction boom"));
    assert!(logs.text().contains("instruction boom 2"));
    q.append_front(4).unwrap();
    assert_eq!(q.get_all().next().await, Some(4));
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_process_after_yielded_hook_is_reported_and_keeps_running() {
    let (logs, _g) = Logs::capture();
    let ctx = hp::Ctx::beginning("app");
    let mut q = hp::queue::<u32>(&ctx).build();
    let calls = counter();
    let c = calls.clone();
    q.process_after_yielded(move |_| {
        if c.fetch_add(1, SeqCst) == 0 {
            panic!("hook boom");
        }
    });
    let other = counter();
    let o = other.clone();
    q.process_after_yielded(move |view| {
        if o.fetch_add(1, SeqCst) == 0 {
            view.append(99).unwrap(); // the next hook still runs after a panic
        }
    });
    for n in 0..3 {
        q.append(n).unwrap();
    }
    let got: Vec<u32> = q.get_all().take(4).collect().await;
    assert_eq!(got, [0, 1, 2, 99]);
    assert_eq!(calls.load(SeqCst), 3);
    assert_eq!(other.load(SeqCst), 3);
    assert!(logs.text().contains("hook boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_ticker_consumer_fails_alone_and_frees_its_ticker() {
    let ctx = hp::Ctx::beginning("app");
    let mut t = hp::tick(Duration::from_millis(1), &ctx).build().unwrap();
    let tctx = t.ctx().clone();
    let consumer = ctx.async_as_background(async move {
        while let Some((i, _)) = t.next().await {
            if i == 3 {
                panic!("consumer boom");
            }
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(10), &consumer)
        .await
        .unwrap();
    assert!(is_panicked(&out.unwrap_err(), "consumer boom"));
    // The panic dropped the ticker: its context is cancelled; the parent goes on.
    assert!(tctx.cancelled());
    assert!(!ctx.done());
    let ticks: Vec<_> = hp::tick(Duration::from_millis(1), &ctx)
        .max_iterations(2)
        .build()
        .unwrap()
        .collect()
        .await;
    assert_eq!(ticks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_holder_task_is_reported_and_the_holder_finishes_the_rest() {
    let reports = Reports::default();
    let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(reports.clone()));
    let ts = hp::task_holder(&ctx);
    let bad = ts.spawn(async { panic!("holder task boom") });
    let good: Vec<_> = (0..20u64)
        .map(|i| {
            ts.spawn(async move {
                sleep(Duration::from_millis(i % 3)).await;
                i
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), ts.finish())
        .await
        .unwrap();
    assert!(is_panicked(&bad.failure().unwrap(), "holder task boom"));
    for (i, t) in good.iter().enumerate() {
        assert_eq!(t.result().unwrap(), i as u64);
    }
    let reports = reports.0.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("holder task boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_holder_scope_body_cancels_its_tasks_and_returns_the_panic() {
    let ctx = hp::Ctx::beginning("app");
    let held = Arc::new(Mutex::new(None));
    let h2 = held.clone();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        hp::task_holder_scope(
            &ctx,
            async move |ts: &hp::TaskHolder| -> Result<(), hp::Error> {
                *h2.lock().unwrap() = Some(ts.spawn_silent(sleep(Duration::from_secs(3600))));
                panic!("body boom")
            },
        ),
    )
    .await
    .unwrap();
    let err = out.unwrap_err();
    assert_eq!(
        err.downcast_ref::<hp::Panicked>().unwrap().message,
        "body boom"
    );
    assert!(held.lock().unwrap().as_ref().unwrap().cancelled());
    assert!(!ctx.done());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_async_with_timeout_work_fails_with_panicked() {
    let ctx = hp::Ctx::beginning("app");
    let out: hp::Outcome<()> = ctx.async_with_timeout(async { panic!("work boom") }).await;
    assert!(is_panicked(&out.unwrap_err(), "work boom"));
    assert_eq!(ctx.child_count(), 0);
    assert_eq!(ctx.async_with_timeout(async { 3 }).await.ok(), Some(3));
}

fn co_panics() -> bool {
    true
}

#[tokio::test(start_paused = true)]
async fn a_panicking_generator_body_fails_with_panicked_then_is_finished() {
    let mut g = hp::AsyncGenerator::<u32>::new(async |co| {
        let _sent = co.yield_(1).await;
        if co_panics() {
            panic!("generator boom");
        }
    });
    assert_eq!(g.asend(()).await.unwrap(), Some(1));
    assert!(is_panicked(
        &g.asend(()).await.unwrap_err(),
        "generator boom"
    ));
    assert!(g.finished());
    assert_eq!(g.asend(()).await.unwrap(), None);
}

#[test]
fn a_panicking_sync_queue_consumer_gives_its_batch_back() {
    let ctx = hp::Ctx::beginning("app");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for n in 0..10 {
        q.append(n).unwrap();
    }
    let q2 = q.clone();
    let consumer = std::thread::spawn(move || {
        for n in &q2 {
            if n == 3 {
                panic!("consumer boom");
            }
        }
    });
    assert!(consumer.join().is_err());
    // The unwinding iterator put back what it had taken but not yielded.
    let q3 = q.clone();
    let c = ctx.clone();
    let next = std::thread::spawn(move || {
        let got: Vec<u32> = q3.get_all().take(6).collect();
        c.cancel();
        got
    });
    assert_eq!(next.join().unwrap(), [4, 5, 6, 7, 8, 9]);
    q.append(10).unwrap();
    assert_eq!(q.remaining().collect::<Vec<_>>(), [10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_queue_manager_sources_fail_alone_and_the_manager_goes_on() {
    use hp::QueueManagerResult as R;
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<u32, &str>(&ctx, "queue_manager", || "");
    let func = feeder.add_sync_function_with_context(|| -> u32 { panic!("function boom") }, "f");
    let iter = feeder.add_sync_iterator_with_context(
        (0..3u32).map(|n| if n == 1 { panic!("iterator boom") } else { n }),
        "i",
    );
    let stream = feeder.add_async_generator_with_context(
        futures::stream::iter(0..3u32).map(|n| if n == 1 { panic!("stream boom") } else { n }),
        "s",
    );
    let fut = feeder.add_coroutine_with_context(
        async {
            if co_panics() {
                panic!("coroutine boom");
            }
            0u32
        },
        "c",
    );
    feeder.add_value_with_context(hp::Feed::Value(7), "v");
    feeder.set_as_finished_if_out_of_sources();
    let results: Vec<R<u32, &str>> =
        tokio::time::timeout(Duration::from_secs(10), streamer.by_ref().collect())
            .await
            .unwrap();
    let of = |id: hp::SourceId| -> Vec<&R<u32, &str>> {
        results
            .iter()
            .filter(|r| r.sources().is_some_and(|s| s.added() == id))
            .collect()
    };
    let failed = |r: &R<u32, &str>, msg: &str| match r {
        R::Failure { error, .. } => is_panicked(error, msg),
        _ => false,
    };
    assert!(failed(of(func)[0], "function boom"));
    let it = of(iter);
    assert_eq!(it[0].value(), Some(&0));
    assert!(failed(it[1], "iterator boom"));
    assert!(
        matches!(it[2], R::IterationStop { error: Some(e), .. } if is_panicked(e, "iterator boom"))
    );
    let st = of(stream);
    assert_eq!(st[0].value(), Some(&0));
    assert!(failed(st[1], "stream boom"));
    assert!(matches!(st[2], R::IterationStop { error: Some(_), .. }));
    assert!(failed(of(fut)[0], "coroutine boom"));
    assert!(results.iter().any(|r| r.value() == Some(&7)));
    assert!(matches!(results.last(), Some(R::Stopped { error: None })));
    // The manager still works (the streamer is fused: a new iteration is resumed).
    feeder.add_value_with_context(hp::Feed::Value(8), "v");
    streamer.resume();
    assert_eq!(streamer.next().await.and_then(|r| r.into_value()), Some(8));
}
