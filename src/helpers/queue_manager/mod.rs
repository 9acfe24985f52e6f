//! Queue manager: one stream of results from many kinds of sources (the seed's
//! `hp.queue_manager`).
//!
//! [`queue_manager`] returns a [`Streamer`] and a [`QueueFeeder`]. The feeder takes
//! sources of every kind: functions, iterators, values, futures, tasks and streams.
//! The streamer yields one [`QueueManagerResult`] per value, failure, end of iteration,
//! and stop, each naming the chain of [`Sources`] behind it and carrying the context
//! given with the first source of that chain.
//!
//! A value a source produces may itself be a source (a [`Feed`] other than
//! `Feed::Value`): it is added as a new source whose parent is the producing source,
//! never yielded.
//!
//! # Example
//! ```
//! use futures::StreamExt;
//! use machinery::helpers::{self as hp, Feed, QueueInput, QueueManagerResult as R};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let (mut streamer, feeder) = hp::queue_manager::<i32, &str>(&ctx, || "");
//! let list = feeder.add_sync_iterator([1, 2], "list");
//! feeder.add_value(Feed::generator([Feed::Value(10)]), None); // an extendable value
//! feeder.add_coroutine(async { 100 }, "future");
//! feeder.set_as_finished_if_out_of_sources();
//!
//! let mut seen = Vec::new();
//! while let Some(result) = streamer.next().await {
//!     match result {
//!         R::Success { value, context, sources } => {
//!             if value == 1 {
//!                 assert_eq!(sources, [(QueueInput::SyncIterator, list)]);
//!             }
//!             seen.push(format!("{value} from {context:?}"));
//!         }
//!         R::Failure { error, .. } => seen.push(format!("failed: {error}")),
//!         R::IterationStop { context, .. } => seen.push(format!("{context:?} ended")),
//!         R::Stopped { error } => seen.push(format!("stopped: {error:?}")),
//!     }
//! }
//! assert_eq!(
//!     seen,
//!     [
//!         "1 from \"list\"", "10 from \"\"", "2 from \"list\"", "\"\" ended",
//!         "\"list\" ended", "100 from \"future\"", "stopped: None",
//!     ]
//! );
//! # }
//! ```
//!
//! # Turns
//! Sources take turns: each step of a source (one item of an iterator or stream, the
//! call of a function), and each source a step produces, goes to the back of the ready
//! queue, so while several sources are live none gives a second value before every
//! other live source gave one or ended; each source keeps its own order, and its
//! `IterationStop` follows all its values. Only sources with something ready are
//! touched: a stream is queued by its own waker, a task by its done callback, so the
//! cost per item does not grow with the number of idle sources.
//!
//! Iterators, functions and streams advance only while the streamer is polled (it is
//! the one that steps them). Futures are spawned as tasks at once and run on their own.
//!
//! # Failures
//! A source fails when it panics, yields [`Feed::Error`], or (a future or task) is
//! cancelled: a `Failure` is delivered, and an iterator or stream also ends with an
//! `IterationStop` carrying the error. Cancellation is [`Failure::Cancelled`](crate::helpers::Failure::Cancelled),
//! never "no error". Nothing is lost.
//!
//! # Stopping
//! When the manager's context finishes (the one given, or its own child context:
//! [`Streamer::ctx`]), `Stopped { error }` with the context's outcome is delivered
//! next, exactly once, ahead of what is queued; running tasks are cancelled, iterators
//! and streams dropped (their `Drop` cleanup runs) and each ends with an `IterationStop`
//! carrying the error; what was already produced is still delivered, then the stream
//! ends. [`Streamer::close`], the scoped form [`queue_manager_scoped`], and dropping the
//! streamer stop it the same way (with `Failure::Cancelled`).
//!
//! After [`QueueFeeder::set_as_finished_if_out_of_sources`], `Stopped { error: None }`
//! comes once no source is live and nothing is queued, at once when there are no
//! sources at all (**differs from the original**, which waits forever then).
//!
//! # Memory
//! A finished source leaves the table at once: a manager that lives for ever while
//! millions of sources come and go holds only the live ones ([`QueueFeeder::live_sources`]).
//!
//! # Mapping to the seed
//! The seed's four result classes are the four variants of [`QueueManagerResult`]
//! (`exception` is named `error`); `sources` is a [`Sources`] chain of
//! `(QueueInput, SourceId)` pairs; generators and plain iterables are told apart by the
//! method used (`add_sync_generator` / `add_sync_iterator`, [`Feed::generator`] /
//! [`Feed::iterator`]).

