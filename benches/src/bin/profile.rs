//! Runs one workload once, for profilers (`valgrind --tool=callgrind`,
//! `perf record`), without criterion's sampling around it.
//!
//! Usage: `profile <workload> <ours|reference|tokio> [divisor] [repeat]`, where
//! `<workload>` is a group name of the `runtime` bench (`spawn_join`,
//! `reschedule`, `duplicate_wakes_4`, `sleepers`, `sleep_loop`, `ping_pong`,
//! `spawn_tree`; `seed_empty` and `seed_sweep`, where the divisor is the
//! number of seeds, each a fresh runtime), of the `network_storage` bench (`echo`, `blob_append`, `blob_overwrite`) or of the
//! `tokio_adapter` bench (`tokio_spawn_join`, `tokio_echo`; sides `ours` and
//! `tokio`), the optional divisor shrinks the workload's size and the
//! optional repeat count runs it that many times in one process, as criterion
//! does (later runs reuse the allocator's memory instead of faulting it in).

use commonware_runtime_benches::{
    adapter, ours, reference, sleep_durations, tokio_ct, BLOB_ROUNDS, BLOB_WRITES, DELIVERIES,
    ECHO_CONNECTIONS, ECHO_MESSAGES, MESSAGES, PARKED_TASKS, SEED_TASKS, SEED_YIELDS, SLEEPERS,
    SLEEPS, SPAWN_TASKS, TREE_BRANCHING, TREE_DEPTH, YIELDS, YIELD_TASKS,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: profile <workload> <ours|reference|tokio> [divisor] [repeat]";
    let (Some(workload), Some(side)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let divisor: u64 = args.get(3).and_then(|d| d.parse().ok()).unwrap_or(1).max(1);
    let repeat: u32 = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(1).max(1);
    for _ in 0..repeat {
        let result = run(workload, side.as_str(), divisor, usage);
        println!("{workload}/{side}: {result}");
    }
}

/// Runs `workload` once on `side` and returns its result.
fn run(workload: &str, side: &str, divisor: u64, usage: &str) -> u64 {
    match (workload, side) {
        ("spawn_join", "ours") => ours::spawn_join(SPAWN_TASKS / divisor),
        ("spawn_join", "reference") => reference::spawn_join(SPAWN_TASKS / divisor),
        ("spawn_join", "tokio") => tokio_ct::spawn_join(SPAWN_TASKS / divisor),
        ("reschedule", side) => {
            let yields = YIELDS / divisor as usize;
            (match side {
                "ours" => ours::yielders(YIELD_TASKS, yields),
                "reference" => reference::yielders(YIELD_TASKS, yields),
                _ => tokio_ct::yielders(YIELD_TASKS, yields),
            }) as u64
        }
        (name, side) if name.starts_with("duplicate_wakes_") => {
            let wakes = name["duplicate_wakes_".len()..].parse().unwrap_or(4);
            let deliveries = (DELIVERIES / divisor).max(1);
            (match side {
                "ours" => ours::duplicate_wakes(PARKED_TASKS, deliveries, wakes),
                "reference" => reference::duplicate_wakes(PARKED_TASKS, deliveries, wakes),
                _ => tokio_ct::duplicate_wakes(PARKED_TASKS, deliveries, wakes),
            }) as u64
        }
        // Seeds: the divisor is the number of fresh runtimes (one per seed).
        ("seed_empty", side) => (0..divisor)
            .map(|seed| match side {
                "ours" => ours::seed_empty(seed),
                "reference" => reference::seed_empty(seed),
                _ => tokio_ct::seed_empty(),
            })
            .sum::<usize>() as u64,
        ("seed_sweep", side) => (0..divisor)
            .map(|seed| match side {
                "ours" => ours::seed_run(seed, SEED_TASKS, SEED_YIELDS),
                "reference" => reference::seed_run(seed, SEED_TASKS, SEED_YIELDS),
                _ => tokio_ct::seed_run(SEED_TASKS, SEED_YIELDS),
            })
            .sum::<usize>() as u64,
        ("sleepers", "ours") => ours::sleepers(sleep_durations(SLEEPERS / divisor, 7)),
        ("sleepers", "reference") => reference::sleepers(sleep_durations(SLEEPERS / divisor, 7)),
        ("sleep_loop", "ours") => ours::sleep_loop(SLEEPS / divisor).as_millis() as u64,
        ("sleep_loop", "reference") => reference::sleep_loop(SLEEPS / divisor).as_millis() as u64,
        ("ping_pong", "ours") => ours::ping_pong(MESSAGES / divisor),
        ("ping_pong", "reference") => reference::ping_pong(MESSAGES / divisor),
        ("ping_pong", "tokio") => tokio_ct::ping_pong(MESSAGES / divisor),
        ("spawn_tree", side) => {
            // Each level is `branching` times the one below: drop levels.
            let depth = TREE_DEPTH - (divisor.ilog(TREE_BRANCHING)).min(TREE_DEPTH);
            match side {
                "ours" => ours::spawn_tree(depth, TREE_BRANCHING),
                "reference" => reference::spawn_tree(depth, TREE_BRANCHING),
                _ => tokio_ct::spawn_tree(depth, TREE_BRANCHING),
            }
        }
        ("echo", "ours") => ours::echo(ECHO_CONNECTIONS, ECHO_MESSAGES / divisor as usize) as u64,
        ("echo", "reference") => {
            reference::echo(ECHO_CONNECTIONS, ECHO_MESSAGES / divisor as usize) as u64
        }
        (name @ ("blob_append" | "blob_overwrite"), side) => {
            let append = name == "blob_append";
            let writes = BLOB_WRITES / divisor;
            match side {
                "ours" => ours::blob(writes, BLOB_ROUNDS, append, None).0,
                _ => reference::blob(writes, BLOB_ROUNDS, append, None).0,
            }
        }
        ("tokio_spawn_join", "ours") => {
            adapter::spawn_join_ours(adapter::SPAWN_TASKS / divisor).as_micros() as u64
        }
        ("tokio_spawn_join", "tokio") => {
            adapter::spawn_join_raw(adapter::SPAWN_TASKS / divisor).as_micros() as u64
        }
        ("tokio_echo", "ours") => {
            let trips = adapter::ROUND_TRIPS / divisor as usize;
            adapter::echo_ours(adapter::CONNECTIONS, trips).as_micros() as u64
        }
        ("tokio_echo", "tokio") => {
            let trips = adapter::ROUND_TRIPS / divisor as usize;
            adapter::echo_raw(adapter::CONNECTIONS, trips).as_micros() as u64
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
