//! Issue 24's tools a tokio user reaches for: `?` errors into anyhow / eyre / boxed
//! errors, the ticker's visible floor, a tree to inspect (creation order, a structured
//! snapshot) and a root with a deadline.

use std::error::Error as StdError;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, CtxSnapshot, CtxState};
use tokio::time::Instant;

use crate::common::{in_child_process, multi_thread};

// ---------------------------------------------------------------------------------------
// Item 3: `?` carries `hp::Error` and `Failure` into anyhow, eyre and boxed errors.

/// A user's error with a source of its own.
#[derive(Debug, thiserror::Error)]
#[error("config unreadable")]
struct ConfigUnreadable {
    #[source]
    cause: DiskGone,
}

#[derive(Debug, thiserror::Error)]
#[error("disk gone")]
struct DiskGone;

fn config_error() -> hp::Error {
    hp::Error::new(ConfigUnreadable { cause: DiskGone })
}

fn messages(err: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut link = err.source();
    while let Some(e) = link {
        out.push(e.to_string());
        link = e.source();
    }
    out
}

fn assert_error_traits<E: StdError + Send + Sync + 'static>() {}

#[test]
fn error_and_failure_are_std_errors_that_are_send_sync_and_static() {
    assert_error_traits::<hp::Error>();
    assert_error_traits::<hp::Failure>();
}

#[test]
fn an_error_is_transparent_its_message_and_source_chain_are_the_wrapped_errors() {
    let e = config_error();
    assert_eq!(e.to_string(), "config unreadable");
    // `source()` is the wrapped error's source: each message once in a chain.
    assert_eq!(messages(&e), ["config unreadable", "disk gone"]);
    let f = hp::Failure::from(e.clone());
    assert_eq!(messages(&f), ["config unreadable", "disk gone"]);
    assert_eq!(messages(&hp::Failure::Cancelled), ["cancelled"]);
}

#[test]
fn question_mark_carries_an_error_into_anyhow_keeping_identity_chain_and_original_type() {
    let e = config_error();
    let sent = e.clone();
    let load = move || -> anyhow::Result<()> { Err(sent)? };
    let report = load().unwrap_err();
    assert_eq!(format!("{report:#}"), "config unreadable: disk gone");
    let chain: Vec<String> = report.chain().map(|c| c.to_string()).collect();
    assert_eq!(chain, ["config unreadable", "disk gone"]);
    // The report holds the `hp::Error` itself (the same one), which holds the original.
    let inner = report.downcast_ref::<hp::Error>().expect("an hp::Error");
    assert!(inner.same(&e));
    assert!(inner.downcast_ref::<ConfigUnreadable>().is_some());
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());
    // The source's type is found in the chain as usual.
    assert!(report.chain().any(|c| c.is::<DiskGone>()));
    // Not directly: the report's own type is `hp::Error` (documented).
    assert!(report.downcast_ref::<ConfigUnreadable>().is_none());
    // And back out by value, still the same error.
    let back: hp::Error = report.downcast().expect("an hp::Error");
    assert!(back.same(&e));
}

#[test]
fn with_context_added_the_original_type_is_still_found() {
    use anyhow::Context;
    let e = config_error();
    let sent = e.clone();
    let load = move || -> anyhow::Result<()> {
        Err(sent).context("starting the shipper")?;
        Ok(())
    };
    let report = load().unwrap_err();
    let chain: Vec<String> = report.chain().map(|c| c.to_string()).collect();
    assert_eq!(
        chain,
        ["starting the shipper", "config unreadable", "disk gone"]
    );
    assert!(report.downcast_ref::<hp::Error>().unwrap().same(&e));
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failed_tasks_outcome_goes_through_question_mark_into_anyhow() {
    let ctx = hp::Ctx::beginning("app");
    let task = ctx.async_as_background(async { Err::<u8, _>(config_error()) });
    let run = async move || -> anyhow::Result<u8> {
        // `Task<T>` resolves to `Result<T, Failure>`: `?` carries the `Failure`.
        let v = task.await?;
        Ok(v?)
    };
    let report = run().await.unwrap_err();
    // The task returned `Ok(Err(e))`: the inner `?` carried the `hp::Error` itself.
    assert!(report.downcast_ref::<hp::Error>().is_some());
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());

    let failed = hp::Fut::<u8>::new();
    let e = config_error();
    failed.set_exception(e.clone());
    let wait = async move || -> anyhow::Result<u8> { Ok(failed.await?) };
    let report = wait().await.unwrap_err();
    let failure = report.downcast_ref::<hp::Failure>().expect("a Failure");
    assert!(failure.error().unwrap().same(&e));
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());
    assert_eq!(format!("{report:#}"), "config unreadable: disk gone");
}

