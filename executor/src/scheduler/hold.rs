//! Uniform rounds with seeded hold-backs: the [`Hold`] scheduler.
//!
//! # What this module owns
//! [`Hold`]: every round runs the ready tasks in a uniformly random order,
//! as [`Uniform`](super::Uniform) does, except that a seeded few tasks (the
//! *victims*) are held back for a seeded number of rounds after a seeded
//! number of their own polls. Uniform shuffling finds ordering
//! bugs inside a round and keeps the program's timing (time advances by
//! `cycle` per round), but never lets one task fall behind the others; PCT
//! lets tasks fall behind but serialises the run (one poll per round) and
//! so changes its timing. `Hold` does both at once: a proposer that falls
//! three steps behind two election timers, a heartbeat starved for eight
//! ticks, a reader that sees a half-done reload, while message timing stays
//! that of a uniform run.
//!
//! # The draws
//! Per run (from the seed): the share of tasks that are victims, `2^-j`
//! with `j` uniform in `0..4`. Per task (a hash of the seed's key and the
//! task's sequence number, so no per-task state is kept for the others;
//! a task is judged when it is first seen ready, and one first seen after
//! a later-spawned task is never a victim):
//! whether it is a victim, how many of its polls run before its hold
//! (`skip`), whether the hold stops the task or only starves it (it then
//! still runs in rounds where nothing else would, like PCT's lowest
//! priority), and how many rounds the hold lasts (`hold`: a starvation
//! lasts the program's estimated length in rounds or a half, quarter or
//! eighth of it, a stop at least 1; a
//! stopped task is stopped up to three times, each with its own skip and
//! length). Skips are log-uniform up to `steps`, the program's estimated
//! length in polls, and stops up to its length in rounds (`steps` scaled by
//! the rounds per poll seen so far in the run, drawn when the stop starts):
//! an exponent `e` uniform in `0..=log2(n)`, then a value uniform below
//! `2^e`, so short and long values are both common whatever the length,
//! and a stop rarely outlasts the program (which would only add empty
//! rounds).
//!
//! # Invariants
//! * Decisions are a pure function of the seed, the task sequence numbers
//!   and the ready sets seen; the shuffle draws from the same generator as
//!   the run's random numbers, in the order `Uniform` does.
//! * At most [`MAX_VICTIMS`] tasks are ever victims, each held at most
//!   three times for a finite number of rounds, so a held task always runs
//!   again: the scheduler never starves a task forever.
//! * Memory is constant per run: state exists only for victims, and only
//!   until their last hold ends.

use super::{shuffle, FaultStream, Scheduler};
use crate::task::TaskId;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt;

/// At most this many tasks per run are held back.
pub const MAX_VICTIMS: usize = 4;

/// A task chosen to be held back, and where it is in its hold.
#[derive(Clone, Copy, Debug)]
struct Victim {
    seq: u64,
    /// Polls still to run before the hold starts.
    skip: u64,
    /// Rounds of the hold still to come.
    hold: u64,
    /// During its hold the task runs in rounds where every other ready
    /// task is held too (it is starved rather than stopped), so it falls
    /// behind whoever has work without stalling the run.
    starve: bool,
    /// The task's hash, from which each of its holds is drawn.
    hash: u64,
    /// The hash of the current hold.
    this: u64,
    /// Whether the current hold's length is drawn (when its skip ends).
    drawn: bool,
    /// Holds still to come after this one.
    again: u32,
}

impl Victim {
    /// Draws hold number `k` of the victim: its skip now, its length when
    /// the skip is over (see [`Victim::start_hold`]).
    fn draw(&mut self, k: u64, max_exp: u32) {
        self.this = mix(self.hash ^ k.wrapping_mul(0xA076_1D64_78BD_642F));
        self.skip = log_uniform(mix(self.this ^ 1), max_exp);
        self.drawn = false;
    }

