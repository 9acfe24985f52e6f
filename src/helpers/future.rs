//! A settable shared future: the counterpart of `asyncio.Future`.
//!
//! [`Fut<T>`] is a cloneable handle to one write-once outcome. Anyone holding a clone can
//! finish it (`set_result`, `set_exception`, `cancel`; each returns `false` and changes
//! nothing once it is done), query it, register done callbacks, or await it, from any
//! number of tasks at once.
//!
//! Done callbacks run exactly once, in registration order, on the thread that finished the
//! future, after the outcome is stored and outside every lock; one added after completion
//! runs before `add_done_callback` returns. A panicking callback is caught and reported
//! through `tracing`; the others still run.
//!
//! A future completed from inside another done callback (a chain: future i's callback
//! completes future i+1) is done at once, but its callbacks are queued and run by the
//! outermost finishing call on the thread before it returns, so chains of any length run
//! in constant stack. Callbacks and outcomes are never dropped under a lock, so their
//! `Drop` may call back into the crate.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let fut = hp::Fut::new();
//! let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! let s = seen.clone();
//! fut.add_done_callback(move |o: &hp::Outcome<u32>| s.lock().unwrap().push(*o.as_ref().unwrap()));
//!
//! let waiter = tokio::spawn({
//!     let fut = fut.clone();
//!     async move { fut.await }
//! });
//! assert!(fut.set_result(7));
//! assert!(!fut.cancel()); // already done: a no-op
//! assert_eq!(waiter.await.unwrap().unwrap(), 7);
//! assert_eq!(*seen.lock().unwrap(), [7]);
//! # }
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::completion::Completion;
use super::error::{Error, Failure, Outcome, StatusError};
use super::protocols::{
    CallbackHandle, DoneCallback, FutureState, FutureStatus, NamedFuture, WaitByCallback, WithRepr,
};
use super::wait::WaitDone;

/// A settable, cloneable, awaitable future (asyncio's `Future`).
///
/// Awaiting needs `T: Clone` because every waiter gets the outcome; wrap a value that
/// cannot be cloned in an `Arc`.
pub struct Fut<T: 'static> {
    core: Arc<Completion<T>>,
}

impl<T> Clone for Fut<T> {
    fn clone(&self) -> Self {
        Fut {
            core: self.core.clone(),
        }
    }
}

impl<T> Default for Fut<T> {
    fn default() -> Self {
        Fut::new()
    }
}

impl<T> Fut<T> {
    /// A new pending future.
    pub fn new() -> Self {
        Fut {
            core: Arc::new(Completion::new(None)),
        }
    }

    /// A new pending future with a name (see [`crate::helpers::fut_to_string`]).
    pub fn named(name: &str) -> Self {
        Fut {
            core: Arc::new(Completion::new(Some(Arc::from(name)))),
        }
    }

    /// Finishes it with `value`; `false` (and no change) if already done.
    pub fn set_result(&self, value: T) -> bool {
        Completion::complete(&self.core, |c| c, Ok(value))
    }

    /// Finishes it with `err`; `false` (and no change) if already done.
    pub fn set_exception(&self, err: impl std::error::Error + Send + Sync + 'static) -> bool {
        Completion::complete(&self.core, |c| c, Err(Failure::Error(Error::new(err))))
    }

    /// Finishes it as cancelled; `false` (and no change) if already done.
    pub fn cancel(&self) -> bool {
        Completion::complete(&self.core, |c| c, Err(Failure::Cancelled))
    }

    /// Finishes it with `outcome`; `false` (and no change) if already done.
    pub fn set_outcome(&self, outcome: Outcome<T>) -> bool {
        Completion::complete(&self.core, |c| c, outcome)
    }

    /// Whether it is finished. One atomic load.
    pub fn done(&self) -> bool {
        self.core.done()
    }

    /// Whether it finished by being cancelled.
    pub fn cancelled(&self) -> bool {
        self.core.cancelled()
    }

    /// The error it finished with, `Ok(None)` after a result.
    ///
    /// # Errors
    /// [`StatusError::Pending`] before it finished, [`StatusError::Cancelled`] after a cancel.
    pub fn exception(&self) -> Result<Option<Error>, StatusError> {
        self.core.exception()
    }

