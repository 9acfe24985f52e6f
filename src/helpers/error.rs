//! Errors and outcomes.
//!
//! A context, future or task finishes in one of three ways: with a result, with an error,
//! or cancelled. [`Outcome<T>`] is `Result<T, Failure>`, and [`Failure`] is either
//! [`Failure::Cancelled`] or [`Failure::Error`] carrying an [`Error`].
//!
//! [`Error`] wraps any `std::error::Error + Send + Sync` behind an `Arc`: cloning it is a
//! reference-count bump, so one error can be handed to many waiters, and two clones of
//! one error are recognisably "the same" ([`Error::same`]), which the result helpers use
//! to count distinct errors.
//!
//! # `?` into anyhow, eyre and boxed errors
//! [`Error`] and [`Failure`] implement `std::error::Error` and are `Send + Sync + 'static`,
//! so `?` carries them into `anyhow::Result`, `eyre::Result` and
//! `Box<dyn Error + Send + Sync>` ([`BoxError`]). Both are transparent, as
//! `std::io::Error`'s custom errors: `Display` and `source()` are the wrapped error's, so a
//! report shows each message once. The report holds the `Error` (or `Failure`) itself:
//! `report.downcast_ref::<hp::Error>()` gives that very error ([`Error::same`] holds) and
//! its [`Error::downcast_ref`] your original type; [`Error::find_in`] does both through any
//! chain. `report.downcast_ref::<YourError>()` directly gives `None`.
//!
//! There is no blanket `From<E: std::error::Error> for Error` (it would overlap the
//! reflexive `From<Error> for Error`, which `?` needs): the crate's parameters take any
//! `E: std::error::Error + Send + Sync + 'static`, and [`Error::new`] converts one
//! elsewhere (an `Error` given to it comes back as itself, never wrapped twice).
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("disk on fire")]
//! struct DiskOnFire;
//!
//! let err = hp::Error::new(DiskOnFire);
//! let copy = err.clone();
//! assert!(err.same(&copy));
//! assert_eq!(err.to_string(), "disk on fire");
//! assert!(err.downcast_ref::<DiskOnFire>().is_some());
//! assert_eq!(err.type_name(), "DiskOnFire");
//!
//! let failure = hp::Failure::from(err);
//! assert!(!failure.is_cancelled());
//! assert_eq!(hp::Failure::Cancelled.to_string(), "cancelled");
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A cheap-to-clone, downcastable error.
///
/// Keeps the source error's message (its `Display`) and the short name of its type, which
/// `fut_to_string` shows as `(exception:TypeName:message)`.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Repr<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The type name sits beside the error in one allocation, keeping `Error` two words.
struct Repr<E: ?Sized> {
    type_name: &'static str,
    err: E,
}

impl Error {
    /// Wraps an error value. An [`Error`] given here is returned as it is (not wrapped
    /// twice), so [`Error::same`] still holds for it; so is the error a
    /// [`Failure::Error`] carries (a [`Failure::Cancelled`] is wrapped: its text is
    /// `cancelled`, its type name `Failure`).
    pub fn new<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        // `E` may be `Error` itself (every parameter of the crate takes any error type).
        let mut slot = Some(err);
        let any = &mut slot as &mut dyn Any;
        if let Some(e) = any.downcast_mut::<Option<Error>>() {
            return e.take().expect("just filled");
        }
        if let Some(f) = any.downcast_mut::<Option<Failure>>()
            && let Some(Failure::Error(e)) = f
        {
            return e.clone();
        }
        let Some(err) = slot else {
            unreachable!("filled above")
        };
        let inner: Arc<Repr<dyn std::error::Error + Send + Sync>> = Arc::new(Repr {
            type_name: short_type_name(std::any::type_name::<E>()),
            err,
        });
        Error { inner }
    }

    /// An error that is only a message (type name `Message`).
    pub fn msg(message: impl Into<String>) -> Self {
        Error::new(Message(message.into()))
    }

    /// An error built from a caught panic's payload (type name `Panicked`).
    ///
    /// The payload is dropped under a catch: a payload whose own `Drop` panics does not
    /// make this call panic.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let err = Error::new(Panicked::from_payload(&*payload));
        super::panics::drop_payload(payload);
        err
    }

    /// The short name of the wrapped error's type, e.g. `DiskOnFire`.
    pub fn type_name(&self) -> &'static str {
        self.inner.type_name
    }

    /// The wrapped error, if it is an `E` (for one made by [`Error::from_boxed`]: the
    /// boxed error, if it is an `E`).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let err = &self.inner.err;
        match err.downcast_ref::<Boxed>() {
            Some(Boxed(boxed)) => boxed.downcast_ref::<E>(),
            None => err.downcast_ref::<E>(),
        }
    }

    /// Whether the wrapped error is an `E` (see [`Error::downcast_ref`]).
    pub fn is<E: std::error::Error + 'static>(&self) -> bool {
        self.downcast_ref::<E>().is_some()
    }

    /// True when both are clones of one error (not merely equal text).
    pub fn same(&self, other: &Error) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The wrapped error as a trait object.
    pub fn as_dyn(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &self.inner.err
    }
}

