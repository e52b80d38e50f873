//! Shrinking a failing schedule to the choices that make it fail.
//!
//! # What this module owns
//! [`shrink_schedule`]: delta debugging (Zeller's ddmin, removal only) over
//! a failing [`Schedule`]'s round entries and random numbers, then per
//! entry, until nothing changes.
//!
//! # Invariants
//! * The result still fails, and no single decision can be dropped or
//!   defaulted, nor one random number zeroed, without losing the failure.
//! * A schedule that does not fail comes back unchanged.

use super::record::{OwnedDecision, Schedule};

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

/// Shrinks a failing schedule: the result still makes `fails` true, and no
/// single decision can be dropped or defaulted, nor one random number
/// zeroed, without losing the failure. `fails(schedule)` should be true on
/// entry (otherwise the schedule is returned unchanged).
///
/// Passes, repeated until nothing changes: ddmin over the round entries
/// (removing an entry makes that round a default round); per entry, stop
/// holding tasks back, list fewer tasks, and move it earlier (dropping the
/// default rounds before it); ddmin over the non-zero random numbers
/// (replacing them with zero); finally trailing zeros are dropped.
pub fn shrink_schedule(schedule: &Schedule, mut fails: impl FnMut(&Schedule) -> bool) -> Schedule {
    if !fails(schedule) {
        return schedule.clone();
    }
    let mut decisions = schedule.to_parts();
    let mut randoms = schedule.randoms().to_vec();
    loop {
        let before = (decisions.clone(), randoms.clone());

        decisions = ddmin(decisions, |candidate| {
            fails(&Schedule::from_parts(candidate, randoms.clone()))
        });

        for i in 0..decisions.len() {
            let mut try_variant = |decisions: &mut Vec<OwnedDecision>,
                                   change: &dyn Fn(&mut Vec<OwnedDecision>)|
             -> bool {
                let mut candidate = decisions.clone();
                change(&mut candidate);
                let ok = fails(&Schedule::from_parts(&candidate, randoms.clone()));
                if ok {
                    *decisions = candidate;
                }
                ok
            };
            if decisions[i].2 {
                try_variant(&mut decisions, &|d| d[i].2 = false);
            }
            let mut j = decisions[i].1.len();
            while j > 0 {
                j -= 1;
                if decisions[i].1.len() > 1 || !decisions[i].2 {
                    try_variant(&mut decisions, &|d| {
                        d[i].1.remove(j);
                    });
                }
            }
            // Move this entry (and everything after it) earlier, dropping
            // default rounds: the whole gap, then halves of it.
            let floor = if i == 0 { 0 } else { decisions[i - 1].0 + 1 };
            let mut gap = decisions[i].0 - floor;
            while gap > 0 {
                let shifted = try_variant(&mut decisions, &|d| {
                    for entry in &mut d[i..] {
                        entry.0 -= gap;
                    }
                });
                gap = if shifted {
                    decisions[i].0 - floor
                } else {
                    gap / 2
                };
            }
        }

        decisions.retain(|(_, order, hold)| *hold || !order.is_empty());

        let nonzero: Vec<usize> = (0..randoms.len()).filter(|&i| randoms[i] != 0).collect();
        let zeroed = |keep: &[usize]| {
            let mut candidate = vec![0; randoms.len()];
            for &i in keep {
                candidate[i] = randoms[i];
            }
            candidate
        };
        let kept = ddmin(nonzero, |keep| {
            fails(&Schedule::from_parts(&decisions, zeroed(keep)))
        });
        let kept = zeroed(&kept);
        randoms = kept;
        while randoms.last() == Some(&0) {
            randoms.pop();
        }

        if (decisions.clone(), randoms.clone()) == before {
            return Schedule::from_parts(&decisions, randoms);
        }
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
    fn shrink_returns_a_passing_schedule_unchanged() {
        let schedule: Schedule = "1:2!".parse().unwrap();
        assert_eq!(shrink_schedule(&schedule, |_| false), schedule);
    }
}