    /// The result, cloned.
    ///
    /// # Errors
    /// [`StatusError::Pending`], [`StatusError::Cancelled`], or [`StatusError::Error`].
    pub fn result(&self) -> Result<T, StatusError>
    where
        T: Clone,
    {
        self.core.result()
    }

    /// The outcome by reference, once finished.
    pub fn outcome(&self) -> Option<&Outcome<T>> {
        self.core.outcome()
    }

    /// Runs `cb` with the outcome once finished (at once if already finished).
    ///
    /// Returns the handle that [`Fut::remove_done_callback`] takes.
    pub fn add_done_callback(
        &self,
        cb: impl FnOnce(&Outcome<T>) + Send + 'static,
    ) -> CallbackHandle {
        Completion::add_callback(&self.core, |c| c, None, Box::new(cb))
    }

    /// Removes a registration that has not run; returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.core.remove_callback(handle)
    }

    /// Whether that registration is still waiting to run on this future.
    pub fn has_done_callback(&self, handle: CallbackHandle) -> bool {
        self.core.has_callback(handle)
    }

    /// Waits for completion without taking the outcome (no `Clone` needed).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub fn wait(&self) -> WaitDone<&Self>
    where
        T: Send + Sync + 'static,
    {
        WaitDone::new(self)
    }

    /// Whether both are handles to one future.
    pub fn ptr_eq(&self, other: &Fut<T>) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

/// Identity: two handles are equal when they are handles to one future.
impl<T> PartialEq for Fut<T> {
    fn eq(&self, other: &Fut<T>) -> bool {
        self.ptr_eq(other)
    }
}

impl<T> Eq for Fut<T> {}

/// Hashes the identity, consistent with `PartialEq`.
impl<T> std::hash::Hash for Fut<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.core), state);
    }
}

impl<T: Send + Sync + 'static> WaitByCallback for Fut<T> {
    fn done(&self) -> bool {
        self.core.done()
    }
    fn cancel(&self) -> bool {
        Fut::cancel(self)
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.core.add_done(cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.core.remove_callback(handle)
    }
}

impl<T: Clone> FutureStatus<T> for Fut<T> {
    fn done(&self) -> bool {
        self.core.done()
    }
    fn cancelled(&self) -> bool {
        self.core.cancelled()
    }
    fn exception(&self) -> Result<Option<Error>, StatusError> {
        self.core.exception()
    }
    fn result(&self) -> Result<T, StatusError> {
        self.core.result()
    }
}

impl<T> NamedFuture for Fut<T> {
    fn set_future_name(&self, name: &str) {
        self.core.set_name(name);
    }
    fn future_name(&self) -> Option<Arc<str>> {
        self.core.name()
    }
}

impl<T> WithRepr for Fut<T> {
    fn future_view(&self) -> Option<(Option<Arc<str>>, FutureState)> {
        Some((self.core.name(), self.core.state()))
    }
}

impl<T> fmt::Debug for Fut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::protocols::fut_to_string(self))
    }
}

/// Awaiting a [`Fut`]: resolves to a clone of its outcome.
///
/// # Cancel safety
/// Cancel safe: dropping it removes its callback and consumes nothing.
#[must_use = "futures do nothing unless polled"]
pub struct FutOutcome<T: Send + Sync + 'static> {
    fut: Fut<T>,
    wait: WaitDone<Fut<T>>,
}

impl<T: Send + Sync + 'static> fmt::Debug for FutOutcome<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FutOutcome").field(&self.fut).finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Future for FutOutcome<T> {
    type Output = Outcome<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        match Pin::new(&mut self.wait).poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.fut.outcome().expect("done").clone()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> IntoFuture for Fut<T> {
    type Output = Outcome<T>;
    type IntoFuture = FutOutcome<T>;
    fn into_future(self) -> FutOutcome<T> {
        FutOutcome {
            wait: WaitDone::new(self.clone()),
            fut: self,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> IntoFuture for &Fut<T> {
    type Output = Outcome<T>;
    type IntoFuture = FutOutcome<T>;
    fn into_future(self) -> FutOutcome<T> {
        self.clone().into_future()
    }
}
