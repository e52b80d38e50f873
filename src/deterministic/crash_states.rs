//! Crash-state enumeration: [`crash_states`] runs a body once, and at each
//! of its crash points (every `sync` or `close`, every
//! [`Context::crash_point`], and the end of the run) checks every distinct
//! disk a crash there could leave, with a user's recovery check, in the
//! style of ALICE and CrashMonkey. A storage bug that needs one particular
//! torn state is found in one run, not by luck across seeds.
//!
//! What a crash may keep is the disk model of [`Persistence`]: each page
//! written since its handle last synced, independently, as any of those
//! writes left it or not at all (`Pages`), or a prefix of the writes in
//! issue order (`Ordered`). The states of one crash point are the choices
//! per page (or the prefixes); the ones that give the same bytes on the
//! disk as a state already checked (at this point or an earlier one) are
//! skipped.
//!
//! # Invariants
//! * The body runs exactly as [`Runner::start`](crate::Runner::start)
//!   would run it with the same config: recording draws nothing and audits
//!   nothing.
//! * At a point with at most [`CrashStates::bound`] states every state is
//!   checked, in a fixed order (nothing kept first); past the bound,
//!   [`CrashStates::samples`] states are drawn from a generator seeded by
//!   the config's seed and the point's index, so a run is the same every
//!   time.
//! * Each check runs in a fresh runtime with the config's seed, cycle,
//!   timeout and strategy and no faults, on a disk holding exactly the
//!   crash state.

use super::{
    failure::panic_message,
    storage::{Disk, Persistence, Point, Write},
    Config, Context, Executor,
};
use crate::Runner as _;
use std::{
    collections::BTreeSet,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
};
use thiserror::Error;

/// How many crash states [`crash_states`] checks, and under which disk
/// model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashStates {
    /// What a crash may keep of the writes since the last sync.
    pub persistence: Persistence,
    /// A crash point with at most this many states has all of them checked.
    pub bound: u64,
    /// How many states are drawn at a crash point with more than `bound`.
    pub samples: u64,
}

impl Default for CrashStates {
    fn default() -> Self {
        Self {
            persistence: Persistence::Pages,
            bound: 4096,
            samples: 512,
        }
    }
}

/// What a [`crash_states`] run explored when every check passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Explored {
    /// Crash points the body passed.
    pub points: usize,
    /// Distinct crash states checked.
    pub states: usize,
    /// Crash points with more states than the bound, of which only a
    /// sample was checked.
    pub sampled: usize,
}

/// The first crash state that failed the check.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{}", self.describe())]
pub struct CrashFailure {
    /// Where the crash happened (e.g. `sync of journal/6c6f67`).
    pub point: String,
    /// The unsynced writes the failing state keeps, in issue order.
    pub kept: Vec<Write>,
    /// The unsynced writes it loses.
    pub lost: Vec<Write>,
    /// The check's error, or its panic message.
    pub message: String,
    /// Distinct states checked, this one included.
    pub states: usize,
}

impl CrashFailure {
    fn describe(&self) -> String {
        let list = |writes: &[Write]| {
            if writes.is_empty() {
                return "none".to_string();
            }
            writes
                .iter()
                .map(Write::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "crash at {} fails the recovery check (state {} checked): {}\n  kept: {}\n  lost: {}",
            self.point,
            self.states,
            self.message,
            list(&self.kept),
            list(&self.lost)
        )
    }
}

impl fmt::Display for Explored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} crash states checked at {} crash points ({} sampled)",
            self.states, self.points, self.sampled
        )
    }
}

/// Runs `body` on a runtime made from `config`, then checks every distinct
/// crash state of each of its crash points with `check` (see the module
/// documentation), and returns the first that fails, or what was explored.
///
/// `check` gets a fresh runtime whose disk is the crash state and returns
/// `Err(reason)` (or panics) when recovery goes wrong.
///
/// ```rust
/// use commonware_runtime::{deterministic::{crash_states, Config, CrashStates}, Blob, Storage};
///
/// // Bug: the length at offset 0 and the record at 4096 are on different
/// // pages and reach the disk in either order.
/// let failure = crash_states(
///     Config::default(),
///     CrashStates::default(),
///     |context| async move {
///         let blob = context.open("log", b"0").await.unwrap();
///         blob.write_at(&4u32.to_le_bytes(), 0).await.unwrap();
///         blob.write_at(b"data", 4096).await.unwrap();
///         blob.sync().await.unwrap();
///     },
///     |context| async move {
///         let blob = context.open("log", b"0").await.map_err(|e| e.to_string())?;
///         if blob.len().await.unwrap() < 4 {
///             return Ok(());
///         }
///         let mut len = [0; 4];
///         blob.read_at(&mut len, 0).await.unwrap();
///         let mut record = vec![0; u32::from_le_bytes(len) as usize];
///         blob.read_at(&mut record, 4096).await.map_err(|e| e.to_string())?;
///         (record == b"data" || record.is_empty()).then_some(()).ok_or("torn record".into())
///     },
/// )
/// .unwrap_err();
/// assert_eq!(failure.point, "sync of log/30");
/// assert_eq!(failure.kept[0].to_string(), "#1 write log/30 bytes 0..4");
/// ```
pub fn crash_states<B, BF, C, CF>(
    config: Config,
    settings: CrashStates,
    body: B,
    check: C,
) -> Result<Explored, Box<CrashFailure>>
where
    B: FnOnce(Context) -> BF,
    BF: Future<Output = ()> + Send + 'static,
    C: Fn(Context) -> CF,
    CF: Future<Output = Result<(), String>> + Send + 'static,
{
    let (runner, context, _) = Executor::init(config.clone());
    let disk = context.runtime.storage.clone();
    let recorder = disk.record();
    runner.start(body(context));
    recorder.crash_point(&disk, "end of run".into());

    let mut explored = Explored::default();
    let mut seen = BTreeSet::new();
    for (index, point) in recorder.take_points().into_iter().enumerate() {
        explored.points += 1;
        let radices = point.radices(settings.persistence);
        let total = radices
            .iter()
            .try_fold(1u64, |total, radix| total.checked_mul(*radix as u64));
        let choices: Box<dyn Iterator<Item = Vec<usize>>> = match total {
            Some(total) if total <= settings.bound => Box::new(Odometer::new(radices)),
            _ => {
                explored.sampled += 1;
                let seed = config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                Box::new(Sampler::new(radices, seed, settings.samples))
            }
        };
        for choice in choices {
            let (images, digest) = point.build(settings.persistence, &choice);
            if !seen.insert(digest) {
                continue;
            }
            explored.states += 1;
            let (runner, context, _) = Executor::init(Config {
                seed: config.seed,
                cycle: config.cycle,
                timeout: config.timeout,
                strategy: config.strategy.clone(),
                ..Config::default()
            });
            context.runtime.storage.install(images);
            let outcome = catch_unwind(AssertUnwindSafe(|| runner.start(check(context))))
                .unwrap_or_else(|payload| Err(panic_message(&*payload).to_string()));
            if let Err(message) = outcome {
                return Err(failure(
                    &point,
                    settings.persistence,
                    &choice,
                    message,
                    explored,
                ));
            }
        }
    }
    Ok(explored)
}

