//! Stream sources (`ASYNC_GENERATOR`): polled by the streamer when the stream's step is
//! taken, and again when the stream's own waker fires; no task per item.
//!
//! Each stream has its own waker, made when the source is admitted. Waking it tells the
//! manager, which polls the stream before the consumer takes its next entry, so the
//! streamer only ever touches streams that have something to give, and an idle stream
//! costs nothing.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use super::{Polled, panicked};
use crate::helpers::error::{Error, Failure};
use crate::helpers::generator::probe;
use crate::helpers::queue_manager::feed::FeedStream;
use crate::sync::AtomicBool;

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
    /// Set by every wake, cleared before every poll: whether the stream woke while (or
    /// since) it was last polled. The manager reads it for a stream it stepped without
    /// marking it busy in its table (a hot source, `core::consumer`).
    woke: AtomicBool,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woke.store(true, Ordering::Release);
        if let Some(target) = self.target.upgrade() {
            target.stream_woke(self.key, self.number);
        }
    }
}

/// A stream and its waker.
pub(crate) struct StreamSource<V, C> {
    stream: FeedStream<V, C>,
    waker: Waker,
    source: Arc<SourceWaker>,
}

impl<V, C> StreamSource<V, C> {
    pub(crate) fn new(
        stream: FeedStream<V, C>,
        target: Weak<dyn Schedule>,
        key: usize,
        number: u64,
    ) -> Self {
        let source = Arc::new(SourceWaker {
            target,
            key,
            number,
            woke: AtomicBool::new(false),
        });
        let waker = Waker::from(source.clone());
        StreamSource {
            stream,
            waker,
            source,
        }
    }

    /// Whether the stream's waker fired since its last poll began.
    pub(crate) fn woke(&self) -> bool {
        self.source.woke.load(Ordering::Acquire)
    }

    /// The stream, to stop.
    pub(crate) fn into_stream(self) -> FeedStream<V, C> {
        self.stream
    }

    /// Polls once; a panic fails the iteration.
    pub(crate) fn poll(&mut self) -> Polled<V, C> {
        self.source.woke.store(false, Ordering::Relaxed);
        let mut cx = Context::from_waker(&self.waker);
        let stream = &mut self.stream;
        Self::sort(catch_unwind(AssertUnwindSafe(|| {
            stream.as_mut().poll_next(&mut cx)
        })))
    }

    /// The first poll: also finds out whether the stream is a generator (see
    /// `generator::probe`).
    pub(crate) fn poll_first(&mut self) -> (Polled<V, C>, bool) {
        self.source.woke.store(false, Ordering::Relaxed);
        let mut cx = Context::from_waker(&self.waker);
        let stream = &mut self.stream;
        let (polled, probe) = probe::poll_as_source(None, || {
            catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll_next(&mut cx)))
        });
        (Self::sort(polled), probe.generators > 0)
    }

    #[inline]
    fn sort(polled: std::thread::Result<Poll<Option<super::Feed<V, C>>>>) -> Polled<V, C> {
        match polled {
            Ok(Poll::Ready(Some(feed))) => Polled::from_feed(feed),
            Ok(Poll::Ready(None)) => Polled::End,
            Ok(Poll::Pending) => Polled::Pending,
            Err(payload) => Polled::Fail(panicked(payload), None),
        }
    }
}

/// Generator sources the manager's stop ended, stopped one after the other (in the order
/// they were ended) as `stop_async_generator` does: the stop's failure is thrown in at
/// the yield where each waits, its async cleanup runs, and one that catches it and
/// yields again is closed. A failure other than the thrown one (a panic in the cleanup,
/// `IgnoredGeneratorExit`) is logged, as the manager logs panics in deferred work.
pub(crate) struct Stopping<V, C> {
    streams: VecDeque<(FeedStream<V, C>, Failure)>,
}

impl<V, C> Default for Stopping<V, C> {
    fn default() -> Self {
        Stopping {
            streams: VecDeque::new(),
        }
    }
}

impl<V, C> Stopping<V, C> {
    pub(crate) fn push(&mut self, stream: FeedStream<V, C>, thrown: Failure) {
        self.streams.push_back((stream, thrown));
    }

    pub(crate) fn append(&mut self, mut other: Stopping<V, C>) {
        self.streams.append(&mut other.streams);
    }

    /// Drives the stops; ready once every generator has stopped (and been dropped).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some((stream, thrown)) = self.streams.front_mut() {
            let (polled, probe) = probe::poll_as_source(Some(thrown.clone()), || {
                catch_unwind(AssertUnwindSafe(|| stream.as_mut().poll_next(cx)))
            });
            let done = match polled {
                Err(payload) => {
                    report(&panicked(payload));
                    true
                }
                // Still cleaning up; a stream no generator answered in is dropped.
                Ok(Poll::Pending) => probe.generators == 0,
                // Not the generator's (it ends with `None` once stopped): dropped.
                Ok(Poll::Ready(item)) => {
                    quiet(move || drop(item));
                    true
                }
            };
            if let Some(Err(failure)) = probe.stopped
                && !failure.same(thrown)
            {
                report(&failure);
            }
            if !done {
                return Poll::Pending;
            }
            if let Some(entry) = self.streams.pop_front() {
                quiet(move || drop(entry));
            }
        }
        Poll::Ready(())
    }
}

impl<V, C> Drop for Stopping<V, C> {
    /// Those not stopped yet are dropped (their synchronous cleanup only), each on its
    /// own: a panicking `Drop` does not keep the others.
    fn drop(&mut self) {
        for entry in std::mem::take(&mut self.streams) {
            quiet(move || drop(entry));
        }
    }
}

fn report(failure: &Failure) {
    tracing::error!(%failure, "queue manager: a generator source failed while it was stopped");
}

/// Runs `f`, logging a panic (dropping user values).
fn quiet(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let error = Error::from_panic(payload);
        tracing::error!(%error, "queue manager: user code panicked while dropping a stopped source");
    }
}
