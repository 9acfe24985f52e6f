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
//! - [`spawn_detached`](TaskHolderHandle::spawn_detached): a plain future whose output
//!   and outcome nobody asks for, for "spawn many, wait for all" (tokio-util's
//!   `TaskTracker::spawn`). It returns no [`Task`] handle, so it costs what a tokio task
//!   costs: nothing is allocated beside tokio's own task and no lock is taken to spawn or
//!   end it (a `spawn` allocates the handle's shared state too: ~180 bytes and ~480
//!   instructions per task, see docs/BENCHMARKS.md). It keeps every holder rule (finish waits, cancellation
//!   stops it, panics are logged and count for `fail_fast`, the limit applies, `pending`
//!   counts it) but, having no handle, is not listed by `iter`. Use it whenever you
//!   would drop the `Task` that `spawn` returns.
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
//! # Refused work
//! Once finished (or once its context is done) the holder takes no new work, and says
//! so: nothing given to it vanishes.
//! - `spawn`, `spawn_silent`, `spawn_local*`, `spawn_scoped*` drop the work unrun (a
//!   scoped work closure is never called) and return a task that has already finished
//!   as cancelled when the call returns (its done callbacks ran);
//! - `add_task` cancels the task, which runs elsewhere and so finishes once its runtime
//!   dropped its future;
//! - a [`joinable`](TaskHolderBuilder::joinable) holder (and a [`JoinHolder`]) hands
//!   these tasks out from `join_next` like every task it was given;
//! - `spawn_detached` drops the future unpolled and returns `false` (`#[must_use]`);
//! - the `try_` forms ([`try_spawn`](TaskHolderHandle::try_spawn),
//!   [`try_spawn_detached`](TaskHolderHandle::try_spawn_detached),
//!   [`try_spawn_scoped`](TaskHolderHandle::try_spawn_scoped),
//!   [`try_add_task`](TaskHolderHandle::try_add_task), ...) give the work itself back
//!   in [`Refused`], neither run nor dropped, as `mpsc::Sender::send` gives back its
//!   value in a `SendError`.
//!
//! # Backpressure
//! Under [`limit(n)`](TaskHolderBuilder::limit) `spawn` never waits: extra tasks queue
//! inside the holder (a scoped one shows `[waiting]` in `Ctx::tree()`).
//! [`reserve().await`](TaskHolderHandle::reserve) waits for a free slot first, so a
//! producer never runs ahead: see [`Slot`] (a holder with a limit replaces
//! `stream.map(f).buffer_unordered(n)`).
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
//! 2. Results: each spawn returns a [`Task`] handle to join (its output by value) or drop
//!    ([`spawn_detached`](TaskHolderHandle::spawn_detached) returns none, at
//!    `TaskTracker::spawn`'s cost);
//!    a `joinable` holder also hands finished tasks back in completion order, and a
//!    [`JoinHolder<T>`] gives their outputs (`join_next().await ->
//!    Option<Result<T, Failure>>`, as `JoinSet<T>`).
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

