//! Stream sources (`ASYNC_GENERATOR`): polled by the streamer, one item per turn.
//!
//! Each stream has its own waker. Waking it puts the stream's slot at the back of the
//! manager's ready queue (once: the `queued` flag dedups wakes), so the streamer only
//! ever touches streams that have something to give, like `FuturesUnordered`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering::{AcqRel, Release};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use super::{Body, Step, yielded};
use crate::helpers::error::{Error, Failure};
use crate::helpers::queue_manager::feed::FeedStream;
use crate::sync::AtomicBool;

/// Puts a source back on the ready queue (implemented by the manager's core).
pub(crate) trait Schedule: Send + Sync {
    /// Queues the source at `key` if it is still the source numbered `number`.
    fn schedule(&self, key: usize, number: u64);
}

/// A stream's waker.
pub(crate) struct SourceWaker {
    target: Weak<dyn Schedule>,
    key: usize,
    number: u64,
    /// Whether the slot is on the ready queue (or about to be). Set by whoever queues
    /// it, cleared by the streamer just before it polls the stream.
    queued: AtomicBool,
}

impl SourceWaker {
    /// Marks the source queued; `true` if it was not, so the caller must queue it.
    pub(crate) fn mark_queued(&self) -> bool {
        // AcqRel: pairs with the Release store in `StreamSource::step`, so a wake after
        // the streamer started polling queues the stream again.
        !self.queued.swap(true, AcqRel)
    }
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.mark_queued()
            && let Some(target) = self.target.upgrade()
        {
            target.schedule(self.key, self.number);
        }
    }
}

/// A stream and, once polled, its waker.
pub(crate) struct StreamSource<V> {
    stream: FeedStream<V>,
    waker: Option<(Arc<SourceWaker>, Waker)>,
}

impl<V> StreamSource<V> {
    pub(crate) fn new(stream: FeedStream<V>) -> Self {
        StreamSource {
            stream,
            waker: None,
        }
    }

    /// The waker, if it was polled already (to requeue it after an item).
    pub(crate) fn source_waker(&self) -> Option<&Arc<SourceWaker>> {
        self.waker.as_ref().map(|(w, _)| w)
    }

    /// Polls once; a panic fails the iteration (the stream is dropped).
    pub(crate) fn step(mut self, target: &Weak<dyn Schedule>, key: usize, number: u64) -> Step<V> {
        let StreamSource { stream, waker } = &mut self;
        let (source_waker, waker) = waker.get_or_insert_with(|| {
            let w = Arc::new(SourceWaker {
                target: target.clone(),
                key,
                number,
                queued: AtomicBool::new(false),
            });
            (w.clone(), Waker::from(w))
        });
        // Release: pairs with the AcqRel swap in `mark_queued`.
        source_waker.queued.store(false, Release);
        let mut cx = Context::from_waker(waker);
        let polled = catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll_next(&mut cx)));
        match polled {
            Ok(Poll::Ready(Some(feed))) => yielded(feed, Some(Body::Stream(self))),
            Ok(Poll::Ready(None)) => Step::End(None),
            Ok(Poll::Pending) => Step::Wait(Body::Stream(self)),
            Err(payload) => Step::Fail(Failure::Error(Error::from_panic(payload)), true),
        }
    }
}
