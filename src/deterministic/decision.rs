//! Fault decisions: [`Fault`], what a fault that fired hands its injector,
//! and [`Injector::decide`](super::faults::Injector::decide), the one way
//! the simulation (and a harness, through
//! [`Context::fault`](super::Context::fault)) asks whether a fault fires.
//!
//! # What this module owns
//! Every fault the runtime injects (a reset or refused dial, a Byzantine
//! link action, a storage error, a bit flip, a misdirected or torn write)
//! and every fault a harness injects through `Context::fault` (a node
//! crash, a partition, a power cut) is a *named decision*: the `k`-th time
//! the run asks about a name, the scheduler decides whether it fires from
//! a stream of its own, and a fault that fires gets a parameter seed from
//! which everything about it is drawn (which bit flips, how far a write
//! lands, how much of a torn write survives, which node crashes, when the
//! power goes).
//!
//! # Invariants
//! * A decision never draws from the random numbers `Context` hands out,
//!   and a fault's parameters come only from its own seed: removing a
//!   fault from a recorded schedule changes that fault and what follows
//!   from it, never the draws of any other decision.
//! * A probability of 0 or less (or NaN) is not a decision: nothing is
//!   asked, counted or recorded.
//! * A decision belongs to the runtime that makes it. One made by a
//!   runtime after `recover()` forked it (a blob handle kept outside every
//!   task and dropped after the recovery tears its writes then) goes to
//!   the old runtime's scheduler, not into the run's recording: drop such
//!   handles before recovering if the run must replay exactly.

use super::Context;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A fault that fired: the stream its parameters are drawn from. Seeded
/// from the decision's parameter seed, so a replay of a recorded schedule
/// draws the same parameters, whatever else changed.
///
/// It is a [`RngCore`] (rand 0.8 traits: `gen_range`, `choose`, ...).
#[derive(Clone, Debug)]
pub struct Fault {
    rng: Xoshiro256PlusPlus,
}

impl Fault {
    pub(crate) fn new(param: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(param),
        }
    }

    /// A uniform float in `0..1`.
    pub fn unit(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `0..n` (0 when `n` is 0 or 1).
    pub fn below(&mut self, n: u64) -> u64 {
        match n {
            0 | 1 => 0,
            // Lemire's multiply-shift: unbiased enough for any range here.
            n => ((u128::from(self.rng.next_u64()) * u128::from(n)) >> 64) as u64,
        }
    }
}

impl RngCore for Fault {
    fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.rng.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.rng.try_fill_bytes(dest)
    }
}

impl Context {
    /// Asks whether the fault `name` fires, with probability `p` (0 never,
    /// 1 always): a fault decision of the harness, as FoundationDB's
    /// BUGGIFY is one of the code. If it fires, the returned [`Fault`] is
    /// where everything about it comes from (which node, for how long):
    ///
    /// ```no_run
    /// # use commonware_runtime::deterministic::Executor;
    /// # use rand::Rng;
    /// # let (_, context, _) = Executor::default();
    /// if let Some(mut crash) = context.fault("crash node 2", 0.05) {
    ///     let down_for = crash.gen_range(100..2_000); // ms
    ///     // ... abort node 2, reboot it after `down_for`
    /// }
    /// ```
    ///
    /// Each decision is recorded by name and occurrence, so a sweep's
    /// failing seed records which of its faults fired, a shrinker can
    /// remove them one by one (a removed fault does not fire on replay,
    /// and no other decision or random number moves), and the story and
    /// timeline of a run show them. Give distinct faults distinct names
    /// (`"crash node 2"`, not `"crash"` plus a drawn node) so a removal
    /// keeps its meaning. Decisions draw from a stream of their own, never
    /// from the random numbers this context hands out. The decision is
    /// drawn on this context's node's lane (see [`Context::with_ip`]).
    ///
    /// # Panics
    /// If `p` is not a probability in `0.0..=1.0`.
    pub fn fault(&self, name: &str, p: f64) -> Option<Fault> {
        if !(0.0..=1.0).contains(&p) {
            panic!("the probability of fault `{name}` is {p}, not a probability in 0.0..=1.0");
        }
        let runtime = &self.runtime;
        runtime
            .faults
            .decide(&runtime.core, self.ip, format_args!("{name}"), p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_from_the_seed_alone() {
        let (mut a, mut b) = (Fault::new(7), Fault::new(7));
        for n in [0, 1, 2, 3, 1000, u64::MAX] {
            let x = a.below(n);
            assert_eq!(x, b.below(n));
            assert!(x < n.max(1));
        }
        assert_ne!(Fault::new(8).next_u64(), a.next_u64());
    }
}
