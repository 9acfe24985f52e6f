//! The kinds of source a queue manager drives, one file each, and one step of each.
//!
//! A live source is a [`Body`] held in the manager's table. The streamer takes a body
//! out of the table, runs one step with no lock held (the step runs user code: `next()`,
//! `poll_next`, a function), and hands the outcome back to the manager. Every call into
//! user code here catches a panic and turns it into a failure.

pub(crate) mod function;
pub(crate) mod future;
pub(crate) mod iterator;
pub(crate) mod stream;
pub(crate) mod task;

use std::sync::Arc;

use super::QueueInput;
use super::feed::{Feed, FeedIter};
use crate::helpers::error::{Error, Failure};
use crate::helpers::task::AnyTask;
pub(crate) use stream::{Schedule, Stopping, StreamSource};
pub(crate) use task::PendingSource;

/// One live source in the manager's table.
///
/// A stream source (a stream and its waker, four words) is boxed, so that a body is
/// three words: the consumer moves it out of the table and back for every step.
pub(crate) enum Body<V, C> {
    /// A sync iterator or generator.
    Iter(FeedIter<V, C>),
    /// A stream never polled yet (its first poll tells whether it is a generator).
    NewStream(Box<StreamSource<V, C>>),
    /// A stream, polled with its own waker.
    Stream(Box<StreamSource<V, C>>),
    /// An `hp::AsyncGenerator` (or `TryGenerator`), maybe behind adapters such as `map`:
    /// the manager's stop stops it as `stop_async_generator` does instead of dropping it.
    Generator(Box<StreamSource<V, C>>),
    /// A running task (a spawned future or a user's task): taken once it is done.
    Task(Box<dyn PendingSource<V, C>>),
}

/// What one step of an iterator or stream gave.
pub(crate) enum Polled<V, C> {
    /// An item to extend (never [`Feed::Error`]).
    Item(Feed<V, C>),
    /// The iteration failed: an error item (with the context it was given, if any), or
    /// a panic in `next`/`poll_next`.
    Fail(Failure, Option<Arc<C>>),
    /// Exhausted.
    End,
    /// A stream had nothing ready: it waits for its waker.
    Pending,
}

impl<V, C> Polled<V, C> {
    /// Sorts a produced feed: an error fails the iteration, bare or wrapped (SEMANTICS:
    /// "`Feed::Error` is an error wherever it sits"); [`Feed::ItemError`] does not.
    #[inline]
    pub(crate) fn from_feed(feed: Feed<V, C>) -> Self {
        match feed {
            Feed::Error(e) => Polled::Fail(Failure::Error(e), None),
            Feed::WithContext(inner, c) if matches!(*inner, Feed::Error(_)) => {
                let Feed::Error(e) = *inner else {
                    unreachable!("matched above")
                };
                Polled::Fail(Failure::Error(e), Some(c))
            }
            feed => Polled::Item(feed),
        }
    }
}

impl<V, C> Body<V, C> {
    /// The task behind a task source.
    pub(crate) fn task(&self) -> Option<AnyTask> {
        match self {
            Body::Task(p) => Some(p.handle()),
            _ => None,
        }
    }
}

impl<V: 'static, C: 'static> Body<V, C> {
    /// Steps an iterator or stream source (a task source is never stepped).
    pub(crate) fn step(&mut self) -> Polled<V, C> {
        match self {
            Body::Iter(it) => iterator::step(it),
            Body::Stream(s) | Body::Generator(s) => s.poll(),
            Body::NewStream(_) => self.first_poll(),
            Body::Task(_) => Polled::End,
        }
    }
}

impl<V, C> Body<V, C> {
    /// Whether a stream source's waker fired since its last poll began (never, for
    /// the other kinds).
    pub(crate) fn woke(&self) -> bool {
        match self {
            Body::Stream(s) | Body::Generator(s) | Body::NewStream(s) => s.woke(),
            Body::Iter(_) | Body::Task(_) => false,
        }
    }

    /// A generator stream source, to stop rather than drop.
    pub(crate) fn into_generator(self) -> Result<super::feed::FeedStream<V, C>, Self> {
        match self {
            Body::Generator(s) => Ok((*s).into_stream()),
            other => Err(other),
        }
    }

    /// What an iterator or stream source left unread, as the feed it was given as (a
    /// source of `kind`); `None` for a task.
    pub(crate) fn into_unread(self, kind: QueueInput) -> Option<Feed<V, C>> {
        match self {
            Body::Iter(it) if kind == QueueInput::SyncGenerator => Some(Feed::Generator(it)),
            Body::Iter(it) => Some(Feed::Iterator(it)),
            Body::NewStream(s) | Body::Stream(s) | Body::Generator(s) => {
                Some(Feed::Stream((*s).into_stream()))
            }
            Body::Task(_) => None,
        }
    }

    /// Whether this is a generator stream source.
    pub(crate) fn is_generator(&self) -> bool {
        matches!(self, Body::Generator(_))
    }
}

impl<V: 'static, C: 'static> Body<V, C> {
    #[cold]
    fn first_poll(&mut self) -> Polled<V, C> {
        // A placeholder that allocates nothing (a boxed zero-sized iterator).
        let empty: FeedIter<V, C> = Box::new(std::iter::empty());
        let Body::NewStream(mut s) = std::mem::replace(self, Body::Iter(empty)) else {
            unreachable!("first_poll of a stream never polled");
        };
        let (polled, generator) = s.poll_first();
        *self = if generator {
            Body::Generator(s)
        } else {
            Body::Stream(s)
        };
        polled
    }
}

/// The error of a panic in user code.
pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Failure {
    Failure::Error(Error::from_panic(payload))
}
