//! Shrinking a failing schedule to the faults and choices that make it fail.
//!
//! # What this module owns
//! [`shrink_schedule`]: delta debugging (Zeller's ddmin, removal only) over
//! a failing [`Schedule`]'s faults, round entries and random numbers, then
//! per entry, until nothing changes.
//!
//! # Invariants
//! * The result still fails, and no single fault can be removed, no
//!   decision dropped or defaulted, nor one random number zeroed, without
//!   losing the failure (as far as `fails` says: a caller with a budget
//!   answers `false` once it is spent, which ends the search early).
//! * A schedule that does not fail comes back unchanged.
//! * The search is deterministic: the same schedule and the same answers
//!   give the same result.

use super::record::{OwnedDecision, OwnedFault, Schedule};

/// Removes as many items as possible while `keeps` holds (Zeller's ddmin,
/// removal only): first large chunks, then smaller ones, down to single
/// items. `keeps(items)` is assumed true on entry.
fn ddmin<T: Clone>(mut items: Vec<T>, mut keeps: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut chunk = (items.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut at = 0;
        while at < items.len() {
            let end = (at + chunk).min(items.len());
            let candidate: Vec<T> = items[..at].iter().chain(&items[end..]).cloned().collect();
            if keeps(&candidate) {
                items = candidate;
                removed = true;
            } else {
                at = end;
            }
        }
        if chunk == 1 && !removed {
            return items;
        }
        if !removed || chunk > 1 {
            chunk = (chunk / 2).max(1);
        }
    }
}

/// The parts of a schedule being shrunk.
#[derive(Clone, PartialEq, Eq)]
struct Parts {
    decisions: Vec<OwnedDecision>,
    randoms: Vec<u64>,
    faults: Vec<OwnedFault>,
}

impl Parts {
    fn schedule(&self) -> Schedule {
        Schedule::from_parts(&self.decisions, self.randoms.clone(), self.faults.clone())
    }
}

/// Shrinks a failing schedule: the result still makes `fails` true, and no
/// single fault can be removed, no decision dropped or defaulted, nor one
/// random number zeroed, without losing the failure. `fails(schedule)`
/// should be true on entry (otherwise the schedule is returned unchanged).
///
/// Passes, repeated until nothing changes: ddmin over the faults (a removed
/// fault does not fire on replay, and nothing else moves); ddmin over the
/// round entries (removing an entry makes that round a default round); per
/// entry, stop holding tasks back, list fewer tasks, and move it earlier
/// (dropping the default rounds before it); ddmin over the non-zero random
/// numbers (replacing them with zero); finally trailing zeros are dropped.
pub fn shrink_schedule(schedule: &Schedule, mut fails: impl FnMut(&Schedule) -> bool) -> Schedule {
    if !fails(schedule) {
        return schedule.clone();
    }
    let (decisions, randoms, faults) = schedule.to_parts();
    let mut parts = Parts {
        decisions,
        randoms,
        faults,
    };
    loop {
        let before = parts.clone();
        parts.faults = ddmin(parts.faults.clone(), |faults| {
            fails(
                &Parts {
                    faults: faults.to_vec(),
                    ..parts.clone()
                }
                .schedule(),
            )
        });
        parts.decisions = ddmin(parts.decisions.clone(), |decisions| {
            fails(
                &Parts {
                    decisions: decisions.to_vec(),
                    ..parts.clone()
                }
                .schedule(),
            )
        });
        simplify_decisions(&mut parts, &mut fails);
        zero_randoms(&mut parts, &mut fails);
        if parts == before {
            return parts.schedule();
        }
    }
}

/// Per entry: stop holding tasks back, list fewer tasks, move it earlier.
fn simplify_decisions(parts: &mut Parts, fails: &mut impl FnMut(&Schedule) -> bool) {
    for i in 0..parts.decisions.len() {
        let mut try_variant = |parts: &mut Parts, change: &dyn Fn(&mut Vec<OwnedDecision>)| {
            let mut candidate = parts.clone();
            change(&mut candidate.decisions);
            let ok = fails(&candidate.schedule());
            if ok {
                *parts = candidate;
            }
            ok
        };
        if parts.decisions[i].2 {
            try_variant(parts, &|d| d[i].2 = false);
        }
        let mut j = parts.decisions[i].1.len();
        while j > 0 {
            j -= 1;
            if parts.decisions[i].1.len() > 1 || !parts.decisions[i].2 {
                try_variant(parts, &|d| {
                    d[i].1.remove(j);
                });
            }
        }
        // Move this entry (and everything after it) earlier, dropping
        // default rounds: the whole gap, then halves of it.
        let floor = if i == 0 {
            0
        } else {
            parts.decisions[i - 1].0 + 1
        };
        let mut gap = parts.decisions[i].0 - floor;
        while gap > 0 {
            let shifted = try_variant(parts, &|d| {
                for entry in &mut d[i..] {
                    entry.0 -= gap;
                }
            });
            gap = if shifted {
                parts.decisions[i].0 - floor
            } else {
                gap / 2
            };
        }
    }
    parts
        .decisions
        .retain(|(_, order, hold)| *hold || !order.is_empty());
}

