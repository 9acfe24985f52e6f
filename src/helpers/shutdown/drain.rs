//! [`Drain`]: cancel, wait up to a deadline, cut short what is left, report.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::report::{DrainEnd, ShutdownReport};
use crate::helpers::callbacks::run_caught;
use crate::helpers::ctx::Ctx;
use crate::helpers::error::Failure;
use crate::helpers::queue_manager::Streamer;
use crate::helpers::task::{AnyTask, Task};
use crate::helpers::task_holder::{TaskHolder, TaskHolderHandle};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One thing handed to a drain.
trait Part: Send {
    /// Notes what is running, before the context is finished: work that ends at once
    /// when it is (and is released on another thread) must still be in the report.
    fn begin(&mut self) {}
    /// Starts draining it; the future resolves once it has finished.
    fn start(&mut self) -> BoxFuture<()>;
    /// Writes it into the report once the wait is over (`start`'s future dropped);
    /// cancels at once what still runs.
    fn settle(self: Box<Self>, report: &mut ShutdownReport);
}

/// A registry of what must end at shutdown (task holders, tasks, queue managers), and
/// the call that ends it all with a deadline: [`run`](Self::run).
///
/// `run` finishes the context (cancels it, unless it is already done: then its outcome,
/// a signal say, is the cause), waits for everything handed over to finish, up to the
/// deadline or until the [force](Self::force_on) future resolves, cuts short at once
/// what still runs, and returns a [`ShutdownReport`]: what finished, what was cut short,
/// every error. Nothing that was running is absent: a holder's every held task is
/// listed, finished or cut short.
///
/// What "cut short" does to each part: a holder is dropped (its plain tasks aborted, its
/// context cancelled) and every task still held is aborted, scoped ones too; a task is
/// aborted; a queue manager is stopped (when the drain starts) and dropped (its running
/// sources are listed as its [`cut_short`](Streamer::cut_short) gives them).
///
/// # Example
/// ```
/// use machinery::helpers as hp;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let root = hp::Ctx::beginning("app");
/// let conns = hp::TaskHolder::builder(&root).name("conns").build();
/// conns.spawn_scoped("polite", |ctx| async move {
///     ctx.wait().await;
///     tokio::time::sleep(Duration::from_millis(100)).await; // says goodbye
/// });
/// conns.spawn_scoped("stuck", |_ctx| std::future::pending::<()>()); // ignores its ctx
///
/// let report = hp::Drain::new(&root).holder(conns).run(Duration::from_secs(1)).await;
/// assert_eq!(report.finished, ["app-->conns-->polite"]);
/// assert_eq!(report.cut_short, ["app-->conns-->stuck"]);
/// assert_eq!(report.end, hp::DrainEnd::DeadlineExceeded);
/// assert!(report.to_string().starts_with("shutdown report for app (cause: cancelled)"));
/// # }
/// ```
///
/// # Cancel safety
/// Dropping the `run` future drops everything handed over (holders and queue managers
/// cancel their work on drop; tasks detach and run on).
#[must_use = "a drain does nothing until `run` is awaited"]
pub struct Drain {
    ctx: Ctx,
    parts: Vec<Box<dyn Part>>,
    force: Option<BoxFuture<String>>,
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("ctx", &self.ctx.name())
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl Drain {
    /// A drain of `ctx`, with nothing handed over yet.
    pub fn new(ctx: &Ctx) -> Self {
        Drain {
            ctx: ctx.clone(),
            parts: Vec::new(),
            force: None,
        }
    }

    /// Hands a task holder over: the drain finishes it, and lists each of its held tasks.
    pub fn holder(mut self, holder: TaskHolder) -> Self {
        self.parts.push(Box::new(HolderPart {
            handle: holder.handle(),
            holder: Some(holder),
            seen: Vec::new(),
        }));
        self
    }

    /// Hands a task over (any output type); it is listed under its name, else its id.
    pub fn task<T: Send + 'static>(self, task: &Task<T>) -> Self {
        self.any_task(task.erased())
    }