#[test]
fn a_cancelled_failure_goes_into_anyhow_as_cancelled() {
    let run = || -> anyhow::Result<()> { Err(hp::Failure::Cancelled)? };
    let report = run().unwrap_err();
    assert_eq!(format!("{report:#}"), "cancelled");
    assert!(report.downcast_ref::<hp::Failure>().unwrap().is_cancelled());
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_none());
}

#[test]
fn question_mark_carries_an_error_and_a_failure_into_eyre() {
    let e = config_error();
    let sent = e.clone();
    let load = move || -> eyre::Result<()> { Err(sent)? };
    let report = load().unwrap_err();
    let chain: Vec<String> = report.chain().map(|c| c.to_string()).collect();
    assert_eq!(chain, ["config unreadable", "disk gone"]);
    assert!(report.downcast_ref::<hp::Error>().unwrap().same(&e));
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());
    let back: hp::Error = report.downcast().unwrap();
    assert!(back.same(&e));

    let sent = hp::Failure::from(e.clone());
    let wait = move || -> eyre::Result<()> { Err(sent)? };
    let report = wait().unwrap_err();
    assert!(
        report
            .downcast_ref::<hp::Failure>()
            .unwrap()
            .error()
            .unwrap()
            .same(&e)
    );
    assert!(hp::Error::find_in::<DiskGone>(&*report).is_some());
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*report).is_some());
}

#[test]
fn question_mark_carries_an_error_into_boxed_errors_and_back_unchanged() {
    let e = config_error();
    let sent = e.clone();
    let load = move || -> Result<(), Box<dyn StdError + Send + Sync>> { Err(sent)? };
    let boxed = load().unwrap_err();
    assert!(boxed.downcast_ref::<hp::Error>().unwrap().same(&e));
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*boxed).is_some());
    assert_eq!(messages(&*boxed), ["config unreadable", "disk gone"]);
    // `BoxError` and `from_boxed` round-trip to the very same error.
    assert!(hp::Error::from_boxed(boxed).same(&e));

    let sent = e.clone();
    let plain = move || -> Result<(), Box<dyn StdError>> { Err(sent)? };
    assert!(plain().unwrap_err().downcast_ref::<hp::Error>().is_some());

    let failure = move || -> Result<(), hp::BoxError> { Err(hp::Failure::from(e))? };
    assert!(hp::Error::find_in::<ConfigUnreadable>(&*failure().unwrap_err()).is_some());
}

#[test]
fn an_error_from_a_box_downcasts_to_the_boxed_type() {
    let boxed: hp::BoxError = Box::new(ConfigUnreadable { cause: DiskGone });
    let e = hp::Error::from_boxed(boxed);
    assert!(e.is::<ConfigUnreadable>());
    assert!(e.downcast_ref::<ConfigUnreadable>().is_some());
    assert_eq!(messages(&e), ["config unreadable", "disk gone"]);
}

#[test]
fn an_error_given_where_any_error_is_taken_is_not_wrapped_twice() {
    let e = config_error();
    assert!(hp::Error::new(e.clone()).same(&e));
    assert!(hp::Error::new(hp::Failure::from(e.clone())).same(&e));
    assert!(hp::Error::from(hp::Failure::from(e.clone())).same(&e));
    let cancelled = hp::Error::from(hp::Failure::Cancelled);
    assert_eq!(cancelled.to_string(), "cancelled");
    assert_eq!(cancelled.type_name(), "Failure");

    let ctx = hp::Ctx::beginning("app");
    ctx.set_exception(e.clone());
    assert!(ctx.exception().unwrap().unwrap().same(&e));
    let fut = hp::Fut::<u8>::new();
    fut.set_exception(e.clone());
    assert!(fut.exception().unwrap().unwrap().same(&e));
    // A user's error type is still taken as it is.
    let fut = hp::Fut::<u8>::new();
    fut.set_exception(DiskGone);
    assert!(fut.exception().unwrap().unwrap().is::<DiskGone>());
}

