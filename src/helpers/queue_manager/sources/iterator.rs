//! Iterator sources (`SYNC_ITERATOR` and `SYNC_GENERATOR`): one `next()` per step.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Polled, panicked};
use crate::helpers::queue_manager::feed::FeedIter;

/// Takes one item; a panic in `next()` fails the iteration.
pub(crate) fn step<V, C>(it: &mut FeedIter<V, C>) -> Polled<V, C> {
    match catch_unwind(AssertUnwindSafe(|| it.next())) {
        Ok(Some(feed)) => Polled::from_feed(feed),
        Ok(None) => Polled::End,
        Err(payload) => Polled::Fail(panicked(payload), None),
    }
}
