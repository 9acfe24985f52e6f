//! A parent's registry of its children: a slab of 8-byte entries.
//!
//! The `slab` crate's entry is an enum of the value and the next vacant key, 16 bytes for
//! an 8-byte `Weak`; a parent with a million live children kept 16 MB of entries, half of
//! it the enum's tag and key (measured: 8 of the 129 bytes per live child, and the page
//! faults that come with them). Here a vacant entry is a `None` (a `Weak` has a niche) and
//! the vacant keys sit on a stack of their own, which holds something only after
//! children were removed.
//!
//! # Invariants
//! 1. `len` is the number of `Some` entries; `free` holds each key of a `None` entry
//!    below `entries.len()` exactly once.
//! 2. Keys are reused last-freed first (as `slab` does), and a key is vacant only after
//!    its value was removed: a value's key is stable until it is removed.

/// Values under stable `usize` keys, 8 bytes per entry for an 8-byte `T` with a niche.
pub(crate) struct Slots<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// The key the next [`insert`](Self::insert) uses.
    #[inline]
    pub(crate) fn vacant_key(&self) -> usize {
        match self.free.last() {
            Some(&k) => k as usize,
            None => self.entries.len(),
        }
    }

    /// Stores `value` under [`vacant_key`](Self::vacant_key) and returns that key.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(k) => {
                self.entries[k as usize] = Some(value);
                k as usize
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    /// Takes the value under `key` out, if there is one.
    #[inline]
    pub(crate) fn try_remove(&mut self, key: usize) -> Option<T> {
        let value = self.entries.get_mut(key)?.take()?;
        self.len -= 1;
        // A key fits: keys are below `entries.len()`, and the caller caps them to u32.
        self.free.push(key as u32);
        Some(value)
    }

    /// The value under `key`, if there is one.
    #[inline]
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.entries.get(key)?.as_ref()
    }

    /// Every key is below this bound.
    pub(crate) fn key_bound(&self) -> usize {
        self.entries.len()
    }

    /// How many entries the registry has room for without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values with their keys, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn keys_are_stable_and_reused_last_freed_first() {
        let mut s = Slots::default();
        let keys: Vec<_> = (0..5).map(|i| s.insert(i * 10)).collect();
        assert_eq!(keys, [0, 1, 2, 3, 4]);
        assert_eq!(s.try_remove(1), Some(10));
        assert_eq!(s.try_remove(1), None);
        assert_eq!(s.try_remove(3), Some(30));
        assert_eq!(s.try_remove(99), None);
        assert_eq!(s.len(), 3);
        assert_eq!(s.vacant_key(), 3);
        assert_eq!(s.insert(31), 3);
        assert_eq!(s.vacant_key(), 1);
        assert_eq!(s.insert(11), 1);
        assert_eq!(s.vacant_key(), 5);
        assert_eq!(s.get(4), Some(&40));
        assert_eq!(
            s.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(),
            [(0, 0), (1, 11), (2, 20), (3, 31), (4, 40)]
        );
        assert_eq!(s.key_bound(), 5);
    }

    #[test]
    fn an_entry_of_a_weak_is_eight_bytes() {
        type W = std::sync::Weak<u64>;
        assert_eq!(std::mem::size_of::<Option<W>>(), 8);
    }
}
