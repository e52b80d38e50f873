//! [`Handle`]: the awaitable, abortable result of a spawned task.
//!
//! # What this module owns
//! The join cell shared by a task and its handle, and the wrapper every
//! backend puts around a spawned future (result delivery, poll counting,
//! the running-tasks gauge, and for tokio panic catching).
//!
//! # Invariants
//! * A handle resolves exactly once its task stops existing: `Ok(value)` if
//!   it completed, `Err(Error::Exited)` if it panicked under `catch_panics`,
//!   `Err(Error::Closed)` if it was aborted or dropped unfinished (including
//!   when its runtime ended), so awaiting a handle never hangs on a task that
//!   can no longer run.
//! * Aborting a task that already finished changes nothing.
//! * The running gauge is decremented exactly once per task, however it ends.

use crate::Error;
use futures::FutureExt;
use parking_lot::Mutex;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll, Waker},
};

enum State<T> {
    Running(Option<Waker>),
    Done(Result<T, Error>),
    Taken,
}

/// Where a task leaves its result for its handle.
struct Cell<T> {
    state: Mutex<State<T>>,
}

impl<T> Cell<T> {
    /// Stores `result` unless the task already has one. Returns whether it
    /// was stored.
    fn finish(&self, result: Result<T, Error>) -> bool {
        let waker = {
            let mut state = self.state.lock();
            match &mut *state {
                State::Running(waker) => {
                    let waker = waker.take();
                    *state = State::Done(result);
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

/// How a handle stops its task.
pub(crate) enum Aborter {
    Deterministic(commonware_executor::Core, commonware_executor::TaskId),
    Tokio(::tokio::task::AbortHandle),
}

/// Handle to a spawned task.
pub struct Handle<T>
where
    T: Send + 'static,
{
    cell: Arc<Cell<T>>,
    aborter: Option<Aborter>,
}

impl<T> Handle<T>
where
    T: Send + 'static,
{
    /// Aborts the task. Its handle then resolves to `Err(Error::Closed)`,
    /// unless the task had already finished.
    pub fn abort(&self) {
        if self.cell.finish(Err(Error::Closed)) {
            match &self.aborter {
                Some(Aborter::Deterministic(core, id)) => {
                    core.abort(*id);
                }
                Some(Aborter::Tokio(handle)) => handle.abort(),
                None => {}
            }
        }
    }

    /// Attaches the way to stop the task once the backend has spawned it.
    pub(crate) fn set_aborter(&mut self, aborter: Aborter) {
        self.aborter = Some(aborter);
    }
}

impl<T> Future for Handle<T>
where
    T: Send + 'static,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.cell.state.lock();
        match &mut *state {
            State::Running(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => Poll::Ready(result),
                _ => unreachable!("matched Done above"),
            },
            State::Taken => Poll::Ready(Err(Error::Closed)),
        }
    }
}

/// Per-task metric handles, already resolved for the task's label.
pub(crate) struct TaskMetrics {
    pub(crate) running: Gauge,
    pub(crate) polls: Counter,
}

/// Owned by the task: delivers its result and keeps the gauge honest.
struct Completer<T> {
    cell: Arc<Cell<T>>,
    running: Gauge,
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        // Dropped unfinished: aborted, or its runtime ended.
        self.cell.finish(Err(Error::Closed));
        self.running.dec();
    }
}

/// Wraps `future` for spawning: the returned future runs it, counts its
/// polls and hands its output to the returned handle. With `catch_panics`,
/// a panic becomes `Err(Error::Exited)`; without, it propagates.
pub(crate) fn wrap<F, T>(
    future: F,
    metrics: TaskMetrics,
    catch_panics: bool,
) -> (impl Future<Output = ()> + Send + 'static, Handle<T>)
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let cell = Arc::new(Cell {
        state: Mutex::new(State::Running(None)),
    });
    metrics.running.inc();
    let completer = Completer {
        cell: cell.clone(),
        running: metrics.running,
    };
    let polls = metrics.polls;
    let task = async move {
        let completer = completer;
        let mut future = pin!(future);
        let counted = std::future::poll_fn(|cx| {
            polls.inc();
            future.as_mut().poll(cx)
        });
        let result = if catch_panics {
            match AssertUnwindSafe(counted).catch_unwind().await {
                Ok(value) => Ok(value),
                Err(_) => Err(Error::Exited),
            }
        } else {
            Ok(counted.await)
        };
        completer.cell.finish(result);
    };
    (
        task,
        Handle {
            cell,
            aborter: None,
        },
    )
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
        let (task, handle) = wrap(async { 7 }, m, false);
        assert_eq!(running.get(), 1);
        block_on(task);
        assert_eq!(block_on(handle), Ok(7));
        assert_eq!(running.get(), 0);
        assert_eq!(polls.get(), 1);
    }

    #[test]
    fn dropped_task_closes_handle() {
        let m = metrics();
        let running = m.running.clone();
        let (task, handle) = wrap(std::future::pending::<()>(), m, false);
        drop(task);
        assert_eq!(block_on(handle), Err(Error::Closed));
        assert_eq!(running.get(), 0);
    }

    #[test]
    fn abort_after_finish_keeps_value() {
        let (task, handle) = wrap(async { 1 }, metrics(), false);
        block_on(task);
        handle.abort();
        assert_eq!(block_on(handle), Ok(1));
    }

    #[test]
    fn abort_before_finish_closes() {
        let (task, handle) = wrap(async { 1 }, metrics(), false);
        handle.abort();
        block_on(task);
        assert_eq!(block_on(handle), Err(Error::Closed));
    }

    #[test]
    fn caught_panic_is_exited() {
        let m = metrics();
        let running = m.running.clone();
        let (task, handle) = wrap(async { panic!("x") }, m, true);
        block_on(task);
        assert_eq!(block_on(handle), Err::<(), _>(Error::Exited));
        assert_eq!(running.get(), 0);
    }

    #[test]
    fn handle_is_unpin_send_sync() {
        fn check<T: Unpin + Send + Sync>() {}
        check::<Handle<u8>>();
    }
}
