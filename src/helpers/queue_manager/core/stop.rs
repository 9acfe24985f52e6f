//! Stopping the manager (invariant 3 of the core): `Stopped` goes to the front once,
//! the entries already queued are still taken in order, and the sources nobody will
//! step again end now.

use super::{Deferred, Entry, Raw, State, Turn};
use crate::helpers::error::Failure;

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    /// `Stopped(failure)` at the front (replacing a queued `Stopped { error: None }`); waiting streams end with an `IterationStop`
    /// carrying `failure`, running tasks are cancelled with a `Failure` carrying it (in
    /// the order the sources were added). Iterators and streams with a step queued end
    /// when that step is taken; tasks that already finished still deliver.
    pub(super) fn stop(&mut self, failure: Failure, d: &mut Deferred<V, C>) {
        if self.stopped.is_some() {
            return;
        }
        self.stopped = Some(failure.clone());
        if self.idle_stop_queued {
            // A `Stopped { error: None }` (`set_as_finished_if_out_of_sources`) still
            // queued is superseded: the manager stops once, so the consumer sees one
            // `Stopped`, this one. It may sit in the consumer's part of the queue: the
            // consumer removes it when it next decides under the lock (`enter`).
            self.queue
                .retain(|e| !matches!(e, Entry::Result(Raw::Stopped { error: None })));
            self.purge_idle_stop = true;
        }
        // At the very front, ahead of the consumer's part too (`consumer.rs`).
        self.front = Some(Entry::Result(Raw::Stopped {
            error: Some(failure.clone()),
        }));
        self.woken.clear();
        self.rewoken.clear();
        let mut ended: Vec<(u64, usize)> = self
            .sources
            .iter()
            .filter(|(_, s)| match s.turn {
                Turn::Waiting | Turn::Woken => match s.body.as_ref().and_then(|b| b.task()) {
                    Some(task) => !task.done(),
                    None => true,
                },
                _ => false,
            })
            .map(|(key, s)| (s.number, key))
            .collect();
        ended.sort_unstable();
        for (number, key) in ended {
            let task = self.sources[key].body.as_ref().and_then(|b| b.task());
            match task {
                None => {
                    self.sources[key].turn = Turn::Queued;
                    self.end_cut_short(key, number, failure.clone(), d);
                }
                Some(task) => {
                    d.cancel(task.clone());
                    self.cancelled.retain(|t| !t.done());
                    self.cancelled.push(task);
                    if let Some(s) = self.remove(key, number, d) {
                        self.cut_short.push((s.chain.clone(), s.context.clone()));
                        self.failure(s.chain.clone(), failure.clone(), s.context.clone());
                        d.trash(s);
                    }
                }
            }
        }
    }
}
