//! The producer-side handles of a queue: [`QueueHandle`] (cloneable, for other tasks and
//! threads) and [`LimitedQueue`] (the view `process_after_yielded` hooks get).

use std::fmt;

use super::shared::{End, Entry, Shared};
use crate::helpers::Event;
use crate::sync::Arc;

/// A cloneable producer handle to a [`Queue`](super::Queue): append from any task or thread.
///
/// Get one with [`Queue::handle`](super::Queue::handle). A handle does not keep the queue's
/// context alive and cannot take items; only the `Queue` itself iterates.
///
/// # After the queue is dropped
/// [`append`](Self::append) and [`append_instruction`](Self::append_instruction) return
/// `false` and drop what they were given (an instruction is dropped without running):
/// nobody could ever take it.
pub struct QueueHandle<T: 'static> {
    pub(crate) shared: Arc<Shared<T>>,
}

impl<T: 'static> Clone for QueueHandle<T> {
    fn clone(&self) -> Self {
        QueueHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<T: 'static> QueueHandle<T> {
    /// Adds `item` at the back.
    ///
    /// Returns `false` (and drops the item) only when the queue has been dropped.
    pub fn append(&self, item: T) -> bool {
        self.shared.push(Entry::Item(item), End::Back)
    }

    /// Adds `item` at the very front, before everything queued.
    ///
    /// Returns `false` (and drops the item) only when the queue has been dropped.
    pub fn append_front(&self, item: T) -> bool {
        self.shared.push(Entry::Item(item), End::Front)
    }

    /// Adds a callable at the back, run by the consumer when it reaches it; nothing is
    /// yielded for it.
    ///
    /// Returns `false` (and drops `f` unrun) only when the queue has been dropped.
    pub fn append_instruction(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.shared.push(Entry::Instruction(Box::new(f)), End::Back)
    }

    /// [`append_instruction`](Self::append_instruction) at the very front.
    pub fn append_instruction_front(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.shared
            .push(Entry::Instruction(Box::new(f)), End::Front)
    }

    /// The queue's breaker: setting it ends the current iteration.
    pub fn breaker(&self) -> &Event {
        &self.shared.breaker
    }

    /// How many entries are queued, instructions included.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether nothing (no item, no instruction) is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: 'static> fmt::Debug for QueueHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueHandle")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The limited view of a queue given to `process_after_yielded` hooks (the seed's
/// `LimitedQueue`): the breaker, `is_empty`, `len` and `append`.
///
/// Appending from a hook never deadlocks: hooks run with no lock held.
pub struct LimitedQueue<'a, T: 'static> {
    pub(crate) shared: &'a Shared<T>,
}

impl<T: 'static> LimitedQueue<'_, T> {
    /// The queue's breaker: setting it from a hook means no further item is yielded.
    pub fn breaker(&self) -> &Event {
        &self.shared.breaker
    }

    /// How many entries are queued, instructions included.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `item` at the back. Returns `true`, as [`Queue::append`](super::Queue::append)
    /// (the queue exists while its hook runs).
    pub fn append(&self, item: T) -> bool {
        self.shared.push(Entry::Item(item), End::Back)
    }

    /// Adds `item` at the very front. Returns `true`, as `append`.
    pub fn append_front(&self, item: T) -> bool {
        self.shared.push(Entry::Item(item), End::Front)
    }
}

impl<T: 'static> fmt::Debug for LimitedQueue<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedQueue")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
