//! Detached tasks: "spawn many, wait for all" at tokio's cost.
//!
//! A task spawned by [`TaskHolderHandle::spawn_detached`] has no [`Task`] handle and no
//! entry in the holder, so nothing of it is allocated beside tokio's own task cell and no
//! lock is taken to spawn or finish it: the spawned future carries a [`Token`] (the
//! holder's tracker and the task's flags, as tokio-util's `TaskTracker` carries its
//! token), and the task is counted in the tracker's one atomic word (`counts.rs`).
//!
//! Aborting without a handle: the holder sets `Tracker::aborted` and wakes the detached
//! tasks that are waiting; a detached task checks the flag each time it is polled and,
//! once set, drops its future instead of polling it. To be woken, a task registers its
//! waker with the holder the first time its future returns `Pending` (one lock, only for
//! tasks that wait) and removes it when it ends. Registering once is enough: this future
//! is only ever polled by tokio, whose waker for a task always wakes that task. The flag
//! is checked again under the lock at registration, which the abort takes after setting
//! it, so a task that registers too late sees it.
//!
//! When the future is dropped (it completed, was aborted, or its runtime shut down), the
//! user's future goes first (its `Drop` cleanup runs before the holder counts the task
//! finished), then the token tells the holder, in the order a held [`Task`]'s link does:
//! a panic is logged and counts for `fail_fast`, the task stops being pending (and its
//! slot under a limit is given back), and it settles.
//!
//! [`Task`]: crate::helpers::Task

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering::Acquire;
use std::task::{Context, Poll, Waker};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;

use super::{Inner, REPORT, Refused, SHIFT, SLOT, TaskHolderHandle, Tracker, drop_caught, limited};
use crate::helpers::callbacks::{self, Enter, run_caught};
use crate::helpers::error::{Error, Failure};
use crate::sync::{Arc, lock};

/// What a detached task's future carries: tells the holder once, when the task ends.
struct Token {
    /// `None` once told.
    tracker: Option<Arc<Tracker>>,
    /// [`REPORT`] and [`SLOT`] as in a held task's key; above [`SHIFT`], the task's slot
    /// in `State::waiting` plus one once it registered its waker (0: not registered).
    key: u64,
}

impl Token {
    /// Tells the holder that the task ended, with its failure if any; it settles once
    /// what the report and the policy queued has run (CTX 3: nested in finishing work,
    /// all of it is queued for the outermost finishing call on this thread).
    fn end(&mut self, failure: Option<Failure>) {
        let Some(tracker) = self.tracker.take() else {
            return;
        };
        let key = self.key;
        match callbacks::enter() {
            Enter::Outermost(drain) => {
                let lowered = tracker.detached_ended(key, failure.as_ref(), false);
                if failure.is_some() {
                    drain.run_queued(); // what the report and the policy queued
                }
                tracker.settle_as(!lowered);
                drop(drain);
            }
            Enter::Nested => callbacks::defer(Box::new(move || {
                tracker.detached_ended(key, failure.as_ref(), true);
                callbacks::defer_last(Box::new(move || tracker.settle_as(false)));
            })),
        }
    }

    /// Registers the task's waker for an abort (once: see the module docs).
    fn register(&mut self, tracker: &Tracker, waker: &Waker) {
        let mut st = lock(&tracker.state);
        if tracker.aborted.load(Acquire) {
            // The abort took the wakers already: poll again, and stop then.
            drop(st);
            waker.wake_by_ref();
            return;
        }
        let slot = st.waiting.insert(Some(waker.clone())) as u64;
        self.key |= (slot + 1) << SHIFT;
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // The future was dropped unfinished (aborted, or its runtime shut down).
        self.end(Some(Failure::Cancelled));
    }
}

impl Tracker {
    /// A detached task ended: its waker is removed, a failure reported and given to the
    /// policy, and it stops being pending when `lower` says so, or when it failed or
    /// holds a slot under the limit (given back after: the task waiting for it becomes
    /// pending only once this one is not). Returns whether it stopped being pending.
    fn detached_ended(&self, key: u64, failure: Option<&Failure>, lower: bool) -> bool {
        let slot = key >> SHIFT;
        if slot != 0 {
            let waker = {
                let mut st = lock(&self.state);
                let waker = st.waiting.try_remove((slot - 1) as usize);
                if st.waiting.is_empty() && st.waiting.capacity() > 64 {
                    st.waiting = slab::Slab::new(); // give a burst's memory back
                }
                waker
            };
            drop(waker); // tokio's waker: outside the lock all the same
        }
        if let Some(failure) = failure {
            if key & REPORT != 0 {
                // The context's logger is user code: a panic in it must not skip the
                // settle (finish would wait for ever).
                run_caught("task holder failure report", || self.report.report(Some(failure)));
            }
            if let Some(policy) = &self.fail_fast {
                run_caught("task holder failure policy", || policy.failed(Some(failure)));
            }
        }
        let lower = lower || failure.is_some() || key & SLOT != 0;
        if lower {
            self.unsettled.end_detached();
        }
        if key & SLOT != 0
            && let Some(limit) = &self.limit
        {
            limit.add_permits(1);
        }
        lower
    }
}

pin_project_lite::pin_project! {
    /// A detached task's future: the user's, then the token (fields drop in declaration
    /// order, so an aborted task's future is dropped before its token tells the holder).
    struct Detached<F: Future> {
        #[pin]
        fut: Option<CatchUnwind<AssertUnwindSafe<F>>>,
        token: Token,
    }
}

