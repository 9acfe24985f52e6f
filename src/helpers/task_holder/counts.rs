//! The tracker's counts, in one atomic word, so that a detached task is counted, and its
//! refusal by a closed holder decided, with one atomic operation and no lock (the
//! "spawn many, wait all" path must cost what tokio-util's `TaskTracker` costs).
//!
//! - bits 0..32: the unsettled tasks, every kind (what `finish` waits for);
//! - bits 32..63: the pending detached tasks (counted in `pending()` and `len()`; held
//!   tasks are counted by their entries);
//! - bit 63: closed, set only when nothing is unsettled (by `finish`, under the state
//!   lock), so a detached task counted before the close makes the close fail, and one
//!   counted after it sees the bit and is refused. (A refused task counted by a joinable
//!   holder until it is joined is counted after the close: "nothing unsettled" and
//!   "closed" are separate facts.)
//!
//! More than 2³² − 1 unsettled tasks at once are not supported (each has a tokio task of
//! at least 128 bytes: 512 GiB).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use crate::sync::AtomicU64;

const UNSETTLED: u64 = 1;
const DETACHED: u64 = 1 << 32;
const CLOSED: u64 = 1 << 63;
const UNSETTLED_MASK: u64 = DETACHED - 1;

/// See the module docs.
#[derive(Default)]
pub(super) struct Counts(AtomicU64);

impl Counts {
    /// One more unsettled task (a held or refused one; the caller checked, under the
    /// state lock, that the holder is open).
    pub(super) fn add(&self) {
        self.0.fetch_add(UNSETTLED, Relaxed);
    }

    /// One more detached task; `false` if the holder was closed (the caller then
    /// settles it at once: a joiner may be waiting for the count to drop back).
    pub(super) fn add_detached(&self) -> bool {
        self.0.fetch_add(UNSETTLED | DETACHED, Relaxed) & CLOSED == 0
    }

    /// A detached task is no longer pending (it still has to settle).
    pub(super) fn end_detached(&self) {
        self.0.fetch_sub(DETACHED, Relaxed);
    }

    /// A task settled (`detached`: a detached task that also stops being pending now);
    /// `true` when it was the last unsettled one.
    pub(super) fn settle(&self, detached: bool) -> bool {
        let n = if detached {
            UNSETTLED | DETACHED
        } else {
            UNSETTLED
        };
        // AcqRel: the task's effects happen before whoever sees the count reach zero.
        self.0.fetch_sub(n, AcqRel) & UNSETTLED_MASK == 1
    }

    /// Whether nothing is unsettled.
    pub(super) fn is_zero(&self) -> bool {
        self.0.load(Acquire) & UNSETTLED_MASK == 0
    }

    /// The pending detached tasks.
    pub(super) fn detached(&self) -> usize {
        let n = (self.0.load(Relaxed) & !CLOSED) >> 32;
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Closes the holder if nothing is unsettled (called under the state lock, which
    /// every other way of counting a task takes); whether it is closed now.
    pub(super) fn try_close(&self) -> bool {
        let cur = self.0.load(Acquire);
        if cur & UNSETTLED_MASK != 0 {
            return false;
        }
        if cur & CLOSED != 0 {
            return true;
        }
        // Fails if a detached task was counted meanwhile (it is then waited for).
        self.0
            .compare_exchange(cur, cur | CLOSED, AcqRel, Acquire)
            .is_ok()
    }
}
