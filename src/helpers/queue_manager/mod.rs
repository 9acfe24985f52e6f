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
//! `Feed::Value`): it is added as a new source under the producing source, never
//! yielded.
//!
//! # The turn model
//! The order a consumer sees is exactly the original's (SEMANTICS, "Turn model"). The
//! streamer's queue holds results and instructions in FIFO order; the consumer takes
//! entries from the front: an instruction runs and yields nothing, a result is yielded.
//! - `add_value(v)` *extends* `v` inside the call; `add_sync_function(f)` calls `f`
//!   inside the call and extends what it returns (an error is a `Failure` at the back).
//! - An iterator, generator or stream puts a *step* at the back. A step takes one item:
//!   an item puts an *extend* instruction for it, then the next step, at the back;
//!   exhausted → `IterationStop` at the back; an error → `Failure`, then
//!   `IterationStop(error)`, and the source is never advanced again. A stream's step
//!   polls it when taken; when it is not ready, the stream waits for its own waker and
//!   is polled again (same handling) before the consumer takes its next entry.
//! - `add_coroutine(fut)` is a `COROUTINE` source that spawns `fut` and adds that task
//!   as a `TASK` source under it: its results carry `[TASK, COROUTINE, ...]`. A task,
//!   when it finishes, has its output extended (a failure is a `Failure` at the back).
//! - *Extending* a feed of source `s`: a value becomes `Success` at the back; a
//!   function becomes a *call* instruction at the back (which adds it as a
//!   `SYNC_FUNCTION` source under `s` and extends what it returns); any other source
//!   becomes a new source under `s`, added by the rules above.
//!
//! So a value surfaces one round after the step that produced it, and no source
//! delivers twice while another has a turn queued.
//!
//! # Worked example
//! Follow the queue (`St n`: step of source n, `E x`: extend `x`, `C`: call, `S x`:
//! the result for `x`):
//! ```
//! use futures::StreamExt;
//! use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
//!
//! /// `kind value chain @context` for one result.
//! fn line(r: &R<i32, &'static str>) -> String {
//!     match r {
//!         R::Success { value, sources, context } => format!("ok {value} {sources:?} @{context}"),
//!         R::Failure { error, sources, .. } => format!("fail {error} {sources:?}"),
//!         R::IterationStop { sources, .. } => format!("end {sources:?}"),
//!         R::Stopped { error } => format!("stopped {error:?}"),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let (mut streamer, feeder) = hp::queue_manager_with_empty_context::<i32, &str>(&ctx, "qm", || "-");
//! feeder.add_sync_iterator_with_context([1, 2], "list"); // SYNC_ITERATOR#1: [St1]
//! feeder.add_value(10); //                                  VALUE#2: [St1, S10]
//! // SYNC_FUNCTION#3 runs now and returns a generator: SYNC_GENERATOR#4 under it.
//! feeder.add_sync_function(|| Feed::generator([20])); //    [St1, S10, St4]
//! feeder.add_coroutine(async { 30 }); // COROUTINE#5 spawns TASK#6 (runs when we wait)
//! feeder.set_as_finished_if_out_of_sources();
//!
//! let mut seen = Vec::new();
//! while let Some(result) = streamer.next().await {
//!     seen.push(line(&result));
//! }
//! assert_eq!(
//!     seen,
//!     [
//!         // St1 takes 1           -> [S10, St4, E1, St1]
//!         "ok 10 [VALUE#2] @-", // -> [St4, E1, St1]
//!         // St4 takes 20          -> [E1, St1, E20, St4]
//!         // E1                    -> [St1, E20, St4, S1]
//!         // St1 takes 2           -> [E20, St4, S1, E2, St1]
//!         // E20                   -> [St4, S1, E2, St1, S20]
//!         // St4 is exhausted      -> [S1, E2, St1, S20, IS4]
//!         "ok 1 [SYNC_ITERATOR#1] @list",
//!         // E2                    -> [St1, S20, IS4, S2]
//!         // St1 is exhausted      -> [S20, IS4, S2, IS1]
//!         "ok 20 [SYNC_GENERATOR#4, SYNC_FUNCTION#3] @-",
//!         "end [SYNC_GENERATOR#4, SYNC_FUNCTION#3]",
//!         "ok 2 [SYNC_ITERATOR#1] @list",
//!         "end [SYNC_ITERATOR#1]",
//!         // the queue is empty: the consumer waits, TASK#6 runs and finishes:
//!         // its output is extended -> [S30]
//!         "ok 30 [TASK#6, COROUTINE#5] @-",
//!         // nothing live, nothing queued, and we were told to finish
//!         "stopped None",
//!     ]
//! );
//! # }
//! ```
//! `tests/qm/queue_manager.rs` (the `turns_*` tests) works through more: streams waiting
//! for their waker, a future resolving to a stream, a task resolving to a coroutine, an
//! error in the middle of an iterator, a stop with work still queued, the breaker.
//!
//! # Failures
//! A source fails when it panics, yields [`Feed::Error`] (bare or wrapped by
//! [`Feed::with_context`]: an error wherever it sits), or (a future or task) is
//! cancelled: a `Failure` is delivered, and an iterator or stream also ends with an
//! `IterationStop` carrying the error and handing back what it left unread. To report
//! one bad item and go on, an iterator or stream yields [`Feed::ItemError`] instead:
//!
//! | an iterator or stream yields | delivered | the source |
//! |---|---|---|
//! | [`Feed::Error`] (bare or wrapped) | `Failure`, then `IterationStop` with `unread` | ends |
//! | [`Feed::ItemError`] (bare or wrapped) | `Failure`, in the item's turn | goes on |
//!
//! Cancellation is [`Failure::Cancelled`](crate::helpers::Failure::Cancelled), never
//! "no error".
//!
//! # Nothing is lost
//! Every value handed to the manager is delivered, or comes back to the caller:
//!
//! | what the manager does not run | where it comes back |
//! |---|---|
//! | the rest of an iterator or stream ended by an error (or a panic in `next`) | its `IterationStop`'s `unread` ([`QueueManagerResult::take_unread`]) |
//! | the rest of an iterator or stream the stop cut short | its `IterationStop`'s `unread`, and [`Streamer::cut_short`] lists it |
//! | a produced function after the stop (not called) | its `Failure`'s `unread` (a [`Feed::Function`]), listed by `cut_short` |
//! | a future after the stop (not spawned) | its `Failure`'s `unread` (a [`Feed::Future`]), listed by `cut_short` |
//! | a running task the stop cancelled | its `Failure` (cancelled), listed by `cut_short`; [`Streamer::close`] waits for its cleanup |
//! | a generator source ([`hp::AsyncGenerator`](crate::helpers::AsyncGenerator)) the stop ended | not handed back: stopped as `stop_async_generator` does (the seed's close) |
//! | results queued when the breaker ended the stream | [`Streamer::remaining`] |
//!
//! Dropping the streamer drops what is still queued (its results included): read the
//! stream to its end (or call `remaining`) before dropping it to keep them.
//!
//! ```
//! use futures::StreamExt;
//! use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
//! feeder.add_sync_iterator(1..=4);
//! let first = streamer.next().await.and_then(R::into_value);
//! assert_eq!(first, Some(1));
//! streamer.ctx().cancel(); // stop: 2 was already produced, 3 and 4 were not
//! feeder.add_coroutine(async { 5 }); // after the stop: not spawned
//! let mut delivered = Vec::new();
//! let mut unread = Vec::new();
//! while let Some(mut r) = streamer.next().await {
//!     unread.extend(r.take_unread());
//!     delivered.extend(r.into_value());
//! }
//! assert_eq!(delivered, [2]);
//! // The future and the iterator's rest come back (in the order of their results:
//! // the future's `Failure` was queued before the step that found the stop).
//! let Feed::Future(fut) = unread.remove(0) else { panic!() };
//! assert!(matches!(fut.await, Feed::Value(5)));
//! let Feed::Iterator(rest) = unread.remove(0) else { panic!() };
//! assert_eq!(rest.count(), 2); // 3 and 4, to count or re-queue
//! assert_eq!(streamer.cut_short().len(), 2);
//! # }
//! ```
//!
//! # Stopping
//! When the manager's context finishes (the one given, or its own child context:
//! [`Streamer::ctx`]), `Stopped { error }` with the context's outcome goes to the front
//! of the queue, exactly once (replacing a `Stopped { error: None }` still queued, so
//! the consumer sees one `Stopped`), and the entries already queued are still taken in
//! order: a step then finds the context done and ends its source with an
//! `IterationStop` carrying the failure, an extension still delivers. Streams waiting
//! for their waker end at once (an `IterationStop` at the back) and running tasks are
//! cancelled (a `Failure` at the back), in the order the sources were added; tasks that
//! already finished still deliver. What is added afterwards is delivered by the same
//! rules. **Nothing new starts after the stop**: a future is not spawned and a produced
//! function is not called (each comes back in its `Failure`), so a stop ends the stream
//! after a bounded amount of work even when every function returns another function.
//! Each source the stop ended is *cut short*: its result carries the stop's failure,
//! its chain, its context and what it left unread, and [`Streamer::cut_short`] lists
//! them all, so a program can tell which work did not finish.
//! [`Streamer::close`], the scoped form [`queue_manager_scoped`], and dropping the
//! streamer stop it the same way (with `Failure::Cancelled`).
//!
//! Generator sources ([`hp::AsyncGenerator`](crate::helpers::AsyncGenerator) as a
//! stream) that the stop ends are stopped as
//! [`stop_async_generator`](crate::helpers::stop_async_generator) does: the stop's
//! failure is thrown in at the yield where each waits and its async cleanup runs, one
//! generator after the other, in the order the stop ended them: by [`Streamer::close`]
//! and the scoped form before they return, and by the consumer before its stream ends.
//! Dropping the streamer drops them instead (Rust has no async `Drop`: their synchronous
//! cleanup runs, their async cleanup does not).
//!
//! After [`QueueFeeder::set_as_finished_if_out_of_sources`], `Stopped { error: None }`
//! is put at the back at the first check that finds no live source and nothing queued;
//! checks are made when the call is made and each time the consumer asks for its next
//! entry, so it comes at once when there are no sources at all (**differs from the
//! original**, which checks only after the consumer handled a result, and so waits for
//! ever then, or after a step that produced nothing).
//!
//! The breaker ([`Streamer::breaker`]) ends the stream before the next entry is taken:
//! results already produced stay for [`Streamer::remaining`] and no source is advanced
//! (**differs from the original**, whose queue drains on the breaker, stepping sources
//! until it is empty, which never ends with an endless source).
//!
//! # Contexts
//! A result's context ([`ResultContext`], dereferencing to `C`) is the one given with
//! the first source of its chain (`add_x_with_context`), shared by all its results (a
//! reference count per result: a `String` context costs no allocation per item), else
//! the manager's empty context: `C::default()` ([`queue_manager`]) or the seed's
//! `make_empty_context()` ([`queue_manager_with_empty_context`]), made when the result
//! is handed out. A produced feed may bring its own ([`Feed::with_context`]), used for
//! its results and those of the sources it produces (**differs from the original**,
//! which has no such thing); a [`Feed<V, C>`](Feed) names the manager's context type,
//! so a context of another type does not compile.
//!
//! # Memory and robustness
//! A finished source leaves the table at once: a manager that lives for ever while
//! millions of sources come and go holds only the live ones ([`QueueFeeder::live_sources`]).
//! The entry queue gives its memory back once a burst is consumed: when three quarters
//! of its capacity are unused (past 1 024 entries) it halves, so after 1 M queued values
//! are taken a long-lived manager is back to a small queue (amortised O(1) per entry;
//! a steady manager below 1 024 entries never reallocates).
//! Source chains are bounded ([`Sources`], **differs from the original**). No user code
//! runs and no user value is dropped under the manager's lock; a panic in user code
//! (a source, its `Drop`, a task's `Clone`) is caught: the source fails, or (a `Drop`)
//! the panic is logged, and the manager goes on with everything woken and cancelled.
//!
//! # Mapping to the seed
//! The seed's four result classes are the four variants of [`QueueManagerResult`]
//! (`exception` is named `error`); `sources` is a [`Sources`] chain of
//! `(QueueInput, SourceId)` pairs; generators and plain iterables are told apart by the
//! method used (`add_sync_generator` / `add_sync_iterator`, [`Feed::generator`] /
//! [`Feed::iterator`]); the seed's `context=` keyword is the `add_x_with_context` form.

