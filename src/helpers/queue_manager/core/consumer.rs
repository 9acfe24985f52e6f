//! The consumer's own part of the queue ([`Local`]) and its way through the turn
//! model without the shared lock.
//!
//! The queue is split in two: the front part is held by the consumer (the streamer)
//! in a [`Local`], the back part (the *inbox*) stays in the shared state, where
//! producers (the feeder, stream wakers, task callbacks, the stop) push. The consumer
//! takes its entries from its own part; when the state has news for it (something in
//! the inbox, a woken stream, the stop) it decides under the lock as before: its part
//! goes back in front of the inbox ([`State::enter`]), the old logic runs on the whole
//! queue, and the whole queue comes back to it ([`State::leave`]).
//!
//! What the consumer does without the lock is the common step of the turn model: a
//! result at the front is handed out; a *hot* entry ([`Entry::Hot`]: a value and the
//! iterator or stream that produced it, travelling together) puts its `Success` at the
//! back and is stepped; a step that gives another plain value queues another hot
//! entry. Anything else (another kind of feed, an end, a failure, a stream with
//! nothing ready, a stop) goes through the lock.
//!
//! # Invariants
//! 1. The queue is `Local::queue` followed by `State::queue` while `State::held`, and
//!    `State::queue` alone otherwise; `State::front` (the stop's `Stopped`) comes ahead
//!    of both. Only the consumer moves entries between the two parts, under the lock.
//! 2. The consumer takes or pushes an entry without the lock only when `Shared::news`
//!    is clear and the manager had not stopped when it last decided under the lock.
//!    Every producer sets `news` under the lock after changing what the consumer must
//!    see, so a push that happened before the consumer's action is always seen by it:
//!    each action of the consumer is ordered after what it can see, and before a
//!    producer's push it cannot see yet (whose call has not returned).
//! 3. A hot source's record stays in the table with `Turn::Queued` and no body: its
//!    box holds the body. A stream stepped from a hot entry is not marked busy, so a
//!    wake during its poll is read from its waker's flag (`StreamSource::woke`) when
//!    the step comes back with nothing ready.
//! 4. A generator source (`hp::AsyncGenerator`, stopped as `stop_async_generator` does)
//!    never goes hot: its body stays in the table, where a close from outside the
//!    streamer (the scoped form) finds it. Every path that looks at bodies in the table
//!    from the streamer (its close, its drop) first brings hot sources home
//!    ([`State::rehome_all`], [`State::rehome_bodies`]), so sources are dropped in the
//!    table's order as before.
//! 5. No user code and no user value's drop runs under the lock here either: a hot
//!    entry's value is moved, never dropped, on the way through.

use super::*;

/// The consumer's part of the queue (the front), owned by the streamer.
pub(crate) struct Local<V, C> {
    pub(super) queue: VecDeque<Entry<V, C>>,
    /// The manager had stopped when the consumer last decided under the lock.
    stopped: bool,
}

// The entries are never pinned: moving them is how the queue works.
impl<V, C> Unpin for Local<V, C> {}

impl<V, C> Default for Local<V, C> {
    fn default() -> Self {
        Local {
            queue: VecDeque::new(),
            stopped: false,
        }
    }
}

impl<V, C> Local<V, C> {
    /// The capacity of the consumer's part, in entries.
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// The consumer's part is three quarters unused above `SHRINK_ABOVE`: give half
    /// back (as `State::shrink_queue` does).
    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        let target = (self.queue.capacity() / 2).max(SHRINK_ABOVE);
        self.queue.shrink_to(target);
    }
}

impl<V, C> State<V, C> {
    /// The consumer decides under the lock: its part goes back in front of the inbox
    /// (invariant 1), and what the stop left for the front is put there.
    pub(super) fn enter(&mut self, local: &mut Local<V, C>) {
        if self.held {
            self.held = false;
            local.queue.append(&mut self.queue);
            std::mem::swap(&mut local.queue, &mut self.queue);
        }
        if self.purge_idle_stop {
            self.purge_idle_stop = false;
            self.queue
                .retain(|e| !matches!(e, Entry::Result(Raw::Stopped { error: None })));
        }
        if let Some(front) = self.front.take() {
            self.queue.push_front(front);
        }
    }

