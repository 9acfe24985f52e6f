//! The ordinary test suites, one module per suite, in one binary: building and linking
//! one binary instead of one per file is most of a fresh `cargo test`. Suites that need a
//! process of their own live beside it: `tests/leaks.rs` (process-wide live-object
//! counters) and `tests/loom/` (built only with the `loom-model` feature).

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
mod holder_join;
mod holder_refusal;
mod hostile_core;
mod hostile_holder;
mod hostile_holder_link;
mod hostile_odd;
mod hostile_odd_probes;
mod hostile_qm;
mod hostile_qm_close;
mod hostile_qm_fast;
mod hostile_queues;
mod hostile_review;
mod hostile_sync_queue;
mod panics;
mod qm_context;
mod qm_nothing_lost;
mod queue;
mod queue_manager;
mod queue_refusal;
mod results;
mod robust_ctx;
mod robust_exit;
mod scope;
mod shutdown;
mod stress_ctx;
mod stress_holder;
mod stress_qm;
mod stress_queue;
mod sync_queue;
mod task;
mod task_holder;
mod test_harness;
mod ticker;
mod tools;
