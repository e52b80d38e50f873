//! The wake protocol's core: a task's marks in its executor's ready set,
//! the remote queue that wakes from other threads go through, and the
//! transitions between them.
//!
//! # What this module owns
//! * [`Marks`], two flags in every task header:
//!   * `queued`: the task is in the ready set (woken, not yet polled). Only
//!     the executor's thread reads or writes it, so its transitions are a
//!     relaxed load and store, never a read-modify-write.
//!   * `remote`: an entry for the task, from a wake on another thread,
//!     waits in the remote queue. Any thread may set it; only the
//!     executor's thread clears it; both with a read-modify-write.
//! * [`RemoteQueue`]: the lock-free queue of those entries, with the wake
//!   that pushes one ([`RemoteQueue::wake`]) and the step of the run loop
//!   that takes them in ([`RemoteQueue::drain_into`]).
//!
//! The ready queue (`ready.rs`) decides which thread a wake comes from and
//! keeps the local list; the run loop (`run.rs`) drains both once per round
//! and clears `queued` right before each poll. Everything that two threads
//! touch in a wake is here, and compiles on its own (see *Models* below).
//!
//! # Transitions
//! ```text
//! queued:  clear ──mark_queued──▶ set ──clear_queued (right before a poll)──▶ clear
//! remote:  clear ──mark_remote──▶ set ──accept_remote_wake──▶ clear (then mark_queued)
//! ```
//! `mark_queued` and `mark_remote` report whether they changed the mark,
//! which is what decides whether an entry is pushed: one entry per mark.
//!
//! # Invariants
//! * There is an entry for the task in the remote queue exactly while
//!   `remote` is set, so `accept_remote_wake` always finds it set (checked
//!   in debug builds).
//! * The task's id is in the local list or the run loop's ready set at most
//!   once: only a `mark_queued` that changed the mark adds it.
//! * A wake from another thread is never lost: if the poll that follows
//!   the executor's `clear_queued` misses what the waker wrote before
//!   waking, the task is in the ready set again once the remote queue is
//!   next drained, and that later poll sees the write. The waker decides
//!   from `remote` alone, a read-modify-write on both sides, so it never
//!   reads a stale mark; and the executor clears `remote` with a swap, so
//!   it reads the latest waker's write to the mark (release) and with it
//!   everything that waker wrote before, even when that waker pushed no
//!   entry of its own. A waker deciding from `queued` instead could read
//!   a stale `queued == true` while the executor's clear still sat in its
//!   store buffer, after the poll had already read the data: the wake
//!   would be dropped and the task would stall.
//!
//! # Models
//! `wake/loom_models.rs` checks the last two invariants (no lost wake, at
//! most one place in the ready set) with loom, which runs a small program
//! under every interleaving of its threads and every value a weakly
//! ordered load may return. Under `--cfg loom`, [`Marks`] and
//! [`RemoteQueue`] are built on loom's atomics and a loom-visible queue
//! (`sync.rs`), and the crate compiles only this module and `sync.rs`: the
//! rest of the executor (the thread-local current queue, the arena, the
//! task blocks) cannot run under loom and is not needed, since the models
//! call these very functions the way the ready queue and the run loop do.
//! Each model has one task; a waker writes a flag and then wakes it, and a
//! poll reads every flag, relaxed, so only the protocol orders them. Once
//! the wakers are done, the run loop's next drain must find the task ready
//! if the last poll missed a flag, and the poll that follows must see all.
//! * One waker on another thread while the executor runs a round
//!   (clear-before-poll, poll, drain). Exhaustive.
//! * Two such wakers over two rounds: the second may find the first's
//!   entry pending and push none. Up to five preemptions (about 28,000
//!   executions); `LOOM_MAX_PREEMPTIONS=50` explores it all (about 960,000
//!   executions, a minute in release).
//! * A wake racing the drain that takes in an earlier entry of the task.
//!   Exhaustive.
//! * The counterexample: the first model over a waker that decides from
//!   `queued` alone (a test-only variant in the models' file). The test
//!   passes only if loom finds the lost wake.
//!
//! Weakening either swap on `remote` to a relaxed one, or clearing it with
//! a store, fails the second and third models.
//!
//! Run them (a debug build, so the assertion that every entry finds its
//! mark set is checked too):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p commonware-executor --lib loom`.
//! Add `-- --nocapture` to see how many executions each model took.

