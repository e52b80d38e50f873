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
//!     [--bug skip-fsync] [--threads N] [--shrink] [--replay SCHEDULE]
//!     [--timeline PATH] [--trace-json PATH] [--trace]
//! ```
//!
//! The seeds run on all cores through the runtime's `Sweep`, each a whole
//! harness run (`sim::run`, power cuts and recoveries included). After the
//! runs it prints the reachability points the protocol and the driver
//! declare ("two candidates in one term", "commit during a partition",
//! "recovery after a torn write"): how many seeds reached each, the first
//! that did, and the ones no seed reached. With `--shrink`, the lowest
//! failing seed is shrunk to the faults and scheduling choices its failure
//! needs and told as a story, with the command that replays it
//! (`--replay`); `--timeline` and `--trace-json` draw a run.
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
use commonware_runtime::deterministic::{
    self, Config, FailedRun, ReplayError, Schedule, Strategy, Sweep, Timeline,
};
use sim::{Bug, Options};
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
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
    // Failures are caught and reported below, once each: the default
    // hook would print every one, and every shrinking candidate's.
    std::panic::set_hook(Box::new(|_| {}));
    let options = &args.options;
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
    match &args.replay {
        Some(schedule) => replay(&args, schedule),
        None => sweep(&args),
    }
}

/// One run as the runtime's tools see it: a failure is a panic.
fn harness(options: &Options) -> impl Fn(Config) -> sim::Report + Sync + '_ {
    move |config| sim::judged(sim::run(options, config))
}

/// Whether `failure` is the same kind of failure as `of` (both unsafe, or
/// both stuck): what shrinking keeps. The exact message (which index,
/// which terms) may change as faults are removed.
fn same_kind(failure: &FailedRun, of: &FailedRun) -> bool {
    let kind = |message: &str| message.split(':').next().unwrap_or_default().to_string();
    kind(&failure.message) == kind(&of.message)
}

/// Runs the seeds; shrinks and draws as asked.
fn sweep(args: &Args) -> ExitCode {
    let options = &args.options;
    let mut sweep = Sweep::new(Config::default(), args.seeds.clone());
    if let Some(threads) = args.threads {
        sweep = sweep.threads(threads);
    }
    let started = Instant::now();
    let each = sweep.each_harness(harness(options));
    let wall = started.elapsed();
    let mut simulated = Duration::ZERO;
    let mut failures = Vec::new();
    for (seed, result) in each.runs {
        match result {
            Ok(report) => {
                simulated += report.simulated;
                println!("{report}");
            }
            Err(failure) => {
                simulated += failure.time;
                println!(
                    "seed {seed:>4}  FAILED at {:.3}s: {}",
                    failure.time.as_secs_f64(),
                    failure.message
                );
                failures.push(failure);
            }
        }
    }
    let runs = args.seeds.end - args.seeds.start;
    println!(
        "\n{runs} run{}: {} passed, {} failed; simulated {:.1}s in {:.2}s wall on {} thread{} ({:.0} virtual seconds per wall second)",
        if runs == 1 { "" } else { "s" },
        runs - failures.len() as u64,
        failures.len(),
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        each.threads,
        if each.threads == 1 { "" } else { "s" },
        simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9),
    );
    // Which interesting states the seeds reached (replay a first seed to
    // get there), and which none did.
    println!("\n{}", each.points);
    if !failures.is_empty() {
        println!("\nfailing seeds (replay one with the command beside it; add --trace to see its events, --shrink to shrink the first):");
        for failure in &failures {
            println!(
                "  seed {}: {}",
                failure.seed,
                cli::replay(failure.seed, options)
            );
        }
    }
    let drawn = match (args.shrink, failures.first()) {
        (true, Some(failure)) => shrink(options, failure),
        _ => {
            // Draw the first failing seed, or else the first seed.
            let seed = failures.first().map_or(args.seeds.start, |f| f.seed);
            let config = Config {
                seed,
                ..Config::default()
            };
            let needs = args.timeline.is_some() || args.trace_json.is_some();
            needs.then(|| deterministic::record_timeline_harness(&config, harness(options)).1)
        }
    };
    if let Some(timeline) = drawn {
        if let Err(message) = write_pictures(args, &timeline) {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Shrinks `failure` and prints its story and the command that replays
/// it; returns its timeline.
fn shrink(options: &Options, failure: &FailedRun) -> Option<Timeline> {
    let schedule = failure.schedule.as_ref()?;
    println!(
        "\nshrinking seed {} ({} faults and {} scheduling choices recorded)...",
        failure.seed,
        schedule.faults().count(),
        schedule.decisions().count()
    );
    let started = Instant::now();
    let shrunk = deterministic::shrink_harness_with(
        &Config::default(),
        schedule,
        harness(options),
        |candidate| same_kind(candidate, failure),
    );
    let Some(shrunk) = shrunk else {
        println!("  the failure did not reproduce under replay");
        return None;
    };
    println!(
        "shrunk in {:.1}s ({} replays): {} fault(s) and {} scheduling choice(s) left of {} and {}\n",
        started.elapsed().as_secs_f64(),
        shrunk.runs,
        shrunk.schedule.faults().count(),
        shrunk.schedule.decisions().count(),
        shrunk.before.0,
        shrunk.before.1,
    );
    print!("{}", shrunk.story);
    println!("\nreplay it (add --trace to see every event, --timeline PATH to draw it):");
    println!("  {}", cli::replay_schedule(&shrunk.schedule, options));
    Some(shrunk.timeline)
}

/// Replays `schedule` and says whether it still fails.
fn replay(args: &Args, schedule: &Schedule) -> ExitCode {
    let options = &args.options;
    let config = Config::default();
    let code = match deterministic::replay_harness(&config, schedule, harness(options)) {
        Ok(report) => {
            println!("{report}");
            println!("the schedule replays and the run passes");
            ExitCode::SUCCESS
        }
        Err(ReplayError::Failed(failure)) => {
            println!("{failure}");
            ExitCode::FAILURE
        }
        Err(ReplayError::Mismatch(why)) => {
            eprintln!("the schedule does not belong to this program and options: {why}");
            return ExitCode::from(2);
        }
    };
    if args.timeline.is_some() || args.trace_json.is_some() {
        let config = Config {
            strategy: Strategy::Replay(Arc::new(schedule.clone())),
            ..config
        };
        let (_, timeline) = deterministic::record_timeline_harness(&config, harness(options));
        if let Err(message) = write_pictures(args, &timeline) {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    }
    code
}

/// Writes the page and the JSON the flags ask for.
fn write_pictures(args: &Args, timeline: &Timeline) -> Result<(), String> {
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text)
            .map(|()| println!("wrote {}", path.display()))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    };
    if let Some(path) = &args.timeline {
        write(path, timeline.to_html("consensus run"))?;
    }
    if let Some(path) = &args.trace_json {
        write(path, timeline.to_chrome_json())?;
    }
    Ok(())
}
