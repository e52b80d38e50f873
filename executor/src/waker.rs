//! Task wakers: a hand-written `RawWaker` vtable over a task's [`Header`].
//!
//! # What this module owns
//! * The waker vtable. Waker data is a pointer to the header of a task's
//!   heap block (see `arena/task.rs`), and each owned waker holds one count
//!   of that block, so a late wake of a finished task touches only the
//!   header and is harmless.
//! * [`ReadyQueue`]: where woken tasks go. Wakes on the executor's own thread
//!   (the only deterministic ones) are appended to a local list in call order;
//!   wakes from any other thread go through a lock-free queue that the run loop
//!   drains at one defined point per round.
//!
//! # Invariants
//! * A task is in the ready set at most once: `Header::queued` is set by the
//!   first wake and cleared by the executor just before it polls the task,
//!   so a duplicate wake costs one load and nothing else. Only the
//!   executor's thread touches `queued`.
//! * A wake from another thread is never lost. It sets the task's `remote`
//!   mark and, if that was clear, pushes the task's id to the remote queue;
//!   the run loop clears the mark (a read-modify-write, so it reads the
//!   waker's write and everything the waker did before it) and then treats
//!   the entry as a wake of its own. The waker never decides from `queued`,
//!   which the executor clears with a plain store just before polling: a
//!   waker reading a stale `queued == true` would skip a wake the poll
//!   already missed (the store-buffer race).
//! * A wake on the executor's thread takes no atomic read-modify-write;
//!   only wakes from other threads do.
//! * Waking allocates nothing; cloning a waker is one reference-count
//!   increment.
//! * Every waker built here owns exactly one reference to its task's block
//!   (except the borrowed waker of [`WakerRef`], which owns none and never
//!   drops one).