#[test]
fn question_mark_on_a_failure_into_an_hp_error_result_gives_the_carried_error() {
    let e = config_error();
    let sent = hp::Failure::from(e.clone());
    let run = move || -> Result<(), hp::Error> { Err(sent)? };
    assert!(run().unwrap_err().same(&e));
}

// ---------------------------------------------------------------------------------------
// Item 4: the ticker's floor is said, and a period below it emits one event per setting.

/// A writer that keeps what a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The captured lines that come from the ticker's floor event.
    fn floor_events(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains("machinery::ticker"))
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `body` on a paused current-thread runtime with a subscriber that captures every
/// event of this thread only (scoped, not global: tests share one process).
fn with_captured_events<F: std::future::Future<Output = ()>>(
    body: impl FnOnce(Captured) -> F,
) -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let c = captured.clone();
    tracing::subscriber::with_default(subscriber, || {
        crate::common::paused_current_thread().block_on(body(c))
    });
    captured
}

#[test]
fn a_period_below_min_wait_ticks_at_the_floor_and_says_so_once_per_setting() {
    with_captured_events(|captured| async move {
        let ctx = hp::Ctx::beginning("app");
        let start = Instant::now();
        let mut ticker = hp::tick(Duration::from_millis(50), &ctx)
            .name("fast")
            .max_iterations(4)
            .build()
            .unwrap();
        let events = captured.floor_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("WARN"), "{}", events[0]);
        assert!(events[0].contains("ticker=\"fast\""), "{}", events[0]);
        assert!(events[0].contains("every=50ms"), "{}", events[0]);
        assert!(events[0].contains("min_wait=100ms"), "{}", events[0]);
        let mut seen = Vec::new();
        while let Some((i, till_next)) = ticker.next().await {
            seen.push((i, start.elapsed().as_millis(), till_next.as_millis()));
        }
        assert_eq!(
            seen,
            [(1, 0, 100), (2, 100, 100), (3, 200, 100), (4, 300, 100)]
        );
        // Four ticks at the floor, still one event: never one per tick.
        assert_eq!(captured.floor_events().len(), 1);
    });
}

#[test]
fn change_after_and_change_once_below_min_wait_emit_one_event_each() {
    with_captured_events(|captured| async move {
        let ctx = hp::Ctx::beginning("app");
        let start = Instant::now();
        let mut ticker = hp::tick(Duration::from_secs(1), &ctx)
            .max_iterations(6)
            .build()
            .unwrap();
        assert_eq!(captured.floor_events().len(), 0);
        let mut seen = Vec::new();
        while let Some((i, _)) = ticker.next().await {
            seen.push(start.elapsed().as_millis());
            match i {
                1 => ticker.change_after(Duration::from_millis(30)).unwrap(),
                3 => ticker.change_once(Duration::from_millis(20)).unwrap(),
                4 => ticker.change_after(Duration::from_millis(250)).unwrap(),
                _ => {}
            }
        }
        // 0, then every 30 ms floored to 100 ms (grid 30, 60, 90, 120: first point
        // >= 100 is 120; then 240), the one-off 20 ms gap floored too (first point of
        // 240 + k·20 at or after 340: 340), back to the 30 ms grid from 120, ... then the
        // 250 ms period from 340: 590, 840.
        assert_eq!(seen, [0, 120, 240, 340, 590, 840]);
        let events = captured.floor_events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].contains("every=30ms"), "{}", events[0]);
        assert!(events[1].contains("every=20ms"), "{}", events[1]);
    });
}

#[test]
fn no_floor_event_without_a_floor_or_at_or_above_it_or_for_every_zero() {
    with_captured_events(|captured| async move {
        let ctx = hp::Ctx::beginning("app");
        let ms = Duration::from_millis;
        let _off = hp::tick(ms(50), &ctx).min_wait(None).build().unwrap();
        let _low = hp::tick(ms(50), &ctx).min_wait(ms(10)).build().unwrap();
        let _equal = hp::tick(ms(100), &ctx).build().unwrap();
        let _zero = hp::tick(Duration::ZERO, &ctx).build().unwrap();
        let off = hp::tick(ms(50), &ctx).min_wait(None).build().unwrap();
        off.change_after(ms(1)).unwrap();
        assert_eq!(captured.floor_events(), Vec::<String>::new());
    });
}

