//! The shared core of one queue manager: the source table, the ready queue, the
//! results, and the rules that tie them together.
//!
//! # Invariants
//! 1. Every live source has one entry in `sources`; its `body` is `None` only while the
//!    streamer is stepping it (user code runs with no lock held).
//! 2. `ready` holds `(key, number)` pairs; a pair whose entry is gone or renumbered is
//!    stale and skipped. An iterator or function is on `ready` exactly while it waits
//!    for its turn; a stream is put there by its waker (at most once: its `queued`
//!    flag) or by the streamer after it gave an item; a task by its done callback.
//! 3. Once `stopped` is set no source is admitted or stepped again: what is admitted
//!    afterwards, or put back by a step that was running, is finished at once with the
//!    stop's failure.
//! 4. No user code runs under `state`'s lock: bodies are dropped, tasks cancelled,
//!    callbacks registered and the consumer woken from [`Deferred`] after unlocking;
//!    contexts are made (`make_empty_context`) when a result is handed out.

mod stop;

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::task::Waker;

use slab::Slab;
use tokio::runtime::Handle;

use super::feed::Feed;
use super::result::{QueueInput, QueueManagerResult, SourceId, Sources};
use super::sources::{Body, Schedule, Step, future};
use crate::helpers::debug::{Live, MANAGERS};
use crate::helpers::error::Failure;
use crate::helpers::protocols::WaitByCallback;
use crate::helpers::task::AnyTask;
use crate::sync::{Mutex, MutexGuard, lock};

/// A result whose context is still `None` when the source had none.
pub(crate) type Raw<V, C> = QueueManagerResult<V, Option<C>>;

pub(crate) struct Shared<V, C> {
    state: Mutex<State<V, C>>,
    make_empty: Box<dyn Fn() -> C + Send + Sync>,
    runtime: Option<Handle>,
    this: Weak<dyn Schedule>,
    _live: Live<MANAGERS>,
}

struct Entry<V, C> {
    number: u64,
    chain: Sources,
    context: Option<C>,
    body: Option<Body<V>>,
}

pub(crate) struct State<V, C> {
    results: VecDeque<Raw<V, C>>,
    ready: VecDeque<(usize, u64)>,
    sources: Slab<Entry<V, C>>,
    next_number: u64,
    consumer: Option<Waker>,
    finish_when_empty: bool,
    /// `Stopped { error: None }` went out and nothing was added since.
    idle_stop_sent: bool,
    stopped: Option<Failure>,
    /// Tasks cancelled by the stop, for `close()` to wait for.
    cancelled: Vec<AnyTask>,
}

/// Where a step's results come from.
pub(crate) enum Origin<C> {
    /// A source in the table.
    Slot(usize, u64),
    /// A source that never entered the table (a top-level function, a value).
    Detached(Sources, Option<C>),
}

/// Work to do after the lock is released (invariant 4).
pub(crate) struct Deferred<V> {
    graveyard: Vec<Body<V>>,
    cancel: Vec<AnyTask>,
    register: Vec<(AnyTask, usize, u64)>,
    waker: Option<Waker>,
}

impl<V> Default for Deferred<V> {
    fn default() -> Self {
        Deferred {
            graveyard: Vec::new(),
            cancel: Vec::new(),
            register: Vec::new(),
            waker: None,
        }
    }
}

/// A source the streamer took out to step.
pub(crate) struct Taken<V> {
    pub(crate) key: usize,
    pub(crate) number: u64,
    pub(crate) body: Body<V>,
}

/// What the streamer should do next.
pub(crate) enum Next<V, C> {
    Yield(Raw<V, C>),
    End,
    Step(Taken<V>),
    Wait,
    /// Enough steps for one poll: yield to the scheduler.
    Budget,
}

