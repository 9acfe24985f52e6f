//! `AsyncContextManager`, `ensure_aexit` and `using`: exit runs exactly once, always.

use crate::common;

use std::time::Duration;

use futures::FutureExt;
use machinery::helpers::{self as hp, AsyncContextManager};
use tokio::time::Instant;

/// Records every call; can be told to fail in enter or exit. Enter and exit each take
/// 1 s of virtual time, so the timeline is visible.
struct Recorder {
    delay: Duration,
    fail_enter: Option<hp::Error>,
    fail_exit: Option<hp::Error>,
    log: Vec<String>,
    exit_errors: Vec<Option<hp::Error>>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            delay: Duration::from_secs(1),
            fail_enter: None,
            fail_exit: None,
            log: Vec::new(),
            exit_errors: Vec::new(),
        }
    }
}

impl AsyncContextManager for Recorder {
    type Value = u32;

    async fn enter(&mut self) -> Result<u32, hp::Error> {
        tokio::time::sleep(self.delay).await;
        self.log.push("enter".into());
        match &self.fail_enter {
            Some(e) => Err(e.clone()),
            None => Ok(10),
        }
    }

    async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
        tokio::time::sleep(self.delay).await;
        self.log.push("exit".into());
        self.exit_errors.push(error.cloned());
        match &self.fail_exit {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_succeeds_runs_between_enter_and_exit() {
    let start = Instant::now();
    let mut cm = Recorder::new();
    let got = hp::using(&mut cm, async |value| {
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        Ok(value + 1)
    })
    .await;
    assert_eq!(got.unwrap(), 11);
    assert_eq!(cm.log, ["enter", "exit"]);
    assert!(cm.exit_errors[0].is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_fails_passes_its_error_to_exit_and_returns_it() {
    let mut cm = Recorder::new();
    let boom = hp::Error::msg("boom");
    let got: Result<(), _> = hp::using(&mut cm, {
        let boom = boom.clone();
        async move |_| Err(boom)
    })
    .await;
    assert!(got.unwrap_err().same(&boom));
    assert_eq!(cm.log, ["enter", "exit"]);
    assert!(cm.exit_errors[0].as_ref().unwrap().same(&boom));
}

#[tokio::test(start_paused = true)]
async fn a_failing_enter_runs_exit_once_with_that_error_and_skips_the_body() {
    let boom = hp::Error::msg("no connection");
    let mut cm = Recorder {
        fail_enter: Some(boom.clone()),
        ..Recorder::new()
    };
    let got: Result<(), _> = hp::using(&mut cm, async |_| panic!("the body must not run")).await;
    assert!(got.unwrap_err().same(&boom));
    assert_eq!(cm.log, ["enter", "exit"]);
    assert_eq!(cm.exit_errors.len(), 1);
    assert!(cm.exit_errors[0].as_ref().unwrap().same(&boom));
}

#[tokio::test(start_paused = true)]
async fn ensure_aexit_runs_exit_when_enter_fails() {
    let boom = hp::Error::msg("no connection");
    let mut cm = Recorder {
        fail_enter: Some(boom.clone()),
        ..Recorder::new()
    };
    let start = Instant::now();
    assert!(hp::ensure_aexit(&mut cm).await.unwrap_err().same(&boom));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "exit ran, asynchronously"
    );
    assert_eq!(cm.log, ["enter", "exit"]);
    assert!(cm.exit_errors[0].as_ref().unwrap().same(&boom));
}

#[tokio::test(start_paused = true)]
async fn ensure_aexit_leaves_exit_to_the_caller_when_enter_succeeds() {
    let mut cm = Recorder::new();
    assert_eq!(hp::ensure_aexit(&mut cm).await.unwrap(), 10);
    assert_eq!(cm.log, ["enter"]);
    cm.exit(None).await.unwrap();
    assert_eq!(cm.log, ["enter", "exit"]);
}

#[tokio::test(start_paused = true)]
async fn an_exit_error_replaces_the_scope_outcome() {
    let exit_err = hp::Error::msg("exit failed");
    let mut cm = Recorder {
        fail_exit: Some(exit_err.clone()),
        ..Recorder::new()
    };
    let got = hp::using(&mut cm, async |v| Ok(v)).await;
    assert!(got.unwrap_err().same(&exit_err));

    let enter_err = hp::Error::msg("enter failed");
    let mut cm = Recorder {
        fail_enter: Some(enter_err.clone()),
        fail_exit: Some(exit_err.clone()),
        ..Recorder::new()
    };
    assert!(hp::ensure_aexit(&mut cm).await.unwrap_err().same(&exit_err));
    assert!(cm.exit_errors[0].as_ref().unwrap().same(&enter_err));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_body_still_runs_exit_then_the_panic_continues() {
    let mut cm = Recorder::new();
    let caught =
        std::panic::AssertUnwindSafe(hp::using(&mut cm, async |_| -> Result<(), hp::Error> {
            panic!("body blew up")
        }))
        .catch_unwind()
        .await;
    let payload = caught.unwrap_err();
    assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "body blew up");
    assert_eq!(cm.log, ["enter", "exit"]);
    let seen = cm.exit_errors[0].as_ref().unwrap();
    assert_eq!(
        seen.downcast_ref::<hp::Panicked>().unwrap().message,
        "body blew up"
    );
}

#[tokio::test(start_paused = true)]
async fn the_body_may_await_and_exit_follows_after_it() {
    let start = Instant::now();
    let mut cm = Recorder::new();
    hp::using(&mut cm, async |_| {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    assert_eq!(cm.log, ["enter", "exit"]);
}

#[test]
fn using_works_on_a_multi_thread_runtime() {
    let rt = common::multi_thread_runtime();
    rt.block_on(async {
        let run = tokio::spawn(async {
            let mut cm = Recorder {
                delay: Duration::from_millis(1),
                ..Recorder::new()
            };
            let got = hp::using(&mut cm, async |v| Ok(v * 3)).await.unwrap();
            (got, cm.log)
        });
        let (got, log) = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("watchdog")
            .unwrap();
        assert_eq!(got, 30);
        assert_eq!(log, ["enter", "exit"]);
    });
}
