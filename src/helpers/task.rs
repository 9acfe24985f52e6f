//! [`Task<T>`]: a named spawned task with done callbacks (asyncio's `Task`).
//!
//! A task runs its future on the tokio runtime. It finishes with the future's value, with
//! an error if the future panicked (the panic is caught and becomes
//! [`Panicked`](super::Panicked)), or cancelled.
//!
//! # Output
//! The output belongs to whoever joins the task, as with a `JoinHandle`:
//! [`Task::join`] (or awaiting the task) gives it by value, so any `T: Send + 'static` can
//! be a task's output (an `io::Result<()>`, a socket, a `Vec` too big to copy). A task
//! handle is cloneable; the first join takes the output and later ones get
//! [`OutputTaken`]. For an output that is `Clone`, [`Task::result`] reads a clone without
//! taking it, as asyncio's `Task.result()` does.
//!
//! Done callbacks see how the task finished ([`Outcome<()>`](super::Outcome): a result or
//! the failure), not the output itself, which stays for the joiner.
//!
//! # Cancellation
//! [`Task::cancel`] asks the runtime to drop the future. The task becomes done (cancelled)
//! only after the future has been dropped, so `task.wait().await` after `cancel()`
//! returns once the future's `Drop` cleanup has run. A future that completes is likewise
//! dropped before the task is done: whatever its `Drop` does (adding work to a
//! [task holder](mod@super::task_holder), say) happens before anyone sees the task finished.
//!
//! # Drop
//! Dropping a `Task` handle detaches the task: it runs on, and its done callbacks (a
//! reporter, say) still run. `cancel()` and [task holders](super) bound a task's life.
//! An output nobody joined is dropped with the last handle.
//!
//! # Equality
//! Two handles are equal when they are handles to one task (`PartialEq`, `Eq` and `Hash` by
//! identity, as [`TaskId`]).
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let task = hp::Task::spawn_named("adder", async { 1 + 2 });
//! task.wait().await;
//! assert_eq!(hp::fut_to_string(&task), "<Future#adder(result)>");
//! assert_eq!(task.result().unwrap(), 3); // a clone: the output stays
//! assert_eq!(task.join().await.unwrap(), 3); // by value
//!
//! // Outputs need not be `Clone` or `Sync`.
//! let io = hp::Task::spawn(async { std::io::Result::Ok(std::cell::Cell::new(5)) });
//! assert_eq!(io.await.unwrap().unwrap().get(), 5);
//!
//! let sleeper = hp::Task::spawn(std::future::pending::<()>());
//! assert!(sleeper.cancel());
//! sleeper.wait().await;
//! assert!(sleeper.cancelled());
//! # }
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::callbacks::{self, Enter, run_caught};
use super::completion::{Completion, DoneHook, run_callbacks};
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

/// The error a join gets when another join already took the task's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task's output was already taken by another join")]
pub struct OutputTaken;

/// Where the output waits for its joiner.
enum Output<T> {
    Pending,
    Ready(T),
    Taken,
}

/// A spawner's hook on a task, given when the task is made (a task holder's
/// bookkeeping: no done callback to register, nothing allocated for it):
/// `hook.on_done(key, failure)` once the task is done, before its done callbacks run,
/// then `hook.on_done(key | SETTLED, None)` once they all have.
pub(crate) struct Link {
    pub(crate) hook: Arc<dyn DoneHook>,
    pub(crate) key: u64,
}

/// The bit a [`Link`]'s hook (and a settle hook a holder registers) finds in its key
/// once every done callback of the task has run.
pub(crate) const SETTLED: u64 = 1 << 63;

/// Settle hooks added by a holder's `add_task`, told once the task's done callbacks
/// have all run (a task holder's "settled"), after the link's. Boxed: most tasks have none.
type SettleHooks = Option<Box<Vec<(Arc<dyn DoneHook>, u64)>>>;

/// Where the task stands for `cancel`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not spawned yet (a holder holds a task before it spawns it, so that the task
    /// cannot finish before it is held).
    Unspawned,
    /// Cancelled before it was spawned: aborted as soon as it is.
    CancelledUnspawned,
    /// Running: `abort` holds its join handle.
    Running,
    /// Finishing or finished.
    Gone,
}

