//! Recorded schedules: record a run's choices and replay them.
//!
//! # What this module owns
//! * [`Schedule`]: every scheduling choice and random number of a run, kept
//!   sparse. A round is stored only if it departs from the *default round*
//!   (every ready task runs, in ready order); random numbers are stored in
//!   draw order. Its `Display` form is one line (`12:3!,40:2.0;ff`) that
//!   `FromStr` reads back, so a schedule fits in a failure message and can be
//!   pasted into a test.
//! * [`Recorder`]: wraps any scheduler and records what it does.
//! * [`Replay`]: a scheduler that plays a schedule back; past its end it runs
//!   default rounds and returns zeros.
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
//! # Invariants
//! * Entries are sorted by round with no duplicates (`FromStr` rejects
//!   anything else), and rounds are counted per call to
//!   [`Scheduler::schedule`], across `recover` (a [`Recorder`] and a
//!   [`Replay`] both continue their count in [`Scheduler::fork`]).
//! * Replaying a recording of a deterministic program reproduces the run
//!   exactly: same polls, same times, same random numbers, same digest.

use super::Scheduler;
use crate::task::TaskId;
use std::{fmt, str::FromStr, sync::Arc};
use thiserror::Error;

/// Why a schedule's text form could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// A round entry is not `ROUND:SEQ.SEQ...` with an optional `!`.
    #[error("bad round entry `{0}` (expected ROUND:SEQ.SEQ... with an optional trailing `!`)")]
    Entry(String),
    /// Round entries must be strictly increasing.
    #[error("round {0} is not after the previous entry")]
    Order(u64),
    /// A random number is not lowercase or uppercase hex.
    #[error("bad random number `{0}` (expected hex)")]
    Random(String),
}

/// A decision the shrinker can edit: `(round, order, hold)`.
pub(super) type OwnedDecision = (u64, Vec<u64>, bool);

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

/// Every choice of a run that departs from the default, and every random
/// number it drew.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
    tasks: Vec<u64>,
    randoms: Vec<u64>,
}

impl Schedule {
    /// An empty schedule: default rounds and zero random numbers throughout.
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

    /// Human-readable, one decision per line. `label` names a task by
    /// sequence number, where known.
    pub fn describe(&self, label: impl Fn(u64) -> Option<String>) -> String {
        let name = |seq: u64| match label(seq) {
            Some(label) => format!("#{seq} '{label}'"),
            None => format!("#{seq}"),
        };
        let nonzero = self.randoms.iter().filter(|&&r| r != 0).count();
        let mut out = format!(
            "{} decision(s) (every other round runs all ready tasks in ready order), {} random number(s) ({} non-zero)",
            self.entries.len(),
            self.randoms.len(),
            nonzero
        );
        for decision in self.decisions() {
            let tasks: Vec<String> = decision.order.iter().map(|&s| name(s)).collect();
            let line = match (decision.order.is_empty(), decision.hold) {
                (true, _) => "no task runs".to_string(),
                (false, true) => format!(
                    "only {} run(s), the rest are held back",
                    tasks.join(" then ")
                ),
                (false, false) => format!("{} run(s) first", tasks.join(" then ")),
            };
            out.push_str(&format!("\n  round {}: {line}", decision.round));
        }
        out
    }

    pub(super) fn from_parts(decisions: &[OwnedDecision], randoms: Vec<u64>) -> Self {
        let mut schedule = Schedule {
            randoms,
            ..Self::default()
        };
        for (round, order, hold) in decisions {
            schedule.push_round(*round, order, *hold);
        }
        schedule
    }

    pub(super) fn to_parts(&self) -> Vec<OwnedDecision> {
        self.decisions()
            .map(|d| (d.round, d.order.to_vec(), d.hold))
            .collect()
    }
}

/// The one-line form: `ROUND:SEQ.SEQ[!],...;HEX,HEX...`.
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
        if !self.randoms.is_empty() {
            f.write_str(";")?;
            for (i, value) in self.randoms.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{value:x}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        let (rounds, randoms) = text.split_once(';').unwrap_or((text, ""));
        let mut schedule = Schedule::new();
        for entry in rounds.split(',').filter(|e| !e.is_empty()) {
            let bad = || ParseError::Entry(entry.to_string());
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
            if schedule
                .entries
                .last()
                .is_some_and(|last| last.round >= round)
            {
                return Err(ParseError::Order(round));
            }
            schedule.push_round(round, &order, hold);
        }
        for value in randoms.split(',').filter(|v| !v.is_empty()) {
            let parsed = u64::from_str_radix(value, 16)
                .map_err(|_| ParseError::Random(value.to_string()))?;
            schedule.push_random(parsed);
        }
        Ok(schedule)
    }
}

