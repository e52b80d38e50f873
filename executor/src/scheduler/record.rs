//! Recorded schedules: record a run's choices and replay them.
//!
//! # What this module owns
//! * [`Schedule`]: every scheduling choice, random number and fired fault
//!   of a run, kept sparse. A round is stored only if it departs from the
//!   *default round* (every ready task runs, in ready order); random numbers
//!   are stored in draw order; a fault is stored only if it fired, by name
//!   and occurrence (`"crash node 2"` the 3rd time the run asked about it),
//!   with the seed of its parameters. Its `Display` form is one line
//!   (`12:3!,40:2.0;ff,0*40,1;crash node 2#3=9c`, a run of one random
//!   value as `VALUE*COUNT`) that `FromStr` reads back, so a
//!   schedule fits in a failure message and can be pasted into a test.
//! * [`Recorder`]: wraps any scheduler and records what it does.
//! * [`Replay`]: a scheduler that plays a schedule back; past its end it runs
//!   default rounds and returns zeros, and a fault fires only if the
//!   schedule lists it. It also notes where a run stops matching the
//!   schedule ([`Replay::mismatch`]).
//!
//! Shrinking a failing schedule is `shrink.rs`'s.
//!
//! # What a recorded round means
//! A round entry is `(round, order, hold)`: the listed tasks that are ready
//! run first, in the listed order; the other ready tasks then run in ready
//! order, or, if `hold` is set, are held back to a later round. Entries name
//! tasks by sequence number (spawn order), not by position, so a choice keeps
//! its meaning when the shrinker changes earlier rounds. Recording keeps the
//! shortest entry with the same effect, so `"#2 first"` is stored as `[2]`,
//! not as a whole permutation.
//!
//! # Why faults are keyed by name and occurrence
//! A fault that is removed from a schedule (the shrinker's main move) must
//! not change any other decision. Faults are therefore not random numbers
//! in the draw-order list: the `k`-th time the run asks about `name`, the
//! fault fires on replay exactly if `name#k` is listed, and its parameters
//! come from the listed seed. Removing one entry leaves every other fault,
//! and every random number, where it was.
//!
//! # Invariants
//! * Entries are sorted by round with no duplicates, a fault is listed at
//!   most once (`FromStr` rejects anything else, saying at which byte), and
//!   rounds and fault occurrences are counted across `recover` (a
//!   [`Recorder`] and a [`Replay`] both continue their counts in
//!   [`Scheduler::fork`]).
//! * Replaying a recording of a deterministic program reproduces the run
//!   exactly: same polls, same times, same random numbers, same faults,
//!   same digest; and [`Replay::mismatch`] is `None` at its end.

use super::Scheduler;
use crate::task::TaskId;
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::{self, Write as _},
    str::FromStr,
    sync::Arc,
};
use thiserror::Error;

/// Most random numbers a schedule's text may list (`0*N` must not ask for
/// more memory than any recorded run could fill).
const MAX_RANDOMS: usize = 1 << 28;

/// Why a schedule's text form could not be read; `at` is the byte offset
/// in the text where the bad part starts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// A round entry is not `ROUND:SEQ.SEQ...` with an optional `!`.
    #[error(
        "at byte {at}: bad round entry `{text}` (expected ROUND:SEQ.SEQ... with an optional trailing `!`)"
    )]
    Entry { at: usize, text: String },
    /// Round entries must be strictly increasing.
    #[error("at byte {at}: round {round} is not after the previous entry")]
    Order { at: usize, round: u64 },
    /// A random number is not hex (with an optional `*COUNT` repeat).
    #[error(
        "at byte {at}: bad random number `{text}` (expected HEX or HEX*COUNT, at most 2^28 in all)"
    )]
    Random { at: usize, text: String },
    /// A fault entry is not `NAME#OCCURRENCE=HEX`, or repeats one.
    #[error(
        "at byte {at}: bad fault `{text}` (expected NAME#OCCURRENCE=HEX, each at most once; write `%`, `,`, `;`, `#` and `=` in a name as %25, %2C, %3B, %23, %3D)"
    )]
    Fault { at: usize, text: String },
    /// More than the three sections `ROUNDS;RANDOMS;FAULTS`.
    #[error("at byte {at}: unexpected `;` (a schedule has at most three sections: ROUNDS;RANDOMS;FAULTS)")]
    Sections { at: usize },
}

/// A decision the shrinker can edit: `(round, order, hold)`.
pub(super) type OwnedDecision = (u64, Vec<u64>, bool);

/// A fault the shrinker can remove: `(name, occurrence, parameter seed)`.
pub(super) type OwnedFault = (Arc<str>, u64, u64);

