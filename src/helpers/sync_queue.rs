//! Sync queue (`hp::sync_queue`): a blocking queue for plain threads whose iteration
//! ends with its context.
//!
//! Producers on any thread [`append`](SyncQueue::append); a consumer thread iterates
//! (`for item in &queue`), blocking while the queue is empty, until the context is done.
//! A finished context wakes a blocked consumer at once (a done callback notifies it), not
//! after `timeout`; `timeout` (default 50 ms) is only how often a blocked consumer looks
//! again on its own.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! let ctx = hp::Ctx::beginning("app");
//! let queue = hp::sync_queue::<u32>(&ctx).build();
//! let producer = {
//!     let (queue, ctx) = (queue.clone(), ctx.clone());
//!     std::thread::spawn(move || {
//!         for n in 0..3 {
//!             queue.append(n);
//!         }
//!         queue.append(99);
//!         ctx.cancel();
//!     })
//! };
//! let mut seen = Vec::new();
//! for n in &queue {
//!     seen.push(n);
//! }
//! producer.join().unwrap();
//! // Without `empty_on_finished` what the consumer did not reach stays for `remaining`.
//! seen.extend(queue.remaining());
//! assert_eq!(seen, [0, 1, 2, 99]);
//! ```
//!
//! # Nothing is lost
//! The context is checked before each item is handed out, and an item is removed only
//! when it is handed out: one taken at the instant the context finishes is yielded (with
//! `empty_on_finished`) or stays for [`SyncQueue::remaining`]. **Differs from the
//! original**, which loses it.
//!
//! # Cost
//! A consumer takes every waiting item under one lock into a private batch; producers
//! take one lock per append and signal the condition variable only when a consumer sleeps.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::debug::{Live, QUEUES};
use super::protocols::CallbackHandle;
use super::{Ctx, CtxGuard};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, lock};

/// Starts building a sync queue bound to `ctx` (the seed's `hp.sync_queue(ctx=...)`).
pub fn sync_queue<T>(ctx: &Ctx) -> SyncQueueOptions<T> {
    SyncQueueOptions {
        ctx: ctx.clone(),
        timeout: Duration::from_millis(50),
        empty_on_finished: false,
        name: Cow::Borrowed(""),
        _t: std::marker::PhantomData,
    }
}

/// Options for [`sync_queue`]: `timeout`, `empty_on_finished`, `name`.
pub struct SyncQueueOptions<T> {
    ctx: Ctx,
    timeout: Duration,
    empty_on_finished: bool,
    name: Cow<'static, str>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SyncQueueOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncQueueOptions")
            .field("timeout", &self.timeout)
            .field("empty_on_finished", &self.empty_on_finished)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> SyncQueueOptions<T> {
    /// How long a blocked consumer sleeps before it looks again on its own (default
    /// 50 ms). Appends and a finished context wake it earlier. `Duration::ZERO` means it
    /// sleeps until woken (it never busy-polls).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When the context finishes, first yield what is left.
    pub fn empty_on_finished(mut self, yes: bool) -> Self {
        self.empty_on_finished = yes;
        self
    }

    /// Names the queue's child context (default `sync_queue`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Creates the queue with a child context of the given one.
    pub fn build(self) -> SyncQueue<T> {
        let name = if self.name.is_empty() {
            Cow::Borrowed("sync_queue")
        } else {
            self.name
        };
        let guard = self.ctx.child(name).drop_guard();
        let core = Arc::new(Core {
            state: Mutex::new(State {
                deque: VecDeque::new(),
                sleepers: 0,
                batcher: false,
            }),
            cond: Condvar::new(),
            batch_len: AtomicUsize::new(0),
            ready: AtomicBool::new(false),
            _live: Live::new(),
        });
        let weak = Arc::downgrade(&core);
        let ctx_cb = guard.ctx().add_done_callback(move |_| {
            if let Some(core) = weak.upgrade() {
                // Take the lock so a consumer is either before its `done()` check or
                // already asleep; then wake every sleeper.
                drop(lock(&core.state));
                core.cond.notify_all();
            }
        });
        let owner = Arc::new(Owner {
            timeout: self.timeout,
            empty_on_finished: self.empty_on_finished,
            ctx_cb,
            ctx: guard,
        });
        SyncQueue { core, owner }
    }
}

struct State<T> {
    deque: VecDeque<T>,
    /// Consumers blocked on `cond`.
    sleepers: usize,
    /// One iteration at a time may take whole batches (the others take one item per
    /// lock); this says whether one does.
    batcher: bool,
}

/// What producers and consumers touch.
struct Core<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
    /// Items in the batching iteration's batch: set under the lock when items move in or
    /// out of it, lowered (a plain store) by that iteration as it yields them.
    batch_len: AtomicUsize,
    /// Set by the append that makes the queue non-empty, cleared when a consumer empties
    /// it: what a consumer spins on briefly before it sleeps.
    ready: AtomicBool,
    _live: Live<QUEUES>,
}