/// ddmin over the non-zero random numbers (a removed one becomes zero),
/// then trailing zeros dropped.
fn zero_randoms(parts: &mut Parts, fails: &mut impl FnMut(&Schedule) -> bool) {
    let randoms = parts.randoms.clone();
    let nonzero: Vec<usize> = (0..randoms.len()).filter(|&i| randoms[i] != 0).collect();
    let zeroed = |keep: &[usize]| {
        let mut candidate = vec![0; randoms.len()];
        for &i in keep {
            candidate[i] = randoms[i];
        }
        candidate
    };
    let kept = ddmin(nonzero, |keep| {
        fails(
            &Parts {
                randoms: zeroed(keep),
                ..parts.clone()
            }
            .schedule(),
        )
    });
    parts.randoms = zeroed(&kept);
    while parts.randoms.last() == Some(&0) {
        parts.randoms.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_a_minimal_subset() {
        let items: Vec<u32> = (0..100).collect();
        let mut tests = 0;
        let kept = ddmin(items, |c| {
            tests += 1;
            c.contains(&17) && c.contains(&63)
        });
        assert_eq!(kept, [17, 63]);
        assert!(tests < 100, "{tests} tests");
    }

    #[test]
    fn shrink_keeps_only_the_decisive_choices() {
        // "Fails" when task 3 is held back in some round in 40..60 and the
        // third random number is odd.
        let fails = |s: &Schedule| {
            s.decisions()
                .any(|d| (40..60).contains(&d.round) && d.hold && !d.order.contains(&3))
                && s.randoms().get(2).is_some_and(|r| r % 2 == 1)
        };
        let mut schedule = Schedule::new();
        for round in 0..100 {
            schedule.push_round(round, &[round % 5, 1, 2], round % 3 == 0);
        }
        for r in 0..20 {
            schedule.push_random(r * 7 + 1);
        }
        assert!(fails(&schedule));
        let shrunk = shrink_schedule(&schedule, fails);
        assert!(fails(&shrunk));
        assert_eq!(shrunk.decisions().count(), 1);
        let decision = shrunk.decisions().next().unwrap();
        assert_eq!(decision.order.len(), 1);
        assert_eq!(decision.round, 40, "moved as early as the failure allows");
        assert_eq!(shrunk.randoms(), [0, 0, 15]);
        let text = shrunk.describe(|s| (s == decision.order[0]).then(|| "writer".into()));
        assert!(text.contains("round 40: only #"), "{text}");
        assert!(text.contains("'writer'"), "{text}");
    }

    #[test]
    fn shrink_removes_every_fault_the_failure_does_not_need() {
        // "Fails" when `crash b` fired on its third ask and some partition
        // fired, whatever else did.
        let fails = |s: &Schedule| {
            s.faults().any(|f| f.name == "crash b" && f.occurrence == 2)
                && s.faults().any(|f| f.name.starts_with("partition"))
        };
        let mut schedule = Schedule::new();
        for k in 0..30 {
            schedule.push_fault(
                ["crash a", "crash b", "partition x", "partition y"][k % 4],
                k as u64 / 4,
                k as u64,
            );
        }
        assert!(fails(&schedule));
        let mut runs = 0;
        let shrunk = shrink_schedule(&schedule, |s| {
            runs += 1;
            fails(s)
        });
        let left: Vec<_> = shrunk.faults().map(|f| (f.name, f.occurrence)).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&("crash b", 2)), "{left:?}");
        assert!(left.iter().any(|(name, _)| name.starts_with("partition")));
        assert!(runs < 60, "{runs} runs");
        // The same input shrinks to the same result.
        assert_eq!(shrink_schedule(&schedule, fails), shrunk);
    }

    #[test]
    fn shrink_returns_a_passing_schedule_unchanged() {
        let schedule: Schedule = "1:2!".parse().unwrap();
        assert_eq!(shrink_schedule(&schedule, |_| false), schedule);
    }
}
