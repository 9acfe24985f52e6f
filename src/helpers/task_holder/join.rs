//! Joining: the finished tasks of a joinable holder in completion order, and
//! [`JoinHolder<T>`], a joinable holder of one output type that gives outputs directly
//! (tokio's `JoinSet<T>`).

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::pin;
use std::task::{Poll, ready};

use tokio::task::coop;

use super::{Inner, Refused, TaskHolder, TaskHolderBuilder, TaskHolderHandle};
use crate::helpers::ctx::Ctx;
use crate::helpers::error::Outcome;
use crate::helpers::task::{AnyTask, Task, TaskId};
use crate::sync::lock;

/// What the joined queue has for a joiner.
enum Next {
    Task(AnyTask),
    /// Nothing pending, nothing to join (or the holder is not joinable).
    End,
    /// Tasks are still pending (or settling).
    Wait,
}

impl Inner {
    fn next_joined(&self) -> Next {
        let mut st = lock(&self.tracker.state);
        // Acquire: pairs with the AcqRel decrement in `settle`.
        let idle = st.tasks.is_empty() && self.tracker.unsettled.is_zero();
        let Some(joined) = st.joined.as_mut() else {
            return Next::End;
        };
        match joined.pop_front() {
            Some(task) => Next::Task(task),
            None if idle => Next::End,
            None => Next::Wait,
        }
    }

    pub(super) fn try_join_next(&self) -> Option<AnyTask> {
        match self.next_joined() {
            Next::Task(task) => Some(task),
            Next::End | Next::Wait => None,
        }
    }

    /// The next finished task; consumes a unit of tokio's coop budget per task taken,
    /// and yields (returns `Pending`, woken at once) when the budget is spent.
    pub(super) async fn join_next(&self) -> Option<AnyTask> {
        let mut notified = pin!(self.tracker.joinable.notified());
        poll_fn(|cx| {
            // Before taking anything: a task is taken only in a poll that returns it.
            let coop = ready!(coop::poll_proceed(cx));
            loop {
                // Register before checking: a release between the check and the poll
                // is not lost (`notify_waiters` wakes enabled waiters).
                notified.as_mut().enable();
                match self.next_joined() {
                    Next::Task(task) => {
                        coop.made_progress();
                        return Poll::Ready(Some(task));
                    }
                    Next::End => return Poll::Ready(None),
                    Next::Wait => {}
                }
                ready!(notified.as_mut().poll(cx));
                notified.set(self.tracker.joinable.notified());
            }
        })
        .await
    }
}

/// A joinable holder of tasks that all output a `T`: [`join_next`](JoinHolderHandle::join_next)
/// gives their outputs in completion order, as tokio's `JoinSet<T>` does. Made by [`join_holder`] or
/// [`TaskHolderBuilder::build_joinable`] (with a name or a limit).
///
/// Everything else is a [`TaskHolder`]'s: finished tasks wait for `join_next` (they are
/// no longer pending, held or iterated), a done context cancels what is held, work added
/// after the holder closed comes out of `join_next` cancelled (or back through the `try_`
/// forms). Use the untyped [`joinable`](TaskHolderBuilder::joinable) holder for tasks of
/// mixed output types.
///
/// Derefs to [`JoinHolderHandle<T>`] for adding and joining.
///
/// # Drop
/// As a [`TaskHolder`]: cancels every task still held and the holder's child context;
/// finished tasks not yet joined are dropped with the holder's last handle. An output
/// that itself holds a handle to this holder (a [`JoinHolderHandle`]) keeps the joined
/// queue alive: a reference cycle the program made, never dropped until it is joined
/// (docs/RELIABILITY.md, "Documented hazards"). Join such outputs, or keep a weak link.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
/// use std::time::Duration;
/// use tokio::time::sleep;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let js = hp::join_holder::<u64>(&ctx);
/// for (name, secs) in [("slow", 3), ("fast", 1)] {
///     js.spawn_scoped(name, move |_ctx| async move {
///         sleep(Duration::from_secs(secs)).await;
///         secs
///     });
/// }
/// assert_eq!(js.len(), 2);
/// let mut seen = Vec::new();
/// while let Some(task) = js.join_next_task().await {
///     // The finished task: its id and name, and its output still to take.
///     let name = task.name().unwrap().to_string();
///     seen.push((name, task.try_join().unwrap().unwrap()));
/// }
/// assert_eq!(seen, [("fast".to_owned(), 1), ("slow".to_owned(), 3)]);
/// assert!(js.is_empty());
/// # }
/// ```
pub struct JoinHolder<T> {
    handle: JoinHolderHandle<T>,
    holder: TaskHolder,
}