impl<F: Future> Future for Detached<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let (Some(fut), Some(tracker)) = (this.fut.as_mut().as_pin_mut(), &this.token.tracker)
        else {
            return Poll::Ready(());
        };
        if tracker.aborted.load(Acquire) {
            // Aborted: the future is dropped (unpolled, if this is its first turn).
            run_caught("dropping an aborted task's future", || this.fut.set(None));
            this.token.end(Some(Failure::Cancelled));
            return Poll::Ready(());
        }
        let out = match fut.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => {
                if this.token.key >> SHIFT == 0 {
                    let tracker = tracker.clone();
                    this.token.register(&tracker, cx.waker());
                }
                return Poll::Pending;
            }
        };
        // The finished future is dropped first (user code: caught), then the output
        // nobody joins, then the holder is told.
        run_caught("dropping a finished task's future", || this.fut.set(None));
        let failure = match out {
            Ok(output) => {
                run_caught("dropping a detached task's output", || drop(output));
                None
            }
            Err(panic) => Some(Failure::Error(Error::from_panic(panic))),
        };
        this.token.end(failure);
        Poll::Ready(())
    }
}

impl Inner {
    /// Counts a detached task and spawns `fut` as its future on the holder's runtime
    /// (else the current one), under the limit; gives `fut` back on a closed holder.
    ///
    /// # Panics
    /// Without a runtime (the future is dropped, so the task ends and settles first).
    #[track_caller]
    fn try_spawn_detached<F>(&self, fut: F) -> Result<(), Refused<F>>
    where
        F: Future + Send + 'static,
    {
        // Counted before the check: a `finish` closing meanwhile fails, or this sees it.
        if !self.tracker.unsettled.add_detached() || self.ctx.done() {
            self.tracker.settle_as(true);
            return Err(Refused::new(fut));
        }
        let mut turn = self.turn(None);
        let mut key = REPORT;
        if let Some(permit) = turn.permit.take() {
            permit.forget(); // given back when the task ends
            key |= SLOT;
        }
        let token = Token {
            tracker: Some(self.tracker.clone()),
            key,
        };
        match (turn.wait, &self.tracker.limit) {
            (true, Some(limit)) => self.spawn_body(limited(limit.clone(), fut, None), token),
            _ => self.spawn_body(fut, token),
        }
        Ok(())
    }

    #[track_caller]
    fn spawn_body<F>(&self, fut: F, token: Token)
    where
        F: Future + Send + 'static,
    {
        let body = Detached {
            fut: Some(AssertUnwindSafe(fut).catch_unwind()),
            token,
        };
        // The join handle is dropped at once: the task is detached.
        drop(match &self.runtime {
            Some(handle) => handle.spawn(body),
            None => tokio::spawn(body),
        });
    }
}

impl TaskHolderHandle {
    /// Spawns `fut` as a held task without a [`Task`](crate::helpers::Task) handle: the
    /// cheap form for "spawn many, wait for all" (tokio-util's `TaskTracker::spawn`).
    /// Returns whether the holder took it.
    ///
    /// Nothing is allocated beside tokio's own task and no lock is taken (a
    /// [`spawn`](Self::spawn) also allocates the handle's shared state and holds it in
    /// the holder), so use it when nobody joins the task's output, reads its outcome or
    /// registers callbacks on it: its output is dropped when it finishes. Every holder
    /// rule holds for it as for `spawn`: `finish` waits for it; a done context,
    /// [`TaskHolder::cancel_all`](super::TaskHolder::cancel_all) or dropping the holder
    /// stops it (its future is dropped, so its `Drop` cleanup runs, before the holder
    /// counts it finished); a panic is caught and logged through the holder's context,
    /// and counts as a failure under [`fail_fast`](super::TaskHolderBuilder::fail_fast);
    /// the [limit](super::TaskHolderBuilder::limit) applies; [`pending`](Self::pending)
    /// and [`len`](Self::len) count it.
    ///
    /// Having no handle, it is not listed by [`iter`](Self::iter) (nor in a
    /// `ShutdownPlan` drain's report, which lists the held tasks), `contains` cannot ask
    /// for it, and a [`joinable`](super::TaskHolderBuilder::joinable) holder does not hand
    /// it out from `join_next`.
    ///
    /// # Refused work
    /// On a finished holder, or one whose context is done, `fut` is dropped unpolled
    /// (a panic in its `Drop` is caught and logged) and this returns `false`.
    /// [`try_spawn_detached`](Self::try_spawn_detached) gives `fut` back instead.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one); nothing stays held.
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("indexer");
    /// let ts = hp::task_holder(&ctx);
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..1000 {
    ///     let done = done.clone();
    ///     ts.spawn_detached(async move {
    ///         done.fetch_add(1, Relaxed);
    ///     });
    /// }
    /// assert_eq!(ts.pending(), 1000);
    /// ts.finish().await;
    /// assert_eq!(done.load(Relaxed), 1000);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_detached<F>(&self, fut: F) -> bool
    where
        F: Future + Send + 'static,
    {
        match self.inner.try_spawn_detached(fut) {
            Ok(()) => true,
            Err(refused) => {
                // Nested in finishing work, the drop is queued (a chain of refusals runs
                // in constant stack), as `spawn`'s.
                let fut = refused.into_inner();
                callbacks::run_or_defer(move || drop_caught(fut));
                false
            }
        }
    }

    /// Like [`spawn_detached`](Self::spawn_detached), but a closed holder gives `fut`
    /// back, unpolled.
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime (the context's or the current one).
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let ts = hp::task_holder(&ctx);
    /// ctx.cancel();
    /// let refused = ts.try_spawn_detached(async { 7 }).unwrap_err();
    /// assert_eq!(refused.into_inner().await, 7); // not run, not dropped: run here
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn_detached<F>(&self, fut: F) -> Result<(), Refused<F>>
    where
        F: Future + Send + 'static,
    {
        self.inner.try_spawn_detached(fut)
    }
}
