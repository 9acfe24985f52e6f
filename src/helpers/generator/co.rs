//! The body's side of a generator: the [`Co`] handle and its [`Yield`] future.
//!
//! The consumer and the body share one [`Slot`]: the body leaves what it yields there and
//! waits; the consumer takes it, and later leaves what it sends (or the error it throws)
//! for the waiting yield to pick up. The consumer polls the body in place, so in the
//! usual case nobody needs waking; wakers are kept only for a [`Co`] that was moved into
//! another task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::super::error::{Error, Failure};
use crate::sync::{Arc, Mutex, lock};

/// Thrown into the generator's pending yield by `aclose` (Python's `GeneratorExit`).
///
/// A body that sees it should clean up and return; returning it (`Err` through `?`) is a
/// normal end. Yielding again after it makes `aclose` fail with
/// [`IgnoredGeneratorExit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("generator closed")]
pub struct GeneratorExit;

impl GeneratorExit {
    /// Whether `failure` is a [`GeneratorExit`].
    pub fn matches(failure: &Failure) -> bool {
        failure.error().is_some_and(Error::is::<GeneratorExit>)
    }
}

/// `aclose` found the body yielding again after [`GeneratorExit`] was thrown in
/// (Python's `RuntimeError("async generator ignored GeneratorExit")`). The body has been
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("async generator ignored GeneratorExit")]
pub struct IgnoredGeneratorExit;

/// What consumer and body exchange.
pub(super) struct Slot<Y, S> {
    /// Yielded by the body, not yet taken by the consumer, with the yield's ticket.
    pub(super) yielded: Option<(u64, Y)>,
    /// Sent (or thrown) by the consumer for the yield holding that ticket, not yet
    /// picked up. Input for a yield that was dropped is never picked up; the next
    /// delivery replaces it.
    pub(super) input: Option<(u64, Result<S, Failure>)>,
    /// The ticket the next handed-over yield gets.
    pub(super) next_ticket: u64,
    /// The generator finished or was dropped: nothing will be sent any more.
    pub(super) closed: bool,
    /// The consumer's waker while it polls the body.
    pub(super) consumer: Option<Waker>,
    /// A yield's waker, kept only when it was polled from another task.
    pub(super) yielder: Option<Waker>,
}

impl<Y, S> Slot<Y, S> {
    pub(super) fn new() -> Self {
        Slot {
            yielded: None,
            input: None,
            next_ticket: 0,
            closed: false,
            consumer: None,
            yielder: None,
        }
    }
}

pub(super) type Shared<Y, S> = Arc<Mutex<Slot<Y, S>>>;

/// The handle a generator's body yields with.
///
/// Given to the body by [`AsyncGenerator::new`](super::AsyncGenerator::new). Yield one
/// value at a time; each `yield_` resumes with what the consumer sent or the error it
/// threw in.
pub struct Co<Y, S = ()> {
    pub(super) shared: Shared<Y, S>,
}

impl<Y, S> fmt::Debug for Co<Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Co").finish_non_exhaustive()
    }
}

impl<Y, S> Co<Y, S> {
    /// Yields `value` to the consumer and waits to be resumed.
    ///
    /// Resolves to `Ok(sent)` after `asend(sent)` (or `S::default()` when the generator
    /// is iterated as a stream), or `Err(failure)` after `athrow(failure)`. After `aclose`
    /// the error is a [`GeneratorExit`]; also when the generator was dropped while this
    /// yield ran in another task.
    ///
    /// # Cancel safety
    /// Dropping it before the consumer took the value drops the value; dropping it after
    /// loses what the consumer sends next, unless another `yield_` picks it up.
    pub fn yield_(&self, value: Y) -> Yield<'_, Y, S> {
        Yield {
            co: self,
            state: YieldState::Start(value),
        }
    }
}

/// The future of [`Co::yield_`].
#[must_use = "futures do nothing unless polled"]
pub struct Yield<'a, Y, S> {
    co: &'a Co<Y, S>,
    state: YieldState<Y>,
}

enum YieldState<Y> {
    /// Not handed over yet.
    Start(Y),
    /// Handed over with this ticket; waiting for the consumer's input.
    Waiting(u64),
    /// Resolved.
    Done,
}

// `Yield` never pins `Y`: the value is moved into the slot, never polled.
impl<Y, S> Unpin for Yield<'_, Y, S> {}

