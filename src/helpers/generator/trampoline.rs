//! Polling nested generators without recursion.
//!
//! A generator polls its body in place, and a body may drive another generator (a
//! pipeline stage relaying the stage before it, a cleanup that stops the next generator
//! of a chain). Done in place all the way down, polling a chain of `n` generators is `n`
//! nested calls, and a few hundred stages overflow a 2 MiB stack in a debug build.
//!
//! So only [`MAX_NESTED`] generator polls nest on one thread. A generator polled deeper
//! than that *detaches* its body: the body moves into a [`Detached`] cell, is queued on
//! the [`Trampoline`] of the outermost generator poll on this thread's stack, and the
//! poll returns `Pending`. Once its own body's poll has returned (the stack unwound), the
//! outermost generator *drains* the trampoline: it polls each queued body from there,
//! where that body may again drive [`MAX_NESTED`] levels. A detached body that makes
//! progress (yields or returns) wakes its consumer, which is either a body queued on the
//! same trampoline (drained in the same loop) or the task polling the outermost
//! generator. A detached body's own waker queues it again and wakes that task.
//!
//! Nothing is spawned: detached bodies are still polled only inside a poll of the
//! outermost generator, by the task that consumes it. A generator polled at a shallow
//! depth again (moved out of the chain, say) takes its body back and polls it in place.
//! (So a body that blocks its thread on a nested executor, `futures::executor::block_on`
//! over a generator more than [`MAX_NESTED`] levels deep, waits for a drain that cannot
//! come; blocking inside async code is wrong anyway.)
//!
//! # Locks
//! [`Trampoline::state`] and [`Detached::state`] guard only queues, flags and wakers.
//! Bodies are taken out before they are polled or dropped; wakers are woken and values
//! dropped after the unlock.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll, Wake, Waker};

use super::Body;
use super::drop::{Retired, SlotOps, retire};
use crate::helpers::error::{Error, Failure};
use crate::sync::{Arc, Mutex, Weak, lock};

/// Generator polls that may nest on one thread's stack before a body is detached.
pub(super) const MAX_NESTED: u32 = 16;

thread_local! {
    /// Generator polls active on this thread's stack.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The trampoline of the outermost generator poll on this thread, once one is needed.
    /// No drop glue (`ManuallyDrop`), so it is never destroyed: a generator polled from
    /// another thread-local's destructor at thread exit still finds it. It holds a
    /// trampoline only while the outermost poll runs, which takes it back out.
    static CURRENT: ManuallyDrop<RefCell<Option<Arc<Trampoline>>>> =
        const { ManuallyDrop::new(RefCell::new(None)) };
}

/// Detached bodies waiting to be polled by the outermost generator poll.
pub(super) struct Trampoline {
    state: Mutex<TrampolineState>,
}

struct TrampolineState {
    ready: VecDeque<Arc<Detached>>,
    /// Counts drains; a body is polled at most once per drain.
    round: u64,
    /// The waker of the task polling the outermost generator.
    top: Option<Waker>,
}

/// A generator's body while it is polled from a trampoline.
pub(super) struct Detached {
    state: Mutex<DetachedState>,
    /// The generator's slot, type-erased.
    slot: Arc<dyn SlotOps>,
    /// Queues this body on its trampoline (holds only a `Weak` to it).
    waker: Waker,
}

struct DetachedState {
    /// `None` while the trampoline polls it, and once it returned or was taken back.
    body: Option<Body>,
    polling: bool,
    woken_while_polling: bool,
    queued: bool,
    returned: Option<Result<(), Failure>>,
    /// Who to wake when the body yields or returns.
    consumer: Option<Waker>,
    /// The drain round it was last polled in.
    round: u64,
    trampoline: Weak<Trampoline>,
    /// The generator was dropped or took the body back while the trampoline polled it.
    owner_gone: bool,
}

/// What a generator holding a detached body learns when polled.
pub(super) enum Checked {
    /// The body returned while detached.
    Returned(Result<(), Failure>),
    /// The body is back in the generator's hands: poll it in place.
    Reclaimed(Body),
    /// Still detached; the consumer is woken on progress (look for a yielded value).
    Pending,
}

