//! Waiting for completion by callback: the future behind every `wait()` in the crate, and
//! `wait_for_first` / `wait_for_all`.
//!
//! A waiter registers one callback that wakes it, and removes that callback when it is
//! dropped, so abandoned waits (a `select!` branch that lost) leave nothing behind.
//!
//! # Example
//! ```
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let a = hp::Event::new();
//! let b = hp::Fut::<()>::new();
//! let (a2, b2) = (a.clone(), b.clone());
//! tokio::spawn(async move {
//!     a2.set();
//!     b2.set_result(());
//! });
//! hp::wait_for_all(&[&a, &b]).await;
//! assert!(a.is_set() && b.done());
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::protocols::{CallbackHandle, WaitByCallback};

/// Resolves when `W` is done. What every `wait()` of the crate returns under a name.
///
/// Once its callback has run it stays resolved, even if the target stops being "done"
/// afterwards (an [`Event`](super::Event) set and cleared before the waiter runs again),
/// as asyncio's `Event.wait` does.
///
/// # Cancel safety
/// Cancel safe: dropping it removes its callback and consumes nothing.
#[must_use = "futures do nothing unless polled"]
pub struct WaitDone<W: WaitByCallback> {
    target: W,
    registered: Option<(CallbackHandle, Arc<Wake>)>,
}

/// What the registered callback shares with the waiter.
#[derive(Default)]
pub(crate) struct Wake {
    fired: AtomicBool,
    pub(crate) waker: AtomicWaker,
}

impl Wake {
    /// What the callback does: mark fired, wake the waiter.
    pub(crate) fn fire(&self) {
        // Release: pairs with the Acquire load in `fired`.
        self.fired.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the callback ran.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

impl<W: WaitByCallback> std::fmt::Debug for WaitDone<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitDone")
            .field("done", &self.target.done())
            .finish()
    }
}

impl<W: WaitByCallback> WaitDone<W> {
    /// Waits for `target`.
    pub fn new(target: W) -> Self {
        WaitDone {
            target,
            registered: None,
        }
    }

    /// What is being waited for.
    pub fn target(&self) -> &W {
        &self.target
    }

    /// Whether the target is done, or our callback already ran (it removed itself).
    fn finished(&mut self) -> bool {
        let fired = matches!(&self.registered, Some((_, w)) if w.fired());
        if fired || self.target.done() {
            self.registered = None; // the callback ran (or runs now) and removed itself
            return true;
        }
        false
    }
}

impl<W: WaitByCallback> Unpin for WaitDone<W> {}

impl<W: WaitByCallback> Future for WaitDone<W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.finished() {
            return Poll::Ready(());
        }
        match &self.registered {
            Some((_, wake)) => wake.waker.register(cx.waker()),
            None => {
                let wake = Arc::new(Wake::default());
                wake.waker.register(cx.waker());
                let w = wake.clone();
                let handle = self.target.add_done_callback(Box::new(move || w.fire()));
                self.registered = Some((handle, wake));
            }
        }
        // Register, then check: a completion between the first check and the
        // registration ran our callback already, or is seen here.
        if self.finished() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<W: WaitByCallback> Drop for WaitDone<W> {
    fn drop(&mut self) {
        if let Some((handle, wake)) = self.registered.take()
            && !wake.fired()
        {
            self.target.remove_done_callback(handle);
        }
    }
}

/// Returns once at least one of `waits` is done.
///
/// With no arguments it returns at once. When one is already done it still yields to the
/// scheduler once before returning (the seed's `await asyncio.sleep(0)`). Only completion
/// is observed: no result is consumed.
///
/// # Cancel safety
/// Cancel safe: dropping it removes every callback it added.
pub async fn wait_for_first(waits: &[&dyn WaitByCallback]) {
    if waits.is_empty() {
        return;
    }
    if waits.iter().any(|w| w.done()) {
        tokio::task::yield_now().await;
        return;
    }
    Group::new(waits, 1).await
}

/// Returns once every one of `waits` is done.
///
/// With no arguments it returns at once; when all are already done it yields to the
/// scheduler once. Completion is counted per item, so two siblings finished through their
/// common parent both count.
///
/// # Cancel safety
/// Cancel safe: dropping it removes every callback it added.
pub async fn wait_for_all(waits: &[&dyn WaitByCallback]) {
    if waits.is_empty() {
        return;
    }
    let pending = waits.iter().filter(|w| !w.done()).count();
    if pending == 0 {
        tokio::task::yield_now().await;
        return;
    }
    Group::new(waits, waits.len()).await
}

/// Waits until `needed` of `waits` have finished.
struct Group<'a> {
    waits: &'a [&'a dyn WaitByCallback],
    needed: usize,
    shared: Arc<(AtomicUsize, AtomicWaker)>,
    handles: Vec<CallbackHandle>,
}

impl<'a> Group<'a> {
    fn new(waits: &'a [&'a dyn WaitByCallback], needed: usize) -> Self {
        Group {
            waits,
            needed,
            shared: Arc::new((AtomicUsize::new(0), AtomicWaker::new())),
            handles: Vec::new(),
        }
    }
}

impl Future for Group<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.1.register(cx.waker());
        if self.handles.is_empty() {
            let waits = self.waits;
            let handles = waits
                .iter()
                .map(|w| {
                    let shared = self.shared.clone();
                    w.add_done_callback(Box::new(move || {
                        // AcqRel: pairs with the Acquire load below, so the waiter that
                        // sees the count also sees what the finisher wrote before.
                        shared.0.fetch_add(1, Ordering::AcqRel);
                        shared.1.wake();
                    }))
                })
                .collect();
            self.handles = handles;
        }
        if self.shared.0.load(Ordering::Acquire) >= self.needed {
            Poll::Ready(()) // Drop removes the callbacks of the ones still pending
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        for (w, h) in self.waits.iter().zip(self.handles.drain(..)) {
            if !w.done() {
                w.remove_done_callback(h);
            }
        }
    }
}