fn failure(
    point: &Point,
    persistence: Persistence,
    choice: &[usize],
    message: String,
    explored: Explored,
) -> Box<CrashFailure> {
    let (kept, lost) = point.kept(persistence, choice);
    Box::new(CrashFailure {
        point: point.label.clone(),
        kept,
        lost,
        message,
        states: explored.states,
    })
}

/// Every choice of a mixed-radix number, from all zeros (nothing kept).
struct Odometer {
    radices: Vec<usize>,
    next: Option<Vec<usize>>,
}

impl Odometer {
    fn new(radices: Vec<usize>) -> Self {
        let next = Some(vec![0; radices.len()]);
        Self { radices, next }
    }
}

impl Iterator for Odometer {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let mut next = current.clone();
        for (digit, radix) in next.iter_mut().zip(&self.radices) {
            *digit += 1;
            if *digit < *radix {
                self.next = Some(next);
                return Some(current);
            }
            *digit = 0;
        }
        Some(current)
    }
}

/// `count` seeded random choices, the first one keeping nothing.
struct Sampler {
    radices: Vec<usize>,
    state: u64,
    drawn: u64,
    count: u64,
}

impl Sampler {
    fn new(radices: Vec<usize>, seed: u64, count: u64) -> Self {
        Self {
            radices,
            state: seed,
            drawn: 0,
            count,
        }
    }

    /// splitmix64: a small generator of its own, so sampling draws nothing
    /// from the runtime's stream.
    fn draw(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Iterator for Sampler {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        if self.drawn == self.count {
            return None;
        }
        self.drawn += 1;
        if self.drawn == 1 {
            return Some(vec![0; self.radices.len()]);
        }
        let mut choice = vec![0; self.radices.len()];
        for (digit, radix) in choice.iter_mut().zip(0..self.radices.len()) {
            *digit = (self.draw() % self.radices[radix] as u64) as usize;
        }
        Some(choice)
    }
}

impl Context {
    /// Marks a crash point for [`crash_states`]: the disk a crash here could
    /// leave is checked too. Does nothing in any other run.
    pub fn crash_point(&self, label: &str) {
        let disk: &Disk = &self.runtime.storage;
        if let Some(recorder) = disk.recorder() {
            recorder.crash_point(disk, label.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Blob as _, Storage as _};

    /// The body of a crash-state run makes the same audit events as the
    /// same body under `start`.
    #[test]
    fn recording_changes_nothing_in_the_run() {
        let body = |context: Context| async move {
            let blob = context.open("p", b"b").await.unwrap();
            blob.write_at(&[1; 5000], 100).await.unwrap();
            blob.truncate(4000).await.unwrap();
            blob.sync().await.unwrap();
            blob.write_at(b"x", 9000).await.unwrap();
            context.crash_point("mark");
            blob.close().await.unwrap();
        };
        let (runner, context, auditor) = Executor::init(Config::default());
        runner.start(body(context));
        let plain = auditor.state();

        let (runner, context, auditor) = Executor::init(Config::default());
        let recorder = context.runtime.storage.record();
        runner.start(body(context));
        assert_eq!(auditor.state(), plain);
        let labels: Vec<_> = recorder
            .take_points()
            .into_iter()
            .map(|p| p.label)
            .collect();
        assert_eq!(labels, ["sync of p/62", "mark", "close of p/62"]);
    }

    #[test]
    fn the_odometer_counts_every_choice_once() {
        let all: Vec<_> = Odometer::new(vec![2, 3]).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], vec![0, 0]);
        assert_eq!(all[1], vec![1, 0]);
        assert_eq!(Odometer::new(vec![]).count(), 1);
    }

    #[test]
    fn samples_repeat_per_seed() {
        let a: Vec<_> = Sampler::new(vec![5; 8], 7, 10).collect();
        let b: Vec<_> = Sampler::new(vec![5; 8], 7, 10).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
    }
}
