//! The one loom harness shared by the model tests (tests/loom_*.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Runs `f` under `loom::model` and prints the number of interleavings explored.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, SeqCst);
        f();
    });
    println!("loom model {name}: {} interleavings", runs.load(SeqCst));
}
