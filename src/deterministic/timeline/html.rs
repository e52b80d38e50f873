//! The HTML page: [`Timeline::to_html`], one self-contained file with a
//! summary, an SVG timeline, a legend and a table of what happened.
//!
//! # What this file owns
//! The page's layout: one horizontal lane per [`Timeline::lanes`] entry,
//! virtual time left to right on a linear axis from 0 to the end of the
//! run, faults as red triangles, decisions as purple diamonds, notes as
//! grey dots, messages as thin arrows between lanes, power cuts as
//! full-height bands, recoveries as dashed lines and the failure as a
//! full-height red line. The table below the picture lists every event
//! that is not a message, so nothing a label had no room for is lost.
//!
//! # Invariants
//! * Self-contained: inline CSS and SVG, no script, nothing fetched. The
//!   only URL the page itself writes is the SVG namespace. Hover text
//!   comes from SVG `<title>` elements, which need no script.
//! * All text from the timeline, and the title, is HTML-escaped.
//! * The output is deterministic: the same [`Timeline`] and title give
//!   the same bytes.
//! * It never panics. Events on a lane that does not exist (or messages to
//!   one) are skipped and counted in the summary; events past `end` widen
//!   the axis; arrivals past the axis are drawn to its right edge; a run
//!   with no length gets a one-second axis.
//! * At most [`MAX_MESSAGES_DRAWN`] message arrows, picked evenly over
//!   the run; the summary says how many were left out. This keeps a page
//!   with a huge run under a megabyte or so of arrows.

use super::{Event, Timeline, What};
use std::{fmt::Write as _, time::Duration};

/// The most message arrows one page draws (about 80 bytes each).
const MAX_MESSAGES_DRAWN: usize = 4_000;

// Geometry, in SVG pixels.
/// Room for the lane names, left of the plot.
const PLOT_LEFT: f64 = 150.0;
const PLOT_WIDTH: f64 = 1400.0;
const PLOT_RIGHT_MARGIN: f64 = 30.0;
const SVG_WIDTH: f64 = PLOT_LEFT + PLOT_WIDTH + PLOT_RIGHT_MARGIN;
/// Height of one row of labels.
const ROW_HEIGHT: f64 = 12.0;
/// Rows above the lanes, for the labels of power cuts, recoveries and the
/// failure (they span every lane).
const GLOBAL_ROWS: usize = 3;
const TOP: f64 = 6.0 + ROW_HEIGHT * GLOBAL_ROWS as f64;
const LANE_HEIGHT: f64 = 80.0;
/// The lane's line, from the lane's top: three label rows above it (faults
/// and decisions), two below (notes).
const LANE_LINE: f64 = 46.0;
const ROWS_ABOVE: usize = 3;
const ROWS_BELOW: usize = 2;
const AXIS_HEIGHT: f64 = 34.0;
/// Rough width of one character of an 11 px label: enough to keep labels
/// from overlapping without measuring text.
const CHAR_WIDTH: f64 = 6.3;
/// Room left between two labels in one row.
const LABEL_GAP: f64 = 6.0;
/// Longest label drawn in the picture, in characters (hover text and the
/// table have the whole text).
const MAX_LABEL_CHARS: usize = 28;
const MAX_FAILURE_LABEL_CHARS: usize = 90;
const MAX_LANE_NAME_CHARS: usize = 20;
/// Most ticks on the time axis.
const MAX_TICKS: u128 = 14;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

impl Timeline {
    /// The run as one self-contained HTML page titled `title`.
    pub fn to_html(&self, title: &str) -> String {
        let run = Run::new(self);
        let mut page = String::new();
        write_head(&mut page, title);
        write_summary(&mut page, &run);
        write_failure(&mut page, &run);
        page.push_str("<div class=\"plot\">\n");
        Canvas::new(&run).draw(&mut page);
        page.push_str("</div>\n");
        write_legend(&mut page);
        write_table(&mut page, &run);
        page.push_str("</body>\n</html>\n");
        page
    }
}

/// What the page shows of a timeline: the events it can place, in time
/// order, and the length of the axis.
struct Run<'a> {
    timeline: &'a Timeline,
    /// Events on known lanes (for messages, both ends known), in time
    /// order; events at one instant keep their order.
    events: Vec<&'a Event>,
    /// Events left out because a lane index is out of range.
    skipped: usize,
    /// The failure's lane, when it is a known one.
    failure_lane: Option<usize>,
    /// Length of the time axis in nanoseconds: never zero.
    span: u128,
}

impl<'a> Run<'a> {
    fn new(timeline: &'a Timeline) -> Self {
        let known = |lane: usize| lane < timeline.lanes.len();
        let mut events: Vec<&Event> = timeline
            .events
            .iter()
            .filter(|event| match event.what {
                What::Message { to, .. } => known(event.lane) && known(to),
                _ => known(event.lane),
            })
            .collect();
        events.sort_by_key(|event| event.at);
        let skipped = timeline.events.len() - events.len();
        let latest = events
            .iter()
            .map(|event| event.at)
            .chain(timeline.failure.as_ref().map(|failure| failure.at))
            .fold(timeline.end, Duration::max);
        let span = match latest.as_nanos() {
            0 => NANOS_PER_SECOND,
            nanos => nanos,
        };
        Self {
            timeline,
            events,
            skipped,
            failure_lane: timeline
                .failure
                .as_ref()
                .and_then(|failure| failure.lane)
                .filter(|lane| known(*lane)),
            span,
        }
    }