/// A task's mutable state, under one lock: the output, the abort handle, the link and
/// the settle hooks. Kept small: a task's shared state is its memory while it is held.
struct Control<T> {
    output: Output<T>,
    /// How the body failed (it panicked), parked until the task is marked done. Boxed:
    /// rare, and a `Failure` inline would make every task's state two words bigger.
    failed: Option<Box<Failure>>,
    stage: Stage,
    /// The done callbacks have run: a settle hook added now is told by its caller.
    settled: bool,
    /// The join handle while running (kept rather than an `AbortHandle`: one reference
    /// count less to take and drop per task).
    abort: Option<JoinHandle<()>>,
    link: Option<Link>,
    settle: SettleHooks,
}

struct Shared<T: 'static> {
    /// How it finished (the output itself sits in `output`), and the done callbacks.
    core: Completion<()>,
    control: Mutex<Control<T>>,
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

impl<T> PartialEq for Task<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Eq for Task<T> {}

impl<T> Hash for Task<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state);
    }
}

pin_project_lite::pin_project! {
    /// The spawned future. Its user's future is dropped (its cleanup ran) before the task
    /// is done, however it ends: on completion the outcome is parked in the task's output
    /// slot and `running` is dropped (the future, then `guard`, which finishes the task
    /// with the parked outcome); when the runtime drops an aborted task, fields drop in
    /// declaration order, `fut` before `guard`, which finds nothing parked: cancelled.
    /// (One `Option` around both keeps the body as small as the future plus a pointer,
    /// the guard's pointer giving `None` its value: tokio's task cell grows in steps of
    /// 128 bytes, and an `Option` around the future alone, or around the guard, costs a
    /// word more, which for a small future is 128 bytes more per task.)
    struct Body<F: Future>
    where
        F::Output: 'static,
    {
        #[pin]
        running: Option<Running<F>>,
    }
}

pin_project_lite::pin_project! {
    struct Running<F: Future>
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

impl<T: 'static> Drop for Guard<T> {
    fn drop(&mut self) {
        // The outcome parked by `Body::poll`, or cancelled: the future was dropped unfinished.
        self.shared.finish_parked();
    }
}

impl<F: Future> Future for Body<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut running = self.project().running;
        let Some(this) = running.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let this = this.project();
        match this.fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                this.guard
                    .shared
                    .park(r.map_err(|p| Failure::Error(Error::from_panic(p))));
                // Drops the finished future (user code: it may add work to a holder, so
                // it runs before the task is done; a panic in it is caught and logged,
                // the outcome stands), then the guard, which finishes the task.
                run_caught("dropping a finished task's future", || running.set(None));
                Poll::Ready(())
            }
        }
    }
}

