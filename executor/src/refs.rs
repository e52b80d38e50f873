//! A task block's reference count, biased towards its executor's thread.
//!
//! # What this module owns
//! [`Refs`]: how many references (the task's owner in the arena, its join
//! handle, owned wakers) keep a task block alive, and when the last one is
//! gone. Most waker clones and drops happen on the executor's own thread,
//! inside a poll (a future stores `cx.waker()`, a channel drops the waker
//! it woke); there a read-modify-write of a shared atomic is the whole cost
//! of a clone. So while the task lives in its executor's arena the count is
//! split in two:
//! * `local`: clones minus drops made by the *owner*: the executor's thread
//!   while it runs the executor, which holds the executor state's lock for
//!   as long as user code can run there. Only code holding that lock reads
//!   or writes it, with a plain load and store (no read-modify-write); it
//!   may go negative (a waker cloned on another thread, dropped here).
//! * `shared`: everything else, changed only by read-modify-writes, plus
//!   [`BIAS`] while the split lasts.
//!
//! The true count is `shared - BIAS + local` while biased, `shared`
//! afterwards. The owner's own reference (the task's slot) ends the split
//! when it is released, under the state's lock: [`Refs::release_owner`]
//! folds `local` into `shared`, removes the bias and releases that
//! reference in one read-modify-write, so a task costs no more atomic
//! operations than with a plain count. From then on every thread uses
//! `shared` alone, with `Arc`'s protocol (relaxed increments, release
//! decrements, an acquire fence before the free).
//!
//! # Invariants
//! * While biased the block is never freed: the owner's reference is
//!   counted, so the true count is at least one, and `shared` stays far
//!   above one (at least `BIAS` minus the owner's clones dropped
//!   elsewhere, which cannot approach `BIAS / 2`). Only an unbiased count
//!   reaching zero frees.
//! * Bias is set when the count is made and cleared once, by
//!   `release_owner`, under the state's lock. The owner tells biased from unbiased with a
//!   relaxed load of `shared`: only lock holders change the bias, and the
//!   lock orders those changes before the load.
//! * `local` is touched only by holders of the state's lock, so its plain
//!   loads and stores are ordered by the lock; `release_owner` leaves it
//!   at zero.
//!
//! # Models
//! `refs/loom_models.rs` checks with loom that the block is freed exactly
//! once, after every use of every reference, when owner clones and drops,
//! clones and drops on another thread, and the owner's release (on the
//! executor's thread, or on another thread holding the lock, as an abort
//! does)
//! interleave in every way (each explores exhaustively, in well under a
//! second). Weakening the release decrement to a relaxed one, or an
//! owner release that drops `local`, fails both. Run them with the wake
//! protocol's models:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p commonware-executor --lib loom`.

use crate::sync::{fence, AtomicIsize, AtomicUsize, Ordering};

/// Added to `shared` while the count is split (see the module doc).
const BIAS: usize = 1 << (usize::BITS - 2);

/// A biased reference count (see the module documentation).
pub(crate) struct Refs {
    shared: AtomicUsize,
    local: AtomicIsize,
}

impl Refs {
    /// A count of `count` references, biased (split with the executor's
    /// thread) if `biased`: a task entering an arena is biased, a task that
    /// never will be is not.
    pub(crate) fn new(count: usize, biased: bool) -> Self {
        Self {
            shared: AtomicUsize::new(if biased { count + BIAS } else { count }),
            local: AtomicIsize::new(0),
        }
    }

    /// Whether the count is split; only meaningful to a holder of the
    /// state's lock (see the invariants).
    #[inline]
    fn biased(&self) -> bool {
        self.shared.load(Ordering::Relaxed) >= BIAS / 2
    }

