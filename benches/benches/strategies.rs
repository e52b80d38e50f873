//! Sweep cost per strategy, in CPU time of the sweeping thread (so other
//! load on the machine does not count): one-thread `Sweep`s under uniform,
//! PCT, hold and the portfolio of two programs: the sweep bench's (10
//! tasks, 100 yields each: every task always ready, the worst case for
//! strategies that poll fewer tasks per round) and a timer-driven one (10
//! tasks, each sleeping a random 1 to 10 ms twenty times and passing a
//! message on, as a protocol's nodes do). Criterion reports seeds per
//! second of CPU time.

use commonware_runtime::{
    deterministic::{Config, Context, Strategy, Sweep},
    Clock, Spawner,
};
use commonware_runtime_benches::{cpu::ThreadCpu, programs};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rand::RngCore;
use std::time::Duration;

const TASKS: usize = 10;
const YIELDS: usize = 100;
const SEEDS: u64 = 1_000;

/// Ten tasks that sleep random times and pass a message on each time.
async fn timers(context: Context) {
    let (sender, mut receiver) = futures::channel::mpsc::unbounded::<u64>();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let (mut context, sender) = (context.clone(), sender.clone());
            context.clone().spawn("node", async move {
                for _ in 0..20 {
                    let nap = 1 + context.next_u64() % 10;
                    context.sleep(Duration::from_millis(nap)).await;
                    sender.unbounded_send(nap).expect("receiver alive");
                }
            })
        })
        .collect();
    drop(sender);
    let mut total = 0;
    while let Some(nap) = futures::StreamExt::next(&mut receiver).await {
        total += nap;
    }
    for handle in handles {
        handle.await.expect("node");
    }
    assert!(total > 0);
}

fn strategies(c: &mut Criterion<ThreadCpu>) {
    type Program = fn(Context) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let programs: [(&str, Program); 2] = [
        ("yields_10x100", |c| {
            Box::pin(programs::yielding(c, TASKS, YIELDS))
        }),
        ("timers_10x20", |c| Box::pin(timers(c))),
    ];
    for (program, body) in programs {
        let mut group = c.benchmark_group(format!("sweep_cpu/{program}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(SEEDS));
        for (name, strategy) in [
            ("uniform", Strategy::Uniform),
            ("pct3", Strategy::pct(3)),
            ("hold", Strategy::hold()),
            ("portfolio", Strategy::portfolio()),
        ] {
            let config = Config {
                strategy,
                ..Config::default()
            };
            // The step estimate is measured once, as a sweep does.
            let config = Sweep::new(config, 0..SEEDS).calibrated(&body);
            let sweep = Sweep::new(config, 0..SEEDS).threads(1);
            group.bench_function(name, |b| {
                b.iter(|| {
                    let swept = sweep.run(body).expect("the program never fails");
                    assert_eq!(swept.seeds, SEEDS);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = strategies
);
criterion_main!(benches);