    /// Draws the length of the hold that starts now, for a program of
    /// about `rounds` rounds. A starved task still runs whenever nothing
    /// else would, so a long starvation stalls nothing: it lasts the whole
    /// estimate, or a half, a quarter or an eighth of it (a starved task
    /// that runs alone at the end adds rounds, which slows a sweep). A stop
    /// is log-uniform up to the estimate.
    fn start_hold(&mut self, rounds: u64) {
        let h = mix(self.this ^ 2);
        self.hold = match self.starve {
            true => (rounds >> (h % 4)).max(1),
            false => 1 + log_uniform(h, 63 - rounds.leading_zeros()),
        };
        self.drawn = true;
    }

    /// Whether the victim is in a hold (or about to start one).
    fn in_hold(&self) -> bool {
        self.skip == 0 && (!self.drawn || self.hold > 0)
    }
}

/// Uniform rounds in which a seeded few tasks are held back for a seeded
/// number of rounds (see the module doc).
#[derive(Clone)]
pub struct Hold {
    rng: Xoshiro256PlusPlus,
    faults: FaultStream,
    /// Key of the per-task hash.
    key: u64,
    /// A task is a victim if its hash is below this.
    threshold: u64,
    /// `log2(steps)`, the largest exponent of a skip or a hold.
    max_exp: u32,
    steps: u64,
    victims: Vec<Victim>,
    /// Sequence numbers below this have been judged (victim or not).
    judged: u64,
    /// Tasks ever chosen as victims (finished victims leave `victims`,
    /// so rounds after the last hold cost what uniform rounds do).
    chosen: usize,
    /// Rounds scheduled and polls let run so far.
    rounds: u64,
    polls: u64,
}

impl Hold {
    /// A hold scheduler seeded with `seed`, for programs of about `steps`
    /// polls.
    pub fn new(seed: u64, steps: u64) -> Self {
        let steps = steps.max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let key = rng.next_u64();
        // The victim share, 2^-j, j in 0..4, from the key's top bits.
        let share = (key >> 62) as u32;
        let threshold = if share == 0 {
            u64::MAX
        } else {
            u64::MAX >> share
        };
        Self {
            rng,
            faults: FaultStream::new(seed),
            key,
            threshold,
            max_exp: 63 - steps.leading_zeros(),
            steps,
            victims: Vec::with_capacity(MAX_VICTIMS),
            judged: 0,
            chosen: 0,
            rounds: 0,
            polls: 0,
        }
    }

