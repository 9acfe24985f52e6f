//! The context tree (`hp::Ctx`): Go-style contexts where finishing a parent finishes
//! every child, with names, causes and done callbacks.
//!
//! A program starts one root with [`Ctx::beginning`] and gives each part of itself a
//! child ([`Ctx::child`]). Finishing a context ([`Ctx::cancel`], or
//! [`Ctx::set_exception`] with a cause) finishes all of its descendants at once; each
//! reports how it finished ([`Ctx::exception`], [`Ctx::cancelled`], awaiting it), and each
//! runs its done callbacks exactly once.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//! use std::sync::{Arc, Mutex};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let root = hp::Ctx::beginning("app");
//! let server = root.child("server").drop_guard();
//! let conn = server.child("conn-1").drop_guard();
//! assert_eq!(conn.name(), "app-->server-->conn-1");
//!
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let l = log.clone();
//! conn.add_on_done(move |ctx, how| l.lock().unwrap().push(format!("{} {how}", ctx.name())));
//!
//! root.cancel(); // reaches the grandchild at once
//! assert!(conn.done() && conn.cancelled());
//! assert_eq!(*log.lock().unwrap(), ["app-->server-->conn-1 cancelled"]);
//! assert!(conn.wait().await.is_cancelled());
//! # }
//! ```
//!
//! # Outcomes
//! Each context has its own outcome slot. A context reports its own outcome if it has
//! one, otherwise that of its nearest ancestor that has one. `cancel` and
//! `set_exception` fill the own slot and return `false` only when it was already filled;
//! so a child done because its parent was cancelled still accepts a cause of its own.
//!
//! # Callbacks
//! Done callbacks run exactly once per registration, when the context first becomes done
//! (by itself or through an ancestor), in registration order, synchronously on the thread
//! that finished it, after the state change and outside every lock, before `cancel()`
//! returns. One added to a done context runs before `add_*` returns. A panicking callback
//! is caught and reported; the others still run. **Differs from the original**, which
//! defers callbacks to a later event-loop turn.
//!
//! Chains of any length work in constant stack: a finish started from inside a callback
//! (a callback cancelling another context, completing a future, setting an event) changes
//! that thing's state at once, but its callbacks are queued and run by the outermost
//! finishing call on this thread, after the batch it is running and before it returns.
//! So a nested `cancel()` may return before the callbacks it triggered have run; a
//! callback added to a finished context from inside a callback still runs at once, up to
//! 32 such nested levels (then it is queued too), unless that context's own earlier
//! callbacks have not all started (its finish was queued, or a callback of its batch
//! adds it while later ones wait): then it runs right after them, so registration order
//! holds across the queueing (the same for futures, tasks and events).
//!
//! A panicking callback is caught even when its payload panics when dropped
//! (`std::panic::panic_any(Bomb)`): the payload is dropped under a catch of its own.
//!
//! # The tree
//! [`Ctx::tree`] and [`Ctx::child_count`] show every child that still exists, finished or
//! not, each with its own state, so a dump taken during shutdown shows the work still
//! draining. Children come in creation order. Lines stay bounded at any depth (a long
//! name shows `...-->` and the context's own segment; indentation stops at 16 levels and
//! deeper lines say `[depth N]`); the exact format is in [`Ctx::tree`]'s docs.
//! [`Ctx::snapshot`] gives the same as a value ([`CtxSnapshot`]) that programs and tests
//! walk instead of matching text.
//!
//! A root can carry a deadline too ([`Ctx::beginning_with_timeout`],
//! [`Ctx::beginning_with_deadline`]), as a child can ([`Ctx::child_with_timeout`]).
//!
//! # Memory
//! A context lives while a handle, a guard or a live child refers to it. When nothing
//! does, it finishes as cancelled (its callbacks still run) and unregisters from its
//! parent, so a root that lives forever while millions of children come and go holds
//! memory flat. Callbacks are freed when they run or are removed. Names are stored as the
//! segment given (a `&'static str` is not copied) and formatted only when asked for.
//!
//! # Cost
//! `done()` is one atomic load at any depth: completion is pushed down the tree eagerly
//! when a context finishes, instead of each check walking up.
//!
//! # Async cleanup
//! Dropping a future runs only its synchronous cleanup. Work that must clean up
//! asynchronously takes a child context, selects on it, cleans up and returns:
//! ```
//! use machinery::helpers as hp;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let root = hp::Ctx::beginning("app");
//! let out = root
//!     .async_with_timeout_scoped(|ctx| async move {
//!         tokio::select! {
//!             _ = ctx.wait() => {
//!                 tokio::time::sleep(Duration::from_secs(1)).await; // async cleanup
//!                 "cleaned up"
//!             }
//!             _ = tokio::time::sleep(Duration::from_secs(60)) => "finished",
//!         }
//!     })
//!     .timeout(Duration::from_secs(5))
//!     .await;
//! assert!(out.unwrap_err().is_cancelled()); // returned only after the cleanup ran
//! # }
//! ```

