//! Collecting a run's [`Timeline`] while it runs: the [`Log`] the runtime
//! writes to when a caller asked for a picture of the run.
//!
//! # What this module owns
//! The log itself (shared by a runtime and the runtimes `recover()` makes
//! from it, like the disk) and the one translation from what the runtime
//! knows (IPs, nanoseconds) to what a timeline shows (lanes, durations).
//!
//! # Invariants
//! * Nothing is logged unless a log was installed: a run that is not
//!   drawn pays one `OnceLock` load where it would log.
//! * Logging only watches: it draws nothing and audits nothing, so a run
//!   is the same, auditor state included, with or without a log.
//! * Fault occurrences are counted as the scheduler counts them (every
//!   ask with a probability above 0), so a fault's occurrence in the
//!   timeline is the one its recorded schedule names.

use super::{Event, Failure, Timeline, What};
use crate::deterministic::Context;
use commonware_executor::Occurrences;
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

/// The lane of everything not on a node.
const RUNTIME_LANE: &str = "runtime";

/// What a run did, as it happened, for its timeline.
#[derive(Default)]
pub(crate) struct Log {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    events: Vec<Raw>,
    /// Lane names the harness gave, by IP.
    names: BTreeMap<IpAddr, String>,
    /// Asks per fault name so far, counted as the recorder counts them.
    asked: Occurrences,
}

struct Raw {
    at: u64,
    lane: IpAddr,
    what: RawWhat,
}

enum RawWhat {
    Fault {
        name: String,
        occurrence: u64,
    },
    Note(String),
    Message {
        to: IpAddr,
        arrives: u64,
        bytes: usize,
    },
    PowerCut,
    Recover,
}

/// Whether `ip` stands for no node (the default context's address).
fn off_node(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified()
}

impl Log {
    /// Counts an ask about the fault `name` on `lane` at `at`, and logs it
    /// if it `fired`.
    pub(crate) fn asked(&self, at: u64, lane: IpAddr, name: &dyn fmt::Display, fired: bool) {
        let mut inner = self.inner.lock();
        let (name, occurrence) = inner.asked.ask(name);
        if fired {
            let name = name.to_string();
            inner.push(at, lane, RawWhat::Fault { name, occurrence });
        }
    }

    /// Logs something the harness reported.
    pub(crate) fn note(&self, at: u64, lane: IpAddr, text: String) {
        self.inner.lock().push(at, lane, RawWhat::Note(text));
    }

    /// Logs bytes sent from `from` to `to` at `at`, arriving at `arrives`.
    pub(crate) fn message(&self, at: u64, from: IpAddr, to: IpAddr, arrives: u64, bytes: usize) {
        let what = RawWhat::Message { to, arrives, bytes };
        self.inner.lock().push(at, from, what);
    }

    /// Logs a power cut (the whole runtime halted) at `at`.
    pub(crate) fn power_cut(&self, at: u64) {
        self.inner
            .lock()
            .push(at, Ipv4Addr::LOCALHOST.into(), RawWhat::PowerCut);
    }

    /// Logs a `recover()` at `at`.
    pub(crate) fn recover(&self, at: u64) {
        self.inner
            .lock()
            .push(at, Ipv4Addr::LOCALHOST.into(), RawWhat::Recover);
    }

    /// Names the lane of node `ip`.
    pub(crate) fn name_node(&self, ip: IpAddr, name: &str) {
        self.inner.lock().names.insert(ip, name.to_string());
    }

