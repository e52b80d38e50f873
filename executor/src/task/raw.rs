//! One heap block per task: header, join state and future together.
//!
//! # What this module owns
//! The memory behind every spawned task (`Task<F>`) and the three kinds of
//! reference to it, each holding one count of the header's `refs` (the last
//! one out frees the block):
//! * [`OwnedTask`]: exactly one per task, held by the task's arena slot.
//!   Through it (or its [`Poller`]) alone is the future polled and dropped
//!   (when the task completes, is aborted, or its executor ends).
//! * wakers (`waker.rs`): see only the [`Header`].
//! * [`JoinHandle<T>`] (`join.rs`): sees the header and the join state,
//!   which it can name knowing only the output type `T`.
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
//!   removed or dropped, see `arena.rs`). It is dropped in place (never
//!   moved after being pinned in the block) before the join state learns
//!   the outcome, so a handle resolves only once the task's resources are
//!   released.
//! * Spawning requires `F: Send + 'static` and `F::Output: Send + 'static`,
//!   which is what makes sending and sharing these references sound.

use super::{
    header::{Header, TaskVTable},
    id::TaskId,
    join::{Join, JoinHandle, Prefix},
    waker::WakerRef,
};
use crate::{core::Shared, wake::Marks};
use parking_lot::Mutex;
use std::{
    cell::UnsafeCell,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    ptr::NonNull,
    sync::{atomic::AtomicUsize, Arc},
    task::{Context, Poll},
};

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
                marks: Marks::new(),
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

/// The join handle of a task spawned after its executor's run ended: the
/// task never enters an arena and its future is dropped at once, so the
/// handle resolves to `Canceled` on its first poll instead of waiting for a
/// run that will never come. Its id names no slot and no spawn order.
pub(crate) fn spawn_closed<F>(future: F, shared: Arc<Shared>) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (task, handle) = spawn(future, TaskId::new(u32::MAX, u64::MAX), shared);
    drop(task);
    handle
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
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: we own a count, so the block is alive while `self` is.
        unsafe { self.header.as_ref() }
    }

    /// What the run loop polls the task through, without holding its slot.
    #[inline]
    pub(crate) fn poller(&self) -> Poller {
        Poller {
            header: self.header,
        }
    }
}

/// A way to poll a task without holding its arena slot: the run loop keeps
/// the slot (and so the `OwnedTask`) in place while the task is the state's
/// `current` task, which is what [`Poller::poll`] requires.
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
    #[inline]
    pub(crate) unsafe fn poll(self) -> bool {
        // SAFETY: the `OwnedTask` keeps the block alive (caller's promise).
        let header = unsafe { self.header.as_ref() };
        header.marks.clear_queued();
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

/// Bytes of the heap block a task running `future` gets.
#[cfg(test)]
pub(crate) fn block_size<F: Future>(_future: &F) -> usize {
    std::mem::size_of::<Task<F>>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{test_support::executor, Failure};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops, then panics.
    struct PanicsOnDrop(Arc<AtomicUsize>);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("drop panicked");
        }
    }

    #[test]
    fn a_future_whose_drop_panics_is_dropped_once() {
        for finishes in [true, false] {
            let exec = executor(0);
            let c = exec.core().clone();
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let result = exec.run("root", async move {
                let guard = PanicsOnDrop(d);
                let task = c.spawn("bad", async move {
                    let _guard = guard;
                    if !finishes {
                        std::future::pending::<()>().await;
                    }
                });
                if finishes {
                    std::future::pending::<()>().await;
                }
                // Aborting drops the future right here: the panic reaches us.
                task.abort();
            });
            match result {
                Err(Failure::Panic { label, .. }) => {
                    assert_eq!(label, if finishes { "bad" } else { "root" })
                }
                _ => panic!("expected the drop's panic"),
            }
            drop(exec);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "finishes: {finishes}");
        }
    }
}