#[test]
fn the_floor_event_of_a_change_from_another_thread_is_emitted_there_once() {
    // A `TickerControl` used from a task on the multi-thread runtime: the change still
    // takes effect (counts and order only, no instants), and a scoped subscriber on the
    // calling thread sees exactly one event for it.
    let outcome = multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let mut ticker = hp::tick(Duration::from_millis(5), &ctx)
            .min_wait(Duration::from_millis(1))
            .max_iterations(3)
            .build()
            .unwrap();
        let control = ticker.control();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            control.change_once(Duration::from_micros(500)).unwrap();
        });
        let mut n = 0;
        while ticker.next().await.is_some() {
            n += 1;
        }
        (n, captured.floor_events().len())
    });
    assert_eq!(outcome, (3, 1));
}

// ---------------------------------------------------------------------------------------
// Item 5 (ctx): the tree lists children in creation order; a snapshot to walk.

#[test]
fn tree_lists_children_in_creation_order_also_after_slots_are_reused() {
    let root = hp::Ctx::beginning("app");
    let a = root.child("a");
    let b = root.child("b");
    let c = root.child("c");
    drop(a); // frees the first slot: the next child reuses it
    let d = root.child("d");
    let e = root.child("e");
    drop(c);
    let f = root.child("f");
    assert_eq!(
        root.tree(),
        "app [pending]\n  app-->b [pending]\n  app-->d [pending]\n  app-->e [pending]\n  app-->f [pending]\n"
    );
    let names: Vec<String> = root
        .snapshot()
        .children
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["b", "d", "e", "f"]);
    drop((b, d, e, f));
}

#[test]
fn tree_format_shows_every_state_with_prefixes_and_depth() {
    let root = hp::Ctx::beginning("app");
    let server = root.child_with("server", hp::CtxOptions::new().prefix("http"));
    let conn = server.child("conn-1");
    let idle = server.child("conn-2");
    let worker = root.child("worker");
    conn.set_exception(hp::Error::msg("reset"));
    server.cancel();
    assert_eq!(
        root.tree(),
        "app [pending]\n\
         \x20 app-->[http]-->server [cancelled]\n\
         \x20   app-->[http]-->server-->conn-1 [exception Message: reset]\n\
         \x20   app-->[http]-->server-->conn-2 [done (through an ancestor)]\n\
         \x20 app-->worker [pending]\n"
    );
    // From a child: names stay full from the root, the depth counts from the child.
    assert_eq!(
        server.tree(),
        "app-->[http]-->server [cancelled]\n\
         \x20 app-->[http]-->server-->conn-1 [exception Message: reset]\n\
         \x20 app-->[http]-->server-->conn-2 [done (through an ancestor)]\n"
    );
    drop((conn, idle, worker));
}

