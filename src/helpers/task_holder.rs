//! Task holder: keeps spawned tasks until they finish, then lets them go.
//!
//! `hp::task_holder(&ctx)` gives a [`TaskHolder`]; `hp::task_holder_scope(&ctx, async |ts|
//! ...)` runs a body with one and finishes it afterwards (the seed's `async with
//! hp.task_holder(ctx=ctx) as ts:`). [`TaskHolder::builder`] adds the seed's `name` option,
//! a limit on how many held tasks run at once, and `joinable` for results in completion
//! order (beyond the seed).
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
//!     let a = ts.spawn(async { tokio::time::sleep(Duration::from_secs(5)).await; 2 });
//!     let b = ts.spawn(async { 3 });
//!     assert_eq!(ts.pending(), 2);
//!     Ok::<_, hp::Error>(a.await? + b.await?)
//! })
//! .await;
//! assert_eq!(total.unwrap(), 5);
//! # }
//! ```
//!
//! # Which form to use
//! - [`spawn`](TaskHolderHandle::spawn) (the seed's `add_coroutine`): a plain future. When
//!   the holder is cancelled the runtime drops it at its current `.await`, so its cleanup
//!   is whatever its `Drop` does. For work that can stop anywhere: a computation, a request
//!   whose answer nobody will read.
//! - [`spawn_scoped`](TaskHolderHandle::spawn_scoped): `work(ctx)` gets its own child
//!   context, named after the task, and is never dropped by the holder: cancellation
//!   reaches it through `ctx`, and it decides where to stop. For work that must finish a
//!   step or clean up asynchronously: a connection that answers the line it is reading and
//!   says goodbye, a writer that flushes. Its context also lets one task be stopped alone
//!   (`task`'s `ctx.cancel()` from inside, or the whole holder from outside).
//! - [`add_task`](TaskHolderHandle::add_task): a [`Task`] spawned elsewhere.
//! - [`spawn_local`](TaskHolderHandle::spawn_local): a `!Send` future inside a `LocalSet`.
//!
//! The `_silent` forms do not log failures (the seed's `silent=True`).
//!
//! # Graceful shutdown
//! A server holds one scoped task per connection; at shutdown it cancels the holder's
//! context and `finish` returns once every connection has finished its current line.
//! ```
//! use machinery::helpers as hp;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use tokio::time::sleep;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let server = hp::Ctx::beginning("server");
//! let ts = hp::TaskHolder::builder(&server).name("connections").build();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! for peer in ["alice", "bob"] {
//!     let log = log.clone();
//!     ts.spawn_scoped(peer, move |ctx| async move {
//!         let mut line = 0;
//!         while !ctx.done() {
//!             sleep(Duration::from_secs(1)).await; // read and answer one line
//!             line += 1;
//!         }
//!         // Cancelled between lines: the line in hand was answered; say goodbye.
//!         log.lock().unwrap().push(format!("{}: bye after {line} lines", ctx.name()));
//!     });
//! }
//! sleep(Duration::from_millis(2500)).await;
//! ts.cancel_all(); // shutdown: every connection's context is cancelled
//! ts.finish().await; // returns when each connection has said goodbye
//! let mut log = log.lock().unwrap().clone();
//! log.sort();
//! assert_eq!(log, ["server-->connections-->alice: bye after 3 lines",
//!                  "server-->connections-->bob: bye after 3 lines"]);
//! # }
//! ```
//!
//! # Finishing
//! [`TaskHolder::finish`] (and the end of a scoped body) waits for every held task,
//! including tasks added while finishing, from inside held tasks (through a
//! [`TaskHolderHandle`]) or from a done callback of a held task: a task counts as finished
//! for `finish` only once all of its done callbacks have run. Tasks are not cancelled by
//! finishing; if the holder's context is done, or the scoped body fails or panics, every
//! task is cancelled and finishing waits until each has ended: a plain future is dropped by
//! the runtime, so its `Drop` cleanup ran; scoped work sees its context cancelled, is never
//! dropped by the holder, and is awaited while it cleans up asynchronously.
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
//! Finished tasks are released as they finish (each task's link to the holder removes
//! it), so a holder that lives for hours and runs millions of short tasks holds only the
//! pending ones. Tokio's `JoinSet` keeps every finished task until it is joined; a
//! [`joinable`](TaskHolderBuilder::joinable) holder does the same for
//! [`join_next`](TaskHolderHandle::join_next).
//!
//! # Compared with `JoinSet` and `TaskTracker`
//! 1. Memory: like `TaskTracker`, and unlike `JoinSet`, finished tasks cost nothing
//!    (unless the holder is `joinable`).
//! 2. Results: each spawn returns a [`Task`] handle to join (its output by value) or drop;
//!    a `joinable` holder also hands finished tasks back in completion order.
//! 3. Cancellation: a context finishing cancels the held tasks; `TaskTracker` never
//!    cancels, `JoinSet` only when dropped or asked.
//! 4. Errors: failures of tasks spawned here are logged through the context's logger
//!    unless spawned with a `_silent` method.
//! 5. Failure policy: by default a failure is logged and the others go on; with
//!    [`fail_fast`](TaskHolderBuilder::fail_fast) the first failure cancels the holder
//!    with itself as the cause and is returned (Go's `errgroup`, trio's nursery).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

