//! Schedulers: who runs in a round, in what order, and where the runtime's
//! random numbers come from.
//!
//! # What this module owns
//! The [`Scheduler`] trait and the default [`Uniform`] scheduler; the others
//! live beside it: [`Pct`] (`pct.rs`), [`Hold`] (`hold.rs`, uniform rounds
//! with seeded hold-backs), [`FuzzInput`] (`fuzz_input.rs`),
//! [`Replay`] and the [`Recorder`] wrapper (`record.rs`, with the
//! [`Schedule`] they share), and [`shrink_schedule`] (`shrink.rs`). A
//! scheduler is the single source of every nondeterministic-looking choice
//! in a run: the order of each round, every random number `Context`
//! hands out, and every fault decision (whether a named fault fires, and
//! the seed of its parameters). Same scheduler state in, same run out.
//!
//! # Invariants
//! * A scheduler sees only deterministic inputs (task sequence numbers in
//!   ready-queue order, virtual time, fault names), never addresses or the
//!   wall clock.
//! * Fault decisions draw from a stream of their own ([`FaultStream`]), so
//!   whether a fault fires never shifts the scheduling choices or the
//!   random numbers of the run, and a recorded fault can be removed on
//!   replay without moving any other random number.
//! * A scheduler may hold tasks back (return fewer than all of them); the
//!   run loop keeps them ready for the next round and time still advances.
//! * The trait knows none of its implementations: code that needs one in
//!   particular (`Core::recording` needs the [`Recorder`]) asks the boxed
//!   scheduler for its concrete type (`dyn Scheduler::downcast_ref`).

mod fuzz_input;
mod hold;
mod pct;
mod record;
mod shrink;

pub use fuzz_input::FuzzInput;
pub use hold::Hold;
pub use pct::{Pct, DEFAULT_STEPS as PCT_DEFAULT_STEPS};
pub use record::{Decision, FaultDecision, Occurrences, ParseError, Recorder, Replay, Schedule};
pub use shrink::shrink_schedule;

use crate::task::TaskId;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::{any::Any, fmt};

/// Chooses each round's tasks and supplies the run's random numbers.
pub trait Scheduler: AsAny + Send {
    /// A short description that, with the seed, identifies the scheduler
    /// (printed in failure messages so a run can be reproduced).
    fn name(&self) -> String;

    /// Reorders `ready` so that the tasks to poll this round come first, in
    /// polling order, and returns how many of them run. Tasks after that
    /// point stay ready for a later round. Returning 0 for a non-empty set is
    /// allowed (time still advances) but a scheduler must not do it forever.
    /// `now` is the virtual time of the round (nanoseconds).
    fn schedule(&mut self, ready: &mut [TaskId], now: u64) -> usize;

    /// Next random number for the runtime's users.
    fn next_u64(&mut self) -> u64;

    /// Decides whether the fault `name` fires, with probability `p` (`p`
    /// is above 0; 1 or more always fires): the seed of the fault's
    /// parameters if it does. Only asked for `p > 0`.
    fn fault(&mut self, name: &dyn fmt::Display, p: f64) -> Option<u64>;

    /// An independent copy with the same state (used by `recover`).
    fn fork(&self) -> Box<dyn Scheduler>;
}

impl dyn Scheduler {
    /// This scheduler as a `T`, if that is its concrete type. Sees only the
    /// outermost scheduler, not one a wrapper holds.
    pub fn downcast_ref<T: Scheduler>(&self) -> Option<&T> {
        AsAny::as_any(self).downcast_ref()
    }
}

/// Any `'static` type seen as [`Any`]: what lets a boxed [`Scheduler`] be
/// asked for its concrete type (`dyn Scheduler::downcast_ref`). Implemented
/// for every such type; a scheduler never implements it by hand.
pub trait AsAny: Any {
    /// `self` as [`Any`].
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Uniform in `0..n` from one draw, by Lemire's multiply-shift (the tiny
/// bias for huge `n` does not matter for scheduling). Not the same draw as a
/// modulo: the two give different values for the same random number.
pub(crate) fn lemire_below(rng: &mut impl RngCore, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Fisher-Yates shuffle driven by `rng`.
#[inline]
pub(crate) fn shuffle<T>(rng: &mut impl RngCore, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = lemire_below(rng, i + 1);
        items.swap(i, j);
    }
}

/// The stream a seeded scheduler's fault decisions draw from, apart from
/// its scheduling and random-number stream.
#[derive(Clone)]
pub(crate) struct FaultStream(Xoshiro256PlusPlus);

impl FaultStream {
    /// Mixed into the seed so the stream shares nothing with the
    /// scheduler's own (seeded from `seed` itself).
    const KEY: u64 = 0xFA01_7D3C_1510_45A5;

    pub(crate) fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed ^ Self::KEY))
    }

    /// One coin of probability `p` (no coin when `p >= 1`), then, if the
    /// fault fires, its parameter seed.
    pub(crate) fn decide(&mut self, p: f64) -> Option<u64> {
        if p < 1.0 && unit(self.0.next_u64()) >= p {
            return None;
        }
        Some(self.0.next_u64())
    }
}

/// A random number as a uniform float in `0..1` (its top 53 bits).
pub(crate) fn unit(value: u64) -> f64 {
    ((value >> 11) as f64) * (1.0 / (1u64 << 53) as f64)
}

/// Every ready task runs in every round, in a uniformly random order (the
/// reference runtime's semantics).
#[derive(Clone)]
pub struct Uniform {
    rng: Xoshiro256PlusPlus,
    faults: FaultStream,
}

impl Uniform {
    /// A uniform scheduler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            faults: FaultStream::new(seed),
        }
    }
}

impl Scheduler for Uniform {
    fn name(&self) -> String {
        "uniform".into()
    }

    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        shuffle(&mut self.rng, ready);
        ready.len()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn fault(&mut self, _name: &dyn fmt::Display, p: f64) -> Option<u64> {
        self.faults.decide(p)
    }

    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ids;

    #[test]
    fn same_seed_same_order() {
        let (mut a, mut b) = (Uniform::new(7), Uniform::new(7));
        for _ in 0..10 {
            let (mut x, mut y) = (ids(20), ids(20));
            assert_eq!(a.schedule(&mut x, 0), 20);
            b.schedule(&mut y, 0);
            assert_eq!(x, y);
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn different_seeds_differ_and_every_order_is_reachable() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut x = ids(3);
            Uniform::new(seed).schedule(&mut x, 0);
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
            assert!(lemire_below(&mut rng, n) < n);
        }
    }
}
