//! The task arena: a table of task slots addressed by `(index, sequence)`.
//!
//! # What this module owns
//! Every live task, through its slot: the [`OwnedTask`] (and so the future,
//! in the task's heap block, see `raw.rs`), its label and bookkeeping; and
//! the executor's label table (`audit/labels.rs`), whose running counts
//! follow the tasks in and out of the arena. A [`TaskId`] pairs the slot index with the task's sequence number (its spawn
//! order, unique for the life of an executor). Lookups check both, so an id
//! that outlived its task, or whose slot was reused by a later task, finds
//! nothing.
//!
//! # Invariants
//! * A slot is removed, and its future dropped, as soon as its task completes
//!   or is aborted: memory stays flat under millions of short-lived tasks.
//! * A task being polled (the executor state's `current`) stays in its slot:
//!   an abort that arrives then (the task aborting itself) only marks the
//!   state's `current_aborted`, and the run loop removes the task after the
//!   poll returns. Nobody else touches a future being polled.

use super::{
    id::TaskId,
    join::JoinHandle,
    raw::{self, OwnedTask, Poller},
    slots::{self, Slots},
};
use crate::{
    audit::labels::{LabelId, LabelTable},
    core::Shared,
};
use std::{future::Future, sync::Arc};

/// A live task.
pub(crate) struct Slot {
    pub(crate) task: OwnedTask,
    pub(crate) label: LabelId,
    /// Whether the task counts in its label's [`crate::LabelStats`].
    counted: bool,
    /// Virtual time (ns) of the last poll, or of the spawn before any poll.
    pub(crate) last_polled: u64,
    /// Whether the last poll noted what it waits on (in `State::waits`,
    /// at the slot's index; cleared when a poll starts; see `wait.rs`).
    /// Fits in the slot's padding.
    pub(crate) noted: bool,
}

impl Slot {
    #[inline]
    pub(crate) fn id(&self) -> TaskId {
        self.task.header().id()
    }
}

#[derive(Default)]
pub(crate) struct Arena {
    slots: Slots<Slot>,
    next_seq: u64,
    pub(crate) labels: LabelTable,
}

impl Arena {
    /// An empty arena that keeps `labels` (and their counts), in the
    /// (empty) slot table `slots`.
    pub(crate) fn new(slots: Slots<Slot>, labels: LabelTable) -> Self {
        debug_assert_eq!(slots.len(), 0, "an arena starts empty");
        Self {
            slots,
            next_seq: 0,
            labels,
        }
    }

    /// The slot table of an emptied arena (see [`Arena::drain`]), for a
    /// later arena; this one is left with a new, empty table.
    pub(crate) fn take_slots(&mut self) -> Slots<Slot> {
        debug_assert_eq!(self.slots.len(), 0, "take the slots of an emptied arena");
        std::mem::take(&mut self.slots)
    }

    /// Stores a new task and wakes it, so it runs in a later round. A
    /// `counted` task counts in its label's stats.
    pub(crate) fn insert<F>(
        &mut self,
        label: LabelId,
        counted: bool,
        future: F,
        shared: &Arc<Shared>,
        now: u64,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = u32::try_from(self.slots.vacant_key()).expect("more than 2^32 live tasks");
        let (task, handle) = raw::spawn(future, TaskId::new(index, seq), shared.clone());
        task.header().wake();
        self.slots.insert(Slot {
            task,
            label,
            counted,
            last_polled: now,
            noted: false,
        });
        if counted {
            self.labels.spawned(label);
        }
        handle
    }

    /// Notes that task `id` is polled at `now` and counts the poll; `None`
    /// if the id is stale (the task finished or was aborted since).
    #[inline]
    pub(crate) fn begin_poll(&mut self, id: TaskId, now: u64) -> Option<Poller> {
        let slot = self.get_mut(id)?;
        slot.last_polled = now;
        slot.noted = false;
        let (label, counted, poller) = (slot.label, slot.counted, slot.task.poller());
        if counted {
            self.labels.polled(label);
        }
        Some(poller)
    }

    /// The label of a live task.
    pub(crate) fn label(&self, slot: &Slot) -> &str {
        self.labels.name(slot.label)
    }

    #[inline]
    pub(crate) fn get(&self, id: TaskId) -> Option<&Slot> {
        self.slots
            .get(id.index as usize)
            .filter(|slot| slot.id() == id)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.id() == id)
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<Slot> {
        self.get(id)?;
        let slot = self.slots.remove(id.index as usize)?;
        self.left(&slot);
        Some(slot)
    }

    /// Takes a task that left the arena out of its label's running count.
    fn left(&mut self, slot: &Slot) {
        if slot.counted {
            self.labels.finished(slot.label);
        }
    }

    /// Fetches into cache, without reading them, what the run loop will
    /// touch soon: the task block of `near` and the slot of `far`. `near`'s
    /// slot is read to find its block, so it should have been `far` a few
    /// calls ago.
    #[inline]
    pub(crate) fn prefetch(&self, near: Option<TaskId>, far: Option<TaskId>) {
        if let Some(slot) = near.and_then(|id| self.slots.get(id.index as usize)) {
            slots::prefetch(slot.task.header());
        }
        if let Some(id) = far {
            self.slots.prefetch(id.index as usize);
        }
    }

