//! Result helpers over groups of futures: collect what finished, and spread one outcome.
//!
//! Two of the seed's standalone helpers, for code that races several futures for one
//! answer (ask three devices, take the first reply, tell every waiter):
//!
//! - [`noncancelled_results_from_futs`] reads a group of finished-or-not futures and gives
//!   back `(error, results)`: cancelled and pending ones are ignored; the error is the one
//!   distinct error, or an [`ErrorGroup`] ("Futures failed") when there are several.
//! - [`find_and_apply_result`] takes a `final` future and the group, finds the outcome
//!   that should win, and sets it on `final` and on every future of the group still
//!   pending. It returns whether `final` changed.
//!
//! Two errors are "the same" when they are clones of one [`Error`] ([`Error::same`]);
//! two separately made errors with equal text are distinct.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! let (a, b, c) = (hp::Fut::new(), hp::Fut::new(), hp::Fut::new());
//! let final_fut = hp::Fut::new();
//! b.set_result("pong");
//!
//! // `b` has a result: it goes to `final` and to the futures still pending.
//! assert!(hp::find_and_apply_result(&final_fut, &[a.clone(), b, c.clone()]));
//! assert_eq!(final_fut.result().unwrap(), "pong");
//! assert_eq!(a.result().unwrap(), "pong");
//!
//! let (err, results) = hp::noncancelled_results_from_futs(&[a, c]);
//! assert!(err.is_none());
//! assert_eq!(results, ["pong", "pong"]);
//! ```

use std::collections::HashSet;

use super::error::{Error, ErrorGroup, Failure, StatusError};
use super::future::Fut;
use super::protocols::FutureStatus;

/// Gets `(error, results)` from a group of futures.
///
/// Futures that are pending or cancelled are ignored. Every result of a future that
/// finished with one is returned, in the order of `futs`. The error is:
/// - `None` when no future finished with an error;
/// - the error itself when there is one distinct error (clones of one [`Error`] count
///   once);
/// - an [`ErrorGroup`] ("Futures failed") holding the distinct errors in the order of the
///   futures they came from, when there are several.
///
/// # Panics
/// A panic in a [`FutureStatus`] implementation or in `T::clone` propagates; nothing is
/// changed by this function, so nothing is left half done.
///
/// Takes anything that iterates over references to [`FutureStatus`] values:
/// `&[Fut<T>]`, `&Vec<Task<T>>`, or `slice.iter().copied()` over
/// `&[&dyn FutureStatus<T>]`.
///
/// **Seed text error:** the seed says one error is returned "if all the errors are the
/// same type"; the original (and this) compare error identity, not type.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// let (a, b, c) = (hp::Fut::<u8>::new(), hp::Fut::new(), hp::Fut::new());
/// a.set_exception(hp::Error::msg("one"));
/// b.set_exception(hp::Error::msg("two"));
/// c.set_result(3);
/// let (err, results) = hp::noncancelled_results_from_futs(&[a, b, c]);
/// let group = err.unwrap();
/// assert_eq!(group.to_string(), "Futures failed (2 sub-exceptions)");
/// assert_eq!(group.downcast_ref::<hp::ErrorGroup>().unwrap().errors.len(), 2);
/// assert_eq!(results, [3]);
/// ```
pub fn noncancelled_results_from_futs<'a, T, F>(
    futs: impl IntoIterator<Item = &'a F>,
) -> (Option<Error>, Vec<T>)
where
    F: FutureStatus<T> + ?Sized + 'a,
{
    let mut errors: Vec<Error> = Vec::new();
    // Identities seen (the address of each error's shared allocation, as `Error::same`
    // compares): linear in the number of futures, however many distinct errors.
    let mut seen: HashSet<*const ()> = HashSet::new();
    let mut results = Vec::new();
    for f in futs {
        if !f.done() || f.cancelled() {
            continue;
        }
        match f.result() {
            Ok(value) => results.push(value),
            Err(StatusError::Error(e)) => {
                if seen.insert(std::ptr::from_ref(e.as_dyn()).cast::<()>()) {
                    errors.push(e);
                }
            }
            // Raced with nothing: `done()` was true and it was not cancelled.
            Err(StatusError::Pending | StatusError::Cancelled) => {}
        }
    }
    (combine(errors), results)
}

/// One error, an error group, or none.
fn combine(mut errors: Vec<Error>) -> Option<Error> {
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(Error::new(ErrorGroup { errors })),
    }
}

/// Finds the outcome that should win among `futs` and applies it to `final_fut` and to
/// every future of `futs` still pending. Returns `true` when `final_fut` changed.
///
/// The rules, first match wins:
/// 1. `final_fut` is cancelled: every future in `futs` is cancelled; returns `false`.
/// 2. `final_fut` finished with an error: every pending future in `futs` gets that error;
///    returns `false`.
/// 3. `final_fut` finished with a result: every pending future in `futs` gets that
///    result; returns `false`. **Differs from the original**, which passes nothing on
///    here (the seed's "bonus" sentence promises it).
/// 4. Some futures in `futs` finished with errors: the error of
///    [`noncancelled_results_from_futs`] (one error or an [`ErrorGroup`]) goes to every
///    pending future and to `final_fut`; returns `true`.
/// 5. Some future in `futs` has a result: the first one (in order) goes to every
///    pending future and to `final_fut`; returns `true`.
/// 6. Some future in `futs` is cancelled: `final_fut` is cancelled; returns `true`.
/// 7. Otherwise (all pending, or `futs` empty): nothing changes; returns `false`.
///
/// In 4 and 5 `final_fut` is set before the pending futures, so their done callbacks
/// already see it finished (a callback calling this again on the same group then only
/// passes the outcome on).
///
/// # Panics
/// User code runs here: `T::clone` and the futures' done callbacks (which the futures
/// catch and log). A panic in `clone` propagates; the futures already set stay set.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// let final_fut = hp::Fut::<u8>::new();
/// let waiter = hp::Fut::new();
/// final_fut.cancel();
/// assert!(!hp::find_and_apply_result(&final_fut, &[waiter.clone()]));
/// assert!(waiter.cancelled());
/// ```
pub fn find_and_apply_result<T: Clone>(final_fut: &Fut<T>, futs: &[Fut<T>]) -> bool {
    match final_fut.outcome() {
        Some(Err(Failure::Cancelled)) => {
            for f in futs {
                f.cancel();
            }
            return false;
        }
        Some(Err(Failure::Error(e))) => {
            set_pending(futs, |f| f.set_exception(e.clone()));
            return false;
        }
        Some(Ok(value)) => {
            set_pending(futs, |f| f.set_result(value.clone()));
            return false;
        }
        None => {}
    }

    // `final_fut` is set first, so callbacks of the futures already see it finished.
    let (error, results) = noncancelled_results_from_futs(futs);
    if let Some(e) = error {
        let changed = final_fut.set_exception(e.clone());
        set_pending(futs, |f| f.set_exception(e.clone()));
        return changed;
    }
    if let Some(value) = results.into_iter().next() {
        let changed = final_fut.set_result(value.clone());
        set_pending(futs, |f| f.set_result(value.clone()));
        return changed;
    }
    if futs.iter().any(Fut::cancelled) {
        return final_fut.cancel();
    }
    false
}

/// Applies `set` to every future of `futs` that is not done yet.
fn set_pending<T>(futs: &[Fut<T>], set: impl Fn(&Fut<T>) -> bool) {
    for f in futs.iter().filter(|f| !f.done()) {
        set(f);
    }
}
