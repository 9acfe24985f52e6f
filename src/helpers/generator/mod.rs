//! Async generators you can send values and throw errors into, and `stop_async_generator`.
//!
//! Python's async generators are coroutines with `yield`: the consumer drives them with
//! `asend(value)`, `athrow(exc)` and `aclose()`, or iterates them with `async for`.
//! Stable Rust has no `yield` in async code, so [`AsyncGenerator`] is built from an async
//! closure that receives a [`Co`] handle: `co.yield_(value).await` hands `value` to the
//! consumer and resolves to what the consumer sends next, or to the error it throws in.
//!
//! The generator polls its body in place, inside the consumer's own `asend` / `athrow` /
//! `aclose` / `poll_next`: nothing is spawned, and the body runs only while the consumer
//! waits for it, exactly as in Python.
//!
//! | Python | here |
//! |---|---|
//! | `x = yield v` | `let x = co.yield_(v).await?;` |
//! | `await gen.asend(s)` | [`gen.asend(s)`](AsyncGenerator::asend) → `Ok(Some(y))`, `Ok(None)` when exhausted |
//! | `await gen.athrow(e)` | [`gen.athrow(e)`](AsyncGenerator::athrow) |
//! | `await gen.aclose()` | [`gen.aclose()`](AsyncGenerator::aclose) (throws [`GeneratorExit`] in) |
//! | `async for v in gen` | [`Stream<Item = Y>`](futures_core::Stream) (sends `S::default()`) |
//! | `StopAsyncIteration` | `Ok(None)` |
//! | `CancelledError` thrown in | [`Failure::Cancelled`] |
//!
//! The body returns `()`, `Result<(), Error>` or `Result<(), Failure>`; a thrown-in
//! failure propagated with `?` through an [`Error`] comes out as the same [`Failure`].
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // A running total: yields the total so far, adds what it is sent.
//! let mut totals = hp::AsyncGenerator::new(|co: hp::Co<u32, u32>| async move {
//!     let mut total = 0;
//!     loop {
//!         match co.yield_(total).await {
//!             Ok(n) => total += n,
//!             // An error thrown in: start again from zero.
//!             Err(hp::Failure::Error(e)) if e.to_string() == "reset" => total = 0,
//!             Err(other) => return Err::<(), _>(other),
//!         }
//!     }
//! });
//! assert_eq!(totals.asend(0).await.unwrap(), Some(0)); // starts the body
//! assert_eq!(totals.asend(5).await.unwrap(), Some(5));
//! assert_eq!(totals.asend(2).await.unwrap(), Some(7));
//! assert_eq!(totals.athrow(hp::Error::msg("reset")).await.unwrap(), Some(0));
//! assert!(totals.aclose().await.is_ok());
//! assert_eq!(totals.asend(1).await.unwrap(), None); // exhausted
//! # }
//! ```
//!
//! # Drop
//! Dropping a generator drops its body where it is suspended: its synchronous cleanup
//! (`Drop` of what it holds) runs, its async cleanup does not. Call
//! [`aclose`](AsyncGenerator::aclose) or [`stop_async_generator`] to let the body clean up
//! asynchronously.
//!
//! # Nesting
//! A body may drive other generators (a pipeline stage relaying the one before it, a
//! cleanup that stops the next generator of a chain), to any depth: polls and drops of
//! nested generators do not grow the stack with the depth. Past 16 nested generator polls
//! on a thread, a body is polled from the outermost generator's poll instead of in place
//! (still by the consumer's task, nothing spawned); dropping nested generators is a loop.
//! A chain of 100 000 stages runs on a 2 MiB stack.
//!
//! # Panics
//! A panic in the body is caught and becomes the failure it ends with
//! ([`Panicked`]). A panic in the body's `Drop` while a call
//! drops it (closing, or finishing an unstarted body) becomes that call's failure; while
//! the generator itself is dropped, it continues after every nested generator is
//! dropped.

mod co;
mod drop;
pub(crate) mod probe;
mod stop;
mod stream;
mod trampoline;

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

pub use co::{Co, GeneratorExit, IgnoredGeneratorExit, Yield};
use co::{Shared, Slot};
use drop::{Payload, Retired, SlotOps};
pub use stop::{StopGenerator, stop_async_generator};
pub use stream::TryGenerator;
use trampoline::{Checked, Detached, Nesting, Trampoline};

