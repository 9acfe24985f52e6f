//! The shared core of one queue manager: the entry queue, the source table, and the
//! turn model that ties them together (SEMANTICS, "Turn model").
//!
//! # Invariants
//! 1. The queue holds results and instructions in FIFO order: a step of a source
//!    (`Step`), an extension of a produced feed (`Extend`), the call of a produced
//!    function (`Call`), and `ValueStep`, the `Extend(Value)`, `Step` pair a step that
//!    produced a plain value queues, as one entry (the common case, one per item).
//!    Only the consumer takes entries, from the front.
//! 2. Every live source has one entry in `sources`. Its `body` is `None` only while the
//!    consumer steps it, a task's outcome is being taken, or its future is being spawned
//!    (user code runs with no lock held). Its [`Turn`] says who will touch it next.
//! 3. Once `stopped` is set, `Stopped` was put at the front; steps taken afterwards end
//!    their sources with the stop's failure, extensions still deliver, no future is
//!    spawned, and running tasks are cancelled.
//! 4. No user code runs under `state`'s lock, and no user value is dropped under it:
//!    bodies, futures, sources and contexts leave the table into [`Deferred`], which runs
//!    after unlocking, each piece under `catch_unwind`, so a panicking `Drop` cannot stop
//!    the rest (cancelling, waking, registering). Contexts are cloned and made
//!    (`make_empty_context`) when a result is handed out, outside the lock. What a
//!    source leaves unread (its body, a function not called, a future not spawned) is
//!    moved into its result, never dropped under the lock.
//! 5. No recursion grows with a user-controlled length: extending loops, deferred work
//!    is a work list, chains are flat ([`Sources`]).

mod stop;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::Waker;

use slab::Slab;
use tokio::runtime::Handle;

use super::feed::{Feed, FeedFn, FeedFuture};
use super::result::{QueueInput, QueueManagerResult, ResultContext, SourceId, Sources};
use super::sources::{self, Body, PendingSource, Polled, Schedule, Stopping, StreamSource, future};
use crate::helpers::debug::{Live, MANAGERS};
use crate::helpers::error::{Error, Failure};
use crate::helpers::protocols::WaitByCallback;
use crate::helpers::task::AnyTask;
use crate::sync::{Mutex, MutexGuard, lock};

/// The entry queue's capacity kept whatever happens: below it the queue never shrinks
/// (a steady manager never reallocates), above it a queue three quarters unused gives
/// half its capacity back.
pub(crate) const SHRINK_ABOVE: usize = 1024;

/// A source's context: shared by its results, cloned out when one is handed out.
pub(crate) type Ctxt<C> = Option<Arc<C>>;
/// A result as queued: its context is the source's (or `None` when the source had
/// none); [`Shared::resolve`] makes the [`QueueManagerResult`] handed out.
pub(crate) enum Raw<V, C> {
    Success {
        sources: Sources,
        value: V,
        context: Ctxt<C>,
    },
    Failure {
        sources: Sources,
        error: Failure,
        context: Ctxt<C>,
    },
    IterationStop {
        sources: Sources,
        error: Option<Failure>,
        context: Ctxt<C>,
    },
    Stopped {
        error: Option<Failure>,
    },
    /// A `Failure` or an `IterationStop` handing back what its source left unread:
    /// rare (once per source an error or the stop ended), so boxed, keeping every
    /// entry of the queue as small as before.
    Unread(Box<Unread<V, C>>),
}

/// The boxed body of [`Raw::Unread`].
pub(crate) struct Unread<V, C> {
    /// An `IterationStop` (else a `Failure`).
    end: bool,
    sources: Sources,
    error: Failure,
    context: Ctxt<C>,
    unread: Feed<V, C>,
}

/// One entry of the queue (invariant 1).
pub(crate) enum Entry<V, C> {
    /// A result, handed to the consumer.
    Result(Raw<V, C>),
    /// The next step of the iterator or stream at `(key, number)`.
    Step(usize, u64),
    /// Extend a feed produced by the source of `Sources`. Boxed: a feed other than a
    /// plain value (those are `ValueStep`) is rare per item, and unboxed it made every
    /// entry 8 bytes bigger.
    Extend(Box<(Feed<V, C>, Sources, Ctxt<C>)>),
    /// A plain value the iterator or stream at `(key, number)` produced, then that
    /// source's next step: the pair `Extend(Value)`, `Step` that a step producing a value
    /// queues, as one entry. Taking it does exactly what taking the two in a row does
    /// (the `Success` at the back, then the step), and nothing can come between them
    /// (only the consumer takes entries, and only `Stopped` goes to the front, ahead of
    /// both). The source is still in the table when it is taken (a source with a step
    /// queued leaves the table only when that step is taken), so its chain and context
    /// are read then, not cloned per item.
    ValueStep(V, usize, u64),
    /// Add a produced function as a `SYNC_FUNCTION` source under `Sources` (call it).
    Call(FeedFn<V, C>, Sources, Ctxt<C>),
}

/// Who touches a source next (invariant 2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Turn {
    /// A `Step` entry for it is queued.
    Queued,
    /// The consumer is stepping it (or its task's outcome is being taken).
    Busy,
    /// A stream woke while the consumer was polling it: poll it again.
    Notified,
    /// A stream waits for its waker, a task for its done callback.
    Waiting,
    /// A stream woke: it is on the `woken` list.
    Woken,
    /// A task source whose future is being spawned.
    Spawning,
}

