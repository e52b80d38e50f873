//! The run loop: rounds of polls over virtual time.
//!
//! # What this module owns
//! [`RunLoop`], which owns one executor's run loop: [`RunLoop::run`] and
//! [`RunLoop::run_until`] (which may stop at a [`CrashPoint`], as a crash
//! would), each round's polls (`poll_batch`), the time steps between rounds
//! and the firing of due timers; and [`Failure`], why a run ended without
//! its root task.
//!
//! # A round
//! Check the timeout and the crash point; take the ready set (tasks held back by
//! the scheduler last round, then tasks woken since, in wake order); let the
//! scheduler choose which of them run and in what order; poll each once;
//! advance virtual time by `cycle`; if nothing is ready, jump to the next
//! timer deadline (not past a crash point); fire due timers (deadline order, ties
//! in registration order); if nothing is ready and no timer is pending,
//! the run has stalled.
//!
//! # Invariants
//! * The loop holds the state's lock for the whole run and borrows the
//!   state once per poll; no future runs and nothing is dropped while the
//!   state is borrowed.
//! * A task held back by the scheduler stays ready, in the ready set of the
//!   next round, ahead of tasks woken since.
//! * A task being polled is `State::current` and stays in the arena until
//!   its poll returns, even if it aborts itself.
//! * Every digest event the loop records (round, poll, finish, time skip)
//!   is recorded in the order the loop does the work, and nothing else
//!   decides that order but the scheduler.

use crate::{
    audit::digest,
    core::{Core, CoreConfig, Rounds, State, Wake},
    ready::EnterGuard,
    task::{Slot, TaskId},
    time::END_OF_TIME,
};
use parking_lot::ReentrantMutexGuard;
use std::{
    any::Any,
    cell::RefCell,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::atomic::Ordering,
    time::Duration,
};

/// How many tasks ahead the run loop prefetches a task block when it polls
/// a round; the slot is prefetched twice as far ahead. A poll takes long
/// enough that a few cover a memory access.
const PREFETCH_AHEAD: usize = 4;

/// The same, for waking the tasks of fired timers: a wake is much shorter
/// than a poll, so it looks further ahead.
const WAKE_AHEAD: usize = 16;

/// Below this many live tasks, slots and blocks stay in cache and the run
/// loop does not prefetch (it would only add work to every poll).
const PREFETCH_MIN_TASKS: usize = 4096;

/// Where [`RunLoop::run_until`] stops a run early, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before the poll that would exceed this many polls of this executor.
    AfterPolls(u64),
    /// At the start of the first round at or after this virtual time (ns).
    /// An idle run skips ahead to it, not past it.
    At(u64),
}

/// Why a run ended without its root task completing.
pub enum Failure {
    /// A task panicked; `payload` is what it panicked with.
    Panic {
        /// Label of the task that panicked.
        label: String,
        /// The panic payload (re-raise with `resume_unwind`).
        payload: Box<dyn Any + Send>,
    },
    /// Nothing could ever run again. The message starts with
    /// `runtime stalled` and lists the pending tasks, each with what its
    /// last poll waited on (see [`Wait`](crate::Wait)).
    Stalled(String),
    /// Virtual time reached the deadline. The message starts with
    /// `runtime timeout` and lists the pending tasks with what each waits
    /// on, as the stall report does.
    Timeout(String),
}

impl Failure {
    /// The panic message of a `Panic` whose payload is a string.
    fn panic_message(&self) -> Option<&str> {
        let Failure::Panic { payload, .. } = self else {
            return None;
        };
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
    }
}

/// The message: for a panic, the task's label and (if a string) what it
/// panicked with; for a stall or a timeout, the report.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic { label, .. } => match self.panic_message() {
                Some(message) => write!(f, "task '{label}' panicked: {message}"),
                None => write!(f, "task '{label}' panicked"),
            },
            Failure::Stalled(message) | Failure::Timeout(message) => f.write_str(message),
        }
    }
}

