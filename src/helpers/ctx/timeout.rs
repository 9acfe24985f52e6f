//! Timeouts: `async_with_timeout` (the seed's) and children with a deadline (Go's
//! `WithTimeout` / `WithDeadline`).

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use super::super::error::{DeadlineExceeded, Error, Failure, Outcome};
use super::super::event::Event;
use super::Ctx;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

enum Work<T> {
    /// A future that cannot observe a context: dropped at the timeout.
    Plain(BoxFuture<T>),
    /// Work given a child context: that context is finished at the timeout and the work
    /// is awaited until it returns.
    Scoped(Box<dyn FnOnce(Ctx) -> BoxFuture<T> + Send>),
}

/// The seed's `async_with_timeout`: a builder, awaited for the outcome.
///
/// Options and defaults (the seed's): `name` (`""`), `silent` (`true`: a failure is not
/// logged), `timeout` (10 s), `timeout_event` (set only when the timeout cut the work
/// short, before the work sees the cancellation, never after the call returned),
/// `timeout_error` (what the call returns at the timeout; default `Cancelled`).
///
/// At the timeout the event is set first; the scoped form then yields to the scheduler
/// once, so tasks waiting on the event run before the work observes its context
/// finishing. When the context is already done as the call starts, its outcome is
/// returned at once and the work is never polled (the scoped form's closure is not
/// called).
///
/// The work runs under a child context named `async_with_timeout[NAME]`; when the parent
/// context finishes first, the work is cut short the same way and the parent's outcome
/// is returned (the event is not set).
///
/// Resolves to the work's value, `Failure::Error(Panicked)` if it panicked, or the
/// timeout/parent failure, and only after the work has been dropped (plain) or has
/// returned (scoped).
///
/// # Example
/// ```
/// use machinery::helpers as hp;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let ev = hp::Event::new();
/// let out = ctx
///     .async_with_timeout(tokio::time::sleep(Duration::from_secs(20)))
///     .name("slow")
///     .timeout(Duration::from_secs(1))
///     .timeout_event(&ev)
///     .timeout_error(hp::Error::msg("too slow"))
///     .await;
/// assert_eq!(out.unwrap_err().to_string(), "too slow");
/// assert!(ev.is_set());
/// # }
/// ```
///
/// # Cancel safety
/// Dropping the future drops the work (its synchronous cleanup runs) and cancels the
/// child context.
#[must_use = "futures do nothing unless awaited"]
pub struct WithTimeout<T> {
    ctx: Ctx,
    work: Work<T>,
    name: Cow<'static, str>,
    silent: bool,
    timeout: Duration,
    timeout_event: Option<Event>,
    timeout_error: Option<Error>,
}

impl<T> fmt::Debug for WithTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithTimeout")
            .field("name", &self.name)
            .field("silent", &self.silent)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> WithTimeout<T> {
    fn new(ctx: &Ctx, work: Work<T>) -> Self {
        WithTimeout {
            ctx: ctx.clone(),
            work,
            name: Cow::Borrowed(""),
            silent: true,
            timeout: Duration::from_secs(10),
            timeout_event: None,
            timeout_error: None,
        }
    }

    pub(super) fn plain<F: Future<Output = T> + Send + 'static>(ctx: &Ctx, fut: F) -> Self {
        Self::new(ctx, Work::Plain(Box::pin(fut)))
    }

    pub(super) fn scoped<F, Fut>(ctx: &Ctx, work: F) -> Self
    where
        F: FnOnce(Ctx) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Self::new(
            ctx,
            Work::Scoped(Box::new(move |c| Box::pin(work(c)) as BoxFuture<T>)),
        )
    }

    /// Names the work (its child context is `async_with_timeout[NAME]`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }
    /// Whether a failure of the work goes unlogged (default `true`).
    pub fn silent(mut self, silent: bool) -> Self {
        self.silent = silent;
        self
    }
    /// How long the work may run (default 10 s). Zero cuts it short at once.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// An event set when the timeout cuts the work short.
    pub fn timeout_event(mut self, event: &Event) -> Self {
        self.timeout_event = Some(event.clone());
        self
    }
    /// The error returned at the timeout instead of `Cancelled`.
    pub fn timeout_error(mut self, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.timeout_error = Some(Error::new(err));
        self
    }

    async fn run(self) -> Outcome<T> {
        let WithTimeout {
            ctx,
            work,
            name,
            silent,
            timeout,
            timeout_event,
            timeout_error,
        } = self;
        // Already done: that outcome, and the work is never polled (a scoped work's
        // closure is not even called).
        if let Some(f) = ctx.outcome() {
            return Err(f);
        }
        let child = ctx
            .child(Cow::Owned(format!("async_with_timeout[{name}]")))
            .drop_guard();
        let (fut, observes) = match work {
            Work::Plain(f) => (f, false),
            Work::Scoped(make) => (make(child.ctx().clone()), true),
        };
        let mut fut = AssertUnwindSafe(fut).catch_unwind();
        let mut event_set = false;
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        let cut = tokio::select! {
            biased;
            r = &mut fut => {
                let outcome = r.map_err(|p| Failure::Error(Error::from_panic(p)));
                if let (Err(Failure::Error(e)), false) = (&outcome, silent) {
                    child.log_exception("async_with_timeout work failed", e);
                }
                return outcome;
            }
            _ = &mut sleep => {
                if let Some(ev) = &timeout_event {
                    ev.set();
                    event_set = true;
                }
                timeout_error.map_or(Failure::Cancelled, Failure::Error)
            }
            f = ctx.wait() => f,
        };
        if event_set && observes {
            // Tasks waiting on the event run before the work observes its context
            // finishing (SEMANTICS CTX 10): one turn of the scheduler between the two.
            tokio::task::yield_now().await;
        }
        if observes {
            match &cut {
                Failure::Cancelled => child.cancel(),
                Failure::Error(e) => child.set_exception(e.clone()),
            };
            let _ = fut.await; // the work cleans up and returns
        } else {
            drop(fut);
        }
        Err(cut)
    }
}

