//! A keyed table (the task arena's slots, the timer wheel's entries): a
//! vector of entries whose vacant ones are chained into a free list, as in
//! the `slab` crate, plus one thing `slab` does not offer: the address of an
//! entry without reading it, so a loop can prefetch the entries it will
//! visit a few steps from now.
//!
//! # Why prefetch
//! The scheduler polls a round's tasks in a seeded random order, and timers
//! fire in deadline order, so with hundreds of thousands of live tasks or
//! timers each step reads entries nowhere near the previous ones: cache and
//! TLB misses, which measured as most of the time of a 500,000-task
//! spawn+join. A prefetch is a hint to the CPU: it never faults, never
//! changes memory and never changes what the program computes.
//!
//! # Invariants
//! * `next` is the key the next insert takes: the head of the free list, or
//!   `entries.len()` when no entry is vacant.
//! * Every `Vacant(next)` entry is on the free list exactly once; `len`
//!   counts the occupied entries.

use std::mem;

/// Entries indexed by key; see the module documentation.
pub(crate) struct Slots<T> {
    entries: Vec<Entry<T>>,
    next: usize,
    len: usize,
}

enum Entry<T> {
    /// Vacant; holds the next key of the free list.
    Vacant(usize),
    Occupied(T),
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            next: 0,
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// The key the next [`Slots::insert`] returns.
    pub(crate) fn vacant_key(&self) -> usize {
        self.next
    }

    /// Stores `value` under [`Slots::vacant_key`] and returns that key.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.next;
        match self.entries.get_mut(key) {
            None => {
                self.entries.push(Entry::Occupied(value));
                self.next = key + 1;
            }
            Some(entry) => match mem::replace(entry, Entry::Occupied(value)) {
                Entry::Vacant(next) => {
                    self.next = next;
                    // The next insert writes there: fetch it now.
                    self.prefetch(next);
                }
                Entry::Occupied(_) => unreachable!("the free list points at an occupied entry"),
            },
        }
        self.len += 1;
        key
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        match self.entries.get(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    /// Takes the value under `key` out, if there is one.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let entry = self.entries.get_mut(key)?;
        if matches!(entry, Entry::Vacant(_)) {
            return None;
        }
        let Entry::Occupied(value) = mem::replace(entry, Entry::Vacant(self.next)) else {
            unreachable!("checked occupied above");
        };
        self.next = key;
        self.len -= 1;
        Some(value)
    }

    /// Removes every value, keeping the table's memory: afterwards the
    /// table hands out keys exactly as a new one would.
    pub(crate) fn take_all(&mut self) -> Vec<T> {
        self.next = 0;
        if self.len == 0 {
            // Only vacant entries: nothing to drop or hand out.
            self.entries.clear();
            return Vec::new();
        }
        self.len = 0;
        self.entries
            .drain(..)
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant(_) => None,
            })
            .collect()
    }

    /// Frees an empty table's memory if it holds room for more than `max`
    /// values (what a burst left behind), so a kept table stays small.
    pub(crate) fn trim(&mut self, max: usize) {
        debug_assert_eq!(self.len, 0, "trim an emptied table");
        if self.entries.capacity() > max {
            self.entries = Vec::new();
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant(_) => None,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Asks the CPU to fetch the entry under `key` into cache, without
    /// reading it (so it costs no wait). Keys out of range are ignored.
    pub(crate) fn prefetch(&self, key: usize) {
        if key < self.entries.len() {
            prefetch(self.entries.as_ptr().wrapping_add(key));
        }
    }
}

/// Asks the CPU to fetch the cache line holding `address` (a no-op on
/// targets without a stable prefetch instruction).
#[inline(always)]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults and never reads or
    // writes memory the program can observe, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_reused_last_freed_first() {
        let mut slots = Slots::default();
        assert_eq!(slots.vacant_key(), 0);
        let keys: Vec<usize> = (0..4).map(|i| slots.insert(i)).collect();
        assert_eq!(keys, [0, 1, 2, 3]);
        assert_eq!(slots.remove(1), Some(1));
        assert_eq!(slots.remove(3), Some(3));
        assert_eq!(slots.remove(3), None, "already vacant");
        assert_eq!(slots.remove(9), None, "out of range");
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.vacant_key(), 3);
        assert_eq!(slots.insert(30), 3);
        assert_eq!(slots.insert(10), 1);
        assert_eq!(slots.insert(4), 4, "free list empty: appends");
        assert_eq!(slots.get(1), Some(&10));
        assert_eq!(slots.len(), 5);
    }

    #[test]
    fn get_sees_only_occupied_entries() {
        let mut slots = Slots::default();
        let key = slots.insert("a");
        slots.remove(key);
        assert_eq!(slots.get(key), None);
        assert_eq!(slots.get_mut(key), None);
        assert_eq!(slots.get(7), None);
        let key = slots.insert("b");
        *slots.get_mut(key).expect("occupied") = "c";
        assert_eq!(slots.get(key), Some(&"c"));
    }

    #[test]
    fn iter_and_take_all_skip_vacant_entries() {
        let mut slots = Slots::default();
        for i in 0..5 {
            slots.insert(i);
        }
        slots.remove(0);
        slots.remove(3);
        assert_eq!(slots.iter().copied().collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(slots.take_all(), [1, 2, 4]);
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.insert(9), 0, "drained table starts over");
    }

    #[test]
    fn a_vacant_marker_costs_no_space() {
        // The vacant variant fits beside the slot's non-null pointers.
        let slot = mem::size_of::<crate::task::Slot>();
        assert_eq!(mem::size_of::<Entry<crate::task::Slot>>(), slot);
    }

    #[test]
    fn prefetch_accepts_any_key() {
        let mut slots = Slots::default();
        slots.prefetch(0);
        slots.insert(1u8);
        slots.prefetch(0);
        slots.prefetch(usize::MAX);
        prefetch(std::ptr::null::<u64>());
        prefetch(usize::MAX as *const u64);
    }
}