    /// Adds a reference. `owner`: the caller runs the task's executor on
    /// this thread (and so holds its state's lock).
    #[inline]
    pub(crate) fn clone_ref(&self, owner: bool) {
        if owner && self.biased() {
            let local = self.local.load(Ordering::Relaxed);
            self.local.store(local + 1, Ordering::Relaxed);
            return;
        }
        // Relaxed, as `Arc::clone`: a new reference is made from an existing
        // one, which already orders everything before it.
        if self.shared.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
            // Billions of leaked wakers: stop before the count wraps.
            std::process::abort();
        }
    }

    /// Releases a reference; returns whether it was the last one, in which
    /// case the caller frees the block (every other reference's uses
    /// happen before this return). `owner` as for [`Refs::clone_ref`].
    #[inline]
    pub(crate) fn drop_ref(&self, owner: bool) -> bool {
        if owner && self.biased() {
            // Never the last: the owner's reference is still counted.
            let local = self.local.load(Ordering::Relaxed);
            self.local.store(local - 1, Ordering::Relaxed);
            return false;
        }
        if self.shared.fetch_sub(1, Ordering::Release) != 1 {
            return false;
        }
        // Every other reference's last use happened before its decrement
        // (release); this fence makes all of them happen before the free.
        fence(Ordering::Acquire);
        true
    }

    /// Releases the owner's reference (the task's arena slot): ends the
    /// split, folding the owner's clones and drops into `shared`, removing
    /// the bias and releasing the owner's count in one read-modify-write.
    /// Returns whether that was the last reference, as [`Refs::drop_ref`]
    /// does. Called once per count, by the owner reference's drop, which
    /// the executor makes under its state's lock (on whichever thread took
    /// the task out of the arena). Release: every use of the block made
    /// through the owner's count happens before a later free elsewhere.
    pub(crate) fn release_owner(&self) -> bool {
        if !self.biased() {
            return self.drop_ref(false);
        }
        let local = self.local.load(Ordering::Relaxed);
        self.local.store(0, Ordering::Relaxed);
        let delta = (local as usize).wrapping_sub(BIAS).wrapping_sub(1);
        if self
            .shared
            .fetch_add(delta, Ordering::Release)
            .wrapping_add(delta)
            != 0
        {
            return false;
        }
        fence(Ordering::Acquire);
        true
    }

    /// The true count; only meaningful to a holder of the state's lock
    /// with no other thread touching the count.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        let shared = self.shared.load(Ordering::Relaxed);
        let local = self.local.load(Ordering::Relaxed);
        if shared >= BIAS / 2 {
            (shared - BIAS).wrapping_add(local as usize)
        } else {
            shared
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_clones_and_drops_are_folded_in_when_the_bias_ends() {
        let refs = Refs::new(2, true);
        refs.clone_ref(true);
        refs.clone_ref(true);
        refs.clone_ref(false);
        assert_eq!(refs.count(), 5);
        assert!(!refs.drop_ref(true));
        // A waker cloned by the owner, dropped elsewhere.
        assert!(!refs.drop_ref(false));
        assert!(!refs.drop_ref(false));
        assert_eq!(refs.count(), 2);
        // A waker cloned elsewhere, dropped by the owner: `local` goes
        // negative.
        refs.clone_ref(false);
        assert!(!refs.drop_ref(true));
        assert!(!refs.drop_ref(true));
        assert_eq!(refs.local.load(Ordering::Relaxed), -1);
        assert_eq!(refs.count(), 1, "the owner's own reference");
        assert!(refs.release_owner(), "folded in, and the last");
        // Biased, `shared` alone never frees, however low it goes: two
        // owner clones, one dropped elsewhere, and the join handle dropped.
        let refs = Refs::new(2, true);
        refs.clone_ref(true);
        refs.clone_ref(true);
        assert!(!refs.drop_ref(false));
        assert!(!refs.drop_ref(false));
        assert_eq!(refs.shared.load(Ordering::Relaxed), BIAS);
        // The owner's release leaves the remaining clone.
        assert!(!refs.release_owner());
        assert!(!refs.biased());
        assert_eq!(refs.count(), 1);
        // Unbiased, the owner uses `shared` too, and the last drop frees.
        refs.clone_ref(true);
        assert_eq!(refs.shared.load(Ordering::Relaxed), 2);
        assert!(!refs.drop_ref(true));
        assert!(refs.drop_ref(true));
    }

    #[test]
    fn an_unbiased_count_is_arcs() {
        let refs = Refs::new(2, false);
        refs.clone_ref(true);
        assert_eq!(refs.count(), 3);
        assert!(!refs.drop_ref(false));
        assert!(!refs.drop_ref(true));
        assert!(refs.release_owner());
    }
}

#[cfg(all(test, loom))]
mod loom_models;
