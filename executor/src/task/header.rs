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
//!   frees the block. Counting follows `Arc`'s protocol (relaxed increments,
//!   release decrements, an acquire fence before the free), without `Arc`'s
//!   unused weak count: eight bytes a task, which keeps a small task's block
//!   within the allocator's cheapest size classes.
//! * The ready-set marks change only through the transitions of
//!   [`Marks`] (`wake.rs`).

use super::id::TaskId;
use crate::{core::Shared, wake::Marks};
use std::{
    ptr::NonNull,
    sync::{
        atomic::{fence, AtomicUsize, Ordering},
        Arc,
    },
    task::Context,
};

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
/// 40 bytes.
#[repr(C)]
pub(crate) struct Header {
    pub(super) vtable: &'static TaskVTable,
    pub(super) shared: Arc<Shared>,
    pub(super) seq: u64,
    /// References to the block: the owner, the join handle, owned wakers.
    pub(super) refs: AtomicUsize,
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

    /// Adds a reference to the block `header` lives in.
    ///
    /// # Safety
    /// `header` must point into a live task.
    pub(crate) unsafe fn clone_ref(header: NonNull<Header>) {
        // SAFETY: the caller guarantees the task is alive.
        let refs = unsafe { &header.as_ref().refs };
        // Relaxed, as `Arc::clone`: a new reference is made from an existing
        // one, which already orders everything before it.
        if refs.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
            // Billions of leaked wakers: stop before the count wraps.
            std::process::abort();
        }
    }

    /// Releases a reference the caller owns, freeing the block after the
    /// last.
    ///
    /// # Safety
    /// `header` must point into a live task and the caller must own one of
    /// its references, which it gives up here.
    pub(crate) unsafe fn drop_ref(header: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the block alive until the
        // decrement below.
        let refs = unsafe { &header.as_ref().refs };
        if refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other reference's last use happened before its decrement
        // (release); this fence makes all of them happen before the free.
        fence(Ordering::Acquire);
        // SAFETY: we released the last reference, so nothing else can reach
        // the block; its vtable was chosen for its type.
        unsafe { (header.as_ref().vtable.free)(header) }
    }

    #[cfg(test)]
    pub(crate) fn refs(&self) -> usize {
        self.refs.load(Ordering::Relaxed)
    }
}
