//! Synchronisation primitives behind one path.
//!
//! Every concurrent core of the crate takes its atomics, `Arc` and `Mutex` from here, so
//! the loom model tests (`RUSTFLAGS="--cfg loom"`) check the real code without a rewrite.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard, Weak,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, Weak,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};

/// Locks `m`, ignoring poison.
///
/// No user code ever runs while one of our locks is held (callbacks run after the guard
/// is dropped), so a poisoned lock can only come from a bug of ours that already
/// panicked; the data it guards is still consistent at every await-free step.
#[cfg(not(loom))]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks `m` (loom's mutex does not poison).
#[cfg(loom)]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}
