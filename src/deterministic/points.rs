//! Reachability points: what [`Assertions`](crate::Assertions) records in a
//! run, and what a sweep makes of many runs.
//!
//! # What this module owns
//! * [`PointKind`] and the per-run record a runtime keeps while it collects
//!   (`RunPoints`): which points the run declared and which it reached.
//! * [`Point`] and [`Points`], the tally over many runs: for every point, in
//!   how many seeds it was reached and the lowest such seed, so a rare state
//!   can be replayed from its seed. [`Sweep`](super::Sweep) fills one per
//!   sweep ([`Swept::points`](super::Swept::points)); a harness that runs
//!   seeds itself fills one with [`Points::add`].
//!
//! # How a point becomes known
//! `sometimes(name, condition)` and `always(name, condition)` declare
//! their point whenever they are evaluated, true or not, so a point whose
//! condition never held is still listed (as a gap). `reached(name)` runs
//! only where the point is reached, so it is known only to runs that reach
//! it: a `reached` point no run reaches is absent from the table, not a
//! gap. Declare it with `sometimes(name, false)` at start-up to have it
//! listed either way.
//!
//! # Invariants
//! * Points never change a run: they draw no random numbers, take no
//!   scheduling decision and are not audited, so the auditor state and the
//!   schedule of a run are the same whether or not anything collects its
//!   points (and a replay matches the sweep that found a seed).
//! * When nothing collects (every run not started by a sweep or
//!   [`Context::collect_points`](super::Context::collect_points)), a point
//!   costs one atomic load.
//! * The tally does not depend on which thread ran which seed: counts add
//!   up and the first seed is the lowest.

use parking_lot::Mutex;
use std::{collections::BTreeMap, fmt};

/// What kind of point a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PointKind {
    /// `sometimes(name, condition)`: reached when the condition held.
    Sometimes,
    /// `reached(name)`: reached when the call ran.
    Reached,
    /// `always(name, condition)`: reached when it was checked (a false
    /// condition fails the run).
    Always,
}

impl fmt::Display for PointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PointKind::Sometimes => "sometimes",
            PointKind::Reached => "reached",
            PointKind::Always => "always",
        })
    }
}

/// The points one run declared, in declaration order, and whether each was
/// reached.
#[derive(Default)]
pub(super) struct RunPoints {
    points: Mutex<Vec<(&'static str, PointKind, bool)>>,
}

impl RunPoints {
    /// Declares `name` (once), and marks it reached if `hit`.
    pub(super) fn note(&self, name: &'static str, kind: PointKind, hit: bool) {
        let mut points = self.points.lock();
        match points
            .iter_mut()
            .find(|(known, k, _)| *k == kind && (std::ptr::eq(*known, name) || *known == name))
        {
            Some(point) => point.2 |= hit,
            None => points.push((name, kind, hit)),
        }
    }

    /// The points so far: `(name, kind, reached)`.
    pub(super) fn snapshot(&self) -> Vec<(&'static str, PointKind, bool)> {
        self.points.lock().clone()
    }
}

/// One point over many seeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// The name the program gave it.
    pub name: String,
    /// How it was declared.
    pub kind: PointKind,
    /// Seeds in which it was reached (for `always`: checked).
    pub seeds: u64,
    /// The lowest seed that reached it: replay it to get there.
    pub first_seed: Option<u64>,
}

impl Point {
    /// Whether no seed reached it.
    pub fn is_gap(&self) -> bool {
        self.seeds == 0
    }
}

/// The tally of points over many runs, by name and kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Points {
    /// By name, then by kind.
    points: BTreeMap<String, [Option<Tally>; 3]>,
    runs: u64,
}

/// One point's count: `(seeds that reached it, the lowest of them)`.
type Tally = (u64, Option<u64>);

/// A kind's place in a point's entry.
fn slot(kind: PointKind) -> usize {
    match kind {
        PointKind::Sometimes => 0,
        PointKind::Reached => 1,
        PointKind::Always => 2,
    }
}