/// The faults a [`Replay`] fires, by name: `(occurrence, parameter seed)`,
/// sorted.
type ListedFaults = BTreeMap<Arc<str>, Vec<(u64, u64)>>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    round: u64,
    /// End of this entry's tasks in `Schedule::tasks`.
    end: usize,
    hold: bool,
}

/// One recorded round (see the module docs for its meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Which round (0 is the first call to `schedule`).
    pub round: u64,
    /// Sequence numbers of the tasks that run first, in order.
    pub order: &'a [u64],
    /// Whether the ready tasks not listed are held back.
    pub hold: bool,
}

/// One recorded fault that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultDecision<'a> {
    /// The fault's name, as the runtime or the harness asked about it.
    pub name: &'a str,
    /// Which time the run asked about `name` (0 is the first).
    pub occurrence: u64,
    /// The seed the fault's parameters are drawn from.
    pub param: u64,
}

/// Every choice of a run that departs from the default, every random
/// number it drew and every fault that fired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
    tasks: Vec<u64>,
    randoms: Vec<u64>,
    /// In the order they fired.
    faults: Vec<OwnedFault>,
}

impl Schedule {
    /// An empty schedule: default rounds, zero random numbers and no
    /// faults throughout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The non-default rounds, in round order.
    pub fn decisions(&self) -> impl Iterator<Item = Decision<'_>> {
        let mut start = 0;
        self.entries.iter().map(move |entry| {
            let order = &self.tasks[start..entry.end];
            start = entry.end;
            Decision {
                round: entry.round,
                order,
                hold: entry.hold,
            }
        })
    }

    /// The recorded random numbers, in draw order.
    pub fn randoms(&self) -> &[u64] {
        &self.randoms
    }

    /// The faults that fired, in the order they fired.
    pub fn faults(&self) -> impl Iterator<Item = FaultDecision<'_>> {
        self.faults
            .iter()
            .map(|(name, occurrence, param)| FaultDecision {
                name,
                occurrence: *occurrence,
                param: *param,
            })
    }

    /// Appends a round entry. Entries must come in increasing round order;
    /// an entry with an empty order and no hold (a default round) is not
    /// stored.
    pub fn push_round(&mut self, round: u64, order: &[u64], hold: bool) {
        if order.is_empty() && !hold {
            return;
        }
        debug_assert!(self.entries.last().is_none_or(|last| last.round < round));
        self.tasks.extend_from_slice(order);
        self.entries.push(Entry {
            round,
            end: self.tasks.len(),
            hold,
        });
    }

    /// Appends a random number.
    pub fn push_random(&mut self, value: u64) {
        self.randoms.push(value);
    }

    /// Drops the trailing zero random numbers: a replay draws zeros past
    /// the end of the list anyway, so the schedule means the same.
    pub fn trim_randoms(&mut self) {
        while self.randoms.last() == Some(&0) {
            self.randoms.pop();
        }
    }

    /// Appends a fault that fired: the `occurrence`-th time the run asked
    /// about `name`, with parameter seed `param`.
    pub fn push_fault(&mut self, name: impl Into<Arc<str>>, occurrence: u64, param: u64) {
        self.faults.push((name.into(), occurrence, param));
    }

    /// Human-readable, one decision per line. `label` names a task by
    /// sequence number, where known.
    pub fn describe(&self, label: impl Fn(u64) -> Option<String>) -> String {
        let nonzero = self.randoms.iter().filter(|&&r| r != 0).count();
        let mut out = format!(
            "{} fault(s), {} decision(s) (every other round runs all ready tasks in ready order), {} random number(s) ({} non-zero)",
            self.faults.len(),
            self.entries.len(),
            self.randoms.len(),
            nonzero
        );
        for fault in self.faults() {
            let _ = write!(
                out,
                "\n  fault `{}` fires (occurrence {})",
                fault.name, fault.occurrence
            );
        }
        for decision in self.decisions() {
            let _ = write!(
                out,
                "\n  round {}: {}",
                decision.round,
                decision.describe(&label)
            );
        }
        out
    }

    pub(super) fn from_parts(
        decisions: &[OwnedDecision],
        randoms: Vec<u64>,
        faults: Vec<OwnedFault>,
    ) -> Self {
        let mut schedule = Schedule {
            randoms,
            faults,
            ..Self::default()
        };
        for (round, order, hold) in decisions {
            schedule.push_round(*round, order, *hold);
        }
        schedule
    }

    pub(super) fn to_parts(&self) -> (Vec<OwnedDecision>, Vec<u64>, Vec<OwnedFault>) {
        let decisions = self
            .decisions()
            .map(|d| (d.round, d.order.to_vec(), d.hold))
            .collect();
        (decisions, self.randoms.clone(), self.faults.clone())
    }
}

