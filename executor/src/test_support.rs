//! Helpers shared by the crate's unit tests: executors to run tests in, a
//! yield, a drop counter, and tasks held outside any arena.

use crate::{
    ready::ReadyQueue,
    task::{JoinHandle, OwnedTask, TaskId},
    wake::Marks,
    CoreConfig, RunLoop, Uniform,
};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::Poll,
};

/// One millisecond of virtual time.
pub(crate) const MS: u64 = 1_000_000;

/// An executor with a cycle of one millisecond, seeded with `seed`.
pub(crate) fn executor(seed: u64) -> RunLoop {
    RunLoop::new(CoreConfig {
        start: 0,
        cycle: MS,
        deadline: None,
        scheduler: Box::new(Uniform::new(seed)),
    })
}

/// An executor with a cycle of one nanosecond: the home of tasks that unit
/// tests drive by hand.
pub(crate) fn bare_executor() -> RunLoop {
    RunLoop::new(CoreConfig {
        start: 0,
        cycle: 1,
        deadline: None,
        scheduler: Box::new(Uniform::new(0)),
    })
}

/// Yields once (wakes itself and returns Pending the first time).
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Runs `root` on `exec` and panics if the run fails.
pub(crate) fn run_ok(exec: &RunLoop, root: impl Future<Output = ()> + Send + 'static) {
    if exec.run("root", root).is_err() {
        panic!("run failed");
    }
}

/// Counts its drops.
pub(crate) struct DropFlag(pub(crate) Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A pending task outside any arena, as the run loop holds it mid-poll.
pub(crate) fn unqueued_task(exec: &RunLoop, index: u32) -> (OwnedTask, JoinHandle<()>) {
    let shared = exec.core().shared.clone();
    crate::task::spawn(std::future::pending(), TaskId::new(index, 7), shared)
}

/// Drains `queue` as the run loop does, with `tasks` as the live ones.
pub(crate) fn drained(queue: &ReadyQueue, tasks: &[&OwnedTask]) -> Vec<TaskId> {
    let mut out = Vec::new();
    queue.enter().drain_into(&mut out, marks_of(tasks));
    out
}

/// Finds the marks of `tasks` for the drain, as the run loop does.
pub(crate) fn marks_of<'a>(tasks: &'a [&'a OwnedTask]) -> impl FnMut(TaskId) -> Option<&'a Marks> {
    |id| {
        tasks
            .iter()
            .find(|task| task.header().id() == id)
            .map(|task| &task.header().marks)
    }
}

/// Task ids `0..n`, slot and spawn order alike: ready sets for scheduler
/// tests.
pub(crate) fn ids(n: u64) -> Vec<TaskId> {
    (0..n).map(|i| TaskId::new(i as u32, i)).collect()
}
