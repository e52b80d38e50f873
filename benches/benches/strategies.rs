//! Sweep cost per strategy, in CPU time of the sweeping thread (so other
//! load on the machine does not count): a one-thread `Sweep` of the sweep
//! bench's program (10 tasks, 100 yields each) under uniform, PCT, hold and
//! the portfolio. The portfolio, the recommended strategy for bug hunting,
//! should sweep within 20% of uniform's rate; criterion reports seeds per
//! second of CPU time.

use commonware_runtime::{
    deterministic::{Config, Context, Strategy, Sweep},
    reschedule, Spawner,
};
use commonware_runtime_benches::cpu::ThreadCpu;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

const TASKS: usize = 10;
const YIELDS: usize = 100;
const SEEDS: u64 = 1_000;

async fn workload(context: Context) {
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            context.spawn("worker", async {
                for _ in 0..YIELDS {
                    reschedule().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("worker");
    }
}

fn strategies(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("sweep_cpu_10x100");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(SEEDS));
    let steps = (TASKS * YIELDS) as u64;
    for (name, strategy) in [
        ("uniform", Strategy::Uniform),
        ("pct3", Strategy::Pct { depth: 3, steps }),
        ("hold", Strategy::Hold { steps }),
        ("portfolio", Strategy::Portfolio { steps }),
    ] {
        let config = Config {
            strategy,
            ..Config::default()
        };
        let sweep = Sweep::new(config, 0..SEEDS).threads(1);
        group.bench_function(name, |b| {
            b.iter(|| {
                let swept = sweep.run(workload).expect("the workload never fails");
                assert_eq!(swept.seeds, SEEDS);
            })
        });
    }
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = strategies
);
criterion_main!(benches);