/// Shows a panic's payload as its message, if it is a string.
impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic { label, .. } => f
                .debug_struct("Panic")
                .field("label", label)
                .field("message", &self.panic_message())
                .finish_non_exhaustive(),
            Failure::Stalled(message) => f.debug_tuple("Stalled").field(message).finish(),
            Failure::Timeout(message) => f.debug_tuple("Timeout").field(message).finish(),
        }
    }
}

impl std::error::Error for Failure {}

/// Owns the run loop of one executor.
pub struct RunLoop {
    core: Core,
}

impl Drop for RunLoop {
    /// Tasks spawned but never run still hold their executor's state (their
    /// headers point there): dropping them breaks that cycle.
    fn drop(&mut self) {
        self.core.clear();
    }
}

impl RunLoop {
    /// A new executor with no tasks.
    pub fn new(config: CoreConfig) -> Self {
        Self {
            core: Core::new(config),
        }
    }

    /// The handle tasks and backends use.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Runs `root` (labelled `label`) and every task it spawns until `root`
    /// completes, and returns its output. Tasks still alive afterwards are
    /// dropped, so their handles resolve.
    pub fn run<F>(&self, label: &str, root: F) -> Result<F::Output, Failure>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.run_until(label, root, None)
            .map(|output| output.expect("a run without a crash point ends with its root"))
    }

    /// [`RunLoop::run`], but stops at `crash_point` if the root has not completed
    /// by then: every task is dropped mid-flight, as in a crash. Returns the
    /// root's output if it completed. Either way the run counts as finished
    /// (see [`Core::finished`]).
    pub fn run_until<F>(
        &self,
        label: &str,
        root: F,
        crash_point: Option<CrashPoint>,
    ) -> Result<Option<F::Output>, Failure>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = &*self.core.shared;
        assert!(
            !shared.state.lock().borrow().ended,
            "an executor runs once: continue from `Core::continued`"
        );
        let queue = shared.queue.enter();
        let mut root = self.core.spawn(label, root);
        shared.state.lock().borrow_mut().root = Some(root.id());
        let rounds = std::mem::take(&mut shared.state.lock().borrow_mut().rounds);
        let (result, mut rounds) = self.run_loop(&queue, crash_point, rounds);
        rounds.batch.clear();
        rounds.held.clear();
        rounds.fired.clear();
        {
            let guard = shared.state.lock();
            let mut state = guard.borrow_mut();
            state.ended = true;
            state.rounds = rounds;
            if let Ok(false) = result {
                state.finished = true;
            }
        }
        let ready = queue.take_local();
        drop(queue);
        self.core.clear();
        self.core.recycle(ready);
        result.map(|completed| {
            completed.then(|| root.try_take().expect("a completed root left its output"))
        })
    }

    fn run_loop(
        &self,
        queue: &EnterGuard<'_>,
        crash_point: Option<CrashPoint>,
        rounds: Rounds,
    ) -> (Result<bool, Failure>, Rounds) {
        let shared = &*self.core.shared;
        // Locals while the run lasts (cheaper to reach than through the
        // state), handed back with the result.
        let Rounds {
            mut batch,
            mut held,
            mut fired,
        } = rounds;
        // Held for the whole run; other threads get it between rounds.
        let mut round = shared.state.lock();
        // The earliest time at which a round does not start: the timeout
        // deadline, an `At` crash point or the end of virtual time. A round
        // compares `now` with it once; only then do the checks below, in
        // their order, say which (a hot path: one compare per round instead
        // of three tests, which the compiler does not merge by itself).
        let stop = [
            shared.deadline,
            match crash_point {
                Some(CrashPoint::At(at)) => Some(at),
                _ => None,
            },
            Some(END_OF_TIME + 1),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        let result = loop {
            // Pick this round's tasks.
            let run = {
                let mut state = round.borrow_mut();
                if state.now >= stop {
                    if let Some(deadline) = shared.deadline {
                        if state.now >= deadline {
                            drop(state);
                            break Err(Failure::Timeout(format!(
                                "runtime timeout: virtual time reached {:?} after the epoch; {}",
                                Duration::from_nanos(deadline),
                                self.core.wait_report()
                            )));
                        }
                    }
                    if let Some(CrashPoint::At(at)) = crash_point {
                        if state.now >= at {
                            break Ok(false);
                        }
                    }
                    if state.now > END_OF_TIME {
                        break Err(Failure::Timeout(format!(
                            "runtime timeout: virtual time passed its end, {:?} after the epoch",
                            Duration::from_nanos(END_OF_TIME)
                        )));
                    }
                }
                batch.clear();
                if !held.is_empty() {
                    batch.append(&mut held);
                }
                let arena = &state.arena;
                queue.drain_into(&mut batch, |id| {
                    arena.get(id).map(|slot| &slot.task.header().marks)
                });
                let now = state.now;
                let run = state.scheduler.schedule(&mut batch, now).min(batch.len());
                state.digest.event(digest::kind::ROUND, run as u64);
                run
            };
            if run < batch.len() {
                held.extend_from_slice(&batch[run..]);
            }

            match self.poll_batch(&round, &batch[..run], crash_point) {
                Ok(Some(root_completed)) => break Ok(root_completed),
                Ok(None) => {}
                Err(failure) => break Err(failure),
            }
            release_burst_capacity(&mut batch);

            // Advance time, skip ahead when idle, fire due timers.
            let pending_timers = {
                let mut state = round.borrow_mut();
                // Cannot overflow: `now` is at most `END_OF_TIME` (checked
                // below) and so is `cycle` (checked by `Core::new`).
                let ticked = state.now + shared.cycle;
                let mut now = ticked;
                state.wheel.expire(now, &mut fired);
                // Only an idle run looks for the next deadline (which costs
                // cascading): skip ahead to it, but not past the crash point.
                if fired.is_empty() && held.is_empty() && queue.is_empty() {
                    if let Some(next) = state.wheel.next_deadline() {
                        let next = match crash_point {
                            Some(CrashPoint::At(at)) => next.min(at),
                            _ => next,
                        };
                        if next > now {
                            now = next;
                            state.wheel.expire(now, &mut fired);
                        }
                    }
                }
                state.now = now;
                shared.now.store(now, Ordering::Relaxed);
                // A tick of one cycle follows from the round; only a skip
                // ahead is news to the digest.
                if now != ticked {
                    state.digest.event(digest::kind::TIME, now);
                }
                state.wheel.len()
            };
            // Most rounds fire nothing. Wakes go in firing order, popped
            // from the reversed list (cheaper than a drain for one or two).
            if !fired.is_empty() {
                let prefetch = round.borrow().arena.len() >= PREFETCH_MIN_TASKS;
                fired.reverse();
                while let Some(wake) = fired.pop() {
                    if prefetch {
                        // Deadline order is random in memory: fetch ahead.
                        let ahead = |n: usize| fired.len().checked_sub(n).map(|i| &fired[i]);
                        round.borrow().arena.prefetch(
                            ahead(WAKE_AHEAD).and_then(Wake::task),
                            ahead(2 * WAKE_AHEAD).and_then(Wake::task),
                        );
                    }
                    wake.wake(&round);
                }
            }

            if held.is_empty() && pending_timers == 0 && queue.is_empty() {
                break Err(Failure::Stalled(self.core.stall_report()));
            }
            // Costs a load unless another thread waits for the state.
            ReentrantMutexGuard::bump(&mut round);
        };
        (result, Rounds { batch, held, fired })
    }

    /// Polls `ids` once each, in order, borrowing the state once per poll
    /// (finishing one task and starting the next share one borrow). Returns
    /// `Some(true)` once the root completes, `Some(false)` if the run reached
    /// an `AfterPolls` crash point, `None` otherwise.
    fn poll_batch(
        &self,
        round: &RefCell<State>,
        ids: &[TaskId],
        crash_point: Option<CrashPoint>,
    ) -> Result<Option<bool>, Failure> {
        // What finished tasks leave behind, dropped once the state is
        // released.
        let mut finished: Option<Slot> = None;
        let mut state = round.borrow_mut();
        let prefetch = state.arena.len() >= PREFETCH_MIN_TASKS;
        let poll_limit = match crash_point {
            Some(CrashPoint::AfterPolls(limit)) => Some(limit),
            _ => None,
        };
        // Usually neither applies (a small arena, no `AfterPolls` crash
        // point): one test per poll then covers both. The compiler does not
        // hoist the two loop-invariant tests by itself, and this loop is the
        // hottest path of all.
        let extras = prefetch || poll_limit.is_some();
        for (i, &id) in ids.iter().enumerate() {
            if extras {
                if prefetch {
                    // The order is random: fetch what the next polls need.
                    state.arena.prefetch(
                        ids.get(i + PREFETCH_AHEAD).copied(),
                        ids.get(i + 2 * PREFETCH_AHEAD).copied(),
                    );
                }
                if let Some(limit) = poll_limit {
                    if state.polls >= limit {
                        drop(state);
                        drop(finished);
                        return Ok(Some(false));
                    }
                }
            }
            let now = state.now;
            // Stale ids (tasks aborted after being woken) are skipped.
            let Some(poller) = state.arena.begin_poll(id, now) else {
                continue;
            };
            state.current = Some(id);
            state.polls += 1;
            state.digest.event(digest::kind::POLL, id.seq());
            drop(state);
            drop(finished.take());

            // SAFETY: the task is `state.current`, so its `OwnedTask` stays
            // in the arena, alive and untouched, until we reset that below
            // (an abort of the current task only sets `current_aborted`;
            // nothing else removes slots while the loop runs).
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { poller.poll() }));

            state = round.borrow_mut();
            state.current = None;
            let aborted = std::mem::take(&mut state.current_aborted);
            match result {
                Ok(false) => {
                    if aborted {
                        finished = state.arena.remove(id);
                    }
                }
                Ok(true) => {
                    finished = state.arena.remove(id);
                    state.digest.event(digest::kind::FINISH, id.seq());
                    if state.root == Some(id) {
                        state.finished = true;
                        drop(state);
                        drop(finished);
                        return Ok(Some(true));
                    }
                }
                Err(payload) => {
                    let label = state
                        .arena
                        .get(id)
                        .map(|slot| state.arena.label(slot).to_string());
                    let slot = state.arena.remove(id);
                    drop(state);
                    drop(slot);
                    drop(finished);
                    return Err(Failure::Panic {
                        label: label.unwrap_or_default(),
                        payload,
                    });
                }
            }
        }
        drop(state);
        drop(finished);
        Ok(None)
    }
}

impl Core {
    /// A fresh executor that continues this one's virtual time, scheduler
    /// (random stream) and audit digest, with no tasks or timers.
    pub fn successor(&self) -> RunLoop {
        RunLoop {
            core: self.continued(),
        }
    }
}

/// Gives back most of a round buffer's capacity once the burst of wakes
/// that grew it is over (the buffer alternates with the ready queue's, so
/// both shrink), so memory returns after a wave of tasks. Small buffers and
/// buffers still in use keep their capacity, so the steady state does not
/// reallocate.
fn release_burst_capacity(batch: &mut Vec<TaskId>) {
    const KEEP: usize = 1024;
    if batch.capacity() > KEEP && batch.len() < batch.capacity() / 8 {
        batch.shrink_to(KEEP.max(batch.len() * 2));
    }
}

#[cfg(test)]
mod tests;