impl<Y, S> fmt::Debug for Yield<'_, Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            YieldState::Start(_) => "start",
            YieldState::Waiting(_) => "waiting",
            YieldState::Done => "done",
        };
        f.debug_struct("Yield").field("state", &state).finish()
    }
}

impl<Y, S> Future for Yield<'_, Y, S> {
    type Output = Result<S, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut garbage = Garbage::default();
        let poll = {
            let mut slot = lock(&this.co.shared);
            match std::mem::replace(&mut this.state, YieldState::Done) {
                YieldState::Start(value) => this.state_start(&mut slot, value, cx, &mut garbage),
                YieldState::Waiting(ticket) => {
                    this.state_waiting(&mut slot, ticket, cx, &mut garbage)
                }
                YieldState::Done => panic!("`Yield` polled after completion"),
            }
        };
        // Unlocked: the value of a closed generator and replaced wakers are dropped, and
        // the consumer woken, only now (dropping a user value is user code).
        garbage.release();
        poll
    }
}

/// What a poll of [`Yield`] drops or wakes once the slot is unlocked.
struct Garbage<Y> {
    value: Option<Y>,
    old_waker: Option<Waker>,
    wake: Option<Waker>,
}

impl<Y> Default for Garbage<Y> {
    fn default() -> Self {
        Garbage {
            value: None,
            old_waker: None,
            wake: None,
        }
    }
}

impl<Y> Garbage<Y> {
    fn release(self) {
        let Garbage {
            value,
            old_waker,
            wake,
        } = self;
        drop(old_waker);
        if let Some(w) = wake {
            w.wake();
        }
        drop(value);
    }
}

impl<Y, S> Yield<'_, Y, S> {
    /// Hands `value` over, unless the slot still holds an earlier yield.
    fn state_start(
        &mut self,
        slot: &mut Slot<Y, S>,
        value: Y,
        cx: &Context<'_>,
        garbage: &mut Garbage<Y>,
    ) -> Poll<Result<S, Failure>> {
        if slot.closed {
            garbage.value = Some(value);
            return Poll::Ready(Err(exit()));
        }
        if slot.yielded.is_some() {
            // Another yield of this body is still waiting for the consumer to take its value.
            self.state = YieldState::Start(value);
            garbage.old_waker = register(slot, cx);
            return Poll::Pending;
        }
        let ticket = slot.next_ticket;
        slot.next_ticket = ticket.wrapping_add(1);
        slot.yielded = Some((ticket, value));
        self.state = YieldState::Waiting(ticket);
        garbage.old_waker = register(slot, cx);
        garbage.wake = other_task(&slot.consumer, cx);
        Poll::Pending
    }

    /// Picks up the consumer's input once it is there.
    fn state_waiting(
        &mut self,
        slot: &mut Slot<Y, S>,
        ticket: u64,
        cx: &Context<'_>,
        garbage: &mut Garbage<Y>,
    ) -> Poll<Result<S, Failure>> {
        if slot.input.as_ref().is_some_and(|(t, _)| *t == ticket) {
            let (_, input) = slot.input.take().expect("checked");
            return Poll::Ready(input);
        }
        if slot.closed {
            return Poll::Ready(Err(exit()));
        }
        self.state = YieldState::Waiting(ticket);
        garbage.old_waker = register(slot, cx);
        Poll::Pending
    }
}

/// Keeps the yield's waker when it runs outside the consumer's poll (in another task);
/// returns the waker it replaced, to be dropped after the unlock.
fn register<Y, S>(slot: &mut Slot<Y, S>, cx: &Context<'_>) -> Option<Waker> {
    let in_place = slot
        .consumer
        .as_ref()
        .is_some_and(|c| c.will_wake(cx.waker()));
    if in_place
        || slot
            .yielder
            .as_ref()
            .is_some_and(|y| y.will_wake(cx.waker()))
    {
        return None;
    }
    slot.yielder.replace(cx.waker().clone())
}

/// The consumer's waker, when the yield runs in another task and so must wake it.
fn other_task(consumer: &Option<Waker>, cx: &Context<'_>) -> Option<Waker> {
    consumer
        .as_ref()
        .filter(|c| !c.will_wake(cx.waker()))
        .cloned()
}

/// The failure a yield resolves to once the generator is closed.
pub(super) fn exit() -> Failure {
    Failure::Error(Error::new(GeneratorExit))
}
