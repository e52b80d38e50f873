//! [`Handle`]: the awaitable, abortable result of a spawned task.
//!
//! # What this module owns
//! The two ways a handle gets its task's result, and the wrappers the
//! backends put around a spawned future. Both executors deliver a task's
//! output through their own join handle, which [`Handle`] adopts (no
//! allocation beyond the executor's one block per task): the deterministic
//! executor's (`commonware_executor::JoinHandle`) and Tokio's. The wrappers,
//! [`track`] (deterministic: panics propagate to the run loop) and
//! [`instrument`] (Tokio: panics are caught), count polls and keep the
//! running-tasks gauge.
//!
//! # Invariants
//! * A handle resolves exactly once its task stops existing: `Ok(value)` if
//!   it completed, `Err(Error::Exited)` if it panicked and the backend caught
//!   it, `Err(Error::Closed)` if it was aborted or dropped unfinished
//!   (including when its runtime ended), so awaiting a handle never hangs on
//!   a task that can no longer run.
//! * Aborting a task that already finished changes nothing.
//! * The running gauge is decremented exactly once per task, however it ends.

use crate::Error;
use futures::{future::CatchUnwind, FutureExt};
use pin_project_lite::pin_project;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::atomic::Ordering,
    task::{ready, Context, Poll},
};

/// Where a handle's result comes from.
enum Join<T> {
    /// The deterministic executor delivers it.
    Deterministic(commonware_executor::JoinHandle<T>),
    /// Tokio delivers it (`None` if the task panicked); the slot is `None`
    /// once the result has been taken.
    Tokio(Option<::tokio::task::JoinHandle<Option<T>>>),
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

    /// The handle of a Tokio task running an [`instrument`]ed future whose
    /// output is `None` if it panicked (`Err(Error::Exited)`). A task Tokio
    /// cancelled (abort, runtime shutdown) resolves to `Err(Error::Closed)`.
    /// (An `Option` rather than a `Result<T, Error>` keeps the output, which
    /// Tokio stores in every task, small.)
    pub(crate) fn tokio(handle: ::tokio::task::JoinHandle<Option<T>>) -> Self {
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
                // Panics are caught inside the task, so a join error is a
                // cancellation.
                Poll::Ready(match result {
                    Ok(Some(value)) => Ok(value),
                    Ok(None) => Err(Error::Exited),
                    Err(_) => Err(Error::Closed),
                })
            }
        }
    }
}

/// Per-task metric handles, already resolved for the task's label.
pub(crate) struct TaskMetrics {
    pub(crate) running: Gauge,
    pub(crate) polls: Counter,
}

/// Counts a task in the running gauge for as long as it exists.
struct Running(Gauge);

impl Running {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pin_project! {
    /// Runs a spawned future, counting each of its polls, and drops it as
    /// soon as it completes (before its output is delivered). The wrappers
    /// here are hand-written futures rather than `async` blocks because an
    /// `async` block stores a future it captures and then awaits twice (the
    /// capture and the awaited copy; rustc does not reuse moved-from
    /// captures), so each layer would add the whole future's size again to
    /// every task.
    #[project = CountedProj]
    #[project_replace = CountedReplace]
    enum Counted<F> {
        Running {
            #[pin]
            future: F,
            polls: Counter,
        },
        Done,
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let output = match self.as_mut().project() {
            CountedProj::Running { future, polls } => {
                polls.inc();
                ready!(future.poll(cx))
            }
            CountedProj::Done => panic!("spawned future polled after it completed"),
        };
        self.project_replace(Counted::Done);
        Poll::Ready(output)
    }
}

pin_project! {
    /// The future [`track`] returns: the future, then the gauge, dropped
    /// after it. (The executor drops it as soon as it completes.)
    struct Tracked<F> {
        #[pin]
        future: F,
        polls: Counter,
        _running: Running,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // One deterministic runtime polls on one thread at a time, so a
        // plain load and store count exactly, without the locked
        // read-modify-write of `inc` (a fifth of a poll's cost).
        let polls = this.polls.inner();
        polls.store(polls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        this.future.poll(cx)
    }
}

/// Wraps `future` for the deterministic executor: the returned future runs
/// it, counts its polls and keeps the running gauge until it is dropped. A
/// panic propagates (the executor reports it). Only for futures polled by
/// one thread at a time (see `Tracked::poll`).
pub(crate) fn track<F>(future: F, metrics: TaskMetrics) -> impl Future<Output = F::Output>
where
    F: Future,
{
    let running = Running::new(metrics.running);
    Tracked {
        future,
        polls: metrics.polls,
        _running: running,
    }
}

/// A panic caught in a task.
pub(crate) type Panic = Box<dyn Any + Send>;

/// Wraps `future` for a runtime that delivers the output itself: the
/// returned future runs it, counts its polls, keeps the running gauge, and
/// returns a panic as `Err(payload)` instead of unwinding.
pub(crate) fn instrument<F>(
    future: F,
    metrics: TaskMetrics,
) -> impl Future<Output = Result<F::Output, Panic>> + Send + 'static
where
    F: Future + Send + 'static,
{
    let running = Running::new(metrics.running);
    Instrumented {
        caught: AssertUnwindSafe(Counted::Running {
            future,
            polls: metrics.polls,
        })
        .catch_unwind(),
        _running: running,
    }
}

pin_project! {
    /// The future [`instrument`] returns: the counted future with its panic
    /// caught, and the gauge, dropped after it.
    struct Instrumented<F> {
        #[pin]
        caught: CatchUnwind<AssertUnwindSafe<Counted<F>>>,
        _running: Running,
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().caught.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn metrics() -> TaskMetrics {
        TaskMetrics {
            running: Gauge::default(),
            polls: Counter::default(),
        }
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
        let instrumented = instrument(std::future::ready([7u8; 512]), metrics());
        assert!(std::mem::size_of_val(&instrumented) < size + 64);
        assert!(matches!(block_on(instrumented), Ok(v) if v == [7u8; 512]));
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
    fn instrument_counts_and_catches() {
        let m = metrics();
        let (running, polls) = (m.running.clone(), m.polls.clone());
        let task = instrument(
            async {
                crate::reschedule().await;
                panic!("x")
            },
            m,
        );
        assert_eq!(running.get(), 1);
        let payload = block_on(task).expect_err("caught");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"x"));
        assert_eq!(running.get(), 0);
        assert_eq!(polls.get(), 2);
    }

    #[test]
    fn dropped_instrumented_task_leaves_gauge() {
        let m = metrics();
        let running = m.running.clone();
        let task = instrument(std::future::pending::<()>(), m);
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