#[test]
fn a_snapshot_shows_names_states_causes_and_children_in_creation_order() {
    let root = hp::Ctx::beginning("app");
    let server = root.child_with("server", hp::CtxOptions::new().prefix("http"));
    let conn = server.child("conn-1");
    let idle = server.child("conn-2");
    let worker = root.child("worker");
    let boom = hp::Error::msg("reset");
    conn.set_exception(boom.clone());
    server.cancel();

    let snap = root.snapshot();
    let rows: Vec<(usize, String, String)> = snap
        .walk()
        .map(|(d, s)| (d, s.name.clone(), s.state.to_string()))
        .collect();
    let expected = [
        (0, "app", "pending"),
        (1, "[http]-->server", "cancelled"),
        (2, "conn-1", "exception Message: reset"),
        (2, "conn-2", "done (through an ancestor)"),
        (1, "worker", "pending"),
    ];
    let expected: Vec<(usize, String, String)> = expected
        .iter()
        .map(|(d, n, s)| (*d, n.to_string(), s.to_string()))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(snap.len(), 5);

    // Causes: what each reports (its own, else the nearest ancestor's).
    assert!(snap.cause.is_none());
    let s = &snap.children[0];
    assert!(matches!(s.state, CtxState::Cancelled));
    assert!(s.cause.as_ref().unwrap().is_cancelled());
    let c1 = &s.children[0];
    assert!(matches!(&c1.state, CtxState::Failed(e) if e.same(&boom)));
    assert!(c1.cause.as_ref().unwrap().error().unwrap().same(&boom));
    let c2 = &s.children[1];
    assert!(matches!(c2.state, CtxState::DoneByAncestor));
    assert!(c2.cause.as_ref().unwrap().is_cancelled());
    assert!(!snap.children[1].state.is_done());

    // A snapshot of a child done through an ancestor reads the cause above it.
    let sub = idle.snapshot();
    assert!(sub.cause.as_ref().unwrap().is_cancelled());
    // The snapshot holds nothing alive: every context can still go.
    drop((conn, idle, worker, server));
    assert_eq!(root.child_count(), 0);
    assert_eq!(snap.len(), 5);
    // Its Debug is flat.
    assert!(format!("{snap:?}").starts_with("[(0, \"app\", \"pending\"), (1, "));
}

#[test]
fn a_snapshot_of_a_finished_tree_shows_children_still_draining() {
    // SEMANTICS CTX 13: a finished context keeps listing its live children.
    let root = hp::Ctx::beginning("app");
    let a = root.child("a");
    let aa = a.child("aa");
    root.set_exception(hp::Error::msg("shutdown"));
    let snap = root.snapshot();
    assert_eq!(snap.len(), 3);
    let deep = &snap.children[0].children[0];
    assert!(matches!(deep.state, CtxState::DoneByAncestor));
    assert_eq!(deep.cause.as_ref().unwrap().to_string(), "shutdown");
    assert!(snap.walk().all(|(_, s)| s.state.is_done()));
    drop((a, aa));
}

#[test]
fn a_snapshot_of_a_100_000_deep_chain_is_built_walked_shown_and_dropped_in_constant_stack() {
    in_child_process(
        module_path!(),
        "a_snapshot_of_a_100_000_deep_chain_is_built_walked_shown_and_dropped_in_constant_stack",
        || {
            const DEPTH: usize = 100_000;
            let root = hp::Ctx::beginning("root");
            let mut chain = vec![root.clone()];
            for i in 0..DEPTH {
                let next = chain.last().unwrap().child(format!("c{i}"));
                chain.push(next);
            }
            chain[DEPTH / 2].cancel();
            let snap: CtxSnapshot = root.snapshot();
            assert_eq!(snap.len(), DEPTH + 1);
            let (depth, last) = snap.walk().last().unwrap();
            assert_eq!(depth, DEPTH);
            assert_eq!(last.name, format!("c{}", DEPTH - 1));
            assert!(matches!(last.state, CtxState::DoneByAncestor));
            assert!(last.cause.as_ref().unwrap().is_cancelled());
            let pending = snap.walk().filter(|(_, s)| !s.state.is_done()).count();
            assert_eq!(pending, DEPTH / 2);
            assert!(format!("{snap:?}").len() > DEPTH);
            drop(snap);
            // The tree's lines stay bounded at this depth too.
            let tree = root.tree();
            assert_eq!(tree.lines().count(), DEPTH + 1);
            assert!(tree.lines().all(|l| l.len() < 200));
            drop(chain);
        },
    );
}

#[test]
fn snapshots_taken_while_children_come_and_go_on_other_threads_stay_well_formed() {
    let (max_len, last) = multi_thread(async {
        let root = hp::Ctx::beginning("app");
        let r = root.clone();
        let churn = tokio::spawn(async move {
            for i in 0..2_000 {
                let c = r.child(format!("c{i}"));
                let g = c.child("g");
                if i % 3 == 0 {
                    c.cancel();
                }
                tokio::task::yield_now().await;
                drop((c, g));
            }
        });
        let mut max_len = 0;
        while !churn.is_finished() {
            let snap = root.snapshot();
            // Every listed child is named and nested as created.
            for child in &snap.children {
                assert!(child.name.starts_with('c'));
                assert!(child.children.iter().all(|g| g.name == "g"));
            }
            max_len = max_len.max(snap.len());
            tokio::task::yield_now().await;
        }
        churn.await.unwrap();
        (max_len, root.snapshot().len())
    });
    assert!(max_len >= 1);
    assert_eq!(last, 1);
}

