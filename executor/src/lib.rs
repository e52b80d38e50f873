//! The deterministic executor core behind `commonware-runtime`.
//!
//! A single-threaded, round-based executor over virtual time. It knows
//! nothing of networks, files or the runtime traits: backends build those on
//! top of [`Core`] (spawn, abort, sleep, random numbers, audit events).
//!
//! # The run loop
//! Each round: check the timeout; take the ready set (tasks held back by
//! the strategy last round, then tasks woken since, in wake order); let the
//! [`Strategy`] choose which of them run and in what order; poll each once;
//! advance virtual time by `cycle`; if nothing is ready, jump to the next
//! timer deadline; fire due timers (deadline order, ties in registration
//! order); if nothing is ready and no timer is pending, the run has stalled.
//! [`Executor::run`] returns as soon as the root task completes;
//! [`Executor::run_until`] may also stop earlier, at a [`Halt`] (a crash).
//!
//! # Invariants
//! * Nothing here reads the wall clock, an address or a thread id to make a
//!   decision: the seed (through the strategy) and the program decide
//!   everything, so the same program and seed give the same run.
//! * No task is polled unless woken, and each woken task is polled at most
//!   once per round. A wake of a finished or aborted task does nothing.
//! * Futures and wakers are never dropped or called while the state is
//!   borrowed (their code may call back into the executor; the state's lock
//!   is re-entrant, its `RefCell` is not).
//! * Virtual time never goes backwards.

mod arena;
mod bytes;
pub mod digest;
mod labels;
mod pct;
mod schedule;
mod scheduler;
mod slots;
mod timer;
mod waker;

pub use arena::{Canceled, JoinHandle, TaskId};
pub use bytes::Bytes;
pub use digest::{Digest, Trace, TraceEvent};
pub use labels::LabelStats;
pub use pct::{Pct, DEFAULT_STEPS as PCT_DEFAULT_STEPS};
pub use schedule::{shrink, Decision, ParseError, Recorder, Replay, Schedule};
pub use scheduler::{below, shuffle, Strategy, Uniform};

use arena::{Arena, Slot};
use labels::{LabelId, Labels, Published};
use parking_lot::{ReentrantMutex, ReentrantMutexGuard};
use std::{
    any::Any,
    cell::RefCell,
    fmt::Write as _,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};
use timer::{TimerId, Wheel};
use waker::{EnterGuard, ReadyQueue};

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

/// How an executor runs.
pub struct Config {
    /// Virtual time (ns since the epoch) at which the run starts.
    pub start: u64,
    /// Virtual time added after every round (ns).
    pub cycle: u64,
    /// Virtual time at or after which a round panics with `runtime timeout`.
    pub deadline: Option<u64>,
    /// Who runs when, and where random numbers come from.
    pub strategy: Box<dyn Strategy>,
}

/// Where [`Executor::run_until`] stops a run early, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
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
    /// `runtime stalled` and lists the pending tasks.
    Stalled(String),
    /// Virtual time reached the deadline. The message starts with
    /// `runtime timeout`.
    Timeout(String),
}

struct State {
    arena: Arena,
    wheel: Wheel<Wake>,
    now: u64,
    strategy: Box<dyn Strategy>,
    digest: Digest,
    /// The task being polled, if any.
    current: Option<TaskId>,
    /// The task being polled was aborted during its poll (by itself): the
    /// run loop removes it when the poll returns.
    current_aborted: bool,
    root: Option<TaskId>,
    finished: bool,
    polls: u64,
}

