//! Scheduling strategies: who runs in a round, in what order, and where the
//! runtime's random numbers come from.
//!
//! # What this module owns
//! The [`Strategy`] trait and the default [`Uniform`] strategy (the others:
//! [`Pct`](crate::Pct), [`Bytes`](crate::Bytes), [`Replay`](crate::Replay),
//! and the [`Recorder`](crate::Recorder) wrapper). A strategy
//! is the single source of every nondeterministic-looking choice in a run:
//! the order of each round and every random number `Context` hands out. Same
//! strategy state in, same run out.
//!
//! # Invariants
//! * A strategy sees only deterministic inputs (task sequence numbers in
//!   ready-queue order), never addresses or clocks.
//! * A strategy may hold tasks back (return fewer than all of them); the run
//!   loop keeps them ready for the next round and time still advances.

mod bytes;
mod pct;
mod record;

pub use bytes::Bytes;
pub use pct::{Pct, DEFAULT_STEPS as PCT_DEFAULT_STEPS};
pub use record::{shrink, Decision, ParseError, Recorder, Replay, Schedule};

use crate::task::TaskId;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Chooses each round's tasks and supplies the run's random numbers.
pub trait Strategy: Send {
    /// A short description that, with the seed, identifies the strategy
    /// (printed in failure messages so a run can be reproduced).
    fn name(&self) -> String;

    /// Reorders `ready` so that the tasks to poll this round come first, in
    /// polling order, and returns how many of them run. Tasks after that
    /// point stay ready for a later round. Returning 0 for a non-empty set is
    /// allowed (time still advances) but a strategy must not do it forever.
    fn schedule(&mut self, ready: &mut [TaskId]) -> usize;

    /// Next random number for the runtime's users.
    fn next_u64(&mut self) -> u64;

    /// An independent copy with the same state (used by `recover`).
    fn fork(&self) -> Box<dyn Strategy>;

    /// The schedule recorded so far, if this strategy records one (see
    /// [`Recorder`](crate::Recorder)).
    fn recording(&self) -> Option<&Schedule> {
        None
    }
}

/// Uniform in `0..n` from one draw (Lemire's multiply-shift; the tiny bias
/// for huge `n` does not matter for scheduling).
pub fn below(rng: &mut impl RngCore, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Fisher-Yates shuffle driven by `rng`.
#[inline]
pub fn shuffle<T>(rng: &mut impl RngCore, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

/// Every ready task runs in every round, in a uniformly random order (the
/// reference runtime's semantics).
#[derive(Clone)]
pub struct Uniform {
    rng: Xoshiro256PlusPlus,
}

impl Uniform {
    /// A uniform strategy seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }
}

impl Strategy for Uniform {
    fn name(&self) -> String {
        "uniform".into()
    }

    fn schedule(&mut self, ready: &mut [TaskId]) -> usize {
        shuffle(&mut self.rng, ready);
        ready.len()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn fork(&self) -> Box<dyn Strategy> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<TaskId> {
        (0..n).map(|i| TaskId::new(i as u32, i)).collect()
    }

    #[test]
    fn same_seed_same_order() {
        let (mut a, mut b) = (Uniform::new(7), Uniform::new(7));
        for _ in 0..10 {
            let (mut x, mut y) = (ids(20), ids(20));
            assert_eq!(a.schedule(&mut x), 20);
            b.schedule(&mut y);
            assert_eq!(x, y);
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn different_seeds_differ_and_every_order_is_reachable() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut x = ids(3);
            Uniform::new(seed).schedule(&mut x);
            seen.insert(x.iter().map(|t| t.seq()).collect::<Vec<_>>());
        }
        assert_eq!(seen.len(), 6, "all 3! orders appear");
    }

    #[test]
    fn fork_continues_the_same_stream() {
        let mut a = Uniform::new(1);
        a.next_u64();
        let mut b = a.fork();
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(b.name(), "uniform");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for n in 1..100 {
            assert!(below(&mut rng, n) < n);
        }
    }
}