use super::error::{Error, Failure, Panicked};
use crate::sync::{Arc, Mutex, lock};

type Body = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// An async generator: yields `Y`, is sent `S` (Python's `AsyncGenerator[Y, S]`).
///
/// Build it with [`AsyncGenerator::new`]; drive it with [`asend`](Self::asend),
/// [`athrow`](Self::athrow), [`aclose`](Self::aclose), or as a
/// [`Stream`](futures_core::Stream). `Send + 'static` whenever `Y` and `S` are, so it can
/// be handed to the queue manager as a stream.
///
/// # Cancel safety
/// The body's progress lives in the generator, not in the call's future. As a `Stream`
/// it is cancel safe: a `next()` dropped mid-step loses nothing, the next poll continues
/// that step. `asend` / `athrow` / `aclose` are not: when one is dropped mid-step, the
/// next call first finishes that step, dropping what it yields, then does its own work.
///
/// # Drop
/// Dropping it drops the body where it is suspended: its synchronous cleanup (`Drop` of
/// what it holds) runs, its async cleanup does not; [`aclose`](Self::aclose) or
/// [`stop_async_generator`] first to let it clean up asynchronously.
pub struct AsyncGenerator<Y, S = ()> {
    shared: Shared<Y, S>,
    /// The same slot, type-erased, for retiring the generator without recursion.
    closer: Arc<dyn SlotOps>,
    body: Option<Body>,
    /// The body while it is polled from a trampoline (this generator nests too deep).
    detached: Option<Arc<Detached>>,
    /// The trampoline this generator drains when it is the outermost poll on its thread.
    trampoline: Option<Arc<Trampoline>>,
    state: State,
    /// The ticket of the yield the body is suspended at.
    ticket: u64,
    failure: Option<Failure>,
    /// A stop a queue manager asked for through a stream poll (see `probe`).
    stopping: Option<Stopping>,
}

/// A stop in progress, as [`stop_async_generator`] runs it (without `provide`), driven
/// by polls of the generator as a stream (a queue manager closing, see `probe`).
enum Stopping {
    /// A step left running is finished first (what it yields is dropped), then the
    /// failure is thrown in.
    Settling(Failure),
    /// The failure was thrown in: the body cleans up, or catches it and yields again.
    Thrown,
    /// It yielded again after the throw: [`GeneratorExit`] was thrown in (`aclose`).
    Closing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The body has not run yet.
    Unstarted,
    /// The body waits at a yield whose value the consumer has.
    Suspended,
    /// The body was resumed (or started) and has not yielded or returned since.
    Running,
    /// The body returned, failed, or was closed; it has been dropped.
    Finished,
}

/// What one step of the body ended with.
enum Step<Y> {
    Yielded(Y),
    Returned(Result<(), Failure>),
}

/// What a generator's body may return.
pub trait GeneratorReturn {
    /// How the body ended.
    fn into_outcome(self) -> Result<(), Failure>;
}