    /// Hands a task over under `name` (the report's name for it).
    pub fn task_named<T: Send + 'static>(
        mut self,
        name: impl Into<String>,
        task: &Task<T>,
    ) -> Self {
        self.parts.push(Box::new(TaskPart {
            name: name.into(),
            task: task.erased(),
        }));
        self
    }

    /// Hands a type-erased task over.
    pub fn any_task(mut self, task: AnyTask) -> Self {
        self.parts.push(Box::new(TaskPart {
            name: task_name(None, &task),
            task,
        }));
        self
    }

    /// Hands a queue manager's streamer over, named `name` in the report: the drain
    /// stops the manager (if its context is not done yet), lists the sources its stop
    /// cut short, and closes it.
    pub fn streamer<V, C>(mut self, name: impl Into<String>, streamer: Streamer<V, C>) -> Self
    where
        V: Send + 'static,
        C: Clone + Send + Sync + 'static,
    {
        self.parts.push(Box::new(StreamerPart {
            name: name.into(),
            streamer: Some(streamer),
            cut: Vec::new(),
            closed: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }));
        self
    }

    /// Stops waiting when `force` resolves, before the deadline (a second signal:
    /// [`Signals::forced`](super::Signals::forced)); its output names why in the report.
    pub fn force_on<F>(mut self, force: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: fmt::Display,
    {
        self.force = Some(Box::pin(async move { force.await.to_string() }));
        self
    }

    /// Finishes the context (cancels it unless it is done), waits for everything handed
    /// over up to `deadline` (or the force), cuts short what is left and reports.
    ///
    /// # Cancel safety
    /// Dropping the future drops what was handed over; see the [type docs](Self).
    pub async fn run(self, deadline: Duration) -> ShutdownReport {
        let Drain {
            ctx,
            mut parts,
            force,
        } = self;
        let started = tokio::time::Instant::now();
        for part in &mut parts {
            part.begin();
        }
        ctx.cancel(); // no-op when it is done: its outcome stays the cause
        let cause = ctx.outcome();
        let waits = futures_util::future::join_all(parts.iter_mut().map(|p| p.start()));
        let force = async move {
            match force {
                Some(force) => force.await,
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            _ = waits => DrainEnd::Drained,
            _ = tokio::time::sleep(deadline) => DrainEnd::DeadlineExceeded,
            why = force => DrainEnd::Forced(why),
        };
        let mut report = ShutdownReport {
            ctx: ctx.name(),
            cause,
            end,
            elapsed: started.elapsed(),
            finished: Vec::new(),
            cut_short: Vec::new(),
            errors: Vec::new(),
            tree: None,
        };
        for part in parts {
            part.settle(&mut report);
        }
        if !report.cut_short.is_empty() {
            report.tree = Some(ctx.tree());
        }
        report
    }
}

/// A task's name as the tree shows it: its holder's context, then its own name.
fn task_name(holder: Option<&Ctx>, task: &AnyTask) -> String {
    let own = match task.name() {
        Some(name) => name.to_string(),
        None => format!("task {:?}", task.id()),
    };
    match holder {
        Some(ctx) => format!("{}-->{own}", ctx.name()),
        None => own,
    }
}

/// A finished task goes to `finished` (its error to `errors`); one still running is
/// cancelled and goes to `cut_short`.
fn settle_task(name: String, task: &AnyTask, report: &mut ShutdownReport) {
    if task.done() {
        if let Some(Failure::Error(e)) = task.failure() {
            report.error(name.clone(), &e);
        }
        report.finished.push(name);
    } else {
        task.cancel();
        report.cut_short.push(name);
    }
}

struct HolderPart {
    holder: Option<TaskHolder>,
    handle: TaskHolderHandle,
    /// The tasks held when the drain began.
    seen: Vec<AnyTask>,
}

impl Part for HolderPart {
    fn begin(&mut self) {
        self.seen = self.handle.iter().collect();
    }

    fn start(&mut self) -> BoxFuture<()> {
        match self.holder.take() {
            Some(holder) => Box::pin(holder.finish()),
            None => Box::pin(async {}),
        }
    }

    fn settle(self: Box<Self>, report: &mut ShutdownReport) {
        let HolderPart { handle, seen, .. } = *self;
        let mut tasks = seen;
        // Tasks added while draining and still held.
        for task in handle.iter() {
            if !tasks.contains(&task) {
                tasks.push(task);
            }
        }
        let ctx = handle.ctx();
        for task in &tasks {
            settle_task(task_name(Some(ctx), task), task, report);
        }
        for e in handle.failures() {
            report.error(ctx.name(), &e);
        }
        // Possibly the last handles: dropping a task's output is user code.
        for task in tasks {
            run_caught("dropping a drained task", || drop(task));
        }
    }
}

struct TaskPart {
    name: String,
    task: AnyTask,
}

impl Part for TaskPart {
    fn start(&mut self) -> BoxFuture<()> {
        let task = self.task.clone();
        Box::pin(async move {
            task.wait().await;
        })
    }

    fn settle(self: Box<Self>, report: &mut ShutdownReport) {
        let TaskPart { name, task } = *self;
        settle_task(name, &task, report);
        run_caught("dropping a drained task", || drop(task));
    }
}

struct StreamerPart<V, C> {
    name: String,
    streamer: Option<Streamer<V, C>>,
    /// The sources the stop cut short.
    cut: Vec<String>,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<V, C> Part for StreamerPart<V, C>
where
    V: Send + 'static,
    C: Clone + Send + Sync + 'static,
{
    fn start(&mut self) -> BoxFuture<()> {
        let Some(streamer) = self.streamer.take() else {
            return Box::pin(async {});
        };
        // The stop runs in the context's done callback, before `cancel` returns.
        streamer.ctx().cancel();
        self.cut = streamer
            .cut_short()
            .iter()
            .map(|c| format!("{}: source {:?}", self.name, c.sources))
            .collect();
        let closed = self.closed.clone();
        Box::pin(async move {
            streamer.close().await;
            closed.store(true, std::sync::atomic::Ordering::Release);
        })
    }

    fn settle(self: Box<Self>, report: &mut ShutdownReport) {
        // Acquire: pairs with the Release store after `close` returned.
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            report.finished.push(self.name);
        } else {
            report.cut_short.push(format!("{} (closing)", self.name));
        }
        report.cut_short.extend(self.cut);
    }
}
