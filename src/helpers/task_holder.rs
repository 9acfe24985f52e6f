//! Task holder: keeps spawned tasks until they finish, then lets them go.
//!
//! `hp::task_holder(&ctx)` gives a [`TaskHolder`]; `hp::task_holder_scope(&ctx, async |ts|
//! ...)` runs a body with one and finishes it afterwards (the seed's `async with
//! hp.task_holder(ctx=ctx) as ts:`). [`TaskHolder::builder`] adds the seed's `name` option
//! and a limit on how many held tasks run at once (beyond the seed).
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let total = hp::task_holder_scope(&ctx, async |ts| {
//!     let a = ts.add_coroutine(async { tokio::time::sleep(Duration::from_secs(5)).await; 2 }, false);
//!     let b = ts.add_coroutine(async { 3 }, false);
//!     assert_eq!(ts.pending(), 2);
//!     Ok::<_, hp::Error>(a.await.unwrap() + b.await.unwrap())
//! })
//! .await;
//! assert_eq!(total.unwrap(), 5);
//! # }
//! ```
//!
//! # Finishing
//! [`TaskHolder::finish`] (and the end of a scoped body) waits for every held task,
//! including tasks added while finishing, from inside held tasks (through a
//! [`TaskHolderHandle`]) or from a done callback of a held task. Tasks are not cancelled
//! by finishing; if the holder's context is done, or the scoped body fails or panics, every
//! task is cancelled and finishing waits until each has ended: a plain future (added with
//! `add_coroutine` or `add_task`) is dropped by the runtime, so its `Drop` cleanup ran; work
//! added with [`TaskHolderHandle::add_scoped`] is given the holder's context instead, is
//! never dropped by the holder, and is awaited while it cleans up asynchronously.
//!
//! Once finished (or once its context is done) the holder takes no new work: a task added
//! then is cancelled at once and not held.
//!
//! # Drop
//! Dropping the holder, or a `finish` future before it completed, cancels every task
//! still held and cancels the holder's child context. Tasks end after their futures are
//! dropped by the runtime; nothing waits for that.
//!
//! # Memory
//! Finished tasks are released as they finish (a done callback on each removes it), so a
//! holder that lives for hours and runs millions of short tasks holds only the pending
//! ones. Tokio's `JoinSet` keeps every finished task until it is joined.
//!
//! # Compared with `JoinSet` and `TaskTracker`
//! 1. Memory: like `TaskTracker`, and unlike `JoinSet`, finished tasks cost nothing.
//! 2. Results: each add returns a [`Task`] handle to await or drop; `JoinSet` hands
//!    results back in completion order instead.
//! 3. Cancellation: a context finishing cancels the held tasks; `TaskTracker` never
//!    cancels, `JoinSet` only when dropped or asked.
//! 4. Errors: failures of `add_coroutine` tasks are logged through the context's logger
//!    unless `silent`.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

mod held;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};

use super::completion::DoneHook;
use super::ctx::{Ctx, CtxGuard, FailureReporter};
use super::debug::{HOLDERS, Live};
use super::error::Error;
use super::error::Failure;
use super::protocols::CallbackHandle;
use super::task::{AnyTask, Task, TaskId};
use crate::sync::{Arc, Mutex, Weak, lock};
use held::Held;

/// A holder of tasks on `ctx`; see the [module docs](self).
///
/// # Panics
/// Adding work needs a tokio runtime (the context's, or the current one).
pub fn task_holder(ctx: &Ctx) -> TaskHolder {
    TaskHolder::builder(ctx).build()
}

/// Runs `body` with a task holder on `ctx`, then finishes the holder.
///
/// Returns the body's value once every held task has finished. If the body returns an
/// error or panics, every held task is cancelled, their cleanup is awaited, and the error
/// (a panic as [`Panicked`](super::Panicked)) is returned. If `ctx` is done, the tasks are
/// cancelled and awaited, and the body's value is still returned.
///
/// # Cancel safety
/// Dropping the returned future cancels every task still held.
pub async fn task_holder_scope<T, E, F>(ctx: &Ctx, body: F) -> Result<T, Error>
where
    F: AsyncFnOnce(&TaskHolder) -> Result<T, E>,
    E: Into<Error>,
{
    TaskHolder::builder(ctx).scope(body).await
}

/// Options of a task holder: the seed's `name`, and a concurrency limit.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` or `scope` is called"]
pub struct TaskHolderBuilder {
    ctx: Ctx,
    name: std::borrow::Cow<'static, str>,
    limit: Option<usize>,
}

impl TaskHolderBuilder {
    /// Names the holder's child context (`"task_holder"` by default).
    pub fn name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// At most `n` tasks added with `add_coroutine` run at once; further ones wait their
    /// turn (they count as pending). Zero is treated as one. Tasks given to `add_task` are
    /// already running and are not limited.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n.max(1));
        self
    }

    /// Builds the holder.
    pub fn build(self) -> TaskHolder {
        let guard = self.ctx.child(self.name).drop_guard();
        let ctx = guard.ctx().clone();
        let inner = Arc::new_cyclic(|weak| Inner {
            state: Mutex::new(State::default()),
            empty: Notify::new(),
            limit: self.limit.map(|n| Arc::new(Semaphore::new(n))),
            tracker: Arc::new(Tracker {
                inner: weak.clone(),
                report: ctx.failure_reporter(),
            }),
            ctx,
            _live: Live::new(),
        });
        let weak = Arc::downgrade(&inner);
        let on_done = guard.add_done_callback(move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.abort_plain();
            }
        });
        TaskHolder {
            handle: TaskHolderHandle { inner },
            guard,
            on_done,
        }
    }

    /// Runs `body` with the holder, then finishes it; see [`task_holder_scope`].
    ///
    /// # Cancel safety
    /// Dropping the returned future cancels every task still held.
    pub async fn scope<T, E, F>(self, body: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(&TaskHolder) -> Result<T, E>,
        E: Into<Error>,
    {
        let holder = self.build();
        let out = AssertUnwindSafe(body(&holder)).catch_unwind().await;
        let out = match out {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.into()),
            Err(panic) => Err(Error::from_panic(panic)),
        };
        if out.is_err() {
            holder.inner.cancel_all();
        }
        holder.finish().await;
        out
    }
}