const KINDS: [PointKind; 3] = [PointKind::Sometimes, PointKind::Reached, PointKind::Always];

/// Adds `(seeds, first)` into `entry`.
fn fold(entry: &mut Option<Tally>, seeds: u64, first: Option<u64>) {
    let (count, lowest) = entry.get_or_insert((0, None));
    *count += seeds;
    *lowest = match (*lowest, first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

impl Points {
    /// Adds the points of the run with `seed` that `context` belongs to
    /// (collected once [`Context::collect_points`](super::Context::collect_points)
    /// was called, or by a sweep). A context that collected nothing adds a
    /// run with no points.
    pub fn add(&mut self, seed: u64, context: &super::Context) {
        let run = context.points();
        self.add_run(seed, &run);
    }

    pub(super) fn add_run(&mut self, seed: u64, run: &[(&'static str, PointKind, bool)]) {
        self.runs += 1;
        for &(name, kind, hit) in run {
            // Names are few and repeat in every run: allocate only the first
            // time one is seen.
            let entry = match self.points.get_mut(name) {
                Some(entry) => entry,
                None => self.points.entry(name.to_string()).or_default(),
            };
            let (seeds, first) = if hit { (1, Some(seed)) } else { (0, None) };
            fold(&mut entry[slot(kind)], seeds, first);
        }
    }

    /// Folds another tally into this one.
    pub fn merge(&mut self, other: Points) {
        self.runs += other.runs;
        for (name, kinds) in other.points {
            let entry = self.points.entry(name).or_default();
            for (mine, theirs) in entry.iter_mut().zip(kinds) {
                if let Some((seeds, first)) = theirs {
                    fold(mine, seeds, first);
                }
            }
        }
    }

    /// Runs added.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Every point, by name (then kind, if one name was used as two).
    pub fn points(&self) -> Vec<Point> {
        let mut points = Vec::new();
        for (name, kinds) in &self.points {
            for (kind, entry) in KINDS.into_iter().zip(kinds) {
                if let Some((seeds, first_seed)) = *entry {
                    points.push(Point {
                        name: name.clone(),
                        kind,
                        seeds,
                        first_seed,
                    });
                }
            }
        }
        points
    }

    /// The points no run reached.
    pub fn gaps(&self) -> Vec<Point> {
        self.points().into_iter().filter(Point::is_gap).collect()
    }
}

/// A table: one line per point with its kind, seed count and first seed;
/// points never reached are marked `GAP`.
impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let points = self.points();
        let width = points.iter().map(|p| p.name.len()).max().unwrap_or(0);
        write!(f, "reachability points over {} seed(s):", self.runs)?;
        if points.is_empty() {
            return write!(f, " none declared");
        }
        for point in points {
            write!(
                f,
                "\n  {:<9} {:<width$}  {:>8} seed(s)",
                point.kind.to_string(),
                point.name,
                point.seeds
            )?;
            match point.first_seed {
                Some(seed) => write!(f, ", first seed {seed}")?,
                None => write!(f, "  GAP: never reached")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_up_whatever_the_order() {
        let run = RunPoints::default();
        run.note("a", PointKind::Sometimes, false);
        run.note("a", PointKind::Sometimes, true);
        run.note("b", PointKind::Sometimes, false);
        run.note("c", PointKind::Reached, true);
        let snapshot = run.snapshot();
        let (mut one, mut two) = (Points::default(), Points::default());
        one.add_run(7, &snapshot);
        two.add_run(3, &snapshot);
        two.add_run(9, &snapshot[1..]);
        one.merge(two);
        assert_eq!(one.runs(), 3);
        let points = one.points();
        assert_eq!(points.len(), 3);
        assert_eq!((points[0].seeds, points[0].first_seed), (2, Some(3)));
        assert_eq!(one.gaps().len(), 1);
        assert_eq!(one.gaps()[0].name, "b");
        let table = one.to_string();
        assert!(table.contains("GAP"), "{table}");
        assert!(table.contains("first seed 3"), "{table}");
    }
}