mod counts;
mod detached;
mod fail_fast;
mod held;
mod join;
mod refused;
mod slot;

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::callbacks::{Enter, defer, enter, run_caught};
use super::completion::DoneHook;
use super::ctx::{Ctx, CtxGuard, FailureReporter};
use super::debug::{HOLDERS, Live};
use super::error::{BoxError, Error, Failure};
use super::protocols::CallbackHandle;
use super::task::{AnyTask, Link, SETTLED, Task, TaskId};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, lock};
use counts::Counts;
use fail_fast::FailFast;
use held::Held;
pub use join::{JoinHolder, JoinHolderHandle, join_holder};
pub use refused::Refused;
pub use slot::{JoinSlot, Slot};
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::task::Waker;

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
/// (a panic as [`Panicked`](super::error::Panicked)) is returned. If `ctx` is done, the tasks are
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
    /// (they count as pending; a scoped one shows `[waiting]` in `Ctx::tree()`). Zero is
    /// treated as one. Tasks given to `add_task` are already running and are not
    /// limited. To wait for a free slot before adding (backpressure), use
    /// [`reserve`](TaskHolderHandle::reserve).
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
            joinable: self.joinable,
            runtime: ctx.runtime(),
            tracker: Arc::new(Tracker {
                limit: self.limit.map(|n| Arc::new(Semaphore::new(n))),
                state: Mutex::new(State {
                    joined: self.joinable.then(VecDeque::new),
                    ..State::default()
                }),
                report: ctx.failure_reporter(),
                fail_fast: self.fail_fast.then(|| FailFast::new(ctx.clone())),
                unsettled: Counts::default(),
                aborted: AtomicBool::new(false),
                waiting: Mutex::new(HashMap::new()),
                registered: AtomicUsize::new(0),
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
    /// Finished tasks wait in `State::joined` for `join_next`.
    joinable: bool,
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
/// `key >> SHIFT`. Bit 2: then give its slot back to the limit. [`SETTLED`] (told after every done callback of the task): count the task
/// as settled.
///
/// The state lives here rather than in `Inner` so that a task's link reaches it without
/// upgrading a `Weak` per task; once the holder is gone it is empty, and a release finds
/// nothing to remove.
struct Tracker {
    state: Mutex<State>,
    /// The slots of `limit(n)`. A task that got its slot before it was held (free at
    /// spawn, or reserved) holds it until released (its key has [`SLOT`]); one that
    /// waited for it holds it in its future.
    limit: Option<Arc<Semaphore>>,
    report: FailureReporter,
    /// The failure policy, when the builder asked for `fail_fast` (`fail_fast.rs`).
    fail_fast: Option<FailFast>,
    /// Tracked tasks whose done callbacks have not all run yet. Finishing waits for this
    /// to reach zero, not merely for the held tasks to be released: a done callback may
    /// add work. Raised before the holder makes a task (whose link is set from the
    /// start, so it cannot settle before it is counted), or under the state lock by
    /// `add_task` while the holder is open; lowered by each settle, lock-free. A task
    /// counted while `finish` closes the holder is rejected and settles as it ends.
    /// The same word counts the pending detached tasks (`counts.rs`).
    unsettled: Counts,
    /// The holder aborted its tasks: a detached task stops at its next poll.
    aborted: AtomicBool,
    /// The wakers of the detached tasks that wait, by tokio's task id, for aborting
    /// them (`detached.rs`); its own lock, so that waiting tasks do not contend with the
    /// held ones.
    waiting: Mutex<HashMap<tokio::task::Id, Waker>>,
    /// How many wakers `waiting` has: a detached task that ends looks there only if some.
    registered: AtomicUsize,
    /// Notified when the last tracked task settles.
    empty: Notify,
    /// Notified when a task finishes (for `join_next`).
    joinable: Notify,
}

const REPORT: u64 = 1;
const HELD: u64 = 2;
const SLOT: u64 = 4;
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
        if key & SLOT != 0
            && let Some(limit) = &self.limit
        {
            // After the release: a task waiting for this slot is held only once this
            // one is not, so `pending()` stays within the limit.
            limit.add_permits(1);
        }
    }
}

impl Tracker {
    /// Every done callback of a tracked task has run: when none is left, finishing may end.
    fn settle(&self) {
        self.settle_as(false);
    }

    /// A task settled; `detached`: a detached task, which stops being pending too.
    fn settle_as(&self, detached: bool) {
        // AcqRel: the callbacks' effects happen before `try_close` sees the count drop.
        if self.unsettled.settle(detached) {
            self.empty.notify_waiters();
            self.joinable.notify_waiters();
        }
    }