// ---------------------------------------------------------------------------------------
// Item 7: a root with a deadline.

#[tokio::test(start_paused = true)]
async fn a_root_with_a_timeout_finishes_with_deadline_exceeded_at_the_exact_instant() {
    let start = Instant::now();
    let root = hp::Ctx::beginning_with_timeout("job", Duration::from_secs(30));
    let child = root.child("step");
    tokio::time::sleep(Duration::from_millis(29_999)).await;
    assert!(!root.done());
    let how = child.wait().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(how.error().unwrap().is::<hp::DeadlineExceeded>());
    assert!(!root.cancelled() && !child.cancelled());
    assert!(
        root.exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );
    assert!(matches!(
        &root.snapshot().state,
        CtxState::Failed(e) if e.is::<hp::DeadlineExceeded>()
    ));
    assert_eq!(
        root.tree(),
        "job [exception DeadlineExceeded: deadline exceeded]\n  job-->step [done (through an ancestor)]\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_root_with_a_deadline_finishes_at_it_and_one_past_or_zero_at_once() {
    let start = Instant::now();
    let root = hp::Ctx::beginning_with_deadline("job", start + Duration::from_secs(5));
    let how = root.wait().await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(how.error().unwrap().is::<hp::DeadlineExceeded>());

    let past = hp::Ctx::beginning_with_deadline("late", Instant::now());
    assert!(past.done());
    assert!(
        past.exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );
    let zero = hp::Ctx::beginning_with_timeout("zero", Duration::ZERO);
    assert!(
        zero.exception()
            .unwrap()
            .unwrap()
            .is::<hp::DeadlineExceeded>()
    );
    // Too far for an instant: no deadline, no panic.
    let never = hp::Ctx::beginning_with_timeout("never", Duration::MAX);
    tokio::time::sleep(Duration::from_secs(3600 * 24 * 365)).await;
    assert!(!never.done());
}

#[tokio::test(start_paused = true)]
async fn a_root_finished_or_dropped_before_its_deadline_keeps_its_outcome_and_its_timer_ends() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let base = metrics.num_alive_tasks();
    let root = hp::Ctx::beginning_with_timeout("job", Duration::from_secs(10));
    assert_eq!(metrics.num_alive_tasks(), base + 1);
    root.cancel();
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), base);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        root.cancelled(),
        "the deadline changes nothing after the cancel"
    );

    let dropped = hp::Ctx::beginning_with_timeout("dropped", Duration::from_secs(10));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    dropped.add_done_callback(move |how| s.lock().unwrap().push(how.to_string()));
    drop(dropped);
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), base);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(*seen.lock().unwrap(), ["cancelled"]);
}

#[test]
fn roots_with_deadlines_on_the_multi_thread_runtime_finish_with_deadline_exceeded() {
    let outcomes = multi_thread(async {
        let roots: Vec<hp::Ctx> = (0..50)
            .map(|i| hp::Ctx::beginning_with_timeout(format!("r{i}"), Duration::from_millis(i % 5)))
            .collect();
        let mut out = Vec::new();
        for r in &roots {
            out.push(r.wait().await);
        }
        out
    });
    assert_eq!(outcomes.len(), 50);
    assert!(
        outcomes
            .iter()
            .all(|f| f.error().is_some_and(|e| e.is::<hp::DeadlineExceeded>()))
    );
}

/// A broken error that is its own source: its chain never ends.
#[derive(Debug)]
struct Endless;

impl std::fmt::Display for Endless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("endless")
    }
}

impl StdError for Endless {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

#[test]
fn find_in_gives_up_on_a_source_chain_that_never_ends() {
    assert!(hp::Error::find_in::<DiskGone>(&Endless).is_none());
    let wrapped = hp::Error::new(Endless);
    assert!(hp::Error::find_in::<DiskGone>(&wrapped).is_none());
    assert!(hp::Error::find_in::<Endless>(&wrapped).is_some());
}
