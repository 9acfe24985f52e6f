//! [`QueueFeeder`]: adds sources to a queue manager (the seed's `QueueFeeder`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_core::Stream;

use super::core::{Origin, Shared};
use super::feed::Feed;
use super::result::{QueueInput, SourceId, Sources};
use super::sources::{Body, StreamSource, function};
use crate::helpers::task::Task;

/// Adds sources to a queue manager. Cloneable; every method can be called at any time,
/// also after [`set_as_finished_if_out_of_sources`](Self::set_as_finished_if_out_of_sources)
/// and after the manager stopped (see each method).
///
/// Each `add_*` takes an optional `context` (`None`, or a `C`): every result of the
/// source, and of the sources it produces, carries it; without one each result gets a
/// fresh `make_empty_context()`. Each returns the new source's [`SourceId`], the last
/// entry of the `sources` chain of its results.
///
/// # After a stop
/// Once the manager stopped (its context finished, or it was closed), new sources are
/// not run: an iterator or stream gets an `IterationStop` carrying the stop's error, a
/// future or task a `Failure` carrying it (a task is cancelled). Values, and functions
/// (which run inside the call), are still delivered.
///
/// # Drop
/// A feeder owns no work: dropping it (or every clone) changes nothing. The sources
/// belong to the manager, which the [`Streamer`](super::Streamer) owns.
pub struct QueueFeeder<V, C> {
    shared: Arc<Shared<V, C>>,
}

impl<V, C> Clone for QueueFeeder<V, C> {
    fn clone(&self) -> Self {
        QueueFeeder {
            shared: self.shared.clone(),
        }
    }
}

impl<V, C> fmt::Debug for QueueFeeder<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueFeeder").finish_non_exhaustive()
    }
}

impl<V: Send + 'static, C: Clone + Send + 'static> QueueFeeder<V, C> {
    pub(crate) fn new(shared: Arc<Shared<V, C>>) -> Self {
        QueueFeeder { shared }
    }

    /// Calls `f` now, inside this call, and enqueues what it returns before returning:
    /// a value as a `Success`, [`Feed::Error`] or a panic as a `Failure`, a source as a
    /// new source (waiting its turn) whose parent is this function.
    pub fn add_sync_function<F, T>(&self, f: F, context: impl Into<Option<C>>) -> SourceId
    where
        F: FnOnce() -> T,
        T: Into<Feed<V>>,
    {
        let id = self.shared.detached_id(QueueInput::SyncFunction);
        let step = function::call(move || f().into());
        self.shared
            .deliver(step, Origin::Detached(Sources::root(id), context.into()));
        id
    }

    /// Adds an iterator or iterable as a `SYNC_ITERATOR` source: one item per turn.
    pub fn add_sync_iterator<I>(&self, iter: I, context: impl Into<Option<C>>) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V>> + 'static,
    {
        self.add_iter(QueueInput::SyncIterator, iter, context.into())
    }

    /// Adds a lazy iterator as a `SYNC_GENERATOR` source (the seed's generator objects);
    /// it behaves as [`add_sync_iterator`](Self::add_sync_iterator), only the kind differs.
    pub fn add_sync_generator<I>(&self, iter: I, context: impl Into<Option<C>>) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V>> + 'static,
    {
        self.add_iter(QueueInput::SyncGenerator, iter, context.into())
    }

    /// Adds an iterator source of either sync kind.
    fn add_iter<I>(&self, kind: QueueInput, iter: I, context: Option<C>) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V>> + 'static,
    {
        let body = Body::Iter(Box::new(iter.into_iter().map(Into::into)));
        self.shared.add(kind, body, context)
    }

    /// Enqueues a value at once. An extendable [`Feed`] is added as a new source whose
    /// parent is this `VALUE` source; [`Feed::Error`] is delivered as a `Failure`.
    pub fn add_value(&self, value: impl Into<Feed<V>>, context: impl Into<Option<C>>) -> SourceId {
        let id = self.shared.detached_id(QueueInput::Value);
        let step = super::sources::yielded(value.into(), None);
        self.shared
            .deliver(step, Origin::Detached(Sources::root(id), context.into()));
        id
    }

    /// Spawns `fut` as a task (a `COROUTINE` source); its output is delivered when it
    /// finishes. Needs a tokio runtime: the manager's context's, else the current one;
    /// without either the source fails with a clear error.
    pub fn add_coroutine<F>(&self, fut: F, context: impl Into<Option<C>>) -> SourceId
    where
        F: Future + Send + 'static,
        F::Output: Into<Feed<V>>,
    {
        let body = Body::Future(Box::pin(async move { fut.await.into() }));
        self.shared.add(QueueInput::Coroutine, body, context.into())
    }

    /// Adds a task spawned elsewhere (a `TASK` source); its output (joined: taken by
    /// value) is delivered when it finishes. The manager cancels it when it stops.
    pub fn add_task<T>(&self, task: Task<T>, context: impl Into<Option<C>>) -> SourceId
    where
        T: Into<Feed<V>> + Send + 'static,
    {
        let Ok((kind, body)) = Body::from_feed(Feed::task(task)) else {
            unreachable!("a task feed is a source")
        };
        self.shared.add(kind, body, context.into())
    }

    /// Adds a stream (the seed's async generator, `ASYNC_GENERATOR`): one item per turn,
    /// polled by the streamer with its own waker. The stream is dropped (its cleanup
    /// runs) when it ends, fails, or the manager stops.
    pub fn add_async_generator<S>(&self, stream: S, context: impl Into<Option<C>>) -> SourceId
    where
        S: Stream + Send + 'static,
        S::Item: Into<Feed<V>>,
    {
        let Feed::Stream(s) = Feed::stream(stream) else {
            unreachable!("Feed::stream builds a stream")
        };
        let body = Body::Stream(StreamSource::new(s));
        self.shared
            .add(QueueInput::AsyncGenerator, body, context.into())
    }

    /// Says the streamer should end, with `Stopped { error: None }`, once no source is
    /// live and nothing is queued; at once if that is already so. Sources can still be
    /// added afterwards; the streamer then runs them and stops again when they are done.
    pub fn set_as_finished_if_out_of_sources(&self) {
        self.shared.set_finish_when_empty();
    }

    /// How many sources are live (added or produced, not finished yet).
    pub fn live_sources(&self) -> usize {
        self.shared.live_sources()
    }

    /// Whether the manager stopped (its context finished or it was closed).
    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }
}