    /// A task refused by a joinable holder has finished: it waits for `join_next`.
    fn push_joined(&self, task: AnyTask) {
        let refused = {
            let mut st = lock(&self.state);
            match &mut st.joined {
                Some(joined) => {
                    joined.push_back(task);
                    None
                }
                None => Some(task),
            }
        };
        self.joinable.notify_waiters();
        drop(refused); // outside the lock (never in practice: only joinable holders push)
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
    /// Whether the holder takes no new work: closed, or its context is done (checked
    /// too: a done callback that closes the holder may still be queued, CTX 3).
    fn refuses(&self, st: &State) -> bool {
        st.closed || self.ctx.done()
    }

    /// Holds `task`, spawned elsewhere, until it finishes. On a closed holder, gives it
    /// back untouched.
    fn try_track<T: Send + 'static>(&self, task: Task<T>) -> Result<Task<T>, Refused<Task<T>>> {
        let seq = {
            let mut st = lock(&self.tracker.state);
            if self.refuses(&st) {
                return Err(Refused::new(task));
            }
            self.tracker.unsettled.add();
            st.tasks.insert(task.erased(), task.id(), true)
        };
        // Registered after inserting: a task that already finished releases itself now.
        task.add_done_hook(self.tracker.clone(), seq << SHIFT | HELD);
        // Settled once its done callbacks (the user's too) have run, or now if they have.
        if !task.add_settle_hook(self.tracker.clone(), SETTLED) {
            self.tracker.settle();
        }
        Ok(task)
    }