    /// Judges task `seq` (once): a victim gets its first skip now and the
    /// length of each hold when the hold starts.
    #[cold]
    fn judge(&mut self, seq: u64) {
        self.judged = self.judged.max(seq + 1);
        if self.chosen >= MAX_VICTIMS || self.victims.iter().any(|v| v.seq == seq) {
            return;
        }
        let h = mix(self.key ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        if h >= self.threshold {
            return;
        }
        let starve = mix(h ^ 3) & 1 == 1;
        // A stopped task is stopped up to three times (each at its own
        // point, for its own length): bugs that need a task stopped at one
        // particular poll get several tries per run.
        let again = if starve { 0 } else { (mix(h ^ 4) % 3) as u32 };
        let mut victim = Victim {
            seq,
            skip: 0,
            hold: 0,
            starve,
            hash: h,
            this: 0,
            drawn: false,
            again,
        };
        victim.draw(0, self.max_exp);
        self.victims.push(victim);
        self.chosen += 1;
    }
}

/// splitmix64's finaliser: a random-looking bijection.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// From hash `h`: an exponent `e` uniform in `0..=max_exp`, then a value
/// uniform below `2^e`.
fn log_uniform(h: u64, max_exp: u32) -> u64 {
    let e = ((u128::from(h as u32) * u128::from(max_exp + 1)) >> 32) as u32;
    let below = 1u64 << e.min(62);
    (h >> 32) & (below - 1)
}

impl Scheduler for Hold {
    fn name(&self) -> String {
        format!("hold(steps={})", self.steps)
    }

    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        // Most rounds have no new task and no victim in its hold.
        for id in ready.iter() {
            if id.seq() >= self.judged {
                self.judge(id.seq());
            }
        }
        self.rounds += 1;
        let mut run = ready.len();
        if !self.victims.is_empty() {
            // Whether a task that is not in a hold runs this round: a
            // starving victim yields only to such a task.
            let in_hold =
                |victims: &[Victim], seq: u64| victims.iter().any(|v| v.seq == seq && v.in_hold());
            let others_run = ready.iter().any(|id| !in_hold(&self.victims, id.seq()));
            // The program's length in rounds, from its length in polls and
            // the polls per round so far (before any poll: the whole
            // estimate, so a hold from the first round may be long): holds
            // are measured in rounds.
            let rounds = (u128::from(self.steps) * u128::from(self.rounds)
                / u128::from(self.polls.max(1)))
            .clamp(1, u128::from(self.steps)) as u64;
            let mut finished = false;
            let mut i = 0;
            while i < run {
                let seq = ready[i].seq();
                let held = match self.victims.iter_mut().find(|v| v.seq == seq) {
                    Some(v) if v.skip > 0 => {
                        v.skip -= 1;
                        false
                    }
                    Some(v) if v.in_hold() && (!v.starve || others_run) => {
                        if !v.drawn {
                            v.start_hold(rounds);
                        }
                        v.hold -= 1;
                        if v.hold == 0 {
                            if v.again > 0 {
                                v.again -= 1;
                                v.draw(u64::from(v.again) + 1, self.max_exp);
                            } else {
                                finished = true;
                            }
                        }
                        true
                    }
                    _ => false,
                };
                if held {
                    run -= 1;
                    ready.swap(i, run);
                } else {
                    i += 1;
                }
            }
            if finished {
                self.victims.retain(|v| !(v.drawn && v.hold == 0));
            }
        }
        self.polls += run as u64;
        shuffle(&mut self.rng, &mut ready[..run]);
        run
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
    fn victims_are_held_for_a_while_then_run_again() {
        let mut held_somewhere = 0;
        for seed in 0..200 {
            let mut hold = Hold::new(seed, 64);
            let mut missing = [0u64; 6];
            // At most three holds of at most 64 rounds, each after at
            // most 63 polls.
            for _ in 0..400 {
                let mut ready = ids(6);
                let run = hold.schedule(&mut ready, 0);
                for id in &ready[run..] {
                    missing[id.seq() as usize] += 1;
                }
            }
            // Every hold ends: in the last rounds every task runs.
            let mut ready = ids(6);
            assert_eq!(hold.schedule(&mut ready, 0), 6, "seed {seed}");
            assert!(missing.iter().filter(|&&m| m > 0).count() <= MAX_VICTIMS);
            assert!(missing.iter().all(|&m| m <= 3 * 64));
            held_somewhere += usize::from(missing.iter().any(|&m| m > 0));
        }
        assert!(held_somewhere > 150, "{held_somewhere}");
    }

    #[test]
    fn same_seed_same_rounds_and_numbers() {
        let (mut a, mut b) = (Hold::new(3, 40), Hold::new(3, 40));
        for _ in 0..50 {
            let (mut x, mut y) = (ids(5), ids(5));
            assert_eq!(a.schedule(&mut x, 0), b.schedule(&mut y, 0));
            assert_eq!(x, y);
        }
        assert_eq!(a.next_u64(), b.next_u64());
        let mut c = a.fork();
        assert_eq!(a.next_u64(), c.next_u64());
        assert_eq!(c.name(), "hold(steps=40)");
    }

    #[test]
    fn skips_and_holds_are_log_uniform() {
        let mut ones = 0;
        let mut long = 0;
        for h in 0..10_000u64 {
            let v = log_uniform(mix(h), 6);
            assert!(v < 64);
            ones += u32::from(v == 1);
            long += u32::from(v >= 16);
        }
        assert!((1_000..2_500).contains(&ones), "{ones}");
        assert!((1_500..3_500).contains(&long), "{long}");
    }
}