struct Source<V, C> {
    number: u64,
    chain: Sources,
    context: Ctxt<C>,
    body: Option<Body<V, C>>,
    turn: Turn,
}

pub(crate) struct Shared<V, C> {
    state: Mutex<State<V, C>>,
    make_empty: Box<dyn Fn() -> C + Send + Sync>,
    runtime: Option<Handle>,
    this: Weak<dyn Schedule>,
    _live: Live<MANAGERS>,
}

pub(crate) struct State<V, C> {
    queue: VecDeque<Entry<V, C>>,
    /// Streams that woke while waiting, polled before the consumer's next entry.
    woken: VecDeque<(usize, u64)>,
    /// Streams that woke while being polled from `woken`: polled again only after the
    /// consumer took its next entry, so a stream that always wakes itself cannot keep
    /// the queue from moving.
    rewoken: Vec<(usize, u64)>,
    sources: Slab<Source<V, C>>,
    /// Sync functions being called now (inside `add_sync_function`, or a produced
    /// function's `Call`): live sources that are not in `sources`, so that
    /// `set_as_finished_if_out_of_sources` called from inside one does not put `Stopped`
    /// ahead of the feed it is about to return.
    running_functions: usize,
    next_number: u64,
    consumer: Option<Waker>,
    finish_when_empty: bool,
    /// A `Stopped { error: None }` is queued or was handed out: the stream ends once
    /// the queue is empty.
    idle_stop_queued: bool,
    stopped: Option<Failure>,
    /// Tasks cancelled by the stop, for `close()` to wait for.
    cancelled: Vec<AnyTask>,
    /// Sources the stop cut short (their chain and context).
    cut_short: Vec<(Sources, Ctxt<C>)>,
    /// The manager, for the wakers of streams.
    this: Weak<dyn Schedule>,
    /// The streamer is gone: nothing will take entries, new sources are dropped unrun.
    closed: bool,
    /// Generator sources the stop ended, to stop as `stop_async_generator` does (by
    /// `close()`, or by the consumer before the stream ends); dropped with the streamer
    /// unless `keep_generators`.
    stopping: Stopping<V, C>,
    /// The scoped form will close the manager after its body: a streamer dropped in the
    /// body leaves its generator sources in `stopping` for that close to stop.
    keep_generators: bool,
}

/// Work to do after the lock is released (invariant 4).
pub(crate) struct Deferred<V, C> {
    work: Vec<Work<V, C>>,
    waker: Option<Waker>,
}

/// One piece of deferred work.
enum Work<V, C> {
    /// A user value to drop.
    Trash(Box<dyn Send>),
    /// A task to cancel.
    Cancel(AnyTask),
    /// The future of the task source at `(key, number)`, to spawn.
    Spawn(usize, u64, FeedFuture<V, C>),
    /// The task of the source at `(key, number)`, to watch.
    Register(usize, u64, AnyTask),
}

impl<V, C> Default for Deferred<V, C> {
    fn default() -> Self {
        Deferred {
            work: Vec::new(),
            waker: None,
        }
    }
}

impl<V, C> Deferred<V, C> {
    fn is_empty(&self) -> bool {
        self.work.capacity() == 0 && self.waker.is_none()
    }

    fn trash(&mut self, value: impl Send + 'static) {
        self.work.push(Work::Trash(Box::new(value)));
    }

    fn cancel(&mut self, task: AnyTask) {
        self.work.push(Work::Cancel(task));
    }

    fn spawn(&mut self, key: usize, number: u64, fut: FeedFuture<V, C>) {
        self.work.push(Work::Spawn(key, number, fut));
    }

    fn register(&mut self, key: usize, number: u64, task: AnyTask) {
        self.work.push(Work::Register(key, number, task));
    }
}

/// What the consumer should do next.
pub(crate) enum Next<V, C> {
    /// Hand out this result.
    Yield(Raw<V, C>),
    /// The stream ends.
    End,
    /// Nothing to do: the waker was registered.
    Wait,
    /// Step (or poll) the source at `(key, number)`, then hand it back with
    /// [`Shared::stepped`].
    Step(usize, u64, Body<V, C>),
    /// Call a produced function (a new `SYNC_FUNCTION` source with this chain), then
    /// hand its feed back with [`Shared::called`].
    Call(FeedFn<V, C>, Sources, Ctxt<C>),
    /// An instruction ran and produced no result.
    Continue,
}

/// Runs `f`, ignoring a panic (user code in deferred work: the rest must still run).
fn caught(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let error = Error::from_panic(payload);
        tracing::error!(%error, "queue manager: user code panicked in deferred work");
    }
}

/// The chain of a new source: under `parent`, or a chain of its own.
fn chain_under(parent: Option<&Sources>, id: SourceId) -> Sources {
    parent.map_or_else(|| Sources::root(id), |p| p.child(id))
}

