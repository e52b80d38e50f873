//! Determinism checks: [`check_determinism`] runs a body twice with an
//! event trace and reports the first event where the runs differ, as a
//! [`Divergence`].
//!
//! # Invariants
//! * Both runs use the same config; a panic inside the body is part of the
//!   run (compared, not propagated).
//! * Events are described with the names of [`auditor`](super::auditor)'s
//!   kinds and the task labels of each run's own trace.

use super::{auditor::kind_name, run::run_once, watch::Observe, Config, Context};
use commonware_executor::{digest, Trace, TraceEvent};
use std::{fmt, future::Future};

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
        let (_, context) = run_once(config.clone(), Observe::EVENTS, &body);
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