impl<T: 'static> Shared<T> {
    fn new(name: Option<&str>, link: Option<Link>) -> Self {
        Shared {
            core: Completion::new(name.map(Arc::from)),
            control: Mutex::new(Control {
                output: Output::Pending,
                failed: None,
                stage: Stage::Unspawned,
                settled: false,
                abort: None,
                link,
                settle: None,
            }),
            id: TaskId(NEXT_TASK.fetch_add(1, Relaxed)),
            _live: Live::new(),
        }
    }

    /// Parks the body's outcome until the finished future has been dropped.
    fn park(&self, outcome: Outcome<T>) {
        // Replaces `Pending`: nothing of the user's is dropped under the lock.
        let mut control = lock(&self.control);
        match outcome {
            Ok(value) => control.output = Output::Ready(value),
            Err(f) => control.failed = Some(Box::new(f)),
        }
    }

    /// Marks the task done with the parked outcome (cancelled if none was parked), tells
    /// its link, runs its done callbacks, then tells the settle hooks: a holder counts the
    /// task as finished only after its callbacks ran, so work they add is still waited for.
    fn finish_parked(self: &Arc<Self>) {
        if self.core.done() {
            return; // only the body's guard finishes a task, and only once
        }
        let (status, link, abort) = {
            let mut control = lock(&self.control);
            let failed = control.failed.take();
            let status = match (&control.output, failed) {
                (_, Some(f)) => Err(*f),
                (Output::Ready(_), None) => Ok(()),
                (Output::Pending | Output::Taken, None) => Err(Failure::Cancelled),
            };
            control.stage = Stage::Gone;
            (status, control.link.take(), control.abort.take())
        };
        drop(abort);
        self.finish(status, link);
    }

    /// Marks the task done with `status`, tells the link, runs the done callbacks, then
    /// the settle hooks (the link's first).
    ///
    /// When this finish happens inside other finishing work on this thread (CTX rule 3),
    /// the link and the done callbacks are queued for the outermost finishing call, and
    /// the settle hooks are queued from there to run once that call's queue is empty, so
    /// a holder counts the task as settled only after its callbacks ran and everything
    /// they queued, at every level (a callback completing a future whose callback
    /// completes another, whose callback adds work to the holder). As the
    /// outermost call, the link and the callbacks run inline, then what they queued, then
    /// the settle hooks, all under one trampoline entry (a held task finishes on this
    /// path).
    fn finish(self: &Arc<Self>, status: Outcome<()>, link: Option<Link>) {
        let Some(done_callbacks) = self.core.set_outcome(status) else {
            return;
        };
        if done_callbacks.len() == 0 && link.is_none() {
            // A bare task nobody waits on: only settle hooks added by a holder's `add_task`.
            let hooks = self.take_settle();
            if hooks.is_some() {
                callbacks::run_or_defer(move || tell_settled(None, hooks));
            }
            return;
        }
        match callbacks::enter() {
            Enter::Nested => {
                let this = self.clone();
                callbacks::defer(Box::new(move || {
                    this.tell_link(link.as_ref());
                    if done_callbacks.len() > 0 {
                        run_callbacks(&this.core, done_callbacks);
                    }
                    // Behind all the callbacks queued, at every level: this job runs
                    // inside the outermost call's loop, so `defer_last` waits for
                    // that loop's queue to run empty.
                    callbacks::defer_last(Box::new(move || {
                        let hooks = this.take_settle();
                        tell_settled(link, hooks);
                    }));
                }));
            }
            Enter::Outermost(drain) => {
                self.tell_link(link.as_ref());
                if done_callbacks.len() > 0 {
                    run_callbacks(&self.core, done_callbacks);
                    drain.run_queued(); // what the callbacks queued, before settling
                }
                tell_settled(link, self.take_settle());
                // Dropping `drain` runs what the settle hooks queued.
            }
        }
    }

    /// Tells the link that the task is done, with its failure if any.
    fn tell_link(&self, link: Option<&Link>) {
        if let Some(link) = link {
            let failure = self.core.outcome().and_then(|o| o.as_ref().err());
            run_caught("task holder bookkeeping", || {
                link.hook.on_done(link.key, failure);
            });
        }
    }

    /// The done callbacks have run: takes the settle hooks (a hook added from now on is
    /// told by its caller).
    #[inline]
    fn take_settle(&self) -> SettleHooks {
        let mut control = lock(&self.control);
        control.settled = true;
        control.settle.take()
    }

    fn cancel(&self) -> bool {
        if self.core.done() {
            return false;
        }
        let mut control = lock(&self.control);
        match control.stage {
            Stage::Running => {
                if let Some(h) = &control.abort {
                    h.abort();
                }
                true
            }
            Stage::Unspawned | Stage::CancelledUnspawned => {
                control.stage = Stage::CancelledUnspawned;
                true
            }
            Stage::Gone => false,
        }
    }

    fn add_settle_hook(&self, owner: Arc<dyn DoneHook>, key: u64) -> bool {
        let mut control = lock(&self.control);
        if control.settled {
            return false;
        }
        control
            .settle
            .get_or_insert_with(Box::default)
            .push((owner, key));
        true
    }

    /// Takes the output if the task finished with one.
    fn take(&self) -> Option<Outcome<T>> {
        match self.core.outcome()? {
            Err(f) => Some(Err(f.clone())),
            Ok(()) => {
                let out = std::mem::replace(&mut lock(&self.control).output, Output::Taken);
                Some(match out {
                    Output::Ready(v) => Ok(v),
                    Output::Pending | Output::Taken => Err(Failure::Error(Error::new(OutputTaken))),
                })
            }
        }
    }
}

/// Tells one settle hook (our own holders' code; caught all the same).
fn settled(owner: &Arc<dyn DoneHook>, key: u64) {
    run_caught("task holder bookkeeping", || owner.on_done(key, None));
}