impl Decision<'_> {
    /// The decision in words, e.g. `only #4 'node2' runs, the rest are
    /// held back`; `label` names a task by sequence number, where known.
    pub fn describe(&self, label: impl Fn(u64) -> Option<String>) -> String {
        let name = |seq: u64| match label(seq) {
            Some(label) => format!("#{seq} '{label}'"),
            None => format!("#{seq}"),
        };
        let tasks: Vec<String> = self.order.iter().map(|&s| name(s)).collect();
        match (self.order.is_empty(), self.hold) {
            (true, _) => "no task runs".to_string(),
            (false, true) => format!(
                "only {} run(s), the rest are held back",
                tasks.join(" then ")
            ),
            (false, false) => format!("{} run(s) first", tasks.join(" then ")),
        }
    }
}

/// Characters a fault name cannot hold as they are in the text form.
const ESCAPED: &[char] = &['%', ',', ';', '#', '='];

fn escape_name(name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for c in name.chars() {
        if ESCAPED.contains(&c) || c.is_control() {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                write!(f, "%{byte:02X}")?;
            }
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

fn unescape_name(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'%' => {
                let hex = [rest.next()?, rest.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b',' | b';' | b'#' | b'=' => return None,
            byte => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).ok()
}

/// The one-line form: `ROUND:SEQ.SEQ[!],...;HEX,HEX...;NAME#K=HEX,...`
/// (trailing empty sections left out).
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, decision) in self.decisions().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:", decision.round)?;
            for (j, seq) in decision.order.iter().enumerate() {
                if j > 0 {
                    f.write_str(".")?;
                }
                write!(f, "{seq}")?;
            }
            if decision.hold {
                f.write_str("!")?;
            }
        }
        if !self.randoms.is_empty() || !self.faults.is_empty() {
            f.write_str(";")?;
            // Runs of one value (the zeros a shrunk schedule is full of)
            // as `VALUE*COUNT`.
            let mut rest = &self.randoms[..];
            let mut first = true;
            while let Some(&value) = rest.first() {
                let run = rest.iter().take_while(|&&v| v == value).count();
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                match run {
                    1 | 2 => {
                        write!(f, "{value:x}")?;
                        rest = &rest[1..];
                    }
                    run => {
                        write!(f, "{value:x}*{run}")?;
                        rest = &rest[run..];
                    }
                }
            }
        }
        if !self.faults.is_empty() {
            f.write_str(";")?;
            for (i, fault) in self.faults().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                escape_name(fault.name, f)?;
                write!(f, "#{}={:x}", fault.occurrence, fault.param)?;
            }
        }
        Ok(())
    }
}

/// `text` split at `sep`, each piece with its byte offset (plus `base`).
fn pieces(text: &str, sep: char, base: usize) -> impl Iterator<Item = (usize, &str)> {
    let mut at = base;
    text.split(sep).map(move |piece| {
        let start = at;
        at += piece.len() + sep.len_utf8();
        (start, piece)
    })
}

fn parse_round(at: usize, entry: &str) -> Result<(u64, Vec<u64>, bool), ParseError> {
    let bad = || ParseError::Entry {
        at,
        text: entry.to_string(),
    };
    let (round, rest) = entry.split_once(':').ok_or_else(bad)?;
    let round: u64 = round.parse().map_err(|_| bad())?;
    let (tasks, hold) = match rest.strip_suffix('!') {
        Some(tasks) => (tasks, true),
        None => (rest, false),
    };
    let order = tasks
        .split('.')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u64>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if order.is_empty() && !hold {
        return Err(bad());
    }
    Ok((round, order, hold))
}

fn parse_fault(at: usize, entry: &str) -> Result<(String, u64, u64), ParseError> {
    let bad = || ParseError::Fault {
        at,
        text: entry.to_string(),
    };
    let (name, rest) = entry.rsplit_once('#').ok_or_else(bad)?;
    let (occurrence, param) = rest.split_once('=').ok_or_else(bad)?;
    let name = unescape_name(name).ok_or_else(bad)?;
    let occurrence = occurrence.parse().map_err(|_| bad())?;
    let param = u64::from_str_radix(param, 16).map_err(|_| bad())?;
    Ok((name, occurrence, param))
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let lead = text.len() - text.trim_start().len();
        let text = text.trim();
        let mut sections = pieces(text, ';', lead);
        let mut schedule = Schedule::new();
        if let Some((base, rounds)) = sections.next() {
            for (at, entry) in pieces(rounds, ',', base).filter(|(_, e)| !e.is_empty()) {
                let (round, order, hold) = parse_round(at, entry)?;
                if schedule
                    .entries
                    .last()
                    .is_some_and(|last| last.round >= round)
                {
                    return Err(ParseError::Order { at, round });
                }
                schedule.push_round(round, &order, hold);
            }
        }
        if let Some((base, randoms)) = sections.next() {
            for (at, entry) in pieces(randoms, ',', base).filter(|(_, v)| !v.is_empty()) {
                let bad = || ParseError::Random {
                    at,
                    text: entry.to_string(),
                };
                let (value, count) = match entry.split_once('*') {
                    Some((value, count)) => (value, count.parse::<usize>().map_err(|_| bad())?),
                    None => (entry, 1),
                };
                let value = u64::from_str_radix(value, 16).map_err(|_| bad())?;
                if count == 0 || schedule.randoms.len() + count > MAX_RANDOMS {
                    return Err(bad());
                }
                schedule.randoms.extend(std::iter::repeat_n(value, count));
            }
        }
        if let Some((base, faults)) = sections.next() {
            let mut seen = BTreeSet::new();
            for (at, entry) in pieces(faults, ',', base).filter(|(_, e)| !e.is_empty()) {
                let (name, occurrence, param) = parse_fault(at, entry)?;
                if !seen.insert((name.clone(), occurrence)) {
                    return Err(ParseError::Fault {
                        at,
                        text: entry.to_string(),
                    });
                }
                schedule.push_fault(name, occurrence, param);
            }
        }
        if let Some((at, _)) = sections.next() {
            return Err(ParseError::Sections { at: at - 1 });
        }
        Ok(schedule)
    }
}

