//! Task sources (`TASK`): a task spawned elsewhere; its value becomes the feed.
//!
//! [`PendingSource`] is what the manager holds for anything that runs as a task (user
//! tasks and spawned futures): a handle to wait on and cancel, and the outcome to take.

use std::fmt;

use super::{Body, Step, yielded};
use crate::helpers::error::Outcome;
use crate::helpers::queue_manager::feed::Feed;
use crate::helpers::task::{AnyTask, Task};

/// A source that runs as a task and is stepped once, when the task is done.
pub(crate) trait PendingSource<V>: Send {
    /// The task, to wait on and cancel.
    fn handle(&self) -> AnyTask;
    /// The outcome as a feed; called once, after the task is done.
    fn take(&mut self) -> Outcome<Feed<V>>;
}

/// A task given as a source ([`Feed::task`](super::super::Feed::task)).
pub struct TaskFeed<V>(Box<dyn PendingSource<V>>);

impl<V> TaskFeed<V> {
    pub(crate) fn new<T>(task: Task<T>) -> Self
    where
        T: Into<Feed<V>> + Send + 'static,
    {
        TaskFeed(Box::new(UserTask(task)))
    }

    pub(crate) fn into_inner(self) -> Box<dyn PendingSource<V>> {
        self.0
    }
}

impl<V> fmt::Debug for TaskFeed<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskFeed").field(&self.0.handle()).finish()
    }
}

struct UserTask<T>(Task<T>);

impl<V, T> PendingSource<V> for UserTask<T>
where
    T: Into<Feed<V>> + Send + 'static,
{
    fn handle(&self) -> AnyTask {
        self.0.erased()
    }

    fn take(&mut self) -> Outcome<Feed<V>> {
        match self.0.try_join() {
            Some(outcome) => outcome.map(Into::into),
            None => Err(crate::helpers::error::Failure::Cancelled),
        }
    }
}

/// Steps a finished task: its feed, or its failure.
pub(crate) fn step<V>(mut p: Box<dyn PendingSource<V>>) -> Step<V> {
    match p.take() {
        Ok(feed) => yielded(feed, None::<Body<V>>),
        Err(f) => Step::Fail(f, false),
    }
}