/// What a consumer's visit to the shared deque gave.
enum Refill<T> {
    /// Its batch was filled.
    Batch,
    /// Another iteration batches: one item, taken under the lock.
    One(T),
    /// Nothing queued and the context is done.
    End,
}

/// The queue's context and settings; its done callback holds only a `Weak<Core>`.
struct Owner {
    timeout: Duration,
    empty_on_finished: bool,
    ctx_cb: CallbackHandle,
    ctx: CtxGuard,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.ctx.ctx().remove_done_callback(self.ctx_cb);
    }
}

/// A blocking queue for threads (the seed's `SyncQueue`). Cloning gives another handle
/// to the same queue. See the [module docs](self).
///
/// # Drop
/// When the last handle is dropped, the queue's child context is cancelled and what is
/// left is dropped.
pub struct SyncQueue<T> {
    core: Arc<Core<T>>,
    owner: Arc<Owner>,
}

impl<T> Clone for SyncQueue<T> {
    fn clone(&self) -> Self {
        SyncQueue {
            core: self.core.clone(),
            owner: self.owner.clone(),
        }
    }
}

impl<T: Send + 'static> SyncQueue<T> {
    /// Adds `item` at the back. Never blocks; always accepted (after the context is done
    /// it waits for [`remaining`](Self::remaining) or an `empty_on_finished` iteration).
    pub fn append(&self, item: T) {
        let wake = {
            let mut st = lock(&self.core.state);
            if st.deque.is_empty() {
                // Relaxed: a hint for spinning consumers; they re-check under the lock.
                self.core.ready.store(true, Relaxed);
            }
            st.deque.push_back(item);
            st.sleepers > 0
        };
        if wake {
            self.core.cond.notify_one();
        }
    }

    /// How many items are queued (those in a running iteration's batch included).
    pub fn len(&self) -> usize {
        let st = lock(&self.core.state);
        // Relaxed: a snapshot; moves into and out of batches happen under this lock.
        st.deque.len() + self.core.batch_len.load(Relaxed)
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's own context, a child of the one it was built with.
    pub fn ctx(&self) -> &Ctx {
        self.owner.ctx.ctx()
    }

    /// A blocking iteration: yields items as they come until the context is done.
    /// Re-entrant: a new iteration continues where a stopped one left off.
    pub fn get_all(&self) -> SyncQueueIter<'_, T> {
        SyncQueueIter {
            queue: self,
            batch: VecDeque::new(),
            owns: false,
            ended: false,
        }
    }

    /// What is queued now, without waiting.
    pub fn remaining(&self) -> SyncRemaining<'_, T> {
        SyncRemaining { queue: self }
    }

    fn done(&self) -> bool {
        self.owner.ctx.ctx().done()
    }

    /// Blocks until items are queued or the context is done with nothing queued. The
    /// batching iteration (`owns`, or the first to claim it) takes every queued item.
    fn refill(&self, batch: &mut VecDeque<T>, owns: &mut bool) -> Refill<T> {
        let mut st = lock(&self.core.state);
        let mut spun = false;
        loop {
            if self.done() && !self.owner.empty_on_finished {
                return Refill::End; // checked under the lock: nothing is taken after it
            }
            if !st.deque.is_empty() {
                if *owns || !st.batcher {
                    (st.batcher, *owns) = (true, true);
                    std::mem::swap(&mut st.deque, batch);
                    self.core.batch_len.store(batch.len(), Relaxed);
                    self.core.ready.store(false, Relaxed);
                    return Refill::Batch;
                }
                let item = st.deque.pop_front().expect("checked non-empty");
                self.core.ready.store(!st.deque.is_empty(), Relaxed);
                return Refill::One(item);
            }
            if self.done() {
                return Refill::End;
            }
            if spun {
                st = self.sleep(st);
            } else {
                drop(st);
                self.spin_briefly();
                spun = true;
                st = lock(&self.core.state);
            }
        }
    }

    /// Waits a little for an append before sleeping: a producer then need not make a
    /// system call to wake us (what std's mpsc and crossbeam do too).
    fn spin_briefly(&self) {
        for step in 0..10u32 {
            // Relaxed: only a hint; the caller re-checks under the lock.
            if self.core.ready.load(Relaxed) || self.done() {
                return;
            }
            if step < 6 {
                (0..1u32 << step).for_each(|_| std::hint::spin_loop());
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn sleep<'g>(&self, mut st: MutexGuard<'g, State<T>>) -> MutexGuard<'g, State<T>> {
        st.sleepers += 1;
        let cond = &self.core.cond;
        let mut st = if self.owner.timeout.is_zero() {
            cond.wait(st).unwrap_or_else(|p| p.into_inner())
        } else {
            cond.wait_timeout(st, self.owner.timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0
        };
        st.sleepers -= 1;
        st
    }

    /// Puts a stopped iteration's batch back in front, in order, and gives up batching.
    fn give_back(&self, batch: &mut VecDeque<T>, owns: &mut bool) {
        if !*owns {
            return;
        }
        let mut st = lock(&self.core.state);
        while let Some(v) = batch.pop_back() {
            st.deque.push_front(v);
        }
        self.core.batch_len.store(0, Relaxed);
        (st.batcher, *owns) = (false, false);
        if !st.deque.is_empty() {
            self.core.ready.store(true, Relaxed);
        }
    }
}

impl<T> fmt::Debug for SyncQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncQueue")
            .field("ctx", &self.owner.ctx.name())
            .field("queued", &lock(&self.core.state).deque.len())
            .finish_non_exhaustive()
    }
}

