//! A simulated consensus harness: the main demonstration of the
//! deterministic runtime.
//!
//! It runs a small Raft-style replicated log on the simulated network and
//! disk, once per seed, crashing nodes, partitioning the network, failing
//! disk operations and cutting the power along the way,
//! and checks every run for safety (no two nodes ever commit different
//! entries at one index) and liveness (commits continue once the faults
//! stop). Each run is reproduced exactly by its seed.
//!
//! ```text
//! cargo run --release --example consensus -- [--seeds A..B] [--nodes N]
//!     [--faults on|off|crash,power,partition,network,disk] [--duration SECS]
//!     [--bug skip-fsync] [--trace]
//! ```
//!
//! After the runs it prints the reachability points the protocol and the
//! driver declare ("two candidates in one term", "commit during a
//! partition", "recovery after a torn write"): how many seeds reached each,
//! the first that did, and the ones no seed reached.
//!
//! Files: `node.rs` (the protocol), `log.rs` (its durable state), `wire.rs`
//! (its messages on a connection), `check.rs` (the safety and liveness
//! oracle), `sim.rs` (one run under faults), `cli.rs` (flags), and this
//! file (output).

mod check;
mod cli;
mod log;
mod node;
mod sim;
mod wire;

use cli::Args;
use sim::{Bug, Outcome};
use std::{process::ExitCode, time::Duration};

fn main() -> ExitCode {
    let Args { seeds, options } = match cli::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{} nodes, faults: {}, {}s of faults + {}s settle per run{}",
        options.nodes,
        cli::format_faults(options.faults),
        options.duration.as_secs(),
        options.settle.as_secs(),
        match options.bug {
            Some(Bug::SkipFsync) => ", planted bug: skip-fsync",
            None => "",
        }
    );
    let (mut simulated, mut wall) = (Duration::ZERO, Duration::ZERO);
    let mut failed = Vec::new();
    let mut points = commonware_runtime::deterministic::Points::default();
    for seed in seeds.clone() {
        let report = sim::run(&options, seed);
        println!("{report}");
        points.merge(report.points.clone());
        simulated += report.simulated;
        wall += report.wall;
        if report.outcome != Outcome::Pass {
            failed.push(seed);
        }
    }
    let runs = seeds.end - seeds.start;
    println!(
        "\n{runs} run{}: {} passed, {} failed; simulated {:.1}s in {:.2}s wall ({:.0} virtual seconds per wall second)",
        if runs == 1 { "" } else { "s" },
        runs - failed.len() as u64,
        failed.len(),
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9),
    );
    // Which interesting states the seeds reached (replay a first seed to
    // get there), and which none did.
    println!("\n{points}");
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!(
        "\nfailing seeds (replay one with the command beside it; add --trace to see its events):"
    );
    for seed in failed {
        println!("  seed {seed}: {}", cli::replay(seed, &options));
    }
    ExitCode::FAILURE
}
