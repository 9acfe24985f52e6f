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

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::task::{Context, Poll, Waker};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tokio::sync::OwnedSemaphorePermit;

use super::{Inner, Refused, TaskHolderHandle, Tracker, drop_caught, limited};
use crate::helpers::callbacks::{self, Enter, run_caught};
use crate::helpers::error::{Error, Failure};
use crate::sync::{Arc, lock};

/// What a detached task's future carries: tells the holder, when dropped, that the task
/// ended. One pointer, as tokio-util's token: tokio's task cell grows in steps of 128
/// bytes, so a word more can double it for a small future.
struct Token {
    tracker: Arc<Tracker>,
}

impl Drop for Token {
    /// The task ended (its future was dropped just before: completed, aborted, or its
    /// runtime shut down): it stops being pending and settles. Nested in finishing work
    /// (CTX 3), it settles after all the work queued there.
    fn drop(&mut self) {
        let tracker = &self.tracker;
        tracker.forget_waker();
        if callbacks::nested() {
            tracker.unsettled.end_detached();
            let tracker = tracker.clone();
            callbacks::defer_last(Box::new(move || tracker.settle_as(false)));
        } else {
            // Outermost: settling runs no user code and queues nothing, so no trampoline.
            tracker.settle_as(true);
        }
    }
}

impl Tracker {
    /// Registers the waker of the detached task being polled, for an abort (see the
    /// module docs); keyed by tokio's id of the task, which is known again when the task
    /// ends (tokio sets it while it polls or drops a task's future).
    fn register(&self, id: tokio::task::Id, waker: &Waker) {
        let mut waiting = lock(&self.waiting);
        if self.aborted.load(Acquire) {
            // The abort took the wakers already: poll again, and stop then.
            drop(waiting);
            waker.wake_by_ref();
            return;
        }
        match waiting.entry(id) {
            // Registered at an earlier wait: tokio's waker for a task stays the same.
            Entry::Occupied(mut e) => {
                if !e.get().will_wake(waker) {
                    e.insert(waker.clone());
                }
            }
            Entry::Vacant(e) => {
                e.insert(waker.clone());
                self.registered.fetch_add(1, Relaxed);
            }
        }
    }

    /// Removes the waker of the detached task that is ending, if it registered one.
    fn forget_waker(&self) {
        // Its own registration happened before (in its own polls): seen here.
        if self.registered.load(Acquire) == 0 {
            return;
        }
        let Some(id) = tokio::task::try_id() else {
            return;
        };
        let waker = {
            let mut waiting = lock(&self.waiting);
            let waker = waiting.remove(&id);
            if waker.is_some() {
                self.registered.fetch_sub(1, Relaxed);
            }
            if waiting.is_empty() && waiting.capacity() > 64 {
                *waiting = HashMap::new(); // give a burst's memory back
            }
            waker
        };
        drop(waker); // tokio's waker: outside the lock all the same
    }

    /// A detached task panicked (its future is dropped and it is no longer pending; a
    /// count taken for it keeps `finish` waiting): the failure is logged and given to
    /// the policy, then that count settles, after what they queued.
    fn detached_failed(self: Arc<Self>, failure: Failure) {
        let tell = move |tracker: &Tracker| {
            // The context's logger is user code: a panic in it must not skip the
            // settle (finish would wait for ever).
            run_caught("task holder failure report", || {
                tracker.report.report(Some(&failure));
            });
            if let Some(policy) = &tracker.fail_fast {
                run_caught("task holder failure policy", || {
                    policy.failed(Some(&failure))
                });
            }
        };
        match callbacks::enter() {
            Enter::Outermost(drain) => {
                tell(&self);
                drain.run_queued(); // what the report and the policy queued
                self.settle_as(false);
                drop(drain);
            }
            Enter::Nested => callbacks::defer(Box::new(move || {
                tell(&self);
                callbacks::defer_last(Box::new(move || self.settle_as(false)));
            })),
        }
    }
}

pin_project_lite::pin_project! {
    /// A detached task's future. One `Option` around the user's future and the token,
    /// the token's pointer giving `None` its value (an `Option` around the future alone
    /// costs a word). Fields drop in declaration order: an aborted task's future is
    /// dropped before its token tells the holder.
    struct Detached<F: Future> {
        #[pin]
        running: Option<Running<F>>,
    }
}

pin_project_lite::pin_project! {
    struct Running<F: Future> {
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
        token: Token,
    }
}