impl<V: Send + 'static, C: Clone + Send + 'static> Shared<V, C> {
    pub(crate) fn new(
        make_empty: Box<dyn Fn() -> C + Send + Sync>,
        runtime: Option<Handle>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<Self>| {
            let this: Weak<dyn Schedule> = weak.clone();
            Shared {
                state: Mutex::new(State {
                    results: VecDeque::new(),
                    ready: VecDeque::new(),
                    sources: Slab::new(),
                    next_number: 0,
                    consumer: None,
                    finish_when_empty: false,
                    idle_stop_sent: false,
                    stopped: None,
                    cancelled: Vec::new(),
                }),
                make_empty,
                runtime,
                this,
                _live: Live::new(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<V, C>> {
        lock(&self.state)
    }

    pub(crate) fn target(&self) -> &Weak<dyn Schedule> {
        &self.this
    }

    /// Gives a raw result its context.
    pub(crate) fn resolve(&self, raw: Raw<V, C>) -> QueueManagerResult<V, C> {
        let ctx = |c: Option<C>| c.unwrap_or_else(|| (self.make_empty)());
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
            },
            Raw::IterationStop {
                sources,
                error,
                context,
            } => QueueManagerResult::IterationStop {
                sources,
                error,
                context: ctx(context),
            },
            Raw::Stopped { error } => QueueManagerResult::Stopped { error },
        }
    }

    /// Reserves the identity of a source that does not enter the table.
    pub(crate) fn detached_id(&self, kind: QueueInput) -> SourceId {
        let mut st = self.lock();
        st.next_number += 1;
        SourceId::new(kind, st.next_number)
    }

    /// Admits a source added to the feeder.
    pub(crate) fn add(&self, kind: QueueInput, body: Body<V>, context: Option<C>) -> SourceId {
        let mut d = Deferred::default();
        let id = {
            let mut st = self.lock();
            let id = st.admit(self, kind, body, None, context, &mut d);
            d.waker = st.consumer.take();
            id
        };
        self.run(d);
        id
    }

    /// Hands the results of one step (or of a detached source) to the table.
    pub(crate) fn deliver(&self, step: Step<V>, origin: Origin<C>) {
        let mut d = Deferred::default();
        {
            let mut st = self.lock();
            st.deliver(self, step, origin, &mut d);
            d.waker = st.consumer.take();
        }
        self.run(d);
    }

    /// Stops the manager: `Stopped(failure)` goes to the front, live sources finish.
    pub(crate) fn stop(&self, failure: Failure) {
        let mut d = Deferred::default();
        {
            let mut st = self.lock();
            if st.stopped.is_some() {
                return;
            }
            st.stopped = Some(failure.clone());
            st.ready.clear();
            let keys: Vec<usize> = st
                .sources
                .iter()
                .filter(|(_, e)| e.body.is_some())
                .map(|(k, _)| k)
                .collect();
            let mut stops = Vec::new();
            for key in keys {
                let e = st.sources.remove(key);
                let body = e.body.expect("filtered on a present body");
                st.finish(body, e.chain, e.context, &failure, &mut stops, &mut d);
            }
            st.results.push_front(Raw::Stopped {
                error: Some(failure),
            });
            st.results.extend(stops);
            d.waker = st.consumer.take();
        }
        self.run(d);
    }

    pub(crate) fn set_finish_when_empty(&self) {
        let waker = {
            let mut st = self.lock();
            st.finish_when_empty = true;
            st.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn live_sources(&self) -> usize {
        self.lock().sources.len()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped.is_some()
    }

    /// Takes one queued result, without stepping anything.
    pub(crate) fn pop_result(&self) -> Option<Raw<V, C>> {
        self.lock().results.pop_front()
    }

    /// Tasks the stop cancelled that may still be running.
    pub(crate) fn take_cancelled(&self) -> Vec<AnyTask> {
        std::mem::take(&mut self.lock().cancelled)
    }

    /// Decides the streamer's next move; registers `waker` when there is nothing to do.
    pub(crate) fn next(&self, waker: &Waker) -> Next<V, C> {
        self.lock().next(waker, true)
    }

    /// Hands a step of the streamer back and decides the next move in the same lock;
    /// with `may_step` false it returns [`Next::Budget`] instead of taking another step.
    pub(crate) fn step_done(
        &self,
        step: Step<V>,
        key: usize,
        number: u64,
        waker: &Waker,
        may_step: bool,
    ) -> Next<V, C> {
        let mut d = Deferred::default();
        let next = {
            let mut st = self.lock();
            st.deliver(self, step, Origin::Slot(key, number), &mut d);
            st.next(waker, may_step)
        };
        self.run(d);
        next
    }

    #[inline]
    fn run(&self, d: Deferred<V>) {
        if d.graveyard.capacity() == 0
            && d.cancel.capacity() == 0
            && d.register.capacity() == 0
            && d.waker.is_none()
        {
            // The common case: a step that only produced a value. Nothing was ever put
            // in `d` (no capacity, no waker), so forgetting it frees nothing and skips
            // an out-of-line drop per item.
            std::mem::forget(d);
            return;
        }
        self.run_deferred(d);
    }

    #[inline(never)]
    fn run_deferred(&self, d: Deferred<V>) {
        drop(d.graveyard);
        for t in d.cancel {
            t.cancel();
        }
        for (task, key, number) in d.register {
            let target = self.this.clone();
            task.add_done_callback(Box::new(move || {
                if let Some(t) = target.upgrade() {
                    t.schedule(key, number);
                }
            }));
        }
        if let Some(w) = d.waker {
            w.wake();
        }
    }
}

impl<V: Send + 'static, C: Clone + Send + 'static> Schedule for Shared<V, C> {
    fn schedule(&self, key: usize, number: u64) {
        let waker = {
            let mut st = self.lock();
            match st.sources.get(key) {
                Some(e) if e.number == number && st.stopped.is_none() => {
                    st.ready.push_back((key, number))
                }
                _ => return,
            }
            st.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<V: Send + 'static, C: Clone + Send + 'static> State<V, C> {
    fn next(&mut self, waker: &Waker, may_step: bool) -> Next<V, C> {
        if let Some(r) = self.results.pop_front() {
            return Next::Yield(r);
        }
        if self.stopped.is_some() {
            return Next::End;
        }
        if !may_step {
            return Next::Budget;
        }
        while let Some((key, number)) = self.ready.pop_front() {
            if let Some(e) = self.sources.get_mut(key)
                && e.number == number
                && let Some(body) = e.body.take()
            {
                return Next::Step(Taken { key, number, body });
            }
        }
        if self.finish_when_empty && self.sources.is_empty() {
            if self.idle_stop_sent {
                return Next::End;
            }
            self.idle_stop_sent = true;
            return Next::Yield(Raw::Stopped { error: None });
        }
        match &self.consumer {
            Some(w) if w.will_wake(waker) => {}
            _ => self.consumer = Some(waker.clone()),
        }
        Next::Wait
    }

    fn chain_of(&self, origin: &Origin<C>) -> (Sources, Option<C>) {
        match origin {
            Origin::Slot(key, _) => {
                let e = &self.sources[*key];
                (e.chain.clone(), e.context.clone())
            }
            Origin::Detached(chain, context) => (chain.clone(), context.clone()),
        }
    }

    fn deliver(
        &mut self,
        shared: &Shared<V, C>,
        step: Step<V>,
        origin: Origin<C>,
        d: &mut Deferred<V>,
    ) {
        let (cont, requeue) = match step {
            Step::Yield(Feed::Value(value), c) => {
                let (sources, context) = self.chain_of(&origin);
                self.push(Raw::Success {
                    sources,
                    value,
                    context,
                });
                (c, true)
            }
            Step::Yield(feed, c) => {
                let Ok((kind, body)) = Body::from_feed(feed) else {
                    unreachable!("`yielded` turns values and errors into their own steps")
                };
                let (chain, context) = self.chain_of(&origin);
                self.admit(shared, kind, body, Some(&chain), context, d);
                (c, true)
            }
            Step::Fail(error, iteration) => {
                let (sources, context) = self.chain_of(&origin);
                if iteration {
                    let stop = Raw::IterationStop {
                        sources: sources.clone(),
                        error: Some(error.clone()),
                        context: context.clone(),
                    };
                    self.push(Raw::Failure {
                        sources,
                        error,
                        context,
                    });
                    self.push(stop);
                } else {
                    self.push(Raw::Failure {
                        sources,
                        error,
                        context,
                    });
                }
                (None, false)
            }
            Step::End(error) => {
                let (sources, context) = self.chain_of(&origin);
                self.push(Raw::IterationStop {
                    sources,
                    error,
                    context,
                });
                (None, false)
            }
            Step::Wait(body) => (Some(body), false),
            Step::Untouched(body) => {
                let Origin::Slot(key, number) = origin else {
                    return;
                };
                if self.stopped.is_some() {
                    return self.put_back(key, number, body, false, d);
                }
                self.sources[key].body = Some(body);
                self.ready.push_front((key, number));
                return;
            }
        };
        let Origin::Slot(key, number) = origin else {
            return;
        };
        match cont {
            None => {
                self.sources.remove(key);
            }
            Some(body) => self.put_back(key, number, body, requeue, d),
        }
    }

    fn put_back(
        &mut self,
        key: usize,
        number: u64,
        body: Body<V>,
        requeue: bool,
        d: &mut Deferred<V>,
    ) {
        if let Some(failure) = self.stopped.clone() {
            let e = self.sources.remove(key);
            let mut out = Vec::new();
            self.finish(body, e.chain, e.context, &failure, &mut out, d);
            self.results.extend(out);
            return;
        }
        let queue = requeue
            && match &body {
                Body::Stream(s) => s.source_waker().is_none_or(|w| w.mark_queued()),
                _ => true,
            };
        self.sources[key].body = Some(body);
        if queue {
            self.ready.push_back((key, number));
        }
    }

    fn push(&mut self, r: Raw<V, C>) {
        self.idle_stop_sent = false;
        self.results.push_back(r);
    }

    /// Puts a new source in the table (or finishes it at once after a stop).
    fn admit(
        &mut self,
        shared: &Shared<V, C>,
        kind: QueueInput,
        body: Body<V>,
        parent: Option<&Sources>,
        context: Option<C>,
        d: &mut Deferred<V>,
    ) -> SourceId {
        self.next_number += 1;
        let number = self.next_number;
        let id = SourceId::new(kind, number);
        let chain = parent.map_or_else(|| Sources::root(id), |p| p.child(id));
        self.idle_stop_sent = false;
        if let Some(failure) = self.stopped.clone() {
            let mut out = Vec::new();
            self.finish(body, chain, context, &failure, &mut out, d);
            self.results.extend(out);
            return id;
        }
        let body = match body {
            Body::Future(fut) => match shared
                .runtime
                .clone()
                .or_else(|| Handle::try_current().ok())
            {
                Some(h) => Body::Pending(future::spawn(&h, fut)),
                None => Body::Broken(future::no_runtime()),
            },
            b => b,
        };
        let task = body.task();
        let key = self.sources.insert(Entry {
            number,
            chain,
            context,
            body: Some(body),
        });
        match task {
            Some(t) => d.register.push((t, key, number)),
            None => self.ready.push_back((key, number)),
        }
        id
    }
}
