//! Future sources (`COROUTINE`): spawned as a [`Task`] when their turn comes, and that
//! task added as a `TASK` source under the coroutine, as the seed's `add_coroutine` says.
//!
//! The future's output is parked in a slot the task fills, so the task itself has no
//! output to clone; a panic becomes the task's `Panicked` error.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::task::PendingSource;
use crate::helpers::error::{Error, Failure, Outcome};
use crate::helpers::queue_manager::feed::{Feed, FeedFuture};
use crate::helpers::task::{AnyTask, Task};
use crate::sync::{Mutex, lock};

struct Spawned<V, C> {
    task: Task<()>,
    slot: Arc<Mutex<Option<Feed<V, C>>>>,
}

/// The error of a future that had no runtime to run on.
pub(crate) fn no_runtime() -> Failure {
    Failure::Error(Error::msg(
        "queue manager: a future source needs a tokio runtime to be spawned on",
    ))
}

/// Spawns `fut` on `handle`.
pub(crate) fn spawn<V: Send + 'static, C: Send + Sync + 'static>(
    handle: &Handle,
    fut: FeedFuture<V, C>,
) -> Box<dyn PendingSource<V, C>> {
    let slot = Arc::new(Mutex::new(None));
    let fill = slot.clone();
    let task = Task::spawn_on(
        async move {
            let feed = fut.await;
            *lock(&fill) = Some(feed);
        },
        handle,
    );
    Box::new(Spawned { task, slot })
}

impl<V: Send + 'static, C: Send + Sync + 'static> PendingSource<V, C> for Spawned<V, C> {
    fn handle(&self) -> AnyTask {
        self.task.erased()
    }

    fn take(&mut self) -> Outcome<Feed<V, C>> {
        match self.task.try_join() {
            Some(Ok(())) => lock(&self.slot).take().ok_or_else(|| {
                Failure::Error(Error::msg("queue manager: future output taken twice"))
            }),
            Some(Err(f)) => Err(f),
            None => Err(Failure::Cancelled),
        }
    }
}
