//! The graceful-shutdown kit (issue 25): the holder's `fail_fast` policy, `hp::Drain`
//! and its report, and real SIGTERM/SIGINT sent to a child process (this test binary
//! re-run with one test selected; the test runner itself is never signalled).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

use crate::common::{self, Boom, Capture};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn app_with_log() -> (hp::Ctx, Capture) {
    let log = Capture::default();
    let ctx = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(log.clone()));
    (ctx, log)
}

// ---- the failure policy ----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn fail_fast_panic_cancels_the_holder_with_it_as_the_cause_and_try_finish_returns_it() {
    let (app, log) = app_with_log();
    let ts = hp::TaskHolder::builder(&app)
        .name("group")
        .fail_fast()
        .build();
    let start = Instant::now();
    let watcher = ts.spawn_scoped("watcher", move |ctx| async move {
        ctx.wait().await;
        (
            start.elapsed(),
            ctx.exception().unwrap().unwrap().to_string(),
        )
    });
    let plain = ts.spawn(async { sleep(s(60)).await });
    ts.spawn(async {
        sleep(s(2)).await;
        panic!("boom");
    });
    let out = ts.try_finish().await;
    assert_eq!(out.unwrap_err().to_string(), "panicked: boom");
    assert_eq!(start.elapsed(), s(2));
    // The scoped sibling saw the cause at 2 s; the plain one was aborted.
    assert_eq!(
        watcher.join().await.unwrap(),
        (s(2), "panicked: boom".to_owned())
    );
    assert!(plain.cancelled());
    assert!(
        !app.done(),
        "the policy finishes the holder's context, not its parent"
    );
    let lines = common::take(&log.0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("Panicked:panicked: boom"), "{lines:?}");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_returns_the_first_failure_and_collects_the_others_silent_ones_unlogged() {
    let (app, log) = app_with_log();
    let ts = hp::TaskHolder::builder(&app)
        .name("group")
        .fail_fast()
        .build();
    ts.spawn_scoped_try("a", |_ctx| async {
        sleep(s(1)).await;
        Err::<(), _>(hp::Error::new(Boom("first")))
    });
    ts.spawn_scoped_try("b", |ctx| async move {
        ctx.wait().await;
        Err::<(), _>(hp::Error::new(Boom("second")))
    });
    ts.spawn_scoped_silent("c", |ctx| async move {
        ctx.wait().await;
        panic!("third");
    });
    let handle = ts.handle();
    assert_eq!(ts.try_finish().await.unwrap_err().to_string(), "first");
    let failures: Vec<String> = handle.failures().iter().map(|e| e.to_string()).collect();
    assert_eq!(failures[0], "first");
    let mut rest = failures[1..].to_vec();
    rest.sort();
    assert_eq!(rest, ["panicked: third", "second"]);
    assert_eq!(handle.first_failure().unwrap().to_string(), "first");
    // Logged: the two `try` failures; not the silent panic.
    let mut lines = common::take(&log.0);
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with("Boom:first"), "{lines:?}");
    assert!(lines[1].ends_with("Boom:second"), "{lines:?}");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_spawn_silent_failure_still_cancels_the_siblings() {
    let (app, log) = app_with_log();
    let ts = hp::TaskHolder::builder(&app).fail_fast().build();
    let sibling = ts.spawn(async { sleep(s(10)).await });
    ts.spawn_silent(async {
        sleep(s(1)).await;
        panic!("quiet");
    });
    assert_eq!(
        ts.try_finish().await.unwrap_err().to_string(),
        "panicked: quiet"
    );
    assert!(sibling.cancelled());
    assert!(common::take(&log.0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn default_policy_logs_a_failure_and_the_others_go_on() {
    let (app, log) = app_with_log();
    let ts = hp::task_holder(&app);
    let start = Instant::now();
    let sibling = ts.spawn(async {
        sleep(s(5)).await;
        "done"
    });
    ts.spawn(async {
        sleep(s(1)).await;
        panic!("boom");
    });
    let try_task = ts.spawn_scoped_try("t", |_ctx| async { Err::<(), _>(Boom("logged")) });
    let handle = ts.handle();
    assert!(ts.try_finish().await.is_ok());
    assert_eq!(start.elapsed(), s(5));
    assert_eq!(sibling.join().await.unwrap(), "done");
    assert_eq!(
        try_task.join().await.unwrap().unwrap_err().to_string(),
        "logged"
    );
    assert!(handle.failures().is_empty() && handle.first_failure().is_none());
    assert_eq!(common::take(&log.0).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_scope_returns_the_first_failure_unless_the_body_failed() {
    let app = hp::Ctx::beginning("app");
    let out = hp::TaskHolder::builder(&app)
        .fail_fast()
        .scope(async |ts| {
            ts.spawn_silent(async { panic!("task") });
            Ok::<_, hp::Error>(7)
        })
        .await;
    assert_eq!(out.unwrap_err().to_string(), "panicked: task");
    let out = hp::TaskHolder::builder(&app)
        .fail_fast()
        .scope(async |ts| {
            ts.spawn_silent(async { panic!("task") });
            sleep(s(1)).await;
            Err::<i32, _>(Boom("body"))
        })
        .await;
    assert_eq!(out.unwrap_err().to_string(), "body");
    let ok = hp::TaskHolder::builder(&app)
        .fail_fast()
        .scope(async |ts| {
            ts.spawn(async { sleep(s(1)).await });
            Ok::<_, hp::Error>(7)
        })
        .await;
    assert_eq!(ok.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancellation_is_not_a_failure_but_an_added_tasks_panic_is() {
    let app = hp::Ctx::beginning("app");
    let ts = hp::TaskHolder::builder(&app).fail_fast().build();
    ts.spawn(async { sleep(s(10)).await });
    ts.cancel_all();
    assert!(ts.try_finish().await.is_ok());

    let ts = hp::TaskHolder::builder(&app).fail_fast().build();
    let other = ts.spawn(async { sleep(s(10)).await });
    ts.add_task(hp::Task::spawn(async {
        sleep(s(1)).await;
        panic!("elsewhere");
    }));
    assert_eq!(
        ts.try_finish().await.unwrap_err().to_string(),
        "panicked: elsewhere"
    );
    assert!(other.cancelled());
}

// ---- the drain ---------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn drain_lists_what_finished_what_was_cut_short_and_every_error() {
    let root = hp::Ctx::beginning("app");
    let conns = hp::TaskHolder::builder(&root).name("conns").build();
    conns.spawn_scoped("polite", |ctx| async move {
        ctx.wait().await;
        sleep(ms(100)).await;
    });
    let stuck = conns.spawn_scoped("stuck", |_ctx| std::future::pending::<()>());
    let plain = conns.spawn(async { sleep(s(100)).await });
    let worker = hp::Task::spawn_named("worker", async { sleep(s(3)).await });
    let failing = hp::Task::spawn_named("failing", async {
        sleep(ms(50)).await;
        panic!("bad");
    });
    let start = Instant::now();
    let report = hp::Drain::new(&root)
        .holder(conns)
        .task(&worker)
        .task(&failing)
        .run(s(1))
        .await;
    assert_eq!(start.elapsed(), s(1));
    assert_eq!(report.end, hp::DrainEnd::DeadlineExceeded);
    assert_eq!(report.elapsed, s(1));
    assert!(report.cause.as_ref().unwrap().is_cancelled());
    assert_eq!(
        report.finished,
        [
            "app-->conns-->polite".to_owned(),
            format!("app-->conns-->task {:?}", plain.id()),
            "failing".to_owned(),
        ]
    );
    assert_eq!(report.cut_short, ["app-->conns-->stuck", "worker"]);
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|(n, e)| format!("{n}: {e}"))
        .collect();
    assert_eq!(errors, ["failing: panicked: bad"]);
    assert!(report.tree.as_ref().unwrap().contains("stuck"));
    assert!(!report.drained());
    let text = report.to_string();
    assert!(
        text.starts_with(
            "shutdown report for app (cause: cancelled): deadline exceeded after 1s\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  cut short: 2\n    app-->conns-->stuck\n    worker\n"),
        "{text}"
    );
    // What was cut short is cancelled at once (done once the runtime dropped it).
    stuck.wait().await;
    worker.wait().await;
    assert!(stuck.cancelled() && worker.cancelled() && plain.cancelled());
    assert_eq!(start.elapsed(), s(1));
}

#[tokio::test(start_paused = true)]
async fn drain_uses_the_contexts_outcome_as_the_cause_and_ends_when_all_finished() {
    let root = hp::Ctx::beginning("app");
    let conns = hp::TaskHolder::builder(&root).name("conns").build();
    for name in ["a", "b"] {
        conns.spawn_scoped(name, |ctx| async move {
            ctx.wait().await;
            sleep(ms(300)).await;
        });
    }
    root.set_exception(Boom("disk on fire"));
    let report = hp::Drain::new(&root).holder(conns).run(s(5)).await;
    assert_eq!(report.cause.unwrap().to_string(), "disk on fire");
    assert_eq!(
        root.exception().unwrap().unwrap().to_string(),
        "disk on fire"
    );
    assert_eq!(report.end, hp::DrainEnd::Drained);
    assert_eq!(report.elapsed, ms(300));
    assert_eq!(report.finished, ["app-->conns-->a", "app-->conns-->b"]);
    assert!(report.cut_short.is_empty() && report.errors.is_empty() && report.tree.is_none());
}

#[tokio::test(start_paused = true)]
async fn drain_force_cuts_short_at_once() {
    let root = hp::Ctx::beginning("app");
    let conns = hp::TaskHolder::builder(&root).name("conns").build();
    conns.spawn_scoped("stuck", |_ctx| std::future::pending::<()>());
    let report = hp::Drain::new(&root)
        .holder(conns)
        .force_on(async {
            sleep(ms(500)).await;
            "stop now"
        })
        .run(s(60))
        .await;
    assert_eq!(report.end, hp::DrainEnd::Forced("stop now".into()));
    assert_eq!(report.elapsed, ms(500));
    assert_eq!(report.cut_short, ["app-->conns-->stuck"]);
    assert!(
        report
            .to_string()
            .contains(": forced (stop now) after 500ms\n")
    );
}

#[tokio::test(start_paused = true)]
async fn drain_collects_a_fail_fast_holders_failures_and_tasks_added_while_draining() {
    let root = hp::Ctx::beginning("app");
    let group = hp::TaskHolder::builder(&root).name("g").fail_fast().build();
    let handle = group.handle();
    group.spawn_scoped_try("late", move |ctx| async move {
        ctx.wait().await;
        // Adding work while draining: the holder is closed, so it is refused (cancelled
        // at once); the failure below is the holder's only one.
        let _ = handle.spawn(async {});
        Err::<(), _>(Boom("cleanup failed"))
    });
    let report = hp::Drain::new(&root).holder(group).run(s(1)).await;
    assert_eq!(report.end, hp::DrainEnd::Drained);
    assert_eq!(report.finished, ["app-->g-->late"]);
    let errors: Vec<_> = report
        .errors
        .iter()
        .map(|(n, e)| format!("{n}: {e}"))
        .collect();
    assert_eq!(errors, ["app-->g: cleanup failed"]);
}

#[tokio::test(start_paused = true)]
async fn drain_stops_a_queue_manager_and_lists_its_cut_short_sources() {
    let root = hp::Ctx::beginning("app");
    let (streamer, feeder) = hp::queue_manager::<i32, String>(&root);
    feeder.add_coroutine(std::future::pending::<i32>());
    feeder.add_value(1);
    tokio::task::yield_now().await;
    let report = hp::Drain::new(&root)
        .streamer("qm", streamer)
        .run(s(1))
        .await;
    assert_eq!(report.end, hp::DrainEnd::Drained);
    assert_eq!(report.finished, ["qm"]);
    assert!(!report.cut_short.is_empty(), "{report}");
    assert!(
        report
            .cut_short
            .iter()
            .all(|c| c.starts_with("qm: source ")),
        "{report}"
    );
}

#[test]
fn drain_on_the_multi_thread_runtime_accounts_for_every_task() {
    common::multi_thread(async {
        let root = hp::Ctx::beginning("app");
        let mut drain = hp::Drain::new(&root);
        let mut stuck = 0;
        for h in 0..4 {
            let holder = hp::TaskHolder::builder(&root).name(format!("h{h}")).build();
            for t in 0..50 {
                if (h * 50 + t) % 7 == 0 {
                    stuck += 1;
                    holder.spawn_scoped(format!("t{t}"), |_ctx| std::future::pending::<()>());
                } else {
                    holder.spawn_scoped(format!("t{t}"), |ctx| async move {
                        ctx.wait().await;
                        tokio::task::yield_now().await;
                    });
                }
            }
            drain = drain.holder(holder);
        }
        let report = drain.run(s(5)).await;
        assert_eq!(report.end, hp::DrainEnd::DeadlineExceeded);
        // Every stuck task is cut short; under load a task that was still ending at the
        // deadline (real time here) may be too. Each task is in exactly one list.
        assert!(report.cut_short.len() >= stuck, "{report}");
        assert_eq!(report.finished.len() + report.cut_short.len(), 200);
        assert!(report.errors.is_empty());
    });
}

// ---- real signals, in a child process ----------------------------------------------

const CHILD: &str = "MACHINERY_SHUTDOWN_CHILD";

/// Runs test `test` of this module in a child process; each `(line, signal)` step waits
/// for a stdout line containing `line` (unless empty), then sends `signal` (`TERM`, `INT`) to the child
/// with `kill`. Returns the exit code and everything it printed.
fn run_child(test: &str, steps: &[(&str, &str)]) -> (Option<i32>, String) {
    let name = common::test_path(module_path!(), test);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let deadline = std::time::Instant::now() + common::WATCHDOG;
    let next_line = |out: &mut String| -> Option<String> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: child silent:\n{out}"),
        }
    };
    for (wait_for, signal) in steps {
        while !wait_for.is_empty() {
            match next_line(&mut out) {
                Some(line) if line.contains(wait_for) => break,
                Some(_) => {}
                None => panic!("the child ended before printing {wait_for:?}:\n{out}"),
            }
        }
        if *signal == "STDIN" {
            writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
            continue;
        }
        let sent = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {signal} {pid}");
    }
    while next_line(&mut out).is_some() {}
    let status = child.wait().unwrap();
    (status.code(), out)
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// The child's program: serve until a signal, drain (a second signal forces), print the
/// report, exit 0 when everything drained, else 3.
fn child_service(with_stuck: bool) -> ! {
    let code = common::current_thread().block_on(async move {
        let root = hp::Ctx::beginning("svc");
        let signals = hp::on_shutdown_signals(&root).expect("install the handlers");
        let conns = hp::TaskHolder::builder(&root).name("conns").build();
        let goodbyes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for name in ["a", "b"] {
            let goodbyes = goodbyes.clone();
            conns.spawn_scoped(name, |ctx| async move {
                ctx.wait().await;
                sleep(ms(100)).await; // goodbye
                if goodbyes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    println!("both said goodbye");
                }
            });
        }
        if with_stuck {
            conns.spawn_scoped("stuck", |_ctx| std::future::pending::<()>());
        }
        println!("ready");
        root.wait().await;
        let cause = root.exception().unwrap().unwrap();
        let signal = cause
            .downcast_ref::<hp::ShutdownSignal>()
            .expect("a signal");
        println!("draining: cause is ShutdownSignal::{signal:?}");
        let report = hp::Drain::new(&root)
            .holder(conns)
            .force_on(signals.forced())
            .run(s(60))
            .await;
        println!("{report}");
        if report.drained() { 0 } else { 3 }
    });
    std::io::stdout().flush().unwrap();
    std::process::exit(code)
}

#[test]
fn sigterm_finishes_the_context_with_its_cause_drains_and_reports() {
    if is_child() {
        child_service(false);
    }
    let (code, out) = run_child(
        "sigterm_finishes_the_context_with_its_cause_drains_and_reports",
        &[("ready", "TERM")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("draining: cause is ShutdownSignal::Terminate"),
        "{out}"
    );
    assert!(
        out.contains("shutdown report for svc (cause: received SIGTERM): drained in"),
        "{out}"
    );
    assert!(
        out.contains("  finished: 2\n    svc-->conns-->a\n    svc-->conns-->b\n  cut short: 0\n"),
        "{out}"
    );
}

#[test]
fn sigint_finishes_the_context_with_its_cause_drains_and_reports() {
    if is_child() {
        child_service(false);
    }
    let (code, out) = run_child(
        "sigint_finishes_the_context_with_its_cause_drains_and_reports",
        &[("ready", "INT")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("draining: cause is ShutdownSignal::Interrupt"),
        "{out}"
    );
    assert!(
        out.contains("(cause: received SIGINT): drained in"),
        "{out}"
    );
}

#[test]
fn a_second_signal_while_draining_cuts_short_what_still_runs() {
    if is_child() {
        child_service(true);
    }
    let (code, out) = run_child(
        "a_second_signal_while_draining_cuts_short_what_still_runs",
        &[("ready", "TERM"), ("both said goodbye", "INT")],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("(cause: received SIGTERM): forced (received SIGINT) after"),
        "{out}"
    );
    assert!(
        out.contains(
            "  finished: 2\n    svc-->conns-->a\n    svc-->conns-->b\n  cut short: 1\n    svc-->conns-->stuck\n"
        ),
        "{out}"
    );
    assert!(out.contains("  still alive at the end:\n"), "{out}");
}

#[test]
fn dropping_the_signals_handle_stops_listening() {
    if is_child() {
        common::current_thread().block_on(async {
            let root = hp::Ctx::beginning("svc");
            drop(hp::on_shutdown_signals(&root).expect("install the handlers"));
            println!("dropped");
            // Wait for the parent's word that SIGTERM was sent.
            let mut line = String::new();
            tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            sleep(ms(200)).await;
            println!("pending after the signal: {}", !root.done());
        });
        std::io::stdout().flush().unwrap();
        std::process::exit(0);
    }
    let (code, out) = run_child(
        "dropping_the_signals_handle_stops_listening",
        &[("dropped", "TERM"), ("", "STDIN")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pending after the signal: true"), "{out}");
}

// ---- hostile -----------------------------------------------------------------------

#[test]
fn fail_fast_under_a_burst_of_failures_on_the_multi_thread_runtime_returns_the_first() {
    common::multi_thread(async {
        for _ in 0..20 {
            let app = hp::Ctx::beginning("app");
            let ts = hp::TaskHolder::builder(&app).fail_fast().build();
            let handle = ts.handle();
            for i in 0..200 {
                ts.spawn_scoped_try(format!("t{i}"), move |_ctx| async move {
                    tokio::task::yield_now().await;
                    if i % 2 == 0 {
                        Err(hp::Error::new(Boom("even")))
                    } else {
                        Ok(())
                    }
                });
                ts.spawn_silent(async {
                    tokio::task::yield_now().await;
                    panic!("odd");
                });
            }
            let first = ts.try_finish().await.unwrap_err();
            let failures = handle.failures();
            assert!(!failures.is_empty());
            assert!(first.same(&failures[0]));
            assert!(failures.len() <= 300, "{}", failures.len());
            let cause = handle.ctx().exception().unwrap().unwrap();
            assert!(
                cause.same(&first),
                "the holder's cause is the first failure"
            );
        }
    });
}

#[tokio::test(start_paused = true)]
async fn fail_fast_with_a_panicking_done_callback_on_the_holders_context_still_finishes() {
    let app = hp::Ctx::beginning("app");
    let ts = hp::TaskHolder::builder(&app).fail_fast().build();
    ts.ctx().add_on_done(|_, _| panic!("a user's callback"));
    let sibling = ts.spawn(async { sleep(s(10)).await });
    ts.spawn_silent(async {
        sleep(s(1)).await;
        panic!("first");
    });
    assert_eq!(
        ts.try_finish().await.unwrap_err().to_string(),
        "panicked: first"
    );
    assert!(sibling.cancelled());
}

/// Panics when dropped: a task output whose `Drop` is hostile.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("output drop");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn drain_survives_a_task_output_whose_drop_panics() {
    let root = hp::Ctx::beginning("app");
    let conns = hp::TaskHolder::builder(&root).name("conns").build();
    conns.spawn_scoped("a", |ctx| async move {
        ctx.wait().await;
        PanicOnDrop
    });
    let task = hp::Task::spawn_named("b", async { PanicOnDrop });
    let erased = task.erased();
    drop(task); // the drain holds the last handles
    let report = hp::Drain::new(&root)
        .holder(conns)
        .any_task(erased)
        .run(s(1))
        .await;
    assert_eq!(report.end, hp::DrainEnd::Drained);
    assert_eq!(report.finished, ["app-->conns-->a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn an_empty_drain_returns_at_once_with_the_cause() {
    let root = hp::Ctx::beginning("app");
    let report = hp::Drain::new(&root).run(s(5)).await;
    assert_eq!(report.end, hp::DrainEnd::Drained);
    assert_eq!(report.elapsed, Duration::ZERO);
    assert!(report.cause.as_ref().unwrap().is_cancelled() && root.cancelled());
    assert_eq!(
        report.to_string(),
        "shutdown report for app (cause: cancelled): drained in 0ns\n  finished: 0\n  cut short: 0\n  errors: 0\n"
    );
}

/// A logger that panics on every message.
struct PanickingLogger;

impl hp::Logger for PanickingLogger {
    fn info(&self, _ctx: &str, _msg: &str) {
        panic!("logger info");
    }
    fn exception(&self, _ctx: &str, _msg: &str, _err: Option<&hp::Error>) {
        panic!("logger exception");
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_with_a_panicking_logger_still_cancels_and_returns_the_error() {
    let app = hp::Ctx::beginning_with("app", hp::CtxOptions::new().log(PanickingLogger));
    let ts = hp::TaskHolder::builder(&app).fail_fast().build();
    let sibling = ts.spawn(async { sleep(s(10)).await });
    let failing = ts.spawn_scoped_try("t", |_ctx| async {
        sleep(s(1)).await;
        Err::<(), _>(hp::Error::new(Boom("logged by a panicking logger")))
    });
    let out = ts.try_finish().await;
    assert_eq!(out.unwrap_err().to_string(), "logged by a panicking logger");
    assert!(sibling.cancelled());
    let joined = failing.join().await.unwrap();
    assert_eq!(
        joined.unwrap_err().to_string(),
        "logged by a panicking logger"
    );
}