impl GeneratorReturn for () {
    fn into_outcome(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl GeneratorReturn for Result<(), Failure> {
    fn into_outcome(self) -> Result<(), Failure> {
        self
    }
}

impl GeneratorReturn for Result<(), Error> {
    /// An [`Error`] that wraps a [`Failure`] (a thrown-in failure passed on with `?`)
    /// becomes that failure again.
    fn into_outcome(self) -> Result<(), Failure> {
        self.map_err(|e| match e.downcast_ref::<Failure>() {
            Some(f) => f.clone(),
            None => Failure::Error(e),
        })
    }
}

impl<Y: Send + 'static, S: Send + 'static> AsyncGenerator<Y, S> {
    /// A generator running `body`, which yields through the [`Co`] it is given.
    ///
    /// Nothing of the body runs until the first `asend` (or poll as a stream).
    pub fn new<F, Fut>(body: F) -> Self
    where
        F: FnOnce(Co<Y, S>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: GeneratorReturn,
    {
        let shared: Shared<Y, S> = Arc::new(Mutex::new(Slot::new()));
        let fut = body(Co {
            shared: shared.clone(),
        });
        AsyncGenerator {
            closer: shared.clone(),
            shared,
            body: Some(Box::pin(async move { fut.await.into_outcome() })),
            detached: None,
            trampoline: None,
            state: State::Unstarted,
            ticket: 0,
            failure: None,
            stopping: None,
        }
    }
}

impl<Y, S> AsyncGenerator<Y, S> {
    /// Resumes the body with `value`; returns what it yields next.
    ///
    /// The first call starts the body; no yield is waiting yet, so that first `value` is
    /// dropped (Python only lets `None` be sent there).
    ///
    /// # Errors
    /// The failure the body ended with (its own, or one thrown in and not caught).
    ///
    /// # Returns
    /// `Ok(Some(y))` when the body yields `y`; `Ok(None)` when it returned, now or
    /// before (Python's `StopAsyncIteration`).
    pub async fn asend(&mut self, value: S) -> Result<Option<Y>, Failure> {
        self.settle().await;
        match self.state {
            State::Finished => return Ok(None),
            State::Unstarted => self.state = State::Running,
            State::Suspended => self.deliver(Ok(value)),
            State::Running => unreachable!("settled"),
        }
        self.step().await
    }

    /// Throws `failure` in at the yield where the body waits; returns what it yields next.
    ///
    /// A body that was never started does not run: it is finished and the failure is
    /// returned. A finished body gives `Ok(None)`.
    ///
    /// # Errors
    /// The failure the body ended with: usually the thrown one, when it did not catch it.
    pub async fn athrow(&mut self, failure: impl Into<Failure>) -> Result<Option<Y>, Failure> {
        let failure = failure.into();
        self.settle().await;
        match self.state {
            State::Finished => return Ok(None),
            State::Unstarted => return self.finish(Some(failure)).map(|()| None),
            State::Suspended => self.deliver(Err(failure)),
            State::Running => unreachable!("settled"),
        }
        self.step().await
    }

    /// Closes the generator: throws [`GeneratorExit`] in at the yield where the body
    /// waits and lets it clean up.
    ///
    /// A body that was never started is dropped without running; closing a finished
    /// generator does nothing.
    ///
    /// # Errors
    /// [`IgnoredGeneratorExit`] when the body yielded again (it is then dropped); the
    /// failure the body ended with when that is not the [`GeneratorExit`].
    pub async fn aclose(&mut self) -> Result<(), Failure> {
        self.settle().await;
        match self.state {
            State::Finished => return Ok(()),
            State::Unstarted => return self.finish(None),
            State::Suspended => self.deliver(Err(co::exit())),
            State::Running => unreachable!("settled"),
        }
        match poll_fn(|cx| self.poll_step(cx)).await {
            Step::Yielded(_) => {
                let failure = Failure::Error(Error::new(IgnoredGeneratorExit));
                self.finish(Some(failure))
            }
            Step::Returned(Ok(())) => Ok(()),
            Step::Returned(Err(f)) if GeneratorExit::matches(&f) => {
                self.failure = None;
                Ok(())
            }
            Step::Returned(Err(f)) => Err(f),
        }
    }

    /// Whether the body has finished (returned, failed, or was closed).
    pub fn finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The failure the body ended with, if it ended with one.
    ///
    /// Iterating the generator as a `Stream<Item = Y>` ends it quietly on a failure; this
    /// is where that failure stays (or iterate [`TryGenerator`] to receive it).
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// A stream of `Result<Y, Failure>`: like iterating this generator, but the failure
    /// the body ends with is the last item.
    pub fn into_try_stream(self) -> TryGenerator<Y, S> {
        TryGenerator::new(self)
    }

    /// Finishes a step a dropped call left running, dropping what it yields.
    async fn settle(&mut self) {
        if self.state == State::Running {
            let _ = poll_fn(|cx| self.poll_step(cx)).await;
        }
    }

    /// Runs the body until it yields or returns.
    async fn step(&mut self) -> Result<Option<Y>, Failure> {
        match poll_fn(|cx| self.poll_step(cx)).await {
            Step::Yielded(y) => Ok(Some(y)),
            Step::Returned(r) => r.map(|()| None),
        }
    }

    /// Leaves `input` for the yield the body waits at.
    fn deliver(&mut self, input: Result<S, Failure>) {
        let (waker, _replaced) = {
            let mut slot = lock(&self.shared);
            let replaced = slot.input.replace((self.ticket, input));
            (slot.yielder.take(), replaced)
        };
        // Unlocked: input left for a yield that was dropped is dropped only now.
        self.state = State::Running;
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Polls the body once (state `Running`): it yielded, returned, or is still busy.
    ///
    /// Nested generator polls are bounded on each thread's stack: see `trampoline`.
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step<Y>> {
        let nesting = Nesting::enter(self.trampoline.as_ref());
        let polled = self.poll_body(cx);
        if nesting.outermost()
            && let Some(trampoline) = nesting.drain(cx.waker())
        {
            self.trampoline = Some(trampoline);
        }
        polled
    }

    /// Polls the body in place, or detached when this poll nests too deep.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Step<Y>> {
        if let Some(detached) = &self.detached {
            match detached.check(cx.waker(), !Nesting::too_deep()) {
                Checked::Returned(r) => {
                    self.detached = None;
                    return Poll::Ready(Step::Returned(self.finish(r.err())));
                }
                Checked::Reclaimed(body) => {
                    self.detached = None;
                    self.body = Some(body);
                }
                Checked::Pending => {
                    return match self.take_yielded() {
                        Some(y) => Poll::Ready(Step::Yielded(y)),
                        None => Poll::Pending,
                    };
                }
            }
        }
        if Nesting::too_deep()
            && let Some(body) = self.body.take()
        {
            let detached = Detached::detach(body, self.closer.clone(), cx.waker());
            self.detached = Some(detached);
            return Poll::Pending;
        }
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Step::Returned(Ok(())));
        };
        let _old_waker = {
            let mut slot = lock(&self.shared);
            match &slot.consumer {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => slot.consumer.replace(cx.waker().clone()),
            }
        };
        let returned = match catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
            Ok(Poll::Ready(r)) => r,
            Err(payload) => Err(Failure::Error(Error::from_panic(payload))),
            Ok(Poll::Pending) => {
                return match self.take_yielded() {
                    Some(y) => Poll::Ready(Step::Yielded(y)),
                    None => Poll::Pending,
                };
            }
        };
        let returned = self.finish(returned.err());
        Poll::Ready(Step::Returned(returned))
    }

