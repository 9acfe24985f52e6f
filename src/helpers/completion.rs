//! The write-once outcome slot with done callbacks shared by [`Fut`](super::Fut) and
//! [`Task`](super::Task).
//!
//! # Invariants
//! 1. `outcome` is set at most once, and only while `extra` (the callbacks) is locked.
//! 2. Setting `outcome` takes the callbacks; the completion is then *firing* until the
//!    last of them starts (they may be queued behind other finishing work). A
//!    registration that finds the outcome set is stored while firing (the runner takes it
//!    before the last one starts, so it runs after them: CTX 3) and runs at once
//!    otherwise (added by the last one, or later).
//! 3. No lock is held while a callback runs or while a user value (a callback that
//!    is removed, an outcome that is refused) is dropped.
//! 4. Callbacks run through [`run_or_defer`]: a completion made from inside another
//!    completion's callbacks stores its outcome at once and queues its callbacks for the
//!    outermost call on this thread, so chains of any length run in constant stack.

use std::sync::{Arc, OnceLock};

use super::callbacks::{CallbackList, Enter, defer, enter, run_added, run_caught, run_or_defer};
use super::error::{Error, Failure, Outcome, StatusError};
use super::protocols::{CallbackHandle, DoneCallback, FutureState};
use crate::sync::{Mutex, get_mut, lock};

/// A typed done callback.
pub(crate) type OutcomeCallback<T> = Box<dyn FnOnce(&Outcome<T>) + Send + 'static>;

/// An owner told by key, with the failure if any, that something it watches finished,
/// without an allocation per registration (a task holder releasing a task: a boxed
/// closure per task cost as much as the rest of the holder's bookkeeping).
pub(crate) trait DoneHook: Send + Sync {
    fn on_done(&self, key: u64, failure: Option<&Failure>);
}

/// One registration: a boxed callback, one that only learns that it finished, or an
/// owner's hook.
pub(crate) enum Callback<T> {
    Boxed(OutcomeCallback<T>),
    Done(DoneCallback),
    Hook(Arc<dyn DoneHook>, u64),
}

impl<T> Callback<T> {
    fn call(self, outcome: &Outcome<T>) {
        match self {
            Callback::Boxed(cb) => cb(outcome),
            Callback::Done(cb) => cb(),
            Callback::Hook(owner, key) => owner.on_done(key, outcome.as_ref().err()),
        }
    }
}

/// The callbacks a completion hands over when it is set (see [`Completion::set_outcome`]).
pub(crate) type Callbacks<T> = CallbackList<Callback<T>, 1>;

/// `T: 'static`: callbacks deferred to the outermost finishing call (invariant 4) refer
/// to the outcome after `complete` returned.
pub(crate) struct Completion<T: 'static> {
    outcome: OnceLock<Outcome<T>>,
    /// The callbacks and the name, allocated on first use: most tasks a holder spawns
    /// never get either (the holder's own hook is the task's link, not a callback), and
    /// a task's shared state is its memory per pending task.
    extra: Mutex<Option<Box<Extra<T>>>>,
}

/// What a completion allocates on first use.
struct Extra<T: 'static> {
    /// One entry inline: one awaiter (or one hook) needs no second allocation.
    callbacks: Callbacks<T>,
    name: Option<Arc<str>>,
    /// Invariant 2: the outcome is set and the callbacks it took have not all started.
    firing: bool,
}

impl<T> Extra<T> {
    fn new() -> Box<Self> {
        Box::new(Extra {
            callbacks: CallbackList::default(),
            name: None,
            firing: false,
        })
    }
}

impl<T> Completion<T> {
    pub(crate) fn new(name: Option<Arc<str>>) -> Self {
        let extra = name.map(|name| {
            let mut extra = Extra::new();
            extra.name = Some(name);
            extra
        });
        Completion {
            outcome: OnceLock::new(),
            extra: Mutex::new(extra),
        }
    }

    /// One atomic load (OnceLock's Acquire pairs with the Release of its `set`).
    pub(crate) fn done(&self) -> bool {
        self.outcome.get().is_some()
    }

    pub(crate) fn outcome(&self) -> Option<&Outcome<T>> {
        self.outcome.get()
    }