impl<V: Send + 'static, C: Send + Sync + 'static> Shared<V, C> {
    pub(crate) fn new(
        make_empty: Box<dyn Fn() -> C + Send + Sync>,
        runtime: Option<Handle>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<Self>| {
            let this: Weak<dyn Schedule> = weak.clone();
            Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    woken: VecDeque::new(),
                    rewoken: Vec::new(),
                    sources: Slab::new(),
                    running_functions: 0,
                    next_number: 0,
                    consumer: None,
                    finish_when_empty: false,
                    idle_stop_queued: false,
                    stopped: None,
                    cancelled: Vec::new(),
                    cut_short: Vec::new(),
                    this: this.clone(),
                    closed: false,
                    stopping: Stopping::default(),
                    keep_generators: false,
                }),
                make_empty,
                runtime,
                this,
                _live: Live::new(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<V, C>> {
        lock(&self.state)
    }

    /// Gives a raw result its context (user code: `C::default` or `make_empty_context`;
    /// called with no lock held; a panic there reaches the consumer's poll).
    #[inline]
    pub(crate) fn resolve(&self, raw: Raw<V, C>) -> QueueManagerResult<V, C> {
        let ctx = |c: Ctxt<C>| self.context(c);
        match raw {
            Raw::Success {
                sources,
                value,
                context,
            } => QueueManagerResult::Success {
                sources,
                value,
                context: ctx(context),
            },
            Raw::Failure {
                sources,
                error,
                context,
            } => QueueManagerResult::Failure {
                sources,
                error,
                context: ctx(context),
                unread: None,
            },
            Raw::IterationStop {
                sources,
                error,
                context,
            } => QueueManagerResult::IterationStop {
                sources,
                error,
                context: ctx(context),
                unread: None,
            },
            Raw::Unread(u) => {
                let Unread {
                    end,
                    sources,
                    error,
                    context,
                    unread,
                } = *u;
                let unread = Some(Box::new(unread));
                if end {
                    QueueManagerResult::IterationStop {
                        sources,
                        error: Some(error),
                        context: ctx(context),
                        unread,
                    }
                } else {
                    QueueManagerResult::Failure {
                        sources,
                        error,
                        context: ctx(context),
                        unread,
                    }
                }
            }
            Raw::Stopped { error } => QueueManagerResult::Stopped { error },
        }
    }

    /// A result's context: the source's (shared, O(1)), else the manager's empty
    /// context (`C::default()` or `make_empty_context()`: user code, called with no
    /// lock held).
    #[inline]
    pub(crate) fn context(&self, c: Ctxt<C>) -> ResultContext<C> {
        match c {
            Some(c) => ResultContext::shared_from(c),
            None => ResultContext::own((self.make_empty)()),
        }
    }

    /// Runs `f` on the state and the deferred work it leaves, waking the consumer.
    fn with_state<R>(&self, f: impl FnOnce(&mut State<V, C>, &mut Deferred<V, C>) -> R) -> R {
        let mut d = Deferred::default();
        let r = {
            let mut st = self.lock();
            let r = f(&mut st, &mut d);
            d.waker = st.consumer.take();
            r
        };
        self.run(d);
        r
    }

    /// `add_value`: extends `feed` as produced by a new `VALUE` source.
    pub(crate) fn add_value(&self, feed: Feed<V, C>, context: Ctxt<C>) -> SourceId {
        self.with_state(|st, d| {
            let id = st.new_id(QueueInput::Value);
            if st.closed {
                d.trash((feed, context));
            } else {
                st.extend(feed, Sources::root(id), context, d);
            }
            id
        })
    }

    /// `add_sync_function`: calls `f` inside the call, then extends its feed.
    pub(crate) fn add_function(
        &self,
        f: impl FnOnce() -> Feed<V, C>,
        context: Ctxt<C>,
    ) -> SourceId {
        let (id, closed) = {
            let mut st = self.lock();
            if !st.closed {
                st.running_functions += 1;
            }
            (st.new_id(QueueInput::SyncFunction), st.closed)
        };
        if closed {
            return id;
        }
        let out = sources::function::call(f);
        self.with_state(|st, d| {
            st.running_functions -= 1;
            st.called(out, Sources::root(id), context, d);
            id
        });
        id
    }

    /// Adds a source of any kind (not a value, an error or a function) with no parent.
    pub(crate) fn add_source(&self, feed: Feed<V, C>, context: Ctxt<C>) -> SourceId {
        self.with_state(|st, d| {
            if st.closed {
                let id = st.new_id(feed.kind().unwrap_or(QueueInput::Value));
                d.trash((feed, context));
                return id;
            }
            st.add_source_under(feed, None, context, d)
        })
    }

    /// Stops the manager: `Stopped(failure)` goes to the front (invariant 3).
    pub(crate) fn stop(&self, failure: Failure) {
        self.with_state(|st, d| st.stop(failure, d));
    }

    pub(crate) fn set_finish_when_empty(&self) {
        self.with_state(|st, _| {
            st.finish_when_empty = true;
            if st.stopped.is_none()
                && !st.idle_stop_queued
                && st.sources.is_empty()
                && st.running_functions == 0
                && st.queue.is_empty()
                && st.woken.is_empty()
            {
                st.idle_stop_queued = true;
                st.queue
                    .push_back(Entry::Result(Raw::Stopped { error: None }));
            }
        });
    }

    pub(crate) fn live_sources(&self) -> usize {
        let st = self.lock();
        st.sources.len() + st.running_functions
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped.is_some()
    }

    /// Takes the queued results, leaving the instructions queued in their order.
    pub(crate) fn take_results(&self) -> Vec<Raw<V, C>> {
        let mut st = self.lock();
        let mut results = Vec::new();
        let mut kept = VecDeque::new();
        for e in std::mem::take(&mut st.queue) {
            match e {
                Entry::Result(r) => results.push(r),
                other => kept.push_back(other),
            }
        }
        st.queue = kept;
        results
    }

    /// The entry queue's capacity (for the memory tests).
    pub(crate) fn queue_capacity(&self) -> usize {
        self.lock().queue.capacity()
    }

    /// The generator sources the stop ended, to stop.
    pub(crate) fn take_stopping(&self) -> Stopping<V, C> {
        std::mem::take(&mut self.lock().stopping)
    }

    /// `close()`: ends every generator source still live (the stop ended the others) as
    /// the stop ends a source, and takes all of them to stop.
    pub(crate) fn take_generators(&self) -> Stopping<V, C> {
        self.with_state(|st, d| {
            st.keep_generators = false;
            st.end_generators(d);
            std::mem::take(&mut st.stopping)
        })
    }

    /// Whether a streamer dropped now leaves its generator sources for a close to come
    /// (the scoped form), or drops them.
    pub(crate) fn keep_generators(&self, keep: bool) {
        self.lock().keep_generators = keep;
    }

    /// Tasks the stop cancelled that may still be running.
    pub(crate) fn take_cancelled(&self) -> Vec<AnyTask> {
        std::mem::take(&mut self.lock().cancelled)
    }

    /// The sources the stop cut short so far.
    pub(crate) fn cut_short(&self) -> Vec<(Sources, Ctxt<C>)> {
        self.lock().cut_short.clone()
    }

    /// Decides the consumer's next move; registers `waker` when there is nothing to do.
    pub(crate) fn next(&self, waker: &Waker) -> Next<V, C> {
        let mut d = Deferred::default();
        let next = self.lock().next(waker, &mut d);
        self.run(d);
        next
    }

    /// Hands back a source the consumer stepped; with `then` (the consumer's waker) also
    /// decides the next move in the same lock, unless handing it back left deferred
    /// work: that work runs user code (a `Drop` of an ended source may set the
    /// streamer's breaker), so the consumer then decides afresh after it, checking the
    /// breaker first (`None`).
    pub(crate) fn stepped(
        &self,
        key: usize,
        number: u64,
        body: Body<V, C>,
        polled: Polled<V, C>,
        then: Option<&Waker>,
    ) -> Option<Next<V, C>> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.stepped(key, number, body, polled, &mut d);
            then.filter(|_| d.is_empty()).map(|w| st.next(w, &mut d))
        };
        self.run(d);
        next
    }

    /// Hands back what a produced function returned; `then` as for
    /// [`stepped`](Self::stepped).
    pub(crate) fn called(
        &self,
        out: Result<Feed<V, C>, Failure>,
        chain: Sources,
        ctx: Ctxt<C>,
        then: Option<&Waker>,
    ) -> Option<Next<V, C>> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            // The consumer called the function its `Call` entry gave it (`next`).
            st.running_functions -= 1;
            st.called(out, chain, ctx, &mut d);
            then.filter(|_| d.is_empty()).map(|w| st.next(w, &mut d))
        };
        self.run(d);
        next
    }

    #[inline]
    fn run(&self, d: Deferred<V, C>) {
        if d.is_empty() {
            // The common case: a step that only produced a value. Nothing was ever put
            // in `d`, so forgetting it frees nothing and skips an out-of-line drop.
            std::mem::forget(d);
            return;
        }
        self.run_deferred(d);
    }

    /// Runs deferred work as a work list (invariant 5): taking a finished task's
    /// outcome or installing a spawned task may leave more work, which is queued here,
    /// not run recursively. Every piece runs under `catch_unwind` (invariant 4).
    #[inline(never)]
    fn run_deferred(&self, d: Deferred<V, C>) {
        let mut work = vec![d];
        while let Some(d) = work.pop() {
            let Deferred {
                work: pieces,
                waker,
            } = d;
            let mut trash = Vec::new();
            for piece in pieces {
                match piece {
                    Work::Cancel(t) => caught(move || {
                        t.cancel();
                    }),
                    Work::Spawn(key, number, fut) => work.push(self.spawned(key, number, fut)),
                    Work::Register(key, number, task) => {
                        if task.done() {
                            work.push(self.task_finished(key, number));
                            continue;
                        }
                        let target = self.this.clone();
                        caught(move || {
                            task.add_done_callback(Box::new(move || {
                                if let Some(t) = target.upgrade() {
                                    t.task_done(key, number);
                                }
                            }));
                        });
                    }
                    // Dropped last, after the tasks are cancelled and the consumer woken.
                    Work::Trash(t) => trash.push(t),
                }
            }
            if let Some(w) = waker {
                caught(move || w.wake());
            }
            for t in trash {
                caught(move || drop(t));
            }
        }
    }

    /// Spawns the future of the task source at `(key, number)` and installs the task.
    fn spawned(&self, key: usize, number: u64, fut: FeedFuture<V, C>) -> Deferred<V, C> {
        let handle = self.runtime.clone().or_else(|| Handle::try_current().ok());
        let task = match handle {
            Some(h) => {
                catch_unwind(AssertUnwindSafe(|| future::spawn(&h, fut))).map_err(sources::panicked)
            }
            None => {
                caught(move || drop(fut));
                Err(future::no_runtime())
            }
        };
        let mut d = Deferred::default();
        {
            let mut st = self.lock();
            st.install(key, number, task, &mut d);
            d.waker = st.consumer.take();
        }
        d
    }

    /// Takes a finished task's outcome (user code, no lock) and extends it.
    fn task_finished(&self, key: usize, number: u64) -> Deferred<V, C> {
        let Some(mut p) = self.lock().take_task(key, number) else {
            return Deferred::default();
        };
        let out = sources::task::take(&mut p);
        let mut d = Deferred::default();
        d.trash(p);
        {
            let mut st = self.lock();
            if let Some(s) = st.remove(key, number, &mut d) {
                st.called(out, s.chain.clone(), s.context.clone(), &mut d);
                d.trash(s);
            }
            d.waker = st.consumer.take();
        }
        d
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Schedule for Shared<V, C> {
    fn stream_woke(&self, key: usize, number: u64) {
        let waker = {
            let mut st = self.lock();
            let Some(s) = st.sources.get_mut(key) else {
                return;
            };
            if s.number != number {
                return;
            }
            match s.turn {
                Turn::Waiting => {
                    s.turn = Turn::Woken;
                    st.woken.push_back((key, number));
                }
                Turn::Busy => {
                    s.turn = Turn::Notified;
                    return;
                }
                _ => return,
            }
            st.consumer.take()
        };
        if let Some(w) = waker {
            caught(move || w.wake());
        }
    }

    fn task_done(&self, key: usize, number: u64) {
        let d = self.task_finished(key, number);
        self.run(d);
    }
}

impl<V, C> Shared<V, C> {
    /// The scoped form will not close after all: drops the generator sources kept.
    pub(crate) fn drop_kept_generators(&self) {
        let kept = {
            let mut st = lock(&self.state);
            st.keep_generators = false;
            std::mem::take(&mut st.stopping)
        };
        drop(kept);
    }

    /// The streamer is dropped: drops everything (`clear`), except the generator sources
    /// (`stopping`, and the live ones) when a close is to come (`keep_generators`).
    pub(crate) fn dropped(&self, stopping: Stopping<V, C>) {
        let dropped = {
            let mut st = lock(&self.state);
            if st.keep_generators {
                let failure = st.stopped.clone().unwrap_or(Failure::Cancelled);
                for (_, key) in st.live_generators() {
                    // Out of the table (the rest of the source is dropped by `clear`).
                    if let Some(Ok(stream)) = st.sources[key].body.take().map(Body::into_generator)
                    {
                        st.stopping.push(stream, failure.clone());
                    }
                }
                st.stopping.append(stopping);
                None
            } else {
                Some(stopping)
            }
        };
        drop(dropped);
        self.clear();
    }

    /// Drops everything the manager holds (the streamer is gone): each piece on its own,
    /// so a panicking `Drop` does not keep the others.
    pub(crate) fn clear(&self) {
        let (queue, sources, woken, stopping) = {
            let mut st = lock(&self.state);
            st.closed = true;
            let stopping = if st.keep_generators {
                Stopping::default()
            } else {
                std::mem::take(&mut st.stopping)
            };
            (
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.sources),
                std::mem::take(&mut st.woken),
                stopping,
            )
        };
        drop(woken);
        // Each on its own (`Stopping`'s `Drop`): sync cleanup only, there is no async drop.
        drop(stopping);
        for e in queue {
            caught(move || drop(e));
        }
        for (_, s) in sources {
            caught(move || drop(s));
        }
    }
}

