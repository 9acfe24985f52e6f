//! Taking the manager down: the streamer dropped, the scoped form's close, the last
//! reference gone. Everything the manager holds is dropped one piece at a time, so a
//! panicking `Drop` of one source cannot abort or leak the rest.
//!
//! # Invariants
//! 1. Nothing is dropped under the state's lock: the queue, the table and the generators
//!    are taken out first.
//! 2. Generator sources are stopped as `stop_async_generator` does when a close is to
//!    come (`keep_generators`), else dropped (their synchronous cleanup only).
//! 3. Once `closed` is set nothing takes entries any more: new sources are dropped unrun.

use super::*;

impl<V, C> Shared<V, C> {
    /// The scoped form will not close after all: drops the generator sources kept.
    pub(crate) fn drop_kept_generators(&self) {
        let kept = {
            let mut st = lock(&self.state);
            st.keep_generators = false;
            std::mem::take(&mut st.stopping)
        };
        drop(kept);
    }

    /// The streamer is dropped: drops everything (`clear`), except the generator sources
    /// (`stopping`, and the live ones) when a close is to come (`keep_generators`).
    ///
    /// The streamer's part of the queue (`local`) comes back first.
    pub(crate) fn dropped(&self, local: &mut Local<V, C>, stopping: Stopping<V, C>) {
        let dropped = {
            let mut st = lock(&self.state);
            st.enter(local);
            st.rehome_bodies();
            if st.keep_generators {
                let failure = st.stopped.clone().unwrap_or(Failure::Cancelled);
                for (_, key) in st.live_generators() {
                    // Out of the table (the rest of the source is dropped by `clear`).
                    if let Some(Ok(stream)) = st.sources[key].body.take().map(Body::into_generator)
                    {
                        st.stopping.push(stream, failure.clone());
                    }
                }
                st.stopping.append(stopping);
                None
            } else {
                Some(stopping)
            }
        };
        drop(dropped);
        self.clear();
    }

    /// Drops everything the manager holds (the streamer is gone): each piece on its own,
    /// so a panicking `Drop` does not keep the others.
    pub(crate) fn clear(&self) {
        let (front, queue, sources, woken, stopping) = {
            let mut st = lock(&self.state);
            st.closed = true;
            // Sources are dropped in the table's order, hot ones too.
            st.rehome_bodies();
            let stopping = if st.keep_generators {
                Stopping::default()
            } else {
                std::mem::take(&mut st.stopping)
            };
            (
                st.front.take(),
                std::mem::take(&mut st.queue),
                std::mem::take(&mut st.sources),
                std::mem::take(&mut st.woken),
                stopping,
            )
        };
        drop(woken);
        caught(move || drop(front));
        // Each on its own (`Stopping`'s `Drop`): sync cleanup only, there is no async drop.
        drop(stopping);
        for e in queue {
            caught(move || drop(e));
        }
        for (_, s) in sources {
            caught(move || drop(s));
        }
    }
}

impl<V, C> Drop for Shared<V, C> {
    fn drop(&mut self) {
        // Drop what is left one piece at a time, so a panicking `Drop` of one source
        // (or a second one while unwinding) cannot abort or leak the rest.
        self.clear();
    }
}

impl<V, C> State<V, C> {
    /// The live generator sources as (source number, table key), in the order added.
    pub(super) fn live_generators(&self) -> Vec<(u64, usize)> {
        let mut live: Vec<(u64, usize)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.body.as_ref().is_some_and(Body::is_generator))
            .map(|(key, s)| (s.number, key))
            .collect();
        live.sort_unstable();
        live
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    /// Ends the live generator sources as the stop ends a source (kept in `stopping`).
    pub(super) fn end_generators(&mut self, d: &mut Deferred<V, C>) {
        let failure = self.stopped.clone().unwrap_or(Failure::Cancelled);
        for (number, key) in self.live_generators() {
            self.end_cut_short(key, number, failure.clone(), d);
        }
    }
}
