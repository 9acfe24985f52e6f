//! [`AppendError`]: what an append hands back when its queue takes nothing more.

use std::fmt;

/// An item (or instruction) a queue did not take, handed back to the caller, as tokio's
/// `mpsc::Sender::send` hands back `SendError(item)`.
///
/// Every append of [`Queue`](super::Queue), [`QueueHandle`](super::QueueHandle),
/// [`LimitedQueue`](super::LimitedQueue), [`SyncQueue`](crate::helpers::SyncQueue) and
/// [`SyncQueueHandle`](crate::helpers::SyncQueueHandle) returns
/// `Result<(), AppendError<T>>`: the queue never drops what it refused. Take the value back
/// with [`into_inner`](Self::into_inner); [`is_closed`](Self::is_closed) and
/// [`is_consumer_gone`](Self::is_consumer_gone) say why.
///
/// `Debug` does not need `T: Debug` (so `.unwrap()` works for any item); `Display` is
/// lowercase without a period, as tokio's errors.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// let ctx = hp::Ctx::beginning("app");
/// let queue = hp::queue::<String>(&ctx).build();
/// let producer = queue.handle();
/// drop(queue); // the consumer is gone
/// let refused = producer.append("line 1".to_string()).unwrap_err();
/// assert!(refused.is_consumer_gone());
/// assert_eq!(refused.to_string(), "the queue's consumer is gone");
/// assert_eq!(refused.into_inner(), "line 1"); // the caller has its value back
/// ```
pub struct AppendError<T> {
    value: T,
    why: Why,
}

/// Why a queue refused a value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Why {
    /// A producer closed the queue.
    Closed,
    /// The consumer side is gone: nobody could ever take the value.
    ConsumerGone,
}

impl<T> AppendError<T> {
    pub(crate) fn new(value: T, why: Why) -> Self {
        AppendError { value, why }
    }

    /// The refused value, given back.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The refused value, borrowed.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// Whether the queue was closed by a producer (`close()`, or its last producer
    /// handle dropped with `close_when_handles_dropped`) while its consumer was still
    /// there.
    pub fn is_closed(&self) -> bool {
        self.why == Why::Closed
    }

    /// Whether the queue's consumer side is gone (the async `Queue`, or every
    /// `SyncQueue` handle, was dropped).
    pub fn is_consumer_gone(&self) -> bool {
        self.why == Why::ConsumerGone
    }
}

impl<T> fmt::Debug for AppendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendError")
            .field("why", &self.why)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AppendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.why {
            Why::Closed => "the queue is closed",
            Why::ConsumerGone => "the queue's consumer is gone",
        })
    }
}

impl<T> std::error::Error for AppendError<T> {}
