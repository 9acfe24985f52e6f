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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::{Notify, Semaphore};

use super::ctx::{Ctx, CtxGuard};
use super::debug::{HOLDERS, Live};
use super::error::Error;
use super::protocols::CallbackHandle;
use super::task::{AnyTask, Task, TaskId};
use crate::sync::{Arc, Mutex, Weak, lock};

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
        let guard = self.ctx.child(self.name);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            empty: Notify::new(),
            limit: self.limit.map(|n| Arc::new(Semaphore::new(n))),
            ctx: guard.ctx().clone(),
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

/// Hashes a [`TaskId`] (a unique counter) to itself, with its low bits copied to the
/// top: ids added together land in neighbouring buckets (cache friendly for millions of
/// short tasks), and the top bits hashbrown compares first still differ between them.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 << 57)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b); // not used by TaskId (it writes a u64)
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<TaskId, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct State {
    /// The pending tasks: insertion number, handle, and whether the holder may abort it
    /// (false for `add_scoped` work, which watches the holder's context instead).
    tasks: IdMap<(u64, AnyTask, bool)>,
    next_seq: u64,
    /// No new work: finished, or cancelling everything.
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Notified when the last pending task is released.
    empty: Notify,
    limit: Option<Arc<Semaphore>>,
    ctx: Ctx,
    _live: Live<HOLDERS>,
}

impl Inner {
    /// Holds `task` until it finishes; cancels it instead when the holder is closed.
    fn track<T: Send + Sync + 'static>(self: &Arc<Self>, task: &Task<T>, abortable: bool) {
        let id = task.id();
        {
            let mut st = lock(&self.state);
            if !st.closed {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.tasks.insert(id, (seq, task.erased(), abortable));
            } else {
                drop(st);
                task.cancel();
                return;
            }
        }
        // Registered after inserting: a task that already finished releases itself now.
        let weak: Weak<Inner> = Arc::downgrade(self);
        task.add_done_callback(move |_| {
            if let Some(inner) = weak.upgrade() {
                inner.release(id);
            }
        });
    }

    /// Spawns `fut` on the holder's context, waiting for its turn under the limit.
    #[track_caller]
    fn spawn<T, F>(&self, fut: F, silent: bool) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        match &self.limit {
            None => self.ctx.async_as_background(fut, silent),
            Some(limit) => {
                let limit = limit.clone();
                let limited = async move {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _turn = limit.acquire_owned().await;
                    fut.await
                };
                self.ctx.async_as_background(limited, silent)
            }
        }
    }

    fn release(&self, id: TaskId) {
        let now_empty = {
            let mut st = lock(&self.state);
            let removed = st.tasks.remove(&id);
            let len = st.tasks.len();
            // Give memory back after a burst: shrink when three quarters are unused.
            if st.tasks.capacity() > 64 && len < st.tasks.capacity() / 4 {
                st.tasks.shrink_to(len * 2);
            }
            drop(st);
            drop(removed); // the task handle is released outside the lock
            len == 0
        };
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
            let plain = st.tasks.values().filter(|(_, _, abortable)| *abortable);
            plain.map(|(_, t, _)| t.clone()).collect()
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
        let task = self.inner.spawn(fut, silent);
        self.inner.track(&task, true);
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
                .async_as_background(std::future::pending::<T>(), silent);
            task.cancel();
            return task;
        }
        let fut = work(self.inner.ctx.clone());
        let task = self.inner.spawn(fut, silent);
        self.inner.track(&task, false);
        task
    }

    /// Holds a task spawned elsewhere until it finishes, and returns it (the seed's
    /// `add_task`). Its failures are not logged by the holder.
    pub fn add_task<T: Send + Sync + 'static>(&self, task: Task<T>) -> Task<T> {
        self.inner.track(&task, true);
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
        lock(&self.inner.state).tasks.contains_key(&id)
    }

    /// The held tasks, in the order they were added, as type-erased handles (a snapshot).
    pub fn iter(&self) -> std::vec::IntoIter<AnyTask> {
        let mut tasks: Vec<(u64, AnyTask)> = {
            let st = lock(&self.inner.state);
            st.tasks
                .values()
                .map(|(seq, t, _)| (*seq, t.clone()))
                .collect()
        };
        tasks.sort_unstable_by_key(|(seq, _)| *seq);
        tasks
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .into_iter()
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
