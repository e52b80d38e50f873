//! A hierarchical timer wheel over virtual nanoseconds.
//!
//! # What this module owns
//! Every pending timer: its deadline, its registration order and what to
//! wake when it fires (`W`: a waker, or whatever the executor uses to name a
//! task without touching a waker's reference count). Eleven levels of 64
//! slots cover the whole `u64` nanosecond range; level `l` slots are `64^l`
//! ns wide. A level's slot lists exist from the first timer filed at that
//! level on (a run that never sleeps builds none, a run of millisecond
//! sleeps four), and [`Wheel::reset`] empties a wheel for reuse without
//! giving them back. A timer sits at the level of the highest 6-bit group in which
//! its deadline differs from the wheel's current time, so it is re-filed
//! ("cascaded") at most ten times on its way down to level 0, where a slot
//! is one nanosecond and every timer in it is due at exactly that instant.
//!
//! # Invariants
//! * `elapsed` never goes backwards and never passes a pending deadline
//!   without firing it.
//! * After `expire(now)`, every slot whose range starts at or before `now`
//!   has been processed, so the lowest occupied level always holds the
//!   earliest timers.
//! * Timers fire in deadline order; timers with the same deadline fire in
//!   registration order.
//! * `lists` holds the levels up to the highest one a timer was ever filed
//!   at: every occupied level is there.
//! * Every pending timer has exactly one place, in the list of the slot it
//!   is filed in, at the position its entry records; a slot's `occupied`
//!   bit is set exactly when its list is non-empty, and a level's `levels`
//!   bit exactly when one of its slots' is. Cancelling removes the
//!   place (the list's last place moves into the gap), so a cancelled sleep
//!   leaves nothing behind. Order within a list is arbitrary: firing sorts
//!   by deadline, then registration.
//! * Insert and cancel are O(1) amortized; finding the next deadline scans
//!   one word for the level and the first occupied slot's list.
//!
//! # Why lists of places, not linked entries
//! A slot's list is a vector of (deadline, registration, index) places, so
//! re-filing a slot reads one vector in order and appends to others, and
//! the entries it updates (their new position) are known in advance and
//! prefetched. With linked entries, a cascade of a slot holding 50,000
//! timers is 50,000 dependent cache misses in a row.

use crate::task::slots::Slots;

const LEVELS: usize = 11;
const SLOT_BITS: u32 = 6;
const SLOTS: u64 = 1 << SLOT_BITS;

/// How many places ahead a walk over a slot prefetches entries.
const PREFETCH_AHEAD: usize = 8;

/// A slot list above this capacity is freed once emptied rather than kept
/// for reuse, so memory returns after a burst of timers.
const KEEP_CAPACITY: usize = 256;

/// Identifies one registered timer; stale ids are harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    index: u32,
    seq: u64,
}

struct Entry<W> {
    seq: u64,
    waker: W,
    /// Where the timer's place is: `lists[level][slot][pos]`.
    pos: u32,
    level: u8,
    slot: u8,
}

/// A timer's place in a slot list: enough to re-file and to order it
/// without reading its entry.
#[derive(Clone, Copy)]
struct Place {
    deadline: u64,
    seq: u64,
    index: u32,
}

pub(crate) struct Wheel<W> {
    elapsed: u64,
    entries: Slots<Entry<W>>,
    /// By level, then slot; grown on the first timer filed at a level.
    lists: Vec<[Vec<Place>; SLOTS as usize]>,
    occupied: [u64; LEVELS],
    /// Bit `l` set when level `l` has an occupied slot.
    levels: u16,
    next_seq: u64,
    /// Reused buffer for the places a cascade or a firing takes out.
    scratch: Vec<Place>,
}

fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | (SLOTS - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline >> (SLOT_BITS as usize * level)) & (SLOTS - 1)) as usize
}