mod fail_fast;
mod held;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};

use super::callbacks::run_caught;
use super::completion::DoneHook;
use super::ctx::{Ctx, CtxGuard, FailureReporter};
use super::debug::{HOLDERS, Live};
use super::error::{BoxError, Error, Failure};
use super::protocols::CallbackHandle;
use super::task::{AnyTask, Link, SETTLED, Task, TaskId};
use crate::sync::{Arc, AtomicUsize, Mutex, lock};
use fail_fast::FailFast;
use held::Held;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

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
/// The body's error may be any `E: Into<`[`BoxError`]`>`: an [`Error`], an
/// `anyhow::Error`, an `eyre::Report`'s boxed form, a `std::io::Error`, a `String`. It is
/// converted with [`Error::from_boxed`], which does not wrap an `Error` twice.
///
/// # Cancel safety
/// Dropping the returned future cancels every task still held.
pub async fn task_holder_scope<T, E, F>(ctx: &Ctx, body: F) -> Result<T, Error>
where
    F: AsyncFnOnce(&TaskHolder) -> Result<T, E>,
    E: Into<BoxError>,
{
    TaskHolder::builder(ctx).scope(body).await
}

/// Options of a task holder: the seed's `name`, a concurrency limit, and whether finished
/// tasks wait for [`TaskHolderHandle::join_next`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` or `scope` is called"]
pub struct TaskHolderBuilder {
    ctx: Ctx,
    name: Cow<'static, str>,
    limit: Option<usize>,
    joinable: bool,
    /// A held task's failure cancels the holder (`fail_fast.rs`).
    fail_fast: bool,
}