    /// Sets the outcome of the completion `get(owner)` unless already set; runs the
    /// callbacks after unlocking (queued, when called from inside finishing work).
    ///
    /// Takes the owner (the `Arc` the completion lives in) so that deferred callbacks
    /// can still reach the outcome after this returns.
    pub(crate) fn complete<O: 'static>(
        owner: &Arc<O>,
        get: fn(&O) -> &Completion<T>,
        outcome: Outcome<T>,
    ) -> bool {
        let Some(callbacks) = get(owner).set_outcome(outcome) else {
            return false;
        };
        if callbacks.len() > 0 {
            let entered = enter();
            Self::run_taken(owner, get, callbacks, &entered);
            // Outermost: dropping the guard runs what the callbacks queued.
            drop(entered);
        }
        true
    }

    /// Sets the outcome unless already set, and takes the callbacks for
    /// [`run_taken`](Self::run_taken) (`None`, and nothing changed, when it was set).
    ///
    /// For an owner that runs more finishing work right after the callbacks (a task's
    /// settle hooks) under the same trampoline entry.
    #[inline]
    pub(crate) fn set_outcome(&self, outcome: Outcome<T>) -> Option<Callbacks<T>> {
        if self.done() {
            return None; // `outcome` is dropped here, with no lock held
        }
        let mut extra = lock(&self.extra);
        if let Err(refused) = self.outcome.set(outcome) {
            drop(extra);
            drop(refused); // a user value: dropped after unlocking
            return None;
        }
        Some(match extra.as_mut() {
            Some(extra) => {
                extra.firing = extra.callbacks.len() > 0;
                std::mem::take(&mut extra.callbacks)
            }
            None => CallbackList::default(),
        })
    }

    /// Runs the callbacks taken by [`set_outcome`](Self::set_outcome) from the completion
    /// `get(owner)`: inline by reference when `entered` is the outermost finishing call,
    /// queued for the outermost one when nested.
    pub(crate) fn run_taken<O: 'static>(
        owner: &Arc<O>,
        get: fn(&O) -> &Completion<T>,
        callbacks: Callbacks<T>,
        entered: &Enter,
    ) {
        match entered {
            Enter::Nested => {
                let owner = owner.clone();
                defer(Box::new(move || run_callbacks(get(&owner), callbacks)));
            }
            // Inline, by reference (no handle to clone).
            Enter::Outermost(_) => run_callbacks(get(owner), callbacks),
        }
    }

    /// Registers `cb` on the completion `get(owner)`; runs it at once if finished (queued
    /// for the outermost finishing call when made from inside one, so chains of
    /// "add to a finished future" links run in constant stack too).
    pub(crate) fn add_callback<O: 'static>(
        owner: &Arc<O>,
        get: fn(&O) -> &Completion<T>,
        key: Option<CallbackHandle>,
        cb: OutcomeCallback<T>,
    ) -> CallbackHandle {
        match get(owner).try_push(key, Callback::Boxed(cb)) {
            Ok(k) => k,
            Err(cb) => {
                let owner = owner.clone();
                run_added(move || {
                    let outcome = get(&owner).outcome.get().expect("finished");
                    run_caught("done callback", || cb.call(outcome));
                });
                key.unwrap_or_default()
            }
        }
    }

    /// Registers `cb`, which only learns that it finished (run at once if finished).
    pub(crate) fn add_done(&self, cb: DoneCallback) -> CallbackHandle {
        match self.try_push(None, Callback::Done(cb)) {
            Ok(k) => k,
            Err(cb) => {
                if let Callback::Done(cb) = cb {
                    run_added(move || {
                        run_caught("done callback", cb);
                    });
                }
                CallbackHandle::default()
            }
        }
    }

    /// Registers `owner.on_done(key)` as a done callback (run at once if finished).
    pub(crate) fn add_hook(&self, owner: Arc<dyn DoneHook>, key: u64) -> CallbackHandle {
        match self.try_push(None, Callback::Hook(owner, key)) {
            Ok(k) => k,
            Err(cb) => {
                if let Callback::Hook(owner, key) = cb {
                    let failure = self.outcome.get().and_then(|o| o.as_ref().err().cloned());
                    run_added(move || {
                        run_caught("done callback", || owner.on_done(key, failure.as_ref()));
                    });
                }
                CallbackHandle::default()
            }
        }
    }

    /// Stores `cb` unless finished; hands it back when finished.
    fn try_push(
        &self,
        key: Option<CallbackHandle>,
        cb: Callback<T>,
    ) -> Result<CallbackHandle, Callback<T>> {
        let mut extra = lock(&self.extra);
        // While firing, behind the callbacks the outcome took (invariant 2).
        if self.outcome.get().is_none() || extra.as_ref().is_some_and(|e| e.firing) {
            let extra = extra.get_or_insert_with(Extra::new);
            return Ok(extra.callbacks.push(key, cb));
        }
        drop(extra);
        Err(cb)
    }

    /// The callbacks added while firing, taken before the last known one runs; none ends
    /// the firing (invariant 2).
    fn take_late(&self) -> Callbacks<T> {
        let mut extra = lock(&self.extra);
        let Some(extra) = extra.as_mut() else {
            return CallbackList::default();
        };
        let late = std::mem::take(&mut extra.callbacks);
        extra.firing = late.len() > 0;
        late
    }

    pub(crate) fn remove_callback(&self, key: CallbackHandle) -> usize {
        let removed = lock(&self.extra)
            .as_mut()
            .and_then(|e| e.callbacks.remove(key));
        drop_removed(removed)
    }

    pub(crate) fn has_callback(&self, key: CallbackHandle) -> bool {
        lock(&self.extra)
            .as_ref()
            .is_some_and(|e| e.callbacks.contains(key))
    }

    pub(crate) fn cancelled(&self) -> bool {
        matches!(self.outcome.get(), Some(Err(Failure::Cancelled)))
    }

    pub(crate) fn exception(&self) -> Result<Option<Error>, StatusError> {
        match self.outcome.get() {
            None => Err(StatusError::Pending),
            Some(Ok(_)) => Ok(None),
            Some(Err(Failure::Cancelled)) => Err(StatusError::Cancelled),
            Some(Err(Failure::Error(e))) => Ok(Some(e.clone())),
        }
    }

    pub(crate) fn result(&self) -> Result<T, StatusError>
    where
        T: Clone,
    {
        match self.outcome.get() {
            None => Err(StatusError::Pending),
            Some(o) => o.clone().map_err(StatusError::from),
        }
    }

    pub(crate) fn set_name(&self, name: &str) {
        let name = Arc::from(name);
        let old = lock(&self.extra)
            .get_or_insert_with(Extra::new)
            .name
            .replace(name);
        drop(old);
    }

    pub(crate) fn name(&self) -> Option<Arc<str>> {
        lock(&self.extra).as_ref().and_then(|e| e.name.clone())
    }

    pub(crate) fn state(&self) -> FutureState {
        match self.outcome.get() {
            None => FutureState::Pending,
            Some(Ok(_)) => FutureState::Result,
            Some(Err(Failure::Cancelled)) => FutureState::Cancelled,
            Some(Err(Failure::Error(e))) => FutureState::Exception(e.clone()),
        }
    }
}

