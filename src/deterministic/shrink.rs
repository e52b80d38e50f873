//! Shrinking: [`shrink`] and [`shrink_with`] delta-debug a failing run's
//! recorded [`Schedule`] (its faults, scheduling choices and random
//! numbers) down to the few that matter, and tell what is left as a story
//! and a [`Timeline`].
//!
//! # Invariants
//! * Every candidate is judged by replaying it on a fresh run of the
//!   program with [`Strategy::Replay`] (a whole [`Harness`](super::Harness)
//!   run, every epoch of it, or a test body); the result is a schedule
//!   whose replay still fails in a way the caller accepts, and from which
//!   no fault can be removed, no decision dropped or defaulted, nor any
//!   random number zeroed, without losing that failure (the executor's
//!   `shrink_schedule` does the search), within [`MAX_RUNS`] replays.
//! * The result is the recording of its own replay, so it lists exactly
//!   what that run did ([`replay`](super::replay) finds no mismatch), and
//!   replaying it fails identically: same message, time and auditor state.
//! * Shrinking is deterministic: the same failure and program shrink to
//!   the same schedule on every run and machine (the budget counts
//!   replays, not seconds).
//! * The story and description name tasks by the labels of the final
//!   replay's trace, so they read the same on every machine.

use super::{
    run::{run_program, timeline_of, FailedRun, Harness, Program},
    timeline::Timeline,
    watch::Observe,
    Config, Context, Schedule, Strategy,
};
use std::{future::Future, sync::Arc};

/// Most replays one shrink makes; past it, the search stops where it is
/// (the result still fails, it may just not be minimal).
pub const MAX_RUNS: usize = 20_000;

/// A shrunk failing schedule, and what it tells.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal schedule: replay it with [`replay`](super::replay) or
    /// [`Strategy::Replay`]; its `Display` form pastes into a test.
    pub schedule: Schedule,
    /// The failure it still produces (its schedule is `schedule`).
    pub failure: Box<FailedRun>,
    /// The schedule, one fault or decision per line, tasks named by label.
    pub description: String,
    /// The shrunk run as a short timeline in virtual time: the faults left,
    /// the decisive scheduling choices, what the program logged with
    /// [`Context::note`], and the failure.
    pub story: String,
    /// The shrunk run, drawable ([`Timeline::to_html`],
    /// [`Timeline::to_chrome_json`]).
    pub timeline: Timeline,
    /// Faults and scheduling decisions of the schedule before shrinking.
    pub before: (usize, usize),
    /// Replays the shrinker made.
    pub runs: usize,
}

/// Shrinks the recorded schedule of `failure` (from [`record`](super::record),
/// a sweep, or with `failure.schedule` empty: then its seed is run once
/// more, recorded) of the test body `body` to a minimal one that still
/// fails with the same message. See [`shrink_with`] to keep a different
/// notion of "the same failure", and [`shrink_harness`] for a whole
/// harness run. `None` if the failure does not reproduce.
pub fn shrink<F, Fut>(config: &Config, failure: &FailedRun, body: F) -> Option<Shrunk>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    shrink_same_message(config, failure, &body)
}

/// Shrinks `schedule` of the test body `body`, keeping every candidate
/// whose replay fails in a way `keep` accepts. Returns `None` if
/// `schedule` itself does not.
pub fn shrink_with<F, Fut>(
    config: &Config,
    schedule: &Schedule,
    body: F,
    keep: impl FnMut(&FailedRun) -> bool,
) -> Option<Shrunk>
where
    F: Fn(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    shrink_program(config, schedule, &body, keep)
}

/// [`shrink`] for a whole harness run: `harness` builds its runtimes from
/// the [`Config`] it is given (with [`Executor::init`](super::Executor::init)),
/// may cut the power and [`recover`](super::Context::recover) any number
/// of times, and panics on a failure. The faults it injects through
/// [`Context::fault`] are shrunk with the runtime's own and the scheduling
/// choices, across every epoch.
pub fn shrink_harness<H, T>(config: &Config, failure: &FailedRun, harness: H) -> Option<Shrunk>
where
    H: Fn(Config) -> T,
{
    shrink_same_message(config, failure, &Harness(harness))
}

/// [`shrink_with`] for a whole harness run (see [`shrink_harness`]).
pub fn shrink_harness_with<H, T>(
    config: &Config,
    schedule: &Schedule,
    harness: H,
    keep: impl FnMut(&FailedRun) -> bool,
) -> Option<Shrunk>
where
    H: Fn(Config) -> T,
{
    shrink_program(config, schedule, &Harness(harness), keep)
}

/// Shrinks `failure`'s schedule (recorded if it has none), keeping its
/// panic message.
fn shrink_same_message<P: Program>(
    config: &Config,
    failure: &FailedRun,
    program: &P,
) -> Option<Shrunk> {
    let schedule = schedule_of(config, failure, program)?;
    shrink_program(config, &schedule, program, |f| f.message == failure.message)
}

/// The recorded schedule of `failure`: its own, or its seed's run once
/// more under a recorder, if that fails the same way.
fn schedule_of<P: Program>(config: &Config, failure: &FailedRun, program: &P) -> Option<Schedule> {
    if let Some(schedule) = &failure.schedule {
        return Some(schedule.clone());
    }
    let rerun = failure.config(config, false);
    match run_program(rerun, Observe::SCHEDULE, program) {
        (Err(again), Some(context)) if again.same_failure(failure) => context.core().recording(),
        _ => None,
    }
}

fn shrink_program<P: Program>(
    config: &Config,
    schedule: &Schedule,
    program: &P,
    mut keep: impl FnMut(&FailedRun) -> bool,
) -> Option<Shrunk> {
    let replay = |schedule: &Schedule, observe: Observe| {
        let config = Config {
            strategy: Strategy::Replay(Arc::new(schedule.clone())),
            ..config.clone()
        };
        run_program(config, observe, program)
    };
    let mut runs = 0;
    let mut fails = |candidate: &Schedule| {
        if runs >= MAX_RUNS {
            return false;
        }
        runs += 1;
        let quiet = Observe {
            quiet: true,
            ..Observe::NOTHING
        };
        matches!(replay(candidate, quiet).0, Err(failure) if keep(&failure))
    };
    if !fails(schedule) {
        return None;
    }
    let shrunk = commonware_executor::shrink_schedule(schedule, &mut fails);
    // The final replay, watched: its own recording is the result.
    let watched = Observe {
        schedule: true,
        events: true,
        timeline: true,
        ..Observe::NOTHING
    };
    let (result, context) = replay(&shrunk, watched);
    let (failure, context) = (result.err()?, context?);
    let mut recorded = context.core().recording()?;
    recorded.trim_randoms();
    let timeline = timeline_of(&context, Some(&failure));
    let trace = context.core().trace().unwrap_or_default();
    let description = recorded.describe(|seq| trace.label(seq).map(str::to_string));
    let mut failure = failure;
    failure.schedule = Some(recorded.clone());
    Some(Shrunk {
        story: timeline.story(),
        timeline,
        description,
        before: (schedule.faults().count(), schedule.decisions().count()),
        schedule: recorded,
        failure,
        runs,
    })
}
