//! Flags: what the command line asks for, and the command that replays a
//! run.
//!
//! Flags are parsed by hand (no dependency). Every value is checked; a bad
//! one is reported with the usage text, never a panic.
//!
//! # Invariants
//! * [`replay`] prints a command whose flags [`parse`] turns back into the
//!   same options, for just the one seed.

use crate::sim::{Bug, Faults, Options};
use commonware_runtime::deterministic::Schedule;
use std::{ops::Range, path::PathBuf, time::Duration};

pub const USAGE: &str = "\
usage: cargo run --release --example consensus -- [flags]

  --seeds A..B        seeds to run, end exclusive (or one seed: --seeds 17)   [0..20]
  --nodes N           cluster size, 1 to 9                                   [5]
  --faults F          on, off, or a comma list of:                           [on]
                      crash, power, partition, network, disk
                      (on), clock, byzantine (only when listed)
  --duration SECS     virtual seconds of faults per run (then 10 s settle)   [60]
  --bug skip-fsync    plant a bug: acknowledge appends before syncing them
  --threads N         OS threads the seeds run on                            [all cores]
  --shrink            shrink the lowest failing seed to the faults and
                      scheduling choices it needs; print its story and the
                      command that replays it
  --replay SCHEDULE   replay a schedule (as --shrink prints it) instead of
                      running seeds
  --timeline PATH     write the run as an HTML page with an SVG timeline
                      (the shrunk run, the replayed run, or else the lowest
                      failing seed, or else the first seed)
  --trace-json PATH   the same run as Chrome trace-event JSON (Perfetto,
                      chrome://tracing)
  --trace             print each run's events: faults, elections, verdict
  --help              this text";

/// What the command line asked for.
pub struct Args {
    pub seeds: Range<u64>,
    pub options: Options,
    /// OS threads for the seeds (`None`: all cores).
    pub threads: Option<usize>,
    pub shrink: bool,
    pub replay: Option<Schedule>,
    pub timeline: Option<PathBuf>,
    pub trace_json: Option<PathBuf>,
}

fn parse_seeds(value: &str) -> Option<Range<u64>> {
    match value.split_once("..") {
        Some((start, end)) => {
            let range = start.parse().ok()?..end.parse().ok()?;
            (!range.is_empty()).then_some(range)
        }
        None => {
            let seed: u64 = value.parse().ok()?;
            Some(seed..seed.checked_add(1)?)
        }
    }
}

/// The faults a run can inject, under the names `--faults` lists them by.
fn fault_names(faults: &mut Faults) -> [(&'static str, &mut bool); 7] {
    [
        ("crash", &mut faults.crash),
        ("power", &mut faults.power),
        ("partition", &mut faults.partition),
        ("network", &mut faults.network),
        ("disk", &mut faults.disk),
        ("clock", &mut faults.clock),
        ("byzantine", &mut faults.byzantine),
    ]
}

fn parse_faults(value: &str) -> Option<Faults> {
    match value {
        "on" => Some(Faults::ALL),
        "off" => Some(Faults::NONE),
        list => list.split(',').try_fold(Faults::NONE, |mut faults, name| {
            let (_, on) = fault_names(&mut faults)
                .into_iter()
                .find(|(known, _)| *known == name)?;
            *on = true;
            Some(faults)
        }),
    }
}

/// `--faults` value that selects `faults`.
pub fn format_faults(mut faults: Faults) -> String {
    match faults {
        Faults::ALL => "on".into(),
        Faults::NONE => "off".into(),
        _ => fault_names(&mut faults)
            .into_iter()
            .filter(|(_, on)| **on)
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Parses the flags (without the program name); `Ok(None)` asks for help.
pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        seeds: 0..20,
        options: Options::default(),
        threads: None,
        shrink: false,
        replay: None,
        timeline: None,
        trace_json: None,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--trace" => {
                parsed.options.trace = true;
                continue;
            }
            "--shrink" => {
                parsed.shrink = true;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let invalid = || format!("invalid value for {flag}: {value}\n\n{USAGE}");
        match flag.as_str() {
            "--seeds" => parsed.seeds = parse_seeds(&value).ok_or_else(invalid)?,
            "--nodes" => {
                parsed.options.nodes = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=9).contains(n))
                    .ok_or_else(invalid)?
            }
            "--faults" => parsed.options.faults = parse_faults(&value).ok_or_else(invalid)?,
            "--duration" => {
                parsed.options.duration = value
                    .parse()
                    .ok()
                    .filter(|&secs| secs > 0 && secs <= 1_000_000)
                    .map(Duration::from_secs)
                    .ok_or_else(invalid)?
            }
            "--bug" => match value.as_str() {
                "skip-fsync" => parsed.options.bug = Some(Bug::SkipFsync),
                _ => return Err(invalid()),
            },
            "--threads" => {
                parsed.threads = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|&n| (1..=1024).contains(&n))
                        .ok_or_else(invalid)?,
                )
            }
            "--replay" => {
                let schedule = value
                    .parse::<Schedule>()
                    .map_err(|error| format!("invalid value for --replay: {error}\n\n{USAGE}"))?;
                parsed.replay = Some(schedule);
            }
            "--timeline" => parsed.timeline = Some(PathBuf::from(&value)),
            "--trace-json" => parsed.trace_json = Some(PathBuf::from(&value)),
            _ => return Err(format!("unknown flag {flag}\n\n{USAGE}")),
        }
    }
    Ok(Some(parsed))
}

