//! The simulated network and storage (an echo over many connections; blob
//! writes, syncs and reads, appending and overwriting) of our deterministic
//! runtime against the registry's commonware-runtime 0.0.16, side by side
//! in one run, measured in CPU time of the benchmarking thread (see `cpu`).
//!
//! Simulations of networked, persistent systems spend most of their time
//! here, in memory copies and bookkeeping rather than scheduling, so these
//! workloads are sized like a real node's traffic and journal.

use commonware_runtime_benches::cpu::ThreadCpu;
use commonware_runtime_benches::{
    ours, reference, BLOB_ROUNDS, BLOB_WRITES, BLOCK, ECHO_CONNECTIONS, ECHO_MESSAGE, ECHO_MESSAGES,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

fn network_storage(c: &mut Criterion<ThreadCpu>) {
    let echoed = ECHO_CONNECTIONS * ECHO_MESSAGES * ECHO_MESSAGE;
    let blob_len = BLOB_WRITES * BLOCK as u64;
    let mut group = c.benchmark_group("echo");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("ours", |b| {
        b.iter(|| assert_eq!(ours::echo(ECHO_CONNECTIONS, ECHO_MESSAGES), echoed))
    });
    group.bench_function("reference", |b| {
        b.iter(|| assert_eq!(reference::echo(ECHO_CONNECTIONS, ECHO_MESSAGES), echoed))
    });
    group.finish();

    for (name, append, len) in [
        ("blob_append", true, blob_len * BLOB_ROUNDS),
        ("blob_overwrite", false, blob_len),
    ] {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(1));
        group.bench_function("ours", |b| {
            b.iter(|| assert_eq!(ours::blob(BLOB_WRITES, BLOB_ROUNDS, append, None).0, len))
        });
        group.bench_function("reference", |b| {
            b.iter(|| {
                assert_eq!(
                    reference::blob(BLOB_WRITES, BLOB_ROUNDS, append, None).0,
                    len
                )
            })
        });
        group.finish();
    }
}

criterion_group!(
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = network_storage
);
criterion_main!(benches);
