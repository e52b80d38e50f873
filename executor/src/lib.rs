//! The deterministic executor core behind `commonware-runtime`.
//!
//! A single-threaded, round-based executor over virtual time. It knows
//! nothing of networks, files or the runtime traits: backends build those on
//! top of [`Core`] (spawn, abort, sleep, random numbers, audit events).
//!
//! # The run loop
//! Each round: check the timeout; take the ready set (tasks held back by
//! the scheduler last round, then tasks woken since, in wake order); let the
//! [`Scheduler`] choose which of them run and in what order; poll each once;
//! advance virtual time by `cycle`; if nothing is ready, jump to the next
//! timer deadline; fire due timers (deadline order, ties in registration
//! order); if nothing is ready and no timer is pending, the run has stalled.
//! [`RunLoop::run`] returns as soon as the root task completes;
//! [`RunLoop::run_until`] may also stop earlier, at a [`CrashPoint`] (a crash).
//!
//! # Invariants
//! * Nothing here reads the wall clock, an address or a thread id to make a
//!   decision: the seed (through the scheduler) and the program decide
//!   everything, so the same program and seed give the same run.
//! * No task is polled unless woken, and each woken task is polled at most
//!   once per round. A wake of a finished or aborted task does nothing.
//! * Futures and wakers are never dropped or called while the state is
//!   borrowed (their code may call back into the executor; the state's lock
//!   is re-entrant, its `RefCell` is not).
//! * Virtual time never goes backwards.
//!
//! # Map
//! * `run.rs`: the run loop ([`RunLoop`]) and why a run fails ([`Failure`]).
//! * `core.rs`: the executor's state and [`Core`], the handle to it.
//! * `task/`: what a task is, its heap block, wakers, join handles, the
//!   arena of live tasks.
//! * `ready.rs`: the ready queue woken tasks wait in.
//! * `wake.rs`: the marks and the remote queue through which a wake from
//!   another thread reaches the run loop, and the loom models of that
//!   protocol; `sync.rs`: the atomics it is built on (loom's, for the models).
//! * `time/`: the timer wheel over virtual time and [`Sleep`].
//! * `wait.rs`: what a pending task waits on ([`Wait`]), for the stall
//!   and timeout reports.
//! * `scheduler/`: who runs in each round, and the run's random numbers.
//! * `audit/`: the event digest and the label counts.
//! * `spare.rs`: the memory a finished run leaves for the thread's next
//!   executor.

#![deny(unsafe_op_in_unsafe_fn)]
// Under `--cfg loom` only the wake protocol is built, for its models
// (`wake.rs`); the rest of the executor cannot run under loom.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod audit;
#[cfg(not(loom))]
mod core;
#[cfg(not(loom))]
mod ready;
#[cfg(not(loom))]
mod run;
#[cfg(not(loom))]
mod scheduler;
#[cfg(not(loom))]
mod spare;
mod sync;
#[cfg(not(loom))]
mod task;
#[cfg(not(loom))]
mod time;
#[cfg(not(loom))]
mod wait;
mod wake;

#[cfg(all(test, not(loom)))]
mod test_support;

#[cfg(not(loom))]
pub use audit::{
    digest::{self, Digest, Trace, TraceEvent},
    labels::{child_label, is_child_label, LabelStats},
};
#[cfg(not(loom))]
pub use core::{Core, CoreConfig};
#[cfg(not(loom))]
pub use run::{CrashPoint, Failure, RunLoop};
#[cfg(not(loom))]
pub use scheduler::{
    shrink_schedule, AsAny, Decision, FaultDecision, FuzzInput, Hold, Occurrences, ParseError, Pct,
    Recorder, Replay, Schedule, Scheduler, Uniform, PCT_DEFAULT_STEPS,
};
#[cfg(not(loom))]
pub use task::{Canceled, JoinHandle, TaskId};
#[cfg(not(loom))]
pub use time::{Sleep, END_OF_TIME};
#[cfg(not(loom))]
pub use wait::{Wait, WaitNote};
