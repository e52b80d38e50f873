//! [`Handle`]: the awaitable, abortable result of a spawned task.
//!
//! # What this module owns
//! The two ways a handle gets its task's result, and the deterministic
//! backend's wrapper around a spawned future. Both executors deliver a
//! task's output through their own join handle, which [`Handle`] adopts (no
//! allocation beyond the executor's one block per task): the deterministic
//! executor's (`commonware_executor::JoinHandle`) and Tokio's (which also
//! reports a panic Tokio caught). [`track`] (deterministic: panics propagate
//! to the run loop) counts polls and keeps the running-tasks gauge; the
//! Tokio backend wraps its tasks itself (`tokio::task`).
//!
//! # Invariants
//! * A handle resolves exactly once its task stops existing: `Ok(value)` if
//!   it completed, `Err(Error::Exited)` if it panicked and the backend caught
//!   it, `Err(Error::Closed)` if it was aborted or dropped unfinished
//!   (including when its runtime ended), so awaiting a handle never hangs on
//!   a task that can no longer run.
//! * Aborting a task that already finished changes nothing.
//! * The running gauge is decremented exactly once per task, however it ends.

use crate::{metrics::LabelMetrics, Error};
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{ready, Context, Poll},
};

/// Where a handle's result comes from.
enum Join<T> {
    /// The deterministic executor delivers it.
    Deterministic(commonware_executor::JoinHandle<T>),
    /// Tokio delivers it; the slot is `None` once the result has been taken.
    Tokio(Option<::tokio::task::JoinHandle<T>>),
}

/// Handle to a spawned task.
pub struct Handle<T>
where
    T: Send + 'static,
{
    join: Join<T>,
}

impl<T> Handle<T>
where
    T: Send + 'static,
{
    /// Aborts the task. Its handle then resolves to `Err(Error::Closed)`,
    /// unless the task had already finished.
    pub fn abort(&self) {
        match &self.join {
            Join::Deterministic(handle) => handle.abort(),
            Join::Tokio(Some(handle)) => handle.abort(),
            Join::Tokio(None) => {}
        }
    }

    /// The handle of a task of the deterministic executor.
    pub(crate) fn deterministic(handle: commonware_executor::JoinHandle<T>) -> Self {
        Self {
            join: Join::Deterministic(handle),
        }
    }

    /// The handle of a Tokio task. A task that panicked (Tokio caught it)
    /// resolves to `Err(Error::Exited)`; one Tokio cancelled (abort, runtime
    /// shutdown) to `Err(Error::Closed)`.
    pub(crate) fn tokio(handle: ::tokio::task::JoinHandle<T>) -> Self {
        Self {
            join: Join::Tokio(Some(handle)),
        }
    }
}

impl<T> Future for Handle<T>
where
    T: Send + 'static,
{
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.join {
            // A task dropped before completing (aborted, or its runtime
            // ended) has no output.
            Join::Deterministic(handle) => Pin::new(handle)
                .poll(cx)
                .map(|result| result.map_err(|_| Error::Closed)),
            Join::Tokio(slot) => {
                let Some(handle) = slot else {
                    return Poll::Ready(Err(Error::Closed));
                };
                let result = ready!(Pin::new(handle).poll(cx));
                *slot = None;
                Poll::Ready(match result {
                    Ok(value) => Ok(value),
                    Err(error) if error.is_panic() => Err(Error::Exited),
                    Err(_) => Err(Error::Closed),
                })
            }
        }
    }
}

/// Counts a task in its label's running gauge for as long as it exists.
struct Running(Arc<LabelMetrics>);

impl Running {
    fn new(metrics: Arc<LabelMetrics>) -> Self {
        metrics.running.inc();
        Self(metrics)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.dec();
    }
}

pin_project! {
    /// The future [`track`] returns: the future, then the gauge, dropped
    /// after it. (The executor drops it as soon as it completes.) It is a
    /// hand-written future rather than an `async` block because an `async`
    /// block stores a future it captures and then awaits twice (the capture
    /// and the awaited copy; rustc does not reuse moved-from captures), which
    /// would add the whole future's size again to every task.
    struct Tracked<F> {
        #[pin]
        future: F,
        running: Running,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // One deterministic runtime polls on one thread at a time, so a
        // plain load and store count exactly, without the locked
        // read-modify-write of `inc` (a fifth of a poll's cost).
        let polls = this.running.0.polls.inner();
        polls.store(polls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        this.future.poll(cx)
    }
}

/// Wraps `future` for the deterministic executor: the returned future runs
/// it, counts its polls and keeps the running gauge until it is dropped. A
/// panic propagates (the executor reports it). Only for futures polled by
/// one thread at a time (see `Tracked::poll`).
pub(crate) fn track<F>(future: F, metrics: Arc<LabelMetrics>) -> impl Future<Output = F::Output>
where
    F: Future,
{
    Tracked {
        future,
        running: Running::new(metrics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use prometheus_client::metrics::{counter::Counter, gauge::Gauge};

    fn metrics() -> Arc<LabelMetrics> {
        Arc::new(LabelMetrics {
            spawned: Counter::default(),
            running: Gauge::default(),
            polls: Counter::default(),
        })
    }

    #[test]
    fn track_counts_polls_and_keeps_the_gauge() {
        let m = metrics();
        let (running, polls) = (m.running.clone(), m.polls.clone());
        let task = track(
            async {
                crate::reschedule().await;
                7
            },
            m,
        );
        assert_eq!(running.get(), 1);
        assert_eq!(block_on(task), 7);
        assert_eq!(running.get(), 0);
        assert_eq!(polls.get(), 2);
    }

    #[test]
    fn wrappers_store_the_future_once() {
        let future = std::future::ready([7u8; 512]);
        let size = std::mem::size_of_val(&future);
        let tracked = track(future, metrics());
        assert!(
            std::mem::size_of_val(&tracked) < size + 64,
            "track costs {} bytes for a {size}-byte future",
            std::mem::size_of_val(&tracked)
        );
        assert_eq!(block_on(tracked), [7u8; 512]);
    }

    #[test]
    fn dropped_tracked_task_leaves_gauge() {
        let m = metrics();
        let running = m.running.clone();
        let task = track(std::future::pending::<()>(), m);
        assert_eq!(running.get(), 1);
        drop(task);
        assert_eq!(running.get(), 0);
    }

    #[test]
    fn handle_is_unpin_send_sync() {
        fn check<T: Unpin + Send + Sync>() {}
        check::<Handle<u8>>();
    }
}