/// A joinable holder on `ctx` for tasks that output a `T`; see [`JoinHolder`].
///
/// # Panics
/// Adding work needs a tokio runtime (the context's, or the current one).
pub fn join_holder<T: Send + 'static>(ctx: &Ctx) -> JoinHolder<T> {
    TaskHolder::builder(ctx).build_joinable()
}

impl TaskHolderBuilder {
    /// Builds a [`JoinHolder<T>`]: a [`joinable`](Self::joinable) holder of tasks that
    /// all output a `T`, whose `join_next` gives the outputs.
    pub fn build_joinable<T: Send + 'static>(self) -> JoinHolder<T> {
        let holder = self.joinable().build();
        JoinHolder {
            handle: JoinHolderHandle {
                handle: holder.handle(),
                _output: PhantomData,
            },
            holder,
        }
    }
}

impl<T> fmt::Debug for JoinHolder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.holder, f)
    }
}

impl<T> std::ops::Deref for JoinHolder<T> {
    type Target = JoinHolderHandle<T>;
    fn deref(&self) -> &JoinHolderHandle<T> {
        &self.handle
    }
}

impl<T: Send + 'static> JoinHolder<T> {
    /// A cloneable handle for adding and joining from elsewhere (inside held tasks, say).
    pub fn handle(&self) -> JoinHolderHandle<T> {
        self.handle.clone()
    }

    /// Cancels the holder's context and every held plain task; see
    /// [`TaskHolder::cancel_all`].
    pub fn cancel_all(&self) {
        self.holder.cancel_all();
    }

    /// Waits until every held task has finished; see [`TaskHolder::finish`]. Finished
    /// tasks stay for `join_next` on a [handle](Self::handle).
    ///
    /// # Cancel safety
    /// Dropping the future drops the holder: every task still held is cancelled.
    pub async fn finish(self) {
        self.holder.finish().await;
    }
}

/// A cloneable handle to a [`JoinHolder<T>`]: adds tasks that output a `T` and joins
/// them. It does not keep the holder open (work added after the holder finished or was
/// dropped is refused).
pub struct JoinHolderHandle<T> {
    handle: TaskHolderHandle,
    _output: PhantomData<fn() -> T>,
}

impl<T> Clone for JoinHolderHandle<T> {
    fn clone(&self) -> Self {
        JoinHolderHandle {
            handle: self.handle.clone(),
            _output: PhantomData,
        }
    }
}

impl<T> fmt::Debug for JoinHolderHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHolder")
            .field("ctx", &self.handle.ctx().name())
            .field("len", &self.handle.len())
            .finish()
    }
}

/// The typed handle of a task this holder was given (only `T` tasks go in).
fn typed<T: Send + 'static>(task: AnyTask) -> Task<T> {
    task.downcast()
        .unwrap_or_else(|_| unreachable!("a JoinHolder<T> holds only tasks that output a T"))
}

/// A joined task's outcome (it has finished: the joined queue holds only finished tasks).
fn outcome<T: Send + 'static>(task: &Task<T>) -> Outcome<T> {
    task.try_join()
        .unwrap_or_else(|| unreachable!("a joined task has finished"))
}

