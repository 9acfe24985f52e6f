//! [`Task<T>`]: a named spawned task with done callbacks (asyncio's `Task`).
//!
//! A task runs its future on the tokio runtime. It finishes with the future's value, with
//! an error if the future panicked (the panic is caught and becomes
//! [`Panicked`](super::Panicked)), or cancelled.
//!
//! # Cancellation
//! [`Task::cancel`] asks the runtime to drop the future. The task becomes done (cancelled)
//! only after the future has been dropped, so `task.wait().await` after `cancel()`
//! returns once the future's `Drop` cleanup has run.
//!
//! # Drop
//! Dropping a `Task` handle detaches the task: it runs on, and its done callbacks (a
//! reporter, say) still run. `cancel()` and [task holders](super) bound a task's life.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let task = hp::Task::spawn_named("adder", async { 1 + 2 });
//! assert_eq!(task.clone().await.unwrap(), 3);
//! assert_eq!(hp::fut_to_string(&task), "<Future#adder(result)>");
//!
//! let sleeper = hp::Task::spawn(std::future::pending::<()>());
//! assert!(sleeper.cancel());
//! sleeper.wait().await;
//! assert!(sleeper.cancelled());
//! # }
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::completion::{Completion, DoneHook};
use super::debug::{Live, TASKS};
use super::error::{Error, Failure, Outcome, StatusError};
use super::protocols::{
    CallbackHandle, DoneCallback, FutureState, FutureStatus, NamedFuture, WaitByCallback, WithRepr,
};
use super::wait::WaitDone;
use crate::sync::{Mutex, lock};

/// A task's identity: unique per spawned task, stable across clones and erasure.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TaskId(u64);

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

struct Shared<T: 'static> {
    core: Completion<T>,
    abort: Mutex<Option<AbortHandle>>,
    id: TaskId,
    _live: Live<TASKS>,
}

/// A handle to a spawned task. Cloning gives another handle to the same task.
pub struct Task<T: 'static> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Task<T> {
    fn clone(&self) -> Self {
        Task {
            shared: self.shared.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The spawned future: runs the user's future, then stores its outcome. Fields drop
    /// in declaration order, so when the runtime drops an aborted task the user's future
    /// is dropped (its cleanup runs) before `guard` marks the task cancelled.
    struct Body<F: Future>
    where
        F::Output: 'static,
    {
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
        guard: Guard<F::Output>,
    }
}

struct Guard<T: 'static> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        // A no-op when the future finished; otherwise it was dropped unfinished: cancelled.
        self.shared.finish(Err(Failure::Cancelled));
    }
}

impl<F: Future> Future for Body<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                let outcome = r.map_err(|p| Failure::Error(Error::from_panic(p)));
                this.guard.shared.finish(outcome);
                Poll::Ready(())
            }
        }
    }
}

impl<T> Shared<T> {
    fn finish(self: &Arc<Self>, outcome: Outcome<T>) {
        if Completion::complete(self, |s| &s.core, outcome) {
            lock(&self.abort).take();
        }
    }

    fn cancel(&self) -> bool {
        if self.core.done() {
            return false;
        }
        match &*lock(&self.abort) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }
}

impl<T: Send + Sync + 'static> Task<T> {
    /// Spawns `fut` on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn spawn<F>(fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::spawn_on(&Handle::current(), None, fut)
    }

    /// Spawns `fut` on the current runtime under `name`.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn spawn_named<F>(name: &str, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::spawn_on(&Handle::current(), Some(name), fut)
    }

    /// Spawns `fut` on `handle`'s runtime, optionally named.
    pub fn spawn_on<F>(handle: &Handle, name: Option<&str>, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            core: Completion::new(name.map(Arc::from)),
            abort: Mutex::new(None),
            id: TaskId(NEXT_TASK.fetch_add(1, Relaxed)),
            _live: Live::new(),
        });
        let body = Body {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            guard: Guard {
                shared: shared.clone(),
            },
        };
        let join = handle.spawn(body);
        {
            let mut slot = lock(&shared.abort);
            if !shared.core.done() {
                *slot = Some(join.abort_handle());
            }
        }
        Task { shared }
    }
}

