//! Test helpers shared by several test files.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use machinery::helpers as hp;

/// An error with a fixed message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Boom(pub &'static str);

/// What a [`Capture`] logger recorded, one line per message.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A logger that keeps every message: `info CTX: MSG` and `exception CTX: MSG: TYPE:ERR`.
#[derive(Clone, Default)]
pub struct Capture(pub Log);

impl hp::Logger for Capture {
    fn info(&self, ctx: &str, msg: &str) {
        self.0.lock().unwrap().push(format!("info {ctx}: {msg}"));
    }
    fn exception(&self, ctx: &str, msg: &str, err: Option<&hp::Error>) {
        let e = err.map_or("-".to_owned(), |e| format!("{}:{e}", e.type_name()));
        self.0
            .lock()
            .unwrap()
            .push(format!("exception {ctx}: {msg}: {e}"));
    }
}

/// Takes what was logged so far.
pub fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// How long a multi-thread stress test may run before it fails instead of hanging.
pub const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);

/// A small seeded generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The stack a spawned std thread and a tokio worker get by default.
pub const SMALL_STACK: usize = 2 << 20;

/// Runs `f` on a new thread with a 2 MiB stack and returns its result; a panic in `f`
/// fails the caller. (A stack overflow aborts the process: wrap such tests in
/// [`in_child_process`].)
pub fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("spawn a small-stack thread")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs `f` on a std thread and fails (instead of hanging) if it does not return within
/// [`WATCHDOG`] of real time. For blocking or multi-thread tests.
pub fn with_watchdog<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(r)) => {
            let _ = t.join();
            r
        }
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog: no result within {WATCHDOG:?} (hang or lost wake-up)"),
    }
}

/// A current-thread runtime with every driver on (real time).
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
}

/// A current-thread runtime with every driver on and time paused (virtual instants).
pub fn paused_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("build a paused current-thread runtime")
}

/// Runs `fut` on a fresh [`paused_current_thread`] runtime.
pub fn block_on_paused<F: std::future::Future>(fut: F) -> F::Output {
    paused_current_thread().block_on(fut)
}

/// Runs a multi-thread runtime (2 workers) on `fut` under [`with_watchdog`].
pub fn multi_thread<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_watchdog(move || multi_thread_runtime().block_on(fut))
}

/// A multi-thread runtime with 2 workers (the machine's cores) and every driver on.
pub fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime")
}

/// The environment variable that marks a child process started by [`in_child_process`].
const CHILD_VAR: &str = "MACHINERY_TEST_CHILD";

/// Runs `body` on a 2 MiB stack in a child process (this test binary, running only the
/// test `test` of module `module`), so a stack overflow or an abort fails this test
/// instead of killing the whole suite. Call it as
/// `in_child_process(module_path!(), "the_test_fn", || ...)`: the test's path as
/// `cargo test` prints it is the module path without the crate's name, then the test's.
/// The parent checks that the child ran exactly one test and that it passed, within
/// [`WATCHDOG`].
pub fn in_child_process(module: &str, test: &str, body: impl FnOnce() + Send + 'static) {
    if std::env::var_os(CHILD_VAR).is_some() {
        on_small_stack(body);
        return;
    }
    let test_name = test_path(module, test);
    let test_name = test_name.as_str();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the child test process");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            panic!("watchdog: child for {test_name} still running after {WATCHDOG:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let out = child.wait_with_output().expect("the child's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success() && stdout.contains("1 passed"),
        "child for {test_name} failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// The path `cargo test` prints for test `test` in module `module` (a `module_path!()`):
/// the module path without its first segment (the test binary's crate), then the test.
pub fn test_path(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{test}"),
        None => test.to_owned(),
    }
}
