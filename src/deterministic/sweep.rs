//! Seed sweeps: [`Sweep`] and [`explore`] run a test body over many seeds,
//! spread over OS threads (one runtime per thread) and shardable through
//! the `SEEDS` and `SHARD` environment variables.
//!
//! # Invariants
//! * A sweep's answer does not depend on its thread count: it reports the
//!   lowest failing seed of the range (or shard), and every lower seed of it
//!   has run and passed.
//! * Every run is an independent runtime with its own metrics registry, so
//!   a sweep's memory stays flat however many seeds it runs. The seeds a
//!   thread runs one after another reuse the executor memory the previous
//!   run left on that thread (the executor keeps it per thread), which
//!   changes allocation only, never a run.
//! * Passing seeds run without a recorder; only the lowest failing seed is
//!   recorded, by running it again under one.
//! * Nothing here feeds wall-clock time, thread ids or hash order into a
//!   run; threads only decide which seed runs where, never how.

use super::{
    run::{run_program, FailedRun, Harness, Program},
    watch::Observe,
    Config, Context, Points, Strategy,
};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};
use thiserror::Error;

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
    /// Every reachability point the runs declared (see
    /// [`Assertions`](crate::Assertions)), with how many seeds reached it
    /// and the first that did; its `Display` is a table that marks the
    /// points no seed reached ([`Points::gaps`]).
    pub points: Points,
}

