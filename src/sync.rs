//! Synchronisation primitives behind one path.
//!
//! Every concurrent core of the crate takes its atomics, `Mutex` and `Condvar` from here,
//! so the loom model tests (the `loom-model` feature, which build.rs turns into
//! `cfg(machinery_loom)`: a name of our own, since a global `--cfg loom` also switches
//! tokio and event-listener into their own loom modes)
//! check the real code without a rewrite (the per-thread finishing queue in `callbacks.rs`
//! is loom's `thread_local!` under loom, where model threads share one OS thread). `Arc`
//! and `Weak` are always std's: loom's `Arc` has no `Weak`, and the races that matter
//! (finishing, registering, unregistering) all go through the mutexes and the state
//! atomics modelled here.
//!
//! Outside the models the locks are `parking_lot`'s: lock and unlock are one atomic
//! each, with none of std's poison bookkeeping (std's `Mutex` reads the global panic
//! count on both). Poison never mattered here: no user code runs while one of our locks
//! is held, and the old `lock` ignored it. Measured with callgrind: the sync queue went
//! from 160 to 124 instructions per item and the queue manager from 756 to 729 per
//! result with this change alone (docs/BENCHMARKS.md).

use std::time::Duration;

#[cfg(machinery_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize},
};
#[cfg(not(machinery_loom))]
#[allow(unused_imports)]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(machinery_loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
#[allow(unused_imports)]
pub(crate) use std::sync::{Arc, Weak};

/// Locks `m` (`parking_lot`'s mutex does not poison).
#[cfg(not(machinery_loom))]
#[inline]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// Locks `m` (loom's mutex does not poison).
#[cfg(machinery_loom)]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}

/// The data of a mutex its owner has `&mut` access to (a `Drop`): no locking needed.
#[cfg(not(machinery_loom))]
#[inline]
pub(crate) fn get_mut<T: ?Sized>(m: &mut Mutex<T>) -> &mut T {
    m.get_mut()
}

/// The data of a mutex its owner has `&mut` access to (loom: through its lock).
#[cfg(machinery_loom)]
pub(crate) fn get_mut<T>(m: &mut Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}

/// Waits on `cond` for `timeout` (zero: until notified); spurious wake-ups allowed.
#[cfg(not(machinery_loom))]
#[allow(dead_code)]
pub(crate) fn wait<'g, T>(
    cond: &Condvar,
    mut guard: MutexGuard<'g, T>,
    timeout: Duration,
) -> MutexGuard<'g, T> {
    if timeout.is_zero() {
        cond.wait(&mut guard);
    } else {
        // A `timeout` too large for an instant waits without a deadline.
        cond.wait_for(&mut guard, timeout);
    }
    guard
}

/// Waits on `cond` for `timeout` (zero: until notified); spurious wake-ups allowed.
#[cfg(machinery_loom)]
#[allow(dead_code)]
pub(crate) fn wait<'g, T>(
    cond: &Condvar,
    guard: MutexGuard<'g, T>,
    timeout: Duration,
) -> MutexGuard<'g, T> {
    if timeout.is_zero() {
        cond.wait(guard).unwrap()
    } else {
        cond.wait_timeout(guard, timeout).unwrap().0
    }
}
