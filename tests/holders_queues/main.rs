//! Integration tests of the task holder, the async and sync queues, the ticker and the
//! shutdown kit: one module per suite, in one test binary.
//!
//! The suites are split into three binaries by helper (`core`, `holders_queues`, `qm`) so
//! that a fresh `cargo test` compiles them side by side on two cores; `tests/leaks.rs`
//! (process-wide live-object counters) and `tests/loom/` (the `loom-model` feature) have
//! binaries of their own. Shared helpers: `tests/common/mod.rs`.

#[path = "../common/mod.rs"]
mod common;

mod holder_detached;
mod holder_join;
mod holder_refusal;
mod hostile_holder;
mod hostile_holder_link;
mod hostile_queues;
mod hostile_sync_queue;
mod queue;
mod queue_refusal;
mod shutdown;
mod stress_holder;
mod stress_queue;
mod sync_queue;
mod task_holder;
mod ticker;
