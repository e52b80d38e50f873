//! The atomics and the lock-free queue the wake protocol (`wake.rs`) is
//! built on.
//!
//! # What this module owns
//! Nothing of its own in a normal build: it re-exports std's atomics and
//! crossbeam's `SegQueue`, so code that names them through here compiles to
//! exactly what it would without it. Under `--cfg loom` the same names are
//! loom's atomics and a queue loom can see into, so the protocol's models
//! (`wake/loom_models.rs`) explore every interleaving and every value a
//! weakly ordered load may return while running the protocol's own code.

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::SegQueue;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(loom)]
pub(crate) use loom_queue::SegQueue;

#[cfg(loom)]
mod loom_queue {
    use loom::sync::Mutex;
    use std::collections::VecDeque;

    /// `crossbeam_queue::SegQueue` as the models see it. Loom cannot look
    /// inside crossbeam (its atomics are std's), so the models use a deque
    /// behind loom's mutex with the same methods. Both are linearizable
    /// FIFO queues whose push happens before the pop that takes the item,
    /// which is all the protocol relies on.
    pub(crate) struct SegQueue<T>(Mutex<VecDeque<T>>);

    impl<T> SegQueue<T> {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(VecDeque::new()))
        }

        pub(crate) fn push(&self, value: T) {
            self.0.lock().unwrap().push_back(value);
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }

        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }
}
