//! The mutex of the manager's state: `parking_lot`'s, whose lock and unlock are one
//! atomic each with no poison bookkeeping (std's `Mutex` reads the global panic count
//! on both; callgrind: about 10 instructions of the two locks a result takes), and
//! loom's under `--cfg machinery_loom` (as `crate::sync`), so the model tests still
//! check this code. Poison never mattered here: no user code runs under the lock
//! (invariant 4), and `crate::sync::lock` ignored it.

#[cfg(machinery_loom)]
pub(crate) use crate::sync::{Mutex, MutexGuard, lock};

#[cfg(not(machinery_loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard};

/// Locks `m`.
#[cfg(not(machinery_loom))]
#[inline]
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}
