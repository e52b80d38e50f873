//! One run with its panic caught: [`try_run`], [`record`] and the
//! [`FailedRun`] they return. The sweep, the shrinker and the determinism
//! check are built on [`run_once`].
//!
//! # Invariants
//! * A caught run is the same run [`Runner::start`](crate::Runner::start)
//!   would make with the same config: same draws, same audit events, same
//!   failure line on stderr. Recording and tracing only watch.
//! * A [`FailedRun`] names everything that reproduces it (seed, strategy,
//!   and the recorded schedule when there is one), and its `Display` is the
//!   failure line of [`failure`](super::failure).

use super::{failure, Config, Context, Executor, Schedule, Strategy};
use crate::Runner as _;
use commonware_executor::Recorder;
use std::{
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    time::Duration,
};

/// What a caught run keeps besides its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Observe {
    /// Nothing.
    Nothing,
    /// Every scheduling choice and random number, as a [`Schedule`]
    /// (`Core::recording`).
    Schedule,
    /// Every audit event, as a trace (`Core::trace`).
    Events,
    /// The run's reachability points (`Context::collect_points`).
    Points,
}

/// A run that panicked, with what it takes to reproduce it.
#[derive(Clone)]
pub struct FailedRun {
    /// The seed of the run.
    pub seed: u64,
    /// The strategy of the run (its `Display` is the name in failure
    /// lines; a PCT step estimate measured by a sweep is filled in).
    pub strategy: Strategy,
    /// The panic message.
    pub message: String,
    /// Virtual time (since the epoch) when the run failed.
    pub time: Duration,
    /// `Auditor::state()` when the run failed.
    pub auditor: String,
    /// The run's recorded schedule, when it was recorded (sweeps record the
    /// failing seed by running it again).
    pub schedule: Option<Schedule>,
}

impl FailedRun {
    /// The config that reproduces this run from `template` (its registry,
    /// cycle and timeout): same seed and strategy, or the replay of the
    /// recorded schedule if `replay` is set and there is one.
    pub fn config(&self, template: &Config, replay: bool) -> Config {
        let strategy = match (replay, &self.schedule) {
            (true, Some(schedule)) => Strategy::Replay(Arc::new(schedule.clone())),
            _ => self.strategy.clone(),
        };
        Config {
            seed: self.seed,
            strategy,
            ..template.clone()
        }
    }

    /// Whether two runs failed identically: message, time and auditor state.
    pub fn same_failure(&self, other: &FailedRun) -> bool {
        (&self.message, self.time, &self.auditor) == (&other.message, other.time, &other.auditor)
    }
}

/// The failure line, then the recorded schedule if there is one.
impl fmt::Display for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let member = self.strategy.member(self.seed);
        let is_portfolio = matches!(self.strategy, Strategy::Portfolio { .. });
        let line = failure::FailureLine {
            seed: self.seed,
            strategy: &self.strategy,
            member: is_portfolio.then_some(&member as &dyn fmt::Display),
            message: &self.message,
            task: None,
            time: self.time,
            auditor: &self.auditor,
        };
        write!(f, "{line}")?;
        if let Some(schedule) = &self.schedule {
            write!(
                f,
                "\n  schedule ({} decisions): {schedule}",
                schedule.decisions().count()
            )?;
        }
        Ok(())
    }
}

/// The same text as `Display`, so that `unwrap()` on a sweep's result
/// prints the reproduction line rather than a struct dump.
impl fmt::Debug for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs `body` on a fresh runtime built from `config`, keeping what
/// `observe` asks for, and returns its output or its failure, along with
/// the context (whose core holds the recording or trace).
pub(super) fn run_once<F, Fut>(
    config: Config,
    observe: Observe,
    body: F,
) -> (Result<Fut::Output, Box<FailedRun>>, Context)
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (seed, strategy) = (config.seed, config.strategy.clone());
    let scheduler = config.strategy.build(config.seed);
    let scheduler = match observe {
        Observe::Schedule => Box::new(Recorder::new(scheduler)),
        Observe::Nothing | Observe::Events | Observe::Points => scheduler,
    };
    let (runner, context, _) = Executor::build(config, scheduler);
    let core = context.core().clone();
    match observe {
        Observe::Events => core.enable_trace(),
        Observe::Points => context.collect_points(),
        Observe::Nothing | Observe::Schedule => {}
    }
    let future = body(context.clone());
    let result = catch_unwind(AssertUnwindSafe(|| runner.start(future))).map_err(|payload| {
        Box::new(FailedRun {
            seed,
            strategy,
            message: failure::panic_message(&*payload).to_string(),
            time: Duration::from_nanos(core.now()),
            auditor: core.digest(),
            schedule: core.recording(),
        })
    });
    (result, context)
}

/// Runs `body` once under `config`, catching a panic (of any task, or a
/// stall or timeout) as a [`FailedRun`].
pub fn try_run<F, Fut>(config: &Config, body: F) -> Result<Fut::Output, Box<FailedRun>>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    run_once(config.clone(), Observe::Nothing, body).0
}

/// Like [`try_run`], and also returns the run's [`Schedule`] (every
/// scheduling choice and random number), which [`Strategy::Replay`] plays
/// back exactly. A failing run carries the same schedule in
/// [`FailedRun::schedule`].
pub fn record<F, Fut>(config: &Config, body: F) -> (Result<Fut::Output, Box<FailedRun>>, Schedule)
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (result, context) = run_once(config.clone(), Observe::Schedule, body);
    let schedule = context.core().recording().unwrap_or_default();
    (result, schedule)
}
