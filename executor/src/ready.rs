//! The ready queue: where woken tasks wait for the next round.
//!
//! # What this module owns
//! [`ReadyQueue`]: wakes on the executor's own thread (the only
//! deterministic ones) are appended to a local list in call order; wakes
//! from any other thread go through a lock-free queue (`wake.rs`) that the
//! run loop drains at one defined point per round. [`EnterGuard`] is the
//! run loop's proof that it runs the queue's executor on this thread.
//!
//! # Invariants
//! * A task is in the ready set at most once: the `queued` mark is set by the
//!   first wake and cleared by the executor just before it polls the task,
//!   so a duplicate wake costs one load and nothing else. Only the
//!   executor's thread touches `queued`.
//! * A wake from another thread is never lost: it goes through the task's
//!   `remote` mark and the remote queue, never through `queued` (`wake.rs`
//!   holds that protocol, why it never loses a wake, and its loom models).
//! * A wake on the executor's thread takes no atomic read-modify-write;
//!   only wakes from other threads do. Waking allocates nothing once the
//!   local list has grown to the program's usual number of ready tasks.

use crate::{
    task::{waker, Header, TaskId},
    wake::{Marks, RemoteQueue},
};
use std::{
    cell::UnsafeCell,
    marker::PhantomData,
    sync::atomic::{AtomicBool, Ordering},
};

/// Tasks woken since the run loop last looked.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// Wakes made on the thread running this queue's executor. Only that
    /// thread touches it: through `push` while this is the thread's current
    /// queue, or through the [`EnterGuard`] it holds. Needs no lock.
    local: UnsafeCell<Vec<TaskId>>,
    /// Wakes from every other thread.
    remote: RemoteQueue<TaskId>,
    /// Whether an [`EnterGuard`] exists (at most one at a time).
    entered: AtomicBool,
}

// SAFETY: `remote` and `entered` are thread-safe. `local` is only accessed
// by the single thread that holds this queue's `EnterGuard` (`enter` refuses
// a second guard), and on that thread only while this is the thread's
// current queue (`task::waker::CURRENT`) or through the guard itself; no
// access hands out a reference that outlives the call, so accesses never
// overlap.
unsafe impl Sync for ReadyQueue {}

impl ReadyQueue {
    /// An empty queue whose local list starts in `local`'s memory.
    pub(crate) fn with_local(mut local: Vec<TaskId>) -> Self {
        local.clear();
        Self {
            local: UnsafeCell::new(local),
            ..Self::default()
        }
    }

    /// Whether this thread runs this queue's executor right now (the
    /// thread-local that says so lives in `task/waker.rs`, which explains
    /// why).
    #[inline]
    fn is_current(&self) -> bool {
        waker::is_current_queue(self)
    }

    /// Wakes `task`. On the executor's own thread (whose wakes are the
    /// deterministic ones) the task joins the local list unless its
    /// `queued` mark says it is in the ready set already, with a plain load
    /// and store of the mark. From any other thread the task's id goes to
    /// the remote queue unless its `remote` mark says an entry waits there
    /// already (see the module invariants).
    #[inline]
    pub(crate) fn wake(&self, task: &Header) {
        if !self.is_current() {
            return self.wake_remote(task);
        }
        if task.marks.mark_queued() {
            // SAFETY: checked just above.
            unsafe { self.push_local(task.id()) };
        }
    }

    /// [`ReadyQueue::wake`] from a thread not running the executor.
    #[cold]
    #[inline(never)]
    fn wake_remote(&self, task: &Header) {
        self.remote.wake(&task.marks, || task.id());
    }

    /// Appends to the local wakes.
    ///
    /// # Safety
    /// `self.is_current()` must hold.
    ///
    /// Written as a store into spare capacity with growth out of line, so
    /// the wake it is inlined into makes no call on its usual paths and
    /// needs no saved registers (a duplicate wake is then a few loads).
    #[inline]
    unsafe fn push_local(&self, id: TaskId) {
        // SAFETY: this is the current queue only on the thread holding this
        // queue's unique `EnterGuard` (see the `Sync` impl), as the caller
        // checked; the borrow ends before this call returns.
        let local = unsafe { &mut *self.local.get() };
        let len = local.len();
        match local.spare_capacity_mut().first_mut() {
            Some(slot) => {
                slot.write(id);
                // SAFETY: the element at `len` was just initialized, and
                // `len < capacity` (it was spare).
                unsafe { local.set_len(len + 1) };
            }
            None => grow_and_push(local, id),
        }
    }

    /// Marks this queue as the current thread's executor queue until the
    /// guard is dropped. Panics if the executor is already running (on this
    /// thread or another): one executor, one run loop.
    pub(crate) fn enter(&self) -> EnterGuard<'_> {
        if self.entered.swap(true, Ordering::Acquire) {
            panic!("this executor is already running (a run loop cannot be re-entered)");
        }
        let previous = waker::replace_current_queue(self);
        EnterGuard {
            previous,
            queue: self,
            _not_send: PhantomData,
        }
    }
}

/// Appends `id` to a full list (out of line: rare once the list has grown).
#[cold]
#[inline(never)]
fn grow_and_push(local: &mut Vec<TaskId>, id: TaskId) {
    local.push(id);
}

/// Proof that the current thread runs a queue's executor: the only way to
/// read the local wakes. Restores the previous current queue on drop
/// (executors may nest, e.g. a deterministic runtime started from inside
/// another one's task).
pub(crate) struct EnterGuard<'a> {
    previous: *const ReadyQueue,
    queue: &'a ReadyQueue,
    /// The guard must be dropped on the thread that created it.
    _not_send: PhantomData<*const ()>,
}

impl EnterGuard<'_> {
    /// Moves every woken task into `out`: local wakes in the order they
    /// happened, then the wakes from other threads that join the ready set
    /// now (see [`RemoteQueue::drain_into`]; `marks_of` finds a live task's
    /// marks).
    #[inline]
    pub(crate) fn drain_into<'a>(
        &self,
        out: &mut Vec<TaskId>,
        marks_of: impl FnMut(TaskId) -> Option<&'a Marks>,
    ) {
        // SAFETY: we are the queue's unique guard, on its thread (the guard
        // is not `Send`); nothing else borrows `local` during this call.
        let local = unsafe { &mut *self.queue.local.get() };
        if out.is_empty() {
            // Usual case: hand over the buffer instead of copying it.
            std::mem::swap(out, local);
        } else {
            out.append(local);
        }
        self.queue.remote.drain_into(out, marks_of);
    }

    /// Empties the local list and takes its memory (for `spare.rs`).
    pub(crate) fn take_local(&self) -> Vec<TaskId> {
        // SAFETY: as in `drain_into`.
        let local = unsafe { &mut *self.queue.local.get() };
        let mut taken = std::mem::take(local);
        taken.clear();
        taken
    }

    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: as in `drain_into`.
        let local = unsafe { &*self.queue.local.get() };
        local.is_empty() && self.queue.remote.is_empty()
    }
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        waker::replace_current_queue(self.previous);
        self.queue.entered.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