impl<W> Wheel<W> {
    pub(crate) fn new(now: u64) -> Self {
        Self {
            elapsed: now,
            entries: Slots::default(),
            lists: Vec::new(),
            occupied: [0; LEVELS],
            levels: 0,
            next_seq: 0,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Registers a timer. `deadline` must not be before the wheel's time
    /// (callers resolve past deadlines themselves).
    pub(crate) fn insert(&mut self, deadline: u64, waker: W) -> TimerId {
        debug_assert!(deadline >= self.elapsed);
        let deadline = deadline.max(self.elapsed);
        let seq = self.next_seq;
        self.next_seq += 1;
        let index =
            u32::try_from(self.entries.vacant_key()).expect("more than 2^32 pending timers");
        // A new timer may need a level not built yet; re-filed timers only
        // move down to levels below the one they left.
        let level = level_for(self.elapsed, deadline);
        if level >= self.lists.len() {
            self.add_levels(level);
        }
        let (level, slot, pos) = self.file(Place {
            deadline,
            seq,
            index,
        });
        self.entries.insert(Entry {
            seq,
            waker,
            pos,
            level,
            slot,
        });
        TimerId { index, seq }
    }

    /// What a pending timer wakes (to replace it when a sleep is polled
    /// from a new task context); `None` if it already fired or was
    /// cancelled.
    pub(crate) fn get_mut(&mut self, id: TimerId) -> Option<&mut W> {
        match self.entries.get_mut(id.index as usize) {
            Some(entry) if entry.seq == id.seq => Some(&mut entry.waker),
            _ => None,
        }
    }

    /// Removes a pending timer and returns its waker (to be dropped by the
    /// caller outside any lock). A stale id returns `None`.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<W> {
        match self.entries.get(id.index as usize) {
            Some(entry) if entry.seq == id.seq => {}
            _ => return None,
        }
        let entry = self.entries.remove(id.index as usize)?;
        let (level, slot, pos) = (
            entry.level as usize,
            entry.slot as usize,
            entry.pos as usize,
        );
        let list = &mut self.lists[level][slot];
        list.swap_remove(pos);
        if let Some(moved) = list.get(pos) {
            if let Some(moved) = self.entries.get_mut(moved.index as usize) {
                moved.pos = pos as u32;
            }
        }
        if list.is_empty() {
            release(list);
            self.vacate(level, slot);
        }
        Some(entry.waker)
    }

    /// Earliest pending deadline: the earliest in the first occupied slot of
    /// the lowest occupied level (see the invariants), read without
    /// re-filing anything; `expire` then fires it straight from that slot.
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        let (level, slot, start) = self.next_slot()?;
        if level == 0 {
            return Some(start);
        }
        self.lists[level][slot]
            .iter()
            .map(|place| place.deadline)
            .min()
    }

    /// Fires every timer due at or before `now`, appending their wakers to
    /// `out` in (deadline, registration) order, and sets the wheel's time to
    /// `now`.
    #[inline]
    pub(crate) fn expire(&mut self, now: u64, out: &mut Vec<W>) {
        if self.entries.len() == 0 {
            self.elapsed = self.elapsed.max(now);
            return;
        }
        self.expire_pending(now, out);
    }