fn short_type_name(full: &'static str) -> &'static str {
    // `a::b::C<d::E>` -> `C<d::E>`: drop the path before the first generic bracket.
    let head = full.split('<').next().unwrap_or(full);
    match head.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.err, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({:?})",
            self.inner.type_name,
            self.inner.err.to_string()
        )
    }
}

// `Error` implements `std::error::Error` (below), so `?` carries it into
// `anyhow::Result`, `eyre::Result` and `Box<dyn Error + Send + Sync>`. That rules out a
// blanket `impl<E: std::error::Error> From<E> for Error` (it would overlap the reflexive
// `From<Error> for Error`): the crate's parameters take any
// `E: std::error::Error + Send + Sync + 'static` and call `Error::new`, which gives an
// `Error` back as it is.
impl std::ops::Deref for Error {
    type Target = dyn std::error::Error + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &self.inner.err
    }
}

/// Transparent, like `std::io::Error`'s custom errors: `Display` and `source()` are those
/// of the wrapped error, so a report (`{:#}` of anyhow, eyre's `Caused by:`) shows each
/// message once. The original type is one `downcast_ref` further: downcast the report to
/// `hp::Error`, then [`Error::downcast_ref`] to yours (or walk any chain with
/// [`Error::find_in`]).
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.err.source()
    }
}

/// The boxed error that `anyhow::Error`, `eyre::Report`, `String`, `&str`, every
/// `std::error::Error` and [`Error`] itself convert into. Helpers that take a user's error
/// (the scoped forms' bodies) accept any `E: Into<BoxError>`, so applications using anyhow
/// or eyre pass their errors as they are.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// Wraps a boxed error; a box that holds an [`Error`] gives that very error back (so
    /// [`Error::same`] still holds), instead of wrapping it twice. The boxed error's own
    /// type stays reachable by [`Error::downcast_ref`].
    ///
    /// ```
    /// use machinery::helpers as hp;
    /// let e = hp::Error::msg("disk on fire");
    /// let boxed: hp::BoxError = e.clone().into();
    /// assert!(hp::Error::from_boxed(boxed).same(&e));
    /// let from_str = hp::Error::from_boxed("plain text".into());
    /// assert_eq!(from_str.to_string(), "plain text");
    /// ```
    pub fn from_boxed(err: BoxError) -> Self {
        match err.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => {
                let inner: Arc<Repr<dyn std::error::Error + Send + Sync>> = Arc::new(Repr {
                    type_name: boxed_type_name(&*other),
                    err: Boxed(other),
                });
                Error { inner }
            }
        }
    }

    /// How many links of a `source()` chain [`Error::find_in`] looks at, at most.
    pub const FIND_IN_LINKS: usize = 1 << 16;

    /// Finds an `E` in `err` or its `source()` chain, looking inside the crate's
    /// transparent wrappers ([`Error`], [`Failure`]) at each link. Use it on whatever an
    /// `hp::Error` or `Failure` was carried into with `?`: an `anyhow::Error`
    /// (`&*report`), an `eyre::Report`, a `Box<dyn Error>`, or another error whose source
    /// it became.
    ///
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("disk on fire")]
    /// struct DiskOnFire;
    ///
    /// fn load() -> anyhow::Result<()> {
    ///     Err(hp::Error::new(DiskOnFire))?
    /// }
    /// let report = load().unwrap_err();
    /// assert!(hp::Error::find_in::<DiskOnFire>(&*report).is_some());
    /// // or in two steps: the report holds the `hp::Error`, which holds yours
    /// assert!(report.downcast_ref::<hp::Error>().unwrap().is::<DiskOnFire>());
    /// ```
    ///
    /// A chain whose `source()` never ends (a broken `Error` impl that is its own source)
    /// is searched for its first [`FIND_IN_LINKS`](Self::FIND_IN_LINKS) links, never
    /// forever.
    pub fn find_in<'a, E: std::error::Error + 'static>(
        err: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a E> {
        let mut link = Some(err);
        let mut links = 0;
        while let Some(e) = link {
            links += 1;
            if links > Self::FIND_IN_LINKS {
                return None;
            }
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            let wrapped = match e.downcast_ref::<Failure>() {
                Some(f) => f.error(),
                None => e.downcast_ref::<Error>(),
            };
            if let Some(found) = wrapped.and_then(Error::downcast_ref::<E>) {
                return Some(found);
            }
            link = e.source();
        }
        None
    }
}