/// A blocking iteration over a [`SyncQueue`], from [`SyncQueue::get_all`] or
/// `for item in &queue`.
///
/// # Drop
/// Items it had taken but not yielded go back to the front of the queue, in order.
pub struct SyncQueueIter<'a, T: Send + 'static> {
    queue: &'a SyncQueue<T>,
    batch: VecDeque<T>,
    /// This iteration is the one that takes whole batches.
    owns: bool,
    ended: bool,
}

impl<T: Send + 'static> Iterator for SyncQueueIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.ended {
            return None;
        }
        loop {
            if self.queue.done() && !self.queue.owner.empty_on_finished {
                break;
            }
            if let Some(v) = self.batch.pop_front() {
                // Relaxed: a snapshot for `len()`; only this iteration writes it now.
                self.queue.core.batch_len.store(self.batch.len(), Relaxed);
                return Some(v);
            }
            match self.queue.refill(&mut self.batch, &mut self.owns) {
                Refill::Batch => {}
                Refill::One(v) => return Some(v),
                Refill::End => break,
            }
        }
        self.ended = true;
        self.queue.give_back(&mut self.batch, &mut self.owns);
        None
    }
}

impl<T: Send + 'static> Drop for SyncQueueIter<'_, T> {
    fn drop(&mut self) {
        self.queue.give_back(&mut self.batch, &mut self.owns);
    }
}

impl<T: Send + 'static> fmt::Debug for SyncQueueIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncQueueIter")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<'a, T: Send + 'static> IntoIterator for &'a SyncQueue<T> {
    type Item = T;
    type IntoIter = SyncQueueIter<'a, T>;
    fn into_iter(self) -> SyncQueueIter<'a, T> {
        self.get_all()
    }
}

/// What a [`SyncQueue`] holds now, from [`SyncQueue::remaining`]; never waits.
pub struct SyncRemaining<'a, T> {
    queue: &'a SyncQueue<T>,
}

impl<T: Send + 'static> Iterator for SyncRemaining<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        lock(&self.queue.core.state).deque.pop_front()
    }
}

impl<T> fmt::Debug for SyncRemaining<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncRemaining").finish_non_exhaustive()
    }
}
