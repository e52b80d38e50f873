//! [`Timeline`]: a recorded run as events in virtual time, one lane per
//! node, and its two pictures: a self-contained HTML page with an SVG
//! timeline (`html.rs`) and Chrome trace-event JSON (`chrome.rs`) that
//! Perfetto and `chrome://tracing` open.
//!
//! # What this module owns
//! The data model of a drawn run. Collecting it during a run is
//! `collect.rs`'s; the story (the short text form of a shrunk run) is
//! `story.rs`'s.
//!
//! # Invariants
//! * Events are in virtual-time order; events at one instant keep the
//!   order in which the run produced them. Nothing here reads the wall
//!   clock, so the same run gives byte-identical pages and JSON.
//! * Every `lane` and `to` index is below `lanes.len()`.

mod chrome;
mod collect;
mod html;
mod story;

pub(crate) use collect::Log;

use std::time::Duration;

/// A recorded run, drawable: what happened, when (virtual time since the
/// epoch), and on which lane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Lane names, top to bottom: one lane per node (the name the harness
    /// gave it with [`Context::name_node`](super::Context::name_node), else
    /// its IP), plus one lane for everything not on a node (the harness's
    /// driver, the runtime itself), named `"runtime"`.
    pub lanes: Vec<String>,
    /// The events, in time order.
    pub events: Vec<Event>,
    /// Virtual time when the run ended (or failed).
    pub end: Duration,
    /// The failure, when the run failed: drawn highlighted.
    pub failure: Option<Failure>,
}

/// One thing that happened on a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When (virtual time since the epoch).
    pub at: Duration,
    /// The lane it happened on (index into [`Timeline::lanes`]).
    pub lane: usize,
    /// What happened.
    pub what: What,
}

/// What an [`Event`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A fault decision that fired: its name and which occurrence of that
    /// name it was (0 is the first time the run asked).
    Fault { name: String, occurrence: u64 },
    /// Something the harness logged ([`Context::note`](super::Context::note)).
    Note(String),
    /// Bytes sent from this lane to lane `to`, arriving at `arrives`.
    Message {
        to: usize,
        arrives: Duration,
        bytes: usize,
    },
    /// The whole runtime halted (a power cut): every task stopped.
    PowerCut,
    /// The runtime came back with `recover()` from what the disk kept.
    Recover,
    /// A scheduling choice the failure needs (from a shrunk schedule), in
    /// words, e.g. `"only 'node2' runs, the rest are held back"`.
    Decision(String),
}

/// How a drawn run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// When (virtual time since the epoch).
    pub at: Duration,
    /// The lane of the task that failed, when it ran on a node.
    pub lane: Option<usize>,
    /// The panic message.
    pub message: String,
}

/// A small run that uses every kind of event, with names that need
/// escaping in both HTML and JSON.
#[cfg(test)]
fn sample() -> Timeline {
    let ms = Duration::from_millis;
    let event = |at, lane, what| Event {
        at: ms(at),
        lane,
        what,
    };
    Timeline {
        lanes: vec![
            "node \"0\"".into(),
            "node\\1 <b>".into(),
            "runtime\nline two".into(),
        ],
        events: vec![
            event(
                1,
                0,
                What::Fault {
                    name: "crash \"a\" <now>".into(),
                    occurrence: 2,
                },
            ),
            event(
                2,
                1,
                What::Note("<script>alert('x')</script> & \\ \"q\"\n2nd".into()),
            ),
            event(
                3,
                0,
                What::Message {
                    to: 1,
                    arrives: ms(5),
                    bytes: 64,
                },
            ),
            event(10, 2, What::PowerCut),
            event(12, 2, What::Recover),
            event(13, 1, What::Decision("only 'node2' runs".into())),
        ],
        end: ms(20),
        failure: Some(Failure {
            at: ms(18),
            lane: Some(1),
            message: "UNSAFE: <index> \"7\" \\ twice\nsecond line".into(),
        }),
    }
}