    /// The timeline so far: lanes by IP (named where the harness named
    /// them), then the runtime's lane; `decisions` (time, words) are merged
    /// in on the runtime's lane.
    pub(crate) fn timeline(
        &self,
        end: u64,
        failure: Option<(u64, String)>,
        decisions: &[(u64, String)],
    ) -> Timeline {
        let inner = self.inner.lock();
        let mut ips: BTreeSet<IpAddr> = inner.names.keys().copied().collect();
        for raw in &inner.events {
            ips.insert(raw.lane);
            if let RawWhat::Message { to, .. } = raw.what {
                ips.insert(to);
            }
        }
        ips.retain(|&ip| !off_node(ip));
        let mut lanes: Vec<String> = ips
            .iter()
            .map(|ip| {
                inner
                    .names
                    .get(ip)
                    .cloned()
                    .unwrap_or_else(|| ip.to_string())
            })
            .collect();
        let runtime_lane = lanes.len();
        lanes.push(RUNTIME_LANE.to_string());
        let lane = |ip: IpAddr| {
            ips.iter()
                .position(|&known| known == ip)
                .unwrap_or(runtime_lane)
        };
        let nanos = Duration::from_nanos;
        let mut events: Vec<Event> = inner
            .events
            .iter()
            .map(|raw| Event {
                at: nanos(raw.at),
                lane: lane(raw.lane),
                what: match &raw.what {
                    RawWhat::Fault { name, occurrence } => What::Fault {
                        name: name.clone(),
                        occurrence: *occurrence,
                    },
                    RawWhat::Note(text) => What::Note(text.clone()),
                    RawWhat::Message { to, arrives, bytes } => What::Message {
                        to: lane(*to),
                        arrives: nanos(*arrives),
                        bytes: *bytes,
                    },
                    RawWhat::PowerCut => What::PowerCut,
                    RawWhat::Recover => What::Recover,
                },
            })
            .chain(decisions.iter().map(|(at, text)| Event {
                at: nanos(*at),
                lane: runtime_lane,
                what: What::Decision(text.clone()),
            }))
            .collect();
        // Stable: events at one instant keep the order they happened in.
        events.sort_by_key(|event| event.at);
        Timeline {
            lanes,
            events,
            end: nanos(end),
            failure: failure.map(|(at, message)| Failure {
                at: nanos(at),
                lane: None,
                message,
            }),
        }
    }
}

impl Context {
    /// Logs `event` (an election, a commit, a crash the harness caused)
    /// on this context's node's lane, at the current virtual time, when
    /// the run is drawn (a [`Timeline`] or the story of a shrunk run);
    /// otherwise does nothing, and `event` is never formatted. Logging
    /// changes nothing in the run.
    pub fn note(&self, event: impl fmt::Display) {
        if let Some(log) = self.runtime.faults.log() {
            log.note(self.runtime.core.now(), self.ip, event.to_string());
        }
    }

    /// Names the lane of node `ip` in the run's timeline and story (by
    /// default a node's lane is named by its IP).
    pub fn name_node(&self, ip: IpAddr, name: &str) {
        if let Some(log) = self.runtime.faults.log() {
            log.name_node(ip, name);
        }
    }
}

impl Inner {
    fn push(&mut self, at: u64, lane: IpAddr, what: RawWhat) {
        self.events.push(Raw { at, lane, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn lanes_events_and_occurrences() {
        let log = Log::default();
        log.name_node(ip(2), "node 1");
        log.asked(5, ip(1), &"crash", false);
        log.asked(9, ip(1), &"crash", true);
        log.message(10, ip(1), ip(2), 30, 4);
        log.note(20, Ipv4Addr::LOCALHOST.into(), "driver".into());
        log.power_cut(40);
        let timeline = log.timeline(50, Some((45, "boom".into())), &[(7, "d".into())]);
        assert_eq!(timeline.lanes, ["10.0.0.1", "node 1", "runtime"]);
        let whats: Vec<_> = timeline
            .events
            .iter()
            .map(|e| (e.at.as_nanos(), e.lane))
            .collect();
        assert_eq!(whats, [(7, 2), (9, 0), (10, 0), (20, 2), (40, 2)]);
        assert_eq!(
            timeline.events[1].what,
            What::Fault {
                name: "crash".into(),
                occurrence: 1
            }
        );
        assert!(matches!(
            timeline.events[2].what,
            What::Message {
                to: 1,
                bytes: 4,
                ..
            }
        ));
        assert_eq!(timeline.failure.unwrap().message, "boom");
        assert_eq!(timeline.end, Duration::from_nanos(50));
    }
}