    /// A task given to `add_task` on a closed holder: cancelled (it runs elsewhere, so
    /// it ends once its runtime dropped its future); a joinable holder hands it out
    /// from `join_next` once it has finished and its done callbacks ran.
    fn refuse_task<T: Send + 'static>(&self, task: Task<T>) -> Task<T> {
        task.cancel();
        if self.joinable {
            // Counted until it was handed to the joined queue, so `join_next` waits for it.
            self.tracker.unsettled.add();
            let (tracker, erased) = (self.tracker.clone(), task.erased());
            task.add_done_callback(move |_| tracker.push_joined(erased));
            if !task.add_settle_hook(self.tracker.clone(), SETTLED) {
                self.tracker.settle();
            }
        }
        task
    }

    /// Work the holder does not take: `work` is dropped (its `Drop` is user code:
    /// caught), then the returned task finishes as cancelled and, in a joinable holder,
    /// waits for `join_next`. All of that before this returns, or, when called from
    /// inside finishing work (a done callback, or the `Drop` of other refused work),
    /// before the outermost finishing call on this thread returns (CTX 3): a chain of
    /// refusals runs in constant stack.
    fn refuse<T: Send + 'static, W: 'static>(&self, name: Option<&str>, work: W) -> Task<T> {
        let task = Task::refused(name);
        let joined = self.joinable.then(|| {
            // Counted until it is in the joined queue, so `join_next` waits for it.
            self.tracker.unsettled.add();
            self.tracker.clone()
        });
        // The work is dropped first, then the task finishes, then a joinable holder
        // takes it. Nested in finishing work (a done callback adding to a closed
        // holder), the drop and the joining are queued (CTX 3: a drop that re-enters the
        // holder 100 000 times stays iterative) while the task is done at once, its
        // callbacks queued behind the drop: the caller gets a task already finished as
        // cancelled either way. Outermost, all three run now, and what the drop queued
        // (a refusal made by the work's `Drop`) runs after them.
        match enter() {
            Enter::Nested => {
                defer(Box::new(move || drop_caught(work)));
                task.finish_refused();
                if let Some(tracker) = joined {
                    let t = task.clone();
                    defer(Box::new(move || {
                        tracker.push_joined(t.erased());
                        tracker.settle();
                    }));
                }
            }
            Enter::Outermost(drain) => {
                drop_caught(work);
                task.finish_refused();
                if let Some(tracker) = joined {
                    tracker.push_joined(task.erased());
                    tracker.settle();
                }
                drop(drain); // runs what the drop and the finish queued
            }
        }
        task
    }

    /// This task's turn under the limit: `reserved` is a slot taken beforehand (by
    /// [`TaskHolderHandle::reserve`]; `None` inside: no limit, or the holder is done);
    /// without one, a free slot is taken now if there is one, else the task waits.
    fn turn(&self, reserved: Option<Option<OwnedSemaphorePermit>>) -> Turn {
        match (&self.tracker.limit, reserved) {
            (None, _) => Turn::default(),
            (Some(_), Some(permit)) => Turn {
                permit,
                wait: false,
            },
            (Some(limit), None) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Turn {
                    permit: Some(permit),
                    wait: false,
                },
                Err(_) => Turn {
                    permit: None,
                    wait: true,
                },
            },
        }
    }

    /// A task not spawned yet, linked to the holder and held (made before it is spawned,
    /// so it cannot finish before it is held: one state lock, no callback to register),
    /// counted as unsettled until it ends; it must be launched. `None` on a closed
    /// holder (nothing counted). A task holding a slot (`turn.permit`) gives the slot
    /// back when it is released, so `pending()` never exceeds the limit on its account.
    fn hold<T: Send + 'static>(
        &self,
        name: Option<&str>,
        abortable: bool,
        report: bool,
        turn: &mut Turn,
    ) -> Option<Task<T>> {
        let mut key = if report { REPORT } else { 0 } | HELD;
        if turn.permit.is_some() {
            key |= SLOT;
        }
        let hook = self.tracker.clone() as Arc<dyn DoneHook>;
        let task = {
            let mut st = lock(&self.tracker.state);
            if self.refuses(&st) {
                return None;
            }
            // Counted before it can settle (under the lock: `try_close` sees it).
            self.tracker.unsettled.add();
            let key = key | st.tasks.next_seq() << SHIFT;
            let task = Task::unspawned(name, Link { hook, key });
            st.tasks.insert(task.erased(), task.id(), abortable);
            task
        };
        if let Some(permit) = turn.permit.take() {
            permit.forget(); // `Tracker::release` adds it back
        }
        Some(task)
    }

    /// Makes a held task and spawns `fut` as its future on the holder's context's
    /// runtime (else the current one), under the limit; gives `fut` back on a closed
    /// holder.
    ///
    /// # Panics
    /// Without a runtime (the task is then finished as cancelled and released).
    #[track_caller]
    fn try_spawn<T, F>(
        &self,
        fut: F,
        report: bool,
        reserved: Option<Option<OwnedSemaphorePermit>>,
    ) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let mut turn = self.turn(reserved);
        let Some(task) = self.hold(None, true, report, &mut turn) else {
            return Err(Refused::new(fut));
        };
        self.launch(&task, fut, turn.wait.then_some(None));
        Ok(task)
    }

    /// Spawns a held task's future on the holder's runtime, after waiting for a slot
    /// when `wait` says so (`Some(ctx)`: the task's context, shown waiting meanwhile).
    #[track_caller]
    fn launch<T, F>(&self, task: &Task<T>, fut: F, wait: Option<Option<Ctx>>)
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let handle = self.runtime.as_ref();
        match (wait, &self.tracker.limit) {
            (Some(ctx), Some(limit)) => task.launch(limited(limit.clone(), fut, ctx), handle),
            _ => task.launch(fut, handle),
        }
    }

    /// Spawns a `!Send` future as a held task on the current `LocalSet`, under the limit.
    #[track_caller]
    fn try_spawn_local<T, F>(&self, fut: F, report: bool) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let mut turn = self.turn(None);
        let Some(task) = self.hold(None, true, report, &mut turn) else {
            return Err(Refused::new(fut));
        };
        match (turn.wait, &self.tracker.limit) {
            (true, Some(limit)) => task.launch_local(limited(limit.clone(), fut, None)),
            _ => task.launch_local(fut),
        }
        Ok(task)
    }

    /// Holds a task named `name` running `work(ctx)` on a child context of the holder's
    /// (also named `name`); gives `work` back, uncalled, on a closed holder.
    ///
    /// A panic in `work` (the call, not the future) fails the task with it.
    #[track_caller]
    fn try_scoped<T, F, Fut>(
        &self,
        name: Cow<'static, str>,
        work: F,
        report: bool,
        reserved: Option<Option<OwnedSemaphorePermit>>,
    ) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut turn = self.turn(reserved);
        let Some(task) = self.hold(Some(&name), false, report, &mut turn) else {
            return Err(Refused::new(work));
        };
        let guard = self.ctx.child(name).drop_guard();
        let ctx = guard.ctx().clone();
        if turn.wait {
            ctx.set_waiting(true);
        }
        // User code; the task is held already, so it must be launched whatever happens.
        match std::panic::catch_unwind(AssertUnwindSafe(|| work(ctx.clone()))) {
            Ok(fut) => {
                let fut = async move {
                    let _guard = guard; // cancels the task's context when the task ends
                    fut.await
                };
                self.launch(&task, fut, turn.wait.then_some(Some(ctx)));
            }
            Err(panic) => {
                drop(guard);
                self.launch(&task, async move { std::panic::resume_unwind(panic) }, None);
            }
        }
        Ok(task)
    }

    /// Cancels the holder's context (scoped work sees it and returns) and aborts the
    /// plain tasks; the holder then takes no new work.
    fn cancel_all(&self) {
        self.ctx.cancel(); // runs `abort_plain` through the context's done callback
        self.abort_plain();
    }

    /// Closes the holder and aborts every held plain task (outside the lock).
    fn abort_plain(&self) {
        // Before taking the wakers: a detached task that registers its waker after this
        // sees the flag (`detached.rs`).
        self.tracker.aborted.store(true, Release);
        let tasks: Vec<AnyTask> = {
            let mut st = lock(&self.tracker.state);
            st.closed = true;
            st.tasks.abortable()
        };
        let wakers = {
            let mut waiting = lock(&self.tracker.waiting);
            self.tracker.registered.store(0, Relaxed);
            std::mem::take(&mut *waiting)
        };
        for (_, waker) in wakers {
            waker.wake(); // the task sees `aborted` and drops its future
        }
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
        let idle = self.tracker.unsettled.try_close();
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

/// Drops refused work (user code): a panic is caught and logged, and its payload is
/// dropped under a catch of its own (`panics::catch`), so what follows the drop always
/// runs.
fn drop_caught<W>(work: W) {
    if let Err(e) = super::panics::catch(move || drop(work)) {
        tracing::error!(error = %e, "dropping refused work panicked");
    }
}

/// `fut` after taking its turn under `limit`; `waiting` (a scoped task's context) is
/// marked waiting until then.
async fn limited<F: Future>(limit: Arc<Semaphore>, fut: F, waiting: Option<Ctx>) -> F::Output {
    // The semaphore is never closed, so acquiring cannot fail.
    let _turn = limit.acquire_owned().await;
    if let Some(ctx) = waiting {
        ctx.set_waiting(false);
    }
    fut.await
}

/// A new task's turn under the limit (see [`Inner::turn`]).
#[derive(Default)]
struct Turn {
    /// A slot taken for it.
    permit: Option<OwnedSemaphorePermit>,
    /// No slot was free: the task waits for one before its future starts.
    wait: bool,
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
    /// [limit](TaskHolderBuilder::limit) the future waits for its turn before it starts
    /// ([`reserve`](Self::reserve) waits before adding instead).
    ///
    /// # Refused work
    /// On a finished holder, or one whose context is done, `fut` is dropped unpolled and
    /// the returned task has already finished as cancelled (its done callbacks ran); a
    /// joinable holder hands it out from `join_next` like every other task.
    /// [`try_spawn`](Self::try_spawn) gives `fut` back instead.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one); nothing stays held.
    #[track_caller]
    pub fn spawn<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner
            .try_spawn(fut, true, None)
            .unwrap_or_else(|r| self.inner.refuse(None, r.into_inner()))
    }

    /// Like [`spawn`](Self::spawn), but a closed holder gives `fut` back, unpolled.
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let ts = hp::task_holder(&ctx);
    /// let handle = ts.handle();
    /// ts.finish().await;
    /// let last_batch = vec!["a", "b"];
    /// match handle.try_spawn(async move { last_batch.len() }) {
    ///     Ok(task) => drop(task),
    ///     // Not run and not dropped: the future and the batch it owns come back.
    ///     Err(refused) => assert_eq!(refused.into_inner().await, 2),
    /// }
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn<T, F>(&self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner.try_spawn(fut, true, None)
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
        self.inner
            .try_spawn(fut, false, None)
            .unwrap_or_else(|r| self.inner.refuse(None, r.into_inner()))
    }

    /// Like [`try_spawn`](Self::try_spawn), but failures are not logged.
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn try_spawn_silent<T, F>(&self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner.try_spawn(fut, false, None)
    }

    /// Spawns a `!Send` future as a held task on the current
    /// [`LocalSet`](tokio::task::LocalSet) (as `JoinSet::spawn_local`); failures are
    /// logged as with [`spawn`](Self::spawn). Refused work as with `spawn`.
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        self.inner
            .try_spawn_local(fut, true)
            .unwrap_or_else(|r| self.inner.refuse(None, r.into_inner()))
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
        self.inner
            .try_spawn_local(fut, false)
            .unwrap_or_else(|r| self.inner.refuse(None, r.into_inner()))
    }

    /// Like [`spawn_local`](Self::spawn_local), but a closed holder gives `fut` back.
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Outside a `LocalSet`.
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    /// use std::rc::Rc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let ts = hp::task_holder(&ctx);
    /// ts.cancel_all();
    /// let local = Rc::new(5);
    /// let refused = ts.try_spawn_local(async move { *local }).unwrap_err();
    /// assert_eq!(refused.into_inner().await, 5); // run here instead
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn_local<T, F>(&self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + 'static,
    {
        self.inner.try_spawn_local(fut, true)
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
    /// does not log them); the [limit](TaskHolderBuilder::limit) applies (while the task
    /// waits for its turn, `Ctx::tree()` shows its context `[waiting]`). A panic in
    /// `work` itself (before it returns its future) fails the task with that panic.
    ///
    /// # Refused work
    /// On a finished holder, or one whose context is done, `work` is dropped without
    /// being called and the returned task has already finished as cancelled (its done
    /// callbacks ran); a joinable holder hands it out from `join_next`.
    /// [`try_spawn_scoped`](Self::try_spawn_scoped) gives `work` back instead.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn spawn_scoped<T, F, Fut>(&self, name: impl Into<Cow<'static, str>>, work: F) -> Task<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let name = name.into();
        match self.inner.try_scoped(name.clone(), work, true, None) {
            Ok(task) => task,
            Err(r) => self.inner.refuse(Some(&name), r.into_inner()),
        }
    }

    /// Like [`spawn_scoped`](Self::spawn_scoped), but a closed holder gives `work` back,
    /// uncalled.
    ///
    /// # Errors
    /// [`Refused`] holding `work` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("shipper");
    /// let ts = hp::task_holder(&ctx);
    /// ctx.cancel();
    /// let batch = vec![1, 2, 3];
    /// let ship = move |_ctx: hp::Ctx| async move { batch.len() };
    /// let Err(refused) = ts.try_spawn_scoped("ship", ship) else { unreachable!() };
    /// // Uncalled: ship the final batch here instead.
    /// let ship = refused.into_inner();
    /// assert_eq!(ship(hp::Ctx::beginning("last")).await, 3);
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn_scoped<T, F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.inner.try_scoped(name.into(), work, true, None)
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
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let name = name.into();
        match self.inner.try_scoped(name.clone(), work, false, None) {
            Ok(task) => task,
            Err(r) => self.inner.refuse(Some(&name), r.into_inner()),
        }
    }

    /// Like [`try_spawn_scoped`](Self::try_spawn_scoped), but failures are not logged.
    ///
    /// # Errors
    /// [`Refused`] holding `work` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    #[track_caller]
    pub fn try_spawn_scoped_silent<T, F, Fut>(
        &self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.inner.try_scoped(name.into(), work, false, None)
    }

    /// Holds a task spawned elsewhere until it finishes, and returns it (the seed's
    /// `add_task`). Its failures are not logged by the holder.
    ///
    /// # Refused work
    /// On a finished holder, or one whose context is done, the task is cancelled and
    /// not held. It runs elsewhere, so it finishes (cancelled, unless it finished
    /// already) once its runtime has dropped its future, which may be after this
    /// returns; a joinable holder hands it out from `join_next` then.
    /// [`try_add_task`](Self::try_add_task) gives it back uncancelled instead.
    pub fn add_task<T: Send + 'static>(&self, task: Task<T>) -> Task<T> {
        self.inner
            .try_track(task)
            .unwrap_or_else(|r| self.inner.refuse_task(r.into_inner()))
    }

    /// Like [`add_task`](Self::add_task), but a closed holder gives the task back,
    /// untouched (still running).
    ///
    /// # Errors
    /// [`Refused`] holding the task when the holder has finished or its context is done.
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let ts = hp::task_holder(&ctx);
    /// ctx.cancel();
    /// let task = hp::Task::spawn(async { 7 });
    /// let task = ts.try_add_task(task).unwrap_err().into_inner();
    /// assert_eq!(task.await.unwrap(), 7); // not cancelled: it ran to the end
    /// # }
    /// ```
    pub fn try_add_task<T: Send + 'static>(
        &self,
        task: Task<T>,
    ) -> Result<Task<T>, Refused<Task<T>>> {
        self.inner.try_track(task)
    }

    /// How many held tasks have not finished. Already 0 inside the done callbacks of
    /// the last one.
    pub fn pending(&self) -> usize {
        let held = lock(&self.inner.tracker.state).tasks.len();
        held + self.inner.tracker.unsettled.detached()
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
    /// [`AnyTask::downcast`] and [`Task::join`]; a [`JoinHolder`] of one output type
    /// gives outputs directly. Several callers each get different tasks. Work the
    /// holder refused (added after it closed) comes out here too, cancelled.
    ///
    /// Takes part in tokio's cooperative budget, as `JoinSet::join_next` does: a loop
    /// draining many finished tasks yields to the scheduler now and then.
    ///
    /// # Cancel safety
    /// Cancel safe: a task is taken only in the poll that returns it.
    pub async fn join_next(&self) -> Option<AnyTask> {
        self.inner.join_next().await
    }

    /// The next finished task if one is waiting to be joined, without waiting (as
    /// `JoinSet::try_join_next`); `None` also while tasks are still running.
    pub fn try_join_next(&self) -> Option<AnyTask> {
        self.inner.try_join_next()
    }

    /// How many tasks the holder has: pending ones plus, in a joinable holder, finished
    /// ones not yet taken by `join_next` (as `JoinSet::len`).
    pub fn len(&self) -> usize {
        let st = lock(&self.inner.tracker.state);
        let detached = self.inner.tracker.unsettled.detached();
        st.tasks.len() + detached + st.joined.as_ref().map_or(0, VecDeque::len)
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The holder's child context (named by [`TaskHolderBuilder::name`]).
    pub fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    /// Whether the holder takes no new work (finished, dropped, or its context is done).
    pub fn is_closed(&self) -> bool {
        let st = lock(&self.inner.tracker.state);
        self.inner.refuses(&st)
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
/// Cancels every task still held and the holder's child context: a plain task is
/// aborted (its future dropped at its next poll); a scoped task sees its context
/// cancelled and ends when its work returns (work that ignores its context runs on, as a
/// tokio task that ignores a `CancellationToken` does; nothing waits for it any more).
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
