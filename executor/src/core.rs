//! The executor's state and the handle to it.
//!
//! # What this module owns
//! * [`State`]: the arena of tasks, the timer wheel, virtual time, the
//!   scheduler, the audit digest and the run's bookkeeping (which task is
//!   being polled, the root, the poll count).
//! * [`Shared`]: the state behind its re-entrant lock, with the ready queue
//!   and what may be read without the lock (the time, the label counts).
//!   Every task's header points here (see `task/header.rs`), so wakers
//!   reach the ready queue and join handles reach [`Shared::abort`].
//! * [`Core`]: the cloneable handle backends and tasks use. Its methods that
//!   build other types live beside those types: [`Core::successor`] with
//!   the run loop (`run.rs`) and [`Core::sleep_until`] with [`Sleep`]
//!   (`time/sleep.rs`).
//! * [`Wake`]: what a timer of this executor wakes.
//! * Where an executor's memory comes from and goes: a new state starts in
//!   what the thread's last finished run left (`spare.rs`), and
//!   [`Core::recycle`] hands a finished run's memory on.
//!
//! # Invariants
//! * Futures and wakers are never dropped or called while the state is
//!   borrowed (their code may call back into the executor; the lock is
//!   re-entrant, the `RefCell` is not): what the state gives up is dropped
//!   after the borrow ends.
//! * `Shared::now` equals `State::now` whenever the state is not borrowed:
//!   only the run loop writes either, under one borrow.
//! * A task spawned while another is being polled is labelled from that
//!   task's label, unless that task is the run's root (see
//!   `audit/labels.rs` for the rule).
//!
//! [`Sleep`]: crate::Sleep

use crate::{
    audit::{
        digest::{self, Digest, Trace},
        labels::{LabelId, LabelStats, LabelTable, Published},
    },
    ready::ReadyQueue,
    scheduler::{Recorder, Replay, Schedule, Scheduler},
    spare::{self, Spare},
    task::{self, Arena, JoinHandle, TaskId},
    time::{wheel::Wheel, END_OF_TIME},
};
use parking_lot::ReentrantMutex;
use std::{
    cell::RefCell,
    fmt::Write as _,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::Waker,
    time::Duration,
};

/// How an executor runs.
pub struct CoreConfig {
    /// Virtual time (ns since the epoch) at which the run starts; at most
    /// [`END_OF_TIME`].
    pub start: u64,
    /// Virtual time added after every round (ns); at most [`END_OF_TIME`].
    pub cycle: u64,
    /// Virtual time at or after which a round panics with `runtime timeout`.
    pub deadline: Option<u64>,
    /// Who runs when, and where random numbers come from.
    pub scheduler: Box<dyn Scheduler>,
}

/// Everything about a run that only the state borrow may touch.
pub(crate) struct State {
    pub(crate) arena: Arena,
    pub(crate) wheel: Wheel<Wake>,
    pub(crate) now: u64,
    pub(crate) scheduler: Box<dyn Scheduler>,
    pub(crate) digest: Digest,
    /// The task being polled, if any.
    pub(crate) current: Option<TaskId>,
    /// The task being polled was aborted during its poll (by itself): the
    /// run loop removes it when the poll returns.
    pub(crate) current_aborted: bool,
    pub(crate) root: Option<TaskId>,
    pub(crate) finished: bool,
    /// The run is over, whatever ended it: later spawns never run (their
    /// handles close at once) and later sleeps would never fire (they panic).
    pub(crate) ended: bool,
    pub(crate) polls: u64,
    /// What each slot's task waits on, by slot index, valid where the
    /// slot's `noted` is set (see `wait.rs`); grown when a note needs it.
    pub(crate) waits: Vec<crate::wait::Wait>,
    /// The run loop's round buffers, kept here between runs so that a
    /// finished run can hand them on (see `spare.rs`).
    pub(crate) rounds: Rounds,
}

/// The buffers the run loop works a round in.
#[derive(Default)]
pub(crate) struct Rounds {
    /// The tasks of this round.
    pub(crate) batch: Vec<TaskId>,
    /// Tasks the scheduler held back, first in the next round.
    pub(crate) held: Vec<TaskId>,
    /// What the timers that fired this round wake.
    pub(crate) fired: Vec<Wake>,
}