impl TaskHolderBuilder {
    /// Names the holder's child context (`"task_holder"` by default).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// At most `n` tasks spawned by the holder run at once; further ones wait their turn
    /// (they count as pending). Zero is treated as one. Tasks given to `add_task` are
    /// already running and are not limited.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n.max(1));
        self
    }

    /// Finished tasks also wait, in completion order, for
    /// [`join_next`](TaskHolderHandle::join_next) (as a `JoinSet` keeps them) instead of
    /// being forgotten as they finish. They still stop being pending, held and iterated.
    pub fn joinable(mut self) -> Self {
        self.joinable = true;
        self
    }

    /// Builds the holder.
    pub fn build(self) -> TaskHolder {
        let guard = self.ctx.child(self.name).drop_guard();
        let ctx = guard.ctx().clone();
        let inner = Arc::new(Inner {
            limit: self.limit.map(|n| Arc::new(Semaphore::new(n))),
            runtime: ctx.runtime(),
            tracker: Arc::new(Tracker {
                state: Mutex::new(State {
                    joined: self.joinable.then(VecDeque::new),
                    ..State::default()
                }),
                report: ctx.failure_reporter(),
                fail_fast: self.fail_fast.then(|| FailFast::new(ctx.clone())),
                unsettled: AtomicUsize::new(0),
                empty: Notify::new(),
                joinable: Notify::new(),
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
        E: Into<BoxError>,
    {
        let holder = self.build();
        let out = AssertUnwindSafe(body(&holder)).catch_unwind().await;
        let out = match out {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::from_boxed(e.into())),
            Err(panic) => Err(Error::from_panic(panic)),
        };
        if out.is_err() {
            holder.inner.cancel_all();
        }
        // Under `fail_fast`, a held task's failure when the body succeeded.
        let failed = holder.try_finish().await;
        out.and_then(|value| failed.map(|()| value))
    }
}

#[derive(Default)]
struct State {
    /// The pending tasks, in insertion order.
    tasks: Held,
    /// No new work: finished, or cancelling everything.
    closed: bool,
    /// Finished tasks in completion order, for `join_next` (a `joinable` holder only).
    joined: Option<VecDeque<AnyTask>>,
}

struct Inner {
    limit: Option<Arc<Semaphore>>,
    /// The context's runtime, looked up once (`None`: the current one).
    runtime: Option<Handle>,
    /// The held tasks, and every held task's link (shared, so no allocation per task).
    tracker: Arc<Tracker>,
    ctx: Ctx,
    _live: Live<HOLDERS>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle went away with tasks still held (their hooks only hold a `Weak`).
        // Dropping a task handle may drop its output: user code, one at a time, caught.
        let state = std::mem::take(&mut *lock(&self.tracker.state));
        let mut tasks = state.tasks.tasks();
        tasks.extend(state.joined.into_iter().flatten());
        drop(state.tasks);
        for task in tasks {
            run_caught("dropping a held task", || drop(task));
        }
    }
}

/// The held tasks, and what a held task's link (or hooks, for `add_task`) does, by key.
/// Bit 0: log a failure (the reporter of a task spawned without `_silent`, run first as
/// if registered first). Bit 1: release the held entry whose sequence number is
/// `key >> 3`. [`SETTLED`] (told after every done callback of the task): count the task
/// as settled.
///
/// The state lives here rather than in `Inner` so that a task's link reaches it without
/// upgrading a `Weak` per task; once the holder is gone it is empty, and a release finds
/// nothing to remove.
struct Tracker {
    state: Mutex<State>,
    report: FailureReporter,
    /// The failure policy, when the builder asked for `fail_fast` (`fail_fast.rs`).
    fail_fast: Option<FailFast>,
    /// Tracked tasks whose done callbacks have not all run yet. Finishing waits for this
    /// to reach zero, not merely for the held tasks to be released: a done callback may
    /// add work. Raised before the holder makes a task (whose link is set from the
    /// start, so it cannot settle before it is counted), or under the state lock by
    /// `add_task` while the holder is open; lowered by each settle, lock-free. A task
    /// counted while `finish` closes the holder is rejected and settles as it ends.
    unsettled: AtomicUsize,
    /// Notified when the last tracked task settles.
    empty: Notify,
    /// Notified when a task finishes (for `join_next`).
    joinable: Notify,
}

const REPORT: u64 = 1;
const HELD: u64 = 2;
const SHIFT: u32 = 3;

impl DoneHook for Tracker {
    fn on_done(&self, key: u64, failure: Option<&Failure>) {
        if key & SETTLED != 0 {
            self.settle();
            return;
        }
        if key & REPORT != 0 && failure.is_some() {
            // The context's logger is user code: a panic in it must not skip the release
            // below (and the task's settle after it; finish would wait for ever).
            run_caught("task holder failure report", || self.report.report(failure));
        }
        if let (Some(policy), true) = (&self.fail_fast, key & HELD != 0) {
            // The holder's context's callbacks run here: the release must still happen.
            run_caught("task holder failure policy", || policy.failed(failure));
        }
        if key & HELD != 0 {
            self.release(key >> SHIFT);
        }
    }
}

impl Tracker {
    /// Every done callback of a tracked task has run: when none is left, finishing may end.
    fn settle(&self) {
        // AcqRel: the callbacks' effects happen before `try_close` sees the count drop.
        if self.unsettled.fetch_sub(1, AcqRel) == 1 {
            self.empty.notify_waiters();
            self.joinable.notify_waiters();
        }
    }

    /// A held task finished: it is no longer pending (already inside its callbacks).
    fn release(&self, seq: u64) {
        let removed = {
            let mut st = lock(&self.state);
            let removed = st.tasks.remove(seq);
            match (&mut st.joined, removed) {
                (Some(joined), Some(task)) => {
                    joined.push_back(task);
                    None
                }
                (_, removed) => removed,
            }
        };
        if removed.is_none() {
            self.joinable.notify_waiters();
        }
        // The handle is released outside the lock; it may drop the task's output.
        drop(removed);
    }
}

impl Inner {
    /// Holds `task`, spawned elsewhere, until it finishes; cancels it instead when the
    /// holder is closed.
    fn track<T: Send + 'static>(&self, task: &Task<T>) {
        let seq = {
            let mut st = lock(&self.tracker.state);
            if st.closed {
                drop(st);
                task.cancel();
                return;
            }
            self.tracker.unsettled.fetch_add(1, Relaxed);
            st.tasks.insert(task.erased(), task.id(), true)
        };
        // Registered after inserting: a task that already finished releases itself now.
        task.add_done_hook(self.tracker.clone(), seq << SHIFT | HELD);
        // Settled once its done callbacks (the user's too) have run, or now if they have.
        if !task.add_settle_hook(self.tracker.clone(), SETTLED) {
            self.tracker.settle();
        }
    }

    /// A task not spawned yet, linked to the holder and held (made before it is spawned,
    /// so it cannot finish before it is held: one state lock, no callback to register);
    /// on a closed holder, cancelled (aborted as soon as it is spawned) and not held.
    /// Either way it is counted as unsettled until it ends, and must be launched.
    fn hold<T: Send + 'static>(
        &self,
        name: Option<&str>,
        abortable: bool,
        report: bool,
    ) -> Task<T> {
        let report = if report { REPORT } else { 0 };
        let hook = self.tracker.clone() as Arc<dyn DoneHook>;
        // Counted before it can settle: it settles once, however it ends.
        self.tracker.unsettled.fetch_add(1, Relaxed);
        let mut st = lock(&self.tracker.state);
        if st.closed {
            drop(st);
            let task = Task::unspawned(name, Link { hook, key: report });
            task.cancel();
            return task;
        }
        let key = st.tasks.next_seq() << SHIFT | HELD | report;
        let task = Task::unspawned(name, Link { hook, key });
        st.tasks.insert(task.erased(), task.id(), abortable);
        task
    }

    /// Makes a held task and spawns `fut` as its future on the holder's context's
    /// runtime (else the current one), waiting for its turn under the limit.
    ///
    /// # Panics
    /// Without a runtime (the task is then finished as cancelled and released).
    #[track_caller]
    fn spawn<T, F>(&self, name: Option<&str>, fut: F, abortable: bool, report: bool) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let task = self.hold(name, abortable, report);
        let handle = self.runtime.as_ref();
        match &self.limit {
            None => task.launch(fut, handle),
            Some(limit) => task.launch(limited(limit.clone(), fut), handle),
        }
        task
    }

    /// Spawns a `!Send` future as a held task on the current `LocalSet`, under the limit.
    #[track_caller]
    fn spawn_local<T, F>(&self, fut: F, report: bool) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let task = self.hold(None, true, report);
        match &self.limit {
            None => task.launch_local(fut),
            Some(limit) => task.launch_local(limited(limit.clone(), fut)),
        }
        task
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
            let mut st = lock(&self.tracker.state);
            st.closed = true;
            st.tasks.abortable()
        };
        for t in tasks {
            t.cancel();
            // Possibly the last handle: its output's `Drop` is user code.
            run_caught("dropping a held task", || drop(t));
        }
    }

    /// Closes the holder if every tracked task has settled.
    fn try_close(&self) -> bool {
        let mut st = lock(&self.tracker.state);
        // Under the state lock: a task counted after this check is rejected by `hold`
        // and `track`.
        let idle = self.tracker.unsettled.load(Acquire) == 0;
        if idle {
            st.closed = true;
        }
        idle
    }

    /// Waits until every tracked task has settled, then closes the holder.
    async fn wait_empty(&self) {
        loop {
            let notified = self.tracker.empty.notified();
            tokio::pin!(notified);
            // Register before checking: a settle between the check and the await is
            // not lost (`notify_waiters` wakes enabled waiters).
            notified.as_mut().enable();
            if self.try_close() {
                return;
            }
            notified.await;
        }
    }
}

