//! Stream sources (`ASYNC_GENERATOR`): polled by the streamer when the stream's step is
//! taken, and again when the stream's own waker fires; no task per item.
//!
//! Each stream has its own waker, made when the source is admitted. Waking it tells the
//! manager, which polls the stream before the consumer takes its next entry, so the
//! streamer only ever touches streams that have something to give, and an idle stream
//! costs nothing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use super::{Polled, panicked};
use crate::helpers::queue_manager::feed::FeedStream;

/// Tells the manager a source can go on (implemented by the manager's core).
pub(crate) trait Schedule: Send + Sync {
    /// The stream at `key` woke, if it is still the source numbered `number`.
    fn stream_woke(&self, key: usize, number: u64);
    /// The task of the source at `key` finished, if it is still the source `number`.
    fn task_done(&self, key: usize, number: u64);
}

/// A stream's waker.
struct SourceWaker {
    target: Weak<dyn Schedule>,
    key: usize,
    number: u64,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(target) = self.target.upgrade() {
            target.stream_woke(self.key, self.number);
        }
    }
}

/// A stream and its waker.
pub(crate) struct StreamSource<V> {
    stream: FeedStream<V>,
    waker: Waker,
}

impl<V> StreamSource<V> {
    pub(crate) fn new(
        stream: FeedStream<V>,
        target: Weak<dyn Schedule>,
        key: usize,
        number: u64,
    ) -> Self {
        let waker = Waker::from(Arc::new(SourceWaker {
            target,
            key,
            number,
        }));
        StreamSource { stream, waker }
    }

    /// Polls once; a panic fails the iteration.
    pub(crate) fn poll(&mut self) -> Polled<V> {
        let mut cx = Context::from_waker(&self.waker);
        let stream = &mut self.stream;
        match catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll_next(&mut cx))) {
            Ok(Poll::Ready(Some(feed))) => Polled::from_feed(feed),
            Ok(Poll::Ready(None)) => Polled::End,
            Ok(Poll::Pending) => Polled::Pending,
            Err(payload) => Polled::Fail(panicked(payload)),
        }
    }
}
