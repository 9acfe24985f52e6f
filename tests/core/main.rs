//! Integration tests of contexts, futures, events, tasks, generators, scopes, results, the
//! odd helpers and the crate-wide hostile suites: one module per suite, in one test binary.
//!
//! The suites are split into three binaries by helper (`core`, `holders_queues`, `qm`) so
//! that a fresh `cargo test` compiles them side by side on two cores; `tests/leaks.rs`
//! (process-wide live-object counters) and `tests/loom/` (the `loom-model` feature) have
//! binaries of their own. Shared helpers: `tests/common/mod.rs`.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod ctx;
mod ctx_fanout;
mod ctx_stress;
mod ctx_wait;
mod ctx_waiters;
mod event;
mod future;
mod generator;
mod hostile_core;
mod hostile_odd;
mod hostile_odd_probes;
mod panics;
mod results;
mod robust_ctx;
mod robust_exit;
mod scope;
mod stress_ctx;
mod task;
mod test_harness;
mod tools;
mod waiters_26;