/// Tells the link's settle, then each settle hook in registration order.
fn tell_settled(link: Option<Link>, hooks: SettleHooks) {
    if let Some(link) = link {
        settled(&link.hook, link.key | SETTLED);
    }
    if let Some(hooks) = hooks {
        for (owner, key) in *hooks {
            settled(&owner, key);
        }
    }
}

impl<T: Send + 'static> Task<T> {
    /// Spawns `fut` on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[track_caller]
    pub fn spawn<F>(fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::start(None, fut, tokio::spawn)
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
        Self::start(Some(name), fut, tokio::spawn)
    }

    /// A task that is not spawned yet, with `link` told when it finishes: a holder
    /// holds it first, then spawns its future with [`launch`](Self::launch) or
    /// [`launch_local`](Self::launch_local), so it cannot finish before it is held.
    /// Cancelled before it is spawned, it is aborted as soon as it is.
    ///
    /// A task that is never launched never finishes: launch each one (a launch that
    /// panics, without a runtime, finishes the task as cancelled).
    pub(crate) fn unspawned(name: Option<&str>, link: Link) -> Task<T> {
        Task {
            shared: Arc::new(Shared::new(name, Some(link))),
        }
    }

    /// A task that is never spawned: what a holder that refuses work returns. It must
    /// be finished with [`finish_refused`](Self::finish_refused), after the refused work
    /// was dropped (as a task's future is dropped before the task is done).
    pub(crate) fn refused(name: Option<&str>) -> Task<T> {
        let shared = Arc::new(Shared::new(name, None));
        lock(&shared.control).stage = Stage::Gone;
        Task { shared }
    }

    /// Finishes a task made by [`refused`](Self::refused) as cancelled: its done
    /// callbacks run now (or, nested in finishing work, before the outermost finishing
    /// call returns, CTX 3).
    pub(crate) fn finish_refused(&self) {
        self.shared.finish(Err(Failure::Cancelled), None);
    }

    /// Spawns the future of a task made by [`unspawned`](Self::unspawned) on the current
    /// runtime, or on `handle`'s when given.
    ///
    /// # Panics
    /// Without a runtime (the task is then finished as cancelled).
    #[track_caller]
    pub(crate) fn launch<F>(&self, fut: F, handle: Option<&Handle>)
    where
        F: Future<Output = T> + Send + 'static,
    {
        match handle {
            Some(handle) => self.launch_with(fut, |body| handle.spawn(body)),
            None => self.launch_with(fut, tokio::spawn),
        }
    }

    /// Spawns the `!Send` future of a task made by [`unspawned`](Self::unspawned) on the
    /// current `LocalSet`.
    ///
    /// # Panics
    /// Outside a `LocalSet` (the task is then finished as cancelled).
    #[track_caller]
    pub(crate) fn launch_local<F>(&self, fut: F)
    where
        F: Future<Output = T> + 'static,
    {
        self.launch_with(fut, tokio::task::spawn_local);
    }

    /// Spawns `fut` on `handle`'s runtime.
    pub fn spawn_on<F>(fut: F, handle: &Handle) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::start(None, fut, |body| handle.spawn(body))
    }

    /// Spawns `fut` on `handle`'s runtime under `name`.
    pub fn spawn_named_on<F>(name: &str, fut: F, handle: &Handle) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::start(Some(name), fut, |body| handle.spawn(body))
    }

    /// Spawns a `!Send` future on the current [`LocalSet`](tokio::task::LocalSet), as
    /// `tokio::task::spawn_local` does.
    ///
    /// # Panics
    /// Outside a `LocalSet`, as `tokio::task::spawn_local` does.
    #[track_caller]
    pub fn spawn_local<F>(fut: F) -> Task<T>
    where
        F: Future<Output = T> + 'static,
    {
        Self::start(None, fut, tokio::task::spawn_local)
    }

    /// Like [`Task::spawn_local`], under `name`.
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local_named<F>(name: &str, fut: F) -> Task<T>
    where
        F: Future<Output = T> + 'static,
    {
        Self::start(Some(name), fut, tokio::task::spawn_local)
    }

    #[track_caller]
    fn start<F, S>(name: Option<&str>, fut: F, spawn: S) -> Task<T>
    where
        F: Future<Output = T> + 'static,
        S: FnOnce(Body<F>) -> JoinHandle<()>,
    {
        let task = Task {
            shared: Arc::new(Shared::new(name, None)),
        };
        task.launch_with(fut, spawn);
        task
    }

    /// Spawns the task's body with `spawn` and keeps its join handle for `cancel` (or
    /// aborts it at once when the task was cancelled before it was spawned).
    ///
    /// If `spawn` panics (no runtime), it has dropped the body: the body's guard finished
    /// the task as cancelled (its link and hooks were told), and the panic goes on.
    #[track_caller]
    fn launch_with<F, S>(&self, fut: F, spawn: S)
    where
        F: Future<Output = T> + 'static,
        S: FnOnce(Body<F>) -> JoinHandle<()>,
    {
        let shared = &self.shared;
        let body = Body {
            running: Some(Running {
                fut: AssertUnwindSafe(fut).catch_unwind(),
                guard: Guard {
                    shared: shared.clone(),
                },
            }),
        };
        let join = spawn(body);
        let mut control = lock(&shared.control);
        match control.stage {
            Stage::Unspawned => {}
            Stage::CancelledUnspawned => join.abort(),
            // It finished already: `join` is dropped (after unlocking).
            Stage::Running | Stage::Gone => return,
        }
        control.stage = Stage::Running;
        control.abort = Some(join);
    }
}