impl<T> Task<T> {
    /// This task's identity.
    pub fn id(&self) -> TaskId {
        self.shared.id
    }

    /// Asks the runtime to drop the future; `false` if the task is already done.
    ///
    /// The task is done (cancelled) once the future has been dropped.
    pub fn cancel(&self) -> bool {
        self.shared.cancel()
    }

    /// Whether it has finished. One atomic load.
    pub fn done(&self) -> bool {
        self.shared.core.done()
    }

    /// Whether it finished by being cancelled.
    pub fn cancelled(&self) -> bool {
        self.shared.core.cancelled()
    }

    /// The error it finished with (a panic becomes [`Panicked`](super::Panicked)).
    ///
    /// # Errors
    /// [`StatusError::Pending`] or [`StatusError::Cancelled`].
    pub fn exception(&self) -> Result<Option<Error>, StatusError> {
        self.shared.core.exception()
    }

    /// Its result, cloned.
    ///
    /// # Errors
    /// [`StatusError::Pending`], [`StatusError::Cancelled`], or [`StatusError::Error`].
    pub fn result(&self) -> Result<T, StatusError>
    where
        T: Clone,
    {
        self.shared.core.result()
    }

    /// Its outcome by reference, once finished.
    pub fn outcome(&self) -> Option<&Outcome<T>> {
        self.shared.core.outcome()
    }

