//! Finding bugs with the deterministic runtime: scheduling strategies, seed
//! sweeps, recorded schedules and their shrinking, and determinism checks.
//!
//! # What this module owns
//! * [`Strategy`], the scheduling strategy a [`Config`] selects: uniform
//!   random rounds (the default), PCT, a fuzzer's byte stream, or the replay
//!   of a recorded [`Schedule`].
//! * [`try_run`] and [`record`]: one run with its panic caught and turned
//!   into a [`FailedRun`] that names everything needed to reproduce it.
//! * [`explore`] / [`Sweep`]: a test body over many seeds, spread over OS
//!   threads (one runtime per thread) and shardable through the `SEEDS` and
//!   `SHARD` environment variables.
//! * [`shrink`]: delta debugging of a failing run's schedule down to the few
//!   decisions that matter.
//! * [`check_determinism`]: a body run twice, compared event by event.
//!
//! # Invariants
//! * A sweep's answer does not depend on its thread count: it reports the
//!   lowest failing seed of the range (or shard), and every lower seed of it
//!   has run and passed.
//! * Every run is an independent runtime with its own metrics registry, so
//!   a sweep's memory stays flat however many seeds it runs.
//! * Nothing here feeds wall-clock time, thread ids or hash order into a
//!   run; threads only decide which seed runs where, never how.

use super::{Config, Context, Executor};
use crate::Runner as _;
use commonware_executor::{digest, Bytes, Pct, Replay, Trace, TraceEvent, Uniform};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use std::{
    any::Any,
    fmt,
    future::Future,
    ops::Range,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use thiserror::Error;

pub use commonware_executor::{ParseError, Schedule, PCT_DEFAULT_STEPS};

/// How the deterministic runtime chooses which ready tasks run in each round
/// and where `Context`'s random numbers come from.
#[derive(Clone, Debug, Default)]
pub enum Strategy {
    /// Every ready task runs in every round, in a uniformly random order
    /// drawn from the seed (the reference runtime's behaviour).
    #[default]
    Uniform,
    /// Probabilistic concurrency testing: random task priorities drawn from
    /// the seed, one task per round (the highest-priority ready one), and
    /// `depth - 1` priority change points in the first `steps` polls. Finds
    /// bugs that need a task to fall behind for many rounds, which
    /// `Uniform` cannot. Virtual time advances by `cycle` per poll.
    Pct {
        /// Number of ordering constraints the bugs sought need (1 or more).
        depth: usize,
        /// Estimated length of the program in polls; after that many the
        /// strategy behaves like `Uniform` so spinning tasks cannot starve
        /// the others forever. 0 means "measure it": a [`Sweep`] runs its
        /// first seed under `Uniform`, counts the polls and uses that count
        /// (failure lines then name it, e.g. `pct(2, steps=37)`); a single
        /// run uses [`PCT_DEFAULT_STEPS`].
        steps: u64,
    },
    /// Every choice with more than one ready task picks the one task that
    /// runs, from the next byte; random numbers take eight bytes each. Once
    /// the bytes run out, all ready tasks run in ready order and random
    /// numbers are zero. The seed is not used. For fuzzers.
    Bytes(Arc<[u8]>),
    /// Plays back a recorded (or shrunk, or hand-written) schedule; past its
    /// end all ready tasks run in ready order and random numbers are zero.
    /// The seed is not used.
    Replay(Arc<Schedule>),
}

impl Strategy {
    /// PCT looking for bugs of `depth`, with the step estimate measured by
    /// the sweep (`steps: 0`).
    pub fn pct(depth: usize) -> Self {
        Self::Pct { depth, steps: 0 }
    }

    /// The executor strategy for a run seeded with `seed`.
    pub(super) fn build(&self, seed: u64) -> Box<dyn commonware_executor::Strategy> {
        match self {
            Self::Uniform => Box::new(Uniform::new(seed)),
            Self::Pct { depth, steps: 0 } => Box::new(Pct::new(seed, *depth, PCT_DEFAULT_STEPS)),
            Self::Pct { depth, steps } => Box::new(Pct::new(seed, *depth, *steps)),
            Self::Bytes(bytes) => Box::new(Bytes::new(bytes.clone())),
            Self::Replay(schedule) => Box::new(Replay::new(schedule.clone())),
        }
    }
}

/// The name printed in failure lines (`uniform`, `pct(3)`, ...).
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.build(0).name())
    }
}

