//! The shared core of one queue manager: the entry queue, the source table, and the
//! turn model that ties them together (SEMANTICS, "Turn model").
//!
//! One concept per file, each opening with its own invariants:
//! - `entry`: what the queue holds ([`Entry`], [`Raw`]) and the consumer's next move
//!   ([`Next`]);
//! - `table`: the source table (one record per live source, its [`Turn`]);
//! - `turn`: the consumer's next move and handing back a step;
//! - `extend`: extending a produced feed (new sources, values, functions);
//! - `stop`: `Stopped` at the front, waiting sources ended, tasks cancelled;
//! - `deferred`: work run after unlocking (drops, cancels, spawns, wakes), and the
//!   wakers' and task callbacks' way in;
//! - `teardown`: the streamer dropped, the close, the last reference gone;
//! - `consumer`: the consumer's own part of the queue and the hot path (no lock).
//!
//! # Invariants (of the whole)
//! 1. The shared state is behind one lock (`state`); the feeder, stream wakers, task
//!    callbacks and the context's stop all go through it. The consumer holds the front
//!    of the entry queue in its own [`Local`] and takes its entries there without the
//!    lock while nothing is new (`consumer`); otherwise it decides under the lock too.
//! 2. No user code runs under that lock, and no user value is dropped under it
//!    (`deferred`). Contexts are cloned and made when a result is handed out, outside
//!    the lock. What a source leaves unread (its body, a function not called, a future
//!    not spawned) is moved into its result, never dropped under the lock.
//! 3. Once `stopped` is set, `Stopped` was put at the front; steps taken afterwards end
//!    their sources with the stop's failure, extensions still deliver, no future is
//!    spawned, and running tasks are cancelled.
//! 4. No recursion grows with a user-controlled length: extending loops, deferred work
//!    is a work list, chains are flat ([`Sources`]).

mod consumer;
mod deferred;
mod entry;
mod extend;
mod table;
mod teardown;
mod turn;

pub(crate) use consumer::Local;
pub(crate) use deferred::Deferred;
use deferred::caught;
pub(crate) use entry::{Ctxt, Entry, Hot, Next, Raw};
use table::chain_under;
mod stop;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Waker;

use slab::Slab;
use tokio::runtime::Handle;

use super::feed::{Feed, FeedFn, FeedFuture};
use super::result::{QueueInput, QueueManagerResult, ResultContext, SourceId, Sources};
use super::sources::{self, Body, PendingSource, Polled, Schedule, Stopping, StreamSource, future};
use crate::helpers::debug::{Live, MANAGERS};
use crate::helpers::error::{Error, Failure};
use crate::helpers::protocols::WaitByCallback;
use crate::helpers::task::AnyTask;
use crate::sync::{AtomicBool, Mutex, MutexGuard, lock};

/// The entry queue's capacity kept whatever happens: below it the queue never shrinks
/// (a steady manager never reallocates), above it a queue three quarters unused gives
/// half its capacity back.
pub(crate) const SHRINK_ABOVE: usize = 1024;

/// Who touches a source next (invariant 2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Turn {
    /// A `Step` entry for it is queued.
    Queued,
    /// The consumer is stepping it (or its task's outcome is being taken).
    Busy,
    /// A stream woke while the consumer was polling it: poll it again.
    Notified,
    /// A stream waits for its waker, a task for its done callback.
    Waiting,
    /// A stream woke: it is on the `woken` list.
    Woken,
    /// A task source whose future is being spawned.
    Spawning,
}

struct Source<V, C> {
    number: u64,
    chain: Sources,
    context: Ctxt<C>,
    body: Option<Body<V, C>>,
    turn: Turn,
    /// The box this source travels in while hot (`consumer.rs`), kept while it is
    /// cold so that going hot again allocates nothing.
    spare: Option<Box<Hot<V, C>>>,
}

pub(crate) struct Shared<V, C> {
    state: Mutex<State<V, C>>,
    make_empty: Box<dyn Fn() -> C + Send + Sync>,
    runtime: Option<Handle>,
    this: Weak<dyn Schedule>,
    /// Set (under the lock) whenever the state holds something the consumer must see
    /// before its next entry: entries in the inbox, woken streams, the stop, `Stopped`
    /// to put at the front. The consumer takes its own entries without the lock only
    /// while it is clear (`consumer.rs`).
    news: AtomicBool,
    /// The consumer's own queue (`Local`) may hold entries: read under the lock by
    /// `set_as_finished_if_out_of_sources` (nothing queued?), written by the consumer.
    held_entries: AtomicBool,
    _live: Live<MANAGERS>,
}

