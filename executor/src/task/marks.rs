//! A task's marks in its executor's ready set, and the transitions between
//! them.
//!
//! # What this module owns
//! [`Marks`], two flags in every task header:
//! * `queued`: the task is in the ready set (woken, not yet polled). Only
//!   the executor's thread reads or writes it, so its transitions are a
//!   relaxed load and store, never a read-modify-write.
//! * `remote`: an entry for the task, from a wake on another thread, waits
//!   in the ready queue's remote queue. Any thread may set it; only the
//!   executor's thread clears it; both with a read-modify-write.
//!
//! # Transitions
//! ```text
//! queued:  clear ──mark_queued──▶ set ──clear_queued (right before a poll)──▶ clear
//! remote:  clear ──mark_remote──▶ set ──accept_remote_wake──▶ clear (then mark_queued)
//! ```
//! `mark_queued` and `mark_remote` report whether they changed the mark,
//! which is what decides whether an entry is pushed: one entry per mark.
//! `ready.rs` explains why this protocol never loses a wake.
//!
//! # Invariants
//! * There is an entry for the task in the remote queue exactly while
//!   `remote` is set, so `accept_remote_wake` always finds it set (checked
//!   in debug builds).
//! * The task's id is in the local list or the run loop's ready set at most
//!   once: only a `mark_queued` that changed the mark adds it.

use std::sync::atomic::{AtomicBool, Ordering};

/// The ready-set marks of one task (see the module documentation).
pub(crate) struct Marks {
    queued: AtomicBool,
    remote: AtomicBool,
}

impl Marks {
    /// A task in no ready set, with no remote entry.
    pub(super) const fn new() -> Self {
        Self {
            queued: AtomicBool::new(false),
            remote: AtomicBool::new(false),
        }
    }

    /// Marks the task as in the ready set, on the executor's thread (the
    /// only one that touches the mark, so a plain load and store); returns
    /// whether it was not in it already, i.e. whether to enqueue it.
    #[inline]
    pub(crate) fn mark_queued(&self) -> bool {
        if self.queued.load(Ordering::Relaxed) {
            return false;
        }
        self.queued.store(true, Ordering::Relaxed);
        true
    }

    /// Called by the run loop right before polling: wakes during or after
    /// the poll enqueue the task again.
    #[inline]
    pub(crate) fn clear_queued(&self) {
        self.queued.store(false, Ordering::Relaxed);
    }

    /// Sets the mark of an entry waiting in the remote queue, from any
    /// thread; returns whether it was clear, i.e. whether to push one.
    #[inline]
    pub(crate) fn mark_remote(&self) -> bool {
        !self.remote.swap(true, Ordering::AcqRel)
    }

    /// Takes in the task's entry from the remote queue, on the executor's
    /// thread: returns whether the task joins the ready set now (it is not
    /// already in it). See `ReadyQueue::wake` for why the remote mark is
    /// cleared with a read-modify-write.
    #[inline]
    pub(crate) fn accept_remote_wake(&self) -> bool {
        let was_set = self.remote.swap(false, Ordering::AcqRel);
        debug_assert!(was_set, "a remote entry without its remote mark");
        self.mark_queued()
    }
}