#[derive(Default)]
struct State {
    /// The pending tasks, in insertion order.
    tasks: Held,
    /// No new work: finished, or cancelling everything.
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Notified when the last pending task is released.
    empty: Notify,
    limit: Option<Arc<Semaphore>>,
    /// Every held task's one done callback (shared, so no allocation per task).
    tracker: Arc<Tracker>,
    ctx: Ctx,
    _live: Live<HOLDERS>,
}

/// What a held task's done callback does, by its key: bit 0 set: log a failure (the
/// reporter of `add_coroutine` without `silent`, run first as if registered first);
/// bit 1 set: release the held entry whose sequence number is `key >> 2`.
struct Tracker {
    inner: Weak<Inner>,
    report: FailureReporter,
}

const REPORT: u64 = 1;
const HELD: u64 = 2;

impl DoneHook for Tracker {
    fn on_done(&self, key: u64, failure: Option<&Failure>) {
        if key & REPORT != 0 {
            self.report.report(failure);
        }
        if key & HELD != 0 {
            if let Some(inner) = self.inner.upgrade() {
                inner.release(key >> 2);
            }
        }
    }
}

impl Inner {
    /// Holds `task` until it finishes (logging its failure if `report`); cancels it
    /// instead when the holder is closed.
    fn track<T: Send + Sync + 'static>(&self, task: &Task<T>, abortable: bool, report: bool) {
        let report = if report { REPORT } else { 0 };
        let seq = {
            let mut st = lock(&self.state);
            if st.closed {
                drop(st);
                task.cancel();
                if report != 0 {
                    // It may have failed before it could be cancelled.
                    task.add_done_hook(self.tracker.clone(), report);
                }
                return;
            }
            st.tasks.insert(task.erased(), task.id(), abortable)
        };
        // Registered after inserting: a task that already finished releases itself now.
        task.add_done_hook(self.tracker.clone(), seq << 2 | HELD | report);
    }

    /// Spawns `fut` on the holder's context's runtime (else the current one), waiting for
    /// its turn under the limit. Failures are reported by `track`, not here.
    #[track_caller]
    fn spawn<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let handle = self.ctx.runtime().unwrap_or_else(Handle::current);
        match &self.limit {
            None => Task::spawn_on(&handle, None, fut),
            Some(limit) => {
                let limit = limit.clone();
                let limited = async move {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _turn = limit.acquire_owned().await;
                    fut.await
                };
                Task::spawn_on(&handle, None, limited)
            }
        }
    }

    fn release(&self, seq: u64) {
        let (removed, now_empty) = {
            let mut st = lock(&self.state);
            let removed = st.tasks.remove(seq);
            (removed, st.tasks.is_empty())
        };
        drop(removed); // the task handle is released outside the lock
        if now_empty {
            self.empty.notify_waiters();
        }
    }

    /// Cancels the holder's context (scoped work sees it and returns) and aborts the
    /// plain tasks; the holder then takes no new work.
    fn cancel_all(&self) {
        self.ctx.cancel(); // runs `abort_plain` through the context's done callback
        self.abort_plain();
    }

    /// Closes the holder and aborts every held plain task (outside the lock).
    fn abort_plain(&self) {
        let tasks: Vec<AnyTask> = {
            let mut st = lock(&self.state);
            st.closed = true;
            st.tasks.abortable()
        };
        for t in tasks {
            t.cancel();
        }
    }

    /// Waits until nothing is pending, then closes the holder.
    async fn wait_empty(&self) {
        loop {
            let notified = self.empty.notified();
            tokio::pin!(notified);
            // Register before checking: a release between the check and the await is
            // not lost (`notify_waiters` wakes enabled waiters).
            notified.as_mut().enable();
            {
                let mut st = lock(&self.state);
                if st.tasks.is_empty() {
                    st.closed = true;
                    return;
                }
            }
            notified.await;
        }
    }
}