/// Marks one generator poll on this thread's stack; undone on drop (also by a panic).
pub(super) struct Nesting {
    outermost: bool,
}

impl Nesting {
    /// Enters a generator poll; the outermost one installs `own` as the trampoline.
    pub(super) fn enter(own: Option<&Arc<Trampoline>>) -> Nesting {
        let depth = DEPTH.with(|d| {
            let depth = d.get();
            d.set(depth + 1);
            depth
        });
        if depth == 0 {
            CURRENT.with(|c| *c.borrow_mut() = own.cloned());
        }
        Nesting {
            outermost: depth == 0,
        }
    }

    /// Whether this poll is the outermost one on the thread (it drains the trampoline).
    pub(super) fn outermost(&self) -> bool {
        self.outermost
    }

    /// Generator polls active on this thread's stack now.
    pub(super) fn depth() -> u32 {
        DEPTH.with(Cell::get)
    }

    /// Whether a body polled now would nest too deep, so must be detached.
    pub(super) fn too_deep() -> bool {
        DEPTH.with(Cell::get) > MAX_NESTED
    }

    /// The trampoline used on this thread (made if none is yet); the outermost poll keeps it.
    fn current() -> Arc<Trampoline> {
        CURRENT.with(|c| {
            c.borrow_mut()
                .get_or_insert_with(|| {
                    Arc::new(Trampoline {
                        state: Mutex::new(TrampolineState {
                            ready: VecDeque::new(),
                            round: 0,
                            top: None,
                        }),
                    })
                })
                .clone()
        })
    }

    /// Drains the trampoline (outermost poll only), then hands it back to keep, if any
    /// was needed; `top` is the waker of the task polling the outermost generator.
    pub(super) fn drain(&self, top: &Waker) -> Option<Arc<Trampoline>> {
        debug_assert!(self.outermost);
        let trampoline = CURRENT.with(|c| c.borrow().clone())?;
        let (round, _old) = {
            let mut st = lock(&trampoline.state);
            st.round = st.round.wrapping_add(1);
            let old = match &st.top {
                Some(w) if w.will_wake(top) => None,
                _ => st.top.replace(top.clone()),
            };
            (st.round, old)
        };
        // A body woken again while this drain runs (one that wakes itself to yield to the
        // runtime, say) waits for the next drain: the task goes back to the runtime first.
        let mut next_time = Vec::new();
        loop {
            let next = lock(&trampoline.state).ready.pop_front();
            let Some(detached) = next else { break };
            if !detached.clone().run(round) {
                next_time.push(detached);
            }
        }
        if !next_time.is_empty() {
            lock(&trampoline.state).ready.extend(next_time);
            top.wake_by_ref();
        }
        Some(trampoline)
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
        if self.outermost {
            let _trampoline = CURRENT.with(|c| c.borrow_mut().take());
        }
    }
}

impl Detached {
    /// Detaches `body` (its generator is polled too deep): queues it on this thread's
    /// trampoline; `consumer` is woken when it yields or returns.
    pub(super) fn detach(body: Body, slot: Arc<dyn SlotOps>, consumer: &Waker) -> Arc<Detached> {
        let trampoline = Nesting::current();
        let detached = Arc::new_cyclic(|me: &Weak<Detached>| Detached {
            state: Mutex::new(DetachedState {
                body: Some(body),
                polling: false,
                woken_while_polling: false,
                queued: true,
                returned: None,
                consumer: Some(consumer.clone()),
                round: 0,
                trampoline: Arc::downgrade(&trampoline),
                owner_gone: false,
            }),
            slot,
            waker: Waker::from(Arc::new(DetachedWaker(me.clone()))),
        });
        lock(&trampoline.state).ready.push_back(detached.clone());
        detached
    }

