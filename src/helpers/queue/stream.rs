//! Iterating a queue: [`GetAll`] (one iteration, a fused `Stream`), [`Iterations`]
//! (iterations back to back, not fused) and [`Remaining`] (drain without waiting).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::Queue;
use super::shared::Entry;
use crate::helpers::callbacks::run_caught;

/// One iteration over a [`Queue`], from [`Queue::get_all`].
///
/// Ends (yields `None`, then stays ended) when the queue's context is done (after what is
/// left, with `empty_on_finished`) or its breaker is set, or, once it has yielded
/// everything appended before, when a producer closed the queue.
///
/// # Cancel safety
/// Cancel safe: an item leaves the queue only when it is returned.
///
/// # Drop
/// Keeps every entry not yet yielded in the queue for the next iteration; the
/// `process_after_yielded` hooks for the last item do not run (as when a Python consumer
/// breaks out of its loop).
#[must_use = "streams do nothing unless polled"]
pub struct GetAll<'a, T: 'static> {
    queue: &'a mut Queue<T>,
    ended: bool,
}

impl<'a, T: 'static> GetAll<'a, T> {
    pub(super) fn new(queue: &'a mut Queue<T>) -> Self {
        GetAll {
            queue,
            ended: false,
        }
    }
}

impl<T: Send + 'static> Stream for GetAll<'_, T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let out = self.queue.poll_item(cx);
        if let Poll::Ready(None) = out {
            self.ended = true;
        }
        out
    }
}

impl<T: Send + 'static> FusedStream for GetAll<'_, T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T: 'static> Drop for GetAll<'_, T> {
    fn drop(&mut self) {
        self.queue.hooks_due = false;
    }
}

impl<T: 'static> fmt::Debug for GetAll<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetAll")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Iterations of a [`Queue`] back to back (the seed's `async for item in queue`, again
/// and again), from [`Queue::iterations`].
///
/// **Not fused, on purpose**: after it returned `None` (the breaker was set or the
/// context finished), polling again starts a new iteration (the breaker is cleared and
/// iteration continues where it stopped). For a single iteration that stays ended, use
/// [`GetAll`] ([`Queue::get_all`]). Whether an iteration is running is kept by the queue,
/// so `queue.iterations().next().await` in a loop continues one iteration.
///
/// # Cancel safety
/// Cancel safe: an item leaves the queue only when it is returned.
#[must_use = "streams do nothing unless polled"]
pub struct Iterations<'a, T: 'static> {
    queue: &'a mut Queue<T>,
}

impl<'a, T: 'static> Iterations<'a, T> {
    pub(super) fn new(queue: &'a mut Queue<T>) -> Self {
        Iterations { queue }
    }
}

impl<T: 'static> fmt::Debug for Iterations<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iterations")
            .field("iterating", &self.queue.iterating)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Stream for Iterations<'_, T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let queue = &mut *self.queue;
        if !queue.iterating {
            queue.start_iteration();
            queue.iterating = true;
        }
        let out = queue.poll_item(cx);
        if let Poll::Ready(None) = out {
            queue.iterating = false;
        }
        out
    }
}

/// Everything queued now, from [`Queue::remaining`]: never waits; instructions met on
/// the way run, only items are yielded. Once it returned `None` it stays ended (fused),
/// also if producers append afterwards.
///
/// # Drop
/// Entries not reached stay queued.
pub struct Remaining<'a, T: 'static> {
    queue: &'a mut Queue<T>,
    ended: bool,
}

impl<'a, T: 'static> Remaining<'a, T> {
    pub(super) fn new(queue: &'a mut Queue<T>) -> Self {
        Remaining {
            queue,
            ended: false,
        }
    }
}

impl<T: Send + 'static> Iterator for Remaining<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        while !self.ended {
            match self.queue.take(false) {
                Some(Entry::Item(v)) => return Some(v),
                Some(Entry::Instruction(f)) => {
                    run_caught("queue instruction", f);
                }
                None => self.ended = true,
            }
        }
        None
    }
}

impl<T: Send + 'static> std::iter::FusedIterator for Remaining<'_, T> {}

impl<T: 'static> fmt::Debug for Remaining<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remaining").finish_non_exhaustive()
    }
}
