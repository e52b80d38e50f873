//! Task identity: [`TaskId`], the `(slot index, sequence number)` pair.
//!
//! # Invariants
//! * The sequence number is the task's spawn order, unique for the life of
//!   its executor; it is the only part of an id that schedulers and the
//!   audit digest see, so it never depends on memory layout or slot reuse.
//! * The index names the task's slot in the arena. A slot is reused once
//!   its task is gone, so only the pair identifies a task: a lookup checks
//!   both, and an id that outlived its task finds nothing.

/// Identifies one task for the life of its executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The slot (read directly by the arena's lookups).
    pub(super) index: u32,
    seq: u64,
}

impl TaskId {
    pub(crate) fn new(index: u32, seq: u64) -> Self {
        Self { index, seq }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The task's spawn order: 0 for the first task of an executor, then 1, 2...
    /// Deterministic, so it is what the auditor and schedulers see.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}
