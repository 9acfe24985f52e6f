//! [`Feed`]: what a source produces, a plain value or another source ("extendable").

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt;

use super::sources::task::TaskFeed;
use crate::helpers::error::Error;
use crate::helpers::task::Task;

/// A boxed iterator of feeds, as iterator sources hold it.
pub type FeedIter<V, C = ()> = Box<dyn Iterator<Item = Feed<V, C>> + Send>;
/// A boxed stream of feeds, as stream sources hold it.
pub type FeedStream<V, C = ()> = Pin<Box<dyn Stream<Item = Feed<V, C>> + Send>>;
/// A boxed future of a feed, as future sources hold it.
pub type FeedFuture<V, C = ()> = Pin<Box<dyn Future<Output = Feed<V, C>> + Send>>;
/// A boxed zero-argument function returning a feed.
pub type FeedFn<V, C = ()> = Box<dyn FnOnce() -> Feed<V, C> + Send>;

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
pub enum Feed<V, C = ()> {
    /// A value, delivered as a `Success`.
    Value(V),
    /// The source failed with this error (Python's `raise`): a `Failure` is delivered,
    /// and an iterator or stream that yields it ends with an `IterationStop` carrying it
    /// (and handing back what it left unread). Wrapped ([`Feed::with_context`]) it is
    /// the same error: it ends the iterator exactly as a bare one does, and its
    /// `Failure` carries the context it was given.
    ///
    /// To report one bad item and go on, yield [`Feed::ItemError`] instead.
    Error(Error),
    /// One bad item (a parser's malformed line): a `Failure` is delivered in the item's
    /// turn, as a value would be, and the iterator or stream **goes on**. From a
    /// function, a future or a task (one item each) it is a `Failure`, as
    /// [`Feed::Error`] is.
    ///
    /// | yielded by an iterator or stream | delivered | the source |
    /// |---|---|---|
    /// | `Feed::Error(e)` (bare or wrapped) | `Failure(e)`, then `IterationStop(e)` with the unread rest | ends |
    /// | `Feed::ItemError(e)` | `Failure(e)` | goes on |
    ///
    /// ```
    /// use futures::StreamExt;
    /// use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    /// let lines = ["1", "x", "3"].map(|l| match l.parse::<u32>() {
    ///     Ok(n) => Feed::Value(n),
    ///     Err(e) => Feed::item_error(hp::Error::msg(format!("line {l:?}: {e}"))),
    /// });
    /// feeder.add_sync_iterator(lines);
    /// feeder.set_as_finished_if_out_of_sources();
    /// let mut seen = Vec::new();
    /// while let Some(r) = streamer.next().await {
    ///     seen.push(match r {
    ///         R::Success { value, .. } => format!("ok {value}"),
    ///         R::Failure { error, .. } => format!("bad {error}"),
    ///         R::IterationStop { error, .. } => format!("end {error:?}"),
    ///         R::Stopped { .. } => "stopped".into(),
    ///     });
    /// }
    /// assert_eq!(
    ///     seen,
    ///     ["ok 1", "bad line \"x\": invalid digit found in string", "ok 3", "end None", "stopped"]
    /// );
    /// # }
    /// ```
    ItemError(Error),
    /// A zero-argument function: a `SYNC_FUNCTION` source, called when its turn comes.
    Function(FeedFn<V, C>),
    /// A `SYNC_GENERATOR` source.
    Generator(FeedIter<V, C>),
    /// A `SYNC_ITERATOR` source.
    Iterator(FeedIter<V, C>),
    /// A `COROUTINE` source: spawned when its turn comes, as a `TASK` source under it;
    /// its output is the next feed.
    Future(FeedFuture<V, C>),
    /// A `TASK` source: a task spawned elsewhere; its result is the next feed.
    Task(TaskFeed<V, C>),
    /// An `ASYNC_GENERATOR` source: a stream, polled by the streamer.
    Stream(FeedStream<V, C>),
    /// A feed with its own context: built by [`Feed::with_context`] or
    /// [`Feed::with_shared_context`].
    WithContext(Box<Feed<V, C>>, Arc<C>),
}