    /// Its name, if it has one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.shared.core.name()
    }

    /// Runs `cb` with the outcome once finished (at once if already finished).
    pub fn add_done_callback(
        &self,
        cb: impl FnOnce(&Outcome<T>) + Send + 'static,
    ) -> CallbackHandle {
        Completion::add_callback(&self.shared, |s| &s.core, None, Box::new(cb))
    }

    /// Removes a registration that has not run; returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.shared.core.remove_callback(handle)
    }

    /// Registers `owner.on_done(key)` as a done callback, without allocating.
    pub(crate) fn add_done_hook(&self, owner: Arc<dyn DoneHook>, key: u64) -> CallbackHandle {
        self.shared.core.add_hook(owner, key)
    }

    /// Waits for completion without taking the outcome.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub fn wait(&self) -> WaitDone<&Self>
    where
        T: Send + Sync + 'static,
    {
        WaitDone::new(self)
    }

    /// A type-erased handle, for holding tasks of different output types together.
    pub fn erased(&self) -> AnyTask
    where
        T: Send + Sync + 'static,
    {
        AnyTask {
            inner: self.shared.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> WaitByCallback for Task<T> {
    fn done(&self) -> bool {
        self.shared.core.done()
    }
    fn cancel(&self) -> bool {
        self.shared.cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.shared.core.add_done(cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.shared.core.remove_callback(handle)
    }
}

impl<T: Clone> FutureStatus<T> for Task<T> {
    fn done(&self) -> bool {
        self.shared.core.done()
    }
    fn cancelled(&self) -> bool {
        self.shared.core.cancelled()
    }
    fn exception(&self) -> Result<Option<Error>, StatusError> {
        self.shared.core.exception()
    }
    fn result(&self) -> Result<T, StatusError> {
        self.shared.core.result()
    }
}

impl<T> NamedFuture for Task<T> {
    fn set_future_name(&self, name: &str) {
        self.shared.core.set_name(name);
    }
    fn future_name(&self) -> Option<Arc<str>> {
        self.shared.core.name()
    }
}

impl<T> WithRepr for Task<T> {
    fn future_view(&self) -> Option<(Option<Arc<str>>, FutureState)> {
        Some((self.shared.core.name(), self.shared.core.state()))
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::protocols::fut_to_string(self))
    }
}

/// Awaiting a [`Task`]: resolves to a clone of its outcome.
///
/// # Cancel safety
/// Cancel safe: dropping it leaves the task running and removes its callback.
#[must_use = "futures do nothing unless polled"]
pub struct TaskOutcome<T: Send + Sync + 'static> {
    task: Task<T>,
    wait: WaitDone<Task<T>>,
}

impl<T: Send + Sync + 'static> fmt::Debug for TaskOutcome<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskOutcome").field(&self.task).finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Future for TaskOutcome<T> {
    type Output = Outcome<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        match Pin::new(&mut self.wait).poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.task.outcome().expect("done").clone()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> IntoFuture for Task<T> {
    type Output = Outcome<T>;
    type IntoFuture = TaskOutcome<T>;
    fn into_future(self) -> TaskOutcome<T> {
        TaskOutcome {
            wait: WaitDone::new(self.clone()),
            task: self,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> IntoFuture for &Task<T> {
    type Output = Outcome<T>;
    type IntoFuture = TaskOutcome<T>;
    fn into_future(self) -> TaskOutcome<T> {
        self.clone().into_future()
    }
}

/// What [`AnyTask`] needs from a task of any output type.
trait Erased: Send + Sync {
    fn done(&self) -> bool;
    fn cancel(&self) -> bool;
    fn add_callback(&self, cb: DoneCallback) -> CallbackHandle;
    fn remove_callback(&self, handle: CallbackHandle) -> usize;
    fn id(&self) -> TaskId;
    fn view(&self) -> (Option<Arc<str>>, FutureState);
    fn failure(&self) -> Option<Failure>;
}

impl<T: Send + Sync + 'static> Erased for Shared<T> {
    fn done(&self) -> bool {
        self.core.done()
    }
    fn cancel(&self) -> bool {
        Shared::cancel(self)
    }
    fn add_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.core.add_done(cb)
    }
    fn remove_callback(&self, handle: CallbackHandle) -> usize {
        self.core.remove_callback(handle)
    }
    fn id(&self) -> TaskId {
        self.id
    }
    fn view(&self) -> (Option<Arc<str>>, FutureState) {
        (self.core.name(), self.core.state())
    }
    fn failure(&self) -> Option<Failure> {
        self.core.outcome().and_then(|o| o.as_ref().err().cloned())
    }
}

/// A type-erased, cloneable task handle: what task holders iterate over.
#[derive(Clone)]
pub struct AnyTask {
    inner: Arc<dyn Erased>,
}

impl AnyTask {
    /// The task's identity (equal to [`Task::id`] of the typed handle).
    pub fn id(&self) -> TaskId {
        self.inner.id()
    }
    /// Whether the task has finished.
    pub fn done(&self) -> bool {
        self.inner.done()
    }
    /// Whether it finished by being cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(self.inner.failure(), Some(Failure::Cancelled))
    }
    /// Asks the runtime to drop the task's future; `false` if already done.
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }
    /// How it failed, if it finished without a result.
    pub fn failure(&self) -> Option<Failure> {
        self.inner.failure()
    }
    /// Its name, if it has one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.inner.view().0
    }
    /// Waits for completion.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub fn wait(&self) -> WaitDone<&Self> {
        WaitDone::new(self)
    }
}

impl WaitByCallback for AnyTask {
    fn done(&self) -> bool {
        self.inner.done()
    }
    fn cancel(&self) -> bool {
        self.inner.cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.inner.add_callback(cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.inner.remove_callback(handle)
    }
}

impl WithRepr for AnyTask {
    fn future_view(&self) -> Option<(Option<Arc<str>>, FutureState)> {
        Some(self.inner.view())
    }
}

impl fmt::Debug for AnyTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::protocols::fut_to_string(self))
    }
}

impl<T: Send + Sync + 'static> From<Task<T>> for AnyTask {
    fn from(t: Task<T>) -> Self {
        t.erased()
    }
}

impl<T: Send + Sync + 'static> From<&Task<T>> for AnyTask {
    fn from(t: &Task<T>) -> Self {
        t.erased()
    }
}