impl State {
    /// A state with no tasks or timers at time `now`, built on the memory
    /// `spare` holds (what a finished run on this thread left, see
    /// `spare.rs`); also returns the spare local ready list, for the queue.
    fn fresh(
        spare: Spare,
        labels: LabelTable,
        now: u64,
        scheduler: Box<dyn Scheduler>,
        digest: Digest,
    ) -> (Self, Vec<TaskId>) {
        let state = State {
            arena: Arena::new(spare.slots, labels),
            wheel: reset_wheel(spare.wheel, now),
            now,
            scheduler,
            digest,
            current: None,
            current_aborted: false,
            root: None,
            finished: false,
            ended: false,
            polls: 0,
            waits: Vec::new(),
            rounds: Rounds {
                batch: spare.batch,
                held: spare.held,
                fired: spare.fired,
            },
        };
        (state, spare.ready)
    }

    /// The label a task spawned now is named under: the label of the task
    /// being polled, unless that is the run's root.
    #[inline]
    pub(crate) fn parent_label(&self) -> Option<LabelId> {
        let current = self.current.filter(|&id| Some(id) != self.root)?;
        Some(self.arena.get(current)?.label)
    }
}

/// One executor's state, shared by its `Core` handles and its tasks' blocks
/// (whose headers point here so wakers and join handles can reach it).
pub(crate) struct Shared {
    /// Re-entrant on the thread holding it: the run loop holds it for the
    /// whole run, and the tasks it polls re-enter it (a thread-id compare,
    /// no atomic read-modify-write) to reach the state. Other threads get it
    /// between rounds (the run loop yields it to waiters once per round).
    /// Every access goes through a `RefCell` borrow that is never held while
    /// user code (a future, a waker) runs.
    pub(crate) state: ReentrantMutex<RefCell<State>>,
    pub(crate) queue: ReadyQueue,
    /// `State::now`, readable without the state: only the run loop writes
    /// either (under the state borrow, both at once), so on the executor's
    /// thread this is always exactly the virtual time, and reading it costs
    /// a load instead of a lock and a borrow (`Clock::current` and every
    /// `sleep` read it).
    pub(crate) now: AtomicU64,
    /// The label counts, readable without the state.
    pub(crate) labels: Published,
    pub(crate) cycle: u64,
    pub(crate) deadline: Option<u64>,
}

impl Shared {
    /// See [`Core::abort`].
    pub(crate) fn abort(&self, id: TaskId) -> bool {
        let removed = {
            let guard = self.state.lock();
            let mut state = guard.borrow_mut();
            if state.arena.get(id).is_none() {
                return false;
            }
            // The task being polled is only marked: the run loop removes it
            // once its poll returns.
            let removed = if state.current == Some(id) {
                if state.current_aborted {
                    return false;
                }
                state.current_aborted = true;
                None
            } else {
                state.arena.remove(id)
            };
            state.digest.event(digest::kind::ABORT, id.seq());
            removed
        };
        drop(removed);
        true
    }
}

/// A cloneable handle to an executor's state: what backends and tasks use.
#[derive(Clone)]
pub struct Core {
    pub(crate) shared: Arc<Shared>,
}

impl Core {
    /// A core with no tasks, configured by `config`.
    pub(crate) fn new(config: CoreConfig) -> Self {
        assert!(
            config.cycle <= END_OF_TIME && config.start <= END_OF_TIME,
            "CoreConfig: cycle ({} ns) and start ({} ns) must not pass END_OF_TIME",
            config.cycle,
            config.start
        );
        let (state, ready) = State::fresh(
            spare::take(),
            LabelTable::default(),
            config.start,
            config.scheduler,
            Digest::default(),
        );
        Self::from_state(state, ready, config.cycle, config.deadline)
    }

    fn from_state(state: State, ready: Vec<TaskId>, cycle: u64, deadline: Option<u64>) -> Self {
        let labels = state.arena.labels.published();
        let now = AtomicU64::new(state.now);
        Core {
            shared: Arc::new(Shared {
                state: ReentrantMutex::new(RefCell::new(state)),
                queue: ReadyQueue::with_local(ready),
                now,
                labels,
                cycle,
                deadline,
            }),
        }
    }

    /// Current virtual time in nanoseconds since the epoch.
    #[inline]
    pub fn now(&self) -> u64 {
        self.shared.now.load(Ordering::Relaxed)
    }

    /// Spawns a task labelled `label` as it is, not counted in any
    /// [`LabelStats`] (a run's root, a backend's own machinery); it runs in
    /// a later round of the loop. Dropping the returned handle detaches the
    /// task.
    pub fn spawn<F>(&self, label: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.insert(future, |labels, _| (labels.intern(label), false))
    }