impl<V, C> From<V> for Feed<V, C> {
    fn from(value: V) -> Self {
        Feed::Value(value)
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Feed<V, C> {
    /// `Ok(v)` as a value, `Err(e)` as [`Feed::Error`].
    pub fn from_result<E: std::error::Error + Send + Sync + 'static>(result: Result<V, E>) -> Self {
        match result {
            Ok(v) => Feed::Value(v),
            Err(e) => Feed::Error(Error::new(e)),
        }
    }

    /// An error feed: it ends an iterator or stream that yields it ([`Feed::Error`]).
    pub fn error(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Feed::Error(Error::new(err))
    }

    /// One bad item: a `Failure`, and the iterator or stream goes on
    /// ([`Feed::ItemError`]).
    pub fn item_error(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Feed::ItemError(Error::new(err))
    }

    /// A function source.
    pub fn function<F, T>(f: F) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
        T: Into<Feed<V, C>>,
    {
        Feed::Function(Box::new(move || f().into()))
    }

    /// A `SYNC_GENERATOR` source.
    pub fn generator<I>(iter: I) -> Self
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        Feed::Generator(Box::new(iter.into_iter().map(Into::into)))
    }

    /// A `SYNC_ITERATOR` source.
    pub fn iterator<I>(iter: I) -> Self
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<Feed<V, C>> + 'static,
    {
        Feed::Iterator(Box::new(iter.into_iter().map(Into::into)))
    }

    /// A `COROUTINE` source.
    pub fn future<F>(fut: F) -> Self
    where
        F: Future + Send + 'static,
        F::Output: Into<Feed<V, C>>,
    {
        Feed::Future(Box::pin(async move { fut.await.into() }))
    }

    /// A `TASK` source; the task's output (joined: taken by value) becomes the feed.
    pub fn task<T>(task: Task<T>) -> Self
    where
        T: Into<Feed<V, C>> + Send + 'static,
    {
        Feed::Task(TaskFeed::new(task))
    }

    /// An `ASYNC_GENERATOR` source.
    pub fn stream<S>(stream: S) -> Self
    where
        S: Stream + Send + 'static,
        S::Item: Into<Feed<V, C>>,
    {
        Feed::Stream(Box::pin(stream.map(Into::into)))
    }
}

impl<V, C> Feed<V, C> {
    /// Gives this feed its own context, used instead of the producing source's for its
    /// results and the results of the sources it produces (a crawler gives each page
    /// the page's URL).
    ///
    /// The context's type is the manager's context type `C` (a `Feed<V, C>` names it),
    /// so a context of another type is a compile error:
    ///
    /// ```compile_fail,E0308
    /// use machinery::helpers::Feed;
    /// // A manager of `u32` values with `String` contexts takes `Feed<u32, String>`.
    /// let feed: Feed<u32, String> = Feed::Value(1).with_context(5u32); // error[E0308]
    /// ```
    ///
    /// The context is stored once (one `Arc` for this feed); every result it reaches
    /// shares it. [`with_shared_context`](Self::with_shared_context) takes an `Arc`
    /// you already hold, so many feeds share one context without a copy.
    ///
    /// **Differs from the original**, where a result's context is always the one given
    /// with the first source of its chain.
    ///
    /// Calling it again on the result replaces the context (no nesting). On
    /// [`Feed::Error`] the context goes with the `Failure`; the error still ends an
    /// iterator or stream that yields it (see [`Feed::Error`]).
    pub fn with_context(self, context: C) -> Self {
        self.with_shared_context(Arc::new(context))
    }

    /// [`with_context`](Self::with_context) with a context already shared: no copy,
    /// no allocation.
    pub fn with_shared_context(self, context: Arc<C>) -> Self {
        match self {
            Feed::WithContext(inner, _) => Feed::WithContext(inner, context),
            feed => Feed::WithContext(Box::new(feed), context),
        }
    }

    /// The kind of source this feed would become, `None` for a value or an error.
    pub fn kind(&self) -> Option<super::QueueInput> {
        use super::QueueInput as Q;
        match self {
            Feed::Value(_) | Feed::Error(_) | Feed::ItemError(_) => None,
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

impl<V: fmt::Debug, C> fmt::Debug for Feed<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Feed::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Feed::Error(e) => f.debug_tuple("Error").field(e).finish(),
            Feed::ItemError(e) => f.debug_tuple("ItemError").field(e).finish(),
            Feed::WithContext(inner, _) => f.debug_tuple("WithContext").field(inner).finish(),
            other => write!(f, "Feed::{:?}", other.kind().expect("a source kind")),
        }
    }
}
