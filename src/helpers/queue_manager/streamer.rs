//! [`Streamer`]: the stream of results of a queue manager (the seed's `Streamer`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::core::{Next, Shared};
use super::result::QueueManagerResult;
use super::sources::Step;
use crate::helpers::ctx::{Ctx, CtxGuard};
use crate::helpers::event::Event;
use crate::helpers::wait::WaitDone;

/// The results of a queue manager, as a [`Stream`].
///
/// Polling the streamer is what drives iterators, functions and streams: each poll
/// hands out a queued result, or steps the next ready source (one step per source per
/// turn, every source going to the back of the queue), or waits. Futures and tasks run
/// on their own; their results are queued when they finish.
///
/// # Ending
/// The stream ends (`None`):
/// - when the [`breaker`](Self::breaker) is set: what is queued stays for
///   [`remaining`](Self::remaining) and no source is advanced;
/// - when the manager stopped (its context finished, or it was closed) and everything
///   queued was handed out: `Stopped { error }` comes first, ahead of what is queued;
/// - after `Stopped { error: None }`, which comes once
///   `set_as_finished_if_out_of_sources` was called and nothing is live or queued.
///   Polling again later continues with whatever was added since.
///
/// # Cancel safety
/// `next()` is cancel safe: a result is taken off the queue only when it is returned.
/// A step that ran is never lost: its results are queued before the poll returns.
///
/// # Drop
/// Dropping the streamer stops the manager (as [`close`](Self::close) does, without
/// waiting): running tasks are cancelled and streams and iterators dropped.
pub struct Streamer<V, C> {
    guard: CtxGuard,
    shared: Arc<Shared<V, C>>,
    breaker: Event,
    breaker_wait: Option<WaitDone<Event>>,
}

impl<V, C> fmt::Debug for Streamer<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streamer")
            .field("ctx", &self.guard.name())
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

/// How many steps one `poll_next` runs before it yields to the scheduler when none of
/// them produced a result.
const STEPS_PER_POLL: usize = 64;

/// Closes a manager from outside its streamer (the scoped form keeps one).
pub(crate) struct Closer<V, C> {
    ctx: Ctx,
    shared: Arc<Shared<V, C>>,
}

impl<V: Send + 'static, C: Clone + Send + 'static> Closer<V, C> {
    pub(crate) async fn close(self) {
        self.ctx.cancel();
        for task in self.shared.take_cancelled() {
            task.wait().await;
        }
    }
}

impl<V: Send + 'static, C: Clone + Send + 'static> Streamer<V, C> {
    pub(crate) fn new(guard: CtxGuard, shared: Arc<Shared<V, C>>) -> Self {
        Streamer {
            guard,
            shared,
            breaker: Event::new(),
            breaker_wait: None,
        }
    }

    pub(crate) fn closer(&self) -> Closer<V, C> {
        Closer {
            ctx: self.guard.ctx().clone(),
            shared: self.shared.clone(),
        }
    }

    /// Set it to end the stream early; clear it to continue.
    pub fn breaker(&self) -> &Event {
        &self.breaker
    }

    /// The manager's own context (a child of the one given): cancelling it stops the
    /// manager.
    pub fn ctx(&self) -> &Ctx {
        self.guard.ctx()
    }

    /// Hands out what is queued, without stepping any source or waiting.
    pub fn remaining(&mut self) -> impl Iterator<Item = QueueManagerResult<V, C>> + '_ {
        std::iter::from_fn(|| self.shared.pop_result().map(|r| self.shared.resolve(r)))
    }

    /// How many sources are live.
    pub fn live_sources(&self) -> usize {
        self.shared.live_sources()
    }

    /// Stops the manager and waits until the tasks it cancelled have finished (their
    /// futures dropped). Queued results are lost with the streamer; call
    /// [`remaining`](Self::remaining) first to keep them.
    ///
    /// # Cancel safety
    /// Dropping the returned future still stops the manager (the streamer is dropped);
    /// it only stops waiting for the cancelled tasks.
    pub async fn close(self) {
        let closer = self.closer();
        drop(self);
        closer.close().await;
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
}

impl<V: Send + 'static, C: Clone + Send + 'static> Stream for Streamer<V, C> {
    type Item = QueueManagerResult<V, C>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.breaker.is_set() {
            this.breaker_wait = None;
            return Poll::Ready(None);
        }
        let mut steps = 0;
        let mut next = this.shared.next(cx.waker());
        loop {
            match next {
                Next::Yield(raw) => return Poll::Ready(Some(this.shared.resolve(raw))),
                Next::End => return Poll::Ready(None),
                Next::Step(t) => {
                    let broken = this.breaker.is_set();
                    let step = if broken {
                        Step::Untouched(t.body)
                    } else {
                        t.body.step(this.shared.target(), t.key, t.number)
                    };
                    steps += 1;
                    // Sources that wake themselves while polled (a stream out of tokio's
                    // coop budget does) must not keep this poll spinning.
                    let may_step = steps < STEPS_PER_POLL && !broken;
                    next = this
                        .shared
                        .step_done(step, t.key, t.number, cx.waker(), may_step);
                }
                Next::Budget if this.breaker.is_set() => {
                    this.breaker_wait = None;
                    return Poll::Ready(None);
                }
                Next::Budget => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Next::Wait => {
                    if this.poll_breaker(cx) {
                        return Poll::Ready(None);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