impl State {
    /// The label a task spawned now is named under: the label of the task
    /// being polled, unless that is the run's root.
    #[inline]
    fn parent_label(&self) -> Option<LabelId> {
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
    state: ReentrantMutex<RefCell<State>>,
    queue: ReadyQueue,
    /// `State::now`, readable without the state: only the run loop writes
    /// either (under the state borrow, both at once), so on the executor's
    /// thread this is always exactly the virtual time, and reading it costs
    /// a load instead of a lock and a borrow (`Clock::current` and every
    /// `sleep` read it).
    now: AtomicU64,
    /// The label counts, readable without the state.
    labels: Published,
    cycle: u64,
    deadline: Option<u64>,
}

impl Shared {
    /// See [`Core::abort`].
    fn abort(&self, id: TaskId) -> bool {
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
    shared: Arc<Shared>,
}

/// Owns the run loop of one executor.
pub struct Executor {
    core: Core,
}

impl Drop for Executor {
    /// Tasks spawned but never run still hold their executor's state (their
    /// headers point there): dropping them breaks that cycle.
    fn drop(&mut self) {
        self.core.clear();
    }
}

impl Executor {
    /// A new executor with no tasks.
    pub fn new(config: Config) -> Self {
        let state = State {
            arena: Arena::default(),
            wheel: Wheel::new(config.start),
            now: config.start,
            strategy: config.strategy,
            digest: Digest::default(),
            current: None,
            current_aborted: false,
            root: None,
            finished: false,
            polls: 0,
        };
        Self::from_state(state, config.cycle, config.deadline)
    }

    fn from_state(state: State, cycle: u64, deadline: Option<u64>) -> Self {
        let labels = state.arena.labels.published();
        let now = AtomicU64::new(state.now);
        Self {
            core: Core {
                shared: Arc::new(Shared {
                    state: ReentrantMutex::new(RefCell::new(state)),
                    queue: ReadyQueue::default(),
                    now,
                    labels,
                    cycle,
                    deadline,
                }),
            },
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
            .map(|output| output.expect("a run without a halt ends with its root"))
    }

    /// [`Executor::run`], but stops at `halt` if the root has not completed
    /// by then: every task is dropped mid-flight, as in a crash. Returns the
    /// root's output if it completed. Either way the run counts as finished
    /// (see [`Core::finished`]).
    pub fn run_until<F>(
        &self,
        label: &str,
        root: F,
        halt: Option<Halt>,
    ) -> Result<Option<F::Output>, Failure>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = &*self.core.shared;
        let queue = shared.queue.enter();
        let mut root = self.core.spawn(label, root);
        shared.state.lock().borrow_mut().root = Some(root.id());
        let result = self.run_loop(&queue, halt);
        if let Ok(false) = result {
            shared.state.lock().borrow_mut().finished = true;
        }
        drop(queue);
        self.core.clear();
        result.map(|completed| {
            completed.then(|| root.try_take().expect("a completed root left its output"))
        })
    }