mod core;
mod feed;
mod feeder;
mod result;
mod sources;
mod streamer;

use std::borrow::Cow;
use std::future::Future;

pub use feed::{Feed, FeedContext, FeedFn, FeedFuture, FeedIter, FeedStream};
pub use feeder::QueueFeeder;
pub use result::{CHAIN_KEEP, QueueInput, QueueManagerResult, SourceId, Sources};
pub use sources::task::TaskFeed;
pub use streamer::{CutShort, Streamer};

use super::ctx::Ctx;
use super::error::{BoxError, Error};
use core::Shared;

/// Creates a queue manager on a child of `ctx` named `queue_manager`.
///
/// `make_empty_context` makes the context of results whose sources were added without
/// one; it is called once per such result, when the streamer hands it out.
pub fn queue_manager<V, C>(
    ctx: &Ctx,
    make_empty_context: impl Fn() -> C + Send + Sync + 'static,
) -> (Streamer<V, C>, QueueFeeder<V, C>)
where
    V: Send + 'static,
    C: Clone + Send + Sync + 'static,
{
    queue_manager_named(ctx, "queue_manager", make_empty_context)
}

/// [`queue_manager`] with the seed's `name`: the manager's context is `ctx-->name`.
pub fn queue_manager_named<V, C>(
    ctx: &Ctx,
    name: impl Into<Cow<'static, str>>,
    make_empty_context: impl Fn() -> C + Send + Sync + 'static,
) -> (Streamer<V, C>, QueueFeeder<V, C>)
where
    V: Send + 'static,
    C: Clone + Send + Sync + 'static,
{
    let guard = ctx.child(name).drop_guard();
    let runtime = guard
        .runtime()
        .or_else(|| tokio::runtime::Handle::try_current().ok());
    let shared = Shared::new(Box::new(make_empty_context), runtime);
    let weak = std::sync::Arc::downgrade(&shared);
    guard.add_done_callback(move |how| {
        if let Some(shared) = weak.upgrade() {
            shared.stop(how.clone());
        }
    });
    (
        Streamer::new(guard, shared.clone()),
        QueueFeeder::new(shared),
    )
}

/// The scoped form (the seed's `async with hp.queue_manager(...)`): runs `body` with
/// the streamer and feeder, then closes the manager (cancelling what still runs and
/// waiting for the cancelled tasks to finish) and returns the body's output.
///
/// The body returns `Result<T, E>` for any error type that converts into
/// [`BoxError`](crate::helpers::BoxError) (an [`hp::Error`](crate::helpers::Error),
/// `anyhow::Error`, `eyre::Report`, `std::io::Error`, ...); its error comes back as an
/// [`hp::Error`](crate::helpers::Error) ([`Error::from_boxed`](crate::helpers::Error::from_boxed):
/// an `hp::Error` comes back as itself). The manager is closed either way.
///
/// # Cancel safety
/// Dropping the returned future drops the streamer, which stops the manager without
/// waiting for the cancelled tasks.
pub async fn queue_manager_scoped<V, C, F, Fut, T, E>(
    ctx: &Ctx,
    name: impl Into<Cow<'static, str>>,
    make_empty_context: impl Fn() -> C + Send + Sync + 'static,
    body: F,
) -> Result<T, Error>
where
    V: Send + 'static,
    C: Clone + Send + Sync + 'static,
    F: FnOnce(Streamer<V, C>, QueueFeeder<V, C>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let (streamer, feeder) = queue_manager_named(ctx, name, make_empty_context);
    let closer = streamer.closer();
    let out = body(streamer, feeder).await;
    closer.close().await;
    out.map_err(|e| Error::from_boxed(e.into()))
}
