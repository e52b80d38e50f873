//! One heap block per task: waker header, join state and future together.
//!
//! # What this module owns
//! The memory behind every spawned task (`Task<F>`) and the three kinds of
//! reference to it, each holding one count of the header's `refs` (the last
//! one out frees the block):
//! * [`OwnedTask`]: exactly one per task, held by the task's arena slot.
//!   Through it (or its [`Poller`]) alone is the future polled and dropped
//!   (when the task completes, is aborted, or its executor ends).
//! * wakers (`waker.rs`): see only the [`Header`].
//! * [`JoinHandle<T>`]: sees the header and the join state, which it can
//!   name knowing only the output type `T`.
//!
//! # Invariants
//! * Layout: `Task<F>` is `repr(C)` and starts with `Prefix<F::Output>`,
//!   which is `repr(C)` and starts with `Header`. A pointer to a task is
//!   therefore also a valid pointer to its prefix and to its header; code
//!   that does not know `F` goes through those and through the header's
//!   [`TaskVTable`], chosen for `F` at allocation.
//! * The future is touched from one place at a time: by whoever holds the
//!   task's `OwnedTask` when it drops it, or by the run loop through a
//!   [`Poller`] while the task is the one being polled (and so cannot be
//!   removed or dropped, see `arena/mod.rs`). It is dropped
//!   in place (never moved after being pinned in the block) before the join
//!   state learns the outcome, so a handle resolves only once the task's
//!   resources are released.
//! * The join state leaves `Waiting` exactly once: to `Done` with the output,
//!   or to `Closed` if the future was dropped unfinished or the handle
//!   aborted first. Its waker is woken outside the join lock.
//! * Reference counting follows `Arc`'s protocol (relaxed increments,
//!   release decrements, an acquire fence before the free), without `Arc`'s
//!   unused weak count: eight bytes a task, which keeps a small task's block
//!   within the allocator's cheapest size classes.
//! * Spawning requires `F: Send + 'static` and `F::Output: Send + 'static`,
//!   which is what makes sending and sharing these references sound.

