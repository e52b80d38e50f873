//! Planted bugs of the kinds users hit, and how many seeds each scheduling
//! strategy needs to find them.
//!
//! Five need one task to fall behind the others by several rounds: in
//! lockstep (every ready task polled once per round, as `Strategy::Uniform`
//! does) their racy windows never overlap, so uniform shuffling, which only
//! reorders tasks inside a round, never finds them (a lost update, a stale
//! read needing three orderings, a lock-order stall, a proposer three steps
//! behind two election timers, a heartbeat starved for eight ticks). PCT
//! holds lower-priority tasks back and finds them. The sixth, a double vote
//! in a four-node election, needs two messages to land in the same tick:
//! message timing, which uniform rounds reproduce well and PCT (one poll
//! per round, time advancing per poll) rarely does. `Strategy::hold` and
//! the portfolio find all six.
//!
//! `cargo test --release --test strategies -- --ignored --nocapture
//! measure_seeds 2>/dev/null` prints the README's table (seeds per find,
//! median over start points).

use commonware_runtime::{
    deterministic::{self, Config, Context, Strategy, Sweep},
    reschedule, Clock, Spawner,
};
use futures::lock::Mutex as AsyncMutex;
use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// Lost update needing one preemption: `worker1` starts three rounds after
/// `worker0`; the update is lost only if `worker0` is held back between its
/// read and its write until `worker1` has read.
async fn lost_update(context: Context) {
    let counter = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::new();
    for (i, delay) in [0, 3].into_iter().enumerate() {
        let counter = counter.clone();
        handles.push(context.spawn(&format!("worker{i}"), async move {
            for _ in 0..delay {
                reschedule().await;
            }
            let read = *counter.lock();
            reschedule().await;
            *counter.lock() = read + 1;
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(*counter.lock(), 2, "lost update");
}

/// Ordering bug needing three orderings: the reader must read version 1
/// after the reloader wrote it (1), before the reloader wrote version 2
/// (2), and must commit after that (3). In lockstep the reader only reads
/// once both versions are written.
async fn stale_read(context: Context) {
    let version = Arc::new(Mutex::new(0u64));
    let v = version.clone();
    let reloader = context.spawn("reloader", async move {
        *v.lock() = 1;
        reschedule().await;
        *v.lock() = 2;
    });
    let v = version.clone();
    let reader = context.spawn("reader", async move {
        reschedule().await;
        reschedule().await;
        let seen = *v.lock();
        reschedule().await;
        if seen != 0 {
            assert_eq!(seen, *v.lock(), "committed a stale version");
        }
    });
    reloader.await.unwrap();
    reader.await.unwrap();
}

/// A stall needing a specific interleaving: two tasks take two locks in
/// opposite orders, `second` two rounds after `first`. They deadlock only if
/// `first` is held back between its two locks until `second` has taken its
/// first one; the runtime then panics with `runtime stalled`.
async fn lock_order(context: Context) {
    let a = Arc::new(AsyncMutex::new(()));
    let b = Arc::new(AsyncMutex::new(()));
    let (a1, b1) = (a.clone(), b.clone());
    let first = context.spawn("first", async move {
        let _a = a1.lock().await;
        reschedule().await;
        let _b = b1.lock().await;
    });
    let second = context.spawn("second", async move {
        reschedule().await;
        reschedule().await;
        let _b = b.lock().await;
        reschedule().await;
        let _a = a.lock().await;
    });
    first.await.unwrap();
    second.await.unwrap();
}

/// A proposer that falls three steps behind two election timers: the
/// proposer needs three steps (propose, replicate, commit) and each election
/// timer five ticks. In lockstep the proposer commits two rounds before any
/// timer fires; the bug (both timers fire before the commit, so a second
/// leader is elected while the first still commits) needs the proposer held
/// back for at least three rounds while both timers keep ticking.
async fn slow_proposer(context: Context) {
    #[derive(Default)]
    struct Term {
        committed: bool,
        timeouts: u32,
    }
    let term = Arc::new(Mutex::new(Term::default()));
    let t = term.clone();
    let proposer = context.spawn("proposer", async move {
        for _ in 0..3 {
            reschedule().await;
        }
        t.lock().committed = true;
    });
    let mut timers = Vec::new();
    for i in 0..2 {
        let term = term.clone();
        timers.push(context.spawn(&format!("timer{i}"), async move {
            for _ in 0..5 {
                reschedule().await;
            }
            let mut term = term.lock();
            term.timeouts += 1;
            assert!(
                term.committed || term.timeouts < 2,
                "proposer fell behind two election timers"
            );
        }));
    }
    proposer.await.unwrap();
    for timer in timers {
        timer.await.unwrap();
    }
}

/// A heartbeat starved for eight ticks: a heartbeat task beats every
/// millisecond, a monitor checks every millisecond that the last beat is at
/// most eight milliseconds old, and a worker spins through 40 steps of
/// work. In lockstep the heartbeat is never late; the bug needs the
/// heartbeat held back, while the monitor keeps checking, for nine or more
/// ticks (behind the worker under PCT, or for nine rounds under uniform
/// rounds).
async fn starved_heartbeat(context: Context) {
    let last_beat = Arc::new(Mutex::new(context.current()));
    let (c, beat) = (context.clone(), last_beat.clone());
    let heartbeat = context.spawn("heartbeat", async move {
        for _ in 0..20 {
            *beat.lock() = c.current();
            c.sleep(Duration::from_millis(1)).await;
        }
    });
    let (c, beat) = (context.clone(), last_beat.clone());
    let monitor = context.spawn("monitor", async move {
        for _ in 0..20 {
            c.sleep(Duration::from_millis(1)).await;
            let late = c.current().duration_since(*beat.lock()).unwrap_or_default();
            assert!(
                late <= Duration::from_millis(8),
                "heartbeat starved: {late:?}"
            );
        }
    });
    let worker = context.spawn("worker", async move {
        for _ in 0..40 {
            reschedule().await;
        }
    });
    heartbeat.await.unwrap();
    monitor.await.unwrap();
    worker.await.unwrap();
}

/// An election bug that depends on message timing: four nodes draw random
/// election timeouts; a node whose timer fires before any vote request
/// reached it stands as a candidate and sends requests (1 to 3 ms in
/// flight). The planted bug: a node treats every request arriving in the
/// tick in which it first voted as the one it voted for, so two requests
/// landing on one node in the same millisecond get two votes in one term.
/// It needs two timeouts close together and two deliveries in one tick:
/// timing, not holding a task back, which uniform rounds reproduce well.
async fn double_vote(context: Context) {
    #[derive(Default)]
    struct Node {
        /// When this node first voted, and for whom it has voted.
        voted_at: Option<SystemTime>,
        voted_for: Vec<usize>,
    }
    let nodes = Arc::new(Mutex::new(
        (0..4).map(|_| Node::default()).collect::<Vec<_>>(),
    ));
    let mut handles = Vec::new();
    for id in 0..4 {
        let (mut c, nodes) = (context.clone(), nodes.clone());
        handles.push(context.spawn(&format!("node{id}"), async move {
            let timeout = 10 + c.next_u64() % 40;
            c.sleep(Duration::from_millis(timeout)).await;
            if nodes.lock()[id].voted_at.is_some() {
                return;
            }
            nodes.lock()[id].voted_at = Some(c.current());
            let mut requests = Vec::new();
            for peer in (0..4).filter(|&p| p != id) {
                let (mut c2, nodes) = (c.clone(), nodes.clone());
                let latency = 1 + c2.next_u64() % 3;
                requests.push(c.spawn("request", async move {
                    c2.sleep(Duration::from_millis(latency)).await;
                    let now = c2.current();
                    let mut nodes = nodes.lock();
                    let node = &mut nodes[peer];
                    // The bug: "first voted in this tick" stands for "voted
                    // for this candidate".
                    if node.voted_at.is_none() || node.voted_at == Some(now) {
                        node.voted_at = Some(now);
                        node.voted_for.push(id);
                    }
                    assert!(node.voted_for.len() < 2, "double vote in one term");
                }));
            }
            for request in requests {
                request.await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

type Body = fn(Context) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A planted bug: name, body, the message it fails with, and whether it
/// needs a task to fall behind the others (which uniform rounds never do).
struct Bug {
    name: &'static str,
    body: Body,
    message: &'static str,
    held_back: bool,
}

const BUGS: [Bug; 6] = [
    Bug {
        name: "lost update",
        body: |c| Box::pin(lost_update(c)),
        message: "lost update",
        held_back: true,
    },
    Bug {
        name: "stale read",
        body: |c| Box::pin(stale_read(c)),
        message: "committed a stale version",
        held_back: true,
    },
    Bug {
        name: "lock order",
        body: |c| Box::pin(lock_order(c)),
        message: "runtime stalled",
        held_back: true,
    },
    Bug {
        name: "slow proposer",
        body: |c| Box::pin(slow_proposer(c)),
        message: "proposer fell behind two election timers",
        held_back: true,
    },
    Bug {
        name: "starved heartbeat",
        body: |c| Box::pin(starved_heartbeat(c)),
        message: "heartbeat starved",
        held_back: true,
    },
    Bug {
        name: "double vote",
        body: |c| Box::pin(double_vote(c)),
        message: "double vote in one term",
        held_back: false,
    },
];

/// Seeds needed to find the bug from `start` (1 = the first seed fails),
/// or `None` if none of `limit` seeds fails.
fn seeds_needed(strategy: &Strategy, body: Body, start: u64, limit: u64) -> Option<u64> {
    let config = Config {
        strategy: strategy.clone(),
        ..Config::default()
    };
    match Sweep::new(config, start..start + limit)
        .threads(1)
        .run(body)
    {
        Ok(_) => None,
        Err(failure) => Some(failure.seed - start + 1),
    }
}

/// Median seeds needed over `starts` start points; `None` entries (not
/// found) count as larger than everything.
fn median(strategy: &Strategy, body: Body, starts: u64, limit: u64) -> Option<u64> {
    let mut needed: Vec<Option<u64>> = (0..starts)
        .map(|i| seeds_needed(strategy, body, i * 1_000_003, limit))
        .collect();
    needed.sort_by_key(|n| n.unwrap_or(u64::MAX));
    needed[needed.len() / 2]
}

#[test]
fn every_bug_passes_in_lockstep_and_fails_on_some_schedule() {
    for bug in BUGS {
        let lockstep = Config {
            strategy: Strategy::Replay(Arc::default()),
            ..Config::default()
        };
        if bug.held_back {
            assert!(
                deterministic::try_run(&lockstep, bug.body).is_ok(),
                "{}",
                bug.name
            );
        }
        let failure = Sweep::new(
            Config {
                strategy: Strategy::portfolio(),
                ..Config::default()
            },
            0..5_000,
        )
        .run(bug.body)
        .unwrap_err();
        assert!(
            matches!(failure.strategy, Strategy::Portfolio { steps } if steps > 5),
            "{}",
            failure.strategy
        );
        assert!(
            failure.message.contains(bug.message),
            "{}: {failure}",
            bug.name
        );
        assert!(failure.to_string().contains(", member="), "{failure}");
        // The seed and the member alone reproduce it too.
        let member = Config {
            seed: failure.seed,
            strategy: failure.strategy.member(failure.seed),
            ..Config::default()
        };
        let again = deterministic::try_run(&member, bug.body).unwrap_err();
        assert!(again.same_failure(&failure), "{}: {again}", bug.name);
        // So does the recorded schedule, held-back rounds included.
        let schedule = failure.schedule.clone().expect("the sweep recorded it");
        let replay = Config {
            strategy: Strategy::Replay(Arc::new(schedule)),
            ..Config::default()
        };
        let replayed = deterministic::try_run(&replay, bug.body).unwrap_err();
        assert!(replayed.same_failure(&failure), "{}: {replayed}", bug.name);
    }
}

#[test]
fn uniform_never_finds_bugs_that_need_a_task_to_fall_behind() {
    for bug in BUGS.iter().filter(|bug| bug.held_back) {
        let config = Config::default();
        let swept = Sweep::new(config, 0..300)
            .run(bug.body)
            .unwrap_or_else(|f| {
                panic!(
                    "{}: uniform shuffling cannot hold a task back, yet: {f}",
                    bug.name
                )
            });
        assert_eq!(swept.seeds, 300);
    }
}

#[test]
fn pct_finds_each_bug_within_its_depth_bound() {
    // (bug, depth, bound on the median): PCT finds a depth-d bug with
    // probability about 1/(n k^(d-1)) per seed for n tasks and k steps.
    let cases = [(0, 2, 60), (1, 3, 1_000), (2, 2, 60)];
    for (bug, depth, bound) in cases {
        let Bug { name, body, .. } = BUGS[bug];
        let needed = median(&Strategy::pct(depth), body, 5, 5_000);
        let needed = needed.unwrap_or_else(|| panic!("{name}: pct({depth}) found nothing"));
        assert!(
            needed <= bound,
            "{name}: pct({depth}) needed {needed} seeds (median)"
        );
    }
}

#[test]
fn the_portfolio_finds_every_bug_quickly() {
    // Generous bounds (the measured medians are in the README): five start
    // points, at most 2,000 seeds each.
    for bug in BUGS {
        let needed = median(&Strategy::portfolio(), bug.body, 5, 2_000);
        assert!(
            needed.is_some_and(|n| n <= 600),
            "{}: portfolio needed {needed:?} seeds (median)",
            bug.name
        );
    }
}

#[test]
fn byte_stream_input_finds_the_lost_update() {
    let found = random_inputs_needed(BUGS[0].body, 0, 16, 2_000);
    assert!(
        found.is_some(),
        "no random 16-byte input found the lost update"
    );
}

#[test]
fn a_found_bug_shrinks_to_the_few_decisions_that_matter() {
    let config = Config {
        strategy: Strategy::pct(2),
        ..Config::default()
    };
    let failure = Sweep::new(config.clone(), 0..2_000)
        .run(lost_update)
        .unwrap_err();
    let schedule = failure
        .schedule
        .as_ref()
        .expect("sweeps record the failing seed");
    let shrunk = deterministic::shrink(&config, &failure, lost_update).unwrap();
    println!(
        "lost update, seed {} under {}: {} decisions shrunk to {} in {} runs:\n{}\nreplay with Strategy::Replay(\"{}\".parse()?)",
        failure.seed,
        failure.strategy,
        schedule.decisions().count(),
        shrunk.schedule.decisions().count(),
        shrunk.runs,
        shrunk.description,
        shrunk.schedule
    );
    // worker1 starts three rounds late: worker0 must be held back for two
    // rounds and worker1 must go first in the third.
    assert!(
        shrunk.schedule.decisions().count() <= 3,
        "{}",
        shrunk.description
    );
    assert!(
        shrunk.description.contains("'worker"),
        "{}",
        shrunk.description
    );
    let replay = Config {
        strategy: Strategy::Replay(Arc::new(shrunk.schedule.clone())),
        ..Config::default()
    };
    let again = deterministic::try_run(&replay, lost_update).unwrap_err();
    assert!(again.same_failure(&shrunk.failure));
}

/// Random `len`-byte inputs for the byte-stream strategy (what a fuzzer
/// without coverage feedback would try) until one fails, or `None`.
fn random_inputs_needed(body: Body, rng_seed: u64, len: usize, limit: u64) -> Option<u64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
    (1..=limit).find(|_| {
        let mut input = vec![0u8; len];
        rng.fill_bytes(&mut input);
        let config = Config {
            strategy: Strategy::Bytes(input.into()),
            ..Config::default()
        };
        deterministic::try_run(&config, body).is_err()
    })
}

/// Seeds per find of `strategy` on `body`: seeds run divided by failing
/// seeds, over the seeds `start..` until `finds` failures or `limit` seeds
/// (the step estimate is measured once, on `start`, as a sweep does).
/// `None` if no seed failed.
fn seeds_per_find(
    strategy: &Strategy,
    body: Body,
    start: u64,
    finds: u64,
    limit: u64,
) -> Option<f64> {
    let config = Config {
        strategy: strategy.clone(),
        ..Config::default()
    };
    let config = Sweep::new(config, start..start + limit).calibrated(&body);
    let (mut runs, mut failed) = (0u64, 0u64);
    for seed in start..start + limit {
        runs += 1;
        let config = Config {
            seed,
            ..config.clone()
        };
        if deterministic::try_run(&config, body).is_err() {
            failed += 1;
            if failed == finds {
                break;
            }
        }
    }
    (failed > 0).then(|| runs as f64 / failed as f64)
}

/// The README's table: seeds per find (seeds run / failing seeds) per bug
/// and strategy, median over `STARTS` start points (5 by default), each
/// running until `FINDS` failures (100) or `LIMIT` seeds (100,000); step
/// estimates measured as a sweep measures them. Failure lines go to
/// stderr: run with `2>/dev/null`.
#[test]
#[ignore]
fn measure_seeds_needed() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (starts, finds, limit) = (var("STARTS", 5), var("FINDS", 100), var("LIMIT", 100_000));
    let strategies = [
        ("uniform", Strategy::Uniform),
        ("pct(1)", Strategy::pct(1)),
        ("pct(2)", Strategy::pct(2)),
        ("pct(3)", Strategy::pct(3)),
        ("pct(4)", Strategy::pct(4)),
        ("hold", Strategy::hold()),
        ("portfolio", Strategy::portfolio()),
    ];
    let only = std::env::var("BUG").ok();
    let names = strategies.each_ref().map(|(name, _)| *name);
    println!("| planted bug | {} | portfolio / best |", names.join(" | "));
    println!("|---|{}---|", "---|".repeat(names.len()));
    for bug in BUGS {
        if only.as_deref().is_some_and(|only| !bug.name.contains(only)) {
            continue;
        }
        let needed: Vec<Option<f64>> = strategies
            .iter()
            .map(|(_, strategy)| {
                let mut per_start: Vec<Option<f64>> = (0..starts)
                    .map(|i| seeds_per_find(strategy, bug.body, i * 1_000_003, finds, limit))
                    .collect();
                per_start.sort_by(|a, b| a.unwrap_or(f64::MAX).total_cmp(&b.unwrap_or(f64::MAX)));
                per_start[per_start.len() / 2]
            })
            .collect();
        // Best of uniform and pct(1..=4), the strategies a user would
        // otherwise have to choose between.
        let best = needed[..5].iter().flatten().copied().reduce(f64::min);
        let ratio = match (needed[6], best) {
            (Some(p), Some(b)) => format!("{:.2}", p / b),
            (Some(_), None) => "only portfolio (and hold)".into(),
            _ => "-".into(),
        };
        let show = |n: &Option<f64>| match n {
            Some(n) if *n < 10.0 => format!("{n:.1}"),
            Some(n) => format!("{n:.0}"),
            None => format!("0 in {limit}"),
        };
        let cells: Vec<String> = needed.iter().map(show).collect();
        println!("| {} | {} | {ratio} |", bug.name, cells.join(" | "));
    }
}