/// Wraps a scheduler and records every choice it makes and every random
/// number it hands out.
pub struct Recorder {
    inner: Box<dyn Scheduler>,
    schedule: Schedule,
    round: u64,
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
            before: Vec::new(),
            positions: Vec::new(),
            order: Vec::new(),
        }
    }

    /// The schedule recorded so far.
    pub fn recording(&self) -> &Schedule {
        &self.schedule
    }

    fn position(&self, seq: u64) -> usize {
        let at = self
            .positions
            .binary_search_by_key(&seq, |&(s, _)| s)
            .expect("the scheduler only reorders the ready set");
        self.positions[at].1
    }
}

impl Scheduler for Recorder {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn schedule(&mut self, ready: &mut [TaskId]) -> usize {
        self.before.clear();
        self.before.extend_from_slice(ready);
        let run = self.inner.schedule(ready).min(ready.len());
        let round = self.round;
        self.round += 1;
        self.order.clear();
        if run < ready.len() {
            self.order.extend(ready[..run].iter().map(TaskId::seq));
            self.schedule.push_round(round, &self.order, true);
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
        self.schedule.push_round(round, &self.order, false);
        run
    }

    fn next_u64(&mut self) -> u64 {
        let value = self.inner.next_u64();
        self.schedule.push_random(value);
        value
    }

    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(Self {
            inner: self.inner.fork(),
            schedule: self.schedule.clone(),
            round: self.round,
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
    round: u64,
    /// Next entry to apply.
    entry: usize,
    /// Start of that entry's tasks.
    start: usize,
    random: usize,
}

impl Replay {
    /// A scheduler that replays `schedule` from its start.
    pub fn new(schedule: impl Into<Arc<Schedule>>) -> Self {
        Self {
            schedule: schedule.into(),
            round: 0,
            entry: 0,
            start: 0,
            random: 0,
        }
    }
}

impl Scheduler for Replay {
    fn name(&self) -> String {
        format!("replay({})", self.schedule)
    }

    fn schedule(&mut self, ready: &mut [TaskId]) -> usize {
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
        assert!(matches!("3".parse::<Schedule>(), Err(ParseError::Entry(_))));
        assert!(matches!(
            "3:".parse::<Schedule>(),
            Err(ParseError::Entry(_))
        ));
        assert!(matches!(
            "x:1".parse::<Schedule>(),
            Err(ParseError::Entry(_))
        ));
        assert_eq!("3:1,3:2".parse::<Schedule>(), Err(ParseError::Order(3)));
        assert!(matches!(
            ";zz".parse::<Schedule>(),
            Err(ParseError::Random(_))
        ));
    }

    #[test]
    fn recording_keeps_the_shortest_equivalent_entry() {
        let mut recorder = Recorder::new(Box::new(Uniform::new(3)));
        for _ in 0..50 {
            let mut ready = ids(&[4, 9, 1, 7]);
            assert_eq!(recorder.schedule(&mut ready), 4);
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
                let run = recorder.schedule(&mut ready);
                expected.push((seqs(&ready[..run]), recorder.next_u64()));
            }
            let mut replay = Replay::new(recorder.recording().clone());
            for (round, (ran, random)) in expected.into_iter().enumerate() {
                let mut ready = ids(&[0, 1, 2, 3, 4][..(round % 5 + 1)]);
                let run = replay.schedule(&mut ready);
                assert_eq!(seqs(&ready[..run]), ran, "round {round}");
                assert_eq!(replay.next_u64(), random);
            }
            let mut ready = ids(&[2, 1]);
            assert_eq!(replay.schedule(&mut ready), 2, "past the end: default");
            assert_eq!(replay.next_u64(), 0);
        }
    }

    #[test]
    fn replay_skips_tasks_that_are_not_ready() {
        let schedule: Schedule = "0:8.2!,1:8!,2:3.1".parse().unwrap();
        let mut replay = Replay::new(schedule);
        let mut ready = ids(&[1, 2, 3]);
        assert_eq!(replay.schedule(&mut ready), 1);
        assert_eq!(seqs(&ready), [2, 1, 3]);
        let mut ready = ids(&[1, 2]);
        assert_eq!(replay.schedule(&mut ready), 0, "nothing listed is ready");
        let mut ready = ids(&[1, 2, 3]);
        assert_eq!(replay.schedule(&mut ready), 3);
        assert_eq!(seqs(&ready), [3, 1, 2]);
        assert!(replay.name().starts_with("replay(0:8.2!"));
    }

    #[test]
    fn fork_continues_recording_and_replay() {
        let mut recorder = Recorder::new(Box::new(Pct::new(1, 2, 10)));
        let mut ready = ids(&[0, 1]);
        recorder.schedule(&mut ready);
        let mut fork = recorder.fork();
        let mut ready = ids(&[0, 1]);
        fork.schedule(&mut ready);
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