/// A cloneable handle to a holder for adding work from anywhere (inside held tasks, say).
///
/// It does not keep the holder open: work added after the holder finished or was dropped
/// is cancelled at once. [`TaskHolder`] derefs to it, so its methods are the holder's.
#[derive(Clone)]
pub struct TaskHolderHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for TaskHolderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHolder")
            .field("ctx", &self.inner.ctx.name())
            .field("pending", &self.pending())
            .finish()
    }
}

impl TaskHolderHandle {
    /// Spawns `fut` as a held task and returns its handle (the seed's `add_coroutine`).
    ///
    /// Errors and panics are logged through the holder's context unless `silent`
    /// (the seed's default is not silent). With a [limit](TaskHolderBuilder::limit) the
    /// future waits for its turn before it starts. On a finished or cancelled holder the
    /// task is cancelled at once and not held.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn add_coroutine<T, F>(&self, fut: F, silent: bool) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let task = self.inner.spawn(fut);
        self.inner.track(&task, true, !silent);
        task
    }

    /// Spawns `work(ctx)` as a held task, where `ctx` is the holder's context; for work
    /// that cleans up asynchronously.
    ///
    /// The holder never aborts it: when the holder's context is done (cancelled, its
    /// parent finished, the scoped body failed, or the holder was dropped) the work is
    /// expected to notice `ctx` (e.g. `select!` on `ctx.wait()`), clean up and return, and
    /// [`TaskHolder::finish`] waits for that. Work that ignores `ctx` keeps `finish`
    /// waiting. Errors are logged unless `silent`; the [limit](TaskHolderBuilder::limit)
    /// applies. On a finished or cancelled holder the task is cancelled at once.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn add_scoped<T, F, Fut>(&self, work: F, silent: bool) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        if self.is_closed() {
            // Do not even start it: it would run on a context that is already done.
            let task = self
                .inner
                .ctx
                .async_as_background(std::future::pending::<T>()); // cancelled: never reported
            task.cancel();
            return task;
        }
        let fut = work(self.inner.ctx.clone());
        let task = self.inner.spawn(fut);
        self.inner.track(&task, false, !silent);
        task
    }

    /// Holds a task spawned elsewhere until it finishes, and returns it (the seed's
    /// `add_task`). Its failures are not logged by the holder.
    pub fn add_task<T: Send + Sync + 'static>(&self, task: Task<T>) -> Task<T> {
        self.inner.track(&task, true, false);
        task
    }

    /// How many held tasks have not finished. Already 0 inside the done callbacks of
    /// the last one (registered after it was added).
    pub fn pending(&self) -> usize {
        lock(&self.inner.state).tasks.len()
    }

    /// Whether `task` is held: true for a pending task added here (with either
    /// `add_coroutine` or `add_task`), false once it finished and was released.
    pub fn contains<T>(&self, task: &Task<T>) -> bool {
        self.contains_id(task.id())
    }

    /// Whether the task with this id is held.
    pub fn contains_id(&self, id: TaskId) -> bool {
        lock(&self.inner.state).tasks.contains(id)
    }

    /// The held tasks, in the order they were added, as type-erased handles (a snapshot).
    pub fn iter(&self) -> std::vec::IntoIter<AnyTask> {
        lock(&self.inner.state).tasks.tasks().into_iter()
    }

    /// The holder's child context (named by [`TaskHolderBuilder::name`]).
    pub fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    /// Whether the holder takes no new work (finished, dropped, or its context is done).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.state).closed
    }
}

