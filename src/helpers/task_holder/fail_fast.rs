//! The holder's failure policy (beyond the seed); documented on
//! [`TaskHolderBuilder::fail_fast`].

use std::borrow::Cow;
use std::future::Future;

use super::{Inner, TaskHolder, TaskHolderBuilder, TaskHolderHandle};
use crate::helpers::callbacks::run_caught;
use crate::helpers::ctx::Ctx;
use crate::helpers::error::{BoxError, Error, Failure};
use crate::helpers::task::Task;
use crate::sync::{Mutex, lock};

/// The failures a fail-fast holder has seen, first first; the first cancels its context.
pub(super) struct FailFast {
    ctx: Ctx,
    failures: Mutex<Vec<Error>>,
}

impl FailFast {
    pub(super) fn new(ctx: Ctx) -> Self {
        FailFast {
            ctx,
            failures: Mutex::new(Vec::new()),
        }
    }

    /// A held task failed: the first failure cancels the holder's context with it.
    pub(super) fn failed(&self, failure: Option<&Failure>) {
        let Some(Failure::Error(e)) = failure else {
            return;
        };
        let first = {
            let mut failures = lock(&self.failures);
            failures.push(e.clone());
            failures.len() == 1
        };
        if first {
            // Outside the lock: the context's callbacks (the holder's abort) run here.
            self.ctx.set_exception(e.clone());
        }
    }

    fn first(&self) -> Option<Error> {
        lock(&self.failures).first().cloned()
    }
}

impl TaskHolderBuilder {
    /// A held task's failure cancels the holder's context with that failure as its
    /// cause, as Go's `errgroup` and trio's nursery do. Off by default: the seed's holder
    /// logs a failure and goes on.
    ///
    /// What counts as a failure: a held task that panics (its failure is
    /// [`Panicked`](crate::helpers::Panicked)), a task given to `add_task` that finished with
    /// an error, and a [`spawn_scoped_try`](TaskHolderHandle::spawn_scoped_try) task
    /// whose work returned `Err`. A cancelled task is not a failure (the policy's own
    /// cancellation cancels the siblings, which must not count).
    ///
    /// The first failure becomes the holder's context's own outcome
    /// ([`Ctx::set_exception`]): its scoped siblings see it as their context's
    /// [`exception`](Ctx::exception), its plain siblings are aborted, the holder takes no new
    /// work, and [`try_finish`](TaskHolder::try_finish) or the scoped form returns it.
    /// Every failure, the first included, is still logged as its spawn form says (the
    /// `_silent` forms log nothing): the policy decides what a failure does to the others,
    /// `_silent` only whether it is logged. So a `spawn_silent` task that panics still
    /// cancels its siblings under the policy, and is returned, but never logged.
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let app = hp::Ctx::beginning("app");
    /// let out = hp::TaskHolder::builder(&app).name("group").fail_fast().scope(async |ts| {
    ///     ts.spawn_scoped_try("fetch", |_ctx| async { Err::<(), _>(hp::Error::msg("disk on fire")) });
    ///     let slow = ts.spawn_scoped("slow", |ctx| async move {
    ///         tokio::select! {
    ///             _ = ctx.wait() => format!("stopped: {}", ctx.exception().unwrap().unwrap()),
    ///             _ = tokio::time::sleep(Duration::from_secs(60)) => "done".to_owned(),
    ///         }
    ///     });
    ///     assert_eq!(slow.await?, "stopped: disk on fire"); // the sibling saw the cause
    ///     Ok::<_, hp::Error>(())
    /// })
    /// .await;
    /// assert_eq!(out.unwrap_err().to_string(), "disk on fire"); // the first failure
    /// # }
    /// ```
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }
}

impl Inner {
    /// A failure observed outside the task's outcome (a `spawn_scoped_try` error).
    fn task_error(&self, e: &Error, report: bool) {
        let failure = Failure::Error(e.clone());
        // The logger and the context's callbacks are user code: the task still returns.
        if report {
            run_caught("task holder failure report", || {
                self.tracker.report.report(Some(&failure))
            });
        }
        if let Some(policy) = &self.tracker.fail_fast {
            run_caught("task holder failure policy", || {
                policy.failed(Some(&failure))
            });
        }
    }
}

impl TaskHolderHandle {
    /// Like [`spawn_scoped`](Self::spawn_scoped), for work that can fail with an error:
    /// its `Err` counts as the task's failure. It is logged (as a panic is), and under
    /// [`fail_fast`](TaskHolderBuilder::fail_fast) it cancels the holder's context with
    /// that error as the cause. The task's output is the work's result, the error
    /// converted with [`Error::from_boxed`].
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn spawn_scoped_try<T, E, F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Task<Result<T, Error>>
    where
        T: Send + 'static,
        E: Into<BoxError>,
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let inner = std::sync::Arc::downgrade(&self.inner);
        self.spawn_scoped(name, move |ctx| {
            let fut = work(ctx);
            async move {
                fut.await.map_err(|e| {
                    let e = Error::from_boxed(e.into());
                    if let Some(inner) = inner.upgrade() {
                        inner.task_error(&e, true);
                    }
                    e
                })
            }
        })
    }

    /// The first failure a [`fail_fast`](TaskHolderBuilder::fail_fast) holder has seen
    /// (`None` without the policy, or while nothing failed).
    pub fn first_failure(&self) -> Option<Error> {
        self.inner.tracker.fail_fast.as_ref()?.first()
    }

    /// Every failure a [`fail_fast`](TaskHolderBuilder::fail_fast) holder has seen, in
    /// the order they happened (empty without the policy).
    pub fn failures(&self) -> Vec<Error> {
        match &self.inner.tracker.fail_fast {
            Some(policy) => lock(&policy.failures).clone(),
            None => Vec::new(),
        }
    }
}

impl TaskHolder {
    /// [`finish`](Self::finish), then the first failure under
    /// [`fail_fast`](TaskHolderBuilder::fail_fast) (`Ok` without the policy: failures
    /// were logged). The other failures were logged as they happened, and
    /// [`failures`](TaskHolderHandle::failures) lists them all.
    ///
    /// # Cancel safety
    /// As `finish`: dropping the future drops the holder.
    pub async fn try_finish(self) -> Result<(), Error> {
        let handle = self.handle();
        self.finish().await;
        handle.first_failure().map_or(Ok(()), Err)
    }
}
