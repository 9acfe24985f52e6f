//! Async context managers, and `ensure_aexit`: exit runs even when enter fails.
//!
//! Python's `async with cm as value:` calls `__aenter__`, runs the block, then
//! `__aexit__` with the error the block raised, if any. When `__aenter__` itself raises,
//! `__aexit__` is *not* called, so half-acquired resources leak; the seed's
//! `ensure_aexit` is the patch for that.
//!
//! Rust has neither async context managers nor async `Drop`, so this module provides the
//! pattern itself:
//!
//! - [`AsyncContextManager`]: `enter` gives a value, `exit` receives the error, if any.
//! - [`ensure_aexit`]: enters a manager by hand; when `enter` fails, `exit` runs once with
//!   that error and the error is returned. Use it where a manager is entered now and left
//!   later (it is stored in a struct, say).
//! - [`using`]: the whole `async with`: enter (through [`ensure_aexit`]), run the body
//!   with the value, and always run `exit`, after a body that succeeded, failed or
//!   panicked.
//!
//! In Python, `MyCM.__aenter__` wraps its own body in `ensure_aexit(self)`. Here the
//! wrapping is done by whoever enters the manager: an `enter` implementation does not
//! wrap itself (it would run `exit` twice when entered through [`using`]).
//!
//! # Example: the seed's `MyCM`
//! ```
//! use machinery::helpers::{self as hp, AsyncContextManager};
//!
//! #[derive(Default)]
//! struct MyCM {
//!     fail_start: bool,
//!     log: Vec<String>,
//! }
//!
//! impl MyCM {
//!     async fn start(&mut self) -> Result<u32, hp::Error> {
//!         self.log.push("start".into());
//!         if self.fail_start {
//!             return Err(hp::Error::msg("no connection"));
//!         }
//!         Ok(42)
//!     }
//!
//!     async fn finish(&mut self, error: Option<&hp::Error>) {
//!         self.log.push(format!("finish({})", error.map_or("None".into(), |e| e.to_string())));
//!     }
//! }
//!
//! impl AsyncContextManager for MyCM {
//!     type Value = u32;
//!
//!     async fn enter(&mut self) -> Result<u32, hp::Error> {
//!         self.start().await
//!     }
//!
//!     async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
//!         self.finish(error).await;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // `async with MyCM() as value: ...`
//! let mut cm = MyCM::default();
//! let doubled = hp::using(&mut cm, async |value| Ok(value * 2)).await;
//! assert_eq!(doubled.unwrap(), 84);
//! assert_eq!(cm.log, ["start", "finish(None)"]);
//!
//! // `__aenter__` fails: `__aexit__` still runs, once, with that error.
//! let mut cm = MyCM { fail_start: true, ..MyCM::default() };
//! let err = hp::ensure_aexit(&mut cm).await.unwrap_err();
//! assert_eq!(err.to_string(), "no connection");
//! assert_eq!(cm.log, ["start", "finish(no connection)"]);
//! # }
//! ```
//!
//! # Cancel safety
//! No async code can run in `Drop`. If the future of [`using`] or [`ensure_aexit`] is
//! dropped before it finishes, `exit` does not run; give the manager a synchronous `Drop`
//! for what must always be released, or run the scope under a child context and wait for
//! it (the crate's async-cleanup pattern, see `Ctx`).

use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use futures_util::FutureExt;

use super::error::{Error, Panicked};

/// An async context manager: Python's `__aenter__` / `__aexit__` pair.
///
/// Implementations may write `async fn enter` / `async fn exit`; the futures must be
/// `Send`.
pub trait AsyncContextManager: Send {
    /// What entering gives the body (`async with cm as value`).
    type Value: Send;

    /// Acquires whatever the manager manages (`__aenter__`).
    ///
    /// # Errors
    /// Whatever went wrong; [`ensure_aexit`] and [`using`] then run [`exit`] with it.
    ///
    /// [`exit`]: AsyncContextManager::exit
    fn enter(&mut self) -> impl Future<Output = Result<Self::Value, Error>> + Send;

