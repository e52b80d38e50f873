//! [`Handle`]: the awaitable, abortable result of a spawned task.
//!
//! # What this module owns
//! The two ways a handle gets its task's result, and the wrappers the
//! backends put around a spawned future. The deterministic executor runs
//! output-less futures, so [`wrap`] adds a join cell shared by the task and
//! its handle. Tokio's own `JoinHandle` already carries a result, so
//! [`instrument`] only counts and catches, and [`Handle::tokio`] adopts the
//! `JoinHandle` (no allocation beyond Tokio's own per task). Both wrappers
//! count polls and keep the running-tasks gauge.
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
use parking_lot::Mutex;
use pin_project_lite::pin_project;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll, Waker},
};

/// Only `Ok(T)` or `Err(Closed)` travel through a cell (tokio tasks use
/// tokio's own join handle), so `Closed` is a unit variant: keeping an
/// inline `Result<T, Error>` would cost every task 48 bytes for `Error`.
enum State<T> {
    Running(Option<Waker>),
    Done(T),
    Closed,
    Taken,
}

/// Where a task leaves its result for its handle.
struct Cell<T> {
    state: Mutex<State<T>>,
}

impl<T> Cell<T> {
    /// Stores the task's output (`None`: it was closed unfinished) unless
    /// the task already has a result. Returns whether it was stored.
    fn finish(&self, output: Option<T>) -> bool {
        let waker = {
            let mut state = self.state.lock();
            match &mut *state {
                State::Running(waker) => {
                    let waker = waker.take();
                    *state = output.map_or(State::Closed, State::Done);
                    waker
                }
                _ => return false,
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

/// How a handle stops a task whose result comes through a cell.
pub(crate) enum Aborter {
    Deterministic(commonware_executor::Core, commonware_executor::TaskId),
}

/// Where a handle's result comes from.
enum Join<T> {
    /// The task's wrapper (see [`wrap`]) leaves it in the cell.
    Cell {
        cell: Arc<Cell<T>>,
        aborter: Option<Aborter>,
    },
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
            Join::Cell { cell, aborter } => {
                if cell.finish(None) {
                    if let Some(Aborter::Deterministic(core, id)) = aborter {
                        core.abort(*id);
                    }
                }
            }
            Join::Tokio(Some(handle)) => handle.abort(),
            Join::Tokio(None) => {}
        }
    }

    /// Attaches the way to stop the task once the backend has spawned it.
    pub(crate) fn set_aborter(&mut self, new: Aborter) {
        if let Join::Cell { aborter, .. } = &mut self.join {
            *aborter = Some(new);
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
        let cell = match &mut self.join {
            Join::Cell { cell, .. } => cell,
            Join::Tokio(slot) => {
                let Some(handle) = slot else {
                    return Poll::Ready(Err(Error::Closed));
                };
                let result = ready!(Pin::new(handle).poll(cx));
                *slot = None;
                // Panics are caught inside the task, so a join error is a
                // cancellation.
                return Poll::Ready(match result {
                    Ok(Some(value)) => Ok(value),
                    Ok(None) => Err(Error::Exited),
                    Err(_) => Err(Error::Closed),
                });
            }
        };
        let mut state = cell.state.lock();
        match &mut *state {
            State::Running(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Done(value) => Poll::Ready(Ok(value)),
                _ => unreachable!("matched Done above"),
            },
            State::Closed | State::Taken => {
                *state = State::Taken;
                Poll::Ready(Err(Error::Closed))
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

/// Owned by the task: if it is dropped unfinished (aborted, or its runtime
/// ended), its handle resolves to `Err(Error::Closed)`.
struct Completer<T> {
    cell: Arc<Cell<T>>,
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.cell.finish(None);
    }
}

pin_project! {
    /// The task [`wrap`] returns. Fields drop in order: the future, then the
    /// completer (an unfinished task closes its handle), then the gauge, so
    /// the handle sees the result before the gauge drops.
    struct Delivering<F, T> {
        #[pin]
        counted: Counted<F>,
        completer: Completer<T>,
        _running: Running,
    }
}

impl<F: Future<Output = T>, T> Future for Delivering<F, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let value = ready!(this.counted.poll(cx));
        this.completer.cell.finish(Some(value));
        Poll::Ready(())
    }
}

/// Wraps `future` for an executor whose tasks have no output: the returned
/// future runs it, counts its polls and hands its output to the returned
/// handle. A panic propagates (the executor reports it).
pub(crate) fn wrap<F, T>(
    future: F,
    metrics: TaskMetrics,
) -> (impl Future<Output = ()> + Send + 'static, Handle<T>)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let cell = Arc::new(Cell {
        state: Mutex::new(State::Running(None)),
    });
    let running = Running::new(metrics.running);
    let task = Delivering {
        counted: Counted::Running {
            future,
            polls: metrics.polls,
        },
        completer: Completer { cell: cell.clone() },
        _running: running,
    };
    (
        task,
        Handle {
            join: Join::Cell {
                cell,
                aborter: None,
            },
        },
    )
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
    fn delivers_output_and_counts() {
        let m = metrics();
        let (running, polls) = (m.running.clone(), m.polls.clone());
        let (task, handle) = wrap(async { 7 }, m);
        assert_eq!(running.get(), 1);
        block_on(task);
        assert_eq!(block_on(handle), Ok(7));
        assert_eq!(running.get(), 0);
        assert_eq!(polls.get(), 1);
    }

    #[test]
    fn wrappers_store_the_future_once() {
        let future = std::future::ready([7u8; 512]);
        let size = std::mem::size_of_val(&future);
        let (task, handle) = wrap(future, metrics());
        assert!(
            std::mem::size_of_val(&task) < size + 64,
            "wrap costs {} bytes for a {size}-byte future",
            std::mem::size_of_val(&task)
        );
        block_on(task);
        assert_eq!(block_on(handle), Ok([7u8; 512]));
        let instrumented = instrument(std::future::ready([7u8; 512]), metrics());
        assert!(std::mem::size_of_val(&instrumented) < size + 64);
        assert!(matches!(block_on(instrumented), Ok(v) if v == [7u8; 512]));
    }

    #[test]
    fn dropped_task_closes_handle() {
        let m = metrics();
        let running = m.running.clone();
        let (task, handle) = wrap(std::future::pending::<()>(), m);
        drop(task);
        assert_eq!(block_on(handle), Err(Error::Closed));
        assert_eq!(running.get(), 0);
    }

    #[test]
    fn abort_after_finish_keeps_value() {
        let (task, handle) = wrap(async { 1 }, metrics());
        block_on(task);
        handle.abort();
        assert_eq!(block_on(handle), Ok(1));
    }

    #[test]
    fn abort_before_finish_closes() {
        let (task, handle) = wrap(async { 1 }, metrics());
        handle.abort();
        block_on(task);
        assert_eq!(block_on(handle), Err(Error::Closed));
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
