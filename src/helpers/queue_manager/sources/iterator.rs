//! Iterator sources (`SYNC_ITERATOR` and `SYNC_GENERATOR`): one `next()` per turn.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Body, Step, yielded};
use crate::helpers::error::{Error, Failure};
use crate::helpers::queue_manager::feed::FeedIter;

/// Takes one item; a panic in `next()` fails the iteration (the iterator is dropped).
pub(crate) fn step<V>(mut it: FeedIter<V>) -> Step<V> {
    match catch_unwind(AssertUnwindSafe(|| it.next())) {
        Ok(Some(feed)) => yielded(feed, Some(Body::Iter(it))),
        Ok(None) => Step::End(None),
        Err(payload) => Step::Fail(Failure::Error(Error::from_panic(payload)), true),
    }
}