fn boxed_type_name(_err: &(dyn std::error::Error + Send + Sync + 'static)) -> &'static str {
    // The concrete type behind a box is not known statically; its type name reads so.
    "BoxError"
}

/// A boxed error as a sized `std::error::Error` (its `Display`, `Debug` and `source`).
struct Boxed(BoxError);

impl fmt::Debug for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Boxed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// An error that is only a message; what [`Error::msg`] wraps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

/// A panic caught inside a task, callback or source, turned into an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
pub struct Panicked {
    /// The panic message when it was a string, else a placeholder.
    pub message: String,
}

impl Panicked {
    /// Reads the message out of a `catch_unwind` payload (without consuming it, so the
    /// panic can still be resumed).
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_owned()
        };
        Panicked { message }
    }
}

/// Several distinct errors at once: the seed's exception group "Futures failed".
#[derive(Debug, Clone, thiserror::Error)]
#[error("Futures failed ({} sub-exceptions)", .errors.len())]
pub struct ErrorGroup {
    /// The distinct errors, in the order of the futures they came from.
    pub errors: Vec<Error>,
}

/// A context reached its deadline (Go's `context.DeadlineExceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded;

/// How something finished without a result: cancelled, or with an error.
#[derive(Clone, Debug)]
pub enum Failure {
    /// It was cancelled (asyncio's `CancelledError`).
    Cancelled,
    /// It finished with this error.
    Error(Error),
}

impl Failure {
    /// True for [`Failure::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Failure::Cancelled)
    }

    /// The error, unless cancelled.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Failure::Cancelled => None,
            Failure::Error(e) => Some(e),
        }
    }

    /// True when both are cancellations, or both carry clones of one error.
    pub fn same(&self, other: &Failure) -> bool {
        match (self, other) {
            (Failure::Cancelled, Failure::Cancelled) => true,
            (Failure::Error(a), Failure::Error(b)) => a.same(b),
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Cancelled => f.write_str("cancelled"),
            Failure::Error(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Transparent, as [`Error`]: `Display` and `source()` are those of the error it carries
/// (none for `Cancelled`). After `?` into a report, downcast it to `Failure`, then
/// [`Failure::error`] and [`Error::downcast_ref`] (or use [`Error::find_in`]).
impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Cancelled => None,
            Failure::Error(e) => e.inner.err.source(),
        }
    }
}

/// As [`Error::new`]: the error a [`Failure::Error`] carries, itself (so `?` on a
/// `Result<_, Failure>` works in a function returning `Result<_, hp::Error>`); a
/// [`Failure::Cancelled`] wrapped as an error whose text is `cancelled`.
impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::new(f)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// The outcome of a finished future, task or context.
pub type Outcome<T> = Result<T, Failure>;

/// Why a status query (`result()` / `exception()`) gave no value.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StatusError {
    /// Not finished yet (asyncio's `InvalidStateError`).
    #[error("not finished yet")]
    Pending,
    /// It was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// It finished with this error (only from `result()`).
    #[error("{0}")]
    Error(Error),
}

impl From<Failure> for StatusError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Cancelled => StatusError::Cancelled,
            Failure::Error(e) => StatusError::Error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_small() {
        assert_eq!(std::mem::size_of::<Error>(), 16);
        assert_eq!(std::mem::size_of::<Failure>(), 16);
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type_name("a::b::C"), "C");
        assert_eq!(short_type_name("C"), "C");
        assert_eq!(short_type_name("a::C<b::D>"), "C<b::D>");
    }
}