impl<V, C> Drop for Shared<V, C> {
    fn drop(&mut self) {
        // Drop what is left one piece at a time, so a panicking `Drop` of one source
        // (or a second one while unwinding) cannot abort or leak the rest.
        self.clear();
    }
}

impl<V, C> State<V, C> {
    /// The live generator sources as (source number, table key), in the order added.
    fn live_generators(&self) -> Vec<(u64, usize)> {
        let mut live: Vec<(u64, usize)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.body.as_ref().is_some_and(Body::is_generator))
            .map(|(key, s)| (s.number, key))
            .collect();
        live.sort_unstable();
        live
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    fn new_id(&mut self, kind: QueueInput) -> SourceId {
        self.next_number += 1;
        SourceId::new(kind, self.next_number)
    }

    fn push(&mut self, r: Raw<V, C>) {
        self.queue.push_back(Entry::Result(r));
    }

    fn failure(&mut self, sources: Sources, error: Failure, context: Ctxt<C>) {
        self.push(Raw::Failure {
            sources,
            error,
            context,
        });
    }

    /// An `IterationStop` carrying `error`, handing back `unread` when there is one.
    fn ended(
        &mut self,
        sources: Sources,
        error: Failure,
        context: Ctxt<C>,
        unread: Option<Feed<V, C>>,
    ) {
        self.push(match unread {
            Some(unread) => Raw::Unread(Box::new(Unread {
                end: true,
                sources,
                error,
                context,
                unread,
            })),
            None => Raw::IterationStop {
                sources,
                error: Some(error),
                context,
            },
        });
    }

