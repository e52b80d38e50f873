//! Task wakers: a hand-written `RawWaker` vtable over a task's [`Header`].
//!
//! # What this module owns
//! The waker vtable. Waker data is a pointer to the header of a task's heap
//! block (see `raw.rs`), and each owned waker holds one count of that block,
//! so a late wake of a finished task touches only the header and is
//! harmless. A wake goes to the task's executor's ready queue (`ready.rs`).
//!
//! It also owns `CURRENT`, the thread-local naming the ready queue of the
//! executor running on this thread (set and restored by `ready.rs`'s
//! `EnterGuard`), because every wake reads it: see [Codegen](#codegen).
//!
//! # Invariants
//! * Waking allocates nothing; cloning a waker is one reference-count
//!   increment.
//! * Every waker built here owns exactly one reference to its task's block
//!   (except the borrowed waker of [`WakerRef`], which owns none and never
//!   drops one).
//!
//! # Codegen
//! A wake on the executor's thread is a handful of instructions, one of
//! them the read of `CURRENT`, so how that read compiles shows. A library
//! is compiled as position-independent code that may end up in a shared
//! object, so a thread-local defined in another codegen unit, or visible to
//! other units at all, is read with the general-dynamic model (after the
//! linker relaxes it in an executable: `mov %fs:0,%rax; lea off(%rax),%rax`,
//! then the load). A thread-local that only its own unit references gets
//! internal linkage and the local-dynamic model, which relaxes to
//! `mov %fs:0,%rax` with the offset folded into the load: one instruction
//! less per wake. So `CURRENT` lives in the module of the vtable functions
//! (a module is never split across codegen units), and only the two
//! non-`#[inline]` functions next to it touch it: marking them `#[inline]`
//! would copy the access into every unit that wakes a task and cost every
//! wake that instruction.

use super::{header::Header, id::TaskId};
use crate::{core::Shared, ready::ReadyQueue};
use std::{
    cell::Cell,
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    ptr::NonNull,
    task::{RawWaker, RawWakerVTable, Waker},
};

thread_local! {
    /// The ready queue of the executor running on this thread, if any.
    /// Touched only by the two functions below (see [Codegen](#codegen)).
    static CURRENT: Cell<*const ReadyQueue> = const { Cell::new(std::ptr::null()) };
}

/// Whether `queue` is the ready queue of the executor running on this
/// thread. Deliberately not `#[inline]` (see [Codegen](#codegen)): the
/// wakes below inline it, being in this codegen unit; a caller elsewhere
/// (a spawn, a timer firing) makes a call.
pub(crate) fn is_current_queue(queue: &ReadyQueue) -> bool {
    CURRENT.with(|current| std::ptr::eq(current.get(), queue))
}

/// Makes `queue` this thread's current ready queue and returns the one it
/// replaces (`EnterGuard` puts that back when it drops). Not `#[inline]`,
/// for the same reason as [`is_current_queue`].
pub(crate) fn replace_current_queue(queue: *const ReadyQueue) -> *const ReadyQueue {
    CURRENT.with(|current| current.replace(queue))
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// The header behind waker data.
///
/// # Safety
/// `data` must come from a waker built here, which keeps its task alive.
unsafe fn header<'a>(data: *const ()) -> &'a Header {
    // SAFETY: waker data is always a non-null header pointer of a live task.
    unsafe { &*(data as *const Header) }
}

/// Waker data as the header pointer it is.
///
/// # Safety
/// As for [`header`].
unsafe fn raw(data: *const ()) -> NonNull<Header> {
    // SAFETY: waker data is never null (see `header`).
    unsafe { NonNull::new_unchecked(data as *mut Header) }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned keeps the task alive; the new waker
    // owns the count added here.
    unsafe { Header::clone_ref(raw(data)) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: an owned waker holds one count (see `clone`); `wake` consumes
    // the waker, so after waking we give that count up.
    unsafe {
        header(data).wake();
        Header::drop_ref(raw(data));
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker calling us is alive and keeps the task alive.
    unsafe { header(data).wake() };
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: an owned waker holds one count, released exactly once here.
    // `WakerRef` never reaches this function (it is `ManuallyDrop`).
    unsafe { Header::drop_ref(raw(data)) };
}

/// The task `waker` wakes, if it is a task waker of the executor whose
/// state is `shared`: the timer wheel then keeps the id instead of a clone,
/// sparing two reference-count updates per sleep.
pub(crate) fn task_of(waker: &Waker, shared: &Shared) -> Option<TaskId> {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return None;
    }
    // SAFETY: every waker with our vtable carries a task header pointer as
    // data, and the borrowed `waker` keeps that task alive during this call.
    let header = unsafe { header(waker.data()) };
    std::ptr::eq(&**header.shared(), shared).then(|| header.id())
}

/// An owned waker for the task `task` owns.
#[cfg(test)]
pub(crate) fn waker(task: &super::OwnedTask) -> Waker {
    (*WakerRef::new(task.header())).clone()
}

/// A waker borrowed from a task the caller keeps alive: building it costs
/// no reference-count traffic. Cloning it yields an ordinary owned waker.
pub(crate) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _header: PhantomData<&'a Header>,
}

impl<'a> WakerRef<'a> {
    /// `header` must be a task's header (the only kind there is).
    pub(crate) fn new(header: &'a Header) -> Self {
        let raw = RawWaker::new(header as *const Header as *const (), &VTABLE);
        // SAFETY: the vtable functions uphold the `RawWaker` contract: they
        // are thread-safe (the header is `Send + Sync`) and each owned waker
        // holds exactly one count. This one is never dropped
        // (`ManuallyDrop`), so it never releases a count it does not own;
        // `wake` by value is impossible through `&Waker`, and `clone` adds
        // its own count. Whoever lent `header` keeps the task alive for `'a`.
        let waker = unsafe { Waker::from_raw(raw) };
        Self {
            waker: ManuallyDrop::new(waker),
            _header: PhantomData,
        }
    }
}

impl Deref for WakerRef<'_> {
    type Target = Waker;
    fn deref(&self) -> &Waker {
        &self.waker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{bare_executor, drained, unqueued_task};
    use std::sync::Arc;

    #[test]
    fn wakers_keep_the_task_alive_and_release_it() {
        let exec = bare_executor();
        // Each live task block holds one count of its executor's state.
        let blocks = || Arc::strong_count(&exec.core().shared) - 1;
        let (task, handle) = unqueued_task(&exec, 1);
        assert_eq!(blocks(), 1);
        assert_eq!(task.header().refs(), 2, "the owner and the join handle");
        assert!((*WakerRef::new(task.header()))
            .clone()
            .will_wake(&waker(&task)));
        assert_eq!(task.header().refs(), 2, "both clones above are gone");
        let owned = (*WakerRef::new(task.header())).clone();
        assert_eq!(task.header().refs(), 3, "an owned waker holds one");
        drop(handle);
        drop(task);
        assert_eq!(blocks(), 1, "the owned waker keeps the block alive");
        // A late wake touches only the header and the queue, and the run
        // loop finds no task for its entry.
        owned.wake_by_ref();
        assert!(drained(&exec.core().shared.queue, &[]).is_empty());
        drop(owned);
        assert_eq!(blocks(), 0, "the last waker frees the block");
    }
}