    /// Removes every task (the caller drops them outside any lock).
    pub(crate) fn drain(&mut self) -> Vec<Slot> {
        let slots = self.slots.take_all();
        for slot in &slots {
            self.left(slot);
        }
        slots
    }

    /// The sequence number the next task will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Live tasks in spawn order.
    pub(crate) fn tasks(&self) -> Vec<&Slot> {
        let mut tasks: Vec<&Slot> = self.slots.iter().collect();
        tasks.sort_by_key(|slot| slot.id().seq());
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Canceled;
    use crate::{test_support::bare_executor, RunLoop};

    fn shared() -> (RunLoop, Arc<Shared>) {
        let exec = bare_executor();
        let shared = exec.core().shared.clone();
        (exec, shared)
    }

    fn arena_with(n: usize, shared: &Arc<Shared>) -> (Arena, Vec<TaskId>) {
        let mut arena = Arena::default();
        let ids = (0..n)
            .map(|i| {
                let label = arena.labels.intern(&format!("t{i}"));
                arena.insert(label, true, async {}, shared, 0).id()
            })
            .collect();
        (arena, ids)
    }

    #[test]
    fn stale_ids_find_nothing() {
        let (_exec, shared) = shared();
        let (mut arena, ids) = arena_with(2, &shared);
        assert!(arena.remove(ids[0]).is_some());
        assert!(arena.get(ids[0]).is_none());
        assert!(arena.remove(ids[0]).is_none());
        let again = arena.labels.intern("again");
        let reused = arena.insert(again, false, async {}, &shared, 0).id();
        assert_eq!(reused.index, ids[0].index, "slot is reused");
        assert!(
            arena.get(ids[0]).is_none(),
            "old id does not see the new task"
        );
        assert_eq!(arena.label(arena.get(reused).unwrap()), "again");
        assert_eq!(reused.seq(), 2);
    }

    #[test]
    fn memory_is_released() {
        let (_exec, shared) = shared();
        let (mut arena, ids) = arena_with(1000, &shared);
        assert_eq!(Arc::strong_count(&shared), 1002, "one count per block");
        for id in ids {
            arena.remove(id);
        }
        assert_eq!(arena.len(), 0);
        assert_eq!(arena.next_seq, 1000);
        assert_eq!(Arc::strong_count(&shared), 2, "every block freed");
    }

    #[test]
    fn tasks_listed_in_spawn_order() {
        let (_exec, shared) = shared();
        let (mut arena, ids) = arena_with(4, &shared);
        arena.remove(ids[1]);
        let late = arena.labels.intern("late");
        arena.insert(late, true, async {}, &shared, 0);
        let labels: Vec<_> = arena.tasks().iter().map(|s| arena.label(s)).collect();
        assert_eq!(labels, ["t0", "t2", "t3", "late"]);
        assert_eq!(arena.drain().len(), 4);
        let counted = arena.labels.published().counted();
        let running: u64 = counted.iter().map(|(_, s)| s.running).sum();
        assert_eq!(running, 0, "drained tasks do not count as running");
    }

    /// Polls the task in `id`'s slot as the run loop does.
    fn poll(arena: &mut Arena, id: TaskId) -> bool {
        let slot = arena.get_mut(id).expect("live task");
        // SAFETY: the slot stays in the arena, untouched, during the poll.
        unsafe { slot.task.poller().poll() }
    }

    #[test]
    fn output_reaches_the_handle_after_the_future_is_dropped() {
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let (_exec, shared) = shared();
        let mut arena = Arena::default();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let label = arena.labels.intern("t");
        let mut handle = arena.insert(
            label,
            false,
            async move {
                let _flag = flag;
                7u64
            },
            &shared,
            0,
        );
        assert_eq!(handle.try_take(), None, "not run yet");
        assert!(poll(&mut arena, handle.id()));
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(handle.try_take(), Some(7));
        assert_eq!(handle.try_take(), None, "taken once");
        drop(arena);
    }

    #[test]
    fn dropping_an_unfinished_task_closes_its_handle() {
        let (_exec, shared) = shared();
        let mut arena = Arena::default();
        let label = arena.labels.intern("t");
        let handle = arena.insert(label, false, std::future::pending::<u8>(), &shared, 0);
        assert!(!poll(&mut arena, handle.id()));
        arena.remove(handle.id());
        assert_eq!(futures_lite_block_on(handle), Err(Canceled));
    }

    #[test]
    fn detached_tasks_still_run_and_free() {
        let (_exec, shared) = shared();
        let mut arena = Arena::default();
        let label = arena.labels.intern("t");
        let id = arena.insert(label, false, async { 1u8 }, &shared, 0).id();
        assert_eq!(Arc::strong_count(&shared), 3, "the slot keeps the block");
        assert!(poll(&mut arena, id));
        arena.remove(id);
        assert_eq!(Arc::strong_count(&shared), 2);
    }

    #[test]
    fn a_task_block_is_small() {
        // Header, join state (for a `u64` output) and the `Arc` counts.
        let future = async { 0u64 };
        let overhead = raw::block_size(&future) - std::mem::size_of_val(&future);
        assert!(overhead <= 96, "task block overhead {overhead} bytes");
        assert!(std::mem::size_of::<Slot>() <= 24);
    }

    /// Polls a handle to completion with a no-op waker (it must be ready).
    fn futures_lite_block_on<T>(mut handle: JoinHandle<T>) -> Result<T, Canceled> {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(&mut handle).poll(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("handle not ready"),
        }
    }
}
