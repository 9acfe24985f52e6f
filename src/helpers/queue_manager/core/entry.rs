//! What the queue holds and what the consumer is told to do: [`Raw`] results,
//! [`Entry`] (results and instructions), [`Next`] (the consumer's next move), and the
//! pushing of results at the back.
//!
//! # Invariants
//! 1. The queue holds results and instructions in FIFO order (SEMANTICS, "Turn model");
//!    only the consumer takes entries, from the front, and only `Stopped` is put at the
//!    front (`stop.rs`).
//! 2. A `ValueStep` is exactly the pair `Extend(Value)`, `Step` that a step producing a
//!    plain value queues: nothing can come between its two halves.
//! 3. An entry stays six words: what is rare per item (a feed other than a value, a
//!    result handing back unread work) is boxed.
//! 4. A result's context is made (`make_empty_context`, user code) only when it is
//!    handed out, with no lock held ([`Shared::resolve`]).

use super::*;

/// A source's context: shared by its results, cloned out when one is handed out.
pub(crate) type Ctxt<C> = Option<Arc<C>>;
/// A result as queued: its context is the source's (or `None` when the source had
/// none); [`Shared::resolve`] makes the [`QueueManagerResult`] handed out.
pub(crate) enum Raw<V, C> {
    Success {
        sources: Sources,
        value: V,
        context: Ctxt<C>,
    },
    Failure {
        sources: Sources,
        error: Failure,
        context: Ctxt<C>,
    },
    IterationStop {
        sources: Sources,
        error: Option<Failure>,
        context: Ctxt<C>,
    },
    Stopped {
        error: Option<Failure>,
    },
    /// A `Failure` or an `IterationStop` handing back what its source left unread:
    /// rare (once per source an error or the stop ended), so boxed, keeping every
    /// entry of the queue as small as before.
    Unread(Box<Unread<V, C>>),
}

/// The boxed body of [`Raw::Unread`].
pub(crate) struct Unread<V, C> {
    /// An `IterationStop` (else a `Failure`).
    end: bool,
    sources: Sources,
    error: Failure,
    context: Ctxt<C>,
    unread: Feed<V, C>,
}

/// One entry of the queue (invariant 1).
pub(crate) enum Entry<V, C> {
    /// A result, handed to the consumer.
    Result(Raw<V, C>),
    /// The next step of the iterator or stream at `(key, number)`.
    Step(usize, u64),
    /// Extend a feed produced by the source of `Sources`. Boxed: a feed other than a
    /// plain value (those are `ValueStep`) is rare per item, and unboxed it made every
    /// entry 8 bytes bigger.
    Extend(Box<(Feed<V, C>, Sources, Ctxt<C>)>),
    /// A plain value the iterator or stream at `(key, number)` produced, then that
    /// source's next step: the pair `Extend(Value)`, `Step` that a step producing a value
    /// queues, as one entry. Taking it does exactly what taking the two in a row does
    /// (the `Success` at the back, then the step), and nothing can come between them
    /// (only the consumer takes entries, and only `Stopped` goes to the front, ahead of
    /// both). The source is still in the table when it is taken (a source with a step
    /// queued leaves the table only when that step is taken), so its chain and context
    /// are read then, not cloned per item.
    ValueStep(V, usize, u64),
    /// A `ValueStep` whose source travels with it (a *hot* source, `consumer.rs`): the
    /// value, then the step of the source in the box, which holds its body, its chain
    /// and its context, so the consumer takes the entry, queues the `Success` and steps
    /// the source without looking into the table, with no lock held. The source's
    /// record stays in the table (`Turn::Queued`, no body) for the wakers and the
    /// counts.
    Hot(V, Box<Hot<V, C>>),
    /// Add a produced function as a `SYNC_FUNCTION` source under `Sources` (call it).
    Call(FeedFn<V, C>, Sources, Ctxt<C>),
}

/// What the consumer should do next.
pub(crate) enum Next<V, C> {
    /// Hand out this result.
    Yield(Raw<V, C>),
    /// The stream ends.
    End,
    /// Nothing to do: the waker was registered.
    Wait,
    /// Step (or poll) the source at `(key, number)`, then hand it back with
    /// [`Shared::stepped`].
    Step(usize, u64, Body<V, C>),
    /// Step the hot source in the box (its `Success` is already queued), then hand it
    /// back with [`Shared::stepped_hot`].
    Hot(Box<Hot<V, C>>),
    /// Call a produced function (a new `SYNC_FUNCTION` source with this chain), then
    /// hand its feed back with [`Shared::called`].
    Call(FeedFn<V, C>, Sources, Ctxt<C>),
    /// An instruction ran and produced no result.
    Continue,
}

