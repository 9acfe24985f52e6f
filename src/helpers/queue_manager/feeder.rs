//! [`QueueFeeder`]: adds sources to a queue manager (the seed's `QueueFeeder`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_core::Stream;

use super::core::Shared;
use super::feed::Feed;
use super::result::SourceId;
use crate::helpers::task::Task;

/// Adds sources to a queue manager. Cloneable; every method can be called at any time,
/// also after [`set_as_finished_if_out_of_sources`](Self::set_as_finished_if_out_of_sources)
/// and after the manager stopped (see each method).
///
/// Each `add_x` has an `add_x_with_context` form: every result of that source, and of
/// the sources it produces, carries the context (unless a produced feed brings its own,
/// [`Feed::with_context`]); without one each result gets the manager's empty context.
/// A context is stored once (an `Arc`) and shared by every result it reaches.
/// Each returns the new source's [`SourceId`], the last entry of the `sources` chain of
/// its results.
///
/// # After a stop
/// Once the manager stopped (its context finished, or it was closed), new sources are
/// still delivered as the turn model says: an iterator or stream gets an
/// `IterationStop` carrying the stop's failure and handing it back unread when its
/// step is taken, a future is not spawned (its `Failure` hands it back), a running
/// task is cancelled (a `Failure` carrying the stop's failure), a finished task
/// delivers its value, and values and functions given here (which run inside the
/// call) are delivered; a function they produce is not called (its `Failure` hands it
/// back). Once the streamer is dropped, what is added is dropped unrun.
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

impl<V: Send + 'static, C: Send + Sync + 'static> QueueFeeder<V, C> {
    pub(crate) fn new(shared: Arc<Shared<V, C>>) -> Self {
        QueueFeeder { shared }
    }

    /// Calls `f` now, inside this call, and extends what it returns before returning: a
    /// value becomes a `Success` at the back, [`Feed::Error`] or a panic a `Failure` at
    /// the back, a source a new source under this `SYNC_FUNCTION` source.
    pub fn add_sync_function<F, T>(&self, f: F) -> SourceId
    where
        F: FnOnce() -> T,
        T: Into<Feed<V, C>>,
    {
        self.shared.add_function(move || f().into(), None)
    }

    /// [`add_sync_function`](Self::add_sync_function) with a context for its results.
    pub fn add_sync_function_with_context<F, T>(&self, f: F, context: C) -> SourceId
    where
        F: FnOnce() -> T,
        T: Into<Feed<V, C>>,
    {
        self.shared
            .add_function(move || f().into(), Some(Arc::new(context)))
    }