use crate::{arena::TaskId, waker::WakerRef, Shared};
use parking_lot::Mutex;
use std::{
    cell::UnsafeCell,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    ptr::NonNull,
    sync::{
        atomic::{fence, AtomicUsize},
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
};

/// What type-erased references need to do to a task of unknown type.
pub(crate) struct TaskVTable {
    /// Polls the future once; returns whether the task is over.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> bool,
    /// Drops the future, if still there, and closes the join state.
    drop_future: unsafe fn(NonNull<Header>),
    /// Frees the block (the last reference is gone).
    free: unsafe fn(NonNull<Header>),
}

/// The part of a task every reference can see. Field order keeps it at
/// 40 bytes.
#[repr(C)]
pub(crate) struct Header {
    vtable: &'static TaskVTable,
    shared: Arc<Shared>,
    seq: u64,
    /// References to the block: the owner, the join handle, owned wakers.
    refs: AtomicUsize,
    index: u32,
    /// Whether the task sits in the executor's ready set (woken and not yet
    /// polled). Only the executor's thread reads or writes it (see
    /// `waker.rs`): relaxed accesses, plain moves.
    queued: AtomicBool,
    /// Whether an entry for the task, from a wake on another thread, waits
    /// in the remote queue.
    remote: AtomicBool,
}

impl Header {
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

    /// Called by the run loop right before polling: wakes during or after
    /// the poll enqueue the task again.
    pub(crate) fn clear_queued(&self) {
        self.queued.store(false, Ordering::Relaxed);
    }

    /// Takes in the task's entry from the remote queue, on the executor's
    /// thread: returns whether the task joins the ready set now (it is not
    /// already in it). See `ReadyQueue::wake` for why the remote mark is
    /// cleared with a read-modify-write.
    pub(crate) fn accept_remote_wake(&self) -> bool {
        self.remote.swap(false, Ordering::AcqRel);
        self.mark_queued()
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

    /// Sets the mark of an entry waiting in the remote queue, from any
    /// thread; returns whether it was clear, i.e. whether to push one.
    pub(crate) fn mark_remote(&self) -> bool {
        !self.remote.swap(true, Ordering::AcqRel)
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

/// How a task ended, as its join handle sees it.
enum Join<T> {
    /// Not yet; the waker of whoever awaits the handle.
    Waiting(Option<Waker>),
    Done(T),
    /// Dropped unfinished, or aborted through the handle.
    Closed,
    /// The handle already returned the outcome.
    Taken,
}

/// The part of a task its join handle can see knowing only the output type.
#[repr(C)]
struct Prefix<T> {
    header: Header,
    join: Mutex<Join<T>>,
}

impl<T> Prefix<T> {
    /// Records the outcome (`None`: closed unfinished) unless one is already
    /// recorded, and wakes the handle's waiter. Returns whether it was
    /// recorded.
    fn finish(&self, output: Option<T>) -> bool {
        let (waker, recorded) = {
            let mut join = self.join.lock();
            match &mut *join {
                Join::Waiting(waker) => {
                    let waker = waker.take();
                    *join = output.map_or(Join::Closed, Join::Done);
                    (waker, true)
                }
                // An output that arrives too late (the handle aborted during
                // the last poll) is dropped after the lock is released.
                _ => (None, false),
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        recorded
    }
}

#[repr(C)]
struct Task<F: Future> {
    prefix: Prefix<F::Output>,
    /// `None` once the future completed or was dropped.
    future: UnsafeCell<Option<F>>,
}

impl<F> Task<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    const VTABLE: TaskVTable = TaskVTable {
        poll: Self::poll,
        drop_future: Self::drop_future,
        free: Self::free,
    };

    /// # Safety (for every function below)
    /// `header` points at the header of a live `Task<F>`: the vtable that
    /// leads here was chosen for exactly this `F` at allocation.
    unsafe fn from_header<'a>(header: NonNull<Header>) -> &'a Self {
        // SAFETY: see above; `Task<F>` starts with its header (`repr(C)`).
        unsafe { header.cast::<Self>().as_ref() }
    }

    /// Caller also owns the task's `OwnedTask` (exclusive future access).
    unsafe fn poll(header: NonNull<Header>, cx: &mut Context<'_>) -> bool {
        // SAFETY: see `from_header`.
        let task = unsafe { Self::from_header(header) };
        // SAFETY: only the `OwnedTask`, borrowed mutably by our caller,
        // reaches the future.
        let slot = unsafe { &mut *task.future.get() };
        let Some(future) = slot.as_mut() else {
            return true;
        };
        // SAFETY: the future lives in the task's heap block, which never moves,
        // and is dropped in place (`drop_in_place`), never moved out.
        let output = match unsafe { Pin::new_unchecked(future) }.poll(cx) {
            Poll::Pending => return false,
            Poll::Ready(output) => output,
        };
        drop_in_place(slot);
        task.prefix.finish(Some(output));
        true
    }

    /// Caller also owns the task's `OwnedTask` (exclusive future access).
    unsafe fn drop_future(header: NonNull<Header>) {
        // SAFETY: see `from_header`.
        let task = unsafe { Self::from_header(header) };
        // SAFETY: as in `poll`.
        drop_in_place(unsafe { &mut *task.future.get() });
        task.prefix.finish(None);
    }

    /// Caller released the block's last reference (see `drop_ref`).
    unsafe fn free(header: NonNull<Header>) {
        // SAFETY: the block came from `Box::into_raw` of this type (see
        // `spawn`) and nothing references it any more.
        drop(unsafe { Box::from_raw(header.cast::<Self>().as_ptr()) });
    }
}

/// Drops the future in `slot` where it lies (it is pinned: never moved
/// before its drop). The slot reads `None` afterwards even if the future's
/// drop panics, so a half-dropped future can never be dropped again (the run
/// loop catches the panic and then drops the task).
fn drop_in_place<F>(slot: &mut Option<F>) {
    /// Marks the slot empty once the drop is over, however it ends.
    struct Emptied<F>(*mut Option<F>);
    impl<F> Drop for Emptied<F> {
        fn drop(&mut self) {
            // SAFETY: the slot's value was dropped just before (or its drop
            // is unwinding); writing without dropping it again is the point.
            unsafe { std::ptr::write(self.0, None) }
        }
    }
    let emptied = Emptied(slot as *mut Option<F>);
    // SAFETY: the slot is valid and exclusively ours (`&mut`); `emptied`
    // makes it hold `None` before anything can look at it again.
    unsafe { std::ptr::drop_in_place(emptied.0) };
    drop(emptied);
}

/// Allocates a task: its `OwnedTask` (for the arena) and its join handle.
/// The task starts out queued (the spawner pushes it to the ready queue).
pub(crate) fn spawn<F>(
    future: F,
    id: TaskId,
    shared: Arc<Shared>,
) -> (OwnedTask, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = Box::new(Task {
        prefix: Prefix {
            header: Header {
                vtable: &Task::<F>::VTABLE,
                shared,
                seq: id.seq(),
                // The owner's and the join handle's.
                refs: AtomicUsize::new(2),
                index: id.index(),
                queued: AtomicBool::new(false),
                remote: AtomicBool::new(false),
            },
            join: Mutex::new(Join::Waiting(None)),
        },
        future: UnsafeCell::new(Some(future)),
    });
    let header = NonNull::from(Box::leak(task)).cast::<Header>();
    (
        OwnedTask { header },
        JoinHandle {
            prefix: header.cast(),
            _output: PhantomData,
        },
    )
}

/// The reference that owns a task's future (one per task).
pub(crate) struct OwnedTask {
    header: NonNull<Header>,
}

// SAFETY: the task's future and output are `Send`; the future is reached
// only through `&mut self`, so moving the owner to another thread moves the
// only access to it.
unsafe impl Send for OwnedTask {}

impl OwnedTask {
    /// The task's header, alive for as long as this owner is.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: we own a count, so the block is alive while `self` is.
        unsafe { self.header.as_ref() }
    }

    /// What the run loop polls the task through, without holding its slot.
    pub(crate) fn poller(&self) -> Poller {
        Poller {
            header: self.header,
        }
    }
}

/// A way to poll a task whose `OwnedTask` sits in a slot marked `polling`.
#[derive(Clone, Copy)]
pub(crate) struct Poller {
    header: NonNull<Header>,
}

impl Poller {
    /// Clears the task's queued mark and polls it once with a borrowed
    /// waker. Returns whether the task is over (completed now or earlier);
    /// a completed task's future is dropped and its output handed to the
    /// join handle before this returns.
    ///
    /// # Safety
    /// The task's `OwnedTask` must stay alive, and nothing else may touch
    /// its future, until this returns.
    pub(crate) unsafe fn poll(self) -> bool {
        // SAFETY: the `OwnedTask` keeps the block alive (caller's promise).
        let header = unsafe { self.header.as_ref() };
        header.clear_queued();
        let waker = WakerRef::new(header);
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the block is alive and, by the caller's promise, we have
        // the exclusive access to the future that `poll` requires.
        unsafe { (header.vtable.poll)(self.header, &mut cx) }
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        // SAFETY: as in `poll`; then we give up our count.
        unsafe {
            (self.header.as_ref().vtable.drop_future)(self.header);
            Header::drop_ref(self.header);
        }
    }
}

/// Why a join handle has no output: the task was aborted or dropped before
/// it completed (its executor ended, or a run halted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canceled;

/// Awaits a task's output. Dropping it detaches the task.
pub struct JoinHandle<T> {
    prefix: NonNull<Prefix<T>>,
    _output: PhantomData<T>,
}

// SAFETY: a handle reaches the header (thread-safe) and the join state
// (behind a lock); the output it may take out is `Send`.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: as above; `&JoinHandle` only locks the join state.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    fn prefix(&self) -> &Prefix<T> {
        // SAFETY: we own a count, so the block is alive; it starts with a
        // `Prefix<T>` (`repr(C)`, `T` is the task's output type).
        unsafe { self.prefix.as_ref() }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.prefix().header.id()
    }

    /// Aborts the task: its handle resolves to `Err(Canceled)` and its
    /// future is dropped (at once, or right after its current poll if it is
    /// aborting itself). Does nothing to a task that already completed.
    pub fn abort(&self) {
        let prefix = self.prefix();
        if prefix.finish(None) {
            prefix.header.shared.abort(prefix.header.id());
        }
    }

    /// Takes the output if the task has completed and nobody took it yet.
    pub fn try_take(&mut self) -> Option<T> {
        let mut join = self.prefix().join.lock();
        match std::mem::replace(&mut *join, Join::Taken) {
            Join::Done(value) => Some(value),
            other => {
                *join = other;
                None
            }
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut join = self.prefix().join.lock();
        match &mut *join {
            Join::Waiting(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Join::Done(_) => match std::mem::replace(&mut *join, Join::Taken) {
                Join::Done(value) => Poll::Ready(Ok(value)),
                _ => unreachable!("matched Done above"),
            },
            Join::Closed | Join::Taken => {
                *join = Join::Taken;
                Poll::Ready(Err(Canceled))
            }
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: we own one count of the task and give it up.
        unsafe { Header::drop_ref(self.prefix.cast()) }
    }
}

/// Bytes of the heap block a task running `future` gets.
#[cfg(test)]
pub(crate) fn block_size<F: Future>(_future: &F) -> usize {
    std::mem::size_of::<Task<F>>()
}