mod display;
mod guard;
mod log;
mod node;
mod slots;
mod snapshot;
mod timeout;

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;

use super::error::{Error, Failure, Outcome, StatusError};
use super::protocols::{
    CallbackHandle, DoneCallback, FutureStatus, NamedFuture, WaitByCallback, WithRepr,
};
use super::task::Task;
use crate::sync::Arc;

pub use guard::CtxGuard;
pub use log::{Logger, TracingLogger};
use node::{Extras, Node};
pub use snapshot::{CtxSnapshot, CtxState, Walk};
pub use timeout::WithTimeout;

/// A handle to one context of the tree. Cloning is cheap and does not cancel anything.
#[derive(Clone)]
pub struct Ctx {
    node: Arc<Node>,
}

/// Options for a root or child context (the seed's `log` and `prefix`, and `loop`).
#[derive(Default, Clone)]
pub struct CtxOptions {
    prefix: Option<Cow<'static, str>>,
    logger: Option<Arc<dyn Logger>>,
    runtime: Option<Handle>,
}

impl fmt::Debug for CtxOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtxOptions")
            .field("prefix", &self.prefix)
            .field("logger", &self.logger.is_some())
            .field("runtime", &self.runtime.is_some())
            .finish()
    }
}

impl CtxOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Names the child `parent-->[prefix]-->name`.
    pub fn prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
    /// Logs through `logger` (children inherit it).
    pub fn log(mut self, logger: impl Logger) -> Self {
        self.logger = Some(Arc::new(logger));
        self
    }
    /// Spawns background work on `handle`'s runtime (the seed's `loop`).
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }
    fn into_extras(self) -> Option<Box<Extras>> {
        if self.prefix.is_none() && self.logger.is_none() && self.runtime.is_none() {
            return None;
        }
        Some(Box::new(Extras {
            prefix: self.prefix,
            logger: self.logger,
            runtime: self.runtime,
        }))
    }
}

impl Ctx {
    pub(crate) fn from_node(node: Arc<Node>) -> Ctx {
        Ctx { node }
    }

    /// The first context of a program (the seed's `CTX.beginning`).
    pub fn beginning(name: impl Into<Cow<'static, str>>) -> Ctx {
        Ctx::from_node(Node::root(name.into(), None))
    }

    /// A root with a logger and/or runtime handle (a prefix is ignored on a root).
    pub fn beginning_with(name: impl Into<Cow<'static, str>>, options: CtxOptions) -> Ctx {
        Ctx::from_node(Node::root(name.into(), options.into_extras()))
    }

    /// A child context named `parent-->name`.
    ///
    /// The child is a plain handle: it finishes as cancelled when its parent finishes, when
    /// it is cancelled, or when its last handle (and last live child) is gone (CTX 5), so
    /// `let c = root.child("w").clone();` is an ordinary live context. For the seed's
    /// `with ctx.child(...) as c:` (cancel when the scope ends, even while clones live),
    /// turn it into a guard with [`Ctx::drop_guard`]. If this context is already done, the
    /// child is created done.
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> Ctx {
        self.child_ctx(name.into(), None)
    }

    /// A child with a prefix (`parent-->[prefix]-->name`) and/or its own logger.
    pub fn child_with(&self, name: impl Into<Cow<'static, str>>, options: CtxOptions) -> Ctx {
        self.child_ctx(name.into(), options.into_extras())
    }

    /// Turns this handle into a guard that cancels the context when dropped, even while
    /// clones of it are alive: the seed's `with ctx.child(...) as c:` is
    /// `let c = ctx.child("...").drop_guard();` (tokio-util's `CancellationToken::drop_guard`).
    ///
    /// ```
    /// use machinery::helpers as hp;
    /// let root = hp::Ctx::beginning("app");
    /// let seen = {
    ///     let c = root.child("request").drop_guard();
    ///     c.clone() // a plain handle, still alive
    /// }; // the guard drops here: the request is cancelled
    /// assert!(seen.cancelled());
    /// assert!(!root.done());
    /// ```
    pub fn drop_guard(self) -> CtxGuard {
        CtxGuard::new(self)
    }