    /// A source the stop kept from starting (a produced function, a future): cut short,
    /// a `Failure` carrying the stop's failure at the back, the work handed back in it.
    fn refused(&mut self, sources: Sources, failure: Failure, context: Ctxt<C>, work: Feed<V, C>) {
        self.cut_short.push((sources.clone(), context.clone()));
        self.push(Raw::Unread(Box::new(Unread {
            end: false,
            sources,
            error: failure,
            context,
            unread: work,
        })));
    }

    /// Removes the source at `(key, number)`; the caller trashes it.
    fn remove(&mut self, key: usize, number: u64, _d: &mut Deferred<V, C>) -> Option<Source<V, C>> {
        match self.sources.get(key) {
            Some(s) if s.number == number => Some(self.sources.remove(key)),
            _ => None,
        }
    }

    /// Gives back half of the entry queue's capacity once it is three quarters unused
    /// (a burst was consumed), as tokio's channels free their blocks. Halving keeps the
    /// cost amortised O(1) per entry: each shrink moves fewer than a quarter of the
    /// capacity it frees, and the queue must drain by half again before the next one.
    #[cold]
    #[inline(never)]
    fn shrink_queue(&mut self) {
        let target = (self.queue.capacity() / 2).max(SHRINK_ABOVE);
        self.queue.shrink_to(target);
        if self.woken.capacity() > SHRINK_ABOVE && self.woken.len() < self.woken.capacity() / 4 {
            self.woken.shrink_to(SHRINK_ABOVE);
        }
    }