/// The flags that select `options` (those that differ from the defaults).
fn option_flags(options: &Options) -> String {
    let defaults = Options::default();
    let mut flags = String::new();
    if options.nodes != defaults.nodes {
        flags += &format!(" --nodes {}", options.nodes);
    }
    if options.faults != defaults.faults {
        flags += &format!(" --faults {}", format_faults(options.faults));
    }
    if options.duration != defaults.duration {
        flags += &format!(" --duration {}", options.duration.as_secs());
    }
    if options.bug == Some(Bug::SkipFsync) {
        flags += " --bug skip-fsync";
    }
    flags
}

/// The command that replays `seed` with `options`.
pub fn replay(seed: u64, options: &Options) -> String {
    format!(
        "cargo run --release --example consensus -- --seeds {seed}..{}{}",
        seed + 1,
        option_flags(options)
    )
}

/// The command that replays `schedule` with `options`.
pub fn replay_schedule(schedule: &Schedule, options: &Options) -> String {
    // Single quotes keep the schedule one shell word (a quote inside a
    // fault name is closed, escaped and reopened).
    let quoted = schedule.to_string().replace('\'', "'\\''");
    format!(
        "cargo run --release --example consensus --{} --replay '{quoted}'",
        option_flags(options)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, String> {
        parse(line.split_whitespace().map(String::from))?.ok_or_else(|| "help".into())
    }

    #[test]
    fn defaults() {
        let parsed = args("").unwrap();
        assert_eq!(parsed.seeds, 0..20);
        assert_eq!(parsed.options.nodes, 5);
        assert_eq!(parsed.options.faults, Faults::ALL);
        assert_eq!(parsed.options.bug, None);
    }

    #[test]
    fn flags() {
        let parsed =
            args("--seeds 17 --nodes 7 --faults crash --duration 5 --bug skip-fsync").unwrap();
        assert_eq!(parsed.seeds, 17..18);
        assert_eq!(parsed.options.nodes, 7);
        assert_eq!(
            parsed.options.faults,
            Faults {
                crash: true,
                ..Faults::NONE
            }
        );
        assert_eq!(parsed.options.duration, Duration::from_secs(5));
        assert_eq!(parsed.options.bug, Some(Bug::SkipFsync));
        assert!(!parsed.options.trace);
        assert!(args("--trace --seeds 3").unwrap().options.trace);
        assert_eq!(args("--faults off").unwrap().options.faults, Faults::NONE);
        let all = "power,crash,disk,network,partition";
        let faults = args(&format!("--faults {all}")).unwrap().options.faults;
        assert_eq!(faults, Faults::ALL);
        for name in [
            "crash",
            "power",
            "partition",
            "network",
            "disk",
            "clock",
            "byzantine",
        ] {
            let faults = args(&format!("--faults {name}")).unwrap().options.faults;
            assert_eq!(format_faults(faults), name);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        for line in [
            "--seeds",
            "--seeds 5..5",
            "--seeds 9..3",
            "--seeds x",
            "--seeds 18446744073709551615",
            "--nodes 0",
            "--nodes 10",
            "--faults sometimes",
            "--faults crash,,power",
            "--duration 0",
            "--bug other",
            "--verbose 1",
        ] {
            assert!(args(line).is_err(), "{line}");
        }
    }

    #[test]
    fn exploration_flags() {
        let parsed = args("--shrink --threads 3 --timeline a.html --trace-json b.json").unwrap();
        assert!(parsed.shrink);
        assert_eq!(parsed.threads, Some(3));
        assert_eq!(parsed.timeline, Some(PathBuf::from("a.html")));
        assert_eq!(parsed.trace_json, Some(PathBuf::from("b.json")));
        let parsed = args("--replay 3:1!;ff;crash%20node%202#4=9c").unwrap();
        let schedule = parsed.replay.unwrap();
        assert_eq!(schedule.faults().next().unwrap().name, "crash node 2");
        let error = args("--replay 3:1;zz").err().unwrap();
        assert!(error.contains("at byte 4"), "{error}");
        for bad in ["--threads 0", "--threads x", "--timeline"] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replay_schedule_parses_back() {
        let schedule: Schedule = "3:1!;ff;crash node 2#4=9c".parse().unwrap();
        let options = Options {
            bug: Some(Bug::SkipFsync),
            ..Options::default()
        };
        let command = replay_schedule(&schedule, &options);
        assert!(
            command.contains(" --bug skip-fsync --replay '"),
            "{command}"
        );
        let quoted = command.split_once(" --replay ").unwrap().1;
        let text = quoted.trim_matches('\'');
        assert_eq!(text.parse::<Schedule>().unwrap(), schedule);
    }

    #[test]
    fn help() {
        assert!(matches!(
            parse(["--help".to_string()].into_iter()),
            Ok(None)
        ));
    }

    #[test]
    fn replay_parses_back_to_the_same_run() {
        let options = Options {
            nodes: 3,
            faults: Faults {
                power: true,
                disk: true,
                ..Faults::NONE
            },
            duration: Duration::from_secs(30),
            bug: Some(Bug::SkipFsync),
            ..Options::default()
        };
        for options in [Options::default(), options] {
            let command = replay(17, &options);
            let flags = command.split_once(" -- ").unwrap().1;
            let parsed = args(flags).unwrap();
            assert_eq!(parsed.seeds, 17..18);
            assert_eq!(parsed.options.nodes, options.nodes);
            assert_eq!(parsed.options.faults, options.faults);
            assert_eq!(parsed.options.duration, options.duration);
            assert_eq!(parsed.options.bug, options.bug);
        }
    }
}
