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

use commonware_runtime::deterministic::{self, Config, Sweep};
use sim::{Bug, Faults, Options, Outcome};
use std::time::Duration;

/// The config of one seed's run.
fn seeded(seed: u64) -> Config {
    Config {
        seed,
        ..Config::default()
    }
}

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
    let each =
        Sweep::new(Config::default(), 0..4).each_harness(|config| sim::run(&options, config));
    let mut crashes = 0;
    for (_, result) in &each.runs {
        let report = result.as_ref().unwrap();
        assert_eq!(report.outcome, Outcome::Pass, "{report}");
        assert!(report.committed > 50, "{report}");
        assert!(report.simulated >= options.duration + options.settle);
        crashes += report.injected.crashes;
    }
    assert!(crashes > 0, "no node was crashed");
    // The protocol's and the driver's reachability points are tallied
    // across runtimes (crashes and recoveries included).
    let points = each.points;
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
    let report = sim::run(&options(Faults::NONE, None), seeded(3));
    assert_eq!(report.outcome, Outcome::Pass, "{report}");
    assert_eq!(report.injected, sim::Injected::default());
    // One leader for the whole run.
    assert_eq!(report.terms, 1, "{report}");
}

#[test]
fn a_seed_replays_exactly() {
    let options = options(Faults::ALL, None);
    let first = sim::run(&options, seeded(11));
    let again = sim::run(&options, seeded(11));
    assert_eq!(first.auditor, again.auditor);
    assert_eq!(first.simulated, again.simulated);
    assert_eq!(
        (first.committed, first.terms, first.injected),
        (again.committed, again.terms, again.injected)
    );
    assert_ne!(first.auditor, sim::run(&options, seeded(12)).auditor);
    let traced = Options {
        trace: true,
        ..options
    };
    assert_eq!(sim::run(&traced, seeded(11)).auditor, first.auditor);
}

#[test]
fn skip_fsync_breaks_safety_on_some_seed_and_replays() {
    // About 6% of seeds catch the bug (6 of 0..100 when measured), so
    // a window of 300 misses with odds near 1e-8, however a change to the
    // scheduler moves which seeds those are; the search stops at the first.
    let options = options(Faults::ALL, Some(Bug::SkipFsync));
    let failing = (0..300)
        .map(|seed| sim::run(&options, seeded(seed)))
        .find(|report| matches!(report.outcome, Outcome::Unsafe(_)))
        .expect("no seed in 0..300 caught the planted bug");
    let replay = sim::run(&options, seeded(failing.seed));
    assert_eq!(replay.outcome, failing.outcome);
    assert_eq!(replay.auditor, failing.auditor);
}

#[test]
fn a_skip_fsync_failure_shrinks_to_a_few_faults_and_replays() {
    let options = options(Faults::ALL, Some(Bug::SkipFsync));
    let harness = |config| sim::judged(sim::run(&options, config));
    let failure = Sweep::new(Config::default(), 0..300)
        .run_harness(harness)
        .expect_err("no seed in 0..300 caught the planted bug");
    assert!(failure.message.starts_with("UNSAFE"), "{failure}");
    let recorded = failure.schedule.as_ref().unwrap();
    let shrunk = deterministic::shrink_harness_with(&Config::default(), recorded, harness, |f| {
        f.message.starts_with("UNSAFE")
    })
    .unwrap();
    let faults = shrunk.schedule.faults().count();
    assert!(faults <= 10, "{faults} faults left:\n{}", shrunk.story);
    assert!(faults < recorded.faults().count());
    assert!(
        shrunk.story.contains("FAILED    UNSAFE"),
        "{}",
        shrunk.story
    );
    let text = cli::replay_schedule(&shrunk.schedule, &options);
    let pasted = text
        .split_once(" --replay '")
        .unwrap()
        .1
        .trim_end_matches('\'');
    let pasted: deterministic::Schedule = pasted.parse().unwrap();
    match deterministic::replay_harness(&Config::default(), &pasted, harness) {
        Err(deterministic::ReplayError::Failed(again)) => {
            assert!(again.same_failure(&shrunk.failure), "{again}")
        }
        Err(other) => panic!("{other}"),
        Ok(report) => panic!("passed: {report}"),
    }
}
