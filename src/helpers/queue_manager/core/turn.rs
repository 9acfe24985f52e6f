//! The turn model (SEMANTICS, "Turn model"): the consumer's next move, and handing
//! back what a step or a produced function gave.
//!
//! # Invariants
//! 1. Streams that woke are polled before the consumer's next entry; a stream that woke
//!    while being polled from that list waits until the consumer took its next entry
//!    (`rewoken`), so a stream that always wakes itself cannot keep the queue still.
//! 2. A source with a step queued leaves the table only when that step is taken; a
//!    source being stepped (`Turn::Busy`) has its body with the consumer. A step that
//!    gave a plain value makes its source hot (an `Entry::Hot` carrying its body), unless
//!    it is a generator (`consumer.rs`, invariant 4).
//! 3. After the stop, a step taken ends its source with the stop's failure, extensions
//!    still deliver, and no produced function is called.
//! 4. A step that produced a plain value queues one `ValueStep`; any other feed queues
//!    `Extend`, then `Step`.
//! 5. The entry queue gives capacity back after a burst (three quarters unused above
//!    [`SHRINK_ABOVE`]: half of it), amortised O(1) per entry.

use super::*;

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    /// Gives back half of the entry queue's capacity once it is three quarters unused
    /// (a burst was consumed), as tokio's channels free their blocks. Halving keeps the
    /// cost amortised O(1) per entry: each shrink moves fewer than a quarter of the
    /// capacity it frees, and the queue must drain by half again before the next one.
    #[cold]
    #[inline(never)]
    pub(super) fn shrink_queue(&mut self) {
        let target = (self.queue.capacity() / 2).max(SHRINK_ABOVE);
        self.queue.shrink_to(target);
        if self.woken.capacity() > SHRINK_ABOVE && self.woken.len() < self.woken.capacity() / 4 {
            self.woken.shrink_to(SHRINK_ABOVE);
        }
    }

    pub(super) fn next(&mut self, waker: &Waker, d: &mut Deferred<V, C>) -> Next<V, C> {
        loop {
            while let Some((key, number)) = self.woken.pop_front() {
                if let Some(s) = self.sources.get_mut(key)
                    && s.number == number
                    && s.turn == Turn::Woken
                    && let Some(body) = s.body.take()
                {
                    s.turn = Turn::Busy;
                    return Next::Step(key, number, body);
                }
            }
            let entry = self.queue.pop_front();
            // One compare per entry; the shrink itself is rare (module docs, "Memory").
            if self.queue.capacity() > SHRINK_ABOVE && self.queue.len() < self.queue.capacity() / 4
            {
                self.shrink_queue();
            }
            if !self.rewoken.is_empty() {
                self.woken.extend(self.rewoken.drain(..));
                if entry.is_none() {
                    continue;
                }
            }
            match entry {
                Some(Entry::Result(r)) => return Next::Yield(r),
                Some(Entry::Step(key, number)) => {
                    if let Some(next) = self.take_step(key, number, d) {
                        return next;
                    }
                }
                Some(Entry::ValueStep(value, key, number)) => {
                    if let Some(next) = self.value_step(value, key, number, d) {
                        return next;
                    }
                }
                Some(Entry::Hot(value, h)) => {
                    // As a `ValueStep`; in the common case (no stream woke, the manager
                    // runs) the source stays hot: it is stepped from its box.
                    if self.woken.is_empty() && self.stopped.is_none() {
                        self.queue.push_back(Entry::Result(Raw::Success {
                            sources: h.chain.clone(),
                            value,
                            context: h.context.clone(),
                        }));
                        return Next::Hot(h);
                    }
                    let (key, number) = (h.key, h.number);
                    if !self.rehome(h, d) {
                        d.trash(value);
                        continue;
                    }
                    if let Some(next) = self.value_step(value, key, number, d) {
                        return next;
                    }
                }
                Some(Entry::Extend(extension)) => {
                    let (feed, chain, ctx) = *extension;
                    // O(1) and adds at most one entry: no need to leave the lock.
                    self.extend(feed, chain, ctx, d);
                    continue;
                }
                Some(Entry::Call(f, chain, ctx)) => {
                    let id = self.new_id(QueueInput::SyncFunction);
                    if let Some(failure) = self.stopped.clone() {
                        // Nothing new starts after the stop (SEMANTICS): the function is
                        // not called; it comes back in its `Failure`, and is cut short.
                        self.refused(chain.child(id), failure, ctx, Feed::Function(f));
                        continue;
                    }
                    // Live while the consumer calls it; `Shared::called` ends that.
                    self.running_functions += 1;
                    return Next::Call(f, chain.child(id), ctx);
                }
                None => {
                    // A task that finished before the stop still delivers (SEMANTICS): its
                    // done callback may not have queued its outcome yet (another thread,
                    // or between its two locks), so the end waits for it; the callback
                    // wakes the consumer. After a stop only such tasks are left in the
                    // table: every other source was ended or has a step queued.
                    let delivering = self.stopped.is_some()
                        && self.sources.iter().any(|(_, s)| {
                            matches!(s.turn, Turn::Waiting | Turn::Woken | Turn::Busy)
                        });
                    if !delivering && (self.stopped.is_some() || self.idle_stop_queued) {
                        self.idle_stop_queued = false;
                        return Next::End;
                    }
                    if self.finish_when_empty
                        && self.stopped.is_none()
                        && self.sources.is_empty()
                        && self.running_functions == 0
                        && self.woken.is_empty()
                    {
                        self.idle_stop_queued = true;
                        self.push(Raw::Stopped { error: None });
                        continue;
                    }
                    match &self.consumer {
                        Some(w) if w.will_wake(waker) => {}
                        _ => {
                            if let Some(old) = self.consumer.replace(waker.clone()) {
                                d.trash(old);
                            }
                        }
                    }
                    return Next::Wait;
                }
            }
        }
    }

    /// Takes a `ValueStep` entry: the `Success` at the back, then the source's step;
    /// `None` when there is nothing to hand the consumer yet.
    fn value_step(
        &mut self,
        value: V,
        key: usize,
        number: u64,
        d: &mut Deferred<V, C>,
    ) -> Option<Next<V, C>> {
        // The extension: a `Success` at the back.
        let Some(s) = self.sources.get_mut(key).filter(|s| s.number == number) else {
            // Not reached (see `Entry::ValueStep`); the value is user code to drop. Its
            // step would be stale: nothing more to do.
            d.trash(value);
            return None;
        };
        self.queue.push_back(Entry::Result(Raw::Success {
            sources: s.chain.clone(),
            value,
            context: s.context.clone(),
        }));
        // Then the step, as taking a `Step` entry next would: streams that woke
        // meanwhile come first. The common case (none woke, the manager runs) is
        // `take_step`'s without looking the source up again.
        if self.woken.is_empty()
            && self.stopped.is_none()
            && s.turn == Turn::Queued
            && let Some(body) = s.body.take()
        {
            s.turn = Turn::Busy;
            return Some(Next::Step(key, number, body));
        }
        if !self.woken.is_empty() {
            self.queue.push_front(Entry::Step(key, number));
            return None;
        }
        self.take_step(key, number, d)
    }

    /// Takes the `Step` entry of the source at `(key, number)`: its body for the
    /// consumer to step, or its end when the manager stopped; `None` when the entry is
    /// stale.
    #[inline]
    pub(super) fn take_step(
        &mut self,
        key: usize,
        number: u64,
        d: &mut Deferred<V, C>,
    ) -> Option<Next<V, C>> {
        let s = self.sources.get_mut(key)?;
        if s.number != number || s.turn != Turn::Queued {
            return None;
        }
        if let Some(failure) = self.stopped.clone() {
            self.end_cut_short(key, number, failure, d);
            return Some(Next::Continue);
        }
        let body = s.body.take()?;
        s.turn = Turn::Busy;
        Some(Next::Step(key, number, body))
    }

    /// Ends an iterator or stream because the manager stopped: `IterationStop` with the
    /// stop's failure at the back, and the source is reported as cut short.
    ///
    /// A generator source is kept to be stopped as `stop_async_generator` does (throw
    /// `failure` in, let it clean up), not dropped.
    pub(super) fn end_cut_short(
        &mut self,
        key: usize,
        number: u64,
        failure: Failure,
        d: &mut Deferred<V, C>,
    ) {
        if let Some(mut s) = self.remove(key, number, d) {
            self.cut_short.push((s.chain.clone(), s.context.clone()));
            let kind = s.chain.producer().kind();
            let unread = match s.body.take().map(Body::into_generator) {
                Some(Ok(stream)) => {
                    self.stopping.push(stream, failure.clone());
                    None
                }
                Some(Err(body)) => body.into_unread(kind),
                None => None,
            };
            self.ended(s.chain.clone(), failure, s.context.clone(), unread);
            d.trash(s);
        }
    }

    pub(super) fn stepped(
        &mut self,
        key: usize,
        number: u64,
        body: Body<V, C>,
        polled: Polled<V, C>,
        d: &mut Deferred<V, C>,
    ) {
        let Some(s) = self.sources.get_mut(key).filter(|s| s.number == number) else {
            d.trash(body);
            return;
        };
        match polled {
            Polled::Item(Feed::Value(value)) if !body.is_generator() => {
                // The source goes hot (`consumer.rs`): its next step travels with the
                // value.
                s.turn = Turn::Queued;
                let h = self.go_hot(key, number, body);
                self.queue.push_back(Entry::Hot(value, h));
            }
            Polled::Item(Feed::Value(value)) => {
                // A generator source stays in the table (`consumer.rs`, invariant 4):
                // a close from outside the streamer finds it there to stop it.
                s.body = Some(body);
                s.turn = Turn::Queued;
                self.queue.push_back(Entry::ValueStep(value, key, number));
            }
            Polled::Item(feed) => {
                s.body = Some(body);
                s.turn = Turn::Queued;
                let entry = Entry::Extend(Box::new((feed, s.chain.clone(), s.context.clone())));
                self.queue.push_back(entry);
                self.queue.push_back(Entry::Step(key, number));
            }
            Polled::Pending => {
                s.body = Some(body);
                if let Some(failure) = self.stopped.clone() {
                    s.turn = Turn::Queued;
                    self.end_cut_short(key, number, failure, d);
                } else if s.turn == Turn::Notified {
                    s.turn = Turn::Woken;
                    self.rewoken.push((key, number));
                } else {
                    s.turn = Turn::Waiting;
                }
            }
            Polled::Fail(error, own) => {
                if let Some(s) = self.remove(key, number, d) {
                    // The failure carries the error's own context (`with_context` on the
                    // error) if it has one; the end carries the source's, and hands the
                    // source back (what it left unread).
                    let failure_ctx = own.or_else(|| s.context.clone());
                    self.failure(s.chain.clone(), error.clone(), failure_ctx);
                    let unread = body.into_unread(s.chain.producer().kind());
                    self.ended(s.chain.clone(), error, s.context.clone(), unread);
                    d.trash(s);
                } else {
                    d.trash(body);
                    if let Some(own) = own {
                        d.trash(own);
                    }
                }
            }
            Polled::End => {
                d.trash(body);
                if let Some(s) = self.remove(key, number, d) {
                    self.push(Raw::IterationStop {
                        sources: s.chain.clone(),
                        error: None,
                        context: s.context.clone(),
                    });
                    d.trash(s);
                }
            }
        }
    }

    /// What a function (or a finished task) of chain `chain` gave: extended, or a
    /// `Failure` at the back.
    pub(super) fn called(
        &mut self,
        out: Result<Feed<V, C>, Failure>,
        chain: Sources,
        ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) {
        match out {
            Ok(feed) => self.extend(feed, chain, ctx, d),
            Err(error) => self.failure(chain, error, ctx),
        }
    }
}
