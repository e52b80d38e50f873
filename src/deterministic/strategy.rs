//! [`Strategy`]: how a deterministic run chooses which ready tasks run in
//! each round and where `Context`'s random numbers come from.
//!
//! # What this module owns
//! The user-facing choice ([`Config::strategy`](super::Config::strategy))
//! and its translation into the executor's strategy objects
//! (`commonware_executor::{Uniform, Pct, Hold, Bytes, Replay}`), the
//! [`Strategy::portfolio`] mix and which member a seed runs, plus the name a
//! strategy goes by in failure lines.
//!
//! # Invariants
//! * Building a strategy draws nothing and has no side effect: the same
//!   strategy and seed always give the same executor strategy.
//! * A strategy's `Display` is the executor strategy's own name, so the
//!   name printed in a failure line is the one that reproduces it.
//! * A portfolio seed runs exactly the member scheduler that member's own
//!   strategy would run with the same seed: the member is chosen from a
//!   hash of the seed that no scheduler uses, so `seed` plus the member's
//!   name (printed in the failure line) reproduces it as well.

use commonware_executor::{FuzzInput, Hold, Pct, Replay, Uniform};
use std::{fmt, sync::Arc};

pub use commonware_executor::{ParseError, Schedule, PCT_DEFAULT_STEPS};

/// How the deterministic runtime chooses which ready tasks run in each round
/// and where `Context`'s random numbers come from.
#[derive(Clone, Debug, Default)]
pub enum Strategy {
    /// Every ready task runs in every round, in a uniformly random order
    /// drawn from the seed (the reference runtime's behaviour).
    #[default]
    Uniform,
    /// Probabilistic concurrency testing: random task priorities drawn from
    /// the seed, one task per round (the highest-priority ready one), and
    /// `depth - 1` priority change points in the first `steps` polls. Finds
    /// bugs that need a task to fall behind for many rounds, which
    /// `Uniform` cannot. Virtual time advances by `cycle` per poll.
    Pct {
        /// Number of ordering constraints the bugs sought need (1 or more).
        depth: usize,
        /// Estimated length of the program in polls; after that many the
        /// strategy behaves like `Uniform` so spinning tasks cannot starve
        /// the others forever. 0 means "measure it": a [`Sweep`](super::Sweep)
        /// runs its first seed under `Uniform`, counts the polls and uses
        /// that count (failure lines then name it, e.g. `pct(2, steps=37)`);
        /// a single run uses [`PCT_DEFAULT_STEPS`].
        steps: u64,
    },
    /// Uniform rounds in which a seeded few tasks are each held back once,
    /// for a seeded number of rounds after a seeded number of their own
    /// polls (see `commonware_executor::Hold`). Keeps uniform's timing
    /// (time advances by `cycle` per round) while letting one task fall
    /// behind the others, as a starved heartbeat or a slow proposer does.
    Hold {
        /// Estimated length of the program in polls (scales how long a
        /// task runs before its hold and how long the hold lasts); 0 means
        /// "measure it", as for [`Strategy::Pct`].
        steps: u64,
    },
    /// A fixed mix of the strategies above, one member per seed, chosen
    /// from the seed (see [`Strategy::portfolio`]). The recommended choice
    /// for bug hunting with [`Sweep`](super::Sweep) and
    /// [`explore`](super::explore).
    Portfolio {
        /// Step estimate passed to the PCT and hold members; 0 means
        /// "measure it", as for [`Strategy::Pct`].
        steps: u64,
    },
    /// Every choice with more than one ready task picks the one task that
    /// runs, from the next byte; random numbers take eight bytes each. Once
    /// the bytes run out, all ready tasks run in ready order and random
    /// numbers are zero. The seed is not used. For fuzzers.
    Bytes(Arc<[u8]>),
    /// Plays back a recorded (or shrunk, or hand-written) schedule; past its
    /// end all ready tasks run in ready order and random numbers are zero.
    /// The seed is not used.
    Replay(Arc<Schedule>),
}

impl Strategy {
    /// PCT looking for bugs of `depth`, with the step estimate measured by
    /// the sweep (`steps: 0`).
    pub fn pct(depth: usize) -> Self {
        Self::Pct { depth, steps: 0 }
    }

    /// Uniform rounds with seeded hold-backs, with the step estimate
    /// measured by the sweep (`steps: 0`).
    pub fn hold() -> Self {
        Self::Hold { steps: 0 }
    }

    /// The portfolio: each seed runs one member of a fixed mix, chosen from
    /// the seed, so a sweep gets every member's strengths and a failing
    /// seed reproduces from seed and strategy alone (the failure line also
    /// names the member). The mix, in sixteenths of the seeds:
    /// [`Strategy::hold`] (uniform rounds with hold-backs: ordering, timing
    /// and starvation bugs at once) 9, [`Strategy::Uniform`] 1, and
    /// [`Strategy::pct`] at depths 1, 2, 3 and 4: 1, 1, 1 and 3. The step
    /// estimate is measured by the sweep (`steps: 0`), as for PCT.
    ///
    /// The recommended strategy for bug hunting; `Config`'s default stays
    /// [`Strategy::Uniform`], the reference runtime's behaviour.
    pub fn portfolio() -> Self {
        Self::Portfolio { steps: 0 }
    }

