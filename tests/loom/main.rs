//! The loom model checks (`--features loom-model`, see docs/RELIABILITY.md),
//! one module per concurrent core, in one binary. Empty in ordinary builds.
#![cfg(machinery_loom)]

mod loom_model;

mod loom_ctx;
mod loom_holder;
mod loom_queue;