pub(crate) struct State<V, C> {
    /// The queue while the consumer decides under the lock; between two such
    /// decisions the consumer holds the front part in its [`Local`] and this is the
    /// inbox, the back part (`consumer.rs`, invariant 1).
    queue: VecDeque<Entry<V, C>>,
    /// The consumer's [`Local`] holds the front part of the queue.
    held: bool,
    /// `Stopped` to put at the very front (ahead of what the consumer holds).
    front: Option<Entry<V, C>>,
    /// The stop superseded a queued `Stopped { error: None }`, which may sit in the
    /// consumer's part: removed when the consumer next decides under the lock.
    purge_idle_stop: bool,
    /// Streams that woke while waiting, polled before the consumer's next entry.
    woken: VecDeque<(usize, u64)>,
    /// Streams that woke while being polled from `woken`: polled again only after the
    /// consumer took its next entry, so a stream that always wakes itself cannot keep
    /// the queue from moving.
    rewoken: Vec<(usize, u64)>,
    sources: Slab<Source<V, C>>,
    /// Sync functions being called now (inside `add_sync_function`, or a produced
    /// function's `Call`): live sources that are not in `sources`, so that
    /// `set_as_finished_if_out_of_sources` called from inside one does not put `Stopped`
    /// ahead of the feed it is about to return.
    running_functions: usize,
    next_number: u64,
    consumer: Option<Waker>,
    finish_when_empty: bool,
    /// A `Stopped { error: None }` is queued or was handed out: the stream ends once
    /// the queue is empty.
    idle_stop_queued: bool,
    stopped: Option<Failure>,
    /// Tasks cancelled by the stop, for `close()` to wait for.
    cancelled: Vec<AnyTask>,
    /// Sources the stop cut short (their chain and context).
    cut_short: Vec<(Sources, Ctxt<C>)>,
    /// The manager, for the wakers of streams.
    this: Weak<dyn Schedule>,
    /// The streamer is gone: nothing will take entries, new sources are dropped unrun.
    closed: bool,
    /// Generator sources the stop ended, to stop as `stop_async_generator` does (by
    /// `close()`, or by the consumer before the stream ends); dropped with the streamer
    /// unless `keep_generators`.
    stopping: Stopping<V, C>,
    /// The scoped form will close the manager after its body: a streamer dropped in the
    /// body leaves its generator sources in `stopping` for that close to stop.
    keep_generators: bool,
}