/// A hot source: an iterator or stream whose step is queued as [`Entry::Hot`] or being
/// taken by the consumer. Its chain and context are clones of its table record's,
/// made once when it first went hot; the box is kept in the record (`spare`) while the
/// source is cold, so going hot again allocates nothing.
pub(crate) struct Hot<V, C> {
    pub(super) key: usize,
    pub(super) number: u64,
    pub(super) chain: Sources,
    pub(super) context: Ctxt<C>,
    /// `None` only while the box is a record's spare.
    pub(super) body: Option<Body<V, C>>,
}

impl<V: Send + 'static, C: Send + Sync + 'static> Hot<V, C> {
    /// Steps the source (user code: called with no lock held).
    #[inline]
    pub(crate) fn step(&mut self) -> Polled<V, C> {
        match self.body.as_mut() {
            Some(body) => body.step(),
            None => Polled::End,
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Shared<V, C> {
    /// Gives a raw result its context (user code: `C::default` or `make_empty_context`;
    /// called with no lock held; a panic there reaches the consumer's poll).
    #[inline]
    pub(crate) fn resolve(&self, raw: Raw<V, C>) -> QueueManagerResult<V, C> {
        let ctx = |c: Ctxt<C>| self.context(c);
        match raw {
            Raw::Success {
                sources,
                value,
                context,
            } => QueueManagerResult::Success {
                sources,
                value,
                context: ctx(context),
            },
            Raw::Failure {
                sources,
                error,
                context,
            } => QueueManagerResult::Failure {
                sources,
                error,
                context: ctx(context),
                unread: None,
            },
            Raw::IterationStop {
                sources,
                error,
                context,
            } => QueueManagerResult::IterationStop {
                sources,
                error,
                context: ctx(context),
                unread: None,
            },
            Raw::Unread(u) => {
                let Unread {
                    end,
                    sources,
                    error,
                    context,
                    unread,
                } = *u;
                let unread = Some(Box::new(unread));
                if end {
                    QueueManagerResult::IterationStop {
                        sources,
                        error: Some(error),
                        context: ctx(context),
                        unread,
                    }
                } else {
                    QueueManagerResult::Failure {
                        sources,
                        error,
                        context: ctx(context),
                        unread,
                    }
                }
            }
            Raw::Stopped { error } => QueueManagerResult::Stopped { error },
        }
    }

    /// A result's context: the source's (shared, O(1)), else the manager's empty
    /// context (`C::default()` or `make_empty_context()`: user code, called with no
    /// lock held).
    #[inline]
    pub(crate) fn context(&self, c: Ctxt<C>) -> ResultContext<C> {
        match c {
            Some(c) => ResultContext::shared_from(c),
            None => ResultContext::own((self.make_empty)()),
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    pub(super) fn push(&mut self, r: Raw<V, C>) {
        self.queue.push_back(Entry::Result(r));
    }

    pub(super) fn failure(&mut self, sources: Sources, error: Failure, context: Ctxt<C>) {
        self.push(Raw::Failure {
            sources,
            error,
            context,
        });
    }

    /// An `IterationStop` carrying `error`, handing back `unread` when there is one.
    pub(super) fn ended(
        &mut self,
        sources: Sources,
        error: Failure,
        context: Ctxt<C>,
        unread: Option<Feed<V, C>>,
    ) {
        self.push(match unread {
            Some(unread) => Raw::Unread(Box::new(Unread {
                end: true,
                sources,
                error,
                context,
                unread,
            })),
            None => Raw::IterationStop {
                sources,
                error: Some(error),
                context,
            },
        });
    }

    /// A source the stop kept from starting (a produced function, a future): cut short,
    /// a `Failure` carrying the stop's failure at the back, the work handed back in it.
    pub(super) fn refused(
        &mut self,
        sources: Sources,
        failure: Failure,
        context: Ctxt<C>,
        work: Feed<V, C>,
    ) {
        self.cut_short.push((sources.clone(), context.clone()));
        self.push(Raw::Unread(Box::new(Unread {
            end: false,
            sources,
            error: failure,
            context,
            unread: work,
        })));
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    /// A queued entry stays six words (48 bytes for `usize` values): results handing
    /// back unread work are boxed (`Raw::Unread`), so 1 M queued values take 48 MiB,
    /// not more.
    #[test]
    fn an_entry_of_the_queue_stays_six_words() {
        assert_eq!(size_of::<super::Entry<usize, ()>>(), 48);
        assert_eq!(size_of::<super::Raw<usize, ()>>(), 48);
    }
}
