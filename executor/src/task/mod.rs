//! Tasks: what a spawned future becomes, how it is reached, and when its
//! memory goes.
//!
//! # What a task is
//! A spawned future lives in one heap block with everything that refers to
//! it (`raw.rs`):
//!
//! ```text
//! Task<F> (repr(C))
//! ├── Prefix<F::Output> (repr(C))      what a JoinHandle<T> can name
//! │   ├── Header                       what a waker can name
//! │   │     vtable, Arc<Shared>, seq, refs, index, marks (queued, remote)
//! │   └── join: Mutex<Join<T>>         Waiting(waker) → Done(T) | Closed → Taken
//! └── future: UnsafeCell<Option<F>>    None once completed or dropped
//! ```
//!
//! Code that does not know `F` reaches the block through the header's
//! [`TaskVTable`], chosen for `F` when the block is allocated. The arena
//! (`arena.rs`, over the slot table of `slots.rs`) keeps one slot per live
//! task, addressed by a [`TaskId`] (`id.rs`).
//!
//! # References
//! Three kinds of reference hold the block, each with one count of the
//! header's `refs`; the last one released frees it:
//! * [`OwnedTask`]: exactly one per task, in its arena slot. Only through
//!   it (or the [`Poller`] it lends the run loop) is the future polled or
//!   dropped.
//! * wakers (`waker.rs`): one count per owned waker; the waker the run loop
//!   lends a poll ([`WakerRef`]) borrows the owner's instead.
//! * [`JoinHandle<T>`] (`join.rs`): one count, released when the handle is
//!   dropped.
//!
//! # Lifecycle
//! 1. **Spawn.** The block is allocated with two counts (owner and handle),
//!    the owner goes into a new arena slot, and the task is woken: it is
//!    polled in a later round, never inside the spawn.
//! 2. **Ready.** A wake puts the task's id in its executor's ready queue
//!    once (`ready.rs`, guarded by the header's marks, `wake.rs`).
//! 3. **Poll.** The run loop takes the ready set, lets the scheduler order
//!    it, and polls each task through its [`Poller`] with a borrowed waker.
//!    The task is the state's `current` task for the whole poll.
//! 4. **Complete.** A poll that returns `Ready` drops the future in place
//!    and then hands the output to the join state; the run loop removes the
//!    slot, which drops the owner.
//! 5. **Abort.** [`JoinHandle::abort`] or `Core::abort` removes the slot at
//!    once (dropping the future), or, for the task being polled, marks it so
//!    the run loop removes it when the poll returns. The join state closes:
//!    the handle resolves to [`Canceled`].
//! 6. **End of run.** Tasks still alive are drained from the arena and
//!    dropped, outside the state borrow, so every handle resolves.
//! 7. **Free.** The block is freed when the last reference goes, which may
//!    be a waker long after the task ended: such a waker touches only the
//!    header, and its wake finds no slot for the id.
//!
//! # Safety, situation by situation
//! * **Polling.** [`Poller::poll`] dereferences the block and gives the
//!   future a `&mut`. It is sound because the task is the state's `current`
//!   task: nothing removes a current task's slot (an abort only marks it),
//!   so the `OwnedTask` stays alive and is the only way to the future.
//! * **Pinning.** The future never moves: it lives in the heap block from
//!   allocation until it is dropped in place (`drop_in_place` in `raw.rs`),
//!   and the slot reads `None` afterwards even if that drop panics, so a
//!   future is never dropped twice.
//! * **Dropping the owner.** `OwnedTask::drop` drops the future (if still
//!   there) and closes the join state, then releases its count. Slots are
//!   only dropped outside the state borrow, since a future's drop may call
//!   back into the executor.
//! * **Wakers on any thread.** A waker only touches the header: the marks,
//!   the count and the executor's ready queue, all thread-safe. A wake from
//!   a thread not running the executor goes through the lock-free remote
//!   queue; see `wake.rs` for why such a wake is never lost.
//! * **Join handles on any thread.** A handle touches the header and the
//!   join state, which sits behind a lock; the output it takes is `Send`.
//! * **Freeing.** Counting follows `Arc`'s protocol: every release is a
//!   release decrement, and the last one out issues an acquire fence before
//!   calling the vtable's `free`, so every use of the block by any reference
//!   happens before the free.
//! * **Type erasure.** A header pointer is cast back to `Task<F>` only by
//!   the functions of the vtable chosen for that `F`, and to `Prefix<T>`
//!   only by a `JoinHandle<T>` whose `T` is that task's output type; both
//!   casts are valid because each struct is `repr(C)` and starts with the
//!   next.
//! * **Send and Sync.** Spawning requires `F: Send + 'static` and
//!   `F::Output: Send + 'static`, which is what makes moving the owner and
//!   handle, and sharing wakers, sound.

mod arena;
mod header;
mod id;
mod join;
mod raw;
pub(crate) mod slots;
pub(crate) mod waker;

pub(crate) use arena::{Arena, Slot};
pub(crate) use header::Header;
pub use id::TaskId;
pub use join::{Canceled, JoinHandle};
pub(crate) use raw::spawn_closed;
#[cfg(test)]
pub(crate) use raw::{spawn, OwnedTask};
pub(crate) use waker::task_of;

// Link targets for the essay above.
#[cfg(doc)]
use {
    header::TaskVTable,
    raw::{OwnedTask, Poller},
    waker::WakerRef,
};
