//! [`Strategy`]: how a deterministic run chooses which ready tasks run in
//! each round and where `Context`'s random numbers come from.
//!
//! # What this module owns
//! The user-facing choice ([`Config::strategy`](super::Config::strategy))
//! and its translation into the executor's strategy objects
//! (`commonware_executor::{Uniform, Pct, Bytes, Replay}`), plus the name a
//! strategy goes by in failure lines.
//!
//! # Invariants
//! * Building a strategy draws nothing and has no side effect: the same
//!   strategy and seed always give the same executor strategy.
//! * A strategy's `Display` is the executor strategy's own name, so the
//!   name printed in a failure line is the one that reproduces it.

use commonware_executor::{FuzzInput, Pct, Replay, Uniform};
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

    /// The executor strategy for a run seeded with `seed`.
    pub(super) fn build(&self, seed: u64) -> Box<dyn commonware_executor::Scheduler> {
        match self {
            Self::Uniform => Box::new(Uniform::new(seed)),
            Self::Pct { depth, steps: 0 } => Box::new(Pct::new(seed, *depth, PCT_DEFAULT_STEPS)),
            Self::Pct { depth, steps } => Box::new(Pct::new(seed, *depth, *steps)),
            Self::Bytes(bytes) => Box::new(FuzzInput::new(bytes.clone())),
            Self::Replay(schedule) => Box::new(Replay::new(schedule.clone())),
        }
    }
}

/// The name printed in failure lines (`uniform`, `pct(3)`, ...).
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.build(0).name())
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
}