    fn lane_name(&self, lane: usize) -> &str {
        self.timeline.lanes.get(lane).map_or("", String::as_str)
    }

    fn count(&self, matches: impl Fn(&What) -> bool) -> usize {
        self.events
            .iter()
            .filter(|event| matches(&event.what))
            .count()
    }

    fn messages(&self) -> impl Iterator<Item = &'a Event> + '_ {
        self.events
            .iter()
            .copied()
            .filter(|event| matches!(event.what, What::Message { .. }))
    }

    /// The messages drawn: all of them, or [`MAX_MESSAGES_DRAWN`] picked
    /// evenly, so a long run is thinned everywhere rather than cut short.
    fn drawn_messages(&self) -> Vec<&'a Event> {
        let all: Vec<&Event> = self.messages().collect();
        if all.len() <= MAX_MESSAGES_DRAWN {
            return all;
        }
        (0..MAX_MESSAGES_DRAWN)
            .filter_map(|k| all.get(k * all.len() / MAX_MESSAGES_DRAWN).copied())
            .collect()
    }

    /// The spans the runtime was down: from each power cut to the next
    /// recovery (or the end of the axis).
    fn outages(&self) -> Vec<(Duration, Option<Duration>)> {
        let mut outages = Vec::new();
        let mut down_since = None;
        for event in &self.events {
            match event.what {
                What::PowerCut if down_since.is_none() => down_since = Some(event.at),
                What::Recover => {
                    if let Some(cut) = down_since.take() {
                        outages.push((cut, Some(event.at)));
                    }
                }
                _ => {}
            }
        }
        if let Some(cut) = down_since {
            outages.push((cut, None));
        }
        outages
    }
}