    /// Spawns a task named `name` under the task being polled right now:
    /// labelled `parent_name`, or `name` alone when there is no such task,
    /// when it is the run's root or when its label is empty (see
    /// [`Core::spawns_unprefixed`]). The task counts in its label's
    /// [`LabelStats`].
    pub fn spawn_child<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.insert(future, |labels, parent| (labels.child(parent, name), true))
    }

    /// Whether a task spawned here and now by [`Core::spawn_child`] gets its
    /// name alone as its label.
    pub fn spawns_unprefixed(&self) -> bool {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        state.arena.labels.prefix(state.parent_label()).is_none()
    }

    /// Inserts a task whose label (and whether it is counted) `label`
    /// resolves from the label of the task spawning it, under one state
    /// borrow.
    fn insert<F>(
        &self,
        future: F,
        label: impl FnOnce(&mut LabelTable, Option<LabelId>) -> (LabelId, bool),
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        if state.ended {
            drop(state);
            drop(guard);
            return task::spawn_closed(future, self.shared.clone());
        }
        let parent = state.parent_label();
        let now = state.now;
        let State { arena, digest, .. } = &mut *state;
        let known = arena.labels.len();
        let (label, counted) = label(&mut arena.labels, parent);
        let fresh = arena.labels.len() > known;
        let name = arena.labels.name(label);
        digest.spawn(arena.next_seq(), label.get(), name, fresh);
        arena.insert(label, counted, future, &self.shared, now)
    }

    /// What the executor counted per label, for every label with counted
    /// tasks, in label order. Does not wait for the run loop: callable from
    /// any thread at any time (counts of a round in progress may be seen
    /// half updated).
    pub fn label_stats(&self) -> Vec<(Arc<str>, LabelStats)> {
        self.shared.labels.counted()
    }

    /// Aborts a task: its future is dropped (at once, or right after its
    /// current poll if it is aborting itself). Returns false if the task had
    /// already finished.
    pub fn abort(&self, id: TaskId) -> bool {
        self.shared.abort(id)
    }

    /// Draws a random number from the scheduler (audited).
    pub fn next_u64(&self) -> u64 {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        let value = state.scheduler.next_u64();
        state.digest.event(digest::kind::RANDOM, value);
        value
    }

    /// Decides whether the fault `name` fires, with probability `p`: the
    /// seed of its parameters if it does (audited). `p` of 0 or less (or
    /// NaN) is not a decision: nothing is drawn, counted or recorded. Fault
    /// decisions draw from the scheduler's fault stream, never from the
    /// random numbers [`Core::next_u64`] hands out.
    pub fn fault(&self, name: &dyn std::fmt::Display, p: f64) -> Option<u64> {
        // NaN fails this too.
        if p.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        let param = state.scheduler.fault(name, p)?;
        state.digest.event(digest::kind::FAULT, param);
        Some(param)
    }

    /// Fills `dest` with random bytes: one audited draw per 8 bytes, exactly
    /// as repeated [`Core::next_u64`] calls would, under one lock.
    pub fn fill_bytes(&self, dest: &mut [u8]) {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        for chunk in dest.chunks_mut(8) {
            let value = state.scheduler.next_u64();
            state.digest.event(digest::kind::RANDOM, value);
            chunk.copy_from_slice(&value.to_le_bytes()[..chunk.len()]);
        }
    }

    /// Feeds an event into the audit digest.
    pub fn audit(&self, kind: u8, word: u64, bytes: &[u8]) {
        self.shared
            .state
            .lock()
            .borrow_mut()
            .digest
            .event_bytes(kind, word, bytes);
    }

    /// The audit digest so far, as hex.
    pub fn digest(&self) -> String {
        self.shared.state.lock().borrow().digest.hex()
    }

    /// The scheduler's name (for reproduction messages).
    pub fn scheduler_name(&self) -> String {
        self.shared.state.lock().borrow().scheduler.name()
    }

    /// The schedule recorded so far, if the scheduler is a
    /// [`Recorder`].
    pub fn recording(&self) -> Option<Schedule> {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let recorder = state.scheduler.downcast_ref::<Recorder>()?;
        Some(recorder.recording().clone())
    }

    /// The virtual time of each round entry of [`Core::recording`], if the
    /// scheduler is a [`Recorder`].
    pub fn decision_times(&self) -> Option<Vec<u64>> {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let recorder = state.scheduler.downcast_ref::<Recorder>()?;
        Some(recorder.decision_times().to_vec())
    }

    /// Where this run stops matching the schedule it replays (see
    /// [`Replay::mismatch`]), if the scheduler is a [`Replay`]: `None` for
    /// any other scheduler and for a replay that matched so far.
    pub fn replay_mismatch(&self) -> Option<String> {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        state.scheduler.downcast_ref::<Replay>()?.mismatch()
    }

    /// Starts tracing every audit event (see [`Trace`]); a successor keeps
    /// tracing.
    pub fn enable_trace(&self) {
        self.shared.state.lock().borrow_mut().digest.enable_trace();
    }

    /// The trace so far, if tracing is on.
    pub fn trace(&self) -> Option<Trace> {
        self.shared.state.lock().borrow().digest.trace().cloned()
    }

    /// Whether the run is over: its root task completed, or
    /// [`RunLoop::run_until`](crate::RunLoop::run_until) halted it.
    pub fn finished(&self) -> bool {
        self.shared.state.lock().borrow().finished
    }

    /// Number of live tasks.
    pub fn tasks(&self) -> usize {
        self.shared.state.lock().borrow().arena.len()
    }

    /// Number of polls so far.
    pub fn polls(&self) -> u64 {
        self.shared.state.lock().borrow().polls
    }

    /// Number of pending timers.
    pub fn timers(&self) -> usize {
        self.shared.state.lock().borrow().wheel.len()
    }

    /// A fresh core that continues this one's virtual time, scheduler
    /// (random stream) and audit digest, with no tasks or timers (see
    /// [`Core::successor`]).
    pub(crate) fn continued(&self) -> Core {
        let spare = spare::take();
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let (next, ready) = State::fresh(
            spare,
            state.arena.labels.successor(),
            state.now,
            state.scheduler.fork(),
            state.digest.clone(),
        );
        Core::from_state(next, ready, self.shared.cycle, self.shared.deadline)
    }

    /// Drops every task and timer (outside the state borrow).
    pub(crate) fn clear(&self) {
        let (slots, wakers) = {
            let guard = self.shared.state.lock();
            let mut state = guard.borrow_mut();
            (state.arena.drain(), state.wheel.clear())
        };
        drop(slots);
        drop(wakers);
    }

    /// Hands the memory of a run that is over (`ended`, tasks and timers
    /// cleared) to this thread's next executor, with the ready queue's
    /// list `ready`. The state keeps a new, empty wheel and slot table:
    /// nothing can file a timer or a task in them any more.
    pub(crate) fn recycle(&self, ready: Vec<TaskId>) {
        let spare = {
            let guard = self.shared.state.lock();
            let mut state = guard.borrow_mut();
            debug_assert!(state.ended, "recycle a run that is over");
            if state.arena.len() != 0 || state.wheel.len() != 0 {
                return;
            }
            let now = state.now;
            let rounds = std::mem::take(&mut state.rounds);
            Spare {
                wheel: Some(std::mem::replace(&mut state.wheel, Wheel::new(now))),
                slots: state.arena.take_slots(),
                ready,
                batch: rounds.batch,
                held: rounds.held,
                fired: rounds.fired,
            }
        };
        spare::give(spare);
    }

    pub(crate) fn stall_report(&self) -> String {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let mut report = format!(
            "runtime stalled at {:?} (virtual): no task is ready and no timer is pending; {} task(s) wait forever:",
            Duration::from_nanos(state.now),
            state.arena.len()
        );
        list_waits(&state, &mut report);
        report
    }

    /// Every live task with what it waits on (see [`Wait`](crate::Wait)),
    /// one per line, in spawn order: `- label (task #n): last polled 3ms
    /// ago, waits on a timer due at 40ms`. What the stall and timeout
    /// reports list; callable at any time (between rounds from another
    /// thread).
    pub fn wait_report(&self) -> String {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let mut report = format!(
            "{} task(s) pending at {:?} (virtual):",
            state.arena.len(),
            Duration::from_nanos(state.now)
        );
        list_waits(&state, &mut report);
        report
    }
}