/// `fut` after taking its turn under `limit`.
async fn limited<F: Future>(limit: Arc<Semaphore>, fut: F) -> F::Output {
    // The semaphore is never closed, so acquiring cannot fail.
    let _turn = limit.acquire_owned().await;
    fut.await
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
    /// Errors and panics are logged through the holder's context (the seed's default);
    /// [`spawn_silent`](Self::spawn_silent) does not log them. With a
    /// [limit](TaskHolderBuilder::limit) the future waits for its turn before it starts.
    /// On a finished or cancelled holder the task is cancelled at once and not held (its
    /// future is never polled).
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one); nothing stays held.
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner.spawn(None, fut, true, true)
    }

    /// Like [`spawn`](Self::spawn), but failures are not logged (the seed's
    /// `add_coroutine(coro, silent=True)`).
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn spawn_silent<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner.spawn(None, fut, true, false)
    }

    /// Spawns a `!Send` future as a held task on the current
    /// [`LocalSet`](tokio::task::LocalSet) (as `JoinSet::spawn_local`); failures are
    /// logged as with [`spawn`](Self::spawn).
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        self.inner.spawn_local(fut, true)
    }

    /// Like [`spawn_local`](Self::spawn_local), but failures are not logged.
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local_silent<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        self.inner.spawn_local(fut, false)
    }

    /// Spawns `work(ctx)` as a held task named `name`, where `ctx` is a child of the
    /// holder's context named `name` too: for work that shuts down gracefully.
    ///
    /// The holder never aborts it: when the task's context is done (the holder's context
    /// cancelled, its parent finished, the scoped body failed, or the holder was dropped)
    /// the work is expected to notice (e.g. `select!` on `ctx.wait()`), finish what it is
    /// doing, clean up and return, and [`TaskHolder::finish`] waits for that. Work that
    /// ignores `ctx` keeps `finish` waiting. The context is cancelled when the task ends
    /// (however it ends). Failures are logged ([`spawn_scoped_silent`](Self::spawn_scoped_silent)
    /// does not log them); the [limit](TaskHolderBuilder::limit) applies. On a finished or
    /// cancelled holder `work` is not called, and the task is cancelled at once.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn spawn_scoped<T, F, Fut>(&self, name: impl Into<Cow<'static, str>>, work: F) -> Task<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.scoped(name.into(), work, true)
    }

    /// Like [`spawn_scoped`](Self::spawn_scoped), but failures are not logged.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn spawn_scoped_silent<T, F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Task<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.scoped(name.into(), work, false)
    }

    #[track_caller]
    fn scoped<T, F, Fut>(&self, name: Cow<'static, str>, work: F, report: bool) -> Task<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        if self.is_closed() {
            // Do not even start it: it would run on a context that is already done.
            drop(work);
            return self
                .inner
                .spawn(Some(&name), std::future::pending::<T>(), true, report);
        }
        let guard = self.inner.ctx.child(name.clone()).drop_guard();
        let fut = work(guard.ctx().clone());
        let fut = async move {
            let _guard = guard; // cancels the task's context when the task ends
            fut.await
        };
        self.inner.spawn(Some(&name), fut, false, report)
    }

    /// Holds a task spawned elsewhere until it finishes, and returns it (the seed's
    /// `add_task`). Its failures are not logged by the holder.
    pub fn add_task<T: Send + 'static>(&self, task: Task<T>) -> Task<T> {
        self.inner.track(&task);
        task
    }

    /// How many held tasks have not finished. Already 0 inside the done callbacks of
    /// the last one.
    pub fn pending(&self) -> usize {
        lock(&self.inner.tracker.state).tasks.len()
    }

    /// Whether `task` is held: true for a pending task added here (spawned here or given
    /// to `add_task`), false once it finished and was released.
    pub fn contains<T>(&self, task: &Task<T>) -> bool {
        self.contains_id(task.id())
    }

    /// Whether the task with this id is held.
    pub fn contains_id(&self, id: TaskId) -> bool {
        lock(&self.inner.tracker.state).tasks.contains(id)
    }

    /// The held tasks, in the order they were added, as type-erased handles (a snapshot).
    pub fn iter(&self) -> std::vec::IntoIter<AnyTask> {
        lock(&self.inner.tracker.state).tasks.tasks().into_iter()
    }

    /// The next finished task, in completion order, as `JoinSet::join_next` gives it;
    /// `None` once nothing is pending or waiting to be joined.
    ///
    /// Needs a [`joinable`](TaskHolderBuilder::joinable) holder (others forget tasks as
    /// they finish, so this returns `None` at once). The task's output is taken with
    /// [`AnyTask::downcast`] and [`Task::join`]. Several callers each get different tasks.
    ///
    /// # Cancel safety
    /// Cancel safe: a task is taken only in the poll that returns it.
    pub async fn join_next(&self) -> Option<AnyTask> {
        loop {
            let notified = self.inner.tracker.joinable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.inner.tracker.state);
                let idle = st.tasks.is_empty() && self.inner.tracker.unsettled.load(Acquire) == 0;
                let joined = st.joined.as_mut()?;
                if let Some(task) = joined.pop_front() {
                    return Some(task);
                }
                if idle {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The holder's child context (named by [`TaskHolderBuilder::name`]).
    pub fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    /// Whether the holder takes no new work (finished, dropped, or its context is done).
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.tracker.state).closed
    }
}