/// A sweep of a test body over many seeds.
///
/// For bug hunting, sweep with [`Strategy::portfolio`](super::Strategy::portfolio):
/// each seed runs one of uniform rounds with hold-backs, uniform and PCT
/// at depths 1 to 4, so the sweep finds ordering, timing and starvation
/// bugs without a choice of strategy or depth, and a failing seed
/// reproduces from the seed and the portfolio alone. The sweep measures the
/// step estimate the portfolio's members need on its first seed.
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

    /// The config the sweep runs: a step estimate of 0 (PCT, hold,
    /// portfolio) is replaced by the number of polls of the range's first
    /// seed under `Uniform` (which this runs once to count them).
    pub fn calibrated<F, Fut>(&self, body: &F) -> Config
    where
        F: Fn(Context) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.calibrated_program(body)
    }

    fn calibrated_program<P: Program>(&self, program: &P) -> Config {
        let mut config = self.config.clone();
        if config.strategy.wants_steps() {
            let probe = Config {
                seed: self.seeds.start,
                strategy: Strategy::Uniform,
                registry: Arc::new(std::sync::Mutex::new(Registry::default())),
                ..config.clone()
            };
            let (_, context) = run_program(probe, Observe::NOTHING, program);
            let steps = context.map_or(1, |context| context.core().polls().max(1));
            config.strategy = config.strategy.with_steps(steps);
        }
        config
    }

    /// The config of one seed's run: the template's, with the seed and a
    /// registry of its own.
    fn config_of(template: &Config, seed: u64) -> Config {
        Config {
            seed,
            registry: Arc::new(std::sync::Mutex::new(Registry::default())),
            ..template.clone()
        }
    }

    /// Runs `body` for every seed of the sweep, collecting each run's
    /// reachability points; returns the tally, or the lowest failing seed's
    /// failure, with its schedule recorded by running it once more.
    pub fn run<F, Fut>(&self, body: F) -> Result<Swept, Box<FailedRun>>
    where
        F: Fn(Context) -> Fut + Sync,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.run_program(&body)
    }

    /// [`Sweep::run`] for a whole harness run: `harness` builds its
    /// runtimes from the [`Config`] it is given (see
    /// [`shrink_harness`](super::shrink_harness)) and panics on a failure.
    pub fn run_harness<H, T>(&self, harness: H) -> Result<Swept, Box<FailedRun>>
    where
        H: Fn(Config) -> T + Sync,
    {
        self.run_program(&Harness(harness))
    }

    fn run_program<P: Program + Sync>(&self, program: &P) -> Result<Swept, Box<FailedRun>> {
        let template = self.calibrated_program(program);
        let next = AtomicU64::new(0);
        let lowest = AtomicU64::new(u64::MAX);
        let found: Mutex<Option<Box<FailedRun>>> = Mutex::new(None);
        let ran = AtomicU64::new(0);
        let points = Mutex::new(Points::default());
        let worker = || loop {
            let Some(seed) = self.nth(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if seed > lowest.load(Ordering::Acquire) {
                return;
            }
            ran.fetch_add(1, Ordering::Relaxed);
            let config = Self::config_of(&template, seed);
            let (result, context) = run_program(config, Observe::POINTS, program);
            if let Some(context) = context {
                points.lock().add(seed, &context);
            }
            if let Err(failure) = result {
                let mut found = found.lock();
                if seed < lowest.load(Ordering::Acquire) {
                    lowest.store(seed, Ordering::Release);
                    *found = Some(failure);
                }
                return;
            }
        };
        self.on_threads(worker);
        match found.into_inner() {
            None => Ok(Swept {
                seeds: ran.into_inner(),
                threads: self.threads,
                points: points.into_inner(),
            }),
            Some(failure) => Err(Self::recorded(failure, &template, program)),
        }
    }

    /// Runs the whole harness run `harness` (see [`Sweep::run_harness`])
    /// for every seed of the sweep, failing or not, and returns each seed's
    /// result in seed order, with the tally of the reachability points.
    /// Each failure carries its schedule, recorded by running its seed once
    /// more (ready for [`shrink_harness_with`](super::shrink_harness_with)).
    pub fn each_harness<H, T>(&self, harness: H) -> Each<T>
    where
        H: Fn(Config) -> T + Sync,
        T: Send,
    {
        let harness = Harness(harness);
        let template = self.calibrated_program(&harness);
        let seeds: Vec<u64> = self.seeds().collect();
        let next = AtomicU64::new(0);
        let results = Mutex::new(Vec::with_capacity(seeds.len()));
        let points = Mutex::new(Points::default());
        let worker = || loop {
            let index = next.fetch_add(1, Ordering::Relaxed) as usize;
            let Some(&seed) = seeds.get(index) else {
                return;
            };
            let config = Self::config_of(&template, seed);
            let (result, context) = run_program(config, Observe::POINTS, &harness);
            if let Some(context) = context {
                points.lock().add(seed, &context);
            }
            let result = result.map_err(|failure| Self::recorded(failure, &template, &harness));
            results.lock().push((seed, result));
        };
        self.on_threads(worker);
        let mut runs = results.into_inner();
        runs.sort_by_key(|(seed, _)| *seed);
        Each {
            runs,
            threads: self.threads,
            points: points.into_inner(),
        }
    }

    /// Runs `worker` on the sweep's threads (on this one if it has one).
    fn on_threads(&self, worker: impl Fn() + Sync) {
        if self.threads == 1 {
            worker();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..self.threads {
                    scope.spawn(&worker);
                }
            });
        }
    }

    /// `failure` with its schedule, recorded by running its seed once more.
    fn recorded<P: Program>(
        mut failure: Box<FailedRun>,
        template: &Config,
        program: &P,
    ) -> Box<FailedRun> {
        let config = failure.config(template, false);
        let (rerun, context) = run_program(config, Observe::SCHEDULE, program);
        let schedule = context.and_then(|context| context.core().recording());
        match (rerun, schedule) {
            (Err(again), Some(schedule)) if again.same_failure(&failure) => {
                failure.schedule = Some(schedule);
            }
            _ => {
                failure.message.push_str(
                    "\n  (running this seed again did not fail the same way: the program is not deterministic; see deterministic::check_determinism)",
                );
            }
        }
        failure
    }
}

/// What [`Sweep::each_harness`] found: every seed's result, in seed order.
#[derive(Debug)]
pub struct Each<T> {
    /// `(seed, output or failure)`, in seed order.
    pub runs: Vec<(u64, Result<T, Box<FailedRun>>)>,
    /// OS threads used.
    pub threads: usize,
    /// Every reachability point the runs declared (as in [`Swept::points`]).
    pub points: Points,
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
/// auditor state and recorded schedule; or, if every seed passed, the
/// reachability points the seeds reached ([`Swept::points`]).
///
/// The recommended strategy for bug hunting is
/// [`Strategy::portfolio`](super::Strategy::portfolio) (see [`Sweep`]).
///
/// ```no_run
/// use commonware_runtime::{deterministic, Clock};
/// use std::time::Duration;
///
/// let config = deterministic::Config {
///     strategy: deterministic::Strategy::portfolio(),
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
}
