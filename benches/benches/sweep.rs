//! Seed-sweep throughput: how many seeds per second `deterministic::Sweep`
//! runs a small program (10 tasks, 100 yields each) on one thread and on
//! several, under the default strategy, under PCT, under uniform rounds
//! with hold-backs and under the portfolio (the recommended strategy for
//! bug hunting, which should sweep within 20% of uniform's rate); and the
//! smaller program of the `seed` bench (10 tasks, 10 yields each, then a
//! 1 ms sleep) under the default strategy, where the runtime's own price
//! per seed dominates.
//!
//! A sweep is only useful if it covers many seeds in the time a test may
//! take, so this measures the whole per-seed cost (building a runtime, its
//! registry, running the body, tearing it down), and checks that adding
//! threads adds seeds. The target is 10,000 seeds per second per core.
//! Each iteration sweeps `SEEDS` seeds; criterion reports the rate as
//! elements (seeds) per second.

use commonware_runtime::deterministic::{Config, Strategy, Sweep};
use commonware_runtime_benches::programs;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

const TASKS: usize = 10;
const YIELDS: usize = 100;
const SEEDS: u64 = 2_000;
const SMALL_YIELDS: usize = 10;

fn sweep(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut group = c.benchmark_group("sweep_10x100");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(SEEDS));
    let strategies = [
        ("uniform", Strategy::Uniform),
        (
            "pct3",
            Strategy::Pct {
                depth: 3,
                steps: (TASKS * YIELDS) as u64,
            },
        ),
        (
            "hold",
            Strategy::Hold {
                steps: (TASKS * YIELDS) as u64,
            },
        ),
        (
            "portfolio",
            Strategy::Portfolio {
                steps: (TASKS * YIELDS) as u64,
            },
        ),
    ];
    for (name, strategy) in strategies {
        for threads in [1, cores] {
            let config = Config {
                strategy: strategy.clone(),
                ..Config::default()
            };
            let sweep = Sweep::new(config, 0..SEEDS).threads(threads);
            group.bench_function(format!("{name}/{threads}_threads"), |b| {
                b.iter(|| {
                    let swept = sweep
                        .run(|context| programs::yielding(context, TASKS, YIELDS))
                        .expect("the workload never fails");
                    assert_eq!(swept.seeds, SEEDS);
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("sweep_small");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(SEEDS));
    for threads in [1, cores] {
        let sweep = Sweep::new(Config::default(), 0..SEEDS).threads(threads);
        group.bench_function(format!("uniform/{threads}_threads"), |b| {
            b.iter(|| {
                let swept = sweep
                    .run(|context| programs::yielding_then_sleeping(context, TASKS, SMALL_YIELDS))
                    .expect("the workload never fails");
                assert_eq!(swept.seeds, SEEDS);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