/// Only for the loom models: a task with no runtime, finished by hand.
#[cfg(machinery_loom)]
#[doc(hidden)]
impl<T: Send + 'static> Task<T> {
    pub fn model_pending() -> Task<T> {
        Task {
            shared: Arc::new(Shared::new(None, None)),
        }
    }

    pub fn model_finish(&self, outcome: Outcome<T>) {
        self.shared.park(outcome);
        self.shared.finish_parked();
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

    /// How it failed, if it finished without an output (`None` while pending or after a
    /// result).
    pub fn failure(&self) -> Option<Failure> {
        self.shared.core.outcome()?.as_ref().err().cloned()
    }

    /// Its output, cloned; the output stays for [`Task::join`].
    ///
    /// `T::clone` runs under this task's own state lock, so a `Clone` impl must not call
    /// back into this same task (join, read, cancel or register on it).
    ///
    /// # Errors
    /// [`StatusError::Pending`], [`StatusError::Cancelled`], or [`StatusError::Error`]
    /// (its failure, or [`OutputTaken`] once a join took the output).
    pub fn result(&self) -> Result<T, StatusError>
    where
        T: Clone,
    {
        match self.shared.core.outcome() {
            None => Err(StatusError::Pending),
            Some(Err(f)) => Err(f.clone().into()),
            Some(Ok(())) => match &lock(&self.shared.control).output {
                Output::Ready(v) => Ok(v.clone()),
                Output::Pending | Output::Taken => Err(StatusError::Error(Error::new(OutputTaken))),
            },
        }
    }

    /// Waits for the task and takes its output by value, as awaiting a `JoinHandle` does.
    ///
    /// Gives the failure if it failed or was cancelled, and [`OutputTaken`] (as an
    /// error) if another join already took the output.
    ///
    /// # Cancel safety
    /// Cancel safe: the output is taken only in the poll that returns it.
    pub fn join(&self) -> TaskJoin<T>
    where
        T: Send + 'static,
    {
        TaskJoin {
            wait: WaitDone::new(self.clone()),
        }
    }

    /// Takes the output if the task has finished; `None` while it runs. See [`Task::join`].
    pub fn try_join(&self) -> Option<Outcome<T>> {
        self.shared.take()
    }

    /// Its name, if it has one.
    pub fn name(&self) -> Option<Arc<str>> {
        self.shared.core.name()
    }

    /// Runs `cb` with how the task finished once it has (at once if it already has).
    ///
    /// The callback sees the result or failure but not the output, which stays for
    /// [`Task::join`]. Callbacks run in registration order on the thread that finished
    /// the task, outside every lock; a panicking one is caught and logged.
    pub fn add_done_callback(
        &self,
        cb: impl FnOnce(&Outcome<()>) + Send + 'static,
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

    /// Registers `owner.on_done(key, None)` to run once every done callback of this task
    /// has run. `false` (nothing registered) if that point has passed already.
    pub(crate) fn add_settle_hook(&self, owner: Arc<dyn DoneHook>, key: u64) -> bool {
        self.shared.add_settle_hook(owner, key)
    }

    /// Waits for completion without taking the output.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub fn wait(&self) -> WaitDone<&Self>
    where
        T: Send + 'static,
    {
        WaitDone::new(self)
    }

    /// A type-erased handle, for holding tasks of different output types together.
    pub fn erased(&self) -> AnyTask
    where
        T: Send + 'static,
    {
        AnyTask {
            inner: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static> WaitByCallback for Task<T> {
    fn done(&self) -> bool {
        self.shared.core.done()
    }
    fn cancel(&self) -> bool {
        self.shared.cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.shared.core.add_done(Box::new(cb))
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
        Task::result(self)
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

/// Joining a [`Task`]: resolves to its output by value ([`Task::join`]).
///
/// # Cancel safety
/// Cancel safe: dropping it leaves the task running, its output in place, and removes
/// its callback.
#[must_use = "futures do nothing unless polled"]
pub struct TaskJoin<T: Send + 'static> {
    wait: WaitDone<Task<T>>,
}

impl<T: Send + 'static> fmt::Debug for TaskJoin<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskJoin").finish()
    }
}

impl<T: Send + 'static> Future for TaskJoin<T> {
    type Output = Outcome<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        match Pin::new(&mut self.wait).poll(cx) {
            Poll::Ready(()) => Poll::Ready(
                self.wait
                    .target()
                    .try_join()
                    .unwrap_or(Err(Failure::Cancelled)),
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Awaiting a task joins it: its output by value ([`Task::join`]).
impl<T: Send + 'static> IntoFuture for Task<T> {
    type Output = Outcome<T>;
    type IntoFuture = TaskJoin<T>;
    fn into_future(self) -> TaskJoin<T> {
        TaskJoin {
            wait: WaitDone::new(self),
        }
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
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

impl<T: Send + 'static> Erased for Shared<T> {
    fn done(&self) -> bool {
        self.core.done()
    }
    fn cancel(&self) -> bool {
        Shared::cancel(self)
    }
    fn add_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.core.add_done(Box::new(cb))
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
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// A type-erased, cloneable task handle: what task holders iterate over.
///
/// Equal (and hashed) by identity: two handles to one task are equal, whatever their type.
#[derive(Clone)]
pub struct AnyTask {
    inner: Arc<dyn Erased>,
}

impl PartialEq for AnyTask {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id() == other.inner.id()
    }
}

impl Eq for AnyTask {}

impl Hash for AnyTask {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id().hash(state);
    }
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
    /// The typed handle, if the task's output is a `T`; else this handle back.
    ///
    /// # Errors
    /// The handle itself when the output type is not `T`.
    pub fn downcast<T: Send + 'static>(self) -> Result<Task<T>, AnyTask> {
        match self.inner.clone().into_any().downcast::<Shared<T>>() {
            Ok(shared) => Ok(Task { shared }),
            Err(_) => Err(self),
        }
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

impl<T: Send + 'static> From<Task<T>> for AnyTask {
    fn from(t: Task<T>) -> Self {
        t.erased()
    }
}

impl<T: Send + 'static> From<&Task<T>> for AnyTask {
    fn from(t: &Task<T>) -> Self {
        t.erased()
    }
}

/// Awaiting a task by reference joins it too: its output by value ([`Task::join`]).
impl<T: Send + 'static> IntoFuture for &Task<T> {
    type Output = Outcome<T>;
    type IntoFuture = TaskJoin<T>;
    fn into_future(self) -> TaskJoin<T> {
        self.join()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task's shared state is its memory per pending task (beside tokio's own cell):
    /// keep it from growing unnoticed.
    #[test]
    fn shared_state_stays_small() {
        let size = std::mem::size_of::<Shared<()>>();
        assert!(size <= 120, "Shared<()> is {size} bytes");
    }

    /// The body is the future plus one pointer: tokio's cell grows in steps of 128 bytes.
    #[test]
    fn the_body_is_the_future_plus_a_pointer() {
        let i = 5usize;
        let fut = async move {
            std::hint::black_box(i);
        };
        let fut_size = std::mem::size_of_val(&fut);
        let body = Body {
            running: Some(Running {
                fut: AssertUnwindSafe(fut).catch_unwind(),
                guard: Guard {
                    shared: Arc::new(Shared::<()>::new(None, None)),
                },
            }),
        };
        assert_eq!(std::mem::size_of_val(&body), fut_size + 8);
    }
}
