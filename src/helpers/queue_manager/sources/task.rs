//! Task sources (`TASK`): a task spawned elsewhere, or the task `add_coroutine` spawns;
//! its value becomes the feed when it finishes.
//!
//! [`PendingSource`] is what the manager holds for anything that runs as a task: a
//! handle to wait on and cancel, and the outcome to take.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::panicked;
use crate::helpers::error::{Failure, Outcome};
use crate::helpers::queue_manager::feed::Feed;
use crate::helpers::task::{AnyTask, Task};

/// A source that runs as a task and is taken once, when the task is done.
pub(crate) trait PendingSource<V, C>: Send {
    /// The task, to wait on and cancel.
    fn handle(&self) -> AnyTask;
    /// The outcome as a feed; called once, after the task is done.
    fn take(&mut self) -> Outcome<Feed<V, C>>;
}

/// A task given as a source ([`Feed::task`](super::super::Feed::task)).
pub struct TaskFeed<V, C = ()>(Box<dyn PendingSource<V, C>>);

impl<V, C> TaskFeed<V, C> {
    pub(crate) fn new<T>(task: Task<T>) -> Self
    where
        T: Into<Feed<V, C>> + Send + 'static,
    {
        TaskFeed(Box::new(UserTask(task)))
    }

    pub(crate) fn into_inner(self) -> Box<dyn PendingSource<V, C>> {
        self.0
    }
}

impl<V, C> fmt::Debug for TaskFeed<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskFeed").field(&self.0.handle()).finish()
    }
}

struct UserTask<T: 'static>(Task<T>);

impl<V, C, T> PendingSource<V, C> for UserTask<T>
where
    T: Into<Feed<V, C>> + Send + 'static,
{
    fn handle(&self) -> AnyTask {
        self.0.erased()
    }

    fn take(&mut self) -> Outcome<Feed<V, C>> {
        match self.0.try_join() {
            Some(outcome) => outcome.map(Into::into),
            None => Err(crate::helpers::error::Failure::Cancelled),
        }
    }
}

/// Takes a finished task's feed, or its failure; a panic (in `Clone` or `Into`) is a
/// failure, and so is [`Feed::Error`].
pub(crate) fn take<V, C>(p: &mut Box<dyn PendingSource<V, C>>) -> Result<Feed<V, C>, Failure> {
    match catch_unwind(AssertUnwindSafe(|| p.take())) {
        Ok(Ok(Feed::Error(e))) => Err(Failure::Error(e)),
        Ok(Ok(feed)) => Ok(feed),
        Ok(Err(f)) => Err(f),
        Err(payload) => Err(panicked(payload)),
    }
}
