//! [`Event`]: a flag tasks can wait for (asyncio's `Event`).
//!
//! `set` wakes every waiter and runs every done callback once; `clear` makes the event
//! waitable again. An event is a [`WaitByCallback`], so `wait_for_first` and
//! `wait_for_all` take it beside contexts, futures and tasks; for them, "done" means "set".
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let ev = hp::Event::new();
//! let waiter = tokio::spawn({
//!     let ev = ev.clone();
//!     async move { ev.wait().await }
//! });
//! ev.set();
//! waiter.await.unwrap();
//! assert!(ev.is_set());
//! ev.clear();
//! assert!(!ev.is_set());
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Release};

use super::callbacks::{CallbackList, run_added, run_caught, run_or_defer};
use super::completion::{drop_each, drop_removed};
use super::protocols::{CallbackHandle, DoneCallback, WaitByCallback};
use super::wait::WaitDone;
use crate::sync::{AtomicBool, Mutex, get_mut, lock};

struct Inner {
    set: AtomicBool,
    callbacks: Mutex<Callbacks>,
}

/// The registrations, under the event's lock.
#[derive(Default)]
struct Callbacks {
    /// Waiting for the next `set`.
    waiting: CallbackList<DoneCallback>,
    /// `Some` while a `set`'s callbacks have not all started (they may be queued behind
    /// other finishing work): what is added to the set event meanwhile, and what a
    /// later `set` took, run after them, in order, by the same runner (CTX 3:
    /// registration order holds across queueing).
    late: Option<CallbackList<DoneCallback>>,
}

/// A cloneable flag that tasks can wait for.
#[derive(Clone)]
pub struct Event {
    inner: Arc<Inner>,
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl Event {
    /// A new, unset event.
    pub fn new() -> Self {
        Event {
            inner: Arc::new(Inner {
                set: AtomicBool::new(false),
                callbacks: Mutex::new(Callbacks::default()),
            }),
        }
    }

    /// Sets it: wakes every waiter and runs every registered callback once. No-op if set.
    ///
    /// The callbacks run on this thread before `set` returns, outside every lock; when
    /// `set` is called from inside another done callback (of a context, future, task or
    /// event) they are queued and run by the outermost finishing call instead, so chains
    /// of events that set each other run in constant stack.
    pub fn set(&self) {
        let callbacks = {
            let mut cbs = lock(&self.inner.callbacks);
            if self.inner.set.load(Acquire) {
                return;
            }
            // Release: pairs with the Acquire in `is_set`.
            self.inner.set.store(true, Release);
            let callbacks = std::mem::take(&mut cbs.waiting);
            if callbacks.len() == 0 {
                return;
            }
            match &mut cbs.late {
                // An earlier `set`'s callbacks have not all run (cleared and set again
                // meanwhile): its runner runs these after them.
                Some(late) => {
                    late.append(callbacks);
                    return;
                }
                None => cbs.late = Some(CallbackList::default()),
            }
            callbacks
        };
        let inner = self.inner.clone();
        run_or_defer(move || inner.fire(callbacks));
    }

    /// Clears it; later waiters wait for the next `set`.
    pub fn clear(&self) {
        let _cbs = lock(&self.inner.callbacks);
        self.inner.set.store(false, Release);
    }

    /// Whether it is set. One atomic load.
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with the Release store in `set`.
        self.inner.set.load(Acquire)
    }

    /// Waits until it is set (returns at once if it is).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future removes its callback.
    pub fn wait(&self) -> WaitDone<&Event> {
        WaitDone::new(self)
    }

    /// Whether both are handles to one event.
    pub fn ptr_eq(&self, other: &Event) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Runs `cb` once when the event is next set (at once if it is set).
    ///
    /// Returns the handle that [`Event::remove_done_callback`] takes. A callback added to
    /// a set event from inside another done callback is queued and runs before the
    /// outermost finishing call returns (CTX rule 3).
    pub fn add_done_callback(&self, cb: impl FnOnce() + Send + 'static) -> CallbackHandle {
        {
            let mut cbs = lock(&self.inner.callbacks);
            if !self.inner.set.load(Acquire) {
                return cbs.waiting.push(None, Box::new(cb));
            }
            // Set, and its callbacks have not all run: this one runs after them.
            if let Some(late) = &mut cbs.late {
                return late.push(None, Box::new(cb));
            }
        }
        run_added(move || {
            run_caught("event callback", cb);
        });
        CallbackHandle::new()
    }

    /// Removes a registration that has not run; returns how many were removed (0 or 1).
    /// The callback is dropped after the event's lock is released.
    pub fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        let removed = {
            let mut cbs = lock(&self.inner.callbacks);
            match cbs.waiting.remove(handle) {
                Some(cb) => Some(cb),
                None => cbs.late.as_mut().and_then(|l| l.remove(handle)),
            }
        };
        drop_removed(removed)
    }
}

/// Identity: two handles are equal when they are handles to one event.
impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.ptr_eq(other)
    }
}

impl Eq for Event {}

/// Hashes the identity (the shared state's address), consistent with `PartialEq`.
impl std::hash::Hash for Event {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.inner), state);
    }
}

impl WaitByCallback for Event {
    fn done(&self) -> bool {
        self.is_set()
    }
    /// Events cannot be cancelled: always `false`.
    fn cancel(&self) -> bool {
        false
    }
    fn add_done_callback(&self, cb: DoneCallback) -> CallbackHandle {
        Event::add_done_callback(self, cb)
    }
    fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        Event::remove_done_callback(self, handle)
    }
}

impl Inner {
    /// Runs the callbacks a `set` took, then those added before the last of them started
    /// (see `Callbacks::late`), in order, until none is left.
    fn fire(&self, mut callbacks: CallbackList<DoneCallback>) {
        let mut next = callbacks.take().peekable();
        while let Some(cb) = next.next() {
            if next.peek().is_none() {
                // The last one known: take what was added meanwhile (behind it), or end
                // the firing (`late` stays `None`), so one added from now on runs at once.
                let mut cbs = lock(&self.callbacks);
                let mut late = cbs.late.take().unwrap_or_default();
                if late.len() > 0 {
                    cbs.late = Some(CallbackList::default());
                }
                drop(cbs);
                next = late.take().peekable();
            }
            run_caught("event callback", cb);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Callbacks that never ran may capture the next event of a chain: drop them
        // through the finishing loop instead of recursing once per link.
        let Callbacks { waiting, late } = std::mem::take(&mut *get_mut(&mut self.callbacks));
        if waiting.len() > 0 {
            run_or_defer(move || drop_each(waiting));
        }
        if let Some(late) = late.filter(|l| l.len() > 0) {
            run_or_defer(move || drop_each(late));
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
