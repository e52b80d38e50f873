//! One run with its panic caught: [`try_run`], [`record`], [`replay`]
//! and the [`FailedRun`] they return; [`Program`], what the tools run (a
//! test body, or a whole [`Harness`] that builds its own runtimes, cuts the
//! power and recovers). The sweep, the shrinker and the determinism check
//! are built on [`run_program`].
//!
//! A [`Harness`] builds its runtimes itself, from the [`Config`] it is
//! given; [`run_program`] runs it under a thread watch (`watch.rs`), which
//! hands the tool the last runtime it built.
//!
//! # Invariants
//! * A caught run is the same run [`Runner::start`](crate::Runner::start)
//!   would make with the same config: same draws, same audit events, same
//!   failure line on stderr. Recording, tracing and logging only watch.
//! * A [`FailedRun`] names everything that reproduces it (seed, strategy,
//!   and the recorded schedule when there is one), and its `Display` is the
//!   failure line of [`failure`](super::failure).

use super::{
    failure,
    timeline::Timeline,
    watch::{self, Observe},
    Config, Context, Executor, Schedule, Strategy,
};
use crate::Runner as _;
use std::{
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    time::Duration,
};
use thiserror::Error;

/// What the tools run: a test body (`Fn(Context) -> impl Future`, run as
/// the root task of a fresh runtime) or a [`Harness`]. Internal: the public
/// functions take one or the other as a closure (so its argument types are
/// inferred) and come in pairs (`shrink` / `shrink_harness`, ...).
pub(super) trait Program {
    /// What a run returns.
    type Output;

    /// Runs once under `config`.
    fn run(&self, config: Config) -> Self::Output;
}

impl<F, Fut> Program for F
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn run(&self, config: Config) -> Fut::Output {
        let (runner, context, _) = Executor::init(config);
        runner.start(self(context))
    }
}

/// A whole run as a harness writes it (see the `*_harness` functions): a
/// closure that, given the [`Config`] to run (its seed, strategy or
/// schedule to replay), builds its runtime with [`Executor::init`], may
/// start it with [`Runner::start_until`](super::Runner::start_until), cut
/// the power, continue in [`Context::recover`] any number of times, and
/// returns what it found, panicking on a failure.
pub(super) struct Harness<H>(pub H);

impl<H, T> Program for Harness<H>
where
    H: Fn(Config) -> T,
{
    type Output = T;

    fn run(&self, config: Config) -> T {
        (self.0)(config)
    }
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

/// Runs `program` once under `config` with this thread watched as
/// `observe` asks, and returns its output or its failure, along with the
/// context of the last runtime it built (whose core holds the recording or
/// trace), if it built one.
pub(super) fn run_program<P: Program>(
    config: Config,
    observe: Observe,
    program: &P,
) -> (Result<P::Output, Box<FailedRun>>, Option<Context>) {
    let (seed, strategy) = (config.seed, config.strategy.clone());
    let outer = watch::begin(observe);
    let result = catch_unwind(AssertUnwindSafe(|| program.run(config)));
    let latest = watch::end(outer);
    let result = result.map_err(|payload| {
        let core = latest.as_ref().map(Context::core);
        Box::new(FailedRun {
            seed,
            strategy,
            message: failure::panic_message(&*payload).to_string(),
            time: Duration::from_nanos(core.map_or(0, |core| core.now())),
            auditor: core.map(|core| core.digest()).unwrap_or_default(),
            schedule: core.and_then(|core| core.recording()),
        })
    });
    (result, latest)
}

/// [`run_program`] for a test body: the runtime it builds is always there.
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
    let body = std::cell::Cell::new(Some(body));
    let body = |context: Context| {
        let body = body.take().expect("a test body runs once");
        body(context)
    };
    let (result, context) = run_program(config, observe, &body);
    (result, context.expect("the body's runtime was built"))
}

/// Runs `body` once under `config`, catching a panic (of any task, or a
/// stall or timeout) as a [`FailedRun`].
pub fn try_run<F, Fut>(config: &Config, body: F) -> Result<Fut::Output, Box<FailedRun>>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    run_once(config.clone(), Observe::NOTHING, body).0
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
    let (result, context) = run_once(config.clone(), Observe::SCHEDULE, body);
    let schedule = context.core().recording().unwrap_or_default();
    (result, schedule)
}

/// Why a [`replay`] did not pass.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The schedule belongs to another program (or to this one before a
    /// change): where the run stops matching it. The run's own outcome
    /// means nothing then, so it is not reported.
    #[error("the schedule does not match this program: {0}")]
    Mismatch(String),
    /// The run matched the schedule and failed.
    #[error("{0}")]
    Failed(Box<FailedRun>),
}