    /// The member a portfolio runs for `seed` (itself for any other
    /// strategy), with the portfolio's step estimate.
    pub fn member(&self, seed: u64) -> Self {
        let Self::Portfolio { steps } = *self else {
            return self.clone();
        };
        // A hash no scheduler draws (they seed xoshiro from `seed`
        // through splitmix64 without this offset), so which member runs
        // is independent of what the member then draws.
        let mut z = seed ^ 0x5EED_F0E7_F011_0000;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let total: u64 = PORTFOLIO.iter().map(|(_, weight)| weight).sum();
        let mut pick = ((u128::from(z) * u128::from(total)) >> 64) as u64;
        for (member, weight) in PORTFOLIO {
            if pick < weight {
                return match member {
                    Member::Uniform => Self::Uniform,
                    Member::Hold => Self::Hold { steps },
                    Member::Pct(depth) => Self::Pct { depth, steps },
                };
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total weight")
    }

    /// The step estimate a sweep measures for this strategy, if it asks
    /// for one (`steps: 0`).
    pub(super) fn wants_steps(&self) -> bool {
        matches!(
            self,
            Self::Pct { steps: 0, .. } | Self::Hold { steps: 0 } | Self::Portfolio { steps: 0 }
        )
    }

    /// This strategy with a measured step estimate filled in.
    pub(super) fn with_steps(&self, measured: u64) -> Self {
        match *self {
            Self::Pct { depth, steps: 0 } => Self::Pct {
                depth,
                steps: measured,
            },
            Self::Hold { steps: 0 } => Self::Hold { steps: measured },
            Self::Portfolio { steps: 0 } => Self::Portfolio { steps: measured },
            _ => self.clone(),
        }
    }

    /// The executor strategy for a run seeded with `seed`.
    pub(super) fn build(&self, seed: u64) -> Box<dyn commonware_executor::Scheduler> {
        match self {
            Self::Uniform => Box::new(Uniform::new(seed)),
            Self::Pct { depth, steps: 0 } => Box::new(Pct::new(seed, *depth, PCT_DEFAULT_STEPS)),
            Self::Pct { depth, steps } => Box::new(Pct::new(seed, *depth, *steps)),
            Self::Hold { steps: 0 } => Box::new(Hold::new(seed, PCT_DEFAULT_STEPS)),
            Self::Hold { steps } => Box::new(Hold::new(seed, *steps)),
            Self::Portfolio { .. } => self.member(seed).build(seed),
            Self::Bytes(bytes) => Box::new(FuzzInput::new(bytes.clone())),
            Self::Replay(schedule) => Box::new(Replay::new(schedule.clone())),
        }
    }
}

/// A member of the portfolio.
#[derive(Clone, Copy)]
enum Member {
    Uniform,
    Hold,
    Pct(usize),
}

/// The portfolio's members and their weights (shares of seeds).
/// Hold carries most seeds: it is the one member good at both kinds of
/// bug (orderings and timing, and a task falling behind). PCT at depth 4
/// gets more than the lower depths because it also finds their bugs (its
/// first change point often falls where theirs would), and uniform keeps a
/// share so programs whose bugs need lockstep timing exactly are covered.
/// The weights were chosen on the planted bugs of `tests/strategies.rs`
/// (the README's table).
const PORTFOLIO: [(Member, u64); 6] = [
    (Member::Hold, 9),
    (Member::Uniform, 1),
    (Member::Pct(1), 1),
    (Member::Pct(2), 1),
    (Member::Pct(3), 1),
    (Member::Pct(4), 3),
];

/// The name printed in failure lines (`uniform`, `pct(3)`, ...; a
/// portfolio is `portfolio` or `portfolio(steps=37)`, and the failure line
/// names the member a seed ran beside it).
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Portfolio { steps: 0 } => f.write_str("portfolio"),
            Self::Portfolio { steps } => write!(f, "portfolio(steps={steps})"),
            Self::Hold { steps: 0 } => write!(f, "hold"),
            _ => f.write_str(&self.build(0).name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names() {
        assert_eq!(Strategy::default().to_string(), "uniform");
        assert_eq!(Strategy::pct(3).to_string(), "pct(3)");
        assert_eq!(
            Strategy::Pct {
                depth: 2,
                steps: 50
            }
            .to_string(),
            "pct(2, steps=50)"
        );
        assert_eq!(
            Strategy::Bytes(Arc::from(&[1u8, 2][..])).to_string(),
            "bytes(len=2)"
        );
        let schedule: Schedule = "3:1!".parse().unwrap();
        assert_eq!(
            Strategy::Replay(Arc::new(schedule)).to_string(),
            "replay(3:1!)"
        );
    }

    #[test]
    fn the_portfolio_runs_each_member_on_its_share_of_seeds() {
        let portfolio = Strategy::Portfolio { steps: 40 };
        assert_eq!(portfolio.to_string(), "portfolio(steps=40)");
        assert_eq!(Strategy::portfolio().to_string(), "portfolio");
        let mut counts = std::collections::BTreeMap::new();
        for seed in 0..16_000 {
            let member = portfolio.member(seed);
            assert!(!matches!(member, Strategy::Portfolio { .. }));
            // The member runs exactly what its own strategy would.
            if seed < 50 {
                assert_eq!(portfolio.build(seed).name(), member.build(seed).name());
            }
            *counts.entry(member.to_string()).or_insert(0u32) += 1;
        }
        let share = |name: &str| counts[name] as f64 / 1_000.0;
        assert!((8.5..9.5).contains(&share("hold(steps=40)")), "{counts:?}");
        assert!((0.8..1.2).contains(&share("uniform")), "{counts:?}");
        assert!(
            (2.7..3.3).contains(&share("pct(4, steps=40)")),
            "{counts:?}"
        );
        for depth in 1..=3 {
            let name = format!("pct({depth}, steps=40)");
            assert!((0.8..1.2).contains(&share(&name)), "{counts:?}");
        }
        assert_eq!(Strategy::Uniform.member(3).to_string(), "uniform");
    }
}
