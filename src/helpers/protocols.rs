//! The seed's protocols as traits.
//!
//! | seed protocol | here |
//! |---|---|
//! | `FutureStatus[T]` | [`FutureStatus<T>`] |
//! | `WaitByCallback[T]` | [`WaitByCallback`] (object safe, so waits take any mix) |
//! | `FutureCallback[T]` | `impl FnOnce(&Outcome<T>)` plus the [`CallbackHandle`] it returns |
//! | `FutureCTXCallback[T]` | `impl FnOnce(&Ctx, &Failure)` (see `Ctx::add_on_done`) |
//! | `WithRepr` | `Debug`, plus [`WithRepr`] for things `fut_to_string` shows as futures |
//!
//! # Example
//! ```
//! use machinery::helpers::{self as hp, WaitByCallback};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let fut = hp::Fut::<u8>::new();
//! let event = hp::Event::new();
//! let waits: [&dyn WaitByCallback; 2] = [&fut, &event];
//! event.set();
//! hp::wait_for_first(&waits).await;
//! assert!(!fut.done());
//! # }
//! ```

use std::sync::Arc;

pub use super::callbacks::CallbackHandle;
use super::error::{Error, StatusError};

/// A callback that only learns that something finished.
pub type DoneCallback = Box<dyn FnOnce() + Send + 'static>;

/// A read-only view of something that finishes with an outcome (the seed's `FutureStatus`).
pub trait FutureStatus<T> {
    /// Whether it has finished.
    fn done(&self) -> bool;
    /// Whether it finished by being cancelled.
    fn cancelled(&self) -> bool;
    /// The error it finished with, `Ok(None)` for a result.
    ///
    /// # Errors
    /// [`StatusError::Pending`] when not finished, [`StatusError::Cancelled`] when cancelled.
    fn exception(&self) -> Result<Option<Error>, StatusError>;
    /// The result it finished with.
    ///
    /// # Errors
    /// [`StatusError::Pending`], [`StatusError::Cancelled`], or the error it finished with.
    fn result(&self) -> Result<T, StatusError>;
}

/// Something that can be waited on by callback (the seed's `WaitByCallback`).
///
/// Object safe: `wait_for_first` / `wait_for_all` take `&[&dyn WaitByCallback]`, any mix
/// of contexts, futures, tasks and events. The callback added here learns only that the
/// waited thing finished; the typed `add_done_callback` of each type also passes the
/// outcome.
pub trait WaitByCallback: Send + Sync {
    /// Whether it has finished (for an [`Event`](super::Event): whether it is set).
    fn done(&self) -> bool;
    /// Cancels it; `false` when it was already done or cannot be cancelled.
    fn cancel(&self) -> bool;
    /// Runs `cb` once when it finishes; at once (before returning) if it already has.
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle;
    /// Removes a registration; returns how many were removed (0 or 1).
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize;
}

impl<W: WaitByCallback + ?Sized> WaitByCallback for &W {
    fn done(&self) -> bool {
        (**self).done()
    }
    fn cancel(&self) -> bool {
        (**self).cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        (**self).add_done_callback(cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        (**self).remove_done_callback(handle)
    }
}

impl<W: WaitByCallback + ?Sized> WaitByCallback for Arc<W> {
    fn done(&self) -> bool {
        (**self).done()
    }
    fn cancel(&self) -> bool {
        (**self).cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        (**self).add_done_callback(cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        (**self).remove_done_callback(handle)
    }
}

/// The state `fut_to_string` shows.
#[derive(Clone, Debug)]
pub enum FutureState {
    /// Not finished.
    Pending,
    /// Cancelled.
    Cancelled,
    /// Finished with this error.
    Exception(Error),
    /// Finished with a result (never shown).
    Result,
}

/// What `fut_to_string` knows about a future-like value (the seed's `WithRepr`).
///
/// Implemented by [`Fut`](super::Fut), [`Task`](super::Task) and
/// [`AnyTask`](super::AnyTask). Any other `Debug` type can opt in with an empty impl and
/// is then shown with its `Debug`.
pub trait WithRepr: std::fmt::Debug {
    /// The name and state when this is one of our futures; `None` otherwise.
    fn future_view(&self) -> Option<(Option<Arc<str>>, FutureState)> {
        None
    }
}

/// A future that carries a name (the seed's `set_future_name` / `get_future_name`).
pub trait NamedFuture {
    /// Gives it a name.
    fn set_future_name(&self, name: &str);
    /// Its name, if one was set.
    fn future_name(&self) -> Option<Arc<str>>;
}

/// Formats a future as the seed does: `<Future#NAME(pending)>`, `(cancelled)`,
/// `(exception:TypeName:message)` or `(result)` (the value is never shown); an unnamed
/// future shows `None` as its name. Anything that is not one of our futures is shown by
/// its `Debug`. The seed's `with_name=False` is [`fut_state_to_string`].
///
/// ```
/// use machinery::helpers::{self as hp, NamedFuture};
/// let f = hp::Fut::<u8>::new();
/// assert_eq!(hp::fut_to_string(&f), "<Future#None(pending)>");
/// f.set_future_name("answer");
/// f.set_result(42);
/// assert_eq!(hp::fut_to_string(&f), "<Future#answer(result)>");
/// assert_eq!(hp::fut_state_to_string(&f), "(result)");
/// ```
pub fn fut_to_string(f: &dyn WithRepr) -> String {
    match f.future_view() {
        None => format!("{f:?}"),
        Some((name, state)) => format!(
            "<Future#{}{}>",
            name.as_deref().unwrap_or("None"),
            state_text(state)
        ),
    }
}

/// Only the state part of [`fut_to_string`]: `(pending)`, `(cancelled)`,
/// `(exception:TypeName:message)` or `(result)` (the seed's `with_name=False`); anything
/// that is not one of our futures is shown by its `Debug`.
pub fn fut_state_to_string(f: &dyn WithRepr) -> String {
    match f.future_view() {
        None => format!("{f:?}"),
        Some((_, state)) => state_text(state),
    }
}

fn state_text(state: FutureState) -> String {
    match state {
        FutureState::Pending => "(pending)".to_owned(),
        FutureState::Cancelled => "(cancelled)".to_owned(),
        FutureState::Exception(e) => format!("(exception:{}:{})", e.type_name(), e),
        FutureState::Result => "(result)".to_owned(),
    }
}
