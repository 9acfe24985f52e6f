//! Graceful shutdown (beyond the seed): signals, a drain with a deadline, a report.
//!
//! A service ends its life in three steps, and each has its piece here:
//! 1. **Something asks it to stop**: [`on_shutdown_signals`] finishes a context on the
//!    first SIGINT or SIGTERM (Ctrl-C elsewhere) with the signal as its cause
//!    ([`ShutdownSignal`]); a task holder built with
//!    [`fail_fast`](crate::helpers::TaskHolderBuilder::fail_fast) finishes its context
//!    when a held task fails, with that failure as the cause.
//! 2. **It drains**: [`Drain`] takes the holders, tasks and queue managers that must end,
//!    finishes the context, and waits for them up to a deadline, or until a second
//!    signal ([`Signals::forced`]) says to stop now.
//! 3. **It reports**: the [`ShutdownReport`] names the cause, what finished, what was
//!    cut short (as [`Ctx::tree`](crate::helpers::Ctx::tree) names it) and every error.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let root = hp::Ctx::beginning("svc");
//! let workers = hp::TaskHolder::builder(&root).name("workers").fail_fast().build();
//! workers.spawn_scoped("ok", |ctx| async move { ctx.wait().await });
//! workers.spawn_scoped("bad", |_ctx| async { panic!("disk on fire") });
//! workers.ctx().wait().await; // the failure finished the holder's context
//! assert_eq!(workers.ctx().exception().unwrap().unwrap().to_string(), "panicked: disk on fire");
//! let report = hp::Drain::new(&root).holder(workers).run(Duration::from_secs(5)).await;
//! assert!(report.drained());
//! // Both tasks had ended before the drain began; the holder's failure is collected.
//! let (what, error) = &report.errors[0];
//! assert_eq!((what.as_str(), error.to_string().as_str()), ("svc-->workers", "panicked: disk on fire"));
//! # }
//! ```

mod drain;
mod report;
#[cfg(feature = "signal")]
mod signal;

pub use drain::Drain;
pub use report::{DrainEnd, ShutdownReport};
#[cfg(feature = "signal")]
pub use signal::{ShutdownSignal, Signals, on_shutdown_signals};
