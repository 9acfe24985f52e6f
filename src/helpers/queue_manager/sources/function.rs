//! Function sources (`SYNC_FUNCTION`): called once; the result is the feed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::panicked;
use crate::helpers::error::Failure;
use crate::helpers::queue_manager::feed::Feed;

/// Calls `f`, catching a panic as a failure; [`Feed::Error`] is a failure too.
pub(crate) fn call<V, C>(f: impl FnOnce() -> Feed<V, C>) -> Result<Feed<V, C>, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Feed::Error(e)) => Err(Failure::Error(e)),
        Ok(feed) => Ok(feed),
        Err(payload) => Err(panicked(payload)),
    }
}