    fn next(&mut self, waker: &Waker, d: &mut Deferred<V, C>) -> Next<V, C> {
        loop {
            while let Some((key, number)) = self.woken.pop_front() {
                if let Some(s) = self.sources.get_mut(key)
                    && s.number == number
                    && s.turn == Turn::Woken
                    && let Some(body) = s.body.take()
                {
                    s.turn = Turn::Busy;
                    return Next::Step(key, number, body);
                }
            }
            let entry = self.queue.pop_front();
            // One compare per entry; the shrink itself is rare (module docs, "Memory").
            if self.queue.capacity() > SHRINK_ABOVE && self.queue.len() < self.queue.capacity() / 4
            {
                self.shrink_queue();
            }
            if !self.rewoken.is_empty() {
                self.woken.extend(self.rewoken.drain(..));
                if entry.is_none() {
                    continue;
                }
            }
            match entry {
                Some(Entry::Result(r)) => return Next::Yield(r),
                Some(Entry::Step(key, number)) => {
                    if let Some(next) = self.take_step(key, number, d) {
                        return next;
                    }
                }
                Some(Entry::ValueStep(value, key, number)) => {
                    // The extension: a `Success` at the back.
                    let Some(s) = self.sources.get_mut(key).filter(|s| s.number == number) else {
                        // Not reached (see `Entry::ValueStep`); the value is user code to
                        // drop. Its step would be stale: nothing more to do.
                        d.trash(value);
                        continue;
                    };
                    self.queue.push_back(Entry::Result(Raw::Success {
                        sources: s.chain.clone(),
                        value,
                        context: s.context.clone(),
                    }));
                    // Then the step, as taking a `Step` entry next would: streams that
                    // woke meanwhile come first. The common case (none woke, the manager
                    // runs) is `take_step`'s without looking the source up again.
                    if self.woken.is_empty()
                        && self.stopped.is_none()
                        && s.turn == Turn::Queued
                        && let Some(body) = s.body.take()
                    {
                        s.turn = Turn::Busy;
                        return Next::Step(key, number, body);
                    }
                    if !self.woken.is_empty() {
                        self.queue.push_front(Entry::Step(key, number));
                        continue;
                    }
                    if let Some(next) = self.take_step(key, number, d) {
                        return next;
                    }
                }
                Some(Entry::Extend(extension)) => {
                    let (feed, chain, ctx) = *extension;
                    // O(1) and adds at most one entry: no need to leave the lock.
                    self.extend(feed, chain, ctx, d);
                    continue;
                }
                Some(Entry::Call(f, chain, ctx)) => {
                    let id = self.new_id(QueueInput::SyncFunction);
                    if let Some(failure) = self.stopped.clone() {
                        // Nothing new starts after the stop (SEMANTICS): the function is
                        // not called; it comes back in its `Failure`, and is cut short.
                        self.refused(chain.child(id), failure, ctx, Feed::Function(f));
                        continue;
                    }
                    // Live while the consumer calls it; `Shared::called` ends that.
                    self.running_functions += 1;
                    return Next::Call(f, chain.child(id), ctx);
                }
                None => {
                    // A task that finished before the stop still delivers (SEMANTICS): its
                    // done callback may not have queued its outcome yet (another thread,
                    // or between its two locks), so the end waits for it; the callback
                    // wakes the consumer. After a stop only such tasks are left in the
                    // table: every other source was ended or has a step queued.
                    let delivering = self.stopped.is_some()
                        && self.sources.iter().any(|(_, s)| {
                            matches!(s.turn, Turn::Waiting | Turn::Woken | Turn::Busy)
                        });
                    if !delivering && (self.stopped.is_some() || self.idle_stop_queued) {
                        self.idle_stop_queued = false;
                        return Next::End;
                    }
                    if self.finish_when_empty
                        && self.stopped.is_none()
                        && self.sources.is_empty()
                        && self.running_functions == 0
                        && self.woken.is_empty()
                    {
                        self.idle_stop_queued = true;
                        self.push(Raw::Stopped { error: None });
                        continue;
                    }
                    match &self.consumer {
                        Some(w) if w.will_wake(waker) => {}
                        _ => {
                            if let Some(old) = self.consumer.replace(waker.clone()) {
                                d.trash(old);
                            }
                        }
                    }
                    return Next::Wait;
                }
            }
        }
    }