    fn child_ctx(&self, name: Cow<'static, str>, extras: Option<Box<Extras>>) -> Ctx {
        Ctx::from_node(Node::child(&self.node, name, extras))
    }

    /// The full name, e.g. `app-->server-->[http]-->conn` (formatted on each call).
    pub fn name(&self) -> String {
        display::full_name(&self.node)
    }

    /// The runtime handle background work is spawned on (the seed's `loop`): the one
    /// given to this context or an ancestor, else the current runtime's, if any.
    pub fn runtime(&self) -> Option<Handle> {
        let mut node = &*self.node;
        loop {
            if let Some(h) = node.extras.as_ref().and_then(|e| e.runtime.as_ref()) {
                return Some(h.clone());
            }
            match node.parent.as_deref() {
                Some(p) => node = p,
                None => return Handle::try_current().ok(),
            }
        }
    }

    /// The logger of this context or its nearest ancestor that has one.
    pub fn logger(&self) -> Arc<dyn Logger> {
        let mut node = &*self.node;
        loop {
            if let Some(l) = node.extras.as_ref().and_then(|e| e.logger.as_ref()) {
                return l.clone();
            }
            match node.parent.as_deref() {
                Some(p) => node = p,
                None => return Arc::new(TracingLogger),
            }
        }
    }

    /// Finishes this context and its descendants as cancelled.
    ///
    /// `false` (and no change) when this context already has its own outcome.
    pub fn cancel(&self) -> bool {
        self.node.finish(Failure::Cancelled)
    }

    /// Finishes this context and its descendants with `err` as the cause.
    ///
    /// `false` (and no change) when this context already has its own outcome. A context
    /// done only through an ancestor still accepts it (see "Outcomes").
    pub fn set_exception(&self, err: impl std::error::Error + Send + Sync + 'static) -> bool {
        self.node.finish(Failure::Error(Error::new(err)))
    }

    /// Whether this context or an ancestor has finished. One atomic load, no lock.
    pub fn done(&self) -> bool {
        self.node.done()
    }

    /// Whether it finished by cancellation (its own outcome, else the nearest
    /// ancestor's). No lock.
    pub fn cancelled(&self) -> bool {
        matches!(self.node.outcome(), Some(Failure::Cancelled))
    }

    /// The cause it finished with; `Ok(None)` never happens for a context.
    ///
    /// # Errors
    /// [`StatusError::Pending`] while not done; [`StatusError::Cancelled`] when cancelled.
    pub fn exception(&self) -> Result<Option<Error>, StatusError> {
        match self.node.outcome() {
            None => Err(StatusError::Pending),
            Some(Failure::Cancelled) => Err(StatusError::Cancelled),
            Some(Failure::Error(e)) => Ok(Some(e)),
        }
    }

    /// How it finished, once done.
    pub fn outcome(&self) -> Option<Failure> {
        self.node.outcome()
    }

    /// Registers `cb(ctx, how)` to run once when this context becomes done (at once if it
    /// is); returns a fresh handle to remove it by.
    pub fn add_on_done(&self, cb: impl FnOnce(&Ctx, &Failure) + Send + 'static) -> CallbackHandle {
        self.node.add_callback(None, Box::new(cb))
    }

    /// [`Ctx::add_on_done`] under a handle chosen by the caller (the seed's `index`): make
    /// one with [`CallbackHandle::new`], and remove the registration by it later.
    pub fn add_on_done_keyed(
        &self,
        cb: impl FnOnce(&Ctx, &Failure) + Send + 'static,
        key: CallbackHandle,
    ) -> CallbackHandle {
        self.node.add_callback(Some(key), Box::new(cb))
    }

    /// Registers `cb(how)` to run once when this context becomes done (at once if it is).
    pub fn add_done_callback(&self, cb: impl FnOnce(&Failure) + Send + 'static) -> CallbackHandle {
        self.node.add_callback(None, Box::new(move |_, f| cb(f)))
    }