    /// The consumer is done deciding: the whole queue goes to its part, the inbox is
    /// empty, and `news` says whether anything still needs the lock (streams to poll).
    pub(super) fn leave(&mut self, local: &mut Local<V, C>, shared: &Shared<V, C>) {
        std::mem::swap(&mut local.queue, &mut self.queue);
        if self.queue.capacity() > SHRINK_ABOVE {
            self.queue.shrink_to(SHRINK_ABOVE);
        }
        self.held = true;
        local.stopped = self.stopped.is_some();
        shared
            .held_entries
            .store(!local.queue.is_empty(), Ordering::Release);
        let news = !self.woken.is_empty() || !self.rewoken.is_empty() || self.front.is_some();
        shared.news.store(news, Ordering::Release);
    }

    /// Puts the body of every hot source in the queue back in its record (teardown:
    /// the table is then what holds every source's body, in its order); the entries
    /// stay, with empty boxes.
    pub(super) fn rehome_bodies(&mut self) {
        for e in self.queue.iter_mut() {
            if let Entry::Hot(_, h) = e
                && let Some(s) = self.sources.get_mut(h.key)
                && s.number == h.number
                && s.body.is_none()
            {
                s.body = h.body.take();
            }
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    /// A hot source comes home: its body back in its record, its box kept as the
    /// record's spare. The caller sets the record's turn.
    pub(super) fn rehome(&mut self, mut h: Box<Hot<V, C>>, d: &mut Deferred<V, C>) -> bool {
        match self.sources.get_mut(h.key) {
            Some(s) if s.number == h.number && s.body.is_none() => {
                s.body = h.body.take();
                s.spare = Some(h);
                true
            }
            _ => {
                // Not reached: a hot source's record leaves the table only through
                // its hot entry. Its body is user code to drop.
                d.trash(h);
                false
            }
        }
    }

    /// Brings every hot source in the queue home (invariant 4): each hot entry becomes
    /// the `ValueStep` it stands for.
    pub(super) fn rehome_all(&mut self, d: &mut Deferred<V, C>) {
        let mut boxes = Vec::new();
        for e in self.queue.iter_mut() {
            if let Entry::Hot(_, h) = e {
                let (key, number) = (h.key, h.number);
                if let Entry::Hot(value, h) = std::mem::replace(e, Entry::Step(key, number)) {
                    *e = Entry::ValueStep(value, key, number);
                    boxes.push(h);
                }
            }
        }
        for h in boxes {
            self.rehome(h, d);
        }
    }

    /// A source whose step gave a plain value goes hot: its box (the spare, or a new
    /// one) takes its body.
    pub(super) fn go_hot(&mut self, key: usize, number: u64, body: Body<V, C>) -> Box<Hot<V, C>> {
        let s = &mut self.sources[key];
        match s.spare.take() {
            Some(mut h) => {
                h.body = Some(body);
                h
            }
            None => Box::new(Hot {
                key,
                number,
                chain: s.chain.clone(),
                context: s.context.clone(),
                body: Some(body),
            }),
        }
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Shared<V, C> {
    /// The consumer may take and push its own entries without the lock (invariant 2).
    #[inline]
    fn quiet(&self, local: &Local<V, C>) -> bool {
        !local.stopped && !self.news.load(Ordering::Acquire)
    }

    /// Decides the consumer's next move; registers `waker` when there is nothing to do.
    #[inline]
    pub(crate) fn next(&self, local: &mut Local<V, C>, waker: &Waker) -> Next<V, C> {
        if self.quiet(local) {
            match local.queue.pop_front() {
                Some(Entry::Result(r)) => {
                    if local.queue.is_empty() {
                        self.held_entries.store(false, Ordering::Release);
                    }
                    self.shrink_local(local);
                    return Next::Yield(r);
                }
                Some(Entry::Hot(value, h)) => {
                    // Taking the entry: its `Success` at the back, then its step.
                    local.queue.push_back(Entry::Result(Raw::Success {
                        sources: h.chain.clone(),
                        value,
                        context: h.context.clone(),
                    }));
                    // One entry out, one in: the length did not change, no shrink.
                    return Next::Hot(h);
                }
                Some(other) => local.queue.push_front(other),
                None => {}
            }
        }
        self.next_locked(local, waker)
    }

    #[inline]
    fn shrink_local(&self, local: &mut Local<V, C>) {
        if local.queue.capacity() > SHRINK_ABOVE && local.queue.len() < local.queue.capacity() / 4 {
            local.shrink();
        }
    }

    /// [`next`](Self::next) under the lock, on the whole queue.
    #[inline(never)]
    fn next_locked(&self, local: &mut Local<V, C>, waker: &Waker) -> Next<V, C> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.enter(local);
            let next = st.next(waker, &mut d);
            st.leave(local, self);
            next
        };
        self.run(d);
        next
    }

    /// Hands back a hot source the consumer stepped; `then` as for
    /// [`stepped`](Self::stepped). A plain value with nothing new in the state queues
    /// the next hot entry without the lock.
    #[inline]
    pub(crate) fn stepped_hot(
        &self,
        local: &mut Local<V, C>,
        mut h: Box<Hot<V, C>>,
        polled: Polled<V, C>,
        then: Option<&Waker>,
    ) -> Option<Next<V, C>> {
        let polled = match polled {
            Polled::Item(Feed::Value(value)) if self.quiet(local) => {
                local.queue.push_back(Entry::Hot(value, h));
                return then.map(|w| self.next(local, w));
            }
            other => other,
        };
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.enter(local);
            let (key, number) = (h.key, h.number);
            let body = h.body.take();
            // A wake during the poll (invariant 3): poll it again after the next entry.
            let woke = body.as_ref().is_some_and(Body::woke);
            match body {
                Some(body) => {
                    if st.rehome(h, &mut d) {
                        st.sources[key].turn = if woke { Turn::Notified } else { Turn::Busy };
                        st.stepped(key, number, body, polled, &mut d);
                    } else {
                        d.trash((body, polled));
                    }
                }
                // Not reached: a hot entry always carries its body.
                None => d.trash((h, polled)),
            }
            let next = then.filter(|_| d.is_empty()).map(|w| st.next(w, &mut d));
            st.leave(local, self);
            next
        };
        self.run(d);
        next
    }

    /// Hands back a source the consumer stepped; with `then` (the consumer's waker) also
    /// decides the next move in the same lock, unless handing it back left deferred
    /// work: that work runs user code (a `Drop` of an ended source may set the
    /// streamer's breaker), so the consumer then decides afresh after it, checking the
    /// breaker first (`None`).
    pub(crate) fn stepped(
        &self,
        local: &mut Local<V, C>,
        key: usize,
        number: u64,
        body: Body<V, C>,
        polled: Polled<V, C>,
        then: Option<&Waker>,
    ) -> Option<Next<V, C>> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.enter(local);
            st.stepped(key, number, body, polled, &mut d);
            let next = then.filter(|_| d.is_empty()).map(|w| st.next(w, &mut d));
            st.leave(local, self);
            next
        };
        self.run(d);
        next
    }

    /// Hands back what a produced function returned; `then` as for
    /// [`stepped`](Self::stepped).
    pub(crate) fn called(
        &self,
        local: &mut Local<V, C>,
        out: Result<Feed<V, C>, Failure>,
        chain: Sources,
        ctx: Ctxt<C>,
        then: Option<&Waker>,
    ) -> Option<Next<V, C>> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.enter(local);
            // The consumer called the function its `Call` entry gave it (`next`).
            st.running_functions -= 1;
            st.called(out, chain, ctx, &mut d);
            let next = then.filter(|_| d.is_empty()).map(|w| st.next(w, &mut d));
            st.leave(local, self);
            next
        };
        self.run(d);
        next
    }
}