    /// Ends the live generator sources as the stop ends a source (kept in `stopping`).
    fn end_generators(&mut self, d: &mut Deferred<V, C>) {
        let failure = self.stopped.clone().unwrap_or(Failure::Cancelled);
        for (number, key) in self.live_generators() {
            self.end_cut_short(key, number, failure.clone(), d);
        }
    }

    /// Takes the `Step` entry of the source at `(key, number)`: its body for the
    /// consumer to step, or its end when the manager stopped; `None` when the entry is
    /// stale.
    #[inline]
    fn take_step(&mut self, key: usize, number: u64, d: &mut Deferred<V, C>) -> Option<Next<V, C>> {
        let s = self.sources.get_mut(key)?;
        if s.number != number || s.turn != Turn::Queued {
            return None;
        }
        if let Some(failure) = self.stopped.clone() {
            self.end_cut_short(key, number, failure, d);
            return Some(Next::Continue);
        }
        let body = s.body.take()?;
        s.turn = Turn::Busy;
        Some(Next::Step(key, number, body))
    }

    /// Ends an iterator or stream because the manager stopped: `IterationStop` with the
    /// stop's failure at the back, and the source is reported as cut short.
    ///
    /// A generator source is kept to be stopped as `stop_async_generator` does (throw
    /// `failure` in, let it clean up), not dropped.
    fn end_cut_short(&mut self, key: usize, number: u64, failure: Failure, d: &mut Deferred<V, C>) {
        if let Some(mut s) = self.remove(key, number, d) {
            self.cut_short.push((s.chain.clone(), s.context.clone()));
            let kind = s.chain.producer().kind();
            let unread = match s.body.take().map(Body::into_generator) {
                Some(Ok(stream)) => {
                    self.stopping.push(stream, failure.clone());
                    None
                }
                Some(Err(body)) => body.into_unread(kind),
                None => None,
            };
            self.ended(s.chain.clone(), failure, s.context.clone(), unread);
            d.trash(s);
        }
    }

    fn stepped(
        &mut self,
        key: usize,
        number: u64,
        body: Body<V, C>,
        polled: Polled<V, C>,
        d: &mut Deferred<V, C>,
    ) {
        let Some(s) = self.sources.get_mut(key).filter(|s| s.number == number) else {
            d.trash(body);
            return;
        };
        match polled {
            Polled::Item(Feed::Value(value)) => {
                s.body = Some(body);
                s.turn = Turn::Queued;
                self.queue.push_back(Entry::ValueStep(value, key, number));
            }
            Polled::Item(feed) => {
                s.body = Some(body);
                s.turn = Turn::Queued;
                let entry = Entry::Extend(Box::new((feed, s.chain.clone(), s.context.clone())));
                self.queue.push_back(entry);
                self.queue.push_back(Entry::Step(key, number));
            }
            Polled::Pending => {
                s.body = Some(body);
                if let Some(failure) = self.stopped.clone() {
                    s.turn = Turn::Queued;
                    self.end_cut_short(key, number, failure, d);
                } else if s.turn == Turn::Notified {
                    s.turn = Turn::Woken;
                    self.rewoken.push((key, number));
                } else {
                    s.turn = Turn::Waiting;
                }
            }
            Polled::Fail(error, own) => {
                if let Some(s) = self.remove(key, number, d) {
                    // The failure carries the error's own context (`with_context` on the
                    // error) if it has one; the end carries the source's, and hands the
                    // source back (what it left unread).
                    let failure_ctx = own.or_else(|| s.context.clone());
                    self.failure(s.chain.clone(), error.clone(), failure_ctx);
                    let unread = body.into_unread(s.chain.producer().kind());
                    self.ended(s.chain.clone(), error, s.context.clone(), unread);
                    d.trash(s);
                } else {
                    d.trash(body);
                    if let Some(own) = own {
                        d.trash(own);
                    }
                }
            }
            Polled::End => {
                d.trash(body);
                if let Some(s) = self.remove(key, number, d) {
                    self.push(Raw::IterationStop {
                        sources: s.chain.clone(),
                        error: None,
                        context: s.context.clone(),
                    });
                    d.trash(s);
                }
            }
        }
    }

    /// What a function (or a finished task) of chain `chain` gave: extended, or a
    /// `Failure` at the back.
    fn called(
        &mut self,
        out: Result<Feed<V, C>, Failure>,
        chain: Sources,
        ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) {
        match out {
            Ok(feed) => self.extend(feed, chain, ctx, d),
            Err(error) => self.failure(chain, error, ctx),
        }
    }

