//! Chrome trace-event JSON: [`Timeline::to_chrome_json`], the form
//! Perfetto (ui.perfetto.dev) and `chrome://tracing` open.
//!
//! # What this file owns
//! The mapping of a [`Timeline`] onto trace events, and the small JSON
//! writer that spells them (the library has no serde).
//!
//! * One process (`pid` 1); one thread per lane, `tid` = lane index + 1,
//!   named by `thread_name` metadata and kept in lane order by
//!   `thread_sort_index`.
//! * Faults, notes and decisions are instants on their lane (`"s":"t"`);
//!   power cuts, recoveries, the failure and the end of the run are global
//!   instants (`"s":"g"`).
//! * A message is a flow: `"ph":"s"` on the sender at `at`, `"ph":"f"`
//!   (`"bp":"e"`) on the receiver at `arrives`, sharing an `id`. Perfetto
//!   binds a flow to an enclosing slice, so each end also gets a
//!   one-nanosecond `"X"` slice ("send" / "recv"); one nanosecond is the
//!   virtual clock's grain, so two such slices on a lane either coincide
//!   (and nest) or do not overlap, and Perfetto drops none of them.
//!
//! # Invariants
//! * The output is deterministic: the same [`Timeline`] gives the same
//!   bytes (events in input order, ids counted from 1, no floats: times
//!   are written as exact microseconds with three decimals).
//! * Every string from the timeline is JSON-escaped (quotes, backslashes,
//!   control characters as `\u00XX`).
//! * Events whose lane (or a message's `to`) is not a lane are left out
//!   rather than drawn on a thread with no name.

use super::{Event, Timeline, What};
use std::{
    fmt::{self, Write as _},
    time::Duration,
};

/// The one process every lane belongs to.
const PID: u64 = 1;

/// Length of the "send" / "recv" slices a flow binds to, in microseconds
/// (one nanosecond, see the module doc).
const FLOW_ANCHOR_DUR: &str = "0.001";

impl Timeline {
    /// The run as Chrome trace-event JSON (object form, times in virtual
    /// microseconds since the epoch).
    pub fn to_chrome_json(&self) -> String {
        let mut trace = Trace::default();
        self.write_metadata(&mut trace);
        let mut next_flow_id = 1u64;
        for event in &self.events {
            self.write_event(&mut trace, event, &mut next_flow_id);
        }
        self.write_end(&mut trace);
        trace.finish()
    }

    fn write_metadata(&self, trace: &mut Trace) {
        trace.push(
            metadata("process_name", tid(0))
                .object("args", Object::default().text("name", "deterministic run")),
        );
        for (index, name) in self.lanes.iter().enumerate() {
            let lane_tid = tid(index);
            trace.push(
                metadata("thread_name", lane_tid)
                    .object("args", Object::default().text("name", name)),
            );
            trace.push(
                metadata("thread_sort_index", lane_tid)
                    .object("args", Object::default().number("sort_index", index)),
            );
        }
    }

    fn write_event(&self, trace: &mut Trace, event: &Event, next_flow_id: &mut u64) {
        let Some(lane_name) = self.lanes.get(event.lane) else {
            return;
        };
        let lane_tid = tid(event.lane);
        let record = match &event.what {
            What::Fault { name, occurrence } => {
                instant(name, "fault", lane_tid, event.at, Scope::Thread).object(
                    "args",
                    Object::default()
                        .number("occurrence", occurrence)
                        .text("lane", lane_name),
                )
            }
            What::Note(text) => instant(text, "note", lane_tid, event.at, Scope::Thread)
                .object("args", Object::default().text("lane", lane_name)),
            What::Decision(text) => instant(text, "decision", lane_tid, event.at, Scope::Thread)
                .object("args", Object::default().text("lane", lane_name)),
            What::PowerCut => instant("power cut", "power", lane_tid, event.at, Scope::Global)
                .object("args", Object::default().text("lane", lane_name)),
            What::Recover => instant("recover", "power", lane_tid, event.at, Scope::Global)
                .object("args", Object::default().text("lane", lane_name)),
            What::Message { to, arrives, bytes } => {
                if let Some(to_name) = self.lanes.get(*to) {
                    let id = *next_flow_id;
                    *next_flow_id += 1;
                    let ends = MessageEnds {
                        id,
                        bytes: *bytes,
                        from: (lane_tid, lane_name, event.at),
                        to: (tid(*to), to_name, *arrives),
                    };
                    ends.write(trace);
                }
                return;
            }
        };
        trace.push(record);
    }