/// The message a panic payload carries, if it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<panic payload is not a string>")
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

impl fmt::Display for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deterministic runtime panicked (seed={}, strategy={}): {}\n  at {:?} (virtual), auditor={}",
            self.seed, self.strategy, self.message, self.time, self.auditor
        )?;
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

/// Runs `body` on a fresh runtime built from `config` (plus, if `record`,
/// a recorder around its strategy, and if `trace`, an event trace) and
/// returns its output or its failure, along with the context (for its
/// recording and trace).
fn run_once<F, Fut>(
    config: Config,
    record: bool,
    trace: bool,
    body: F,
) -> (Result<Fut::Output, Box<FailedRun>>, Context)
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (seed, strategy) = (config.seed, config.strategy.clone());
    let (runner, context, _) = Executor::build(config, record);
    let core = context.core().clone();
    if trace {
        core.enable_trace();
    }
    let future = body(context.clone());
    let result = catch_unwind(AssertUnwindSafe(|| runner.start(future))).map_err(|payload| {
        Box::new(FailedRun {
            seed,
            strategy,
            message: panic_message(&*payload).to_string(),
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
    run_once(config.clone(), false, false, body).0
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
    let (result, context) = run_once(config.clone(), true, false, body);
    let schedule = context.core().recording().unwrap_or_default();
    (result, schedule)
}

/// Why a sweep could not run as configured.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SweepError {
    /// `SEEDS` is not `A..B` or `A..=B`.
    #[error("SEEDS={0:?}: expected a range of seeds such as 0..10000 or 0..=9999")]
    Seeds(String),
    /// `SHARD` is not `I/N` with `I < N`.
    #[error("SHARD={0:?}: expected I/N with 0 <= I < N, such as 0/4")]
    Shard(String),
}

/// Why [`explore`] did not pass.
#[derive(Debug, Error)]
pub enum ExploreError {
    /// The environment asked for an impossible sweep.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// A seed failed: the lowest failing one.
    #[error("{0}")]
    Failed(Box<FailedRun>),
}

/// What a passing sweep did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Swept {
    /// Seeds run (all of the shard).
    pub seeds: u64,
    /// OS threads used.
    pub threads: usize,
}

/// A sweep of a test body over many seeds.
#[derive(Clone)]
pub struct Sweep {
    config: Config,
    seeds: Range<u64>,
    shard: (u64, u64),
    threads: usize,
}

impl Sweep {
    /// Seeds `seeds` of `config` (its strategy, cycle and timeout; each run
    /// gets its own metrics registry), on as many threads as the machine
    /// has cores, unsharded.
    pub fn new(config: Config, seeds: Range<u64>) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            config,
            seeds,
            shard: (0, 1),
            threads,
        }
    }

    /// Runs on `threads` OS threads (at least one).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Runs only shard `index` of `count`: the seeds `start + index`,
    /// `start + index + count`, ... of the range.
    pub fn shard(mut self, index: u64, count: u64) -> Result<Self, SweepError> {
        if count == 0 || index >= count {
            return Err(SweepError::Shard(format!("{index}/{count}")));
        }
        self.shard = (index, count);
        Ok(self)
    }

    /// Applies the environment: `SEEDS=A..B` (or `A..=B`) replaces the seed
    /// range, `SHARD=I/N` selects a shard. Unset variables change nothing.
    pub fn from_env(self) -> Result<Self, SweepError> {
        self.with_vars(
            std::env::var("SEEDS").ok().as_deref(),
            std::env::var("SHARD").ok().as_deref(),
        )
    }

    fn with_vars(mut self, seeds: Option<&str>, shard: Option<&str>) -> Result<Self, SweepError> {
        if let Some(text) = seeds {
            self.seeds = parse_seeds(text).ok_or_else(|| SweepError::Seeds(text.into()))?;
        }
        if let Some(text) = shard {
            let bad = || SweepError::Shard(text.into());
            let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
            let index = index.trim().parse().map_err(|_| bad())?;
            let count = count.trim().parse().map_err(|_| bad())?;
            self = self.shard(index, count).map_err(|_| bad())?;
        }
        Ok(self)
    }

    /// The seeds this sweep runs, in order.
    pub fn seeds(&self) -> impl Iterator<Item = u64> + '_ {
        let (index, count) = self.shard;
        self.seeds
            .clone()
            .skip(index as usize)
            .step_by(count as usize)
    }

    /// The `k`-th seed of the shard, if the range has one.
    fn nth(&self, k: u64) -> Option<u64> {
        let (index, count) = self.shard;
        let seed = k
            .checked_mul(count)?
            .checked_add(index)?
            .checked_add(self.seeds.start)?;
        (seed < self.seeds.end).then_some(seed)
    }

    /// The config the sweep runs: a PCT step estimate of 0 is replaced by
    /// the number of polls of the range's first seed under `Uniform`.
    fn calibrated<F, Fut>(&self, body: &F) -> Config
    where
        F: Fn(Context) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let mut config = self.config.clone();
        if let Strategy::Pct { depth, steps: 0 } = config.strategy {
            let probe = Config {
                seed: self.seeds.start,
                strategy: Strategy::Uniform,
                registry: Arc::new(std::sync::Mutex::new(Registry::default())),
                ..config.clone()
            };
            let (_, context) = run_once(probe, false, false, body);
            let steps = context.core().polls().max(1);
            config.strategy = Strategy::Pct { depth, steps };
        }
        config
    }

    /// Runs `body` for every seed of the sweep; returns the lowest failing
    /// seed's failure, with its schedule recorded by running it once more.
    pub fn run<F, Fut>(&self, body: F) -> Result<Swept, Box<FailedRun>>
    where
        F: Fn(Context) -> Fut + Sync,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let template = self.calibrated(&body);
        let next = AtomicU64::new(0);
        let lowest = AtomicU64::new(u64::MAX);
        let found: Mutex<Option<Box<FailedRun>>> = Mutex::new(None);
        let ran = AtomicU64::new(0);
        let worker = || loop {
            let Some(seed) = self.nth(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if seed > lowest.load(Ordering::Acquire) {
                return;
            }
            let config = Config {
                seed,
                registry: Arc::new(std::sync::Mutex::new(Registry::default())),
                ..template.clone()
            };
            ran.fetch_add(1, Ordering::Relaxed);
            if let Err(failure) = try_run(&config, &body) {
                let mut found = found.lock();
                if seed < lowest.load(Ordering::Acquire) {
                    lowest.store(seed, Ordering::Release);
                    *found = Some(failure);
                }
                return;
            }
        };
        if self.threads == 1 {
            worker();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..self.threads {
                    scope.spawn(worker);
                }
            });
        }
        match found.into_inner() {
            None => Ok(Swept {
                seeds: ran.into_inner(),
                threads: self.threads,
            }),
            Some(failure) => {
                let config = failure.config(&template, false);
                let (rerun, schedule) = record(&config, &body);
                let mut failure = failure;
                match rerun {
                    Err(again) if again.same_failure(&failure) => {
                        failure.schedule = Some(schedule);
                    }
                    _ => {
                        failure.message.push_str(
                            "\n  (running this seed again did not fail the same way: the body is not deterministic; see deterministic::check_determinism)",
                        );
                    }
                }
                Err(failure)
            }
        }
    }
}

