//! A task's join state and the handle that awaits it.
//!
//! # What this module owns
//! * [`Prefix`]: the part of a task block a join handle can name knowing
//!   only the output type `T`: the header, then the join state.
//! * [`JoinHandle<T>`] and [`Canceled`].
//!
//! # Invariants
//! * The join state leaves `Waiting` exactly once: to `Done` with the output,
//!   or to `Closed` if the future was dropped unfinished or the handle
//!   aborted first. Its waker is woken outside the join lock.
//! * A handle holds one count of its task's block, so the join state
//!   outlives the future and the output can be taken after the task is
//!   gone from the arena.

use super::{header::Header, id::TaskId};
use parking_lot::Mutex;
use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    ptr::NonNull,
    task::{Context, Poll, Waker},
};

/// How a task ended, as its join handle sees it.
pub(super) enum Join<T> {
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
pub(super) struct Prefix<T> {
    pub(super) header: Header,
    pub(super) join: Mutex<Join<T>>,
}

impl<T> Prefix<T> {
    /// Records the outcome (`None`: closed unfinished) unless one is already
    /// recorded, and wakes the handle's waiter. Returns whether it was
    /// recorded.
    pub(super) fn finish(&self, output: Option<T>) -> bool {
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

/// Why a join handle has no output: the task was aborted or dropped before
/// it completed (its executor ended, or a run halted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task canceled: aborted or dropped before it completed")]
pub struct Canceled;

/// Awaits a task's output. Dropping it detaches the task.
pub struct JoinHandle<T> {
    pub(super) prefix: NonNull<Prefix<T>>,
    pub(super) _output: PhantomData<T>,
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
                drop(join);
                let header = &self.prefix().header;
                header
                    .shared()
                    .note_wait(crate::wait::Wait::Task(header.id().seq()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canceled_is_an_error_with_a_message() {
        let error: Box<dyn std::error::Error> = Box::new(Canceled);
        assert_eq!(
            error.to_string(),
            "task canceled: aborted or dropped before it completed"
        );
    }
}
