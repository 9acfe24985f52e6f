//! [`Feed`]: what a source produces, a plain value or another source ("extendable").

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use futures_core::Stream;
use futures_util::StreamExt;

use super::sources::task::TaskFeed;
use crate::helpers::error::Error;
use crate::helpers::task::Task;

/// A boxed iterator of feeds, as iterator sources hold it.
pub type FeedIter<V> = Box<dyn Iterator<Item = Feed<V>> + Send>;
/// A boxed stream of feeds, as stream sources hold it.
pub type FeedStream<V> = Pin<Box<dyn Stream<Item = Feed<V>> + Send>>;
/// A boxed future of a feed, as future sources hold it.
pub type FeedFuture<V> = Pin<Box<dyn Future<Output = Feed<V>> + Send>>;
/// A boxed zero-argument function returning a feed.
pub type FeedFn<V> = Box<dyn FnOnce() -> Feed<V> + Send>;

/// What a source produces: a value to deliver, an error, or another source to add
/// (the seed's "extendable" values).
///
/// Any `V` converts into `Feed::Value` with `From`, so sources of plain values need no
/// wrapping. A produced source is never delivered: it is added as a new source whose
/// parent is the producing source, and it waits its turn at the back of the queue.
///
/// Python decides at run time what is extendable; here the caller says so by building
/// the variant. So a `Vec` (or any `V`) is always delivered as a value, and only
/// zero-argument functions can be extended (the seed's "one argument" is a seed text error).
///
/// # Generators and iterators
/// The seed tells generators (`SYNC_GENERATOR`) from other iterables (`SYNC_ITERATOR`)
/// by their type. Rust iterators all look alike, so the caller says which:
/// [`Feed::generator`] / `add_sync_generator` mark a source `SYNC_GENERATOR`, and
/// [`Feed::iterator`] / `add_sync_iterator` mark it `SYNC_ITERATOR`. Both behave alike.
pub enum Feed<V> {
    /// A value, delivered as a `Success`.
    Value(V),
    /// The source failed with this error (Python's `raise`): a `Failure` is delivered,
    /// and an iterator or stream that yields it ends with an `IterationStop` carrying it.
    Error(Error),
    /// A zero-argument function: a `SYNC_FUNCTION` source, called when its turn comes.
    Function(FeedFn<V>),
    /// A `SYNC_GENERATOR` source.
    Generator(FeedIter<V>),
    /// A `SYNC_ITERATOR` source.
    Iterator(FeedIter<V>),
    /// A `COROUTINE` source: spawned when its turn comes, as a `TASK` source under it;
    /// its output is the next feed.
    Future(FeedFuture<V>),
    /// A `TASK` source: a task spawned elsewhere; its result is the next feed.
    Task(TaskFeed<V>),
    /// An `ASYNC_GENERATOR` source: a stream, polled by the streamer.
    Stream(FeedStream<V>),
    /// A feed with its own context: built by [`Feed::with_context`].
    WithContext(Box<Feed<V>>, FeedContext),
}

/// The context a produced feed carries ([`Feed::with_context`]), typed when the manager
/// extends the feed.
pub struct FeedContext(Box<dyn Any + Send + Sync>);

impl fmt::Debug for FeedContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FeedContext")
    }
}

impl FeedContext {
    pub(crate) fn into_inner(self) -> Box<dyn Any + Send + Sync> {
        self.0
    }
}

impl<V> From<V> for Feed<V> {
    fn from(value: V) -> Self {
        Feed::Value(value)
    }
}

impl<V: Send + 'static> Feed<V> {
    /// `Ok(v)` as a value, `Err(e)` as [`Feed::Error`].
    pub fn from_result<E: std::error::Error + Send + Sync + 'static>(result: Result<V, E>) -> Self {
        match result {
            Ok(v) => Feed::Value(v),
            Err(e) => Feed::Error(Error::new(e)),
        }
    }

    /// An error feed.
    pub fn error(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Feed::Error(Error::new(err))
    }

    /// A function source.
    pub fn function<F, T>(f: F) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
        T: Into<Feed<V>>,
    {
        Feed::Function(Box::new(move || f().into()))
    }

    /// A `SYNC_GENERATOR` source.
    pub fn generator<I>(iter: I) -> Self
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V>> + 'static,
    {
        Feed::Generator(Box::new(iter.into_iter().map(Into::into)))
    }

    /// A `SYNC_ITERATOR` source.
    pub fn iterator<I>(iter: I) -> Self
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V>> + 'static,
    {
        Feed::Iterator(Box::new(iter.into_iter().map(Into::into)))
    }

    /// A `COROUTINE` source.
    pub fn future<F>(fut: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: Into<Feed<V>>,
    {
        Feed::Future(Box::pin(async move { fut.await.into() }))
    }

    /// A `TASK` source; the task's output (joined: taken by value) becomes the feed.
    pub fn task<T>(task: Task<T>) -> Self
    where
        T: Into<Feed<V>> + Send + 'static,
    {
        Feed::Task(TaskFeed::new(task))
    }

    /// An `ASYNC_GENERATOR` source.
    pub fn stream<S>(stream: S) -> Self
    where
        S: Stream + Send + 'static,
        S::Item: Into<Feed<V>>,
    {
        Feed::Stream(Box::pin(stream.map(Into::into)))
    }
}

impl<V> Feed<V> {
    /// Gives this feed its own context, used instead of the producing source's for its
    /// results and the results of the sources it produces (a crawler gives each page
    /// the page's URL).
    ///
    /// The context's type must be the manager's context type `C`; when it is not, the
    /// feed is not run and a `Failure` saying so is delivered with the producer's
    /// context. (A `Feed` does not name `C`, so this is checked when the feed is
    /// extended.)
    ///
    /// **Differs from the original**, where a result's context is always the one given
    /// with the first source of its chain.
    ///
    /// Calling it again on the result replaces the context (no nesting).
    pub fn with_context<C: Send + Sync + 'static>(self, context: C) -> Self {
        let context = FeedContext(Box::new(context));
        match self {
            Feed::WithContext(inner, _) => Feed::WithContext(inner, context),
            feed => Feed::WithContext(Box::new(feed), context),
        }
    }

    /// The kind of source this feed would become, `None` for a value or an error.
    pub fn kind(&self) -> Option<super::QueueInput> {
        use super::QueueInput as Q;
        match self {
            Feed::Value(_) | Feed::Error(_) => None,
            Feed::Function(_) => Some(Q::SyncFunction),
            Feed::Generator(_) => Some(Q::SyncGenerator),
            Feed::Iterator(_) => Some(Q::SyncIterator),
            Feed::Future(_) => Some(Q::Coroutine),
            Feed::Task(_) => Some(Q::Task),
            Feed::Stream(_) => Some(Q::AsyncGenerator),
            Feed::WithContext(inner, _) => inner.kind(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Feed<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feed::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Feed::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Feed::WithContext(inner, _) => f.debug_tuple("WithContext").field(inner).finish(),
            other => write!(f, "Feed::{:?}", other.kind().expect("a source kind")),
        }
    }
}