    /// Takes what the body yielded, if anything: the body is then suspended at that yield.
    fn take_yielded(&mut self) -> Option<Y> {
        let (ticket, y) = lock(&self.shared).yielded.take()?;
        self.ticket = ticket;
        self.state = State::Suspended;
        Some(y)
    }

    /// Drops the body and closes the slot; remembers how it ended and returns that.
    ///
    /// A panic while dropping the body (its synchronous cleanup) becomes the failure it
    /// ended with, replacing `failure`, as an exception raised in a `finally` does.
    fn finish(&mut self, failure: Option<Failure>) -> Result<(), Failure> {
        self.state = State::Finished;
        let panicked = self.retire();
        let failure = match panicked {
            Some(payload) => Some(Failure::Error(Error::from_panic(payload))),
            None => failure,
        };
        self.failure.clone_from(&failure);
        failure.map_or(Ok(()), Err)
    }

    /// Drops the body (without recursing into nested generators), then closes the slot
    /// so a yield in another task ends instead of waiting forever.
    fn retire(&mut self) -> Option<Payload> {
        let detached = self.detached.take().and_then(|d| d.take_back());
        drop::retire(Retired {
            body: detached.or(self.body.take()),
            slot: Some(self.closer.clone()),
        })
    }

    /// One step as a stream sees it (`S::default()` is sent); a stop when a queue
    /// manager polling it as its source asks for one (see `probe`).
    fn poll_stream_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Step<Y>>>
    where
        S: Default,
    {
        if let Some(thrown) = probe::announce()
            && self.stopping.is_none()
            && self.state != State::Finished
        {
            self.stopping = Some(Stopping::Settling(thrown));
        }
        if self.stopping.is_some() {
            let outcome = ready!(self.poll_stop(cx));
            probe::stopped(outcome);
            return Poll::Ready(None);
        }
        match self.state {
            State::Finished => return Poll::Ready(None),
            State::Unstarted => self.state = State::Running,
            State::Suspended => self.deliver(Ok(S::default())),
            State::Running => {}
        }
        self.poll_step(cx).map(Some)
    }
}

