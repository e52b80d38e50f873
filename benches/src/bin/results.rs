//! Prints the results of the last bench run as markdown: the timing tables
//! from criterion's estimates of the `runtime`, `seed`, `network_storage`
//! and `tokio_adapter` benches, and the memory tables, measured here with a
//! counting global allocator. This is the "latest run" part of
//! `benches/RESULTS.md`.
//!
//! Usage: `cargo run --release -p commonware-runtime-benches --bin results`
//! (an optional argument names the criterion directory; the default is the
//! workspace's `target/criterion`).

use commonware_runtime_benches::{
    adapter, memory::TaskMemory, ours, reference, Workload, BLOB_ROUNDS, BLOB_WRITES, BLOCK,
    NETWORK_STORAGE, SEED_WORKLOADS, WORKLOADS,
};
use peak_alloc::PeakAlloc;
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

#[global_allocator]
static METER: PeakAlloc = PeakAlloc;

/// Parked tasks for the memory measurement.
const MEMORY_TASKS: usize = 100_000;

/// Median nanoseconds per iteration of `group/side`, if it was benched.
fn median(root: &Path, group: &str, side: &str) -> Option<f64> {
    let path = root.join(group).join(side).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// `12.3 ms (24.6 ns/task)`.
fn cell(nanos: Option<f64>, workload: &Workload) -> String {
    match nanos {
        None => "–".into(),
        Some(ns) => {
            let per_op = ns / workload.ops as f64;
            let total = if ns >= 1e9 {
                format!("{:.2} s", ns / 1e9)
            } else {
                format!("{:.1} ms", ns / 1e6)
            };
            format!("{total} ({per_op:.1} ns/{})", workload.unit)
        }
    }
}

fn timing_table(root: &Path, workloads: &[Workload]) -> String {
    let mut out = String::new();
    out.push_str(
        "| workload | ours | reference 0.0.16 | tokio current_thread | ratio (reference / ours) | target met? |\n|---|---|---|---|---|---|\n",
    );
    for workload in workloads {
        let ours = median(root, workload.group, "ours");
        let reference = median(root, workload.group, "reference");
        let tokio = median(root, workload.group, "tokio");
        let ratio = match (ours, reference) {
            (Some(o), Some(r)) => Some(r / o),
            _ => None,
        };
        let mut verdict = match ratio {
            None => "not measured".to_string(),
            Some(ratio) if ratio >= workload.target => format!("yes (≥ {}×)", workload.target),
            Some(_) => format!("**no** (target ≥ {}×)", workload.target),
        };
        if workload.versus_tokio {
            match (ours, tokio) {
                (Some(o), Some(t)) if o <= t => verdict.push_str("; ≤ tokio: yes"),
                (Some(o), Some(t)) => {
                    let _ = write!(verdict, "; ≤ tokio: **no** ({:.2}× tokio)", o / t);
                }
                _ => {}
            }
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            workload.description,
            cell(ours, workload),
            cell(reference, workload),
            cell(tokio, workload),
            ratio.map_or("–".into(), |r| format!("{r:.1}×")),
            verdict
        );
    }
    out
}

fn memory_row(name: &str, m: &TaskMemory) -> String {
    format!(
        "| {name} | {} | {:.0} | {:.0} | {} | {} |\n",
        m.future_bytes,
        m.pending_bytes,
        m.overhead(),
        m.retained_after_first,
        m.retained_after_second
    )
}

fn memory_table() -> String {
    let ours = ours::task_memory(MEMORY_TASKS, &METER);
    let reference = reference::task_memory(MEMORY_TASKS, &METER);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{MEMORY_TASKS} tasks parked at once, measured twice in a row (live heap bytes from a counting global allocator):\n"
    );
    out.push_str("| runtime | future (bytes) | heap per parked task | beyond the future (target ≤ 150) | retained after wave 1 finished | retained after wave 2 finished |\n|---|---|---|---|---|---|\n");
    out.push_str(&memory_row("ours", &ours));
    out.push_str(&memory_row("reference 0.0.16", &reference));
    out
}

/// Peak heap growth of the blob workloads against the blob's size.
fn blob_memory() -> String {
    let mut out = String::from(
        "| workload | runtime | blob size | peak heap growth during the workload | ratio (target ≤ 1.3×) |\n|---|---|---|---|---|\n",
    );
    for (workload, append) in [("appending", true), ("overwriting", false)] {
        let blob = BLOB_WRITES * BLOCK as u64 * if append { BLOB_ROUNDS } else { 1 };
        for (name, run) in [
            ("ours", ours::blob as fn(_, _, _, _) -> _),
            ("reference 0.0.16", reference::blob),
        ] {
            let (len, peak) = run(BLOB_WRITES, BLOB_ROUNDS, append, Some(&METER));
            assert_eq!(len, blob);
            let peak = peak.unwrap_or_default();
            let _ = writeln!(
                out,
                "| {workload} | {name} | {:.0} MiB | {:.1} MiB | {:.2}× |",
                blob as f64 / 1048576.0,
                peak as f64 / 1048576.0,
                peak as f64 / blob as f64
            );
        }
    }
    out
}