    /// [`Wheel::expire`] with timers pending.
    fn expire_pending(&mut self, now: u64, out: &mut Vec<W>) {
        while let Some((level, slot, start)) = self.next_slot() {
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            if self.fire_lone(level, slot, now, out) {
                continue;
            }
            if level == 0 {
                let mut due = self.take(0, slot);
                self.fire(&mut due, out);
                self.scratch = due;
            } else {
                self.cascade(level, slot, now, out);
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Fires the slot's timer if the slot holds just one, due at `now`: what
    /// a cascade would do, without its buffers, sort and second walk (the
    /// common case of a program with one timer pending).
    fn fire_lone(&mut self, level: usize, slot: usize, now: u64, out: &mut Vec<W>) -> bool {
        let list = &mut self.lists[level][slot];
        let [place] = list[..] else {
            return false;
        };
        if place.deadline > now {
            return false;
        }
        let Some(entry) = self.entries.remove(place.index as usize) else {
            return false;
        };
        debug_assert_eq!(entry.seq, place.seq, "a place names its own entry");
        list.clear();
        self.vacate(level, slot);
        self.elapsed = self.elapsed.max(place.deadline);
        out.push(entry.waker);
        true
    }

    /// Marks a slot whose list was emptied as unoccupied.
    fn vacate(&mut self, level: usize, slot: usize) {
        self.occupied[level] &= !(1 << slot);
        if self.occupied[level] == 0 {
            self.levels &= !(1 << level);
        }
    }

    /// Removes every timer, returning their wakers. Only occupied slots are
    /// visited; the levels' lists stay for the timers to come.
    pub(crate) fn clear(&mut self) -> Vec<W> {
        while self.levels != 0 {
            let level = self.levels.trailing_zeros() as usize;
            while self.occupied[level] != 0 {
                let slot = self.occupied[level].trailing_zeros() as usize;
                release(&mut self.lists[level][slot]);
                self.vacate(level, slot);
            }
        }
        let entries = self.entries.take_all();
        if entries.is_empty() {
            return Vec::new();
        }
        entries.into_iter().map(|entry| entry.waker).collect()
    }

    /// Makes an empty wheel (see [`Wheel::clear`]) behave exactly as
    /// `Wheel::new(now)`, keeping its memory: the next timer gets the first
    /// id and sequence number a new wheel would give it.
    pub(crate) fn reset(&mut self, now: u64) {
        debug_assert_eq!(self.len(), 0, "reset an emptied wheel");
        debug_assert_eq!(self.levels, 0);
        self.elapsed = now;
        self.next_seq = 0;
        self.scratch.clear();
    }

    /// Frees what an emptied wheel keeps beyond room for `max` timers.
    pub(crate) fn trim(&mut self, max: usize) {
        self.entries.trim(max);
        if self.scratch.capacity() > max {
            self.scratch = Vec::new();
        }
    }

    /// The first occupied slot at the lowest occupied level and the virtual
    /// time its range starts at.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        if self.levels == 0 {
            return None;
        }
        let level = self.levels.trailing_zeros() as usize;
        let shift = SLOT_BITS as usize * level;
        let now_slot = ((self.elapsed >> shift) & (SLOTS - 1)) as u32;
        let rotated = self.occupied[level].rotate_right(now_slot);
        let slot = ((rotated.trailing_zeros() + now_slot) % SLOTS as u32) as usize;
        // Range covered by one full revolution of this level.
        let level_range = if shift + (SLOT_BITS as usize) >= 64 {
            u64::MAX
        } else {
            1u64 << (shift + SLOT_BITS as usize)
        };
        let level_start = if level_range == u64::MAX {
            0
        } else {
            self.elapsed & !(level_range - 1)
        };
        let start = level_start + ((slot as u64) << shift);
        Some((level, slot, start))
    }

    /// Empties a slot and returns its places: the slot's list itself, which
    /// trades places with the (empty) scratch buffer.
    fn take(&mut self, level: usize, slot: usize) -> Vec<Place> {
        let mut places = std::mem::take(&mut self.scratch);
        let list = &mut self.lists[level][slot];
        std::mem::swap(&mut places, list);
        release(list);
        self.vacate(level, slot);
        places
    }

    /// Re-files the timers of `slot`, the first occupied slot of the lowest
    /// occupied level, and fires those due at `limit`. The wheel's time
    /// first moves to the slot's earliest deadline, capped at `limit`: no
    /// pending timer is due before that point and it lies inside the slot's
    /// range (so no other slot is skipped), and from there each timer drops
    /// straight to the level its remaining distance needs instead of one
    /// level per cascade. Timers already due fire at once (in deadline, then
    /// registration order) instead of being re-filed first: they are the
    /// earliest pending timers, since lower levels are empty and every other
    /// slot covers later times.
    fn cascade(&mut self, level: usize, slot: usize, limit: u64, out: &mut Vec<W>) {
        let mut places = self.take(level, slot);
        let earliest = places.iter().map(|place| place.deadline).min();
        self.elapsed = self.elapsed.max(earliest.unwrap_or(limit).min(limit));
        let mut due = 0;
        for i in 0..places.len() {
            if let Some(ahead) = places.get(i + PREFETCH_AHEAD) {
                self.entries.prefetch(ahead.index as usize);
            }
            let place = places[i];
            if place.deadline <= limit {
                // Keep the due ones at the front for `fire`.
                places[due] = place;
                due += 1;
            } else {
                let (level, slot, pos) = self.file(place);
                if let Some(entry) = self.entries.get_mut(place.index as usize) {
                    (entry.level, entry.slot, entry.pos) = (level, slot, pos);
                }
            }
        }
        places.truncate(due);
        self.fire(&mut places, out);
        self.scratch = places;
    }

    /// Removes the timers of `due` and hands out what they wake, in
    /// (deadline, registration) order.
    fn fire(&mut self, due: &mut Vec<Place>, out: &mut Vec<W>) {
        due.sort_unstable_by_key(|place| (place.deadline, place.seq));
        for (i, place) in due.iter().enumerate() {
            if let Some(ahead) = due.get(i + PREFETCH_AHEAD) {
                self.entries.prefetch(ahead.index as usize);
            }
            if let Some(entry) = self.entries.remove(place.index as usize) {
                out.push(entry.waker);
            }
        }
        due.clear();
    }

    /// Appends `place` to the list of the slot its deadline falls in, given
    /// the wheel's time, and returns where it went, for the timer's entry.
    #[inline(always)]
    fn file(&mut self, place: Place) -> (u8, u8, u32) {
        let level = level_for(self.elapsed, place.deadline);
        let slot = slot_for(place.deadline, level);
        let list = &mut self.lists[level][slot];
        let pos = u32::try_from(list.len()).expect("more than 2^32 timers in one slot");
        list.push(place);
        self.occupied[level] |= 1 << slot;
        self.levels |= 1 << level;
        (level as u8, slot as u8, pos)
    }
}

impl<W> Wheel<W> {
    /// Builds the slot lists of every level up to `level`, on the first
    /// timer filed there.
    #[cold]
    #[inline(never)]
    fn add_levels(&mut self, level: usize) {
        self.lists.reserve_exact(level + 1 - self.lists.len());
        while self.lists.len() <= level {
            self.lists.push(std::array::from_fn(|_| Vec::new()));
        }
    }
}

/// Frees an emptied list's memory if it grew past what steady use needs.
fn release(list: &mut Vec<Place>) {
    list.clear();
    if list.capacity() > KEEP_CAPACITY {
        *list = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::{Arc, Mutex},
        task::{Wake, Waker},
    };

    struct Recorder {
        log: Arc<Mutex<Vec<usize>>>,
        id: usize,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    fn waker(log: &Arc<Mutex<Vec<usize>>>, id: usize) -> Waker {
        Waker::from(Arc::new(Recorder {
            log: log.clone(),
            id,
        }))
    }

    /// Fires everything, returning (timer id, time it fired) in firing order.
    fn run_all(wheel: &mut Wheel<Waker>, log: &Arc<Mutex<Vec<usize>>>) -> Vec<(usize, u64)> {
        let mut fired = Vec::new();
        while let Some(deadline) = wheel.next_deadline() {
            let mut out = Vec::new();
            wheel.expire(deadline, &mut out);
            assert!(!out.is_empty(), "next_deadline {deadline} fired nothing");
            for w in out {
                w.wake();
                let id = *log.lock().unwrap().last().unwrap();
                fired.push((id, deadline));
            }
        }
        fired
    }

    #[test]
    fn fires_in_deadline_then_registration_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        // Pseudo-random deadlines over many magnitudes, with ties.
        let mut x: u64 = 0x1234_5678;
        let mut expected = Vec::new();
        for id in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let deadline = match id % 4 {
                0 => x % 100,
                1 => x % 1_000_000,
                2 => x % 10_000_000_000,
                _ => 5_000, // many ties
            };
            wheel.insert(deadline, waker(&log, id));
            expected.push((deadline, id));
        }
        expected.sort();
        let fired = run_all(&mut wheel, &log);
        let fired: Vec<_> = fired.into_iter().map(|(id, t)| (t, id)).collect();
        assert_eq!(fired, expected);
        assert_eq!(wheel.len(), 0);
    }

