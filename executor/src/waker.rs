//! Task wakers: a hand-written `RawWaker` vtable over a per-task [`Header`].
//!
//! # What this module owns
//! * [`Header`]: the part of a task that wakers point at. It outlives the
//!   task's arena slot for as long as any waker holds it, so a late wake of a
//!   finished task touches only the header and is harmless.
//! * [`ReadyQueue`]: where woken tasks go. Wakes on the executor's own thread
//!   (the only deterministic ones) are appended to a local list in call order;
//!   wakes from any other thread go through a lock-free queue that the run loop
//!   drains at one defined point per round.
//!
//! # Invariants
//! * A task is in the ready queue at most once: `Header::queued` is set by the
//!   first wake and cleared by the executor just before it polls the task, so
//!   duplicate wakes cost one atomic swap and nothing else.
//! * Waking allocates nothing; cloning a waker is one reference-count
//!   increment.
//! * Every waker built here owns exactly one strong count of its `Header`
//!   (except the borrowed waker of [`WakerRef`], which owns none and never
//!   drops one).

use crate::arena::TaskId;
use crossbeam_queue::SegQueue;
use std::{
    cell::{Cell, UnsafeCell},
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{RawWaker, RawWakerVTable, Waker},
};

thread_local! {
    /// The ready queue of the executor running on this thread, if any.
    static CURRENT: Cell<*const ReadyQueue> = const { Cell::new(std::ptr::null()) };
}

/// Tasks woken since the run loop last looked.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    /// Wakes made on the thread running this queue's executor. Only that
    /// thread touches it: through `push` while `CURRENT` points here, or
    /// through the [`EnterGuard`] it holds. Needs no lock.
    local: UnsafeCell<Vec<TaskId>>,
    /// Wakes from every other thread.
    remote: SegQueue<TaskId>,
    /// Whether an [`EnterGuard`] exists (at most one at a time).
    entered: AtomicBool,
}

// SAFETY: `remote` and `entered` are thread-safe. `local` is only accessed
// by the single thread that holds this queue's `EnterGuard` (`enter` refuses
// a second guard), and on that thread only while `CURRENT` points here or
// through the guard itself; no access hands out a reference that outlives
// the call, so accesses never overlap.
unsafe impl Sync for ReadyQueue {}

impl ReadyQueue {
    pub(crate) fn push(&self, id: TaskId) {
        if CURRENT.with(|current| std::ptr::eq(current.get(), self)) {
            // SAFETY: `CURRENT` points here only on the thread holding this
            // queue's unique `EnterGuard` (see the `Sync` impl); the borrow
            // ends before this call returns.
            unsafe { (*self.local.get()).push(id) };
        } else {
            self.remote.push(id);
        }
    }

    /// Marks this queue as the current thread's executor queue until the
    /// guard is dropped. Panics if the executor is already running (on this
    /// thread or another): one executor, one run loop.
    pub(crate) fn enter(self: &Arc<Self>) -> EnterGuard<'_> {
        if self.entered.swap(true, Ordering::Acquire) {
            panic!("this executor is already running (a run loop cannot be re-entered)");
        }
        let previous = CURRENT.with(|current| current.replace(Arc::as_ptr(self)));
        EnterGuard {
            previous,
            queue: self,
            _not_send: PhantomData,
        }
    }
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
    /// happened, then wakes from other threads.
    pub(crate) fn drain_into(&self, out: &mut Vec<TaskId>) {
        // SAFETY: we are the queue's unique guard, on its thread (the guard
        // is not `Send`); nothing else borrows `local` during this call.
        let local = unsafe { &mut *self.queue.local.get() };
        if out.is_empty() {
            // Usual case: hand over the buffer instead of copying it.
            std::mem::swap(out, local);
        } else {
            out.append(local);
        }
        while let Some(id) = self.queue.remote.pop() {
            out.push(id);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: as in `drain_into`.
        let local = unsafe { &*self.queue.local.get() };
        local.is_empty() && self.queue.remote.is_empty()
    }
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
        self.queue.entered.store(false, Ordering::Release);
    }
}

/// The waker-visible part of a task.
pub(crate) struct Header {
    id: TaskId,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
}

impl Header {
    /// A new header for a task that starts out queued (it is pushed to the
    /// ready queue by the spawner).
    pub(crate) fn new(id: TaskId, queue: Arc<ReadyQueue>) -> Self {
        Self {
            id,
            queued: AtomicBool::new(true),
            queue,
        }
    }

    pub(crate) fn wake(&self) {
        // The load makes a duplicate wake a plain read, not a write.
        if !self.queued.load(Ordering::Acquire) && !self.queued.swap(true, Ordering::AcqRel) {
            self.queue.push(self.id);
        }
    }