impl<T: Send + 'static> JoinHolderHandle<T> {
    /// The untyped handle (for reading, never for adding tasks of another type).
    pub(super) fn untyped(&self) -> &TaskHolderHandle {
        &self.handle
    }

    /// Spawns `fut`; see [`TaskHolderHandle::spawn`] (refused work included).
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Spawns `fut` without logging failures; see [`TaskHolderHandle::spawn_silent`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_silent<F>(&self, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.handle.spawn_silent(fut)
    }

    /// Spawns `fut`, or gives it back on a closed holder; see
    /// [`TaskHolderHandle::try_spawn`].
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn try_spawn<F>(&self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.handle.try_spawn(fut)
    }

    /// Spawns a `!Send` future in the current `LocalSet`; see
    /// [`TaskHolderHandle::spawn_local`].
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local<F>(&self, fut: F) -> Task<T>
    where
        F: Future<Output = T> + 'static,
    {
        self.handle.spawn_local(fut)
    }

    /// Spawns a `!Send` future, or gives it back on a closed holder; see
    /// [`TaskHolderHandle::try_spawn_local`].
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn try_spawn_local<F>(&self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        F: Future<Output = T> + 'static,
    {
        self.handle.try_spawn_local(fut)
    }

    /// Spawns `work(ctx)` on its own child context; see [`TaskHolderHandle::spawn_scoped`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_scoped<F, Fut>(&self, name: impl Into<Cow<'static, str>>, work: F) -> Task<T>
    where
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.handle.spawn_scoped(name, work)
    }

    /// Spawns `work(ctx)`, or gives `work` back uncalled on a closed holder; see
    /// [`TaskHolderHandle::try_spawn_scoped`].
    ///
    /// # Errors
    /// [`Refused`] holding `work` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn try_spawn_scoped<F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Task<T>, Refused<F>>
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.handle.try_spawn_scoped(name, work)
    }

    /// Holds a task spawned elsewhere; see [`TaskHolderHandle::add_task`].
    pub fn add_task(&self, task: Task<T>) -> Task<T> {
        self.handle.add_task(task)
    }

    /// Holds a task spawned elsewhere, or gives it back untouched on a closed holder;
    /// see [`TaskHolderHandle::try_add_task`].
    ///
    /// # Errors
    /// [`Refused`] holding the task when the holder has finished or its context is done.
    pub fn try_add_task(&self, task: Task<T>) -> Result<Task<T>, Refused<Task<T>>> {
        self.handle.try_add_task(task)
    }

    /// The output of the next task to finish, in completion order (`JoinSet::join_next`):
    /// `Ok(value)`, or `Err` with how it failed (cancelled, an error, a panic as
    /// [`Panicked`](crate::helpers::Panicked), or [`OutputTaken`](crate::helpers::OutputTaken)
    /// if its `Task` handle was joined already). `None` once nothing is pending or
    /// waiting to be joined. Work the holder refused comes out as cancelled.
    ///
    /// Takes part in tokio's cooperative budget, as `JoinSet::join_next` does.
    ///
    /// # Cancel safety
    /// Cancel safe: a task is taken only in the poll that returns it.
    pub async fn join_next(&self) -> Option<Outcome<T>> {
        let task = self.join_next_task().await?;
        Some(outcome(&task))
    }

    /// Like [`join_next`](Self::join_next), with the task's id
    /// (`JoinSet::join_next_with_id`).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn join_next_with_id(&self) -> Option<(TaskId, Outcome<T>)> {
        let task = self.join_next_task().await?;
        Some((task.id(), outcome(&task)))
    }

    /// The next task to finish, its output not taken yet: its id, name and output
    /// ([`Task::try_join`] gives it at once).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn join_next_task(&self) -> Option<Task<T>> {
        self.handle.join_next().await.map(typed)
    }

    /// The output of a finished task waiting to be joined, without waiting
    /// (`JoinSet::try_join_next`); `None` also while tasks are still running.
    pub fn try_join_next(&self) -> Option<Outcome<T>> {
        let task = self.try_join_next_task()?;
        Some(outcome(&task))
    }

    /// Like [`try_join_next`](Self::try_join_next), with the task's id.
    pub fn try_join_next_with_id(&self) -> Option<(TaskId, Outcome<T>)> {
        let task = self.try_join_next_task()?;
        Some((task.id(), outcome(&task)))
    }

    /// A finished task waiting to be joined, without waiting.
    pub fn try_join_next_task(&self) -> Option<Task<T>> {
        self.handle.try_join_next().map(typed)
    }

    /// Pending tasks plus finished ones not yet joined (`JoinSet::len`).
    pub fn len(&self) -> usize {
        self.handle.len()
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.handle.is_empty()
    }

    /// How many held tasks have not finished.
    pub fn pending(&self) -> usize {
        self.handle.pending()
    }

    /// Whether `task` is held (pending); see [`TaskHolderHandle::contains`].
    pub fn contains(&self, task: &Task<T>) -> bool {
        self.handle.contains(task)
    }

    /// The pending tasks, in the order they were added (a snapshot).
    pub fn iter(&self) -> impl Iterator<Item = Task<T>> + use<T> {
        self.handle.iter().map(typed)
    }

    /// The holder's child context.
    pub fn ctx(&self) -> &Ctx {
        self.handle.ctx()
    }

    /// Whether the holder takes no new work (finished, dropped, or its context is done).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}