impl<T: Send + 'static> IntoFuture for WithTimeout<T> {
    type Output = Outcome<T>;
    type IntoFuture = BoxFuture<Outcome<T>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl Ctx {
    /// A child that finishes itself with [`DeadlineExceeded`] after `timeout`.
    ///
    /// A zero `timeout` gives a child that is already done; one too large for an instant
    /// (`Duration::MAX`) gives a child without a deadline, never a panic.
    ///
    /// # Panics
    /// Outside a tokio runtime with timers enabled (unless `timeout` is zero).
    #[track_caller]
    pub fn child_with_timeout(&self, name: impl Into<Cow<'static, str>>, timeout: Duration) -> Ctx {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.child_with_deadline(name, deadline),
            None => self.child(name),
        }
    }

    /// A child that finishes itself with [`DeadlineExceeded`] at `deadline` (Go's
    /// `WithDeadline`): `cancelled()` stays false and `exception()` gives the cause.
    ///
    /// The timer is a small task that ends as soon as the child finishes for any reason
    /// (or is dropped), so abandoned deadlines hold nothing. A deadline already passed
    /// finishes the child before this returns.
    ///
    /// # Panics
    /// Outside a tokio runtime with timers enabled (unless the deadline has passed).
    #[track_caller]
    pub fn child_with_deadline(
        &self,
        name: impl Into<Cow<'static, str>>,
        deadline: Instant,
    ) -> Ctx {
        let child = self.child(name);
        arm_deadline(&child, deadline);
        child
    }

    /// A root (as [`Ctx::beginning`]) that finishes itself with [`DeadlineExceeded`]
    /// after `timeout`: the whole program's budget, without a child made only to carry
    /// it. Its children finish with it and report the same cause.
    ///
    /// A zero `timeout` gives a root that is already done; one too large for an instant
    /// (`Duration::MAX`) gives a root without a deadline, never a panic. For a logger or
    /// runtime as well, use [`Ctx::beginning_with`] and [`Ctx::child_with_timeout`].
    ///
    /// ```
    /// use machinery::helpers as hp;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let root = hp::Ctx::beginning_with_timeout("job", Duration::from_secs(30));
    /// let step = root.child("step");
    /// let how = step.wait().await;
    /// assert_eq!(start.elapsed(), Duration::from_secs(30));
    /// assert!(how.error().unwrap().is::<hp::DeadlineExceeded>());
    /// assert!(!root.cancelled());
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime with timers enabled (unless `timeout` is zero).
    #[track_caller]
    pub fn beginning_with_timeout(name: impl Into<Cow<'static, str>>, timeout: Duration) -> Ctx {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Ctx::beginning_with_deadline(name, deadline),
            None => Ctx::beginning(name),
        }
    }

    /// A root that finishes itself with [`DeadlineExceeded`] at `deadline`; see
    /// [`Ctx::beginning_with_timeout`] and [`Ctx::child_with_deadline`] (the same timer:
    /// a small task that ends when the root finishes or is dropped). A deadline already
    /// passed finishes the root before this returns.
    ///
    /// # Panics
    /// Outside a tokio runtime with timers enabled (unless the deadline has passed).
    #[track_caller]
    pub fn beginning_with_deadline(name: impl Into<Cow<'static, str>>, deadline: Instant) -> Ctx {
        let root = Ctx::beginning(name);
        arm_deadline(&root, deadline);
        root
    }
}

/// Finishes `ctx` with [`DeadlineExceeded`] at `deadline` (at once if it has passed),
/// through a timer task on its runtime that holds it only weakly and is aborted as soon
/// as `ctx` finishes for any reason.
#[track_caller]
fn arm_deadline(ctx: &Ctx, deadline: Instant) {
    if deadline <= Instant::now() {
        ctx.set_exception(DeadlineExceeded);
        return;
    }
    let weak = crate::sync::Arc::downgrade(&ctx.node);
    let handle = ctx
        .runtime()
        .unwrap_or_else(tokio::runtime::Handle::current);
    let timer = handle.spawn(async move {
        tokio::time::sleep_until(deadline).await;
        if let Some(node) = weak.upgrade() {
            Ctx::from_node(node).set_exception(DeadlineExceeded);
        }
    });
    let abort = timer.abort_handle();
    ctx.add_done_callback(move |_| abort.abort());
}
