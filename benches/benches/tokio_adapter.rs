//! The cost of the tokio adapter: spawn+join and TCP echo on loopback
//! through our `tokio::Context` against the same code written directly on
//! tokio, in one run.
//!
//! The adapter adds labels, metrics and panic handling around every task
//! and exact-length, cancel-safe reads around every socket; this measures
//! what that costs in production (the target is at most 10%). Only the
//! work is timed (see `adapter`).

use commonware_runtime_benches::adapter::{
    echo_ours, echo_raw, spawn_join_ours, spawn_join_raw, CONNECTIONS, ROUND_TRIPS, SPAWN_TASKS,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

fn timed(iters: u64, run: impl Fn() -> Duration) -> Duration {
    (0..iters).map(|_| run()).sum()
}

fn adapter(c: &mut Criterion) {
    for (name, ours, raw) in [
        (
            "tokio_spawn_join",
            (|| spawn_join_ours(SPAWN_TASKS)) as fn() -> Duration,
            (|| spawn_join_raw(SPAWN_TASKS)) as fn() -> Duration,
        ),
        (
            "tokio_echo",
            || echo_ours(CONNECTIONS, ROUND_TRIPS),
            || echo_raw(CONNECTIONS, ROUND_TRIPS),
        ),
    ] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(20)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("ours", |b| b.iter_custom(|iters| timed(iters, ours)));
        group.bench_function("tokio", |b| b.iter_custom(|iters| timed(iters, raw)));
        group.finish();
    }
}

criterion_group!(benches, adapter);
criterion_main!(benches);