    /// Adds an iterator or iterable as a `SYNC_ITERATOR` source: its first step goes to
    /// the back of the queue; each step puts the item's extension, then the next step,
    /// at the back.
    pub fn add_sync_iterator<I>(&self, iter: I) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        self.shared.add_source(Feed::iterator(iter), None)
    }

    /// [`add_sync_iterator`](Self::add_sync_iterator) with a context for its results.
    pub fn add_sync_iterator_with_context<I>(&self, iter: I, context: C) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        self.shared
            .add_source(Feed::iterator(iter), Some(Arc::new(context)))
    }

    /// Adds a lazy iterator as a `SYNC_GENERATOR` source (the seed's generator objects);
    /// it behaves as [`add_sync_iterator`](Self::add_sync_iterator), only the kind differs.
    pub fn add_sync_generator<I>(&self, iter: I) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        self.shared.add_source(Feed::generator(iter), None)
    }

    /// [`add_sync_generator`](Self::add_sync_generator) with a context for its results.
    pub fn add_sync_generator_with_context<I>(&self, iter: I, context: C) -> SourceId
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        self.shared
            .add_source(Feed::generator(iter), Some(Arc::new(context)))
    }

    /// Extends a value inside the call: a plain value is a `Success` at the back,
    /// [`Feed::Error`] a `Failure`, an extendable [`Feed`] a new source under this
    /// `VALUE` source.
    pub fn add_value(&self, value: impl Into<Feed<V, C>>) -> SourceId {
        self.shared.add_value(value.into(), None)
    }

    /// [`add_value`](Self::add_value) with a context for its results.
    pub fn add_value_with_context(&self, value: impl Into<Feed<V, C>>, context: C) -> SourceId {
        self.shared.add_value(value.into(), Some(Arc::new(context)))
    }

    /// Adds a future as a `COROUTINE` source: it is spawned as a task at once, and that
    /// task is added as a `TASK` source under it, so its results carry the chain
    /// `[TASK, COROUTINE, ...]`. Needs a tokio runtime: the manager's context's, else
    /// the current one; without either the source fails with a clear error.
    ///
    /// Returns the `COROUTINE` source's id (the task's is the next number).
    pub fn add_coroutine<F>(&self, fut: F) -> SourceId
    where
        F: Future + Send + 'static,
        F::Output: Into<Feed<V, C>>,
    {
        self.shared.add_source(Feed::future(fut), None)
    }

    /// [`add_coroutine`](Self::add_coroutine) with a context for its results.
    pub fn add_coroutine_with_context<F>(&self, fut: F, context: C) -> SourceId
    where
        F: Future + Send + 'static,
        F::Output: Into<Feed<V, C>>,
    {
        self.shared
            .add_source(Feed::future(fut), Some(Arc::new(context)))
    }

    /// Adds a task spawned elsewhere (a `TASK` source): when it finishes (at once if it
    /// has), its output (joined: taken by value) is extended, or its failure is a
    /// `Failure` at the back. The manager cancels it when it stops.
    pub fn add_task<T>(&self, task: Task<T>) -> SourceId
    where
        T: Into<Feed<V, C>> + Send + 'static,
    {
        self.shared.add_source(Feed::task(task), None)
    }

    /// [`add_task`](Self::add_task) with a context for its results.
    pub fn add_task_with_context<T>(&self, task: Task<T>, context: C) -> SourceId
    where
        T: Into<Feed<V, C>> + Send + 'static,
    {
        self.shared
            .add_source(Feed::task(task), Some(Arc::new(context)))
    }

    /// Adds a stream (the seed's async generator, `ASYNC_GENERATOR`). Its step polls it
    /// when taken: a ready item is handled at once (its extension, then the next step,
    /// at the back); otherwise the stream waits for its own waker and is polled again
    /// before the consumer takes its next entry. The stream is dropped (its cleanup
    /// runs) when it ends or fails.
    ///
    /// When the manager stops, an [`hp::AsyncGenerator`](crate::helpers::AsyncGenerator)
    /// (or [`TryGenerator`](crate::helpers::TryGenerator), also behind adapters such as
    /// `map`) that has started is stopped as
    /// [`stop_async_generator`](crate::helpers::stop_async_generator) does: the stop's
    /// failure is thrown in at its yield and its async cleanup runs, by
    /// [`Streamer::close`](super::Streamer::close) (before it returns), the scoped form,
    /// or the consumer before its stream ends. Other streams are dropped; so are
    /// generators when the streamer is dropped without `close` (no async `Drop`: their
    /// synchronous cleanup runs).
    pub fn add_async_generator<S>(&self, stream: S) -> SourceId
    where
        S: Stream + Send + 'static,
        S::Item: Into<Feed<V, C>>,
    {
        self.shared.add_source(Feed::stream(stream), None)
    }

    /// [`add_async_generator`](Self::add_async_generator) with a context for its results.
    pub fn add_async_generator_with_context<S>(&self, stream: S, context: C) -> SourceId
    where
        S: Stream + Send + 'static,
        S::Item: Into<Feed<V, C>>,
    {
        self.shared
            .add_source(Feed::stream(stream), Some(Arc::new(context)))
    }

    /// Says the streamer should end, with `Stopped { error: None }`, once no source is
    /// live and nothing is queued: the check is made now and each time the consumer
    /// asks for its next entry. Sources can still be added afterwards; what is added
    /// before the stream ends is delivered.
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