/// Appends one line per live task: label, id, idle time and its wait.
fn list_waits(state: &State, report: &mut String) {
    let tasks = state.arena.tasks();
    for slot in &tasks {
        let idle = Duration::from_nanos(state.now.saturating_sub(slot.last_polled));
        let _ = write!(
            report,
            "\n  - {} (task #{}): last polled {:?} ago, waits on ",
            state.arena.label(slot),
            slot.id().seq(),
            idle
        );
        let ready = slot.task.header().marks.is_queued();
        let wait = match slot.noted {
            true => state.waits.get(slot.id().index() as usize).copied(),
            false => None,
        };
        let _ = match wait.unwrap_or_default() {
            _ if ready => write!(report, "nothing: it is ready to run"),
            crate::wait::Wait::Unknown => write!(
                report,
                "nothing the runtime saw (a channel, a lock, or a waker held outside the runtime)"
            ),
            crate::wait::Wait::Timer(at) => {
                write!(report, "a timer due at {:?}", Duration::from_nanos(at))
            }
            crate::wait::Wait::Task(seq) => {
                match tasks.iter().find(|other| other.id().seq() == seq) {
                    Some(other) => write!(
                        report,
                        "the Handle of task #{seq} '{}'",
                        state.arena.label(other)
                    ),
                    None => write!(report, "the Handle of task #{seq} (finished)"),
                }
            }
            crate::wait::Wait::Note(note, word) => {
                write!(report, "{}", NoteText(note, word))
            }
        };
    }
}