    fn run_loop(&self, queue: &EnterGuard<'_>, halt: Option<Halt>) -> Result<bool, Failure> {
        let shared = &*self.core.shared;
        let mut batch: Vec<TaskId> = Vec::new();
        let mut held: Vec<TaskId> = Vec::new();
        let mut fired: Vec<Wake> = Vec::new();
        // Held for the whole run; other threads get it between rounds.
        let mut round = shared.state.lock();
        loop {
            // Pick this round's tasks.
            let run = {
                let mut state = round.borrow_mut();
                if let Some(deadline) = shared.deadline {
                    if state.now >= deadline {
                        return Err(Failure::Timeout(format!(
                            "runtime timeout: virtual time reached {:?} after the epoch",
                            Duration::from_nanos(deadline)
                        )));
                    }
                }
                if let Some(Halt::At(at)) = halt {
                    if state.now >= at {
                        return Ok(false);
                    }
                }
                batch.clear();
                if !held.is_empty() {
                    batch.append(&mut held);
                }
                let arena = &state.arena;
                queue.drain_into(&mut batch, |id| {
                    arena
                        .get(id)
                        .is_some_and(|slot| slot.task.header().accept_remote_wake())
                });
                let run = state.strategy.schedule(&mut batch).min(batch.len());
                state.digest.event(digest::kind::ROUND, run as u64);
                run
            };
            if run < batch.len() {
                held.extend_from_slice(&batch[run..]);
            }

            if let Some(root_completed) = self.poll_batch(&round, &batch[..run], halt)? {
                return Ok(root_completed);
            }
            release_burst_capacity(&mut batch);

            // Advance time, skip ahead when idle, fire due timers.
            let pending_timers = {
                let mut state = round.borrow_mut();
                let ticked = state.now.checked_add(shared.cycle).unwrap_or_else(|| {
                    panic!(
                        "virtual time overflowed (it is kept in u64 nanoseconds since the epoch)"
                    )
                });
                let mut now = ticked;
                state.wheel.expire(now, &mut fired);
                // Only an idle run looks for the next deadline (which costs
                // cascading): skip ahead to it, but not past the halt.
                if fired.is_empty() && held.is_empty() && queue.is_empty() {
                    if let Some(next) = state.wheel.next_deadline() {
                        let next = match halt {
                            Some(Halt::At(at)) => next.min(at),
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
                return Err(Failure::Stalled(self.core.stall_report()));
            }
            // Costs a load unless another thread waits for the state.
            ReentrantMutexGuard::bump(&mut round);
        }
    }

    /// Polls `ids` once each, in order, borrowing the state once per poll
    /// (finishing one task and starting the next share one borrow). Returns
    /// `Some(true)` once the root completes, `Some(false)` if the run reached
    /// an `AfterPolls` halt, `None` otherwise.
    fn poll_batch(
        &self,
        round: &RefCell<State>,
        ids: &[TaskId],
        halt: Option<Halt>,
    ) -> Result<Option<bool>, Failure> {
        // What finished tasks leave behind, dropped once the state is
        // released.
        let mut finished: Option<Slot> = None;
        let mut state = round.borrow_mut();
        let prefetch = state.arena.len() >= PREFETCH_MIN_TASKS;
        for (i, &id) in ids.iter().enumerate() {
            if prefetch {
                // The order is random: fetch what the next polls need.
                state.arena.prefetch(
                    ids.get(i + PREFETCH_AHEAD).copied(),
                    ids.get(i + 2 * PREFETCH_AHEAD).copied(),
                );
            }
            if let Some(Halt::AfterPolls(limit)) = halt {
                if state.polls >= limit {
                    drop(state);
                    drop(finished);
                    return Ok(Some(false));
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
        label: impl FnOnce(&mut Labels, Option<LabelId>) -> (LabelId, bool),
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
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

    /// A future that completes once virtual time reaches `deadline` (ns).
    #[inline]
    pub fn sleep_until(&self, deadline: u64) -> Sleep {
        Sleep {
            core: self.clone(),
            deadline,
            timer: None,
        }
    }

    /// Draws a random number from the strategy (audited).
    pub fn next_u64(&self) -> u64 {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        let value = state.strategy.next_u64();
        state.digest.event(digest::kind::RANDOM, value);
        value
    }

    /// Fills `dest` with random bytes: one audited draw per 8 bytes, exactly
    /// as repeated [`Core::next_u64`] calls would, under one lock.
    pub fn fill_bytes(&self, dest: &mut [u8]) {
        let guard = self.shared.state.lock();
        let mut state = guard.borrow_mut();
        for chunk in dest.chunks_mut(8) {
            let value = state.strategy.next_u64();
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

    /// The strategy's name (for reproduction messages).
    pub fn strategy_name(&self) -> String {
        self.shared.state.lock().borrow().strategy.name()
    }

    /// The schedule recorded so far, if the strategy is a
    /// [`Recorder`].
    pub fn recording(&self) -> Option<Schedule> {
        self.shared
            .state
            .lock()
            .borrow()
            .strategy
            .recording()
            .cloned()
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
    /// [`Executor::run_until`] halted it.
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

    /// A fresh executor that continues this one's virtual time, strategy
    /// (random stream) and audit digest, with no tasks or timers.
    pub fn successor(&self) -> Executor {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let next = State {
            arena: Arena::with_labels(state.arena.labels.successor()),
            wheel: Wheel::new(state.now),
            now: state.now,
            strategy: state.strategy.fork(),
            digest: state.digest.clone(),
            current: None,
            current_aborted: false,
            root: None,
            finished: false,
            polls: 0,
        };
        Executor::from_state(next, self.shared.cycle, self.shared.deadline)
    }

    /// Drops every task and timer (outside the state borrow).
    fn clear(&self) {
        let (slots, wakers) = {
            let guard = self.shared.state.lock();
            let mut state = guard.borrow_mut();
            (state.arena.drain(), state.wheel.clear())
        };
        drop(slots);
        drop(wakers);
    }

    fn stall_report(&self) -> String {
        let guard = self.shared.state.lock();
        let state = guard.borrow();
        let tasks = state.arena.tasks();
        let mut report = format!(
            "runtime stalled at {:?} (virtual): no task is ready and no timer is pending; {} task(s) wait forever:",
            Duration::from_nanos(state.now),
            tasks.len()
        );
        for slot in tasks {
            let idle = Duration::from_nanos(state.now.saturating_sub(slot.last_polled));
            let _ = write!(
                report,
                "\n  - {} (task #{}): last polled {:?} ago",
                state.arena.label(slot),
                slot.id().seq(),
                idle
            );
        }
        report
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

/// Completes once virtual time reaches a deadline. Dropping it cancels its
/// timer.
pub struct Sleep {
    core: Core,
    deadline: u64,
    timer: Option<TimerId>,
}

/// What a timer wakes when it fires.
enum Wake {
    /// A task of this executor, by id: no waker reference count to touch.
    Task(TaskId),
    /// Any other waker (a combinator's, another executor's).
    Waker(Waker),
}

impl Wake {
    fn new(waker: &Waker, shared: &Shared) -> Self {
        match waker::task_of(waker, shared) {
            Some(id) => Wake::Task(id),
            None => Wake::Waker(waker.clone()),
        }
    }

    fn will_wake(&self, waker: &Waker, shared: &Shared) -> bool {
        match self {
            Wake::Task(id) => waker::task_of(waker, shared) == Some(*id),
            Wake::Waker(own) => own.will_wake(waker),
        }
    }

    /// The task of this executor it wakes, if that is what it wakes.
    fn task(&self) -> Option<TaskId> {
        match self {
            Wake::Task(id) => Some(*id),
            Wake::Waker(_) => None,
        }
    }

    /// Wakes the task (a finished one is skipped). Called with the state
    /// lock held but not borrowed: a foreign waker may call back in.
    fn wake(self, state: &RefCell<State>) {
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

impl Future for Sleep {
    type Output = ();

    /// Inline (across crates too) for the due case, the other half of every
    /// sleep's polls; registering stays out of line.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Due: its timer, if any, has fired already (every round ends by
        // firing the timers due by then, and time only moves there), so
        // there is nothing to cancel and no need for the state.
        if this.core.now() >= this.deadline {
            this.completed();
            return Poll::Ready(());
        }
        this.register(cx)
    }
}

impl Sleep {
    /// Forgets the timer of a sleep found due (it has fired).
    #[inline]
    fn completed(&mut self) {
        #[cfg(debug_assertions)]
        if let Some(id) = self.timer {
            let guard = self.core.shared.state.lock();
            let pending = guard.borrow_mut().wheel.get_mut(id).is_some();
            assert!(!pending, "a due sleep's timer has not fired");
        }
        self.timer = None;
    }

    /// Registers the sleep's timer for the task polling it (or points the
    /// registered one at that task); completes the sleep if another
    /// thread's stale view of the time called it due too late.
    fn register(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let guard = self.core.shared.state.lock();
        let mut state = guard.borrow_mut();
        // Off the executor's thread the time read before may be stale.
        if state.now >= self.deadline {
            drop(state);
            drop(guard);
            self.completed();
            return Poll::Ready(());
        }
        let shared = &*self.core.shared;
        let stale = match self.timer.and_then(|id| state.wheel.get_mut(id)) {
            Some(wake) if wake.will_wake(cx.waker(), shared) => None,
            Some(wake) => Some(std::mem::replace(wake, Wake::new(cx.waker(), shared))),
            None => {
                self.timer = Some(
                    state
                        .wheel
                        .insert(self.deadline, Wake::new(cx.waker(), shared)),
                );
                None
            }
        };
        drop(state);
        drop(stale);
        Poll::Pending
    }

    /// Cancels the pending timer of a sleep dropped before it fired (kept
    /// out of line: most sleeps complete and have nothing to cancel).
    #[cold]
    #[inline(never)]
    fn cancel(&mut self, id: TimerId) {
        let waker = self.core.shared.state.lock().borrow_mut().wheel.cancel(id);
        drop(waker);
    }
}

impl Drop for Sleep {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.timer.take() {
            self.cancel(id);
        }
    }
}

#[cfg(test)]
mod tests;
