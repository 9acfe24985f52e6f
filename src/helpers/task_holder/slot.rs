//! Backpressure: [`reserve`](TaskHolderHandle::reserve) waits for a free slot under the
//! holder's [`limit`](super::TaskHolderBuilder::limit) before anything is added, so a
//! producer never runs ahead of the work (`spawn` never waits: under a limit, extra
//! tasks queue inside the holder).
//!
//! A holder with a limit then replaces `stream.map(f).buffer_unordered(n)`: at most `n`
//! tasks are held at any moment (`pending()` never exceeds `n` on account of tasks
//! spawned through slots: a slot is given back only after its task was released).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use tokio::sync::OwnedSemaphorePermit;

use super::{Inner, JoinHolderHandle, Refused, TaskHolderHandle};
use crate::helpers::ctx::Ctx;
use crate::helpers::task::Task;
use crate::sync::Arc;

impl Inner {
    /// A free slot (`None`: no limit, or the holder's context is done: what is added
    /// with it is then refused).
    async fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        let limit = self.tracker.limit.as_ref()?;
        if let Ok(permit) = limit.clone().try_acquire_owned() {
            return Some(permit);
        }
        tokio::select! {
            biased;
            // The semaphore is never closed.
            permit = limit.clone().acquire_owned() => permit.ok(),
            _ = self.ctx.wait() => None,
        }
    }
}

impl TaskHolderHandle {
    /// Waits for a free slot under the holder's [`limit`](super::TaskHolderBuilder::limit)
    /// and returns it, to add one task with at once (no waiting inside the holder).
    ///
    /// Without a limit it returns at once. It also returns once the holder's context is
    /// done; the slot's work is then refused, as every add on a closed holder. A slot
    /// counts against the limit until its task is released (or the slot is dropped
    /// unused), so tasks added through slots never make `pending()` exceed the limit.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing has been handed in yet, and dropping the future gives up
    /// its place in the queue of waiters (a slot it had taken goes back).
    pub async fn reserve(&self) -> Slot {
        Slot {
            permit: self.inner.reserve().await,
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> JoinHolderHandle<T> {
    /// Waits for a free slot; see [`TaskHolderHandle::reserve`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn reserve(&self) -> JoinSlot<T> {
        JoinSlot {
            slot: self.untyped().reserve().await,
            _output: PhantomData,
        }
    }
}

/// A slot under a holder's limit, taken by [`TaskHolderHandle::reserve`]: adds one task
/// that starts at once.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let js = hp::TaskHolder::builder(&ctx).limit(4).build_joinable::<u64>();
/// let mut sum = 0;
/// for item in 0..100u64 {
///     let slot = js.reserve().await; // waits while 4 tasks are held
///     slot.spawn(async move { item * 2 });
///     assert!(js.pending() <= 4);
///     while let Some(done) = js.try_join_next() {
///         sum += done.unwrap();
///     }
/// }
/// while let Some(done) = js.join_next().await {
///     sum += done.unwrap();
/// }
/// assert_eq!(sum, 9900);
/// # }
/// ```
///
/// # Drop
/// Dropping it unused gives the slot back.
#[must_use = "a slot holds a place under the limit until it is used or dropped"]
pub struct Slot {
    inner: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("holder", &self.inner.ctx.name())
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Spawns `fut` in this slot; see [`TaskHolderHandle::spawn`] (refused work
    /// included: the slot goes back).
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn<T, F>(self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.spawn_as(fut, true)
    }

    /// Like [`spawn`](Self::spawn), without logging failures.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_silent<T, F>(self, fut: F) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.spawn_as(fut, false)
    }

    /// Spawns `fut` in this slot, or gives it back on a closed holder (the slot goes
    /// back too).
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    ///
    /// # Example
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let ts = hp::TaskHolder::builder(&ctx).limit(2).build();
    /// let slot = ts.reserve().await;
    /// ctx.cancel(); // the holder closes while the slot is in hand
    /// let refused = slot.try_spawn(async { "item 7" }).unwrap_err();
    /// assert_eq!(refused.into_inner().await, "item 7");
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn<T, F>(self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.inner.try_spawn(fut, true, Some(self.permit))
    }

    /// Spawns `work(ctx)` in this slot; see [`TaskHolderHandle::spawn_scoped`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_scoped<T, F, Fut>(self, name: impl Into<Cow<'static, str>>, work: F) -> Task<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let name = name.into();
        match self
            .inner
            .try_scoped(name.clone(), work, true, Some(self.permit))
        {
            Ok(task) => task,
            Err(r) => self.inner.refuse(Some(&name), r.into_inner()),
        }
    }

    /// Spawns `work(ctx)` in this slot, or gives `work` back uncalled on a closed holder.
    ///
    /// # Errors
    /// [`Refused`] holding `work` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn try_spawn_scoped<T, F, Fut>(
        self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Task<T>, Refused<F>>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.inner
            .try_scoped(name.into(), work, true, Some(self.permit))
    }

    #[track_caller]
    fn spawn_as<T, F>(self, fut: F, report: bool) -> Task<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        match self.inner.try_spawn(fut, report, Some(self.permit)) {
            Ok(task) => task,
            Err(r) => self.inner.refuse(None, r.into_inner()),
        }
    }
}

/// A slot under a [`JoinHolder<T>`](super::JoinHolder)'s limit, taken by
/// [`JoinHolderHandle::reserve`]; as [`Slot`], for tasks that output a `T`.
///
/// # Drop
/// Dropping it unused gives the slot back.
#[must_use = "a slot holds a place under the limit until it is used or dropped"]
pub struct JoinSlot<T> {
    slot: Slot,
    _output: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JoinSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.slot, f)
    }
}

impl<T: Send + 'static> JoinSlot<T> {
    /// Spawns `fut` in this slot; see [`Slot::spawn`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.slot.spawn(fut)
    }

    /// Spawns `fut` without logging failures; see [`Slot::spawn_silent`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_silent<F>(self, fut: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.slot.spawn_silent(fut)
    }

    /// Spawns `fut`, or gives it back on a closed holder; see [`Slot::try_spawn`].
    ///
    /// # Errors
    /// [`Refused`] holding `fut` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn try_spawn<F>(self, fut: F) -> Result<Task<T>, Refused<F>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.slot.try_spawn(fut)
    }

    /// Spawns `work(ctx)` in this slot; see [`Slot::spawn_scoped`].
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn spawn_scoped<F, Fut>(self, name: impl Into<Cow<'static, str>>, work: F) -> Task<T>
    where
        F: FnOnce(Ctx) -> Fut + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.slot.spawn_scoped(name, work)
    }

    /// Spawns `work(ctx)`, or gives `work` back; see [`Slot::try_spawn_scoped`].
    ///
    /// # Errors
    /// [`Refused`] holding `work` when the holder has finished or its context is done.
    ///
    /// # Panics
    /// Without a tokio runtime.
    #[track_caller]
    pub fn try_spawn_scoped<F, Fut>(
        self,
        name: impl Into<Cow<'static, str>>,
        work: F,
    ) -> Result<Task<T>, Refused<F>>
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.slot.try_spawn_scoped(name, work)
    }
}