/// Replays `schedule` (recorded, shrunk, or pasted from a failure report)
/// on the test body `body` under `config` (its registry, cycle, timeout
/// and faults; the seed is not used). Returns the output if the run
/// passed, the failure if it failed, or, if the run does not match the
/// schedule (a listed round never comes or runs a task that is not ready,
/// a listed fault is never asked about, fewer random numbers are drawn
/// than listed), where it stops matching. [`replay_harness`] replays a
/// whole harness run.
///
/// ```no_run
/// use commonware_runtime::deterministic::{self, Config, ReplayError};
///
/// let schedule = "412:7!;;crash node 2#4=9c3e".parse().unwrap();
/// match deterministic::replay(&Config::default(), &schedule, |_context| async {}) {
///     Ok(()) => println!("passes now"),
///     Err(ReplayError::Failed(failure)) => println!("still fails: {failure}"),
///     Err(ReplayError::Mismatch(why)) => println!("not this program's schedule: {why}"),
/// }
/// ```
pub fn replay<F, Fut>(
    config: &Config,
    schedule: &Schedule,
    body: F,
) -> Result<Fut::Output, ReplayError>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    replay_program(config, schedule, &body)
}

/// [`replay`] for a whole harness run (every epoch it starts, cuts and
/// recovers), given as a closure from the [`Config`] to run to its result.
pub fn replay_harness<H, T>(
    config: &Config,
    schedule: &Schedule,
    harness: H,
) -> Result<T, ReplayError>
where
    H: Fn(Config) -> T,
{
    replay_program(config, schedule, &Harness(harness))
}

fn replay_program<P: Program>(
    config: &Config,
    schedule: &Schedule,
    program: &P,
) -> Result<P::Output, ReplayError> {
    let config = Config {
        strategy: Strategy::Replay(Arc::new(schedule.clone())),
        ..config.clone()
    };
    let (result, context) = run_program(config, Observe::NOTHING, program);
    let Some(context) = context else {
        return Err(ReplayError::Mismatch(
            "the program built no deterministic runtime".into(),
        ));
    };
    if let Some(mismatch) = context.core().replay_mismatch() {
        return Err(ReplayError::Mismatch(mismatch));
    }
    result.map_err(ReplayError::Failed)
}

/// Runs the test body `body` once under `config` (a seed, or a schedule
/// to replay) and returns, with its result, the run drawn as a
/// [`Timeline`]: the faults that fired, the messages between nodes, what
/// the body logged with [`Context::note`], power cuts, recoveries and the
/// failure. [`Timeline::to_html`] and [`Timeline::to_chrome_json`] export
/// it; [`record_timeline_harness`] draws a whole harness run.
pub fn record_timeline<F, Fut>(
    config: &Config,
    body: F,
) -> (Result<Fut::Output, Box<FailedRun>>, Timeline)
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    timeline_program(config, &body)
}

/// [`record_timeline`] for a whole harness run (every epoch of it).
pub fn record_timeline_harness<H, T>(
    config: &Config,
    harness: H,
) -> (Result<T, Box<FailedRun>>, Timeline)
where
    H: Fn(Config) -> T,
{
    timeline_program(config, &Harness(harness))
}

fn timeline_program<P: Program>(
    config: &Config,
    program: &P,
) -> (Result<P::Output, Box<FailedRun>>, Timeline) {
    let observe = Observe {
        timeline: true,
        ..Observe::NOTHING
    };
    let (result, context) = run_program(config.clone(), observe, program);
    let timeline = match &context {
        Some(context) => timeline_of(context, result.as_ref().err().map(|f| &**f)),
        None => Timeline::default(),
    };
    (result, timeline)
}

/// The timeline of a watched run (that failed with `failure`, if it did):
/// what its log holds, its recorded scheduling decisions in words, and the
/// failure.
pub(super) fn timeline_of(context: &Context, failure: Option<&FailedRun>) -> Timeline {
    let core = context.core();
    let trace = core.trace().unwrap_or_default();
    let label = |seq: u64| trace.label(seq).map(str::to_string);
    let decisions: Vec<(u64, String)> = match (core.recording(), core.decision_times()) {
        (Some(schedule), Some(times)) => schedule
            .decisions()
            .zip(times)
            .map(|(decision, at)| (at, decision.describe(label)))
            .collect(),
        _ => Vec::new(),
    };
    let end = failure.map_or(core.now(), |failure| failure.time.as_nanos() as u64);
    let failed = failure.map(|failure| (end, failure.message.clone()));
    match context.runtime.faults.log() {
        Some(log) => log.timeline(end, failed, &decisions),
        None => Timeline::default(),
    }
}
