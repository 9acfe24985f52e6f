//! The tasks a holder keeps, in the order they were added.
//!
//! A holder with a million short tasks pending at once adds and releases a task per
//! microsecond, so this is its hot path. A hash map keyed by task id spent more time
//! growing, shrinking and probing than the tasks took to run. Here each added task gets a
//! sequence number and its entry is pushed to the back of a deque, so entries stay in
//! sequence (= insertion) order. A task's done callback carries its sequence number, and
//! release finds the entry at `seq - front.seq` (one comparison) unless a compaction moved
//! it (then a binary search). Removing leaves a tombstone: tombstones at either end are
//! popped at once, and the deque is compacted once tombstones outnumber live entries, so
//! memory stays proportional to the pending tasks. Iteration is in insertion order without
//! sorting. `contains` is a binary search by id while ids were added in increasing order
//! (tasks added as they are spawned), else a scan.

use std::collections::VecDeque;

use crate::helpers::task::{AnyTask, TaskId};

/// 32 bytes: the entries are the holder's memory per pending task.
struct Entry {
    /// The sequence number, and [`ABORTABLE`] (false for scoped work, which watches the
    /// holder's context instead).
    seq: u64,
    id: TaskId,
    /// `None` once released (a tombstone keeps `seq` and `id` so both stay sorted).
    task: Option<AnyTask>,
}

/// The bit of `Entry::seq` that marks a task the holder may abort (sequence numbers stay
/// below it: a holder adding a task per nanosecond would take 290 years to reach it).
const ABORTABLE: u64 = 1 << 63;

impl Entry {
    fn seq(&self) -> u64 {
        self.seq & !ABORTABLE
    }
}

/// The held tasks; see the module docs.
pub(super) struct Held {
    entries: VecDeque<Entry>,
    live: usize,
    next_seq: u64,
    /// Every entry's id is greater than the one before it.
    ids_sorted: bool,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            entries: VecDeque::new(),
            live: 0,
            next_seq: 0,
            ids_sorted: true,
        }
    }
}

impl Held {
    /// The sequence number the next `insert` returns.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Holds `task`; returns the sequence number to release it by.
    pub(super) fn insert(&mut self, task: AnyTask, id: TaskId, abortable: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.back().is_some_and(|last| last.id >= id) {
            self.ids_sorted = false;
        }
        let flag = if abortable { ABORTABLE } else { 0 };
        self.entries.push_back(Entry {
            seq: seq | flag,
            id,
            task: Some(task),
        });
        self.live += 1;
        seq
    }

    /// Releases the entry added under `seq`; `None` if it was already released.
    pub(super) fn remove(&mut self, seq: u64) -> Option<AnyTask> {
        let front = self.entries.front()?.seq();
        if front == seq {
            // Released in the order added, the common case: the entry goes at once (the
            // front entry is never a tombstone, those are popped as they appear).
            let task = self.entries.pop_front()?.task?;
            self.live -= 1;
            // Popping a live front entry adds no tombstone: only a tombstone now at the
            // front, an empty deque or a mostly unused buffer needs `trim`.
            let front_is_live = self.entries.front().is_some_and(|e| e.task.is_some());
            if !front_is_live || self.entries.capacity() > 4 * self.entries.len().max(16) {
                self.trim();
            }
            return Some(task);
        }
        let hint = usize::try_from(seq.checked_sub(front)?).ok()?;
        let i = match self.entries.get(hint) {
            Some(e) if e.seq() == seq => hint,
            _ => self.entries.binary_search_by_key(&seq, Entry::seq).ok()?,
        };
        let task = self.entries[i].task.take()?;
        self.live -= 1;
        self.trim();
        Some(task)
    }

    /// Drops tombstones at the ends; compacts when they outnumber live entries.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|e| e.task.is_none()) {
            self.entries.pop_front();
        }
        while self.entries.back().is_some_and(|e| e.task.is_none()) {
            self.entries.pop_back();
        }
        if self.entries.len() > 8 && self.live * 2 < self.entries.len() {
            self.entries.retain(|e| e.task.is_some());
            let mut ids = self.entries.iter().map(|e| e.id);
            let first = ids.next();
            self.ids_sorted = ids
                .try_fold(first, |prev, id| (prev < Some(id)).then_some(Some(id)))
                .is_some();
        }
        if self.entries.is_empty() {
            self.ids_sorted = true;
        }
        // Give memory back after a burst: shrink when three quarters are unused.
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    /// How many tasks are held.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether a task with this id is held.
    pub(super) fn contains(&self, id: TaskId) -> bool {
        if self.ids_sorted {
            self.entries
                .binary_search_by_key(&id, |e| e.id)
                .is_ok_and(|i| self.entries[i].task.is_some())
        } else {
            self.entries.iter().any(|e| e.id == id && e.task.is_some())
        }
    }

    /// The held tasks in insertion order.
    pub(super) fn tasks(&self) -> Vec<AnyTask> {
        self.entries.iter().filter_map(|e| e.task.clone()).collect()
    }

    /// The held tasks the holder may abort, in insertion order.
    pub(super) fn abortable(&self) -> Vec<AnyTask> {
        let entries = self.entries.iter().filter(|e| e.seq & ABORTABLE != 0);
        entries.filter_map(|e| e.task.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::task::Task;

    #[test]
    fn an_entry_is_four_words() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[tokio::test]
    async fn keeps_order_finds_by_id_and_compacts() {
        let tasks: Vec<Task<()>> = (0..100)
            .map(|_| Task::spawn(std::future::pending()))
            .collect();
        let mut held = Held::default();
        let seqs: Vec<u64> = tasks
            .iter()
            .map(|t| held.insert(t.erased(), t.id(), true))
            .collect();
        // Release every task but the first and the last, out of order.
        for &s in seqs[1..99].iter().rev().step_by(2) {
            assert!(held.remove(s).is_some());
        }
        for &s in seqs[1..99].iter().step_by(2) {
            assert!(held.remove(s).is_some());
            assert!(held.remove(s).is_none(), "released once");
        }
        assert_eq!(held.len(), 2);
        assert!(held.entries.len() <= 8, "compacted: {}", held.entries.len());
        assert!(held.contains(tasks[0].id()) && held.contains(tasks[99].id()));
        assert!(!held.contains(tasks[50].id()));
        let ids: Vec<TaskId> = held.tasks().iter().map(AnyTask::id).collect();
        assert_eq!(ids, [tasks[0].id(), tasks[99].id()]);
        // An older task added last: ids are no longer sorted, lookups still work.
        let s = held.insert(tasks[50].erased(), tasks[50].id(), false);
        assert!(held.contains(tasks[50].id()) && held.contains(tasks[0].id()));
        assert_eq!(held.abortable().len(), 2);
        assert!(held.remove(s).is_some() && !held.contains(tasks[50].id()));
        assert!(held.remove(seqs[0]).is_some() && held.remove(seqs[99]).is_some());
        assert!(held.is_empty() && held.entries.is_empty());
        for t in &tasks {
            t.cancel();
        }
    }
}
