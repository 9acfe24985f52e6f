//! Harness for the odd helpers' probe tests (tests/hostile_odd_probes.rs).
#![allow(dead_code)]

use crate::common::{WATCHDOG, on_small_stack};

/// Marks a child process started by [`in_child_process_even_ignored`].
const CHILD_VAR: &str = "MACHINERY_ODD_PROBE_CHILD";

/// Like `common::in_child_process`, but the child also runs the test when it is
/// `#[ignore]`d (a probe recording a finding), so `-- --ignored` shows the real outcome.
pub fn in_child_process_even_ignored(test_name: &str, body: impl FnOnce() + Send + 'static) {
    if std::env::var_os(CHILD_VAR).is_some() {
        on_small_stack(body);
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(exe)
        .args([
            test_name,
            "--exact",
            "--include-ignored",
            "--test-threads=1",
        ])
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
