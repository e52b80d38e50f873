//! The price of a seed: a fresh deterministic runtime per seed, run, its
//! auditor state read, dropped. `seed_empty` runs an empty root (the fixed
//! cost of a runtime); `seed_sweep` runs the small program of a typical
//! seed sweep (10 tasks, each 10 `reschedule()` then a 1 ms sleep). Ours,
//! the registry's commonware-runtime 0.0.16 and tokio current_thread with a
//! paused clock, side by side in one run, in CPU time of the benchmarking
//! thread (see `cpu`).
//!
//! Users sweep hundreds of thousands of seeds over small tests, so this
//! cost, not the per-poll cost, bounds how many seeds a test can afford.
//! Each iteration runs `SEEDS` seeds (0, 1, …), one runtime each; the
//! `results` binary divides by that.

use commonware_runtime_benches::cpu::ThreadCpu;
use commonware_runtime_benches::{ours, reference, tokio_ct, SEEDS, SEED_TASKS, SEED_YIELDS};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use std::time::Duration;

fn group<'a>(c: &'a mut Criterion<ThreadCpu>, name: &str) -> BenchmarkGroup<'a, ThreadCpu> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));
    group
}

fn seed_empty(c: &mut Criterion<ThreadCpu>) {
    let mut g = group(c, "seed_empty");
    g.bench_function("ours", |b| {
        b.iter(|| {
            let states: usize = (0..SEEDS).map(ours::seed_empty).sum();
            assert!(states > 0);
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            let states: usize = (0..SEEDS).map(reference::seed_empty).sum();
            assert!(states > 0);
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            for _ in 0..SEEDS {
                tokio_ct::seed_empty();
            }
        })
    });
    g.finish();
}

fn seed_sweep(c: &mut Criterion<ThreadCpu>) {
    let joined = SEEDS as usize * SEED_TASKS;
    let mut g = group(c, "seed_sweep");
    g.bench_function("ours", |b| {
        b.iter(|| {
            let total: usize = (0..SEEDS)
                .map(|seed| ours::seed_run(seed, SEED_TASKS, SEED_YIELDS))
                .sum();
            assert_eq!(total, joined);
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            let total: usize = (0..SEEDS)
                .map(|seed| reference::seed_run(seed, SEED_TASKS, SEED_YIELDS))
                .sum();
            assert_eq!(total, joined);
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let total: usize = (0..SEEDS)
                .map(|_| tokio_ct::seed_run(SEED_TASKS, SEED_YIELDS))
                .sum();
            assert_eq!(total, joined);
        })
    });
    g.finish();
}

criterion_group!(
    name = seed;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = seed_empty, seed_sweep
);
criterion_main!(seed);