    /// Removes a registration that has not run; returns 1 if it was removed, else 0.
    pub fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.node.remove_callback(handle)
    }

    /// Whether that registration is on this very context and has not run (false for
    /// one registered only on a parent).
    pub fn has_direct_done_callback(&self, handle: CallbackHandle) -> bool {
        self.node.has_callback(handle)
    }

    /// Waits until this context is done and returns how it finished.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future leaves no registration behind.
    pub fn wait(&self) -> CtxWait {
        CtxWait {
            ctx: self.clone(),
            registered: None,
        }
    }

    /// Spawns `fut` as a [`Task`] that reports nothing (the seed's default, `silent`):
    /// nothing is registered on it. For a task whose failure is logged, see
    /// [`Ctx::async_as_background_reported`].
    ///
    /// # Panics
    /// When no runtime was given to this context tree and none is current.
    #[track_caller]
    pub fn async_as_background<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let handle = self.runtime().unwrap_or_else(Handle::current);
        // Silent: nothing to register (the silent reporter does nothing), which keeps a
        // task holder's tasks free of a callback allocation.
        Task::spawn_on(fut, &handle)
    }

    /// Spawns `fut` as a [`Task`] with [`Ctx::reporter`] attached (the seed's
    /// `silent=False`): an error outcome is logged through this context's logger, a
    /// cancellation never.
    ///
    /// # Panics
    /// When no runtime was given to this context tree and none is current.
    #[track_caller]
    pub fn async_as_background_reported<T, F>(&self, fut: F) -> Task<T>
    where
        T: Send + Sync + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let task = self.async_as_background(fut);
        task.add_done_callback(self.reporter());
        task
    }

    /// Runs `fut` with a timeout; see [`WithTimeout`] for the options (the seed's
    /// `name`, `silent`, `timeout`, `timeout_event`, `timeout_error`).
    pub fn async_with_timeout<T, F>(&self, fut: F) -> WithTimeout<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        WithTimeout::plain(self, fut)
    }

    /// Like [`Ctx::async_with_timeout`], but the work gets a child context that is
    /// cancelled (or given `timeout_error`) at the timeout; the call then waits for the
    /// work to return, so asynchronous cleanup finishes before it returns.
    pub fn async_with_timeout_scoped<T, F, Fut>(&self, work: F) -> WithTimeout<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        WithTimeout::scoped(self, work)
    }

    /// A done callback that logs an error outcome through this context's logger, and
    /// never a cancellation.
    pub fn reporter<T>(&self) -> impl FnOnce(&Outcome<T>) + Send + 'static {
        let report = self.failure_reporter();
        move |outcome: &Outcome<T>| report.report(outcome.as_ref().err())
    }

    /// What [`Ctx::reporter`] does, as a value that one owner (a task holder) shares
    /// between many tasks instead of boxing a reporter per task.
    pub(crate) fn failure_reporter(&self) -> FailureReporter {
        FailureReporter {
            logger: self.logger(),
            node: Arc::downgrade(&self.node),
        }
    }

    /// A done callback that logs nothing (it still marks the outcome as looked at).
    pub fn silent_reporter<T>(&self) -> impl FnOnce(&Outcome<T>) + Send + 'static {
        |_outcome: &Outcome<T>| {}
    }

    /// Names `fut` (the seed's `set_future_name`).
    pub fn set_future_name(&self, fut: &dyn NamedFuture, name: &str) {
        fut.set_future_name(name);
    }

    /// The name given by [`Ctx::set_future_name`], if any.
    pub fn get_future_name(&self, fut: &dyn NamedFuture) -> Option<Arc<str>> {
        fut.future_name()
    }

    /// Formats a future as the seed does (`<Future#NAME(state)>`); see
    /// [`super::fut_to_string`].
    pub fn fut_to_string(&self, fut: &dyn WithRepr) -> String {
        super::protocols::fut_to_string(fut)
    }

    /// Only the state part (`(pending)`, ...), the seed's `with_name=False`; see
    /// [`super::fut_state_to_string`].
    pub fn fut_state_to_string(&self, fut: &dyn WithRepr) -> String {
        super::protocols::fut_state_to_string(fut)
    }

    /// Logs a message through this context's logger.
    pub fn log_info(&self, msg: &str) {
        self.logger().info(&self.name(), msg);
    }

    /// Logs an error report with its error through this context's logger (the seed's
    /// `log_exception(msg, exc_info)`).
    pub fn log_exception(&self, msg: &str, err: &Error) {
        self.logger().exception(&self.name(), msg, Some(err));
    }

    /// Logs an error report without an error (the seed's `log_exception(msg)`).
    pub fn log_error(&self, msg: &str) {
        self.logger().exception(&self.name(), msg, None);
    }

    /// Returns once at least one of `waits` is done; see [`super::wait_for_first`].
    pub async fn wait_for_first(&self, waits: &[&dyn WaitByCallback]) {
        super::wait::wait_for_first(waits).await
    }

    /// Returns once all of `waits` are done; see [`super::wait_for_all`].
    pub async fn wait_for_all(&self, waits: &[&dyn WaitByCallback]) {
        super::wait::wait_for_all(waits).await
    }

    /// A multi-line listing of this context and every descendant that still exists
    /// (finished or not), each with its own state; linear in the number of contexts.
    /// For a structure to walk instead of text, see [`Ctx::snapshot`].
    ///
    /// # Format
    /// One line per context, each ending in `\n`: this context first, then its
    /// descendants depth first, the children of each in creation order. A line is
    ///
    /// `INDENT NAME [STATE]`, written as `{INDENT}{NAME} [{STATE}]`
    ///
    /// - INDENT: two spaces per level below this context (none for it). Past 16 levels
    ///   the indentation stays at 32 spaces and the line starts with `[depth N] ` (N the
    ///   levels below this context), so a line's length does not grow with the depth.
    /// - NAME: the full name from the root of the whole tree (`app-->server-->conn-1`,
    ///   with `[prefix]-->` before a prefixed segment), while it is at most 120 bytes;
    ///   past that `...-->` and the context's own segment (`...-->conn-1`).
    /// - STATE: its own state ([`CtxState`]'s `Display`): `pending`, `waiting` (not
    ///   started: waiting for its turn, see [`CtxState::Waiting`]), `cancelled`,
    ///   `exception TYPE: MESSAGE` (its own error: [`Error::type_name`] and the error's
    ///   text, e.g. `exception DeadlineExceeded: deadline exceeded`), or
    ///   `done (through an ancestor)`.
    ///
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// let root = hp::Ctx::beginning("app");
    /// let server = root.child("server");
    /// let b = server.child("b");
    /// let a = server.child("a");
    /// a.set_exception(hp::Error::msg("refused"));
    /// server.cancel();
    /// assert_eq!(
    ///     root.tree(),
    ///     "app [pending]\n\
    ///      \x20 app-->server [cancelled]\n\
    ///      \x20   app-->server-->b [done (through an ancestor)]\n\
    ///      \x20   app-->server-->a [exception Message: refused]\n"
    /// );
    /// # drop((b, a));
    /// ```
    pub fn tree(&self) -> String {
        display::tree(&self.node)
    }

    /// Marks the work behind this context as waiting for a turn (a task holder's task
    /// waiting for a `limit` slot): `tree()` shows it as `[waiting]` while it is pending.
    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.node.set_waiting(waiting);
    }

    /// How many children exist right now, finished or not (a child leaves when its last
    /// handle is dropped).
    pub fn child_count(&self) -> usize {
        self.node.child_count()
    }

    /// Whether both are handles to the same context.
    pub fn ptr_eq(&self, other: &Ctx) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// Runs `fut` until it completes or this context is done, whichever comes first
    /// (tokio-util's `CancellationToken::run_until_cancelled`): `Some(output)` when the
    /// future finished, `None` when the context finished first (cancelled or failed).
    ///
    /// The context is checked before each poll of `fut`, so `fut` is never polled once
    /// the context is done (not even once, when it is done already).
    ///
    /// ```
    /// use machinery::helpers as hp;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// assert_eq!(ctx.run_until_cancelled(async { 7 }).await, Some(7));
    /// ctx.cancel();
    /// assert_eq!(ctx.run_until_cancelled(async { 7 }).await, None);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// As cancel safe as `fut`: dropping it drops `fut`.
    pub async fn run_until_cancelled<F: Future>(&self, fut: F) -> Option<F::Output> {
        let wait = self.wait();
        tokio::pin!(fut);
        tokio::select! {
            biased;
            _ = wait => None,
            out = fut => Some(out),
        }
    }

    /// [`Ctx::run_until_cancelled`] taking the handle by value, so the returned future
    /// borrows nothing (tokio-util's `run_until_cancelled_owned`).
    pub async fn run_until_cancelled_owned<F: Future>(self, fut: F) -> Option<F::Output> {
        self.run_until_cancelled(fut).await
    }
}

