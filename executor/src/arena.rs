//! The task arena: a slab of task slots addressed by `(index, sequence)`.
//!
//! # What this module owns
//! Every live task's future, label and bookkeeping. A [`TaskId`] pairs the
//! slab index with the task's sequence number (its spawn order, unique for the
//! life of an executor). Lookups check both, so an id that outlived its task,
//! or whose slot was reused by a later task, finds nothing.
//!
//! # Invariants
//! * A slot is removed, and its future dropped, as soon as its task completes
//!   or is aborted: memory stays flat under millions of short-lived tasks.
//! * While a task is being polled its future and header are out of the slot
//!   (`task == None`); an abort that arrives then only marks the slot, and
//!   the run loop removes it after the poll returns.

use crate::waker::{Header, ReadyQueue};
use slab::Slab;
use std::{future::Future, pin::Pin, sync::Arc};

/// A task's future as the arena stores it.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Identifies one task for the life of its executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    index: u32,
    seq: u64,
}

impl TaskId {
    pub(crate) fn new(index: u32, seq: u64) -> Self {
        Self { index, seq }
    }

    /// The task's spawn order: 0 for the first task of an executor, then 1, 2...
    /// Deterministic, so it is what the auditor and strategies see.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// What the run loop takes out of a slot to poll it.
pub(crate) struct Task {
    pub(crate) future: BoxFuture,
    pub(crate) header: Arc<Header>,
}

pub(crate) struct Slot {
    pub(crate) seq: u64,
    pub(crate) label: Arc<str>,
    /// The future and its waker header; `None` while the task is being polled.
    pub(crate) task: Option<Task>,
    /// Virtual time (ns) of the last poll, or of the spawn before any poll.
    pub(crate) last_polled: u64,
    /// Aborted while its future was out being polled.
    pub(crate) aborted: bool,
}

#[derive(Default)]
pub(crate) struct Arena {
    slab: Slab<Slot>,
    next_seq: u64,
}

impl Arena {
    /// Stores a new task; it starts out queued (see `Header::new`).
    pub(crate) fn insert(
        &mut self,
        label: Arc<str>,
        future: BoxFuture,
        queue: &Arc<ReadyQueue>,
        now: u64,
    ) -> TaskId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = self.slab.vacant_entry();
        let index = u32::try_from(entry.key()).expect("more than 2^32 live tasks");
        let id = TaskId::new(index, seq);
        entry.insert(Slot {
            seq,
            label,
            task: Some(Task {
                future,
                header: Arc::new(Header::new(id, queue.clone())),
            }),
            last_polled: now,
            aborted: false,
        });
        id
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&Slot> {
        self.slab
            .get(id.index as usize)
            .filter(|slot| slot.seq == id.seq)
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut Slot> {
        self.slab
            .get_mut(id.index as usize)
            .filter(|slot| slot.seq == id.seq)
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<Slot> {
        self.get(id)?;
        Some(self.slab.remove(id.index as usize))
    }

    /// Removes every task (the caller drops them outside any lock).
    pub(crate) fn drain(&mut self) -> Vec<Slot> {
        self.slab.drain().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Live tasks in spawn order.
    pub(crate) fn tasks(&self) -> Vec<&Slot> {
        let mut tasks: Vec<&Slot> = self.slab.iter().map(|(_, slot)| slot).collect();
        tasks.sort_by_key(|slot| slot.seq);
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena_with(n: usize) -> (Arena, Vec<TaskId>) {
        let queue = Arc::new(ReadyQueue::default());
        let mut arena = Arena::default();
        let ids = (0..n)
            .map(|i| arena.insert(format!("t{i}").into(), Box::pin(async {}), &queue, 0))
            .collect();
        (arena, ids)
    }

    #[test]
    fn stale_ids_find_nothing() {
        let (mut arena, ids) = arena_with(2);
        assert!(arena.remove(ids[0]).is_some());
        assert!(arena.get(ids[0]).is_none());
        assert!(arena.remove(ids[0]).is_none());
        let queue = Arc::new(ReadyQueue::default());
        let reused = arena.insert("again".into(), Box::pin(async {}), &queue, 0);
        assert_eq!(reused.index, ids[0].index, "slot is reused");
        assert!(
            arena.get(ids[0]).is_none(),
            "old id does not see the new task"
        );
        assert_eq!(&*arena.get(reused).unwrap().label, "again");
        assert_eq!(reused.seq(), 2);
    }

    #[test]
    fn memory_is_released() {
        let (mut arena, ids) = arena_with(1000);
        for id in ids {
            arena.remove(id);
        }
        assert_eq!(arena.len(), 0);
        assert_eq!(arena.next_seq, 1000);
    }

    #[test]
    fn tasks_listed_in_spawn_order() {
        let (mut arena, ids) = arena_with(4);
        arena.remove(ids[1]);
        let queue = Arc::new(ReadyQueue::default());
        arena.insert("late".into(), Box::pin(async {}), &queue, 0);
        let labels: Vec<_> = arena.tasks().iter().map(|s| s.label.to_string()).collect();
        assert_eq!(labels, ["t0", "t2", "t3", "late"]);
        assert_eq!(arena.drain().len(), 4);
    }
}