    /// The generator is polled again with the body still detached.
    ///
    /// `in_place`: the poll is shallow enough to take the body back and poll it itself.
    /// Otherwise the body is queued on this thread's trampoline (a spurious poll is
    /// harmless; it may have input to pick up) and `consumer` is woken on progress.
    pub(super) fn check(self: &Arc<Self>, consumer: &Waker, in_place: bool) -> Checked {
        // Declared before the guard, so a replaced waker is dropped after the unlock.
        let _old_consumer;
        let mut st = lock(&self.state);
        if let Some(r) = st.returned.take() {
            return Checked::Returned(r);
        }
        if in_place && let Some(body) = st.body.take() {
            st.owner_gone = true;
            return Checked::Reclaimed(body);
        }
        _old_consumer = match &st.consumer {
            Some(w) if w.will_wake(consumer) => None,
            _ => st.consumer.replace(consumer.clone()),
        };
        if st.polling {
            st.woken_while_polling = true;
            return Checked::Pending;
        }
        let trampoline = Nesting::current();
        // Compared through `upgrade`: a dead trampoline's address may be reused.
        let same = st
            .trampoline
            .upgrade()
            .is_some_and(|t| Arc::ptr_eq(&t, &trampoline));
        if !same {
            st.trampoline = Arc::downgrade(&trampoline);
            st.queued = false;
        }
        if st.body.is_some() && !st.queued {
            st.queued = true;
            drop(st);
            lock(&trampoline.state).ready.push_back(self.clone());
        }
        Checked::Pending
    }

    /// The generator lets go of the body (it is dropped or finished): returns the body to
    /// retire, or leaves that to the trampoline polling it now.
    pub(super) fn take_back(&self) -> Option<Body> {
        let mut st = lock(&self.state);
        st.owner_gone = true;
        st.body.take()
    }

    /// Polls the body once from the trampoline (drain `round`); wakes the consumer on
    /// progress. Returns `false`, leaving it queued, when it was polled in this round.
    fn run(self: Arc<Self>, round: u64) -> bool {
        let body = {
            let mut st = lock(&self.state);
            if st.round == round {
                return false;
            }
            st.round = round;
            st.queued = false;
            if st.owner_gone {
                None
            } else {
                let body = st.body.take();
                st.polling = body.is_some();
                body
            }
        };
        let Some(mut body) = body else { return true };
        let _old = self.slot.set_consumer(&self.waker);
        let mut cx = Context::from_waker(&self.waker);
        let polled = match catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(&mut cx))) {
            Ok(p) => p,
            Err(payload) => Poll::Ready(Err(Failure::Error(Error::from_panic(payload)))),
        };
        let progress = polled.is_ready() || self.slot.has_yielded();
        let (wake, requeue, leftover) = {
            let mut st = lock(&self.state);
            st.polling = false;
            let leftover = match polled {
                Poll::Ready(r) => {
                    st.returned = Some(r);
                    Some(body)
                }
                Poll::Pending if st.owner_gone => Some(body),
                Poll::Pending => {
                    st.body = Some(body);
                    None
                }
            };
            let requeue = std::mem::take(&mut st.woken_while_polling) && st.body.is_some();
            let wake = if progress { st.consumer.clone() } else { None };
            (wake, requeue, leftover)
        };
        // Unlocked: a body whose generator let go meanwhile is retired here.
        if let Some(body) = leftover {
            drop(retire(Retired {
                body: Some(body),
                slot: None,
            }));
        }
        if requeue {
            self.waker.wake_by_ref();
        }
        if let Some(w) = wake {
            w.wake();
        }
        true
    }
}

/// A detached body's waker: queues it on its trampoline and wakes the outermost task.
struct DetachedWaker(Weak<Detached>);

impl Wake for DetachedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(detached) = self.0.upgrade() else {
            return;
        };
        let trampoline = {
            let mut st = lock(&detached.state);
            if st.polling {
                st.woken_while_polling = true;
                return;
            }
            if st.queued || st.body.is_none() {
                return;
            }
            st.queued = true;
            st.trampoline.upgrade()
        };
        let Some(trampoline) = trampoline else { return };
        let top = {
            let mut st = lock(&trampoline.state);
            st.ready.push_back(detached);
            st.top.clone()
        };
        if let Some(w) = top {
            w.wake();
        }
    }
}
