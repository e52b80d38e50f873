//! One-time broadcast signals: [`Signaler`] and [`Signal`].
//!
//! `Signal` is exactly the reference's type (`Shared<oneshot::Receiver<i32>>`),
//! so code that names it, clones it or selects on `&mut signal` keeps
//! compiling. The first value signalled wins; a `Signaler` dropped without
//! signalling resolves every `Signal` to `Err(Canceled)`.

use futures::{channel::oneshot, future::Shared, FutureExt};

/// A one-time broadcast that can be awaited by many tasks. It is often used for
/// coordinating shutdown across many tasks.
///
/// To minimize the overhead of tracking outstanding signals (which only return once),
/// it is recommended to wait on a reference to it (i.e. `&mut signal`) instead of
/// cloning it multiple times in a given task (i.e. in each iteration of a loop).
pub type Signal = Shared<oneshot::Receiver<i32>>;

/// Coordinates a one-time signal across many tasks.
///
/// # Example
///
/// ## Basic Usage
///
/// ```rust
/// use commonware_runtime::{Spawner, Runner, Signaler, deterministic::Executor};
///
/// let (executor, _, _) = Executor::default();
/// executor.start(async move {
///     // Setup signaler and get future
///     let (mut signaler, signal) = Signaler::new();
///
///     // Signal shutdown
///     signaler.signal(2);
///
///     // Wait for shutdown in task
///     let sig = signal.await.unwrap();
///     println!("Received signal: {}", sig);
/// });
/// ```
///
/// ## Advanced Usage
///
/// While `Futures::Shared` is efficient, there is still meaningful overhead
/// to cloning it (i.e. in each iteration of a loop). To avoid
/// a performance regression from introducing `Signaler`, it is recommended
/// to wait on a reference to `Signal` (i.e. `&mut signal`). (The reference
/// documentation uses `commonware_macros::select!`; here `futures::select_biased!`
/// does the same job. Prefer it to `futures::select!`, which picks among ready
/// branches with a thread-local random generator and so breaks determinism.)
///
/// ```rust
/// use commonware_runtime::{Clock, Spawner, Runner, Signaler, deterministic::Executor};
/// use futures::{channel::oneshot, FutureExt};
/// use std::time::Duration;
///
/// let (executor, context, _) = Executor::default();
/// executor.start(async move {
///     // Setup signaler and get future
///     let (mut signaler, mut signal) = Signaler::new();
///
///     // Loop on the signal until resolved
///     let (tx, rx) = oneshot::channel();
///     context.spawn("task", {
///         let context = context.clone();
///         async move {
///             loop {
///                 // Wait for signal or sleep
///                 futures::select_biased! {
///                      sig = &mut signal => {
///                          println!("Received signal: {}", sig.unwrap());
///                          break;
///                      },
///                      _ = context.sleep(Duration::from_secs(1)).fuse() => {},
///                 };
///             }
///             let _ = tx.send(());
///         }
///     });
///
///     // Send signal
///     signaler.signal(9);
///
///     // Wait for task
///     rx.await.expect("shutdown signaled");
/// });
/// ```
pub struct Signaler {
    tx: Option<oneshot::Sender<i32>>,
}

impl Signaler {
    /// Create a new `Signaler`.
    ///
    /// Returns a `Signaler` and a `Signal` that will resolve when `signal` is called.
    pub fn new() -> (Self, Signal) {
        let (tx, rx) = oneshot::channel();
        (Self { tx: Some(tx) }, rx.shared())
    }

    /// Resolve the `Signal` for all waiters (if not already resolved).
    pub fn signal(&mut self, value: i32) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn first_value_wins_and_clones_agree() {
        let (mut signaler, signal) = Signaler::new();
        let other = signal.clone();
        signaler.signal(3);
        signaler.signal(4);
        assert_eq!(block_on(signal), Ok(3));
        assert_eq!(block_on(other), Ok(3));
    }

    #[test]
    fn dropped_signaler_cancels() {
        let (signaler, signal) = Signaler::new();
        drop(signaler);
        assert!(block_on(signal).is_err());
    }

    #[test]
    fn signal_is_unpin() {
        fn unpin<T: Unpin>() {}
        unpin::<Signal>();
    }
}