    /// The failure, if any, and the end of the run: global instants, so
    /// the trace spans the whole run even when its last event is early.
    fn write_end(&self, trace: &mut Trace) {
        if let Some(failure) = &self.failure {
            let lane = failure.lane.filter(|lane| *lane < self.lanes.len());
            let mut args = Object::default().text("message", &failure.message);
            if let Some(name) = lane.and_then(|lane| self.lanes.get(lane)) {
                args = args.text("lane", name);
            }
            // A global instant still names a thread; the first lane's
            // keeps Perfetto from inventing an unnamed one.
            let failure_tid = tid(lane.unwrap_or(0));
            trace.push(
                instant("failure", "failure", failure_tid, failure.at, Scope::Global)
                    .object("args", args),
            );
        }
        trace.push(instant(
            "end of run",
            "run",
            tid(0),
            self.end,
            Scope::Global,
        ));
    }
}

/// The thread id of a lane.
fn tid(lane: usize) -> u64 {
    u64::try_from(lane).map_or(u64::MAX, |lane| lane.saturating_add(1))
}

/// A message's two ends: the flow start on the sender and the flow end on
/// the receiver, each inside its own anchor slice.
struct MessageEnds<'a> {
    id: u64,
    bytes: usize,
    /// Thread, lane name and time of each end.
    from: (u64, &'a str, Duration),
    to: (u64, &'a str, Duration),
}

impl MessageEnds<'_> {
    fn write(&self, trace: &mut Trace) {
        let (from_tid, from_name, sent) = self.from;
        let (to_tid, to_name, arrives) = self.to;
        trace.push(
            anchor("send", from_tid, sent).object(
                "args",
                Object::default()
                    .text("to", to_name)
                    .number("bytes", self.bytes),
            ),
        );
        trace.push(flow("s", from_tid, sent, self.id));
        trace.push(
            anchor("recv", to_tid, arrives).object(
                "args",
                Object::default()
                    .text("from", from_name)
                    .number("bytes", self.bytes),
            ),
        );
        trace.push(flow("f", to_tid, arrives, self.id).text("bp", "e"));
    }
}

/// Where an instant is drawn: on its lane, or across the whole trace.
#[derive(Clone, Copy)]
enum Scope {
    Thread,
    Global,
}

/// The fields every event shares.
fn event(ph: &str, name: &str, tid: u64) -> Object {
    Object::default()
        .text("ph", ph)
        .text("name", name)
        .number("pid", PID)
        .number("tid", tid)
}

fn metadata(name: &str, tid: u64) -> Object {
    event("M", name, tid)
}

fn instant(name: &str, cat: &str, tid: u64, at: Duration, scope: Scope) -> Object {
    let scope = match scope {
        Scope::Thread => "t",
        Scope::Global => "g",
    };
    event("i", name, tid)
        .text("cat", cat)
        .time("ts", at)
        .text("s", scope)
}

/// A one-nanosecond slice a flow end binds to.
fn anchor(name: &str, tid: u64, at: Duration) -> Object {
    event("X", name, tid)
        .text("cat", "message")
        .time("ts", at)
        .raw("dur", FLOW_ANCHOR_DUR)
}

fn flow(ph: &str, tid: u64, at: Duration, id: u64) -> Object {
    event(ph, "message", tid)
        .text("cat", "message")
        .time("ts", at)
        .number("id", id)
}

/// The `traceEvents` array being written.
#[derive(Default)]
struct Trace {
    events: String,
}

impl Trace {
    fn push(&mut self, event: Object) {
        if !self.events.is_empty() {
            self.events.push_str(",\n");
        }
        self.events.push_str(&event.finish());
    }