    /// A xorshift64 generator for the model tests.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A deadline after `now` from the random `r`: by `id`, due almost at
    /// once, within microseconds, milliseconds or tens of seconds, so every
    /// level of the wheel sees timers.
    fn model_deadline(now: u64, r: u64, id: usize) -> u64 {
        now + [r % 3, r % 5_000, r % 2_000_000, r % 50_000_000_000][id % 4]
    }

    /// Expires the wheel at `now` and returns the ids of the timers that
    /// fired, in firing order.
    fn expire_ids(wheel: &mut Wheel<Waker>, now: u64, log: &Arc<Mutex<Vec<usize>>>) -> Vec<usize> {
        let mut out = Vec::new();
        wheel.expire(now, &mut out);
        log.lock().unwrap().clear();
        out.into_iter().for_each(Waker::wake);
        std::mem::take(&mut *log.lock().unwrap())
    }

    /// Every pending timer has one place, where its entry says, and no
    /// other place exists (cancelled timers leave nothing behind).
    fn assert_places_match_entries(wheel: &Wheel<Waker>) {
        let mut places = 0;
        for (level, lists) in wheel.lists.iter().enumerate() {
            for (slot, list) in lists.iter().enumerate() {
                assert_eq!(wheel.occupied[level] >> slot & 1 == 1, !list.is_empty());
                assert_eq!(wheel.levels >> level & 1 == 1, wheel.occupied[level] != 0);
                for (pos, place) in list.iter().enumerate() {
                    let entry = wheel.entries.get(place.index as usize).expect("live entry");
                    assert_eq!(entry.seq, place.seq);
                    assert_eq!(
                        (
                            entry.level as usize,
                            entry.slot as usize,
                            entry.pos as usize
                        ),
                        (level, slot, pos)
                    );
                    places += 1;
                }
            }
        }
        assert_eq!(places, wheel.len());
    }