impl<F: Future> Future for Detached<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut running = self.project().running;
        let Some(this) = running.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let this = this.project();
        let tracker = &this.token.tracker;
        let panicked = if tracker.aborted.load(Acquire) {
            // Aborted: the future is dropped (unpolled, if this is its first turn).
            None
        } else {
            match this.fut.poll(cx) {
                Poll::Pending => {
                    if let Some(id) = tokio::task::try_id() {
                        tracker.register(id, cx.waker());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(output)) => {
                    // Nobody joins it: dropped (user code, caught) while the task counts.
                    if std::mem::needs_drop::<F::Output>() {
                        run_caught("dropping a detached task's output", || drop(output));
                    }
                    None
                }
                Poll::Ready(Err(panic)) => {
                    let failure = Failure::Error(Error::from_panic(panic));
                    let tracker = tracker.clone();
                    tracker.unsettled.add(); // `finish` waits until it is reported
                    Some((tracker, failure))
                }
            }
        };
        // The future (user code: caught), then the token, which tells the holder.
        run_caught("dropping a detached task's future", || running.set(None));
        if let Some((tracker, failure)) = panicked {
            tracker.detached_failed(failure);
        }
        Poll::Ready(())
    }
}

/// `fut` holding a slot of the limit until it is dropped.
async fn with_slot<F: Future>(slot: OwnedSemaphorePermit, fut: F) -> F::Output {
    let _slot = slot;
    fut.await
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
        let turn = match self.tracker.limit {
            None => super::Turn::default(),
            Some(_) => self.turn(None),
        };
        let token = Token {
            tracker: self.tracker.clone(),
        };
        // Under a limit the slot is held by the future, given back when it is dropped.
        match (turn.permit, turn.wait, &self.tracker.limit) {
            (Some(permit), _, _) => self.spawn_body(with_slot(permit, fut), token),
            (None, true, Some(limit)) => {
                self.spawn_body(limited(limit.clone(), fut, None), token);
            }
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
            running: Some(Running {
                fut: AssertUnwindSafe(fut).catch_unwind(),
                token,
            }),
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
    /// Nothing is allocated beside tokio's own task and no lock is taken to spawn or end
    /// it (a [`spawn`](Self::spawn) also allocates the handle's shared state and holds it
    /// in the holder), so use it when nobody joins the task's output, reads its outcome
    /// or registers callbacks on it: its output is dropped when it finishes. Every holder
    /// rule holds for it as for `spawn`: `finish` waits for it; a done context,
    /// [`TaskHolder::cancel_all`](super::TaskHolder::cancel_all) or dropping the holder
    /// stops it (its future is dropped, so its `Drop` cleanup runs, before the holder
    /// counts it finished); a panic is caught and logged through the holder's context,
    /// and counts as a failure under [`fail_fast`](super::TaskHolderBuilder::fail_fast);
    /// the [limit](super::TaskHolderBuilder::limit) applies; [`pending`](Self::pending)
    /// and [`len`](Self::len) count it.
    ///
    /// What it costs: tokio's task, the holder's count (one atomic add and subtract)
    /// and, each time its future waits, a lock to register its waker for an abort. A
    /// task that waits a million times takes that lock a million times: for long-lived
    /// work that waits often, `spawn` (which locks only to add and release the task)
    /// or [`spawn_scoped`](Self::spawn_scoped) fits better.
    ///
    /// Having no handle, it is not listed by [`iter`](Self::iter) (nor in a
    /// `ShutdownPlan` drain's report, which lists the held tasks), `contains` cannot ask
    /// for it, and a [`joinable`](super::TaskHolderBuilder::joinable) holder does not hand
    /// it out from `join_next`.
    ///
    /// # Refused work
    /// On a finished holder, or one whose context is done, `fut` is dropped unpolled
    /// (a panic in its `Drop` is caught and logged) and this returns `false`. The
    /// result is `#[must_use]`: a refusal is never silent (assert it, or branch on it).
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
    ///     let held = ts.spawn_detached(async move {
    ///         done.fetch_add(1, Relaxed);
    ///     });
    ///     assert!(held); // `false`: the holder was closed, the future dropped unrun
    /// }
    /// assert_eq!(ts.pending(), 1000);
    /// ts.finish().await;
    /// assert_eq!(done.load(Relaxed), 1000);
    /// # }
    /// ```
    #[track_caller]
    #[must_use = "`false` means the holder was closed and dropped the future unrun \
                  (`try_spawn_detached` gives it back)"]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body_size<F: Future>(_: &F) -> usize {
        std::mem::size_of::<Detached<F>>()
    }

    /// The body is the future plus one pointer, as tokio-util's tracked future: tokio's
    /// cell grows in steps of 128 bytes, so a word more can double it.
    #[test]
    fn the_body_is_the_future_plus_a_pointer() {
        let i = 5usize;
        let fut = async move {
            std::hint::black_box(i);
        };
        assert_eq!(body_size(&fut), std::mem::size_of_val(&fut) + 8);
    }
}