    fn finish(self) -> String {
        format!(
            "{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ms\"}}\n",
            self.events
        )
    }
}

/// A JSON object under construction: fields in the order they are added.
#[derive(Default)]
struct Object {
    body: String,
}

impl Object {
    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_string(&mut self.body, key);
        self.body.push(':');
    }

    fn text(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(&mut self.body, value);
        self
    }

    /// An integer (lane indices, counts, ids).
    fn number(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.key(key);
        let _ = write!(self.body, "{value}");
        self
    }

    /// A virtual time in microseconds, exact to the nanosecond.
    fn time(mut self, key: &str, at: Duration) -> Self {
        self.key(key);
        let nanos = at.as_nanos();
        let _ = write!(self.body, "{}.{:03}", nanos / 1000, nanos % 1000);
        self
    }

    /// A value already spelled as JSON.
    fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.body.push_str(json);
        self
    }

    fn object(mut self, key: &str, value: Object) -> Self {
        self.key(key);
        self.body.push_str(&value.finish());
        self
    }

    fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// Appends `text` as a JSON string literal.
fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::{sample, Failure};
    use super::*;
    use serde_json::Value;

    /// The `traceEvents` of a timeline's JSON, which must parse.
    fn trace_events(timeline: &Timeline) -> Vec<Value> {
        let json = timeline.to_chrome_json();
        let parsed: Value = serde_json::from_str(&json).expect("the output is JSON");
        assert_eq!(parsed["displayTimeUnit"], "ms");
        parsed["traceEvents"]
            .as_array()
            .expect("traceEvents is an array")
            .clone()
    }

    fn with<'a>(events: &'a [Value], ph: &str, cat: &str) -> Vec<&'a Value> {
        events
            .iter()
            .filter(|event| event["ph"] == ph && event["cat"] == cat)
            .collect()
    }

    #[test]
    fn every_lane_is_a_named_thread_in_order() {
        let timeline = sample();
        let events = trace_events(&timeline);
        for (index, name) in timeline.lanes.iter().enumerate() {
            let tid = index as u64 + 1;
            let named = events.iter().any(|event| {
                event["ph"] == "M"
                    && event["name"] == "thread_name"
                    && event["tid"] == tid
                    && event["args"]["name"] == name.as_str()
            });
            assert!(named, "lane {name:?} has thread_name metadata");
            let sorted = events.iter().any(|event| {
                event["name"] == "thread_sort_index"
                    && event["tid"] == tid
                    && event["args"]["sort_index"] == index as u64
            });
            assert!(sorted, "lane {name:?} has a sort index");
        }
        assert!(events
            .iter()
            .any(|event| event["ph"] == "M" && event["name"] == "process_name"));
    }

    #[test]
    fn instants_carry_names_scopes_and_details() {
        let events = trace_events(&sample());
        let fault = with(&events, "i", "fault");
        assert_eq!(fault.len(), 1);
        assert_eq!(fault[0]["name"], "crash \"a\" <now>");
        assert_eq!(fault[0]["s"], "t");
        assert_eq!(fault[0]["tid"], 1);
        assert_eq!(fault[0]["args"]["occurrence"], 2);
        assert_eq!(fault[0]["ts"].as_f64(), Some(1000.0));

        let note = with(&events, "i", "note");
        assert_eq!(note.len(), 1);
        assert_eq!(
            note[0]["name"],
            "<script>alert('x')</script> & \\ \"q\"\n2nd"
        );
        assert_eq!(note[0]["tid"], 2);

        let decision = with(&events, "i", "decision");
        assert_eq!(decision.len(), 1);
        assert_eq!(decision[0]["name"], "only 'node2' runs");

        let power = with(&events, "i", "power");
        let names: Vec<_> = power.iter().map(|event| &event["name"]).collect();
        assert_eq!(names, ["power cut", "recover"]);
        assert!(power.iter().all(|event| event["s"] == "g"));

        let failure = with(&events, "i", "failure");
        assert_eq!(failure.len(), 1);
        assert_eq!(failure[0]["s"], "g");
        assert_eq!(
            failure[0]["args"]["message"],
            "UNSAFE: <index> \"7\" \\ twice\nsecond line"
        );
        assert_eq!(failure[0]["args"]["lane"], "node\\1 <b>");
        assert_eq!(failure[0]["ts"].as_f64(), Some(18_000.0));
    }

    #[test]
    fn a_message_is_a_flow_pair_inside_send_and_recv_slices() {
        let events = trace_events(&sample());
        let starts = with(&events, "s", "message");
        let ends = with(&events, "f", "message");
        assert_eq!((starts.len(), ends.len()), (1, 1));
        let (start, end) = (starts[0], ends[0]);
        assert_eq!(start["id"], end["id"]);
        assert_eq!(start["name"], end["name"]);
        assert_eq!(
            (&start["tid"], &end["tid"]),
            (&Value::from(1), &Value::from(2))
        );
        assert_eq!(start["ts"].as_f64(), Some(3000.0));
        assert_eq!(end["ts"].as_f64(), Some(5000.0));
        assert_eq!(end["bp"], "e");

        let slices = with(&events, "X", "message");
        let send = slices.iter().find(|slice| slice["name"] == "send");
        let recv = slices.iter().find(|slice| slice["name"] == "recv");
        let (send, recv) = (send.expect("a send slice"), recv.expect("a recv slice"));
        assert_eq!((&send["tid"], &send["ts"]), (&start["tid"], &start["ts"]));
        assert_eq!((&recv["tid"], &recv["ts"]), (&end["tid"], &end["ts"]));
        assert_eq!(send["args"]["bytes"], 64);
    }

    #[test]
    fn flow_ids_are_unique() {
        let mut timeline = sample();
        let message = timeline.events[2].clone();
        timeline.events.push(message.clone());
        timeline.events.push(message);
        let events = trace_events(&timeline);
        let mut ids: Vec<_> = with(&events, "s", "message")
            .iter()
            .map(|event| event["id"].as_u64())
            .collect();
        ids.dedup();
        assert_eq!(ids, [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn times_are_exact_to_the_nanosecond() {
        let timeline = Timeline {
            lanes: vec!["a".into()],
            events: vec![Event {
                at: Duration::new(70, 123_456_789),
                lane: 0,
                what: What::Note("n".into()),
            }],
            end: Duration::from_nanos(7),
            failure: None,
        };
        let json = timeline.to_chrome_json();
        assert!(json.contains("\"ts\":70123456.789"), "{json}");
        assert!(json.contains("\"ts\":0.007"), "{json}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let timeline = Timeline {
            lanes: vec!["tab\there\u{1}\u{1f} é \u{2028}".into()],
            ..Timeline::default()
        };
        let json = timeline.to_chrome_json();
        assert!(json.contains("tab\\u0009here\\u0001\\u001f"), "{json}");
        let events = trace_events(&timeline);
        assert!(events
            .iter()
            .any(|event| event["args"]["name"] == timeline.lanes[0].as_str()));
    }

    #[test]
    fn unknown_lanes_are_left_out_and_nothing_panics() {
        let timeline = Timeline {
            lanes: vec!["only".into()],
            events: vec![
                Event {
                    at: Duration::from_secs(1),
                    lane: usize::MAX,
                    what: What::PowerCut,
                },
                Event {
                    at: Duration::from_secs(2),
                    lane: 0,
                    what: What::Message {
                        to: 9,
                        arrives: Duration::MAX,
                        bytes: usize::MAX,
                    },
                },
            ],
            end: Duration::ZERO,
            failure: Some(Failure {
                at: Duration::MAX,
                lane: Some(usize::MAX),
                message: String::new(),
            }),
        };
        let events = trace_events(&timeline);
        assert!(with(&events, "i", "power").is_empty());
        assert!(with(&events, "s", "message").is_empty());
        assert_eq!(with(&events, "i", "failure").len(), 1);
        assert!(trace_events(&Timeline::default())
            .iter()
            .all(|event| event["ph"] == "M" || event["cat"] == "run"));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(sample().to_chrome_json(), sample().to_chrome_json());
    }
}