/// How often a run has asked about each fault name so far; `ask` counts
/// one more and returns the occurrence number (0 for the first ask), the
/// numbering a [`Schedule`] names faults by. Names are formatted into a
/// reused buffer, so a name seen before costs no allocation.
#[derive(Clone, Debug, Default)]
pub struct Occurrences {
    asked: BTreeMap<Arc<str>, u64>,
    buffer: String,
}

impl Occurrences {
    /// Counts an ask about `name`: the name, shared, and its occurrence.
    pub fn ask(&mut self, name: &dyn fmt::Display) -> (Arc<str>, u64) {
        self.buffer.clear();
        let _ = write!(self.buffer, "{name}");
        if let Some((key, count)) = self.asked.get_key_value(self.buffer.as_str()) {
            let (key, occurrence) = (key.clone(), *count);
            *self
                .asked
                .get_mut(self.buffer.as_str())
                .expect("just found") += 1;
            return (key, occurrence);
        }
        let key: Arc<str> = self.buffer.as_str().into();
        self.asked.insert(key.clone(), 1);
        (key, 0)
    }

    /// How often `name` was asked about.
    pub fn count(&self, name: &str) -> u64 {
        self.asked.get(name).copied().unwrap_or(0)
    }
}

/// Wraps a scheduler and records every choice it makes, every random
/// number it hands out and every fault that fires.
pub struct Recorder {
    inner: Box<dyn Scheduler>,
    schedule: Schedule,
    round: u64,
    /// Virtual time of each stored round entry (for the story of a run).
    times: Vec<u64>,
    occurrences: Occurrences,
    /// The ready set as the loop passed it in (reused every round).
    before: Vec<TaskId>,
    /// `(seq, position in before)`, sorted by seq (reused every round).
    positions: Vec<(u64, usize)>,
    order: Vec<u64>,
}

impl Recorder {
    /// Records `inner`.
    pub fn new(inner: Box<dyn Scheduler>) -> Self {
        Self {
            inner,
            schedule: Schedule::new(),
            round: 0,
            times: Vec::new(),
            occurrences: Occurrences::default(),
            before: Vec::new(),
            positions: Vec::new(),
            order: Vec::new(),
        }
    }

    /// The schedule recorded so far.
    pub fn recording(&self) -> &Schedule {
        &self.schedule
    }

    /// The virtual time (nanoseconds) of each round entry of
    /// [`Recorder::recording`], in the same order.
    pub fn decision_times(&self) -> &[u64] {
        &self.times
    }

    fn position(&self, seq: u64) -> usize {
        let at = self
            .positions
            .binary_search_by_key(&seq, |&(s, _)| s)
            .expect("the scheduler only reorders the ready set");
        self.positions[at].1
    }

    fn push_round(&mut self, round: u64, hold: bool, now: u64) {
        let stored = self.schedule.entries.len();
        self.schedule.push_round(round, &self.order, hold);
        if self.schedule.entries.len() > stored {
            self.times.push(now);
        }
    }
}