    /// Called by the executor right before polling: wakes during or after
    /// the poll enqueue the task again.
    pub(crate) fn clear_queued(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::<Header>::into_raw` or `Arc::as_ptr` and
    // the waker being cloned keeps that header alive; the new waker owns the
    // strong count added here.
    unsafe { Arc::increment_strong_count(data as *const Header) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: an owned waker holds one strong count (see `clone` and
    // `Header::waker`); `wake` consumes the waker, so we take that count back.
    let header = unsafe { Arc::from_raw(data as *const Header) };
    header.wake();
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker calling us is alive and keeps the header alive.
    let header = unsafe { &*(data as *const Header) };
    header.wake();
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: an owned waker holds one strong count, released exactly once
    // here. `WakerRef` never reaches this function (it is `ManuallyDrop`).
    unsafe { Arc::decrement_strong_count(data as *const Header) };
}

/// An owned waker for `header`.
#[cfg(test)]
pub(crate) fn waker(header: Arc<Header>) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(header) as *const (), &VTABLE);
    // SAFETY: the vtable functions uphold the `RawWaker` contract: they are
    // thread-safe (`Header` is `Send + Sync`) and manage exactly the strong
    // count transferred by `Arc::into_raw` above.
    unsafe { Waker::from_raw(raw) }
}

/// A waker borrowed from a header the caller keeps alive: building it costs
/// no reference-count traffic. Cloning it yields an ordinary owned waker.
pub(crate) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _header: PhantomData<&'a Header>,
}

impl<'a> WakerRef<'a> {
    pub(crate) fn new(header: &'a Arc<Header>) -> Self {
        let raw = RawWaker::new(Arc::as_ptr(header) as *const (), &VTABLE);
        // SAFETY: the waker is never dropped (`ManuallyDrop`), so it never
        // releases a count it does not own; `wake` by value is impossible
        // through `&Waker`, and `clone` adds its own count. The borrow of
        // `header` keeps the pointee alive for `'a`.
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

    fn header(index: u32) -> (Arc<ReadyQueue>, Arc<Header>) {
        let queue = Arc::new(ReadyQueue::default());
        let header = Arc::new(Header::new(TaskId::new(index, 7), queue.clone()));
        (queue, header)
    }

    fn drained(queue: &Arc<ReadyQueue>) -> Vec<TaskId> {
        let mut out = Vec::new();
        queue.enter().drain_into(&mut out);
        out
    }

    #[test]
    // The owned clone is the point: `wake` (by value) must enqueue once too.
    #[allow(clippy::waker_clone_wake)]
    fn duplicate_wakes_enqueue_once() {
        let (queue, header) = header(3);
        header.clear_queued();
        let w = waker(header.clone());
        w.wake_by_ref();
        w.wake_by_ref();
        w.clone().wake();
        assert_eq!(drained(&queue), vec![TaskId::new(3, 7)]);
        header.clear_queued();
        w.wake();
        assert_eq!(drained(&queue), vec![TaskId::new(3, 7)]);
        assert_eq!(Arc::strong_count(&header), 1);
    }

    #[test]
    fn queued_task_is_not_enqueued_again() {
        let (queue, header) = header(1);
        waker(header.clone()).wake();
        assert!(drained(&queue).is_empty(), "a new header starts queued");
    }

    #[test]
    fn waker_ref_does_not_touch_counts() {
        let (_queue, header) = header(1);
        {
            let borrowed = WakerRef::new(&header);
            assert_eq!(Arc::strong_count(&header), 1);
            let owned = (*borrowed).clone();
            assert_eq!(Arc::strong_count(&header), 2);
            drop(owned);
        }
        assert_eq!(Arc::strong_count(&header), 1);
    }

    #[test]
    fn local_and_remote_wakes() {
        let (queue, header) = header(5);
        header.clear_queued();
        let w = waker(header.clone());
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert_eq!(queue.remote.len(), 1);
        assert_eq!(drained(&queue), vec![TaskId::new(5, 7)]);

        header.clear_queued();
        let guard = queue.enter();
        waker(header.clone()).wake();
        assert!(
            queue.remote.is_empty(),
            "a wake on the running thread stays local"
        );
        assert!(!guard.is_empty());
        let mut out = Vec::new();
        guard.drain_into(&mut out);
        assert_eq!(out, vec![TaskId::new(5, 7)]);
        assert!(guard.is_empty());
    }

    #[test]
    #[should_panic(expected = "already running")]
    fn a_queue_cannot_be_entered_twice() {
        let (queue, _header) = header(1);
        let _first = queue.enter();
        let _second = queue.enter();
    }

    #[test]
    fn leaving_restores_the_outer_queue() {
        let (outer, _) = header(1);
        let (inner, inner_header) = header(2);
        let outer_guard = outer.enter();
        {
            let _inner_guard = inner.enter();
        }
        inner_header.clear_queued();
        waker(inner_header.clone()).wake();
        assert!(outer_guard.is_empty(), "inner's wake is not outer's");
        assert_eq!(inner.remote.len(), 1, "inner is no longer current");
    }
}
