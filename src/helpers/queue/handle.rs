//! The producer-side handles of a queue: [`QueueHandle`] (cloneable, for other tasks and
//! threads) and [`LimitedQueue`] (the view `process_after_yielded` hooks get).

use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

use super::append_error::AppendError;
use super::shared::{End, Entry, Shared};
use crate::helpers::Event;
use crate::sync::Arc;

/// A cloneable producer handle to a [`Queue`](super::Queue): append from any task or thread.
///
/// Get one with [`Queue::handle`](super::Queue::handle). A handle does not keep the queue's
/// context alive and cannot take items; only the `Queue` itself iterates.
///
/// # AppendError items
/// Every append returns `Result<(), AppendError<_>>`: once the queue is closed
/// ([`close`](Self::close)) or the `Queue` is dropped, what you append comes back in the
/// [`AppendError`] (an instruction unrun), as tokio's `Sender::send` returns
/// `SendError(item)`.
///
/// ```
/// use machinery::helpers as hp;
///
/// let ctx = hp::Ctx::beginning("app");
/// let queue = hp::queue::<Vec<u8>>(&ctx).build();
/// let producer = queue.handle();
/// producer.close();
/// let batch = vec![1, 2, 3];
/// match producer.append(batch) {
///     Ok(()) => unreachable!("the queue is closed"),
///     Err(refused) => assert_eq!(refused.into_inner(), [1, 2, 3]), // ours again
/// }
/// // The front and the instruction routes give back what they were given too.
/// assert_eq!(producer.append_front(vec![4]).unwrap_err().into_inner(), [4]);
/// let (tx, rx) = std::sync::mpsc::channel();
/// let job = producer
///     .append_instruction(move || tx.send("ran").unwrap())
///     .unwrap_err()
///     .into_inner();
/// assert!(rx.try_recv().is_err()); // it came back unrun
/// job(); // run it yourself, or drop it
/// assert_eq!(rx.try_recv(), Ok("ran"));
/// ```
///
/// # Drop
/// Dropping a handle does nothing to the queue, unless the queue was built with
/// [`close_when_handles_dropped`](super::QueueOptions::close_when_handles_dropped) and
/// this is the last handle: then the queue closes.
pub struct QueueHandle<T: 'static> {
    shared: Arc<Shared<T>>,
}

impl<T: 'static> QueueHandle<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        // Relaxed: a count, as `Arc`'s; closing is ordered by the queue's lock.
        shared.producers.fetch_add(1, Relaxed);
        QueueHandle { shared }
    }
}

impl<T: 'static> Clone for QueueHandle<T> {
    fn clone(&self) -> Self {
        QueueHandle::new(self.shared.clone())
    }
}

impl<T: 'static> Drop for QueueHandle<T> {
    fn drop(&mut self) {
        // AcqRel: the last handle's decrement sees every other handle's (as `Arc`).
        if self.shared.producers.fetch_sub(1, AcqRel) == 1 && self.shared.close_with_handles {
            self.shared.close();
        }
    }
}

impl<T: 'static> QueueHandle<T> {
    /// Adds `item` at the back.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is closed or dropped.
    pub fn append(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Back)
    }

    /// Adds `item` at the very front, before everything queued.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is closed or dropped.
    pub fn append_front(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Front)
    }

    /// Adds a callable at the back, run by the consumer when it reaches it; nothing is
    /// yielded for it.
    ///
    /// # Errors
    /// Gives `f` back unrun in an [`AppendError`] once the queue is closed or dropped.
    pub fn append_instruction<F>(&self, f: F) -> Result<(), AppendError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .push(f, |f| Entry::Instruction(Box::new(f)), End::Back)
    }

    /// [`append_instruction`](Self::append_instruction) at the very front.
    ///
    /// # Errors
    /// Gives `f` back unrun in an [`AppendError`] once the queue is closed or dropped.
    pub fn append_instruction_front<F>(&self, f: F) -> Result<(), AppendError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .push(f, |f| Entry::Instruction(Box::new(f)), End::Front)
    }

    /// Closes the queue from the producer side: later appends come back as
    /// [`AppendError`], and the consumer's iteration ends once it has taken everything
    /// appended before (a waiting consumer is woken at once). Returns `true` when this
    /// call closed it, `false` when it was closed already.
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the queue was closed by a producer.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
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
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The limited view of a queue given to `process_after_yielded` hooks (the seed's
/// `LimitedQueue`): the breaker, `is_empty`, `len` and `append`.
///
/// Appending from a hook never deadlocks: hooks run with no lock held.
///
/// # AppendError items
/// The queue exists while its hook runs, so an append is refused only once the queue is
/// closed ([`close`](Self::close)); the item then comes back in an [`AppendError`]:
///
/// ```
/// use futures::StreamExt;
/// use machinery::helpers as hp;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let mut queue = hp::queue::<u32>(&ctx).build();
/// let (tx, rx) = std::sync::mpsc::channel();
/// queue.process_after_yielded(move |view| {
///     view.close(); // no more after this one
///     if let Err(refused) = view.append(99) {
///         tx.send(refused.into_inner()).unwrap(); // the hook has its item back
///     }
/// });
/// queue.append(1).unwrap();
/// let seen: Vec<u32> = queue.get_all().collect().await;
/// assert_eq!(seen, [1]);
/// assert_eq!(rx.recv().unwrap(), 99);
/// # }
/// ```
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

    /// Adds `item` at the back.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is closed.
    pub fn append(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Back)
    }

    /// Adds `item` at the very front.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is closed.
    pub fn append_front(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Front)
    }

    /// Closes the queue from the producer side, as [`QueueHandle::close`].
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the queue was closed by a producer.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<T: 'static> fmt::Debug for LimitedQueue<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedQueue")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
