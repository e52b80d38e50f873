//! The header every task block starts with: what a reference that does not
//! know the task's future type can see and do.
//!
//! # What this module owns
//! * [`Header`]: the task's id, the executor it belongs to, the reference
//!   count of the block, and the task's marks in its executor's ready set.
//! * [`TaskVTable`]: what type-erased references call to poll, drop or free
//!   a task whose future type they do not know, chosen for that type when
//!   the block is allocated (see `raw.rs`).
//!
//! # Invariants
//! * Every reference to a block (its `OwnedTask`, its join handle, every
//!   owned waker) holds exactly one count of `refs`; the last one released
//!   frees the block. The count is biased towards the executor's thread
//!   while the task is in its arena (`refs.rs`): a waker cloned or dropped
//!   there during a poll costs a plain load and store; elsewhere, and once
//!   the task has left the arena, counting follows `Arc`'s protocol.
//! * The ready-set marks change only through the transitions of
//!   [`Marks`] (`wake.rs`).

use super::id::TaskId;
use crate::{core::Shared, refs::Refs, wake::Marks};
use std::{ptr::NonNull, sync::Arc, task::Context};

/// What type-erased references need to do to a task of unknown type.
pub(crate) struct TaskVTable {
    /// Polls the future once; returns whether the task is over.
    pub(super) poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> bool,
    /// Drops the future, if still there, and closes the join state.
    pub(super) drop_future: unsafe fn(NonNull<Header>),
    /// Frees the block (the last reference is gone).
    pub(super) free: unsafe fn(NonNull<Header>),
}

/// The part of a task every reference can see. Field order keeps it at
/// 48 bytes.
#[repr(C)]
pub(crate) struct Header {
    pub(super) vtable: &'static TaskVTable,
    pub(super) shared: Arc<Shared>,
    pub(super) seq: u64,
    /// References to the block: the owner, the join handle, owned wakers.
    pub(crate) refs: Refs,
    pub(super) index: u32,
    /// Where the task stands in its executor's ready set.
    pub(crate) marks: Marks,
}

impl Header {
    #[inline]
    pub(crate) fn id(&self) -> TaskId {
        TaskId::new(self.index, self.seq)
    }

    /// The state of the executor the task belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Puts the task in its executor's ready queue unless it is there
    /// already.
    #[inline]
    pub(crate) fn wake(&self) {
        self.shared.queue.wake(self);
    }

    /// Whether this thread runs the task's executor (and so holds its
    /// state's lock): the owner of the biased count.
    #[inline]
    pub(crate) fn on_owner(&self) -> bool {
        self.shared.queue.is_current()
    }

    /// Adds a reference to the block `header` lives in.
    ///
    /// # Safety
    /// `header` must point into a live task.
    #[inline]
    pub(crate) unsafe fn clone_ref(header: NonNull<Header>) {
        // SAFETY: the caller guarantees the task is alive.
        let header = unsafe { header.as_ref() };
        header.refs.clone_ref(header.on_owner());
    }

    /// Releases a reference the caller owns, freeing the block after the
    /// last.
    ///
    /// # Safety
    /// `header` must point into a live task and the caller must own one of
    /// its references, which it gives up here.
    #[inline]
    pub(crate) unsafe fn drop_ref(header: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the block alive until the
        // release below.
        let refs = unsafe { header.as_ref() };
        if refs.refs.drop_ref(refs.on_owner()) {
            // SAFETY: we released the last reference (and `drop_ref`
            // ordered every other reference's uses before this), so nothing
            // else can reach the block; its vtable was chosen for its type.
            unsafe { (header.as_ref().vtable.free)(header) }
        }
    }

    /// Releases the owner's reference (see [`Refs::release_owner`]),
    /// freeing the block if it was the last.
    ///
    /// # Safety
    /// `header` must point into a live task whose owner reference the
    /// caller gives up here, holding its executor state's lock (or being
    /// the only thread that can reach the task's count).
    pub(crate) unsafe fn release_owner(header: NonNull<Header>) {
        // SAFETY: the owner's reference keeps the block alive until the
        // release below.
        if unsafe { header.as_ref() }.refs.release_owner() {
            // SAFETY: as in `drop_ref`.
            unsafe { (header.as_ref().vtable.free)(header) }
        }
    }

    #[cfg(test)]
    pub(crate) fn refs(&self) -> usize {
        self.refs.count()
    }
}