    #[test]
    fn interleaved_inserts_and_partial_expiry_match_a_model() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        let mut model: Vec<(u64, usize)> = Vec::new();
        let mut now = 0u64;
        let mut next = xorshift(0x9E37_79B9);
        for id in 0..3000 {
            let deadline = model_deadline(now, next(), id);
            wheel.insert(deadline, waker(&log, id));
            model.push((deadline, id));
            if id % 7 == 0 {
                now += next() % 3_000_000;
                let fired = expire_ids(&mut wheel, now, &log);
                model.sort();
                let due = model.partition_point(|(d, _)| *d <= now);
                let expected: Vec<usize> = model.drain(..due).map(|(_, id)| id).collect();
                assert_eq!(fired, expected, "at {now}");
            }
        }
        model.sort();
        let fired = run_all(&mut wheel, &log);
        let expected: Vec<_> = model.into_iter().map(|(d, id)| (id, d)).collect();
        assert_eq!(fired, expected);
    }

    #[test]
    fn cancels_and_peeks_match_a_model() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        // (deadline, id, timer): the pending timers.
        let mut model: Vec<(u64, usize, TimerId)> = Vec::new();
        let mut now = 0u64;
        let mut next = xorshift(0x2545_F491);
        for id in 0..20_000 {
            let deadline = model_deadline(now, next(), id);
            let timer = wheel.insert(deadline, waker(&log, id));
            model.push((deadline, id, timer));
            match next() % 8 {
                // Cancel a random pending timer (many, so lists compact).
                0..=3 if !model.is_empty() => {
                    let (_, _, timer) = model.swap_remove(next() as usize % model.len());
                    assert!(wheel.cancel(timer).is_some());
                    assert!(wheel.cancel(timer).is_none(), "second cancel is stale");
                }
                // Peek and jump to the earliest deadline, as the run loop
                // does when idle, or let time pass.
                step @ (4 | 5) => {
                    if step == 4 {
                        let earliest = model.iter().map(|(d, _, _)| *d).min();
                        assert_eq!(wheel.next_deadline(), earliest);
                        now = now.max(earliest.unwrap_or(now));
                    } else {
                        now += next() % 3_000_000;
                    }
                    let fired = expire_ids(&mut wheel, now, &log);
                    model.sort_by_key(|(d, id, _)| (*d, *id));
                    let due = model.partition_point(|(d, _, _)| *d <= now);
                    let expected: Vec<usize> = model.drain(..due).map(|(_, id, _)| id).collect();
                    assert_eq!(fired, expected, "at {now}");
                }
                _ => {}
            }
            assert_eq!(wheel.len(), model.len());
            assert_places_match_entries(&wheel);
        }
        model.sort_by_key(|(d, id, _)| (*d, *id));
        let fired = run_all(&mut wheel, &log);
        let expected: Vec<_> = model.into_iter().map(|(d, id, _)| (id, d)).collect();
        assert_eq!(fired, expected);
        assert!(wheel.lists.iter().flatten().all(Vec::is_empty));
        assert_eq!(wheel.occupied, [0; LEVELS]);
    }

    #[test]
    fn registration_order_survives_cascading() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        wheel.insert(100, waker(&log, 0)); // filed at level 1
        let mut out = Vec::new();
        // Slot 64..128 starts before 90: the timer cascades to level 0, not due.
        wheel.expire(90, &mut out);
        assert!(out.is_empty());
        wheel.insert(100, waker(&log, 1)); // filed at level 0
        wheel.expire(100, &mut out);
        out.into_iter().for_each(Waker::wake);
        assert_eq!(*log.lock().unwrap(), vec![0, 1]);
    }

    #[test]
    fn cancel_removes_and_stale_ids_are_ignored() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(1_000);
        let a = wheel.insert(5_000, waker(&log, 0));
        let b = wheel.insert(5_000, waker(&log, 1));
        let c = wheel.insert(u64::MAX, waker(&log, 2));
        assert!(wheel.cancel(a).is_some());
        assert!(wheel.cancel(a).is_none());
        assert!(wheel.cancel(c).is_some());
        assert_eq!(wheel.next_deadline(), Some(5_000));
        let mut out = Vec::new();
        wheel.expire(10_000, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            wheel.cancel(b).is_none(),
            "fired timers cannot be cancelled"
        );
        assert!(wheel.get_mut(b).is_none(), "fired timers are gone");
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn extreme_deadlines() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(u64::MAX - 10);
        wheel.insert(u64::MAX, waker(&log, 0));
        wheel.insert(u64::MAX - 10, waker(&log, 1));
        let fired = run_all(&mut wheel, &log);
        assert_eq!(fired, vec![(1, u64::MAX - 10), (0, u64::MAX)]);
    }

    #[test]
    fn expire_before_a_peeked_deadline_fires_nothing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        wheel.insert(10_000, waker(&log, 0));
        assert_eq!(wheel.next_deadline(), Some(10_000));
        let mut out = Vec::new();
        wheel.expire(5_000, &mut out);
        assert!(out.is_empty());
        wheel.expire(10_000, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn levels_are_built_on_first_use_and_a_reset_wheel_is_new_again() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        assert!(wheel.lists.is_empty(), "an unused wheel builds no level");
        wheel.insert(1_000_000, waker(&log, 0));
        assert_eq!(wheel.lists.len(), 4, "a millisecond needs levels 0..=3");
        wheel.insert(5, waker(&log, 1));
        assert_eq!(wheel.lists.len(), 4);
        assert_eq!(wheel.clear().len(), 2);
        assert!(wheel.lists.iter().flatten().all(Vec::is_empty));
        wheel.reset(7_000);
        let mut new = Wheel::new(7_000);
        for (i, deadline) in [7_000, 9_000_000, 7_001, 1 << 40].into_iter().enumerate() {
            assert_eq!(
                wheel.insert(deadline, waker(&log, i)),
                new.insert(deadline, waker(&log, i)),
                "the same ids as a new wheel"
            );
        }
        assert_eq!(run_all(&mut wheel, &log), run_all(&mut new, &log));
    }

    #[test]
    fn clear_returns_all_wakers() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut wheel = Wheel::new(0);
        for i in 0..10 {
            wheel.insert(i * 1000, waker(&log, i as usize));
        }
        assert_eq!(wheel.clear().len(), 10);
        assert_eq!(wheel.next_deadline(), None);
    }
}
