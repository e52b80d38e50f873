//! Probabilistic concurrency testing (PCT, Burckhardt et al., ASPLOS 2010).
//!
//! # What this module owns
//! The [`Pct`] scheduler. Every task gets a random priority when it is first
//! seen; each round runs only the highest-priority ready task (one round is
//! one *step*), so a ready task of lower priority is held back for as long as
//! a higher one has work, however many rounds that takes. At `depth - 1`
//! change points, chosen uniformly among the first `steps` steps, the task
//! about to run drops below every other task and the next one runs instead.
//! For a program of `n` tasks and `k` steps this finds any bug of depth `d`
//! (one that needs `d` specific ordering constraints) with probability at
//! least `1 / (n * k^(d-1))` per run, where uniform shuffling of rounds may
//! never find it at all.
//!
//! # Steps, time and the end of the estimate
//! One step is one poll, and the run loop adds `cycle` to virtual time after
//! every round, so under PCT virtual time advances by `cycle` per poll rather
//! than per round of all ready tasks. That is what lets a task fall behind
//! the others in time as well as in order (a heartbeat that arrives late),
//! and it means a program polls fewer times before a timeout than under
//! [`Uniform`](crate::Uniform).
//!
//! `steps` is an estimate of the program's length. Strict priorities starve
//! any task below one that spins (`loop { yield }` waiting for it), so once
//! the estimate is used up the scheduler stops holding tasks back and runs
//! every ready task each round in a random order, as [`Uniform`](super::Uniform) does: a
//! program that outlives the estimate still finishes. Choose `steps` near
//! the program's real length: too small and late steps are never preempted,
//! too large and each change point is less likely to land where it matters.
//!
//! # Invariants
//! * Priorities are a pure function of the seed and the task's sequence
//!   number (plus the change points already passed), so they need no
//!   per-task storage: memory stays flat however many tasks a run spawns.
//! * Initial priorities are at least `2^63`; lowered ones are below `depth`,
//!   so a lowered task runs only when no task with an initial priority is
//!   ready. Ties (vanishingly rare) go to the lower sequence number.
//! * Every random number comes from one seeded generator, drawn in a fixed
//!   order (priority key, change points, then the run's numbers).

use super::{shuffle, FaultStream, Scheduler};
use crate::task::TaskId;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt;

/// Default estimate of a program's length in steps (polls).
pub const DEFAULT_STEPS: u64 = 1_000;

/// The PCT scheduler: random task priorities with `depth - 1` priority change
/// points in the first `steps` steps, one task per round.
#[derive(Clone)]
pub struct Pct {
    rng: Xoshiro256PlusPlus,
    faults: FaultStream,
    /// Key of the per-task priority hash.
    key: u64,
    depth: usize,
    steps: u64,
    /// Steps taken so far.
    step: u64,
    /// `(step, lowered priority)`, sorted by step; consumed from the front.
    changes: Vec<(u64, u64)>,
    next_change: usize,
    /// Tasks whose priority a change point lowered: `(seq, priority)`.
    lowered: Vec<(u64, u64)>,
}

impl Pct {
    /// A PCT scheduler seeded with `seed` that looks for bugs of depth
    /// `depth` (at least 1) in programs of about `steps` polls.
    pub fn new(seed: u64, depth: usize, steps: u64) -> Self {
        let depth = depth.max(1);
        let steps = steps.max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let key = rng.next_u64();
        // Change point `i` (in the order drawn) lowers to priority `i`, so
        // which of two lowered tasks ranks higher is random as well.
        let mut changes: Vec<(u64, u64)> = (1..depth as u64)
            .map(|priority| {
                let at = ((u128::from(rng.next_u64()) * u128::from(steps)) >> 64) as u64;
                (at, priority)
            })
            .collect();
        changes.sort_unstable();
        Self {
            rng,
            faults: FaultStream::new(seed),
            key,
            depth,
            steps,
            step: 0,
            changes,
            next_change: 0,
            lowered: Vec::with_capacity(depth - 1),
        }
    }

    #[inline]
    fn priority(&self, seq: u64) -> u64 {
        if !self.lowered.is_empty() {
            if let Some(&(_, priority)) = self.lowered.iter().find(|(s, _)| *s == seq) {
                return priority;
            }
        }
        // splitmix64 of (key + seq): a random-looking, per-seed permutation.
        let mut z = self
            .key
            .wrapping_add(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) | 1 << 63
    }