impl Scheduler for Recorder {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn schedule(&mut self, ready: &mut [TaskId], now: u64) -> usize {
        self.before.clear();
        self.before.extend_from_slice(ready);
        let run = self.inner.schedule(ready, now).min(ready.len());
        let round = self.round;
        self.round += 1;
        self.order.clear();
        if run < ready.len() {
            self.order.extend(ready[..run].iter().map(TaskId::seq));
            self.push_round(round, true, now);
            return run;
        }
        // Everything runs: keep the shortest prefix after which the rest
        // follow in ready order.
        self.positions.clear();
        self.positions
            .extend(self.before.iter().enumerate().map(|(i, id)| (id.seq(), i)));
        self.positions.sort_unstable();
        let mut prefix = ready.len().saturating_sub(1);
        while prefix > 0
            && self.position(ready[prefix - 1].seq()) < self.position(ready[prefix].seq())
        {
            prefix -= 1;
        }
        self.order.extend(ready[..prefix].iter().map(TaskId::seq));
        self.push_round(round, false, now);
        run
    }

    fn next_u64(&mut self) -> u64 {
        let value = self.inner.next_u64();
        self.schedule.push_random(value);
        value
    }

    fn fault(&mut self, name: &dyn fmt::Display, p: f64) -> Option<u64> {
        let param = self.inner.fault(name, p);
        let (name, occurrence) = self.occurrences.ask(name);
        if let Some(param) = param {
            self.schedule.push_fault(name, occurrence, param);
        }
        param
    }

    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(Self {
            inner: self.inner.fork(),
            schedule: self.schedule.clone(),
            round: self.round,
            times: self.times.clone(),
            occurrences: self.occurrences.clone(),
            before: Vec::new(),
            positions: Vec::new(),
            order: Vec::new(),
        })
    }
}

/// Plays a [`Schedule`] back.
#[derive(Clone)]
pub struct Replay {
    schedule: Arc<Schedule>,
    /// The listed faults by name: `(occurrence, param)`, sorted.
    faults: Arc<ListedFaults>,
    occurrences: Occurrences,
    round: u64,
    /// Next entry to apply.
    entry: usize,
    /// Start of that entry's tasks.
    start: usize,
    random: usize,
    /// The first place the run departed from the schedule, if it did.
    departed: Option<String>,
}

impl Replay {
    /// A scheduler that replays `schedule` from its start.
    pub fn new(schedule: impl Into<Arc<Schedule>>) -> Self {
        let schedule = schedule.into();
        let mut faults = ListedFaults::new();
        for (name, occurrence, param) in &schedule.faults {
            faults
                .entry(name.clone())
                .or_default()
                .push((*occurrence, *param));
        }
        for list in faults.values_mut() {
            list.sort_unstable();
        }
        Self {
            schedule,
            faults: Arc::new(faults),
            occurrences: Occurrences::default(),
            round: 0,
            entry: 0,
            start: 0,
            random: 0,
            departed: None,
        }
    }

    /// Where the run so far stops matching the schedule, in words, or
    /// `None` if everything the schedule lists happened: each listed round
    /// came and its listed tasks were ready, each listed fault was asked
    /// about, and the run drew at least as many random numbers as listed.
    /// Meaningful at the end of a run; a schedule of another program (or
    /// of this program before a change) fails this.
    pub fn mismatch(&self) -> Option<String> {
        if let Some(departed) = &self.departed {
            return Some(departed.clone());
        }
        if let Some(entry) = self.schedule.entries.get(self.entry) {
            return Some(format!(
                "round {} never came: the run ended after {} rounds",
                entry.round, self.round
            ));
        }
        for (name, list) in self.faults.iter() {
            let asked = self.occurrences.count(name);
            if let Some(&(occurrence, _)) = list.iter().find(|(k, _)| *k >= asked) {
                return Some(format!(
                    "fault `{name}` occurrence {occurrence} never came: the run asked about `{name}` {asked} time(s)"
                ));
            }
        }
        let listed = self.schedule.randoms.len();
        if self.random < listed {
            return Some(format!(
                "the run drew {} random number(s), the schedule lists {listed}",
                self.random
            ));
        }
        None
    }
}

