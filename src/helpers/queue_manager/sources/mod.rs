//! The kinds of source a queue manager drives, one file each, and one step of each.
//!
//! A source is a [`Body`] held in the manager's table. The streamer takes a body out
//! of the table, runs one [`Body::step`] with no lock held (the step runs user code:
//! `next()`, `poll_next`, a function), and hands the [`Step`] back to the manager.

pub(crate) mod function;
pub(crate) mod future;
pub(crate) mod iterator;
pub(crate) mod stream;
pub(crate) mod task;

use super::feed::{Feed, FeedFn, FeedFuture, FeedIter};
use super::result::QueueInput;
use crate::helpers::error::Failure;
use crate::helpers::task::AnyTask;
pub(crate) use stream::{Schedule, StreamSource};
pub(crate) use task::PendingSource;

/// One live source.
pub(crate) enum Body<V> {
    /// A function not called yet (an extension; top-level functions are called at once).
    Function(FeedFn<V>),
    /// A sync iterator or generator.
    Iter(FeedIter<V>),
    /// A stream, polled with its own waker.
    Stream(StreamSource<V>),
    /// A future not spawned yet: the manager spawns it when it admits it.
    Future(FeedFuture<V>),
    /// A running task (a spawned future or a user's task): stepped once it is done.
    Pending(Box<dyn PendingSource<V>>),
    /// A source that could not start (no runtime to spawn on): fails on its turn.
    Broken(Failure),
}

/// What one step of a source gave.
pub(crate) enum Step<V> {
    /// A value or an extension (never [`Feed::Error`]); the body when the source goes on.
    Yield(Feed<V>, Option<Body<V>>),
    /// The source failed; `true` when it was an iteration (it also gets an IterationStop).
    Fail(Failure, bool),
    /// An iteration ended (with the error that ended it, if any).
    End(Option<Failure>),
    /// A stream had nothing ready: it waits for its waker.
    Wait(Body<V>),
    /// Not stepped after all (the breaker was set): it keeps its turn.
    Untouched(Body<V>),
}

impl<V: Send + 'static> Body<V> {
    /// The body for an extendable feed, with its kind; `None` for a value or an error.
    pub(crate) fn from_feed(feed: Feed<V>) -> Result<(QueueInput, Body<V>), Feed<V>> {
        Ok(match feed {
            Feed::Function(f) => (QueueInput::SyncFunction, Body::Function(f)),
            Feed::Generator(g) => (QueueInput::SyncGenerator, Body::Iter(g)),
            Feed::Iterator(i) => (QueueInput::SyncIterator, Body::Iter(i)),
            Feed::Future(f) => (QueueInput::Coroutine, Body::Future(f)),
            Feed::Task(t) => (QueueInput::Task, Body::Pending(t.into_inner())),
            Feed::Stream(s) => (
                QueueInput::AsyncGenerator,
                Body::Stream(StreamSource::new(s)),
            ),
            other @ (Feed::Value(_) | Feed::Error(_)) => return Err(other),
        })
    }

    /// Runs one step. `key`/`number` name the source for a stream's waker.
    pub(crate) fn step(
        self,
        target: &std::sync::Weak<dyn Schedule>,
        key: usize,
        number: u64,
    ) -> Step<V> {
        match self {
            Body::Function(f) => function::call(f),
            Body::Iter(it) => iterator::step(it),
            Body::Stream(s) => s.step(target, key, number),
            Body::Pending(p) => task::step(p),
            Body::Broken(f) => Step::Fail(f, false),
            // The manager spawns futures when it admits them; one left unspawned has no
            // runtime to run on.
            Body::Future(_) => Step::Fail(future::no_runtime(), false),
        }
    }

    /// Whether the source is an iteration (ends with an IterationStop).
    pub(crate) fn is_iteration(&self) -> bool {
        matches!(self, Body::Iter(_) | Body::Stream(_))
    }

    /// The task behind a pending source.
    pub(crate) fn task(&self) -> Option<AnyTask> {
        match self {
            Body::Pending(p) => Some(p.handle()),
            _ => None,
        }
    }
}

/// Turns a produced feed into a step result: an error feed fails the source.
pub(crate) fn yielded<V>(feed: Feed<V>, cont: Option<Body<V>>) -> Step<V> {
    match feed {
        Feed::Error(e) => Step::Fail(Failure::Error(e), cont.is_some()),
        feed => Step::Yield(feed, cont),
    }
}