    /// Position of the highest-priority task in `ready` (ties to the lower
    /// sequence number).
    fn top(&self, ready: &[TaskId]) -> usize {
        let mut best = 0;
        let mut best_seq = ready[0].seq();
        let mut best_priority = self.priority(best_seq);
        for (i, id) in ready.iter().enumerate().skip(1) {
            let seq = id.seq();
            let priority = self.priority(seq);
            if priority > best_priority || (priority == best_priority && seq < best_seq) {
                best = i;
                best_seq = seq;
                best_priority = priority;
            }
        }
        best
    }
}

impl Scheduler for Pct {
    fn name(&self) -> String {
        if self.steps == DEFAULT_STEPS {
            format!("pct({})", self.depth)
        } else {
            format!("pct({}, steps={})", self.depth, self.steps)
        }
    }

    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        if ready.is_empty() {
            return 0;
        }
        if self.step >= self.steps {
            shuffle(&mut self.rng, ready);
            return ready.len();
        }
        let mut top = self.top(ready);
        while let Some(&(at, priority)) = self.changes.get(self.next_change) {
            if at != self.step {
                break;
            }
            self.next_change += 1;
            let seq = ready[top].seq();
            match self.lowered.iter_mut().find(|(s, _)| *s == seq) {
                Some(entry) => entry.1 = priority,
                None => self.lowered.push((seq, priority)),
            }
            top = self.top(ready);
        }
        self.step += 1;
        ready[..=top].rotate_right(1);
        1
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

    /// Runs `rounds` rounds over a fixed ready set and returns who ran.
    fn trace(pct: &mut Pct, n: u64, rounds: usize) -> Vec<u64> {
        (0..rounds)
            .map(|_| {
                let mut ready = ids(n);
                assert_eq!(pct.schedule(&mut ready, 0), 1);
                ready[0].seq()
            })
            .collect()
    }

    #[test]
    fn without_change_points_one_task_runs_until_it_blocks() {
        let mut pct = Pct::new(5, 1, 100);
        let order = trace(&mut pct, 4, 50);
        assert!(order.iter().all(|&t| t == order[0]), "{order:?}");
        assert_eq!(pct.name(), "pct(1, steps=100)");
    }

    #[test]
    fn a_change_point_demotes_the_running_task_for_good() {
        for seed in 0..50 {
            // Same seed, same priorities; depth 1 has no change point.
            let first = trace(&mut Pct::new(seed, 1, 20), 3, 1)[0];
            let mut pct = Pct::new(seed, 2, 20);
            let at = pct.changes[0].0 as usize;
            let order = trace(&mut pct, 3, 20);
            assert!(order[..at].iter().all(|&t| t == first));
            assert!(order[at..].iter().all(|&t| t != first), "{seed}: {order:?}");
        }
    }

    #[test]
    fn every_task_is_first_for_some_seed_and_priorities_are_distinct() {
        let mut first = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let pct = Pct::new(seed, 3, 10);
            let mut priorities: Vec<u64> = (0..20).map(|s| pct.priority(s)).collect();
            first.insert(trace(&mut pct.clone(), 5, 1)[0]);
            priorities.sort_unstable();
            priorities.dedup();
            assert_eq!(priorities.len(), 20);
        }
        assert_eq!(first.len(), 5);
    }

    #[test]
    fn holds_tasks_back_for_many_rounds_then_falls_back_to_uniform() {
        let mut pct = Pct::new(1, 1, 30);
        let order = trace(&mut pct, 3, 30);
        let held = (0..3).filter(|t| !order.contains(t)).count();
        assert_eq!(held, 2, "two tasks held for 30 rounds");
        let mut ready = ids(3);
        assert_eq!(pct.schedule(&mut ready, 0), 3, "estimate used up: all run");
    }

    #[test]
    fn same_seed_same_choices_and_numbers() {
        let (mut a, mut b) = (Pct::new(9, 3, 40), Pct::new(9, 3, 40));
        assert_eq!(trace(&mut a, 6, 40), trace(&mut b, 6, 40));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut c = a.fork();
        assert_eq!(a.next_u64(), c.next_u64());
        assert_eq!(c.name(), "pct(3, steps=40)");
        assert_eq!(Pct::new(0, 3, DEFAULT_STEPS).name(), "pct(3)");
    }

    #[test]
    fn change_points_are_uniform_over_the_estimate() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let mut buckets = [0u32; 4];
        for _ in 0..4000 {
            let pct = Pct::new(rng.next_u64(), 2, 100);
            buckets[pct.changes[0].0 as usize / 25] += 1;
            assert!(pct.changes[0].0 < 100);
        }
        assert!(
            buckets.iter().all(|&b| (800..1200).contains(&b)),
            "{buckets:?}"
        );
    }
}