mod core;
mod feed;
mod feeder;
mod result;
mod sources;
mod streamer;

use std::borrow::Cow;
use std::future::Future;

pub use feed::{Feed, FeedFn, FeedFuture, FeedIter, FeedStream};
pub use feeder::QueueFeeder;
pub use result::{CHAIN_KEEP, QueueInput, QueueManagerResult, ResultContext, SourceId, Sources};
pub use sources::task::TaskFeed;
pub use streamer::{CutShort, Streamer};

use super::ctx::Ctx;
use super::error::{BoxError, Error};
use core::Shared;

/// Creates a queue manager on a child of `ctx` named `queue_manager`.
///
/// A result whose sources were given no context carries `C::default()` (made when the
/// result is handed out: no allocation for `()`, `String`, `Option<_>`...); one given
/// with a source is shared by its results ([`ResultContext`]).
///
/// **Breaking** (0.x): `make_empty_context` is no longer required; the seed's form is
/// [`queue_manager_with_empty_context`].
pub fn queue_manager<V, C>(ctx: &Ctx) -> (Streamer<V, C>, QueueFeeder<V, C>)
where
    V: Send + 'static,
    C: Default + Send + Sync + 'static,
{
    queue_manager_named(ctx, "queue_manager")
}

/// [`queue_manager`] with the seed's `name`: the manager's context is `ctx-->name`.
pub fn queue_manager_named<V, C>(
    ctx: &Ctx,
    name: impl Into<Cow<'static, str>>,
) -> (Streamer<V, C>, QueueFeeder<V, C>)
where
    V: Send + 'static,
    C: Default + Send + Sync + 'static,
{
    queue_manager_with_empty_context(ctx, name, C::default)
}

/// The seed's full form: `make_empty_context` makes the context of results whose
/// sources were given none; it is called once per such result, when the streamer hands
/// it out (with no lock held; a panic there reaches that poll).
pub fn queue_manager_with_empty_context<V, C>(
    ctx: &Ctx,
    name: impl Into<Cow<'static, str>>,
    make_empty_context: impl Fn() -> C + Send + Sync + 'static,
) -> (Streamer<V, C>, QueueFeeder<V, C>)
where
    V: Send + 'static,
    C: Send + Sync + 'static,
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
/// [`BoxError`] (an [`hp::Error`](crate::helpers::Error),
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
    body: F,
) -> Result<T, Error>
where
    V: Send + 'static,
    C: Default + Send + Sync + 'static,
    F: FnOnce(Streamer<V, C>, QueueFeeder<V, C>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let (streamer, feeder) = queue_manager_named(ctx, name);
    let closer = streamer.scoped_closer();
    let out = body(streamer, feeder).await;
    closer.close().await;
    out.map_err(|e| Error::from_boxed(e.into()))
}
