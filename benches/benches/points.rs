//! The cost of a reachability point (`Assertions::sometimes`, `reached`,
//! `always`) on the deterministic runtime: when nothing collects points
//! (every run outside a sweep) it must cost nothing measurable, under 20 ns
//! a call; when a sweep collects them, a short lock and a lookup among the
//! run's few names.

use commonware_runtime::{deterministic::Executor, Assertions};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn points(c: &mut Criterion) {
    let mut group = c.benchmark_group("point");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let (_runner, context, _) = Executor::default();
    group.bench_function("sometimes/not_collected", |b| {
        b.iter(|| context.sometimes(black_box("a rare state"), black_box(true)))
    });
    group.bench_function("always/not_collected", |b| {
        b.iter(|| context.always(black_box("an invariant"), black_box(true)))
    });
    let (_runner, collected, _) = Executor::default();
    collected.collect_points();
    // A run declares a handful of points; the lookup passes the others.
    for name in ["one", "two", "three", "four", "five", "six", "seven"] {
        collected.sometimes(name, false);
    }
    group.bench_function("sometimes/collected", |b| {
        b.iter(|| collected.sometimes(black_box("a rare state"), black_box(true)))
    });
    group.bench_function("reached/collected", |b| {
        b.iter(|| collected.reached(black_box("a place")))
    });
    group.finish();
}

criterion_group!(benches, points);
criterion_main!(benches);
