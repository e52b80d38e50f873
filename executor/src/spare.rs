//! Spare executor memory, kept per thread between executors.
//!
//! # What this module owns
//! [`Spare`]: the memory an executor's run leaves behind once it is over (the
//! timer wheel with its slot lists, the arena's slot table, the ready
//! queue's list and the run loop's round buffers), kept by the thread that
//! ran it for the next executor built there. A seed sweep builds and drops
//! one executor per seed; with this, the second seed on a thread allocates
//! none of that again.
//!
//! # Invariants
//! * Reuse changes allocation only, never behaviour: everything kept is
//!   empty and reset to what a new one is (the wheel hands out the first
//!   timer id and sequence number again, the slot table the first key), so
//!   only capacities differ, and no decision reads a capacity.
//! * What is kept is bounded ([`KEEP`]): the memory of a burst of tasks or
//!   timers goes back to the allocator, not into the cache.
//! * Only the thread's executors use its cache; a thread that has none
//!   builds everything new, exactly as before.

use crate::{
    core::Wake,
    task::{slots::Slots, Slot, TaskId},
    time::wheel::Wheel,
};
use std::cell::RefCell;

/// Most entries a kept table or buffer may have room for.
const KEEP: usize = 1024;

/// Emptied executor memory, ready for the next executor.
#[derive(Default)]
pub(crate) struct Spare {
    pub(crate) wheel: Option<Wheel<Wake>>,
    pub(crate) slots: Slots<Slot>,
    pub(crate) ready: Vec<TaskId>,
    pub(crate) batch: Vec<TaskId>,
    pub(crate) held: Vec<TaskId>,
    pub(crate) fired: Vec<Wake>,
}

thread_local! {
    static SPARE: RefCell<Spare> = RefCell::new(Spare::default());
}

/// Takes what this thread keeps (an empty [`Spare`] if nothing, or if the
/// thread is being torn down).
pub(crate) fn take() -> Spare {
    SPARE
        .try_with(|spare| {
            spare
                .try_borrow_mut()
                .map(|mut spare| std::mem::take(&mut *spare))
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Keeps `spare` for this thread's next executor: each part replaces what
/// the cache holds unless it is too large to keep. Every part must be
/// empty.
pub(crate) fn give(mut spare: Spare) {
    if let Some(wheel) = &mut spare.wheel {
        debug_assert_eq!(wheel.len(), 0, "keep an emptied wheel");
        wheel.trim(KEEP);
    }
    spare.slots.trim(KEEP);
    for buffer in [&mut spare.ready, &mut spare.batch, &mut spare.held] {
        buffer.clear();
        if buffer.capacity() > KEEP {
            *buffer = Vec::new();
        }
    }
    debug_assert!(spare.fired.is_empty(), "keep an emptied buffer");
    if spare.fired.capacity() > KEEP {
        spare.fired = Vec::new();
    }
    let _ = SPARE.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            *cache = spare;
        }
    });
}
