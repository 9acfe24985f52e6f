//! Live-object counters for leak tests (cargo feature `leak-counters`).
//!
//! The crate's promise is that nothing outlives the scope that made it: a context
//! whose handles and guards are gone is freed, a finished task's state is freed once its
//! handles are dropped, a queue's shared core goes with its last handle, a task holder's
//! state goes with the holder, a queue manager's with its streamer and feeders. These counters make that checkable: each counts the
//! objects of one kind alive right now, process-wide.
//!
//! They exist only with the `leak-counters` feature. Without it the counting fields are
//! zero-sized and no code runs, so release builds pay nothing. The crate's own tests
//! turn it on through a dev-dependency on itself; `cargo bench` builds therefore count
//! too (one relaxed atomic add per object created and dropped).
//!
//! Counts are process-wide: a test that asserts they return to zero must not run beside
//! other tests that create these objects (put it in its own test binary, one test per
//! binary or serialized).
//!
//! # Example
//! (Needs the feature; the crate's own doctests have it through the dev-dependency. A
//! standalone doctest: the merged ones share one process and its counters.)
//! ```standalone_crate
//! use machinery::helpers as hp;
//!
//! let before = hp::debug::live_contexts();
//! {
//!     let root = hp::Ctx::beginning("app");
//!     let _child = root.child("work").drop_guard();
//!     assert_eq!(hp::debug::live_contexts(), before + 2);
//! }
//! assert_eq!(hp::debug::live_contexts(), before);
//! ```

#[cfg(feature = "leak-counters")]
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Context tree nodes (`Ctx`) alive.
pub(crate) const CONTEXTS: usize = 0;
/// Task states (`Task` handles or running task bodies) alive.
pub(crate) const TASKS: usize = 1;
/// Queue cores (async and sync queues) alive.
pub(crate) const QUEUES: usize = 2;
/// Task holder states alive.
pub(crate) const HOLDERS: usize = 3;
/// Queue manager cores alive.
pub(crate) const MANAGERS: usize = 4;

// Std atomics, not `crate::sync`'s: a process-wide static outside every loom model.
#[cfg(feature = "leak-counters")]
static LIVE: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];

/// A field that counts its owner as alive of kind `K` (zero-sized without the feature).
pub(crate) struct Live<const K: usize>(());

impl<const K: usize> Live<K> {
    #[inline]
    pub(crate) fn new() -> Self {
        // Relaxed: a statistic; tests read it after joining every thread involved.
        #[cfg(feature = "leak-counters")]
        LIVE[K].fetch_add(1, Relaxed);
        Live(())
    }
}

#[cfg(feature = "leak-counters")]
impl<const K: usize> Drop for Live<K> {
    fn drop(&mut self) {
        LIVE[K].fetch_sub(1, Relaxed);
    }
}

#[cfg(feature = "leak-counters")]
fn get(kind: usize) -> usize {
    LIVE[kind].load(Relaxed)
}

/// How many contexts (nodes of the context tree) are alive now.
#[cfg(feature = "leak-counters")]
pub fn live_contexts() -> usize {
    get(CONTEXTS)
}

/// How many task states are alive now: a task's state lives while its body runs or a
/// handle (`Task`, `AnyTask`, a holder's entry) refers to it.
#[cfg(feature = "leak-counters")]
pub fn live_tasks() -> usize {
    get(TASKS)
}

/// How many queues (async and sync) are alive now, counted by their shared core, which
/// lives while the queue or any producer handle does.
#[cfg(feature = "leak-counters")]
pub fn live_queues() -> usize {
    get(QUEUES)
}

/// How many task holders are alive now, counted by their shared state.
#[cfg(feature = "leak-counters")]
pub fn live_holders() -> usize {
    get(HOLDERS)
}

/// How many queue managers are alive now, counted by their shared core, which lives
/// while the streamer or any feeder does.
#[cfg(feature = "leak-counters")]
pub fn live_managers() -> usize {
    get(MANAGERS)
}