use crate::{
    arena::{Header, TaskId},
    Shared,
};
use crossbeam_queue::SegQueue;
use std::{
    cell::{Cell, UnsafeCell},
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
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
    /// Whether this thread runs this queue's executor right now.
    fn is_current(&self) -> bool {
        CURRENT.with(|current| std::ptr::eq(current.get(), self))
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
        if task.mark_queued() {
            // SAFETY: checked just above.
            unsafe { self.push_local(task.id()) };
        }
    }

    /// [`ReadyQueue::wake`] from a thread not running the executor.
    #[cold]
    #[inline(never)]
    fn wake_remote(&self, task: &Header) {
        if task.mark_remote() {
            self.remote.push(task.id());
        }
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
        // SAFETY: `CURRENT` points here only on the thread holding this
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
        let previous = CURRENT.with(|current| current.replace(self as *const Self));
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
    /// happened, then the wakes from other threads that `accept` takes in
    /// (it clears the task's remote mark and says whether the task joins
    /// the ready set now, see `Header::accept_remote_wake`).
    #[inline]
    pub(crate) fn drain_into(&self, out: &mut Vec<TaskId>, mut accept: impl FnMut(TaskId) -> bool) {
        // SAFETY: we are the queue's unique guard, on its thread (the guard
        // is not `Send`); nothing else borrows `local` during this call.
        let local = unsafe { &mut *self.queue.local.get() };
        if out.is_empty() {
            // Usual case: hand over the buffer instead of copying it.
            std::mem::swap(out, local);
        } else {
            out.append(local);
        }
        // Checking first is cheaper than a failed `pop`, the usual case.
        if !self.queue.remote.is_empty() {
            while let Some(id) = self.queue.remote.pop() {
                if accept(id) {
                    out.push(id);
                }
            }
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
pub(crate) fn waker(task: &crate::arena::OwnedTask) -> Waker {
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
    use crate::{
        arena::{JoinHandle, OwnedTask},
        Config, Executor, Uniform,
    };
    use std::sync::Arc;

    fn executor() -> Executor {
        Executor::new(Config {
            start: 0,
            cycle: 1,
            deadline: None,
            strategy: Box::new(Uniform::new(0)),
        })
    }

    /// A pending task outside any arena, as the run loop holds it mid-poll.
    fn task(exec: &Executor, index: u32) -> (OwnedTask, JoinHandle<()>) {
        let shared = exec.core().shared.clone();
        crate::arena::task::spawn(std::future::pending(), TaskId::new(index, 7), shared)
    }

    fn queue(exec: &Executor) -> &ReadyQueue {
        &exec.core().shared.queue
    }

    /// Drains `queue` as the run loop does, with `tasks` as the live ones.
    fn drained(queue: &ReadyQueue, tasks: &[&OwnedTask]) -> Vec<TaskId> {
        let mut out = Vec::new();
        queue.enter().drain_into(&mut out, accept(tasks));
        out
    }

    /// Takes in remote wakes of `tasks` as the run loop does.
    fn accept<'a>(tasks: &'a [&'a OwnedTask]) -> impl FnMut(TaskId) -> bool + 'a {
        |id| {
            tasks
                .iter()
                .find(|task| task.header().id() == id)
                .is_some_and(|task| task.header().accept_remote_wake())
        }
    }

    #[test]
    // The owned clone is the point: `wake` (by value) must enqueue once too.
    #[allow(clippy::waker_clone_wake)]
    fn duplicate_wakes_enqueue_once() {
        let exec = executor();
        let (task, _handle) = task(&exec, 3);
        let w = waker(&task);
        // From a thread not running the executor: one remote entry.
        w.wake_by_ref();
        w.wake_by_ref();
        w.clone().wake();
        assert_eq!(queue(&exec).remote.len(), 1);
        assert_eq!(drained(queue(&exec), &[&task]), vec![TaskId::new(3, 7)]);
        // Queued and not yet polled: a new remote entry joins nothing.
        w.wake_by_ref();
        assert!(drained(queue(&exec), &[&task]).is_empty());
        task.header().clear_queued();
        w.wake();
        assert_eq!(drained(queue(&exec), &[&task]), vec![TaskId::new(3, 7)]);
    }

    #[test]
    fn queued_task_is_not_enqueued_again() {
        let exec = executor();
        let (task, _handle) = task(&exec, 1);
        let guard = queue(&exec).enter();
        waker(&task).wake_by_ref();
        waker(&task).wake();
        let mut out = Vec::new();
        guard.drain_into(&mut out, accept(&[&task]));
        assert_eq!(out, vec![TaskId::new(1, 7)], "one entry for two wakes");
        waker(&task).wake();
        assert!(guard.is_empty(), "still queued: not enqueued again");
    }

    #[test]
    fn wakers_keep_the_task_alive_and_release_it() {
        let exec = executor();
        // Each live task block holds one count of its executor's state.
        let blocks = || Arc::strong_count(&exec.core().shared) - 1;
        let (task, handle) = task(&exec, 1);
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
        assert!(drained(queue(&exec), &[]).is_empty());
        drop(owned);
        assert_eq!(blocks(), 0, "the last waker frees the block");
    }

    #[test]
    fn local_and_remote_wakes() {
        let exec = executor();
        let (task, _handle) = task(&exec, 5);
        let queue = queue(&exec);
        let w = waker(&task);
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert_eq!(queue.remote.len(), 1);
        assert_eq!(drained(queue, &[&task]), vec![TaskId::new(5, 7)]);

        task.header().clear_queued();
        let guard = queue.enter();
        waker(&task).wake();
        assert!(
            queue.remote.is_empty(),
            "a wake on the running thread stays local"
        );
        assert!(!guard.is_empty());
        let mut out = Vec::new();
        guard.drain_into(&mut out, accept(&[&task]));
        assert_eq!(out, vec![TaskId::new(5, 7)]);
        assert!(guard.is_empty());
    }

    #[test]
    #[should_panic(expected = "already running")]
    fn a_queue_cannot_be_entered_twice() {
        let queue = ReadyQueue::default();
        let _first = queue.enter();
        let _second = queue.enter();
    }

    #[test]
    fn leaving_restores_the_outer_queue() {
        let (outer, inner) = (executor(), executor());
        let (inner_task, _handle) = task(&inner, 2);
        let outer_guard = queue(&outer).enter();
        {
            let _inner_guard = queue(&inner).enter();
        }
        waker(&inner_task).wake();
        assert!(outer_guard.is_empty(), "inner's wake is not outer's");
        assert_eq!(queue(&inner).remote.len(), 1, "inner is no longer current");
    }
}