impl IntoIterator for &TaskHolderHandle {
    type Item = AnyTask;
    type IntoIter = std::vec::IntoIter<AnyTask>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Holds tasks until they finish; see the [module docs](self).
///
/// Derefs to [`TaskHolderHandle`] for adding and inspecting tasks.
///
/// # Drop
/// Cancels every task still held and the holder's child context.
pub struct TaskHolder {
    handle: TaskHolderHandle,
    guard: CtxGuard,
    on_done: CallbackHandle,
}

impl fmt::Debug for TaskHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

impl std::ops::Deref for TaskHolder {
    type Target = TaskHolderHandle;
    fn deref(&self) -> &TaskHolderHandle {
        &self.handle
    }
}

impl IntoIterator for &TaskHolder {
    type Item = AnyTask;
    type IntoIter = std::vec::IntoIter<AnyTask>;
    fn into_iter(self) -> Self::IntoIter {
        self.handle.iter()
    }
}

impl TaskHolder {
    /// A builder for the `name` and `limit` options.
    pub fn builder(ctx: &Ctx) -> TaskHolderBuilder {
        TaskHolderBuilder {
            ctx: ctx.clone(),
            name: "task_holder".into(),
            limit: None,
        }
    }

    /// A handle for adding work from inside held tasks.
    pub fn handle(&self) -> TaskHolderHandle {
        self.handle.clone()
    }

    /// Cancels the holder's context and every held plain task (scoped work is expected to
    /// return on its own); the holder then takes no new work.
    pub fn cancel_all(&self) {
        self.handle.inner.cancel_all();
    }

    /// Waits until every held task has finished, including tasks added meanwhile; then
    /// the holder takes no new work. If the holder's context is done (before or during
    /// this), the tasks are cancelled and this returns once each has been dropped.
    ///
    /// # Cancel safety
    /// Dropping the future drops the holder: every task still held is cancelled.
    pub async fn finish(self) {
        self.handle.inner.wait_empty().await;
    }
}

impl Drop for TaskHolder {
    fn drop(&mut self) {
        self.guard.remove_done_callback(self.on_done);
        self.handle.inner.cancel_all();
        // `guard` drops next and cancels the holder's context.
    }
}
