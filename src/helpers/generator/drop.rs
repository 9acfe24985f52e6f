//! Dropping nested generators without recursion.
//!
//! A generator's body may own other generators (a pipeline stage holding the stage
//! before it, a generator yielding generators), to any depth the user builds. Dropping
//! the outer one drops its body, which drops the inner generator, which drops its body...
//! Done in place, that recursion is as deep as the chain, and 100 000 stages overflow a
//! 2 MiB stack. Instead, the first generator dropped on a thread becomes the *drainer*:
//! a generator dropped while a drainer runs (inside its body's drop) only queues its
//! [`Retired`] work on this thread and returns; the drainer then runs the queue until it
//! is empty, so the depth stays constant and everything is dropped before the outermost
//! drop returns.
//!
//! User code runs here (the bodies' `Drop`, leftover values). A panic in one job is
//! caught; the other jobs still run; the first payload is handed back to the caller.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

use super::Body;
use crate::helpers::panics::first_of;
use crate::sync::Arc;

/// A generator's slot, type-erased (so the drop queue and the trampoline hold any
/// generator's).
pub(super) trait SlotOps: Send + Sync {
    /// Closes the slot: marks it closed, wakes a yield left in another task, drops what is
    /// left in it (after the unlock).
    fn close(&self);
    /// Makes `waker` the consumer's waker; returns the one it replaced (drop it unlocked).
    fn set_consumer(&self, waker: &Waker) -> Option<Waker>;
    /// Whether the body has yielded a value the consumer has not taken yet.
    fn has_yielded(&self) -> bool;
}

/// The work of retiring one generator: drop its body, then close its slot.
pub(super) struct Retired {
    pub(super) body: Option<Body>,
    pub(super) slot: Option<Arc<dyn SlotOps>>,
}

/// A panic payload caught while dropping.
pub(super) type Payload = Box<dyn std::any::Any + Send>;

thread_local! {
    /// `Some` while a drainer runs on this thread: the jobs queued for it. No drop glue
    /// (`ManuallyDrop`), so it is never destroyed: a generator dropped by another
    /// thread-local's destructor at thread exit still finds it. It owns memory only while
    /// a drainer runs (the drainer sets it back to `None`).
    static QUEUE: ManuallyDrop<RefCell<Option<Vec<Retired>>>> =
        const { ManuallyDrop::new(RefCell::new(None)) };
}

/// Retires a generator: at once when no drainer runs on this thread (this call then
/// drains what the drop queues), else queued for the running drainer.
///
/// Returns the first panic payload caught while this call drained (`None` when the work
/// was queued for an outer drainer, which then reports it).
pub(super) fn retire(job: Retired) -> Option<Payload> {
    let mut job = Some(job);
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        match q.as_mut() {
            Some(jobs) => jobs.extend(job.take()),
            None => *q = Some(Vec::new()),
        }
    });
    // Still here: no drainer ran, this call is it.
    drain(job?)
}

/// Runs `first`, then every job queued meanwhile, then ends this thread's drainer.
fn drain(first: Retired) -> Option<Payload> {
    let mut panic = run(first);
    loop {
        let next = QUEUE.with(|q| q.borrow_mut().as_mut().and_then(Vec::pop));
        let Some(job) = next else { break };
        let p = run(job);
        panic = first_of(panic, p); // a second payload is dropped under a catch
    }
    QUEUE.with(|q| *q.borrow_mut() = None);
    panic
}

/// Drops the body, then closes the slot; both even if the other panicked.
fn run(job: Retired) -> Option<Payload> {
    let Retired { body, slot } = job;
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(body))).err();
    let closed = slot.and_then(|s| catch_unwind(AssertUnwindSafe(|| s.close())).err());
    first_of(dropped, closed)
}
