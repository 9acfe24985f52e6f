//! Pluggable logging for contexts (the seed's `log_info` / `log_exception` and the
//! reporters). The default emits `tracing` events carrying the context's name.

use std::fmt;

use super::super::error::Error;

/// Where a context's messages go. A child without its own logger uses its parent's.
pub trait Logger: Send + Sync + 'static {
    /// A plain message from the context named `ctx`.
    fn info(&self, ctx: &str, msg: &str);
    /// An error report from the context named `ctx`.
    fn exception(&self, ctx: &str, msg: &str, err: Option<&Error>);
}

/// The default logger: `tracing::info!` and `tracing::error!` with a `ctx` field.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingLogger;

impl Logger for TracingLogger {
    fn info(&self, ctx: &str, msg: &str) {
        tracing::info!(ctx, "{msg}");
    }
    fn exception(&self, ctx: &str, msg: &str, err: Option<&Error>) {
        match err {
            Some(e) => tracing::error!(ctx, error = %e, error_type = e.type_name(), "{msg}"),
            None => tracing::error!(ctx, "{msg}"),
        }
    }
}

impl fmt::Debug for dyn Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Logger")
    }
}
