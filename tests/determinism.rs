//! DESIGN.md §6 invariants 1 and 2: same seed → same run (poll order, virtual
//! time, random numbers, auditor state), also in another process; different
//! seeds → different interleavings.

mod common;

use commonware_runtime::{deterministic::Executor, reschedule, Clock, Runner, Spawner};
use rand::Rng;
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// What a run of the workload produces: (event log, final time, auditor).
type Outcome = (Vec<(usize, u32)>, SystemTime, String);

/// Eight workers that yield, sleep random amounts and draw random numbers,
/// logging every step: any difference in scheduling shows in the log.
fn workload(seed: u64) -> Outcome {
    let (executor, context, auditor) = Executor::seeded(seed);
    let (log, end) = executor.start(async move {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for worker in 0..8 {
            let mut ctx = context.clone();
            let log = log.clone();
            handles.push(context.spawn("worker", async move {
                for _ in 0..4 {
                    let value = ctx.gen_range(0..1000u32);
                    log.lock().unwrap().push((worker, value));
                    if value % 3 == 0 {
                        ctx.sleep(Duration::from_micros(u64::from(value))).await;
                    } else {
                        reschedule().await;
                    }
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        (log, context.current())
    });
    (log, end, auditor.state())
}

#[test]
fn thousand_seeds_repeat_exactly() {
    for seed in 0..1000 {
        assert_eq!(workload(seed), workload(seed), "seed {seed} diverged");
    }
}

#[test]
fn different_seeds_interleave_differently() {
    let runs: Vec<Outcome> = (0..100).map(workload).collect();
    let orders: BTreeSet<Vec<usize>> = runs
        .iter()
        .map(|(log, _, _)| log.iter().map(|(worker, _)| *worker).collect())
        .collect();
    let states: BTreeSet<&String> = runs.iter().map(|(_, _, state)| state).collect();
    assert!(orders.len() > 90, "only {} distinct orders", orders.len());
    assert_eq!(states.len(), 100);
}

#[test]
fn randomness_repeats_per_seed() {
    let draw = |seed| {
        let (executor, mut context, _) = Executor::seeded(seed);
        let before: Vec<u64> = (0..4).map(|_| context.gen()).collect();
        let during =
            executor.start(async move { (0..4).map(|_| context.gen()).collect::<Vec<u64>>() });
        (before, during)
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

const CHILD: &str = "DETERMINISM_CHILD";
const SEEDS: u64 = 50;

fn report() -> String {
    (0..SEEDS)
        .map(|seed| {
            let (log, end, state) = workload(seed);
            let nanos = end.duration_since(UNIX_EPOCH).unwrap().as_nanos();
            format!(
                "seed={seed} steps={} end={nanos} state={state}\n",
                log.len()
            )
        })
        .collect()
}

/// Entry point of the child process (does nothing in a normal test run).
#[test]
fn child_process_entry() {
    if std::env::var_os(CHILD).is_some() {
        print!("BEGIN\n{}END\n", report());
    }
}

#[test]
fn same_seed_same_state_in_another_process() {
    let stdout = common::rerun_in_child("child_process_entry", CHILD);
    let start = stdout.find("BEGIN\n").expect("child printed its report") + 6;
    let end = stdout.find("END\n").expect("child finished its report");
    assert_eq!(&stdout[start..end], report());
}
