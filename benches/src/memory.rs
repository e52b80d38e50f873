//! Memory per pending task, measured with a counting global allocator.
//!
//! The allocator ([`peak_alloc::PeakAlloc`]) is installed by the binary that
//! measures (`src/bin/results.rs`), never by the timing benches, so timings
//! carry no counting overhead. Each runtime's `task_memory` (generated for
//! [`crate::ours`] and [`crate::reference`]) parks `n` tasks on a
//! [`crate::Board`] and reads the live heap before and after; everything the
//! measurement itself needs (the board, the handle vector) is allocated
//! before the baseline, so the difference is what the runtime spends.

/// What `task_memory` measured.
#[derive(Debug, Clone, Copy)]
pub struct TaskMemory {
    /// Tasks parked at once.
    pub tasks: usize,
    /// Size of each task's future as the user wrote it.
    pub future_bytes: usize,
    /// Live heap bytes per parked task (future included).
    pub pending_bytes: f64,
    /// Heap bytes still live, relative to the baseline, after the first
    /// wave of tasks finished (capacity the runtime keeps for reuse).
    pub retained_after_first: i64,
    /// The same after a second, identical wave: equal to the first when
    /// memory is reused rather than leaked.
    pub retained_after_second: i64,
}

impl TaskMemory {
    /// Bytes per parked task beyond its future.
    pub fn overhead(&self) -> f64 {
        self.pending_bytes - self.future_bytes as f64
    }
}
