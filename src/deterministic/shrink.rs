//! Shrinking: [`shrink`] and [`shrink_with`] delta-debug a failing run's
//! recorded [`Schedule`] down to the few decisions that matter.
//!
//! # Invariants
//! * Every candidate is judged by replaying it on a fresh runtime with
//!   [`Strategy::Replay`]; the result is a schedule whose replay still
//!   fails in a way the caller accepts, and from which no decision can be
//!   dropped or defaulted, nor any random number zeroed, without losing
//!   that failure (the executor's `shrink` does the search).
//! * The description names tasks by the labels of the final replay's
//!   trace, so it reads the same on every machine.

use super::{
    run::{run_once, FailedRun, Observe},
    Config, Context, Schedule, Strategy,
};
use std::{future::Future, sync::Arc};

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

/// Shrinks the recorded schedule of `failure` (from
/// [`record`](super::record) or a sweep) to a minimal one that still fails
/// with the same message: no decision can be dropped or defaulted, no
/// random number zeroed, without losing it. See [`shrink_with`] to keep a
/// different notion of "the same failure".
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
    let replay = |schedule: &Schedule, observe: Observe| {
        let config = Config {
            strategy: Strategy::Replay(Arc::new(schedule.clone())),
            ..config.clone()
        };
        run_once(config, observe, &body)
    };
    let mut runs = 0;
    let mut fails = |candidate: &Schedule| {
        runs += 1;
        matches!(replay(candidate, Observe::Nothing).0, Err(failure) if keep(&failure))
    };
    if !fails(schedule) {
        return None;
    }
    let shrunk = commonware_executor::shrink_schedule(schedule, fails);
    let (result, context) = replay(&shrunk, Observe::Events);
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