/// Identity: two handles are equal when they are handles to the same context (as
/// [`Ctx::ptr_eq`]), so contexts can key maps and sets like tokio-util's tokens.
impl PartialEq for Ctx {
    fn eq(&self, other: &Ctx) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for Ctx {}

/// Hashes the identity, consistent with `PartialEq`.
impl std::hash::Hash for Ctx {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.node), state);
    }
}

impl WaitByCallback for Ctx {
    fn done(&self) -> bool {
        self.node.done()
    }
    fn cancel(&self) -> bool {
        Ctx::cancel(self)
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        self.node.add_callback(None, Box::new(move |_, _| cb()))
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.node.remove_callback(handle)
    }
}

impl WaitByCallback for CtxGuard {
    fn done(&self) -> bool {
        self.ctx().done()
    }
    fn cancel(&self) -> bool {
        self.ctx().cancel()
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        WaitByCallback::add_done_callback(self.ctx(), cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.ctx().remove_done_callback(handle)
    }
}

impl FutureStatus<()> for Ctx {
    fn done(&self) -> bool {
        self.node.done()
    }
    fn cancelled(&self) -> bool {
        Ctx::cancelled(self)
    }
    fn exception(&self) -> Result<Option<Error>, StatusError> {
        Ctx::exception(self)
    }
    /// A context never has a result: pending, or how it failed.
    fn result(&self) -> Result<(), StatusError> {
        match self.node.outcome() {
            None => Err(StatusError::Pending),
            Some(f) => Err(f.into()),
        }
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display::chain(&self.node))
    }
}