use crate::sync::{AtomicBool, Ordering, SegQueue};

/// The ready-set marks of one task (see the module documentation).
pub(crate) struct Marks {
    queued: AtomicBool,
    remote: AtomicBool,
}

impl Marks {
    /// A task in no ready set, with no remote entry.
    pub(crate) fn new() -> Self {
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

    /// Whether the task is in the ready set (read by the stall and timeout
    /// reports, on the executor's thread).
    pub(crate) fn is_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed)
    }

    /// Called by the run loop right before polling: wakes during or after
    /// the poll enqueue the task again.
    #[inline]
    pub(crate) fn clear_queued(&self) {
        self.queued.store(false, Ordering::Relaxed);
    }

    /// Sets the mark of an entry waiting in the remote queue, from any
    /// thread; returns whether it was clear, i.e. whether to push one.
    /// Release: the executor's `accept_remote_wake` reads this write, and
    /// so sees what the waker wrote before waking.
    #[inline]
    pub(crate) fn mark_remote(&self) -> bool {
        !self.remote.swap(true, Ordering::AcqRel)
    }

    /// Takes in the task's entry from the remote queue, on the executor's
    /// thread: returns whether the task joins the ready set now (it is not
    /// already in it). A swap, not a store: it reads the latest
    /// `mark_remote`, including one whose waker found the mark set and
    /// pushed nothing, and acquires what that waker wrote before waking.
    #[inline]
    pub(crate) fn accept_remote_wake(&self) -> bool {
        let was_set = self.remote.swap(false, Ordering::AcqRel);
        debug_assert!(was_set, "a remote entry without its remote mark");
        self.mark_queued()
    }
}

/// Wakes from threads other than the executor's: at most one entry per
/// task, guarded by the task's `remote` mark.
///
/// The queue itself is allocated by the first such wake: most runs never
/// see one, and the queue (two cache-padded ends) would otherwise make
/// every executor's state an over-aligned allocation twice its size. A
/// drain that finds no queue yet finds what a drain of an empty one
/// would; the once-cell publishes the queue (release, acquire) before any
/// entry pushed into it can be seen. The models use an eager queue.
pub(crate) struct RemoteQueue<T> {
    #[cfg(not(loom))]
    entries: std::sync::OnceLock<Box<SegQueue<T>>>,
    #[cfg(loom)]
    entries: SegQueue<T>,
}

impl<T: Copy> RemoteQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            entries: std::sync::OnceLock::new(),
            #[cfg(loom)]
            entries: SegQueue::new(),
        }
    }

    /// The queue, if a remote wake ever built it.
    #[inline]
    fn queue(&self) -> Option<&SegQueue<T>> {
        #[cfg(not(loom))]
        return self.entries.get().map(|queue| &**queue);
        #[cfg(loom)]
        return Some(&self.entries);
    }

    /// A wake of the task with marks `marks`, from a thread other than the
    /// executor's: pushes an entry with the task's id unless one waits
    /// already. `id` is called only to push, after the mark is taken.
    #[inline]
    pub(crate) fn wake(&self, marks: &Marks, id: impl FnOnce() -> T) {
        if marks.mark_remote() {
            #[cfg(not(loom))]
            let queue = self.entries.get_or_init(|| Box::new(SegQueue::new()));
            #[cfg(loom)]
            let queue = &self.entries;
            queue.push(id());
        }
    }

    /// Takes in every waiting entry, on the executor's thread, in push
    /// order: clears the task's `remote` mark and appends its id to `out`
    /// unless the task is in the ready set already. `marks_of` finds a
    /// task's marks, or `None` if the task is gone (its entry is dropped).
    #[inline]
    pub(crate) fn drain_into<'a>(
        &self,
        out: &mut Vec<T>,
        mut marks_of: impl FnMut(T) -> Option<&'a Marks>,
    ) {
        let Some(queue) = self.queue() else {
            return;
        };
        // Checking first is cheaper than a failed `pop`, the usual case.
        if !queue.is_empty() {
            while let Some(id) = queue.pop() {
                if marks_of(id).is_some_and(Marks::accept_remote_wake) {
                    out.push(id);
                }
            }
        }
    }

    /// Whether no entry waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue().is_none_or(SegQueue::is_empty)
    }

    /// How many entries wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue().map_or(0, SegQueue::len)
    }
}

impl<T: Copy> Default for RemoteQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, loom))]
mod loom_models;
