//! [`Streamer`]: the stream of results of a queue manager (the seed's `Streamer`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;

use super::core::{Local, Next, Shared};
use super::result::{QueueManagerResult, ResultContext, Sources};
use super::sources::{Stopping, function};
use crate::helpers::ctx::{Ctx, CtxGuard};
use crate::helpers::event::Event;
use crate::helpers::wait::WaitDone;

/// The results of a queue manager, as a [`Stream`].
///
/// Polling the streamer is what drives the turn model: each poll first polls the
/// streams that woke, then takes entries from the front of the queue: an instruction
/// (a step of an iterator or stream, an extension, the call of a produced function)
/// runs and yields nothing, a result is handed out. Futures and tasks run on their own;
/// their results are queued when they finish.
///
/// # Ending (fused)
/// The stream ends (`None`):
/// - when the [`breaker`](Self::breaker) is set: what is queued stays for
///   [`remaining`](Self::remaining) and no source is advanced;
/// - when the manager stopped (its context finished, or it was closed) and the queue is
///   empty: `Stopped { error }` came first, ahead of what was queued; the generator
///   sources the stop ended are stopped (their async cleanup awaited) before it ends;
/// - after `Stopped { error: None }` (`set_as_finished_if_out_of_sources`) once the
///   queue is empty.
///
/// Once it returned `None` it stays ended ([`FusedStream`]); [`resume`](Self::resume)
/// starts a new iteration (the seed's second `async for` over the same streamer), for
/// instance after clearing the breaker or adding sources after `Stopped`.
///
/// # Cancel safety
/// `next()` is cancel safe: a result is taken off the queue only when it is returned,
/// and an instruction that ran has queued what it produced before the poll returns.
///
/// # Panics
/// A panic in `make_empty_context` or `C::default` (run when a result is handed out)
/// reaches the poll that hands the result out, as a panic in a `map` closure would;
/// that result is lost, the manager stays consistent and can be polled again.
///
/// # Drop
/// Dropping the streamer stops the manager (as [`close`](Self::close) does, without
/// waiting): running tasks are cancelled and streams and iterators dropped, each on its
/// own (a panicking `Drop` is caught and logged; the others are still dropped).
/// Generator sources are dropped too: Rust has no async `Drop`, so their synchronous
/// cleanup (`Drop` of what the body holds) runs, their async cleanup does not; call
/// [`close`](Self::close) to stop them as `stop_async_generator` does.
pub struct Streamer<V, C> {
    guard: CtxGuard,
    shared: Arc<Shared<V, C>>,
    /// The front part of the manager's queue, taken without the shared lock
    /// (`core::consumer`).
    local: Local<V, C>,
    breaker: Event,
    breaker_wait: Option<WaitDone<Event>>,
    ended: bool,
    /// Generator sources the stop ended, being stopped before the stream ends.
    stopping: Stopping<V, C>,
}

impl<V, C> fmt::Debug for Streamer<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamer")
            .field("ctx", &self.guard.name())
            .field("breaker", &self.breaker)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// How many instructions one `poll_next` runs before it yields to the scheduler when
/// none of them produced a result.
const STEPS_PER_POLL: usize = 64;

/// A source the stop cut short: it was still running (or had a step queued) when the
/// manager stopped, so it did not finish. Its result in the stream is an
/// `IterationStop` (iterators, streams) or a `Failure` (futures, tasks) carrying the
/// stop's failure; [`Streamer::cut_short`] lists them all.
///
/// What it left comes back in that result: an iterator's or stream's unread rest in
/// the `IterationStop`'s `unread`, a function not called or a future not spawned in
/// the `Failure`'s `unread` ([`QueueManagerResult::take_unread`]).
#[derive(Debug, Clone)]
pub struct CutShort<C> {
    /// Its chain, producer first.
    pub sources: Sources,
    /// Its context (the manager's empty context when it had none).
    pub context: ResultContext<C>,
}

/// Closes a manager from outside its streamer (the scoped form keeps one).
pub(crate) struct Closer<V, C> {
    ctx: Ctx,
    shared: Arc<Shared<V, C>>,
}

/// The scoped form's closer: until it closes, a streamer dropped in the body leaves its
/// generator sources to be stopped by the close; dropped without closing (the scoped
/// future was dropped), it drops them.
pub(crate) struct ScopedCloser<V, C>(Option<Closer<V, C>>);

