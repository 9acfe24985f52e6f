//! Function sources (`SYNC_FUNCTION`): called once; the result is the feed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Step, yielded};
use crate::helpers::error::{Error, Failure};
use crate::helpers::queue_manager::feed::Feed;

/// Calls `f`, catching a panic as a failure.
pub(crate) fn call<V>(f: impl FnOnce() -> Feed<V>) -> Step<V> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(feed) => yielded(feed, None),
        Err(payload) => Step::Fail(Failure::Error(Error::from_panic(payload)), false),
    }
}
