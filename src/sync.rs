//! Synchronisation primitives behind one path.
//!
//! Every concurrent core of the crate takes its atomics, `Mutex` and `Condvar` from here,
//! so the loom model tests (`RUSTFLAGS="--cfg machinery_loom"`; a name of our own, since a global `--cfg loom` also switches tokio and event-listener into their own loom modes) check the real code without a
//! rewrite. `Arc` and `Weak` are always std's: loom's `Arc` has no `Weak`, and the races
//! that matter (finishing, registering, unregistering) all go through the mutexes and the
//! state atomics modelled here.

#[cfg(machinery_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};
/// Per-thread state (the deferred-finishing queue): loom's under loom, where model
/// threads share one OS thread.
#[cfg(machinery_loom)]
pub(crate) use loom::thread_local;
#[allow(unused_imports)]
pub(crate) use std::sync::{Arc, Weak};
#[cfg(not(machinery_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};
#[cfg(not(machinery_loom))]
pub(crate) use std::thread_local;

/// Locks `m`, ignoring poison.
///
/// No user code ever runs while one of our locks is held (callbacks run after the guard
/// is dropped), so a poisoned lock can only come from a bug of ours that already
/// panicked; the data it guards is still consistent at every await-free step.
#[cfg(not(machinery_loom))]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks `m` (loom's mutex does not poison).
#[cfg(machinery_loom)]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}
