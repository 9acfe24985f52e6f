//! The source table: one record per live source, keyed by a slab key and checked by
//! the source's number (a key is reused once its source is gone).
//!
//! # Invariants
//! 1. Every live source has one record. Its `body` is `None` only while the consumer
//!    steps it, while it is hot (its body travels in its queue entry, `consumer.rs`;
//!    the record says `Turn::Queued`), while a task's outcome is being taken, or while
//!    its future is being spawned (user code runs with no lock held). Its [`Turn`] says
//!    who touches it next.
//! 2. A record found by key whose number differs is another source: every lookup from
//!    outside (a waker, a task callback, a spawn) checks the number and does nothing on
//!    a mismatch.
//! 3. A record removed is dropped after unlocking (the caller trashes it).

use super::*;

/// The chain of a new source: under `parent`, or a chain of its own.
pub(super) fn chain_under(parent: Option<&Sources>, id: SourceId) -> Sources {
    parent.map_or_else(|| Sources::root(id), |p| p.child(id))
}

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    pub(super) fn new_id(&mut self, kind: QueueInput) -> SourceId {
        self.next_number += 1;
        SourceId::new(kind, self.next_number)
    }

    /// Removes the source at `(key, number)`; the caller trashes it.
    pub(super) fn remove(
        &mut self,
        key: usize,
        number: u64,
        _d: &mut Deferred<V, C>,
    ) -> Option<Source<V, C>> {
        match self.sources.get(key) {
            Some(s) if s.number == number => Some(self.sources.remove(key)),
            _ => None,
        }
    }

    pub(super) fn insert(
        &mut self,
        id: SourceId,
        chain: Sources,
        context: Ctxt<C>,
        body: impl Into<Option<Body<V, C>>>,
        turn: Turn,
    ) -> usize {
        self.sources.insert(Source {
            number: id.number(),
            chain,
            context,
            body: body.into(),
            turn,
            spare: None,
        })
    }

    /// Installs a spawned task in its source (or fails the source).
    pub(super) fn install(
        &mut self,
        key: usize,
        number: u64,
        task: Result<Box<dyn PendingSource<V, C>>, Failure>,
        d: &mut Deferred<V, C>,
    ) {
        let valid = matches!(self.sources.get(key), Some(s) if s.number == number);
        match task {
            Ok(p) if !valid => {
                d.cancel(p.handle());
                d.trash(p);
            }
            Ok(p) => {
                let task = p.handle();
                if let Some(failure) = self.stopped.clone() {
                    d.cancel(task.clone());
                    self.cancelled.push(task);
                    d.trash(p);
                    let s = self.sources.remove(key);
                    self.cut_short.push((s.chain.clone(), s.context.clone()));
                    self.failure(s.chain.clone(), failure, s.context.clone());
                    d.trash(s);
                    return;
                }
                let s = &mut self.sources[key];
                s.body = Some(Body::Task(p));
                s.turn = Turn::Waiting;
                d.register(key, number, task);
            }
            Err(error) => {
                if let Some(s) = self.remove(key, number, d) {
                    self.failure(s.chain.clone(), error, s.context.clone());
                    d.trash(s);
                }
            }
        }
    }

    /// Takes a waiting task source's body to take its outcome.
    pub(super) fn take_task(
        &mut self,
        key: usize,
        number: u64,
    ) -> Option<Box<dyn PendingSource<V, C>>> {
        let s = self.sources.get_mut(key)?;
        if s.number != number || s.turn != Turn::Waiting {
            return None;
        }
        match s.body.take() {
            Some(Body::Task(p)) => {
                s.turn = Turn::Busy;
                Some(p)
            }
            other => {
                s.body = other;
                None
            }
        }
    }
}
