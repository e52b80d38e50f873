//! The executor workloads (spawn+join, yields, duplicate wakes, sleepers,
//! sleep loop, ping-pong, spawn tree): our deterministic runtime, the
//! registry's commonware-runtime 0.0.16 and tokio current_thread, side by
//! side in one run, measured in CPU time of the benchmarking thread (see
//! `cpu`).
//!
//! These are the paths every simulation spends its time in, so they show
//! whether the executor is faster than the runtime it replaces, and how it
//! compares with a production executor doing the same work. Each iteration
//! runs a whole workload at full size (see `WORKLOADS` in the crate root);
//! the `results` binary turns the estimates into per-operation numbers and
//! ratios.

use commonware_runtime_benches::cpu::ThreadCpu;
use commonware_runtime_benches::{
    ours, reference, sleep_durations, tokio_ct, tree_tasks, DELIVERIES, MESSAGES, PARKED_TASKS,
    SLEEPERS, SLEEPS, SPAWN_TASKS, TREE_BRANCHING, TREE_DEPTH, WAKES, YIELDS, YIELD_TASKS,
};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use std::time::Duration;

/// A group that runs each side a handful of times: the workloads are large
/// (tens of milliseconds to seconds per iteration), so ten flat samples are
/// plenty and the whole suite stays within minutes on two cores.
fn group<'a>(c: &'a mut Criterion<ThreadCpu>, name: &str) -> BenchmarkGroup<'a, ThreadCpu> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group
}

fn spawn_join(c: &mut Criterion<ThreadCpu>) {
    let sum = SPAWN_TASKS * (SPAWN_TASKS - 1) / 2;
    let mut g = group(c, "spawn_join");
    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::spawn_join(SPAWN_TASKS), sum))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::spawn_join(SPAWN_TASKS), sum))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_ct::spawn_join(SPAWN_TASKS), sum))
    });
    g.finish();
}

fn reschedule(c: &mut Criterion<ThreadCpu>) {
    let total = YIELD_TASKS * YIELDS;
    let mut g = group(c, "reschedule");
    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::yielders(YIELD_TASKS, YIELDS), total))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::yielders(YIELD_TASKS, YIELDS), total))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_ct::yielders(YIELD_TASKS, YIELDS), total))
    });
    g.finish();
}

fn duplicate_wakes(c: &mut Criterion<ThreadCpu>) {
    let total = PARKED_TASKS * DELIVERIES as usize;
    for wakes in WAKES {
        let mut g = group(c, &format!("duplicate_wakes_{wakes}"));
        g.bench_function("ours", |b| {
            b.iter(|| {
                assert_eq!(
                    ours::duplicate_wakes(PARKED_TASKS, DELIVERIES, wakes),
                    total
                )
            })
        });
        g.bench_function("reference", |b| {
            b.iter(|| {
                assert_eq!(
                    reference::duplicate_wakes(PARKED_TASKS, DELIVERIES, wakes),
                    total
                )
            })
        });
        g.bench_function("tokio", |b| {
            b.iter(|| {
                assert_eq!(
                    tokio_ct::duplicate_wakes(PARKED_TASKS, DELIVERIES, wakes),
                    total
                )
            })
        });
        g.finish();
    }
}

fn sleepers(c: &mut Criterion<ThreadCpu>) {
    let durations = sleep_durations(SLEEPERS, 7);
    let mut g = group(c, "sleepers");
    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::sleepers(durations.clone()), SLEEPERS))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::sleepers(durations.clone()), SLEEPERS))
    });
    g.finish();
}

fn sleep_loop(c: &mut Criterion<ThreadCpu>) {
    let mut g = group(c, "sleep_loop");
    g.bench_function("ours", |b| {
        b.iter(|| assert!(ours::sleep_loop(SLEEPS) >= Duration::from_millis(SLEEPS)))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert!(reference::sleep_loop(SLEEPS) >= Duration::from_millis(SLEEPS)))
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion<ThreadCpu>) {
    let last = MESSAGES / 2;
    let mut g = group(c, "ping_pong");
    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::ping_pong(MESSAGES), last))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::ping_pong(MESSAGES), last))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_ct::ping_pong(MESSAGES), last))
    });
    g.finish();
}

fn spawn_tree(c: &mut Criterion<ThreadCpu>) {
    let leaves = TREE_BRANCHING.pow(TREE_DEPTH);
    assert!(tree_tasks(TREE_DEPTH, TREE_BRANCHING) > leaves);
    let mut g = group(c, "spawn_tree");
    g.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::spawn_tree(TREE_DEPTH, TREE_BRANCHING), leaves))
    });
    g.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::spawn_tree(TREE_DEPTH, TREE_BRANCHING), leaves))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_ct::spawn_tree(TREE_DEPTH, TREE_BRANCHING), leaves))
    });
    g.finish();
}

criterion_group!(
    name = runtime;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = spawn_join,
    reschedule,
    duplicate_wakes,
    sleepers,
    sleep_loop,
    ping_pong,
    spawn_tree
);
criterion_main!(runtime);
