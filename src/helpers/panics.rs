//! Catching panics of user code, including one whose payload panics when dropped.
//!
//! `catch_unwind` hands back the panic's payload, a user value: `std::panic::panic_any(Bomb)`
//! where `Bomb`'s `Drop` panics makes the plain `drop(payload)` after a catch a second,
//! uncaught panic (it escaped `Ctx::cancel`, skipped the remaining callbacks, and made
//! `Fut::set_result` itself panic). Every place the crate catches a panic goes through
//! [`catch`] (or [`drop_payload`] for a payload it holds on to for a while), so a payload
//! is always dropped under a catch of its own.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::error::Error;

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send>;

/// How many payloads in a row (a payload whose `Drop` panics with another such payload...)
/// are dropped before the rest is leaked instead: a payload that makes a new one on each
/// drop must not loop forever.
const MAX_DROPS: usize = 8;

/// Runs `f`; a panic becomes an [`Error`] (`Panicked`, with the payload's message) and its
/// payload is dropped under a catch (see [`drop_payload`]).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Error::from_panic)
}

/// Drops a caught panic's payload, catching a panic of its `Drop` (whose own payload is
/// dropped the same way, up to [`MAX_DROPS`] in a row; what is left then is leaked).
pub(crate) fn drop_payload(payload: Payload) {
    let mut payload = payload;
    for _ in 0..MAX_DROPS {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(next) => {
                tracing::error!("a panic payload panicked when dropped");
                payload = next;
            }
        }
    }
    std::mem::forget(payload);
}

/// Keeps the first of two caught payloads and drops the second under a catch.
pub(crate) fn first_of(first: Option<Payload>, second: Option<Payload>) -> Option<Payload> {
    match (first, second) {
        (Some(first), second) => {
            if let Some(second) = second {
                drop_payload(second);
            }
            Some(first)
        }
        (None, second) => second,
    }
}