impl IntoIterator for &TaskHolderHandle {
    type Item = AnyTask;
    type IntoIter = std::vec::IntoIter<AnyTask>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Holds each task (as [`add_task`](TaskHolderHandle::add_task) does).
impl<T: Send + 'static> Extend<Task<T>> for TaskHolderHandle {
    fn extend<I: IntoIterator<Item = Task<T>>>(&mut self, iter: I) {
        for task in iter {
            self.add_task(task);
        }
    }
}

/// Holds each task (as [`add_task`](TaskHolderHandle::add_task) does).
impl<T: Send + 'static> Extend<Task<T>> for TaskHolder {
    fn extend<I: IntoIterator<Item = Task<T>>>(&mut self, iter: I) {
        self.handle.extend(iter);
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
    /// A builder for the `name`, `limit` and `joinable` options.
    pub fn builder(ctx: &Ctx) -> TaskHolderBuilder {
        TaskHolderBuilder {
            ctx: ctx.clone(),
            name: "task_holder".into(),
            limit: None,
            joinable: false,
            fail_fast: false,
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

    /// Waits until every held task has finished and its done callbacks have run,
    /// including tasks added meanwhile (from held tasks or from those callbacks); then the
    /// holder takes no new work. If the holder's context is done (before or during
    /// this), the tasks are cancelled and this returns once each has been dropped.
    ///
    /// # Cancel safety
    /// Dropping the future drops the holder: every task still held is cancelled.
    pub async fn finish(self) {
        self.handle.inner.wait_empty().await;
    }

    /// Only for the loom models: one check of what `finish` waits for; closes the holder
    /// and returns `true` once every tracked task has settled.
    #[cfg(machinery_loom)]
    #[doc(hidden)]
    pub fn model_try_finish(&self) -> bool {
        self.handle.inner.try_close()
    }
}

impl Drop for TaskHolder {
    fn drop(&mut self) {
        self.guard.remove_done_callback(self.on_done);
        self.handle.inner.cancel_all();
        // `guard` drops next and cancels the holder's child context.
    }
}
