//! Integration tests of the queue manager (and the cross-helper review probes): one module
//! per suite, in one test binary.
//!
//! The suites are split into three binaries by helper (`core`, `holders_queues`, `qm`) so
//! that a fresh `cargo test` compiles them side by side on two cores; `tests/leaks.rs`
//! (process-wide live-object counters) and `tests/loom/` (the `loom-model` feature) have
//! binaries of their own. Shared helpers: `tests/common/mod.rs`.

#[path = "../common/mod.rs"]
mod common;

mod hostile_qm;
mod hostile_qm_close;
mod hostile_qm_fast;
mod hostile_review;
mod hot_path;
mod qm_context;
mod qm_nothing_lost;
mod queue_manager;
mod review26;
mod review_probes;
mod stress_qm;
