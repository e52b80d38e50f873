//! A scheduler that reads every choice from a byte string: the bridge between
//! a coverage-guided fuzzer and the scheduler.
//!
//! # What this module owns
//! The [`FuzzInput`] scheduler. Whenever a round has a real choice (two or more
//! ready tasks) it consumes input to pick the one task that runs in that
//! round; the others are held back. Every random number the runtime hands
//! out consumes eight bytes (little-endian), and so does a fault decision's
//! coin (and, when it fires, its parameter seed). So the fuzzer's input *is*
//! the interleaving, the program's randomness and its faults, and a mutation
//! of one byte changes one decision.
//!
//! # Invariants
//! * A round with one ready task, or none, consumes nothing.
//! * Once the input is used up the scheduler falls back to a fixed default:
//!   every ready task runs, in ready order, and random numbers are zero
//!   (missing bytes of a partly available number are zero). Every run
//!   therefore ends, whatever the input.
//! * The same input gives the same run.

use super::{unit, Scheduler};
use crate::task::TaskId;
use std::{fmt, sync::Arc};

/// Takes every scheduling choice and random number from a byte string.
#[derive(Clone)]
pub struct FuzzInput {
    input: Arc<[u8]>,
    position: usize,
}

impl FuzzInput {
    /// A scheduler reading `input` from its start.
    pub fn new(input: impl Into<Arc<[u8]>>) -> Self {
        Self {
            input: input.into(),
            position: 0,
        }
    }

    /// Whether the input is used up (the run is on the default schedule).
    pub fn exhausted(&self) -> bool {
        self.position >= self.input.len()
    }

    /// Up to `N` next bytes, zero-padded.
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let rest = self.input.get(self.position..).unwrap_or_default();
        let n = rest.len().min(N);
        out[..n].copy_from_slice(&rest[..n]);
        self.position += n;
        out
    }
}

impl Scheduler for FuzzInput {
    fn name(&self) -> String {
        format!("bytes(len={})", self.input.len())
    }

    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        let n = ready.len();
        if n < 2 || self.exhausted() {
            return n;
        }
        let choice = if n <= 256 {
            usize::from(self.take::<1>()[0]) % n
        } else {
            u32::from_le_bytes(self.take::<4>()) as usize % n
        };
        ready[..=choice].rotate_right(1);
        1
    }

    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take::<8>())
    }

    fn fault(&mut self, _name: &dyn fmt::Display, p: f64) -> Option<u64> {
        if p < 1.0 && unit(self.next_u64()) >= p {
            return None;
        }
        Some(self.next_u64())
    }

    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ids;

    fn seqs(ready: &[TaskId]) -> Vec<u64> {
        ready.iter().map(TaskId::seq).collect()
    }

    #[test]
    fn each_byte_picks_the_one_task_that_runs() {
        let mut bytes = FuzzInput::new(vec![2, 7, 0]);
        let mut ready = ids(4);
        assert_eq!(bytes.schedule(&mut ready, 0), 1);
        assert_eq!(seqs(&ready), [2, 0, 1, 3], "others keep their order");
        let mut ready = ids(3);
        assert_eq!(bytes.schedule(&mut ready, 0), 1);
        assert_eq!(ready[0].seq(), 1, "7 % 3");
        assert_eq!(bytes.name(), "bytes(len=3)");
    }

    #[test]
    fn single_tasks_consume_nothing_and_exhaustion_runs_all_in_order() {
        let mut bytes = FuzzInput::new(vec![1]);
        let mut one = ids(1);
        assert_eq!(bytes.schedule(&mut one, 0), 1);
        assert!(!bytes.exhausted());
        let mut two = ids(2);
        assert_eq!(bytes.schedule(&mut two, 0), 1);
        assert_eq!(two[0].seq(), 1);
        assert!(bytes.exhausted());
        let mut three = ids(3);
        assert_eq!(bytes.schedule(&mut three, 0), 3);
        assert_eq!(seqs(&three), [0, 1, 2]);
    }

    #[test]
    fn random_numbers_are_little_endian_and_zero_padded() {
        let mut bytes = FuzzInput::new(vec![1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xee]);
        assert_eq!(bytes.next_u64(), 1);
        let mut fork = bytes.fork();
        assert_eq!(bytes.next_u64(), 0xeeff);
        assert_eq!(fork.next_u64(), 0xeeff);
        assert_eq!(bytes.next_u64(), 0);
    }

    #[test]
    fn large_ready_sets_read_four_bytes() {
        let mut bytes = FuzzInput::new(300u32.to_le_bytes().to_vec());
        let mut ready = ids(400);
        assert_eq!(bytes.schedule(&mut ready, 0), 1);
        assert_eq!(ready[0].seq(), 300);
        assert!(bytes.exhausted());
    }
}