    /// Releases it (`__aexit__`), given the error that ended the scope, if any.
    ///
    /// # Errors
    /// An error here replaces the scope's own error, as an exception raised in Python's
    /// `__aexit__` does; `exit` has already seen the scope's error as its argument.
    fn exit(&mut self, error: Option<&Error>) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Enters `cm` by hand, making sure `exit` runs if `enter` fails (the seed's
/// `ensure_aexit`).
///
/// Returns the value `enter` gave; the caller is then responsible for calling
/// `cm.exit(..)` later, as with a manual `__aenter__`. When `enter` fails, `exit` runs
/// once with that error and the error is returned (or the error `exit` returned, if it
/// failed too).
///
/// # Errors
/// The error of `enter` (after `exit` ran with it), or that of `exit`.
///
/// # Panics
/// A panic in `enter` is a failed enter too: `exit` runs once with a [`Panicked`] error,
/// then the panic continues (an error from that `exit` is logged). A panic in `exit`
/// continues as it is.
///
/// # Example
/// ```
/// use machinery::helpers::{self as hp, AsyncContextManager};
///
/// struct Lease(Vec<&'static str>);
///
/// impl AsyncContextManager for Lease {
///     type Value = ();
///     async fn enter(&mut self) -> Result<(), hp::Error> {
///         self.0.push("half acquired");
///         Err(hp::Error::msg("quota exceeded"))
///     }
///     async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
///         assert_eq!(error.unwrap().to_string(), "quota exceeded");
///         self.0.push("released");
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut lease = Lease(Vec::new());
/// assert!(hp::ensure_aexit(&mut lease).await.is_err());
/// assert_eq!(lease.0, ["half acquired", "released"]);
/// # }
/// ```
pub async fn ensure_aexit<CM>(cm: &mut CM) -> Result<CM::Value, Error>
where
    CM: AsyncContextManager,
{
    let entered = AssertUnwindSafe(cm.enter()).catch_unwind().await;
    match entered {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            cm.exit(Some(&err)).await?;
            Err(err)
        }
        Err(payload) => {
            exit_after_panic(cm, Panicked::from_payload(&*payload)).await;
            resume_unwind(payload)
        }
    }
}

/// Runs `exit` with a [`Panicked`] error; an error from it is logged, as it
/// cannot replace the panic that goes on.
async fn exit_after_panic<CM: AsyncContextManager>(cm: &mut CM, panicked: Panicked) {
    let err = Error::new(panicked);
    if let Err(exit_err) = cm.exit(Some(&err)).await {
        tracing::error!(error = %exit_err, "exit failed after a panic");
    }
}

/// Runs `body` inside `cm`: Python's `async with cm as value: body(value)`.
///
/// Enters through [`ensure_aexit`] (so `exit` runs when `enter` fails), then runs the
/// body with the entered value, then always runs `exit` exactly once:
/// - body returned `Ok(r)`: `exit(None)`, then `Ok(r)`;
/// - body returned `Err(e)`: `exit(Some(&e))`, then `Err(e)`;
/// - body panicked: `exit(Some(&err))` with a [`Panicked`] error, then the panic
///   continues.
///
/// If `exit` fails, its error is returned instead (it already saw the body's error).
///
/// # Errors
/// The error of `enter`, of the body, or of `exit`.
///
/// # Panics
/// Resumes a panic of the body, or of `enter` (see [`ensure_aexit`]), after `exit` has
/// run. A panic in `exit` continues as it is.
pub async fn using<CM, R, F, Fut>(cm: &mut CM, body: F) -> Result<R, Error>
where
    CM: AsyncContextManager,
    F: FnOnce(CM::Value) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
{
    let value = ensure_aexit(cm).await?;
    let outcome = AssertUnwindSafe(async move { body(value).await })
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(r)) => {
            cm.exit(None).await?;
            Ok(r)
        }
        Ok(Err(err)) => {
            cm.exit(Some(&err)).await?;
            Err(err)
        }
        Err(payload) => {
            exit_after_panic(cm, Panicked::from_payload(&*payload)).await;
            resume_unwind(payload)
        }
    }
}
