//! Loom models of the biased reference count. `refs.rs` says what they
//! check and how to run them.
//!
//! A model's block is a [`Block`]: the count and a loom cell standing for
//! the block's memory. Every reference reads the cell before releasing
//! itself (its last use of the block), and the release that frees writes
//! it, so loom reports a free that is not ordered after every use. The
//! executor state's lock is a loom mutex: owner clones and drops, and the
//! owner's release, happen under it, as in the executor.

use super::Refs;
use loom::{
    cell::UnsafeCell,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
};

struct Block {
    refs: Refs,
    memory: UnsafeCell<u64>,
    frees: AtomicUsize,
    /// The executor state's lock.
    state: Mutex<()>,
}

impl Block {
    /// A task just inserted in its arena: the owner's and the join
    /// handle's references, biased.
    fn spawned() -> Arc<Self> {
        Arc::new(Self {
            refs: Refs::new(2, true),
            memory: UnsafeCell::new(0),
            frees: AtomicUsize::new(0),
            state: Mutex::new(()),
        })
    }

    /// Uses the block, then releases one reference (`owner`: on the
    /// executor's thread, under the lock).
    fn release(&self, owner: bool) {
        self.free_if(|refs| refs.drop_ref(owner));
    }

    /// Uses the block, then releases the owner's reference (under the
    /// lock).
    fn release_owner(&self) {
        self.free_if(Refs::release_owner);
    }

    fn free_if(&self, release: impl FnOnce(&Refs) -> bool) {
        self.memory.with(|value| {
            // SAFETY (model): reading the block while a reference is held.
            let _ = unsafe { *value };
        });
        if release(&self.refs) {
            self.memory.with_mut(|value| {
                // SAFETY (model): the free, after the last reference.
                unsafe { *value = u64::MAX };
            });
            assert_eq!(self.frees.fetch_add(1, Ordering::Relaxed), 0, "freed twice");
        }
    }
}

/// The owner clones a waker and hands it to another thread, which clones
/// it again and drops both, then drops the join handle; meanwhile the
/// owner clones and drops a waker of its own and releases its reference
/// (the task leaves the arena).
#[test]
fn loom_owner_clones_dropped_elsewhere_free_once() {
    loom::model(|| {
        let block = Block::spawned();
        {
            let _state = block.state.lock().unwrap();
            block.refs.clone_ref(true);
        }
        let remote = {
            let block = block.clone();
            thread::spawn(move || {
                block.refs.clone_ref(false);
                block.release(false);
                block.release(false);
                // The join handle.
                block.release(false);
            })
        };
        {
            let _state = block.state.lock().unwrap();
            block.refs.clone_ref(true);
            block.release(true);
            block.release_owner();
        }
        remote.join().unwrap();
        assert_eq!(block.frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}

/// Another thread aborts the task (releases the owner's reference under the
/// lock) while the executor's thread clones and drops wakers under the
/// lock, before or after that; a waker the executor's thread cloned while
/// biased outlives the task there.
#[test]
fn loom_an_abort_elsewhere_ends_the_bias_once() {
    loom::model(|| {
        let block = Block::spawned();
        {
            let _state = block.state.lock().unwrap();
            block.refs.clone_ref(true);
        }
        let aborter = {
            let block = block.clone();
            thread::spawn(move || {
                let _state = block.state.lock().unwrap();
                block.release_owner();
            })
        };
        {
            let state = block.state.lock().unwrap();
            block.refs.clone_ref(true);
            block.release(true);
            drop(state);
        }
        {
            let _state = block.state.lock().unwrap();
            // The waker cloned first, and the join handle.
            block.release(true);
            block.release(true);
        }
        aborter.join().unwrap();
        assert_eq!(block.frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}
