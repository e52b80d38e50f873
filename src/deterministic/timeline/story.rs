//! The story of a run: its [`Timeline`] as a few lines of text in virtual
//! time, readable without the source.
//!
//! # Invariants
//! * One line per fault, note, power cut, recover and scheduling decision,
//!   in time order, then the failure; messages are left out (they are the
//!   picture's), so a shrunk run's story is as short as the run is.
//! * The text depends only on the timeline: the same run tells the same
//!   story everywhere.

use super::{Timeline, What};
use std::{fmt::Write as _, time::Duration};

/// `at` as seconds with milliseconds, right-aligned.
fn seconds(at: Duration) -> String {
    format!("{:>9.3}s", at.as_secs_f64())
}

impl Timeline {
    /// The run as lines of text: faults, notes, power cuts, recoveries and
    /// scheduling decisions in time order, each with its lane, and the
    /// failure last.
    pub fn story(&self) -> String {
        let width = self.lanes.iter().map(String::len).max().unwrap_or(0);
        let lane = |index: usize| self.lanes.get(index).map_or("?", String::as_str);
        let mut out = String::new();
        for event in &self.events {
            let what = match &event.what {
                What::Fault { name, occurrence } => {
                    format!("fault     {name} (occurrence {occurrence})")
                }
                What::Note(text) => format!("          {text}"),
                What::PowerCut => "power cut: every task stops where it is".to_string(),
                What::Recover => "recover: the runtime restarts from what was synced".to_string(),
                What::Decision(text) => format!("schedule  {text}"),
                What::Message { .. } => continue,
            };
            let _ = writeln!(
                out,
                "[{}] {:<width$}  {what}",
                seconds(event.at),
                lane(event.lane)
            );
        }
        if let Some(failure) = &self.failure {
            let _ = writeln!(
                out,
                "[{}] {:<width$}  FAILED    {}",
                seconds(failure.at),
                failure.lane.map_or("", lane),
                failure.message
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, Failure};
    use super::*;

    #[test]
    fn one_line_per_event_without_messages() {
        let ms = Duration::from_millis;
        let timeline = Timeline {
            lanes: vec!["node 0".into(), "runtime".into()],
            events: vec![
                Event {
                    at: ms(1500),
                    lane: 0,
                    what: What::Fault {
                        name: "crash node 0".into(),
                        occurrence: 3,
                    },
                },
                Event {
                    at: ms(1600),
                    lane: 0,
                    what: What::Message {
                        to: 1,
                        arrives: ms(1700),
                        bytes: 10,
                    },
                },
                Event {
                    at: ms(2000),
                    lane: 1,
                    what: What::PowerCut,
                },
                Event {
                    at: ms(2100),
                    lane: 0,
                    what: What::Note("node 0 leads term 2".into()),
                },
            ],
            end: ms(3000),
            failure: Some(Failure {
                at: ms(3000),
                lane: None,
                message: "UNSAFE".into(),
            }),
        };
        let story = timeline.story();
        assert_eq!(
            story,
            "\
[    1.500s] node 0   fault     crash node 0 (occurrence 3)
[    2.000s] runtime  power cut: every task stops where it is
[    2.100s] node 0             node 0 leads term 2
[    3.000s]          FAILED    UNSAFE
"
        );
    }
}