impl<Y, S> AsyncGenerator<Y, S> {
    /// Drives the stop in `self.stopping` as [`stop_async_generator`] runs (throw, close
    /// if it yields again); its outcome is what `stop_async_generator` returns.
    fn poll_stop(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failure>> {
        loop {
            match self.stopping.take() {
                None => return Poll::Ready(Ok(())),
                Some(Stopping::Settling(thrown)) => {
                    if self.state == State::Running && self.poll_step(cx).is_pending() {
                        self.stopping = Some(Stopping::Settling(thrown));
                        return Poll::Pending;
                    }
                    match self.state {
                        State::Finished => return Poll::Ready(Ok(())),
                        State::Unstarted => return Poll::Ready(self.finish(Some(thrown))),
                        State::Suspended | State::Running => {
                            self.deliver(Err(thrown));
                            self.stopping = Some(Stopping::Thrown);
                        }
                    }
                }
                Some(Stopping::Thrown) => match self.poll_step(cx) {
                    Poll::Pending => {
                        self.stopping = Some(Stopping::Thrown);
                        return Poll::Pending;
                    }
                    // Caught and yielded again: no `provide`, so it is closed there.
                    Poll::Ready(Step::Yielded(_)) => {
                        self.deliver(Err(co::exit()));
                        self.stopping = Some(Stopping::Closing);
                    }
                    Poll::Ready(Step::Returned(r)) => return Poll::Ready(r),
                },
                Some(Stopping::Closing) => {
                    return match self.poll_step(cx) {
                        Poll::Pending => {
                            self.stopping = Some(Stopping::Closing);
                            Poll::Pending
                        }
                        Poll::Ready(Step::Yielded(_)) => {
                            let failure = Failure::Error(Error::new(IgnoredGeneratorExit));
                            Poll::Ready(self.finish(Some(failure)))
                        }
                        Poll::Ready(Step::Returned(Ok(()))) => Poll::Ready(Ok(())),
                        Poll::Ready(Step::Returned(Err(f))) if GeneratorExit::matches(&f) => {
                            self.failure = None;
                            Poll::Ready(Ok(()))
                        }
                        Poll::Ready(Step::Returned(Err(f))) => Poll::Ready(Err(f)),
                    };
                }
            }
        }
    }
}

impl<Y, S> Drop for AsyncGenerator<Y, S> {
    /// The body's own `Drop` cleanup runs first, then a yield left in another task ends.
    /// Nested generators are dropped one after the other, not recursively. A panic in the
    /// body's `Drop` continues once everything is dropped (it is logged instead while the
    /// thread is already panicking).
    fn drop(&mut self) {
        if let Some(payload) = self.retire() {
            if std::thread::panicking() {
                let panicked = Panicked::from_payload(&*payload);
                tracing::error!(error = %panicked, "a generator's body panicked while dropped");
                crate::helpers::panics::drop_payload(payload);
            } else {
                resume_unwind(payload);
            }
        }
    }
}

impl<Y: Send, S: Send> SlotOps for Mutex<Slot<Y, S>> {
    fn set_consumer(&self, waker: &Waker) -> Option<Waker> {
        let mut slot = lock(self);
        match &slot.consumer {
            Some(w) if w.will_wake(waker) => None,
            _ => slot.consumer.replace(waker.clone()),
        }
    }

    fn has_yielded(&self) -> bool {
        lock(self).yielded.is_some()
    }

    fn close(&self) {
        let (waker, _consumer, _yielded, _input) = {
            let mut slot = lock(self);
            slot.closed = true;
            (
                slot.yielder.take(),
                slot.consumer.take(),
                slot.yielded.take(),
                slot.input.take(),
            )
        };
        // Values and wakers are dropped here, after the lock.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<Y, S> fmt::Debug for AsyncGenerator<Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGenerator")
            .field("state", &self.state)
            .field("failure", &self.failure)
            .finish()
    }
}
