//! The consensus example (`examples/consensus/`) as a test: its modules are
//! compiled here too, so their unit tests run, and the harness itself runs
//! for a handful of seeds. Runs are shortened to stay fast in debug builds.

#[path = "../examples/consensus/check.rs"]
mod check;
#[path = "../examples/consensus/cli.rs"]
mod cli;
#[path = "../examples/consensus/log.rs"]
mod log;
#[path = "../examples/consensus/node.rs"]
mod node;
#[path = "../examples/consensus/sim.rs"]
mod sim;
#[path = "../examples/consensus/wire.rs"]
mod wire;

use sim::{Bug, Faults, Options, Outcome};
use std::time::Duration;

fn options(faults: Faults, bug: Option<Bug>) -> Options {
    Options {
        duration: Duration::from_secs(30),
        faults,
        bug,
        ..Options::default()
    }
}

#[test]
fn safe_and_live_under_faults() {
    let options = options(Faults::ALL, None);
    let mut crashes = 0;
    let mut points = commonware_runtime::deterministic::Points::default();
    for seed in 0..4 {
        let report = sim::run(&options, seed);
        assert_eq!(report.outcome, Outcome::Pass, "{report}");
        assert!(report.committed > 50, "{report}");
        assert!(report.simulated >= options.duration + options.settle);
        crashes += report.injected.crashes;
        points.merge(report.points);
    }
    assert!(crashes > 0, "no node was crashed");
    // The protocol's and the driver's reachability points are tallied
    // across runtimes (crashes and recoveries included).
    let names: Vec<String> = points.points().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "commit during a partition",
            "recovery after a torn write",
            "two candidates in one term"
        ],
        "{points}"
    );
    assert!(points.points()[0].seeds > 0, "{points}");
    assert_eq!(points.runs(), 4);
}

#[test]
fn no_faults_no_crashes() {
    let report = sim::run(&options(Faults::NONE, None), 3);
    assert_eq!(report.outcome, Outcome::Pass, "{report}");
    assert_eq!(report.injected, sim::Injected::default());
    // One leader for the whole run.
    assert_eq!(report.terms, 1, "{report}");
}

#[test]
fn a_seed_replays_exactly() {
    let options = options(Faults::ALL, None);
    let first = sim::run(&options, 11);
    let again = sim::run(&options, 11);
    assert_eq!(first.auditor, again.auditor);
    assert_eq!(first.simulated, again.simulated);
    assert_eq!(
        (first.committed, first.terms, first.injected),
        (again.committed, again.terms, again.injected)
    );
    assert_ne!(first.auditor, sim::run(&options, 12).auditor);
    let traced = Options {
        trace: true,
        ..options
    };
    assert_eq!(sim::run(&traced, 11).auditor, first.auditor);
}

#[test]
fn skip_fsync_breaks_safety_on_some_seed_and_replays() {
    // About 8% of seeds catch the bug (79 of 0..1000 when measured), so
    // a window of 300 misses with odds near 1e-11, however a change to the
    // scheduler moves which seeds those are; the search stops at the first.
    let options = options(Faults::ALL, Some(Bug::SkipFsync));
    let failing = (0..300)
        .map(|seed| sim::run(&options, seed))
        .find(|report| matches!(report.outcome, Outcome::Unsafe(_)))
        .expect("no seed in 0..300 caught the planted bug");
    let replay = sim::run(&options, failing.seed);
    assert_eq!(replay.outcome, failing.outcome);
    assert_eq!(replay.auditor, failing.auditor);
}