impl<V: Send + 'static, C: Send + Sync + 'static> ScopedCloser<V, C> {
    pub(crate) async fn close(mut self) {
        if let Some(closer) = self.0.take() {
            closer.close().await;
        }
    }
}

impl<V, C> Drop for ScopedCloser<V, C> {
    fn drop(&mut self) {
        if let Some(closer) = self.0.take() {
            closer.shared.drop_kept_generators();
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Closer<V, C> {
    /// Stops the manager, stops its generator sources, waits for its cancelled tasks.
    pub(crate) async fn close(self) {
        self.ctx.cancel();
        let stopping = self.shared.take_generators(None);
        self.finish(stopping).await;
    }

    async fn finish(self, mut stopping: Stopping<V, C>) {
        poll_fn(|cx| stopping.poll(cx)).await;
        for task in self.shared.take_cancelled() {
            task.wait().await;
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Streamer<V, C> {
    pub(crate) fn new(guard: CtxGuard, shared: Arc<Shared<V, C>>) -> Self {
        Streamer {
            guard,
            shared,
            local: Local::default(),
            breaker: Event::new(),
            breaker_wait: None,
            ended: false,
            stopping: Stopping::default(),
        }
    }

    pub(crate) fn closer(&self) -> Closer<V, C> {
        Closer {
            ctx: self.guard.ctx().clone(),
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn scoped_closer(&self) -> ScopedCloser<V, C> {
        self.shared.keep_generators(true);
        ScopedCloser(Some(self.closer()))
    }

    /// Set it to end the stream before the next entry is taken.
    pub fn breaker(&self) -> &Event {
        &self.breaker
    }

    /// The manager's own context (a child of the one given): cancelling it stops the
    /// manager.
    pub fn ctx(&self) -> &Ctx {
        self.guard.ctx()
    }

    /// Starts a new iteration after the stream ended (it is fused until then): the
    /// [breaker](Self::breaker) is cleared, as a new iteration of a queue clears it, and
    /// the iteration continues where the last one stopped. Does nothing while it has
    /// not ended.
    pub fn resume(&mut self) {
        if self.ended {
            self.breaker.clear();
            self.ended = false;
        }
    }

    /// Hands out the results already queued, without running any instruction (no
    /// source is advanced; the instructions stay queued in their order).
    pub fn remaining(&mut self) -> impl Iterator<Item = QueueManagerResult<V, C>> + '_ {
        let results = self.shared.take_results(&mut self.local);
        results.into_iter().map(|r| self.shared.resolve(r))
    }

    /// The sources the manager's stop cut short so far, in the order they were ended,
    /// each with its chain and context: the work that did not finish.
    pub fn cut_short(&self) -> Vec<CutShort<C>> {
        self.shared
            .cut_short()
            .into_iter()
            .map(|(sources, context)| CutShort {
                sources,
                context: self.shared.context(context),
            })
            .collect()
    }

    /// The capacity of the manager's entry queue, in entries: only for tests of the
    /// memory given back after a burst (not part of the API).
    #[doc(hidden)]
    pub fn queue_capacity(&self) -> usize {
        self.shared.queue_capacity() + self.local.capacity()
    }

    /// How many sources are live.
    pub fn live_sources(&self) -> usize {
        self.shared.live_sources()
    }

    /// Stops the manager, stops its generator sources and waits until the tasks it
    /// cancelled have finished (their futures dropped). Queued results are lost with the
    /// streamer; call [`remaining`](Self::remaining) first to keep them.
    ///
    /// A stream source that is an [`hp::AsyncGenerator`](crate::helpers::AsyncGenerator)
    /// or a [`TryGenerator`](crate::helpers::TryGenerator) (also behind adapters such
    /// as `map` that poll it when polled) is stopped as
    /// [`stop_async_generator`](crate::helpers::stop_async_generator) stops it: the
    /// stop's failure ([`Failure::Cancelled`](crate::helpers::Failure::Cancelled) unless
    /// the context had finished otherwise) is thrown in at the yield where it waits, its
    /// async cleanup runs, and one that catches it and yields again is closed at that
    /// yield. The generators are stopped one after the other, in the order the stop
    /// ended them, before `close` returns; a failure other than the thrown one (a panic
    /// in the cleanup, a generator that ignores its closing) is logged (`tracing`),
    /// not returned. Other streams, and generators never polled yet (whose body never
    /// ran), are dropped.
    ///
    /// # Cancel safety
    /// Dropping the returned future still stops the manager (the streamer is dropped);
    /// it only stops waiting: the generators not stopped yet are dropped then (their
    /// synchronous cleanup runs, their async cleanup does not).
    pub async fn close(mut self) {
        let closer = self.closer();
        self.guard.ctx().cancel();
        let mut stopping = std::mem::take(&mut self.stopping);
        stopping.append(self.shared.take_generators(Some(&mut self.local)));
        drop(self);
        closer.finish(stopping).await;
    }

    fn poll_breaker(&mut self, cx: &mut Context<'_>) -> bool {
        let wait = self
            .breaker_wait
            .get_or_insert_with(|| WaitDone::new(self.breaker.clone()));
        if Pin::new(wait).poll(cx).is_ready() {
            self.breaker_wait = None;
            return true;
        }
        false
    }

    /// The next move from the queue, unless the breaker is set (the stream ends) or the
    /// budget of this poll is spent (it yields to the scheduler).
    #[allow(clippy::type_complexity)]
    fn fresh(
        &mut self,
        cx: &mut Context<'_>,
        steps: usize,
    ) -> Result<Next<V, C>, Poll<Option<QueueManagerResult<V, C>>>> {
        if self.breaker.is_set() {
            return Err(self.end());
        }
        if steps == STEPS_PER_POLL {
            // Sources that wake themselves while polled (a stream out of tokio's coop
            // budget does), or long runs of instructions, must not keep this poll
            // spinning.
            cx.waker().wake_by_ref();
            return Err(Poll::Pending);
        }
        Ok(self.shared.next(&mut self.local, cx.waker()))
    }

    fn end(&mut self) -> Poll<Option<QueueManagerResult<V, C>>> {
        self.ended = true;
        self.breaker_wait = None;
        Poll::Ready(None)
    }
}

impl<V, C> Drop for Streamer<V, C> {
    fn drop(&mut self) {
        // Stop first (cancels tasks, ends sources), then drop what nobody will take.
        self.guard.ctx().cancel();
        // Generator sources being stopped are dropped (no async drop: their sync cleanup
        // runs, each on its own), unless the scoped form's close is to stop them.
        let stopping = std::mem::take(&mut self.stopping);
        self.shared.dropped(&mut self.local, stopping);
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Stream for Streamer<V, C> {
    type Item = QueueManagerResult<V, C>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let mut steps = 0;
        let mut now = match this.fresh(cx, steps) {
            Ok(n) => n,
            Err(poll) => return poll,
        };
        loop {
            steps += 1;
            // After user code ran (a step, a call), the next move is decided in the same
            // lock, unless the breaker was set meanwhile (also by that user code: it is
            // read after the user code ran) or the budget is spent. A move so decided is
            // taken as it is: it may hold a result already off the queue.
            let then = |breaker: &Event| {
                (steps < STEPS_PER_POLL && !breaker.is_set()).then_some(cx.waker())
            };
            let decided = match now {
                Next::Yield(raw) => return Poll::Ready(Some(this.shared.resolve(raw))),
                Next::End => {
                    // The stop's generator sources are stopped before the stream ends.
                    let parked = this.shared.take_stopping();
                    this.stopping.append(parked);
                    if this.stopping.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return this.end();
                }
                Next::Wait => {
                    if this.poll_breaker(cx) {
                        return this.end();
                    }
                    return Poll::Pending;
                }
                Next::Hot(mut hot) => {
                    let polled = hot.step();
                    let then = then(&this.breaker);
                    this.shared.stepped_hot(&mut this.local, hot, polled, then)
                }
                Next::Step(key, number, mut body) => {
                    let polled = body.step();
                    let then = then(&this.breaker);
                    this.shared
                        .stepped(&mut this.local, key, number, body, polled, then)
                }
                Next::Call(f, chain, ctx) => {
                    let out = function::call(f);
                    let then = then(&this.breaker);
                    this.shared.called(&mut this.local, out, chain, ctx, then)
                }
                Next::Continue => None,
            };
            now = match decided {
                Some(n) => n,
                None => match this.fresh(cx, steps) {
                    Ok(n) => n,
                    Err(poll) => return poll,
                },
            };
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> FusedStream for Streamer<V, C> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}
