//! Synchronisation primitives behind one path.
//!
//! Every concurrent core of the crate takes its atomics, `Mutex` and `Condvar` from here,
//! so the loom model tests (`RUSTFLAGS="--cfg machinery_loom"`; a name of our own, since a global `--cfg loom` also switches tokio and event-listener into their own loom modes) check the real code without a
//! rewrite (the per-thread finishing queue in `callbacks.rs` is loom's `thread_local!`
//! under loom, where model threads share one OS thread). `Arc` and `Weak` are always std's: loom's `Arc` has no `Weak`, and the races
//! that matter (finishing, registering, unregistering) all go through the mutexes and the
//! state atomics modelled here.

#[cfg(machinery_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};
#[allow(unused_imports)]
pub(crate) use std::sync::{Arc, Weak};
#[cfg(not(machinery_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};

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

/// The data of a mutex its owner has `&mut` access to (a `Drop`): no locking needed.
#[cfg(not(machinery_loom))]
pub(crate) fn get_mut<T: ?Sized>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The data of a mutex its owner has `&mut` access to (loom: through its lock).
#[cfg(machinery_loom)]
pub(crate) fn get_mut<T>(m: &mut Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}