fn write_head(page: &mut String, title: &str) {
    let title = escape(title);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n"
    );
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:16px 20px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:18px 0 6px}
.summary{margin:0 0 8px;color:#444}
.failure{margin:0 0 10px;padding:6px 10px;border-left:5px solid #c62828;background:#fdecea;color:#8e0000;white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
.plot{overflow-x:auto}
.plot svg{max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
.lane-name{font-size:12px;font-weight:600;fill:#333}
.tick{font-size:11px;fill:#555}
.label{font-size:11px}
.fault .label{fill:#b71c1c;font-weight:600}
.decision .label{fill:#6a1b9a}
.note .label{fill:#555}
.power .label{fill:#bf360c;font-weight:600}
.recover .label{fill:#2e7d32;font-weight:600}
.fail .label{fill:#c62828;font-weight:700}
.mark:hover .label{text-decoration:underline}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0;padding:0;list-style:none;font-size:13px;color:#444}
.legend svg{vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:2px 12px 2px 0;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{border-bottom:2px solid #ccc}
td.time{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap;text-align:right}
td.what{white-space:pre-wrap}
tr.fault td.kind{color:#c62828;font-weight:600}
tr.decision td.kind{color:#6a1b9a}
tr.note td.kind{color:#666}
tr.power td.kind{color:#bf360c;font-weight:600}
tr.recover td.kind{color:#2e7d32;font-weight:600}
tr.failure{background:#fdecea;color:#8e0000;font-weight:600}
";

fn write_summary(page: &mut String, run: &Run<'_>) {
    let timeline = run.timeline;
    let messages = run.messages().count();
    let drawn = messages.min(MAX_MESSAGES_DRAWN);
    let mut parts = vec![
        plural(timeline.lanes.len(), "lane", "lanes"),
        plural(timeline.events.len(), "event", "events"),
        plural(
            run.count(|what| matches!(what, What::Fault { .. })),
            "fault",
            "faults",
        ),
        plural(
            run.count(|what| matches!(what, What::Note(_))),
            "note",
            "notes",
        ),
    ];
    let mut message_part = plural(messages, "message", "messages");
    if drawn < messages {
        let _ = write!(
            message_part,
            " ({drawn} drawn, {} left out)",
            messages - drawn
        );
    }
    parts.push(message_part);
    let cuts = run.count(|what| matches!(what, What::PowerCut));
    if cuts > 0 {
        parts.push(plural(cuts, "power cut", "power cuts"));
    }
    let decisions = run.count(|what| matches!(what, What::Decision(_)));
    if decisions > 0 {
        parts.push(plural(decisions, "decision", "decisions"));
    }
    if run.skipped > 0 {
        parts.push(format!("{} on unknown lanes, not shown", run.skipped));
    }
    parts.push(format!("ends at {}", seconds(timeline.end)));
    match &timeline.failure {
        Some(failure) => parts.push(format!(
            "<strong>failed at {}: {}</strong>",
            seconds(failure.at),
            escape(&failure.message)
        )),
        None => parts.push("no failure".to_string()),
    }
    let _ = writeln!(page, "<p class=\"summary\">{}</p>", parts.join(" · "));
}

fn write_failure(page: &mut String, run: &Run<'_>) {
    let Some(failure) = &run.timeline.failure else {
        return;
    };
    let place = match run.failure_lane {
        Some(lane) => format!(" on {}", escape(run.lane_name(lane))),
        None => String::new(),
    };
    let _ = writeln!(
        page,
        "<p class=\"failure\">Failure at {}{place}:\n{}</p>",
        seconds(failure.at),
        escape(&failure.message)
    );
}

/// The SVG picture being drawn, and which label rows are taken.
struct Canvas<'r, 'a> {
    run: &'r Run<'a>,
    svg: String,
    /// Label rows above the lanes (power cuts, recoveries, the failure).
    global_rows: Rows,
    /// Per lane: rows above its line (faults, decisions) and below (notes).
    above: Vec<Rows>,
    below: Vec<Rows>,
}

impl<'r, 'a> Canvas<'r, 'a> {
    fn new(run: &'r Run<'a>) -> Self {
        let lanes = run.timeline.lanes.len();
        Self {
            run,
            svg: String::new(),
            global_rows: Rows::new(GLOBAL_ROWS),
            above: (0..lanes).map(|_| Rows::new(ROWS_ABOVE)).collect(),
            below: (0..lanes).map(|_| Rows::new(ROWS_BELOW)).collect(),
        }
    }

    fn draw(mut self, page: &mut String) {
        let height = self.axis_y() + AXIS_HEIGHT;
        let _ = writeln!(
            self.svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH:.0}\" \
             height=\"{height:.0}\" viewBox=\"0 0 {SVG_WIDTH:.0} {height:.0}\" \
             role=\"img\" aria-label=\"timeline of the run\">"
        );
        self.svg.push_str(
            "<defs><marker id=\"arrow\" viewBox=\"0 0 6 6\" refX=\"6\" refY=\"3\" \
             markerWidth=\"4\" markerHeight=\"4\" orient=\"auto\">\
             <path d=\"M0,0L6,3L0,6z\" fill=\"#1f4e8c\" fill-opacity=\"0.45\"/></marker></defs>\n",
        );
        self.lanes();
        self.grid();
        self.outages();
        self.messages();
        self.lane_lines();
        // The failure's label takes the first global row before the power
        // events', so it is never the one crowded out.
        self.failure();
        self.marks();
        self.axis();
        self.svg.push_str("</svg>\n");
        page.push_str(&self.svg);
    }

    /// The x coordinate of a time, clamped to the axis.
    fn x(&self, at: Duration) -> f64 {
        self.x_nanos(at.as_nanos())
    }

    fn x_nanos(&self, nanos: u128) -> f64 {
        let nanos = nanos.min(self.run.span);
        PLOT_LEFT + PLOT_WIDTH * (nanos as f64 / self.run.span as f64)
    }

    fn lane_top(&self, lane: usize) -> f64 {
        TOP + LANE_HEIGHT * lane as f64
    }

    fn lane_y(&self, lane: usize) -> f64 {
        self.lane_top(lane) + LANE_LINE
    }

    fn axis_y(&self) -> f64 {
        self.lane_top(self.run.timeline.lanes.len())
    }

    fn lanes(&mut self) {
        for (lane, name) in self.run.timeline.lanes.iter().enumerate() {
            let top = self.lane_top(lane);
            let fill = if lane % 2 == 0 { "#f7f8fa" } else { "#eef1f5" };
            let _ = writeln!(
                self.svg,
                "<rect x=\"0\" y=\"{top:.1}\" width=\"{SVG_WIDTH:.0}\" height=\"{LANE_HEIGHT:.0}\" \
                 fill=\"{fill}\"/>\
                 <text class=\"lane-name\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">\
                 <title>{}</title>{}</text>",
                PLOT_LEFT - 12.0,
                self.lane_y(lane) + 4.0,
                escape(name),
                escape(&shorten(name, MAX_LANE_NAME_CHARS)),
            );
        }
    }

    fn lane_lines(&mut self) {
        for lane in 0..self.run.timeline.lanes.len() {
            let y = self.lane_y(lane);
            let _ = writeln!(
                self.svg,
                "<line x1=\"{PLOT_LEFT:.0}\" y1=\"{y:.1}\" x2=\"{:.0}\" y2=\"{y:.1}\" \
                 stroke=\"#9aa3ad\" stroke-width=\"1\"/>",
                PLOT_LEFT + PLOT_WIDTH
            );
        }
    }

    /// Faint vertical lines at each tick, behind everything.
    fn grid(&mut self) {
        let (top, bottom) = (TOP, self.axis_y());
        self.svg
            .push_str("<g stroke=\"#dde1e6\" stroke-width=\"1\">\n");
        for (at, _) in ticks(self.run.span) {
            let x = self.x_nanos(at);
            let _ = writeln!(
                self.svg,
                "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>"
            );
        }
        self.svg.push_str("</g>\n");
    }

    fn axis(&mut self) {
        let y = self.axis_y();
        let _ = writeln!(
            self.svg,
            "<line x1=\"{PLOT_LEFT:.0}\" y1=\"{y:.1}\" x2=\"{:.0}\" y2=\"{y:.1}\" stroke=\"#555\"/>\
             <text class=\"tick\" x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">virtual time</text>",
            PLOT_LEFT + PLOT_WIDTH,
            PLOT_LEFT - 24.0,
            y + 17.0,
        );
        for (at, label) in ticks(self.run.span) {
            let x = self.x_nanos(at);
            let _ = writeln!(
                self.svg,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#555\"/>\
                 <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                y + 5.0,
                y + 17.0,
            );
        }
    }

    /// A light band over every lane while the runtime was down.
    fn outages(&mut self) {
        let bottom = self.axis_y();
        for (cut, recovered) in self.run.outages() {
            let start = self.x(cut);
            let end = recovered.map_or(PLOT_LEFT + PLOT_WIDTH, |at| self.x(at));
            let _ = writeln!(
                self.svg,
                "<rect x=\"{start:.1}\" y=\"{TOP:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"#ff7043\" fill-opacity=\"0.12\"/>",
                (end - start).max(0.0),
                bottom - TOP,
            );
        }
    }

    fn messages(&mut self) {
        let drawn = self.run.drawn_messages();
        let _ = writeln!(
            self.svg,
            "<g stroke=\"#1f4e8c\" stroke-opacity=\"{:.2}\" stroke-width=\"0.8\" \
             marker-end=\"url(#arrow)\">",
            message_opacity(drawn.len())
        );
        for event in drawn {
            let What::Message { to, arrives, .. } = event.what else {
                continue;
            };
            let (x1, y1) = (self.x(event.at), self.lane_y(event.lane));
            let (x2, y2) = (self.x(arrives), self.lane_y(to));
            let _ = writeln!(
                self.svg,
                "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"/>"
            );
        }
        self.svg.push_str("</g>\n");
    }

    /// Every event that is not a message, in time order.
    fn marks(&mut self) {
        let run = self.run;
        for &event in &run.events {
            match &event.what {
                What::Fault { name, occurrence } => self.fault(event, name, *occurrence),
                What::Decision(text) => self.decision(event, text),
                What::Note(text) => self.note(event, text),
                What::PowerCut => self.power_cut(event),
                What::Recover => self.recover(event),
                What::Message { .. } => {}
            }
        }
    }

    /// Hover text for a mark: what, when, where.
    fn hover(&self, what: &str, event: &Event) -> String {
        escape(&format!(
            "{what}\n{} on {}",
            seconds(event.at),
            self.run.lane_name(event.lane)
        ))
    }

    fn fault(&mut self, event: &Event, name: &str, occurrence: u64) {
        let (x, y) = (self.x(event.at), self.lane_y(event.lane));
        let shape = format!(
            "<path d=\"M{:.1},{:.1}h12l-6,10z\" fill=\"#d32f2f\" stroke=\"#7f0000\" stroke-width=\"0.8\"/>",
            x - 6.0,
            y - 10.0,
        );
        let what = format!("fault: {name} (occurrence {occurrence})");
        let label = Label {
            text: name,
            y: y - 10.0,
            side: Side::Above,
            color: "#d32f2f",
        };
        self.marker(event, "fault", &what, &shape, label);
    }

    fn decision(&mut self, event: &Event, text: &str) {
        let (x, y) = (self.x(event.at), self.lane_y(event.lane));
        let shape = format!(
            "<path d=\"M{x:.1},{:.1}l5,5l-5,5l-5,-5z\" fill=\"#8e24aa\"/>",
            y - 5.0
        );
        let label = Label {
            text,
            y: y - 5.0,
            side: Side::Above,
            color: "#8e24aa",
        };
        self.marker(
            event,
            "decision",
            &format!("decision: {text}"),
            &shape,
            label,
        );
    }

    fn note(&mut self, event: &Event, text: &str) {
        let (x, y) = (self.x(event.at), self.lane_y(event.lane));
        let shape = format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#78909c\" stroke=\"#fff\" stroke-width=\"0.8\"/>"
        );
        let label = Label {
            text,
            y: y + 3.0,
            side: Side::Below,
            color: "#90a4ae",
        };
        self.marker(event, "note", &format!("note: {text}"), &shape, label);
    }

    /// One marked event: a group of its hover text (`what`), its `shape`
    /// (SVG already placed) and its label on the lane.
    fn marker(&mut self, event: &Event, class: &str, what: &str, shape: &str, label: Label<'_>) {
        let hover = self.hover(what, event);
        let _ = write!(
            self.svg,
            "<g class=\"mark {class}\"><title>{hover}</title>{shape}"
        );
        let x = self.x(event.at);
        self.lane_label(event.lane, x, label.y, label.text, label.side, label.color);
        self.svg.push_str("</g>\n");
    }

    fn power_cut(&mut self, event: &Event) {
        let x = self.x(event.at);
        let hover = self.hover("power cut: every task stopped", event);
        let _ = write!(
            self.svg,
            "<g class=\"mark power\"><title>{hover}</title>\
             <line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e64a19\" stroke-width=\"2\"/>",
            self.axis_y(),
        );
        self.global_label(x, "power cut", MAX_LABEL_CHARS);
        self.svg.push_str("</g>\n");
    }

    fn recover(&mut self, event: &Event) {
        let x = self.x(event.at);
        let hover = self.hover(
            "recover: the runtime restarted from what the disk kept",
            event,
        );
        let _ = write!(
            self.svg,
            "<g class=\"mark recover\"><title>{hover}</title>\
             <line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#2e7d32\" \
             stroke-width=\"1.5\" stroke-dasharray=\"5,4\"/>",
            self.axis_y(),
        );
        self.global_label(x, "recover", MAX_LABEL_CHARS);
        self.svg.push_str("</g>\n");
    }

    /// The failure: a red line over every lane, a mark on its lane, and
    /// its message as the first global label.
    fn failure(&mut self) {
        let run = self.run;
        let Some(failure) = &run.timeline.failure else {
            return;
        };
        let x = self.x(failure.at);
        let place = run
            .failure_lane
            .map(|lane| format!(" on {}", run.lane_name(lane)))
            .unwrap_or_default();
        let hover = escape(&format!(
            "failure at {}{place}:\n{}",
            seconds(failure.at),
            failure.message
        ));
        let _ = write!(
            self.svg,
            "<g class=\"mark fail\"><title>{hover}</title>\
             <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-width=\"2.5\"/>",
            TOP - ROW_HEIGHT * GLOBAL_ROWS as f64,
            self.axis_y(),
        );
        if let Some(lane) = run.failure_lane {
            let y = self.lane_y(lane);
            let _ = write!(
                self.svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"7\" fill=\"#c62828\"/>\
                 <path d=\"M{:.1},{:.1}l7,7m0,-7l-7,7\" stroke=\"#fff\" stroke-width=\"2\"/>",
                x - 3.5,
                y - 3.5,
            );
        }
        let text = format!("FAILURE: {}", failure.message);
        self.global_label(x, &text, MAX_FAILURE_LABEL_CHARS);
        self.svg.push_str("</g>\n");
    }

    /// A label in a free row on one side of a lane's line, joined to the
    /// mark at (`x`, `mark_y`) by a thin leader; none when no row has room.
    fn lane_label(
        &mut self,
        lane: usize,
        x: f64,
        mark_y: f64,
        text: &str,
        side: Side,
        color: &str,
    ) {
        let short = shorten(text, MAX_LABEL_CHARS);
        let span = LabelSpan::at(x, &short);
        let rows = match side {
            Side::Above => self.above.get_mut(lane),
            Side::Below => self.below.get_mut(lane),
        };
        let Some(row) = rows.and_then(|rows| rows.place(span.start, span.end)) else {
            return;
        };
        let line = self.lane_y(lane);
        let (baseline, leader_end) = match side {
            Side::Above => {
                let baseline = line - 14.0 - ROW_HEIGHT * row as f64;
                (baseline, baseline + 2.0)
            }
            Side::Below => {
                let baseline = line + 17.0 + ROW_HEIGHT * row as f64;
                (baseline, baseline - 9.0)
            }
        };
        if row > 0 || side == Side::Below {
            let _ = write!(
                self.svg,
                "<line x1=\"{x:.1}\" y1=\"{mark_y:.1}\" x2=\"{x:.1}\" y2=\"{leader_end:.1}\" \
                 stroke=\"{color}\" stroke-width=\"0.7\"/>"
            );
        }
        let _ = write!(
            self.svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{baseline:.1}\" text-anchor=\"{}\">{}</text>",
            span.anchor_x,
            span.anchor,
            escape(&short),
        );
    }

    /// A label in a free row above the lanes; none when no row has room.
    fn global_label(&mut self, x: f64, text: &str, max_chars: usize) {
        let short = shorten(text, max_chars);
        let span = LabelSpan::at(x, &short);
        let Some(row) = self.global_rows.place(span.start, span.end) else {
            return;
        };
        let baseline = TOP - 4.0 - ROW_HEIGHT * (GLOBAL_ROWS - 1 - row) as f64;
        let _ = write!(
            self.svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{baseline:.1}\" text-anchor=\"{}\">{}</text>",
            span.anchor_x,
            span.anchor,
            escape(&short),
        );
    }
}

/// How opaque each message arrow is: fainter the more there are, so a
/// busy run reads as a wash behind the marks rather than a solid block.
fn message_opacity(drawn: usize) -> f64 {
    const FEW: f64 = 400.0;
    (0.28 * (FEW / drawn.max(1) as f64).sqrt()).clamp(0.08, 0.28)
}

/// A marker's label: its text, height, side of the lane and colour.
struct Label<'a> {
    text: &'a str,
    y: f64,
    side: Side,
    color: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Above,
    Below,
}

/// Where a label starting at a mark goes: right of it, or left of it when
/// it would run past the plot's right edge.
struct LabelSpan {
    start: f64,
    end: f64,
    anchor_x: f64,
    anchor: &'static str,
}

impl LabelSpan {
    fn at(x: f64, text: &str) -> Self {
        let width = text.chars().count() as f64 * CHAR_WIDTH;
        if x + 3.0 + width <= SVG_WIDTH {
            Self {
                start: x,
                end: x + 3.0 + width,
                anchor_x: x + 3.0,
                anchor: "start",
            }
        } else {
            Self {
                start: x - 3.0 - width,
                end: x,
                anchor_x: x - 3.0,
                anchor: "end",
            }
        }
    }
}

/// Rows of labels: each remembers the stretches already taken, so a new
/// label goes in the first row where it overlaps nothing.
struct Rows {
    taken: Vec<Vec<(f64, f64)>>,
}

impl Rows {
    fn new(rows: usize) -> Self {
        Self {
            taken: vec![Vec::new(); rows],
        }
    }

    /// The row the stretch `start..end` went into, if any had room.
    fn place(&mut self, start: f64, end: f64) -> Option<usize> {
        let row = self.taken.iter().position(|taken| {
            taken
                .iter()
                .all(|&(s, e)| end + LABEL_GAP <= s || e + LABEL_GAP <= start)
        })?;
        self.taken.get_mut(row)?.push((start, end));
        Some(row)
    }
}

/// The axis ticks for a span of `span` nanoseconds: a 1-2-5 step that
/// gives at most [`MAX_TICKS`] intervals, with labels in seconds showing
/// just the decimals the step needs.
fn ticks(span: u128) -> Vec<(u128, String)> {
    let step = tick_step(span);
    let decimals = 9 - trailing_decimal_zeros(step).min(9);
    let mut ticks = Vec::new();
    let mut at = 0u128;
    while at <= span {
        ticks.push((at, tick_label(at, decimals)));
        match at.checked_add(step) {
            Some(next) => at = next,
            None => break,
        }
    }
    ticks
}

fn tick_step(span: u128) -> u128 {
    let mut unit = 1u128;
    loop {
        for step in [unit, unit.saturating_mul(2), unit.saturating_mul(5)] {
            if span / step <= MAX_TICKS {
                return step;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

fn trailing_decimal_zeros(mut n: u128) -> usize {
    let mut zeros = 0;
    while n != 0 && n % 10 == 0 {
        n /= 10;
        zeros += 1;
    }
    zeros
}

fn tick_label(nanos: u128, decimals: usize) -> String {
    let whole = nanos / NANOS_PER_SECOND;
    if decimals == 0 {
        return format!("{whole} s");
    }
    let fraction = format!("{:09}", nanos % NANOS_PER_SECOND);
    let fraction = fraction.get(..decimals).unwrap_or(&fraction);
    format!("{whole}.{fraction} s")
}

fn write_legend(page: &mut String) {
    const ENTRIES: [(&str, &str); 7] = [
        (
            "<path d=\"M3,2h12l-6,10z\" fill=\"#d32f2f\" stroke=\"#7f0000\" stroke-width=\"0.8\"/>",
            "fault",
        ),
        (
            "<path d=\"M9,2l5,5l-5,5l-5,-5z\" fill=\"#8e24aa\"/>",
            "decision",
        ),
        (
            "<circle cx=\"9\" cy=\"7\" r=\"3\" fill=\"#78909c\"/>",
            "note",
        ),
        (
            "<line x1=\"1\" y1=\"11\" x2=\"15\" y2=\"3\" stroke=\"#1f4e8c\" stroke-opacity=\"0.6\"/>\
             <path d=\"M17,2l-5,0l3,4z\" fill=\"#1f4e8c\"/>",
            "message (sender to receiver)",
        ),
        (
            "<rect x=\"9\" y=\"0\" width=\"9\" height=\"14\" fill=\"#ff7043\" fill-opacity=\"0.15\"/>\
             <line x1=\"9\" y1=\"0\" x2=\"9\" y2=\"14\" stroke=\"#e64a19\" stroke-width=\"2\"/>",
            "power cut (shaded until recovery)",
        ),
        (
            "<line x1=\"9\" y1=\"0\" x2=\"9\" y2=\"14\" stroke=\"#2e7d32\" stroke-width=\"1.5\" stroke-dasharray=\"4,3\"/>",
            "recover",
        ),
        (
            "<line x1=\"4\" y1=\"0\" x2=\"4\" y2=\"14\" stroke=\"#c62828\" stroke-width=\"2.5\"/>\
             <circle cx=\"12\" cy=\"7\" r=\"5\" fill=\"#c62828\"/>",
            "failure",
        ),
    ];
    page.push_str("<ul class=\"legend\">\n");
    for (swatch, name) in ENTRIES {
        let _ = writeln!(
            page,
            "<li><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"18\" height=\"14\" \
             viewBox=\"0 0 18 14\" aria-hidden=\"true\">{swatch}</svg>{name}</li>"
        );
    }
    page.push_str("</ul>\n");
}

/// One row of the event table.
struct Row<'a> {
    at: Duration,
    lane: Option<usize>,
    kind: &'static str,
    what: std::borrow::Cow<'a, str>,
}

fn write_table(page: &mut String, run: &Run<'_>) {
    let mut rows: Vec<Row<'_>> = run.events.iter().copied().filter_map(table_row).collect();
    if let Some(failure) = &run.timeline.failure {
        rows.push(Row {
            at: failure.at,
            lane: run.failure_lane,
            kind: "failure",
            what: failure.message.as_str().into(),
        });
    }
    // Stable: the failure comes after everything at its instant.
    rows.sort_by_key(|row| row.at);
    page.push_str("<h2>Events</h2>\n");
    if rows.is_empty() {
        page.push_str("<p>No events other than messages.</p>\n");
        return;
    }
    page.push_str(
        "<table>\n<thead><tr><th>time</th><th>lane</th><th>kind</th><th>what</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let lane = row
            .lane
            .map_or_else(|| "—".to_string(), |lane| escape(run.lane_name(lane)));
        let _ = writeln!(
            page,
            "<tr class=\"{kind}\"><td class=\"time\">{}</td><td>{lane}</td>\
             <td class=\"kind\">{kind}</td><td class=\"what\">{}</td></tr>",
            seconds(row.at),
            escape(&row.what),
            kind = row.kind,
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

fn table_row(event: &Event) -> Option<Row<'_>> {
    let (kind, what) = match &event.what {
        What::Fault { name, occurrence } => {
            ("fault", format!("{name} (occurrence {occurrence})").into())
        }
        What::Note(text) => ("note", text.as_str().into()),
        What::Decision(text) => ("decision", text.as_str().into()),
        What::PowerCut => ("power", "power cut: every task stopped".into()),
        What::Recover => (
            "recover",
            "recover: the runtime restarted from what the disk kept".into(),
        ),
        What::Message { .. } => return None,
    };
    Some(Row {
        at: event.at,
        lane: Some(event.lane),
        kind,
        what,
    })
}

/// A virtual time in seconds, to the microsecond.
fn seconds(at: Duration) -> String {
    format!("{}.{:06} s", at.as_secs(), at.subsec_micros())
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// `text` on one line (control characters as spaces), cut to `max`
/// characters with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    let mut short: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().nth(max).is_some() {
        short.pop();
        short.push('…');
    }
    short
}

/// `text` safe in HTML element content and in quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{sample, Failure};
    use super::*;

    const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

    #[test]
    fn user_text_is_escaped() {
        let page = sample().to_html("<script>alert(1)</script> & 'run'");
        assert!(!page.contains("<script"), "no script element at all");
        assert!(!page.contains("alert('x')"));
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; \\ &quot;q&quot;")
        );
        assert!(page
            .contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;run&#39;</title>"));
        assert!(!page.contains("<b>"), "a lane name's markup stays text");
        assert!(!page.contains("<now>"), "a fault name's markup stays text");
    }

    #[test]
    fn every_lane_and_the_failure_appear() {
        let timeline = sample();
        let page = timeline.to_html("sample");
        for lane in &timeline.lanes {
            assert!(page.contains(&escape(lane)), "lane {lane:?} is on the page");
        }
        let failure = timeline.failure.as_ref().expect("the sample fails");
        assert!(page.contains(&escape(&failure.message)));
        assert!(page.contains("<p class=\"failure\">Failure at 0.018000 s on node\\1 &lt;b&gt;:"));
        assert!(page.contains("<tr class=\"failure\">"));
        for kind in ["fault", "note", "decision", "power", "recover"] {
            assert!(
                page.contains(&format!("<tr class=\"{kind}\">")),
                "{kind} row"
            );
        }
    }

    #[test]
    fn the_table_is_in_time_order_and_leaves_out_messages() {
        let mut timeline = sample();
        timeline.events.reverse();
        let page = timeline.to_html("reversed");
        let table = &page[page.find("<table>").expect("a table")..];
        let times: Vec<&str> = table
            .split("<td class=\"time\">")
            .skip(1)
            .filter_map(|cell| cell.split('<').next())
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted);
        assert_eq!(times.len(), 6, "five events and the failure, no message");
    }

    #[test]
    fn nothing_is_fetched() {
        let page = sample().to_html("sample");
        let rest = page.replace(SVG_NAMESPACE, "");
        assert!(!rest.contains("http://"));
        assert!(!rest.contains("https://"));
        assert!(!rest.contains("src="));
        assert!(!rest.contains("@import"));
        assert_eq!(
            rest.matches("url(").count(),
            rest.matches("url(#arrow)").count()
        );
    }

    #[test]
    fn odd_timelines_render() {
        let empty = Timeline::default().to_html("");
        assert!(empty.contains("<svg") && empty.contains("0 lanes"));

        let at = Duration::from_secs(5);
        let odd = Timeline {
            lanes: vec!["a".into(), String::new()],
            events: vec![
                Event {
                    at,
                    lane: 7,
                    what: What::Note("lost".into()),
                },
                Event {
                    at,
                    lane: 0,
                    what: What::Message {
                        to: usize::MAX,
                        arrives: at,
                        bytes: 1,
                    },
                },
                Event {
                    at: Duration::MAX,
                    lane: 1,
                    what: What::Message {
                        to: 0,
                        arrives: Duration::ZERO,
                        bytes: 0,
                    },
                },
                Event {
                    at,
                    lane: 1,
                    what: What::PowerCut,
                },
            ],
            end: Duration::ZERO,
            failure: Some(Failure {
                at: Duration::MAX,
                lane: Some(9),
                message: String::new(),
            }),
        };
        let page = odd.to_html("odd");
        assert!(page.contains("2 on unknown lanes, not shown"));
        assert!(!page.contains("lost"));

        let instant = Timeline {
            lanes: vec!["a".into()],
            events: vec![Event {
                at: Duration::ZERO,
                lane: 0,
                what: What::Recover,
            }],
            ..Timeline::default()
        };
        assert!(instant.to_html("zero").contains(">1.0 s</text>"));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(sample().to_html("t"), sample().to_html("t"));
    }

    #[test]
    fn messages_past_the_cap_are_thinned_and_counted() {
        let message = |i: u64| Event {
            at: Duration::from_millis(i),
            lane: (i % 3) as usize,
            what: What::Message {
                to: ((i + 1) % 3) as usize,
                arrives: Duration::from_millis(i + 20),
                bytes: 100,
            },
        };
        let timeline = Timeline {
            lanes: vec!["a".into(), "b".into(), "c".into()],
            events: (0..10_000).map(message).collect(),
            end: Duration::from_secs(10),
            failure: None,
        };
        let page = timeline.to_html("many");
        assert!(page.contains("10000 messages (4000 drawn, 6000 left out)"));
        let arrows = page
            .split("marker-end=\"url(#arrow)\">")
            .nth(1)
            .and_then(|rest| rest.split("</g>").next())
            .expect("the message group");
        assert_eq!(arrows.matches("<line").count(), MAX_MESSAGES_DRAWN);
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
    }

    #[test]
    fn ticks_use_round_steps() {
        assert_eq!(tick_step(70 * NANOS_PER_SECOND), 5 * NANOS_PER_SECOND);
        assert_eq!(tick_step(NANOS_PER_SECOND), 100_000_000);
        assert_eq!(tick_step(1), 1);
        let labels: Vec<String> = ticks(NANOS_PER_SECOND / 2)
            .into_iter()
            .map(|(_, label)| label)
            .collect();
        assert_eq!(labels.first().map(String::as_str), Some("0.00 s"));
        assert_eq!(labels.last().map(String::as_str), Some("0.50 s"));
        assert!(labels.len() <= MAX_TICKS as usize + 1);
        assert_eq!(
            ticks(u128::MAX).len(),
            1 + (u128::MAX / tick_step(u128::MAX)) as usize
        );
    }

    #[test]
    fn labels_in_a_row_do_not_overlap() {
        let mut rows = Rows::new(2);
        assert_eq!(rows.place(0.0, 50.0), Some(0));
        assert_eq!(rows.place(40.0, 90.0), Some(1));
        assert_eq!(rows.place(20.0, 45.0), None);
        assert_eq!(rows.place(100.0, 120.0), Some(0));
    }

    #[test]
    fn shorten_cuts_and_flattens() {
        assert_eq!(shorten("a\nb", 10), "a b");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abcd", 4), "abcd");
        assert_eq!(shorten("", 0), "");
    }

    /// Writes a realistic page to `$TIMELINE_SAMPLE_HTML` (and its trace
    /// JSON to `$TIMELINE_SAMPLE_JSON`, if set), to look at in a browser:
    /// `TIMELINE_SAMPLE_HTML=/tmp/sample.html cargo test --lib
    /// timeline::html::tests::write_sample -- --ignored`.
    #[test]
    #[ignore]
    fn write_sample() {
        let timeline = realistic();
        if let Ok(path) = std::env::var("TIMELINE_SAMPLE_HTML") {
            let page = timeline.to_html("raft_safety seed=4242 strategy=pct(3)");
            std::fs::write(&path, page).expect("write the sample page");
        }
        if let Ok(path) = std::env::var("TIMELINE_SAMPLE_JSON") {
            std::fs::write(&path, timeline.to_chrome_json()).expect("write the sample trace");
        }
    }

    /// About 70 s of a five-node consensus run that ends unsafe.
    fn realistic() -> Timeline {
        let ms = Duration::from_millis;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut events = Vec::new();
        let mut push = |at: u64, lane: usize, what: What| {
            events.push(Event {
                at: ms(at),
                lane,
                what,
            })
        };
        let fault = |name: &str, occurrence| What::Fault {
            name: name.into(),
            occurrence,
        };
        let note = |text: &str| What::Note(text.into());

        for _ in 0..420 {
            let at = next(68_000);
            let from = next(5) as usize;
            let to = (from + 1 + next(4) as usize) % 5;
            let arrives = ms(at + 2 + next(40));
            let bytes = 64 + next(900) as usize;
            push(at, from, What::Message { to, arrives, bytes });
        }
        push(300, 0, note("node 0 leads term 1"));
        push(5_200, 5, fault("partition", 0));
        push(5_210, 1, note("node 1 leads term 2"));
        push(9_800, 2, fault("crash node 2", 0));
        push(14_000, 2, note("node 2 restarts"));
        push(17_500, 3, fault("write error node3", 0));
        push(21_000, 1, note("node 1 leads term 4"));
        push(26_400, 5, fault("partition", 1));
        push(
            26_400,
            5,
            What::Decision("only 'node 2' runs, the rest are held back".into()),
        );
        push(26_410, 4, fault("clock jump node 4 +2s", 0));
        push(31_000, 5, fault("power cut", 0));
        push(31_000, 5, What::PowerCut);
        push(33_500, 5, What::Recover);
        push(33_900, 3, note("node 3 replays 118 entries"));
        push(38_200, 1, note("node 1 leads term 15"));
        push(44_100, 0, fault("drop message", 0));
        push(44_300, 0, fault("drop message", 1));
        push(47_000, 3, fault("torn write node3 wal.log", 0));
        push(51_700, 2, note("node 2 votes for node 1 in term 16"));
        push(55_000, 1, note("node 1 leads term 16"));
        push(60_200, 1, note("node 1 commits index 120"));
        push(64_800, 4, fault("crash node 4", 0));
        push(66_000, 5, note("checking the committed logs"));
        events.sort_by_key(|event| event.at);

        let failed_at = ms(68_412);
        Timeline {
            lanes: ["node 0", "node 1", "node 2", "node 3", "node 4", "runtime"]
                .map(String::from)
                .to_vec(),
            events,
            end: failed_at,
            failure: Some(Failure {
                at: failed_at,
                lane: Some(1),
                message:
                    "UNSAFE: index 120 committed as {term 15} by node 1 and as {term 16} by node 1"
                        .into(),
            }),
        }
    }
}