fn parse_seeds(text: &str) -> Option<Range<u64>> {
    let text = text.trim();
    if let Some((start, end)) = text.split_once("..=") {
        let end: u64 = end.trim().parse().ok()?;
        return Some(start.trim().parse().ok()?..end.checked_add(1)?);
    }
    let (start, end) = text.split_once("..")?;
    Some(start.trim().parse().ok()?..end.trim().parse().ok()?)
}

/// Runs `body` for every seed in `seeds` under `config` (the environment's
/// `SEEDS` and `SHARD` override the range and select a shard), on all
/// cores. Returns the lowest failing seed, its message, virtual time,
/// auditor state and recorded schedule.
///
/// ```no_run
/// use commonware_runtime::{deterministic, Clock};
/// use std::time::Duration;
///
/// let config = deterministic::Config {
///     strategy: deterministic::Strategy::pct(2),
///     ..Default::default()
/// };
/// deterministic::explore(config, 0..1_000, |context| async move {
///     context.sleep(Duration::from_millis(1)).await;
/// })
/// .unwrap();
/// ```
pub fn explore<F, Fut>(config: Config, seeds: Range<u64>, body: F) -> Result<Swept, ExploreError>
where
    F: Fn(Context) -> Fut + Sync,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    Sweep::new(config, seeds)
        .from_env()?
        .run(body)
        .map_err(ExploreError::Failed)
}