/// Our tokio adapter against the same code on tokio.
fn adapter_table(root: &Path) -> String {
    let mut out = String::from(
        "| workload | through our `tokio::Context` | directly on tokio | overhead (target ≤ 10%) |\n|---|---|---|---|\n",
    );
    let rows = [
        (
            "tokio_spawn_join",
            format!("spawn+join of {} tasks", adapter::SPAWN_TASKS),
            adapter::SPAWN_TASKS,
            "task",
        ),
        (
            "tokio_echo",
            format!(
                "TCP echo on loopback: {} connections × {} round trips of {} bytes",
                adapter::CONNECTIONS,
                adapter::ROUND_TRIPS,
                adapter::MESSAGE
            ),
            (adapter::CONNECTIONS * adapter::ROUND_TRIPS) as u64,
            "round trip",
        ),
    ];
    for (group, description, ops, unit) in rows {
        let workload = Workload {
            group,
            description: "",
            ops,
            unit,
            target: 0.0,
            versus_tokio: false,
        };
        let ours = median(root, group, "ours");
        let tokio = median(root, group, "tokio");
        let overhead = match (ours, tokio) {
            (Some(o), Some(t)) => {
                let overhead = (o / t - 1.0) * 100.0;
                let verdict = if overhead <= 10.0 { "yes" } else { "**no**" };
                format!("{overhead:+.1}% ({verdict})")
            }
            _ => "not measured".into(),
        };
        let _ = writeln!(
            out,
            "| {description} | {} | {} | {overhead} |",
            cell(ours, &workload),
            cell(tokio, &workload)
        );
    }
    out
}

fn main() {
    let root = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
        PathBuf::from,
    );
    print!(
        "# Benchmark results\n\n\
         Generated by `benches/src/bin/results.rs`. Reproduce with:\n\n\
         ```\n\
         cargo bench -p commonware-runtime-benches --bench runtime --bench seed --bench network_storage --bench tokio_adapter\n\
         cargo run --release -p commonware-runtime-benches --bin results\n\
         ```\n\n\
         Each cell of the executor and the network and storage tables is the median CPU time of the benchmarking thread \
         for one whole workload at full size (criterion, 10 flat samples) and, in \
         brackets, that time divided by the workload's operations. Every runtime in those tables runs \
         all its tasks on that one thread, so its CPU time is the workload's whole cost; unlike \
         wall-clock time it does not grow while other processes hold the cores (see `src/cpu.rs`). \
         \"reference\" is the registry's `commonware-runtime = \"=0.0.16\"` deterministic runtime, run \
         in the same process as ours with the same workload code; tokio is `new_current_thread()`. \
         Measured on a 2-core machine shared with other builds; the tokio adapter table is wall-clock, \
         so its cells carry more noise.\n\n\
         Workload notes: every workload runs at full size (no scaling). Duplicate wakes: 1,000 \
         tasks each parked on their own waker slot; each of 100 deliveries wakes every task 1, 4 \
         or 16 times with the same waker (the extra wakes must cost nothing, the reference polls \
         the task once per wake). Sleep loop: `sleep(1 ms)` 2,000,000 times with the default 1 ms \
         cycle. Ping-pong: two `futures::channel::mpsc::channel(1)` channels, 1,500,000 messages \
         each way. Spawn tree: the root spawns 4 children, each of which spawns 4, down to depth \
         9 (4 + 16 + … + 4^9 = 349,524 tasks), every node joining its children. Echo: the \
         simulated network, each client sends 64 bytes and reads the echo back before the next. \
         Blob: 6 rounds read two ways, both measured: appending (each round writes \
         the next 64 MiB, as a journal does) and overwriting (each round rewrites the same \
         64 MiB; keeping synced and unsynced images apart then needs two copies of every page \
         until the sync, so 2× is the floor for any implementation with crash semantics).\n\n\
         ## Executor\n\n{}\n## Price of a seed\n\n\
         Each iteration runs 1,000 seeds, each a fresh runtime (`Executor::seeded(seed)`; tokio: \
         `new_current_thread()` with a paused clock, the closest it has to virtual time), and drops \
         it; the per-seed number is the iteration's median divided by 1,000. Targets: ≥ 3× the \
         reference and at most tokio's time for the empty root; ≥ 5× the reference and ahead of \
         tokio for the small program.\n\n{}\n## Memory per pending task\n\n{}\n\
         ## Simulated network and storage\n\n{}\n\
         Peak memory of the blob workload (counting allocator, heap growth over the whole run):\n\n{}\n\
         ## Tokio adapter overhead\n\n\
         Both sides on a two-worker multi-thread runtime; only the work is timed (criterion \
         `iter_custom`, 20 samples), not building the runtime.\n\n{}",
        timing_table(&root, WORKLOADS),
        timing_table(&root, SEED_WORKLOADS),
        memory_table(),
        timing_table(&root, NETWORK_STORAGE),
        blob_memory(),
        adapter_table(&root)
    );
}