impl<V: Send + 'static, C: Send + Sync + 'static> Shared<V, C> {
    pub(crate) fn new(
        make_empty: Box<dyn Fn() -> C + Send + Sync>,
        runtime: Option<Handle>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<Self>| {
            let this: Weak<dyn Schedule> = weak.clone();
            Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    held: false,
                    front: None,
                    purge_idle_stop: false,
                    woken: VecDeque::new(),
                    rewoken: Vec::new(),
                    sources: Slab::new(),
                    running_functions: 0,
                    next_number: 0,
                    consumer: None,
                    finish_when_empty: false,
                    idle_stop_queued: false,
                    stopped: None,
                    cancelled: Vec::new(),
                    cut_short: Vec::new(),
                    this: this.clone(),
                    closed: false,
                    stopping: Stopping::default(),
                    keep_generators: false,
                }),
                make_empty,
                runtime,
                this,
                news: AtomicBool::new(false),
                held_entries: AtomicBool::new(false),
                _live: Live::new(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<V, C>> {
        lock(&self.state)
    }

    /// Tells the consumer to look under the lock before its next entry (called with
    /// the lock held, after changing what the consumer must see).
    #[inline]
    fn tell(&self) {
        self.news.store(true, Ordering::Release);
    }

    /// Runs `f` on the state and the deferred work it leaves, waking the consumer.
    fn with_state<R>(&self, f: impl FnOnce(&mut State<V, C>, &mut Deferred<V, C>) -> R) -> R {
        let mut d = Deferred::default();
        let r = {
            let mut st = self.lock();
            let r = f(&mut st, &mut d);
            d.waker = st.consumer.take();
            self.tell();
            r
        };
        self.run(d);
        r
    }

    /// `add_value`: extends `feed` as produced by a new `VALUE` source.
    pub(crate) fn add_value(&self, feed: Feed<V, C>, context: Ctxt<C>) -> SourceId {
        self.with_state(|st, d| {
            let id = st.new_id(QueueInput::Value);
            if st.closed {
                d.trash((feed, context));
            } else {
                st.extend(feed, Sources::root(id), context, d);
            }
            id
        })
    }

    /// `add_sync_function`: calls `f` inside the call, then extends its feed.
    pub(crate) fn add_function(
        &self,
        f: impl FnOnce() -> Feed<V, C>,
        context: Ctxt<C>,
    ) -> SourceId {
        let (id, closed) = {
            let mut st = self.lock();
            if !st.closed {
                st.running_functions += 1;
            }
            (st.new_id(QueueInput::SyncFunction), st.closed)
        };
        if closed {
            return id;
        }
        let out = sources::function::call(f);
        self.with_state(|st, d| {
            st.running_functions -= 1;
            st.called(out, Sources::root(id), context, d);
            id
        });
        id
    }

    /// Adds a source of any kind (not a value, an error or a function) with no parent.
    pub(crate) fn add_source(&self, feed: Feed<V, C>, context: Ctxt<C>) -> SourceId {
        self.with_state(|st, d| {
            if st.closed {
                let id = st.new_id(feed.kind().unwrap_or(QueueInput::Value));
                d.trash((feed, context));
                return id;
            }
            st.add_source_under(feed, None, context, d)
        })
    }

    /// Stops the manager: `Stopped(failure)` goes to the front (invariant 3).
    pub(crate) fn stop(&self, failure: Failure) {
        self.with_state(|st, d| st.stop(failure, d));
    }

    pub(crate) fn set_finish_when_empty(&self) {
        self.with_state(|st, _| {
            st.finish_when_empty = true;
            if st.stopped.is_none()
                && !st.idle_stop_queued
                && st.sources.is_empty()
                && st.running_functions == 0
                && st.queue.is_empty()
                && !(st.held && self.held_entries.load(Ordering::Acquire))
                && st.woken.is_empty()
            {
                st.idle_stop_queued = true;
                st.queue
                    .push_back(Entry::Result(Raw::Stopped { error: None }));
            }
        });
    }

    pub(crate) fn live_sources(&self) -> usize {
        let st = self.lock();
        st.sources.len() + st.running_functions
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stopped.is_some()
    }

    /// Takes the queued results, leaving the instructions queued in their order.
    pub(crate) fn take_results(&self, local: &mut Local<V, C>) -> Vec<Raw<V, C>> {
        let mut st = self.lock();
        st.enter(local);
        let mut results = Vec::new();
        let mut kept = VecDeque::new();
        for e in std::mem::take(&mut st.queue) {
            match e {
                Entry::Result(r) => results.push(r),
                other => kept.push_back(other),
            }
        }
        st.queue = kept;
        st.leave(local, self);
        results
    }

    /// The inbox's capacity (for the memory tests; the streamer adds its own part's).
    pub(crate) fn queue_capacity(&self) -> usize {
        self.lock().queue.capacity()
    }

    /// The generator sources the stop ended, to stop.
    pub(crate) fn take_stopping(&self) -> Stopping<V, C> {
        std::mem::take(&mut self.lock().stopping)
    }

    /// `close()`: ends every generator source still live (the stop ended the others) as
    /// the stop ends a source, and takes all of them to stop.
    /// The consumer's part of the queue (`local`) comes back first when the caller is
    /// the streamer; generator sources are never in it (`consumer.rs`, invariant 4), so
    /// the scoped form's close, which has no streamer, finds them all in the table.
    pub(crate) fn take_generators(&self, local: Option<&mut Local<V, C>>) -> Stopping<V, C> {
        let mut local = local;
        self.with_state(|st, d| {
            if let Some(local) = local.as_deref_mut() {
                st.enter(local);
                st.rehome_all(d);
            }
            st.keep_generators = false;
            st.end_generators(d);
            if let Some(local) = local {
                st.leave(local, self);
            }
            std::mem::take(&mut st.stopping)
        })
    }

    /// Whether a streamer dropped now leaves its generator sources for a close to come
    /// (the scoped form), or drops them.
    pub(crate) fn keep_generators(&self, keep: bool) {
        self.lock().keep_generators = keep;
    }

    /// Tasks the stop cancelled that may still be running.
    pub(crate) fn take_cancelled(&self) -> Vec<AnyTask> {
        std::mem::take(&mut self.lock().cancelled)
    }

    /// The sources the stop cut short so far.
    pub(crate) fn cut_short(&self) -> Vec<(Sources, Ctxt<C>)> {
        self.lock().cut_short.clone()
    }
}
