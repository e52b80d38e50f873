//! Planted bugs of different depths, and how many seeds each scheduling
//! strategy needs to find them.
//!
//! Each program staggers its tasks so that in lockstep (every ready task
//! polled once per round, as `Strategy::Uniform` does) the racy windows
//! never overlap: the bug needs one task to fall behind the others by
//! several rounds. Uniform shuffling only reorders tasks inside a round, so
//! it can never find these bugs; PCT holds lower-priority tasks back and
//! finds the depth-2 ones within a handful of seeds and the depth-3 one
//! within a few hundred (with its step estimate measured by the sweep); the
//! byte-stream strategy (what the fuzzer drives) finds them from a few
//! random inputs.
//!
//! `cargo test --release --test strategies -- --ignored --nocapture` prints
//! the full table (median seeds needed over many start points).

use commonware_runtime::{
    deterministic::{self, Config, Context, Strategy, Sweep},
    reschedule, Spawner,
};
use futures::lock::Mutex as AsyncMutex;
use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};
use std::{future::Future, pin::Pin, sync::Arc};

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

type Body = fn(Context) -> Pin<Box<dyn Future<Output = ()> + Send>>;

const BUGS: [(&str, Body, &str); 3] = [
    ("lost update", |c| Box::pin(lost_update(c)), "lost update"),
    (
        "stale read",
        |c| Box::pin(stale_read(c)),
        "committed a stale version",
    ),
    ("lock order", |c| Box::pin(lock_order(c)), "runtime stalled"),
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
    for (name, body, message) in BUGS {
        let lockstep = Config {
            strategy: Strategy::Replay(Arc::default()),
            ..Config::default()
        };
        assert!(deterministic::try_run(&lockstep, body).is_ok(), "{name}");
        let config = Config {
            strategy: Strategy::pct(3),
            ..Config::default()
        };
        let failure = Sweep::new(config, 0..2_000).run(body).unwrap_err();
        assert!(matches!(failure.strategy, Strategy::Pct { depth: 3, steps } if steps > 5));
        assert!(failure.message.contains(message), "{name}: {failure}");
    }
}

#[test]
fn uniform_never_finds_bugs_that_need_a_task_to_fall_behind() {
    for (name, body, _) in BUGS {
        let config = Config::default();
        let swept = Sweep::new(config, 0..300).run(body).unwrap_or_else(|f| {
            panic!("{name}: uniform shuffling cannot hold a task back, yet: {f}")
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
        let (name, body, _) = BUGS[bug];
        let needed = median(&Strategy::pct(depth), body, 5, 5_000);
        let needed = needed.unwrap_or_else(|| panic!("{name}: pct({depth}) found nothing"));
        assert!(
            needed <= bound,
            "{name}: pct({depth}) needed {needed} seeds (median)"
        );
    }
}

#[test]
fn byte_stream_input_finds_the_lost_update() {
    let found = random_inputs_needed(BUGS[0].1, 0, 16, 2_000);
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

/// The README's table: median seeds needed per bug and strategy (21 start
/// points; PCT's step estimate measured by the sweep, or the default 1000).
#[test]
#[ignore]
fn measure_seeds_needed() {
    let limit = 20_000;
    let fixed = |depth| Strategy::Pct {
        depth,
        steps: deterministic::PCT_DEFAULT_STEPS,
    };
    let strategies = [
        ("uniform", Strategy::Uniform),
        ("pct(2), steps measured", Strategy::pct(2)),
        ("pct(3), steps measured", Strategy::pct(3)),
        ("pct(2, steps=1000)", fixed(2)),
        ("pct(3, steps=1000)", fixed(3)),
    ];
    let names = strategies.each_ref().map(|(name, _)| *name);
    println!("| bug | {} | random 32-byte inputs |", names.join(" | "));
    let show = |n: Option<u64>| n.map_or(format!("not found in {limit}"), |n| n.to_string());
    for (name, body, _) in BUGS {
        let mut cells: Vec<String> = strategies
            .iter()
            .map(|(_, s)| show(median(s, body, 21, limit)))
            .collect();
        let mut inputs: Vec<Option<u64>> = (0..21)
            .map(|rng_seed| random_inputs_needed(body, rng_seed, 32, limit))
            .collect();
        inputs.sort_by_key(|n| n.unwrap_or(u64::MAX));
        cells.push(show(inputs[inputs.len() / 2]));
        println!("| {name} | {} |", cells.join(" | "));
    }
}