/// A shrunk failing schedule.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal schedule: replay it with [`Strategy::Replay`].
    pub schedule: Schedule,
    /// The failure it still produces.
    pub failure: Box<FailedRun>,
    /// The schedule, one decision per line, tasks named by label.
    pub description: String,
    /// Runs the shrinker made.
    pub runs: usize,
}

/// Shrinks the recorded schedule of `failure` (from [`record`] or a sweep)
/// to a minimal one that still fails with the same message: no decision can
/// be dropped or defaulted, no random number zeroed, without losing it. See
/// [`shrink_with`] to keep a different notion of "the same failure".
pub fn shrink<F, Fut>(config: &Config, failure: &FailedRun, body: F) -> Option<Shrunk>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let message = failure.message.clone();
    shrink_with(config, failure.schedule.as_ref()?, body, |f| {
        f.message == message
    })
}

/// Shrinks `schedule`, keeping every candidate whose replay fails in a way
/// `keep` accepts. Returns `None` if `schedule` itself does not.
pub fn shrink_with<F, Fut>(
    config: &Config,
    schedule: &Schedule,
    body: F,
    mut keep: impl FnMut(&FailedRun) -> bool,
) -> Option<Shrunk>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let replay = |schedule: &Schedule, trace: bool| {
        let config = Config {
            strategy: Strategy::Replay(Arc::new(schedule.clone())),
            ..config.clone()
        };
        run_once(config, false, trace, &body)
    };
    let mut runs = 0;
    let mut fails = |candidate: &Schedule| {
        runs += 1;
        matches!(replay(candidate, false).0, Err(failure) if keep(&failure))
    };
    if !fails(schedule) {
        return None;
    }
    let shrunk = commonware_executor::shrink(schedule, fails);
    let (result, context) = replay(&shrunk, true);
    let failure = result.err()?;
    let trace = context.core().trace().unwrap_or_default();
    let description = shrunk.describe(|seq| trace.label(seq).map(str::to_string));
    Some(Shrunk {
        schedule: shrunk,
        failure,
        description,
        runs,
    })
}

/// Where two runs that should have been identical first differed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event (0 is the first event of a run).
    pub index: usize,
    /// That event in the first run (`None`: the run had ended).
    pub first: Option<String>,
    /// That event in the second run.
    pub second: Option<String>,
    /// Final auditor states of the two runs.
    pub states: (String, String),
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |event: &Option<String>| event.clone().unwrap_or_else(|| "(run ended)".into());
        write!(
            f,
            "nondeterminism: two runs with the same config diverged at event {}:\n  run 1: {}\n  run 2: {}\n  (auditor states {} vs {})",
            self.index,
            show(&self.first),
            show(&self.second),
            self.states.0,
            self.states.1
        )
    }
}

/// Name of an audit event kind: the executor's and this backend's.
fn kind_name(kind: u8) -> String {
    use super::kind::*;
    let name = match kind {
        STOP => "stop",
        STOPPED => "stopped",
        BIND => "bind",
        DIAL => "dial",
        ACCEPT => "accept",
        SEND => "send",
        RECV => "recv",
        OPEN => "open",
        REMOVE => "remove",
        SCAN => "scan",
        LEN => "len",
        READ => "read",
        WRITE => "write",
        TRUNCATE => "truncate",
        SYNC => "sync",
        CLOSE => "close",
        FAULT => "fault",
        other => return digest::kind::name(other).map_or(format!("kind {other}"), str::to_string),
    };
    name.to_string()
}