impl<T: 'static> Drop for Completion<T> {
    fn drop(&mut self) {
        // Callbacks that never ran (the future was dropped pending) may capture the next
        // future of a chain whose callbacks capture the next...: dropping them here would
        // recurse once per link, so the drop goes through the finishing loop.
        let Some(extra) = std::mem::take(&mut *get_mut(&mut self.extra)) else {
            return;
        };
        let callbacks = extra.callbacks;
        if callbacks.len() > 0 {
            run_or_defer(move || drop_each(callbacks));
        }
    }
}

/// Runs `callbacks` (taken from `completion` when its outcome was set) in order, each
/// under `run_caught`, then those added before the last of them started, until none is
/// left (invariant 2).
pub(crate) fn run_callbacks<T>(completion: &Completion<T>, mut callbacks: Callbacks<T>) {
    let outcome = completion.outcome.get().expect("set");
    if let Some(cb) = callbacks.take_single() {
        let late = completion.take_late();
        run_caught("done callback", || cb.call(outcome));
        if late.len() == 0 {
            return;
        }
        callbacks = late;
    }
    let mut next = callbacks.take().peekable();
    while let Some(cb) = next.next() {
        if next.peek().is_none() {
            // The last one known: take what was added meanwhile, or end the firing.
            next = completion.take_late().take().peekable();
        }
        run_caught("done callback", || cb.call(outcome));
    }
}

/// Drops a callback taken out of a list (after the list's lock was released), catching
/// a panic of what it captured; returns how many were removed (0 or 1).
pub(crate) fn drop_removed<F>(removed: Option<F>) -> usize {
    match removed {
        None => 0,
        Some(f) => {
            run_caught("dropping a removed callback", move || drop(f));
            1
        }
    }
}

/// Drops each callback of `list` on its own, catching a panic of what it captured (two
/// panicking `Drop`s in one list drop would abort the process).
pub(crate) fn drop_each<F, const N: usize>(mut list: CallbackList<F, N>) {
    for cb in list.take() {
        run_caught("dropping a callback that never ran", move || drop(cb));
    }
}