/// A backend's note as text.
struct NoteText(&'static crate::wait::WaitNote, u64);

impl std::fmt::Display for NoteText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (self.0.describe)(f, self.1)
    }
}

/// A wheel at `now`: the kept one, reset, or a new one.
fn reset_wheel(wheel: Option<Wheel<Wake>>, now: u64) -> Wheel<Wake> {
    match wheel {
        Some(mut wheel) => {
            wheel.reset(now);
            wheel
        }
        None => Wheel::new(now),
    }
}

/// What a timer wakes when it fires.
pub(crate) enum Wake {
    /// A task of this executor, by id: no waker reference count to touch.
    Task(TaskId),
    /// Any other waker (a combinator's, another executor's).
    Waker(Waker),
}

impl Wake {
    pub(crate) fn new(waker: &Waker, shared: &Shared) -> Self {
        match task::task_of(waker, shared) {
            Some(id) => Wake::Task(id),
            None => Wake::Waker(waker.clone()),
        }
    }

    pub(crate) fn will_wake(&self, waker: &Waker, shared: &Shared) -> bool {
        match self {
            Wake::Task(id) => task::task_of(waker, shared) == Some(*id),
            Wake::Waker(own) => own.will_wake(waker),
        }
    }

    /// The task of this executor it wakes, if that is what it wakes.
    #[inline]
    pub(crate) fn task(&self) -> Option<TaskId> {
        match self {
            Wake::Task(id) => Some(*id),
            Wake::Waker(_) => None,
        }
    }

    /// Wakes the task (a finished one is skipped). Called with the state
    /// lock held but not borrowed: a foreign waker may call back in.
    #[inline]
    pub(crate) fn wake(self, state: &RefCell<State>) {
        match self {
            Wake::Task(id) => {
                if let Some(slot) = state.borrow().arena.get(id) {
                    slot.task.header().wake();
                }
            }
            Wake::Waker(waker) => waker.wake(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{executor, run_ok, yield_now, DropFlag};
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn abort_drops_the_future_and_frees_the_slot() {
        let exec = executor(0);
        let c = exec.core().clone();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        run_ok(&exec, async move {
            let flag = DropFlag(d.clone());
            let id = c
                .spawn("victim", async move {
                    let _flag = flag;
                    std::future::pending::<()>().await;
                })
                .id();
            yield_now().await;
            assert_eq!(c.tasks(), 2);
            assert!(c.abort(id));
            assert_eq!(d.load(Ordering::SeqCst), 1);
            assert_eq!(c.tasks(), 1);
            assert!(!c.abort(id), "second abort is a no-op");
            // A task aborting itself mid-poll is removed after the poll.
            let c2 = c.clone();
            let me = Arc::new(Mutex::new(None::<TaskId>));
            let results = Arc::new(Mutex::new(Vec::new()));
            let (me2, results2) = (me.clone(), results.clone());
            let id = c
                .spawn("self", async move {
                    loop {
                        if let Some(id) = *me2.lock() {
                            // The first abort counts; a second in the same
                            // poll finds it aborted already.
                            let first = c2.abort(id);
                            let second = c2.abort(id);
                            results2.lock().push((first, second));
                        }
                        yield_now().await;
                    }
                })
                .id();
            *me.lock() = Some(id);
            for _ in 0..3 {
                yield_now().await;
            }
            assert_eq!(c.tasks(), 1);
            assert_eq!(*results.lock(), [(true, false)], "removed after one poll");
        });
    }

    #[test]
    fn fill_bytes_matches_repeated_draws() {
        let (a, b) = (executor(5), executor(5));
        let mut bytes = [0u8; 20];
        a.core().fill_bytes(&mut bytes);
        let mut expected = Vec::new();
        for _ in 0..3 {
            expected.extend_from_slice(&b.core().next_u64().to_le_bytes());
        }
        assert_eq!(&bytes[..], &expected[..20]);
        assert_eq!(a.core().digest(), b.core().digest(), "same audited draws");
    }
}