/// One event, in words: kind, word, payload, and the task behind it.
fn describe_event(trace: &Trace, event: &TraceEvent) -> String {
    let task = |seq: u64| match trace.label(seq) {
        Some(label) => format!("#{seq} '{label}'"),
        None => format!("#{seq}"),
    };
    let what = match event.kind {
        digest::kind::SPAWN | digest::kind::POLL | digest::kind::FINISH | digest::kind::ABORT => {
            format!("{} of task {}", kind_name(event.kind), task(event.word))
        }
        kind => format!("{} (word {})", kind_name(kind), event.word),
    };
    let payload = if event.len > 0 && event.kind != digest::kind::SPAWN {
        format!(
            ", payload of {} bytes (hash {:016x})",
            event.len, event.hash
        )
    } else {
        String::new()
    };
    let by = event.task.map_or("the executor".to_string(), task);
    format!("{what}{payload}, by {by}")
}

/// Runs `body` twice under `config` with an event trace and compares the
/// runs. Returns the auditor state if they match; otherwise the first event
/// at which they differ (its index, kind and task), which points at the
/// hash-map iteration, address or wall-clock read that broke determinism.
/// Panics inside the body are part of the run (compared, not propagated).
pub fn check_determinism<F, Fut>(config: &Config, body: F) -> Result<String, Box<Divergence>>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let run = || {
        let (_, context) = run_once(config.clone(), false, true, &body);
        let core = context.core();
        (core.digest(), core.trace().unwrap_or_default())
    };
    let (state1, trace1) = run();
    let (state2, trace2) = run();
    if state1 == state2 {
        return Ok(state1);
    }
    let (events1, events2) = (trace1.events(), trace2.events());
    let index = events1
        .iter()
        .zip(events2)
        .position(|(a, b)| a != b)
        .unwrap_or(events1.len().min(events2.len()));
    Err(Box::new(Divergence {
        index,
        first: events1.get(index).map(|e| describe_event(&trace1, e)),
        second: events2.get(index).map(|e| describe_event(&trace2, e)),
        states: (state1, state2),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(seeds: Range<u64>) -> Sweep {
        Sweep::new(Config::default(), seeds)
    }

    #[test]
    fn env_ranges_and_shards() {
        let s = sweep(0..10).with_vars(Some("5..=7"), Some("1/2")).unwrap();
        assert_eq!(s.seeds().collect::<Vec<_>>(), [6]);
        let s = sweep(0..10).with_vars(Some(" 3..9 "), Some("0/3")).unwrap();
        assert_eq!(s.seeds().collect::<Vec<_>>(), [3, 6]);
        assert_eq!((s.nth(0), s.nth(1), s.nth(2)), (Some(3), Some(6), None));
        let s = sweep(0..4).with_vars(None, None).unwrap();
        assert_eq!(s.seeds().count(), 4);
        assert_eq!(sweep(0..4).nth(u64::MAX), None, "no overflow");
        for bad in ["", "5", "a..b", "1..=18446744073709551615"] {
            assert_eq!(
                sweep(0..1).with_vars(Some(bad), None).err(),
                Some(SweepError::Seeds(bad.into()))
            );
        }
        for bad in ["2/2", "1/0", "x/2", "1"] {
            assert_eq!(
                sweep(0..1).with_vars(None, Some(bad)).err(),
                Some(SweepError::Shard(bad.into()))
            );
        }
        assert!(sweep(0..1).shard(0, 0).is_err());
    }

    #[test]
    fn strategy_names() {
        assert_eq!(Strategy::default().to_string(), "uniform");
        assert_eq!(Strategy::pct(3).to_string(), "pct(3)");
        assert_eq!(
            Strategy::Pct {
                depth: 2,
                steps: 50
            }
            .to_string(),
            "pct(2, steps=50)"
        );
        assert_eq!(
            Strategy::Bytes(Arc::from(&[1u8, 2][..])).to_string(),
            "bytes(len=2)"
        );
        let schedule: Schedule = "3:1!".parse().unwrap();
        assert_eq!(
            Strategy::Replay(Arc::new(schedule)).to_string(),
            "replay(3:1!)"
        );
    }

    #[test]
    fn panic_messages() {
        let text: Box<dyn Any + Send> = Box::new("static");
        assert_eq!(panic_message(&*text), "static");
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_message(&*owned), "owned");
        let other: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(&*other), "<panic payload is not a string>");
    }

    #[test]
    fn kind_names_cover_both_layers() {
        assert_eq!(kind_name(digest::kind::SPAWN), "spawn");
        assert_eq!(kind_name(super::super::kind::SEND), "send");
        assert_eq!(kind_name(250), "kind 250");
    }
}