impl Scheduler for Replay {
    fn name(&self) -> String {
        format!("replay({})", self.schedule)
    }

    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        let round = self.round;
        self.round += 1;
        let Some(entry) = self.schedule.entries.get(self.entry) else {
            return ready.len();
        };
        if entry.round != round {
            return ready.len();
        }
        let order = &self.schedule.tasks[self.start..entry.end];
        self.entry += 1;
        self.start = entry.end;
        let mut placed = 0;
        for &seq in order {
            if let Some(at) = ready[placed..].iter().position(|id| id.seq() == seq) {
                ready[placed..=placed + at].rotate_right(1);
                placed += 1;
            } else if self.departed.is_none() {
                self.departed = Some(format!(
                    "round {round}: the schedule runs task #{seq}, which is not ready (ready: {})",
                    ready
                        .iter()
                        .map(|id| format!("#{}", id.seq()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        if entry.hold {
            placed
        } else {
            ready.len()
        }
    }

    fn next_u64(&mut self) -> u64 {
        let value = self.schedule.randoms.get(self.random).copied().unwrap_or(0);
        self.random += 1;
        value
    }

    fn fault(&mut self, name: &dyn fmt::Display, _p: f64) -> Option<u64> {
        let (name, occurrence) = self.occurrences.ask(name);
        let list = self.faults.get(&name)?;
        let at = list.binary_search_by_key(&occurrence, |&(k, _)| k).ok()?;
        Some(list[at].1)
    }

    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pct, Uniform};

    fn ids(seqs: &[u64]) -> Vec<TaskId> {
        seqs.iter().map(|&s| TaskId::new(s as u32, s)).collect()
    }

    fn seqs(ready: &[TaskId]) -> Vec<u64> {
        ready.iter().map(TaskId::seq).collect()
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let mut schedule = Schedule::new();
        schedule.push_round(3, &[2, 0], false);
        schedule.push_round(7, &[5], true);
        schedule.push_round(9, &[], true);
        schedule.push_round(11, &[], false);
        schedule.push_random(255);
        schedule.push_random(0);
        let text = schedule.to_string();
        assert_eq!(text, "3:2.0,7:5!,9:!;ff,0");
        assert_eq!(text.parse::<Schedule>(), Ok(schedule));
        assert_eq!("".parse::<Schedule>(), Ok(Schedule::new()));
        assert_eq!(";1".parse::<Schedule>().unwrap().randoms(), [1]);
        assert_eq!(
            "3".parse::<Schedule>(),
            Err(ParseError::Entry {
                at: 0,
                text: "3".into()
            })
        );
        assert!(matches!(
            "3:".parse::<Schedule>(),
            Err(ParseError::Entry { .. })
        ));
        assert!(matches!(
            "1:2, x:1".parse::<Schedule>(),
            Err(ParseError::Entry { at: 4, .. })
        ));
        assert_eq!(
            "3:1,3:2".parse::<Schedule>(),
            Err(ParseError::Order { at: 4, round: 3 })
        );
        assert_eq!(
            "  ;1,zz".parse::<Schedule>(),
            Err(ParseError::Random {
                at: 5,
                text: "zz".into()
            })
        );
    }

    #[test]
    fn any_text_parses_or_is_refused_and_replays_without_panicking() {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(16);
        let valid = "3:2.0,7:5!,9:!;ff,0*4,1;crash node 2#4=9c,b%2Cc#0=1";
        let alphabet = b"0123456789abcdefxz:;,.!#=*% ";
        for _ in 0..20_000 {
            let mut text = valid.as_bytes().to_vec();
            for _ in 0..1 + rng.next_u32() % 4 {
                let at = rng.next_u32() as usize % (text.len() + 1);
                match rng.next_u32() % 3 {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 => text.insert(at, alphabet[rng.next_u32() as usize % alphabet.len()]),
                    _ => text.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&text);
            match text.parse::<Schedule>() {
                Ok(schedule) => {
                    assert_eq!(
                        schedule.to_string().parse::<Schedule>(),
                        Ok(schedule.clone())
                    );
                    let mut replay = Replay::new(schedule);
                    for round in 0..12 {
                        replay.schedule(&mut ids(&[0, 2, 5, 7]), round);
                        replay.fault(&"crash node 2", 0.5);
                        replay.next_u64();
                    }
                    let _ = replay.mismatch();
                }
                Err(error) => assert!(error.to_string().starts_with("at byte "), "{error}"),
            }
        }
    }

    #[test]
    fn runs_of_one_random_value_are_written_once() {
        let mut schedule = Schedule::new();
        for value in [5, 0, 0, 0, 0, 7, 7, 1, 1, 1] {
            schedule.push_random(value);
        }
        assert_eq!(schedule.to_string(), ";5,0*4,7,7,1*3");
        assert_eq!(schedule.to_string().parse::<Schedule>(), Ok(schedule));
        for bad in [";0*0", ";0*x", ";0*268435457", ";zz*2"] {
            assert!(
                matches!(
                    bad.parse::<Schedule>(),
                    Err(ParseError::Random { at: 1, .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn faults_round_trip_with_escaped_names() {
        let mut schedule = Schedule::new();
        schedule.push_round(1, &[3], true);
        schedule.push_fault("crash node 2", 4, 0x9c);
        schedule.push_fault("odd,;#=%\nname", 0, 0);
        schedule.push_fault("écrit", 7, u64::MAX);
        let text = schedule.to_string();
        assert_eq!(
            text,
            "1:3!;;crash node 2#4=9c,odd%2C%3B%23%3D%25%0Aname#0=0,écrit#7=ffffffffffffffff"
        );
        assert_eq!(text.parse::<Schedule>(), Ok(schedule.clone()));
        let faults: Vec<_> = schedule.faults().map(|f| (f.name, f.occurrence)).collect();
        assert_eq!(faults[0], ("crash node 2", 4));
        let only_faults = ";;a#0=1";
        assert_eq!(
            only_faults.parse::<Schedule>().unwrap().to_string(),
            only_faults
        );
        for (bad, at) in [
            (";;a#0=1,b", 8),
            (";;a=1", 2),
            (";;a#x=1", 2),
            (";;a#0=zz", 2),
            (";;a#0=1,a#0=2", 8),
            (";;bad%zzname#0=1", 2),
            (";;bad%ffname#0=1", 2),
        ] {
            assert_eq!(
                bad.parse::<Schedule>(),
                Err(ParseError::Fault {
                    at,
                    text: bad[at..].split(',').next().unwrap().into()
                }),
                "{bad}"
            );
        }
        assert_eq!(
            "1:2;;a#0=1;x".parse::<Schedule>(),
            Err(ParseError::Sections { at: 10 })
        );
        let text = schedule.describe(|_| None);
        assert!(text.starts_with("3 fault(s), 1 decision(s)"), "{text}");
        assert!(
            text.contains("fault `crash node 2` fires (occurrence 4)"),
            "{text}"
        );
    }

    #[test]
    fn recorded_faults_replay_by_name_and_occurrence() {
        let mut recorder = Recorder::new(Box::new(Uniform::new(9)));
        let mut fired = Vec::new();
        for i in 0..200 {
            let name = if i % 2 == 0 { "even" } else { "odd" };
            fired.push(recorder.fault(&name, 0.1));
        }
        assert!(recorder.fault(&"always", 1.0).is_some());
        let schedule = recorder.recording().clone();
        assert_eq!(
            schedule.faults().count(),
            fired.iter().flatten().count() + 1
        );
        let replay = |schedule: Schedule| {
            let mut replay = Replay::new(schedule);
            let got: Vec<_> = (0..200)
                .map(|i| replay.fault(&if i % 2 == 0 { "even" } else { "odd" }, 0.1))
                .collect();
            (got, replay.fault(&"always", 1.0), replay.mismatch())
        };
        assert_eq!(
            replay(schedule.clone()),
            (
                fired.clone(),
                Some(schedule.faults().last().unwrap().param),
                None
            )
        );
        // Removing one fault changes that one decision and nothing else.
        let first = schedule.faults().next().unwrap();
        let mut without = Schedule::new();
        for fault in schedule.faults().skip(1) {
            without.push_fault(fault.name, fault.occurrence, fault.param);
        }
        let (got, _, mismatch) = replay(without);
        let changed: Vec<usize> = (0..200).filter(|&i| got[i] != fired[i]).collect();
        let index = 2 * first.occurrence as usize + usize::from(first.name == "odd");
        assert_eq!(changed, [index]);
        assert_eq!(mismatch, None);
    }

    #[test]
    fn a_schedule_of_another_program_says_where_it_stops_matching() {
        let schedule: Schedule = "0:5,9:1;a,b;crash#2=1".parse().unwrap();
        let mut replay = Replay::new(schedule.clone());
        let mut ready = ids(&[1, 2]);
        replay.schedule(&mut ready, 0);
        assert_eq!(
            replay.mismatch().unwrap(),
            "round 0: the schedule runs task #5, which is not ready (ready: #1 #2)"
        );
        let mut replay = Replay::new(schedule.clone());
        let mut ready = ids(&[5]);
        replay.schedule(&mut ready, 0);
        assert_eq!(
            replay.mismatch().unwrap(),
            "round 9 never came: the run ended after 1 rounds"
        );
        for _ in 0..9 {
            replay.schedule(&mut ids(&[1]), 0);
        }
        replay.fault(&"crash", 0.5);
        assert_eq!(
            replay.mismatch().unwrap(),
            "fault `crash` occurrence 2 never came: the run asked about `crash` 1 time(s)"
        );
        replay.fault(&"crash", 0.5);
        assert_eq!(replay.fault(&"crash", 0.5), Some(1));
        assert_eq!(
            replay.mismatch().unwrap(),
            "the run drew 0 random number(s), the schedule lists 2"
        );
        replay.next_u64();
        replay.next_u64();
        assert_eq!(replay.mismatch(), None);
    }

    #[test]
    fn recording_keeps_the_shortest_equivalent_entry() {
        let mut recorder = Recorder::new(Box::new(Uniform::new(3)));
        for _ in 0..50 {
            let mut ready = ids(&[4, 9, 1, 7]);
            assert_eq!(recorder.schedule(&mut ready, 0), 4);
        }
        let schedule = recorder.recording().clone();
        for decision in schedule.decisions() {
            assert!(!decision.hold);
            assert!(
                decision.order.len() < 4,
                "the last task never needs listing"
            );
        }
        assert!(
            schedule.decisions().count() > 40,
            "most shuffles are not the identity"
        );
    }

    #[test]
    fn replay_reproduces_every_choice_and_number() {
        for inner in [
            Box::new(Uniform::new(5)) as Box<dyn Scheduler>,
            Box::new(Pct::new(5, 3, 30)),
        ] {
            let mut recorder = Recorder::new(inner);
            let mut expected = Vec::new();
            for round in 0..40u64 {
                let mut ready = ids(&[0, 1, 2, 3, 4][..(round % 5 + 1) as usize]);
                let run = recorder.schedule(&mut ready, 0);
                expected.push((seqs(&ready[..run]), recorder.next_u64()));
            }
            let mut replay = Replay::new(recorder.recording().clone());
            for (round, (ran, random)) in expected.into_iter().enumerate() {
                let mut ready = ids(&[0, 1, 2, 3, 4][..(round % 5 + 1)]);
                let run = replay.schedule(&mut ready, 0);
                assert_eq!(seqs(&ready[..run]), ran, "round {round}");
                assert_eq!(replay.next_u64(), random);
            }
            let mut ready = ids(&[2, 1]);
            assert_eq!(replay.schedule(&mut ready, 0), 2, "past the end: default");
            assert_eq!(replay.next_u64(), 0);
        }
    }

    #[test]
    fn replay_skips_tasks_that_are_not_ready() {
        let schedule: Schedule = "0:8.2!,1:8!,2:3.1".parse().unwrap();
        let mut replay = Replay::new(schedule);
        let mut ready = ids(&[1, 2, 3]);
        assert_eq!(replay.schedule(&mut ready, 0), 1);
        assert_eq!(seqs(&ready), [2, 1, 3]);
        let mut ready = ids(&[1, 2]);
        assert_eq!(replay.schedule(&mut ready, 0), 0, "nothing listed is ready");
        let mut ready = ids(&[1, 2, 3]);
        assert_eq!(replay.schedule(&mut ready, 0), 3);
        assert_eq!(seqs(&ready), [3, 1, 2]);
        assert!(replay.name().starts_with("replay(0:8.2!"));
    }

    #[test]
    fn fork_continues_recording_and_replay() {
        let mut recorder = Recorder::new(Box::new(Pct::new(1, 2, 10)));
        let mut ready = ids(&[0, 1]);
        recorder.schedule(&mut ready, 0);
        let mut fork = recorder.fork();
        let mut ready = ids(&[0, 1]);
        fork.schedule(&mut ready, 0);
        let recording = fork.downcast_ref::<Recorder>().unwrap().recording();
        assert_eq!(recording.decisions().count(), 2);
        assert_eq!(recording.decisions().nth(1).unwrap().round, 1);
        assert_eq!(fork.name(), "pct(2, steps=10)");
    }

    /// Runs five tasks that yield and draw random numbers under `scheduler`;
    /// returns the digest and the recording, if any.
    fn run(scheduler: Box<dyn Scheduler>) -> (String, Option<Schedule>) {
        use crate::{CoreConfig, RunLoop};
        use std::task::Poll;
        let exec = RunLoop::new(CoreConfig {
            start: 0,
            cycle: 1_000,
            deadline: None,
            scheduler,
        });
        let core = exec.core().clone();
        let c = core.clone();
        let root = async move {
            for _ in 0..5 {
                let c2 = c.clone();
                c.spawn("worker", async move {
                    for _ in 0..4 {
                        c2.next_u64();
                        let mut yielded = false;
                        std::future::poll_fn(|cx| {
                            if std::mem::replace(&mut yielded, true) {
                                Poll::Ready(())
                            } else {
                                cx.waker().wake_by_ref();
                                Poll::Pending
                            }
                        })
                        .await;
                    }
                });
            }
            c.sleep_until(50_000).await;
        };
        assert!(exec.run("root", root).is_ok());
        (core.digest(), core.recording())
    }

    #[test]
    fn replaying_a_recorded_run_reproduces_its_digest() {
        for inner in [
            Box::new(Uniform::new(8)) as Box<dyn Scheduler>,
            Box::new(Pct::new(8, 3, 20)),
            Box::new(crate::FuzzInput::new(vec![3, 1, 4, 1, 5, 9, 2, 6])),
        ] {
            let (plain, none) = run(inner.fork());
            assert!(none.is_none());
            let (recorded, schedule) = run(Box::new(Recorder::new(inner)));
            assert_eq!(plain, recorded, "recording changes nothing");
            let schedule = schedule.unwrap();
            let (replayed, _) = run(Box::new(Replay::new(schedule.clone())));
            assert_eq!(replayed, recorded);
            let text: Schedule = schedule.to_string().parse().unwrap();
            assert_eq!(run(Box::new(Replay::new(text))).0, recorded);
        }
    }
}