    /// Extends a feed produced by the source of `chain` (SEMANTICS, "Extending"): a
    /// value is a `Success` at the back, a function a `Call` at the back, any other
    /// source a new source under `chain`.
    fn extend(
        &mut self,
        mut feed: Feed<V, C>,
        chain: Sources,
        mut ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) {
        loop {
            match feed {
                Feed::WithContext(inner, context) => {
                    // The producer's context may be the last handle: its drop is user
                    // code, after unlocking.
                    if let Some(old) = ctx.replace(context) {
                        d.trash(old);
                    }
                    feed = *inner;
                    continue;
                }
                Feed::Value(value) => self.push(Raw::Success {
                    sources: chain,
                    value,
                    context: ctx,
                }),
                Feed::Error(e) | Feed::ItemError(e) => self.failure(chain, Failure::Error(e), ctx),
                Feed::Function(f) => self.queue.push_back(Entry::Call(f, chain, ctx)),
                source => {
                    self.add_source_under(source, Some(&chain), ctx, d);
                }
            }
            return;
        }
    }

    /// Adds a source (an iterator, stream, future or task) under `parent`.
    fn add_source_under(
        &mut self,
        feed: Feed<V, C>,
        parent: Option<&Sources>,
        ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) -> SourceId {
        let kind = feed.kind().unwrap_or(QueueInput::Value);
        let id = self.new_id(kind);
        let chain = chain_under(parent, id);
        match feed {
            Feed::Generator(it) | Feed::Iterator(it) => {
                let key = self.insert(id, chain, ctx, Body::Iter(it), Turn::Queued);
                self.queue.push_back(Entry::Step(key, id.number()));
            }
            Feed::Stream(s) => {
                let key = self.sources.vacant_key();
                let body = Body::NewStream(Box::new(StreamSource::new(
                    s,
                    self.this.clone(),
                    key,
                    id.number(),
                )));
                self.insert(id, chain, ctx, body, Turn::Queued);
                self.queue.push_back(Entry::Step(key, id.number()));
            }
            Feed::Future(fut) => {
                // `add_coroutine`: a COROUTINE source that spawns the future and adds
                // that task as a TASK source under it.
                if let Some(failure) = self.stopped.clone() {
                    // Nothing new starts after the stop: the future comes back unspawned.
                    self.refused(chain, failure, ctx, Feed::Future(fut));
                    return id;
                }
                let task_id = self.new_id(QueueInput::Task);
                let task_chain = chain.child(task_id);
                let key = self.insert(task_id, task_chain, ctx, None, Turn::Spawning);
                d.spawn(key, task_id.number(), fut);
            }
            Feed::Task(t) => {
                let p = t.into_inner();
                let task = p.handle();
                if let Some(failure) = self.stopped.clone()
                    && !task.done()
                {
                    d.cancel(task.clone());
                    self.cancelled.push(task);
                    d.trash(p);
                    self.cut_short.push((chain.clone(), ctx.clone()));
                    self.failure(chain, failure, ctx);
                    return id;
                }
                let key = self.insert(id, chain, ctx, Body::Task(p), Turn::Waiting);
                d.register(key, id.number(), task);
            }
            other => {
                // Values, errors and functions are extended, not added; a context
                // wrapper is unwrapped by `extend`.
                self.extend(other, chain, ctx, d);
            }
        }
        id
    }

    fn insert(
        &mut self,
        id: SourceId,
        chain: Sources,
        context: Ctxt<C>,
        body: impl Into<Option<Body<V, C>>>,
        turn: Turn,
    ) -> usize {
        self.sources.insert(Source {
            number: id.number(),
            chain,
            context,
            body: body.into(),
            turn,
        })
    }

    /// Installs a spawned task in its source (or fails the source).
    fn install(
        &mut self,
        key: usize,
        number: u64,
        task: Result<Box<dyn PendingSource<V, C>>, Failure>,
        d: &mut Deferred<V, C>,
    ) {
        let valid = matches!(self.sources.get(key), Some(s) if s.number == number);
        match task {
            Ok(p) if !valid => {
                d.cancel(p.handle());
                d.trash(p);
            }
            Ok(p) => {
                let task = p.handle();
                if let Some(failure) = self.stopped.clone() {
                    d.cancel(task.clone());
                    self.cancelled.push(task);
                    d.trash(p);
                    let s = self.sources.remove(key);
                    self.cut_short.push((s.chain.clone(), s.context.clone()));
                    self.failure(s.chain.clone(), failure, s.context.clone());
                    d.trash(s);
                    return;
                }
                let s = &mut self.sources[key];
                s.body = Some(Body::Task(p));
                s.turn = Turn::Waiting;
                d.register(key, number, task);
            }
            Err(error) => {
                if let Some(s) = self.remove(key, number, d) {
                    self.failure(s.chain.clone(), error, s.context.clone());
                    d.trash(s);
                }
            }
        }
    }

    /// Takes a waiting task source's body to take its outcome.
    fn take_task(&mut self, key: usize, number: u64) -> Option<Box<dyn PendingSource<V, C>>> {
        let s = self.sources.get_mut(key)?;
        if s.number != number || s.turn != Turn::Waiting {
            return None;
        }
        match s.body.take() {
            Some(Body::Task(p)) => {
                s.turn = Turn::Busy;
                Some(p)
            }
            other => {
                s.body = other;
                None
            }
        }
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    /// A queued entry stays six words (48 bytes for `usize` values): results handing
    /// back unread work are boxed (`Raw::Unread`), so 1 M queued values take 48 MiB,
    /// not more.
    #[test]
    fn an_entry_of_the_queue_stays_six_words() {
        assert_eq!(size_of::<super::Entry<usize, ()>>(), 48);
        assert_eq!(size_of::<super::Raw<usize, ()>>(), 48);
    }
}