/// Resolves when a context is done, to how it finished. See [`Ctx::wait`].
///
/// # Cancel safety
/// Cancel safe.
#[must_use = "futures do nothing unless polled"]
pub struct CtxWait {
    ctx: Ctx,
    /// The key of the waker registered with the context (in its node's wakers, apart
    /// from the callbacks). The registration is the task's waker itself (no callback
    /// box, nothing shared): a context stays done once done, so the node's state says
    /// whether it fired.
    ///
    /// A re-poll compares the new waker with the registered one (`will_wake` on the
    /// stored clone, under the node's lock), never with the address of the waker a
    /// former poll was given: that waker may be gone and its address reused by another
    /// task's waker (a pool whose slots are reused), which would keep the old task's
    /// registration and lose the wake-up.
    registered: Option<usize>,
}

impl fmt::Debug for CtxWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtxWait").finish_non_exhaustive()
    }
}

impl CtxWait {
    fn ready(&mut self) -> Poll<Failure> {
        // The finish took the registration (DONE is stored under the node's lock
        // together with taking every registration): nothing to remove.
        self.registered = None;
        Poll::Ready(self.ctx.node.outcome().unwrap_or(Failure::Cancelled))
    }
}

impl Future for CtxWait {
    type Output = Failure;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Failure> {
        if self.ctx.node.done() {
            return self.ready();
        }
        // Registered under the node's lock, where DONE is checked again: either the
        // finish takes (and wakes) the registration, or this sees DONE.
        match self.registered {
            // Polled again (a `select!` loop, a spurious wake-up, another task): keep the
            // registered waker if it wakes the same task, else replace it.
            Some(key) => {
                if !self.ctx.node.update_waker(key, cx.waker()) {
                    return self.ready();
                }
            }
            None => match self.ctx.node.add_waker(cx.waker().clone()) {
                Ok(key) => self.registered = Some(key),
                Err(waker) => {
                    drop(waker);
                    return self.ready();
                }
            },
        }
        Poll::Pending
    }
}

impl Drop for CtxWait {
    fn drop(&mut self) {
        if let Some(key) = self.registered.take()
            && !self.ctx.node.done()
        {
            self.ctx.node.remove_waker(key);
        }
    }
}

impl IntoFuture for &Ctx {
    type Output = Failure;
    type IntoFuture = CtxWait;
    fn into_future(self) -> CtxWait {
        self.wait()
    }
}

impl IntoFuture for Ctx {
    type Output = Failure;
    type IntoFuture = CtxWait;
    fn into_future(self) -> CtxWait {
        self.wait()
    }
}

/// Logs an error outcome through a context's logger (never a cancellation); the name is
/// the context's, or `<dropped>` once it is gone.
pub(crate) struct FailureReporter {
    logger: Arc<dyn Logger>,
    node: std::sync::Weak<Node>,
}

impl FailureReporter {
    pub(crate) fn report(&self, failure: Option<&Failure>) {
        if let Some(Failure::Error(e)) = failure {
            let name = self
                .node
                .upgrade()
                .map_or_else(|| "<dropped>".to_owned(), |n| display::full_name(&n));
            // The message is the error's text; the logger adds its type as a field
            // (SEMANTICS CTX 9).
            self.logger.exception(&name, &e.to_string(), Some(e));
        }
    }
}
