//! Reproducing failures: failure lines, seed sweeps, recorded schedules and
//! determinism checks of the deterministic runtime.
//!
//! This is the one file in the crate that uses `std::collections::HashMap`:
//! on purpose, to show that `check_determinism` finds its iteration order.

use commonware_runtime::{
    deterministic::{self, Config, Context, Executor, Schedule, Strategy, Sweep},
    reschedule, Clock, Runner, Spawner,
};
use parking_lot::Mutex;
use rand::RngCore;
use std::{
    collections::HashMap,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    time::Duration,
};

/// Three workers sleep random times; fails (for some seeds) when `w2`
/// finishes first. Returns the finishing order.
async fn first_finisher(context: Context) -> Vec<String> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..3 {
        let (mut context, order) = (context.clone(), order.clone());
        handles.push(context.clone().spawn(&format!("w{i}"), async move {
            let nap = context.next_u64() % 5;
            context.sleep(Duration::from_millis(nap)).await;
            order.lock().push(format!("w{i}"));
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let order = order.lock().clone();
    assert_ne!(order[0], "w2", "w2 finished first");
    order
}

/// `first_finisher`, then one more random number.
async fn finisher_and_number(mut context: Context) -> (Vec<String>, u64) {
    let order = first_finisher(context.clone()).await;
    (order, context.next_u64())
}

fn config(strategy: Strategy) -> Config {
    Config {
        strategy,
        ..Config::default()
    }
}

/// The lowest seed in `0..` for which `first_finisher` fails, found by
/// running seeds one by one.
fn lowest_failing_seed(strategy: &Strategy) -> u64 {
    (0..)
        .find(|&seed| {
            let config = Config {
                seed,
                ..config(strategy.clone())
            };
            deterministic::try_run(&config, first_finisher).is_err()
        })
        .unwrap()
}

#[test]
fn rerunning_a_failure_reproduces_message_time_and_auditor_state() {
    for strategy in [Strategy::Uniform, Strategy::pct(2)] {
        let seed = lowest_failing_seed(&strategy);
        let config = Config {
            seed,
            ..config(strategy.clone())
        };
        let first = deterministic::try_run(&config, first_finisher).unwrap_err();
        let second = deterministic::try_run(&config, first_finisher).unwrap_err();
        assert!(first.same_failure(&second), "{first}\nvs\n{second}");
        assert_eq!(first.seed, seed);
        assert_eq!(first.strategy.to_string(), strategy.to_string());
        assert!(first.time > Duration::ZERO);
        assert_eq!(first.auditor.len(), 32);
        assert!(first.message.contains("w2 finished first"));
        let line = first.to_string();
        assert!(
            line.starts_with(&format!(
                "deterministic runtime panicked (seed={seed}, strategy={strategy}): assertion"
            )),
            "{line}"
        );

        // The same through the plain Runner API: the original payload
        // propagates and the auditor ends in the same state.
        let (runner, context, auditor) = Executor::init(config.clone());
        let payload =
            catch_unwind(AssertUnwindSafe(|| runner.start(first_finisher(context)))).unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert_eq!(*message, first.message);
        assert_eq!(auditor.state(), first.auditor);
    }
}

#[test]
#[should_panic(expected = "w2 finished first")]
fn the_original_panic_message_propagates_under_every_strategy() {
    let config = Config {
        seed: lowest_failing_seed(&Strategy::pct(3)),
        ..config(Strategy::pct(3))
    };
    let (runner, context, _) = Executor::init(config);
    runner.start(first_finisher(context));
}

#[test]
fn stalls_reproduce_too() {
    let stall = |context: Context| async move {
        let (_tx, rx) = futures::channel::oneshot::channel::<()>();
        context.sleep(Duration::from_millis(3)).await;
        let _ = rx.await;
    };
    let config = config(Strategy::pct(2));
    let first = deterministic::try_run(&config, stall).unwrap_err();
    let second = deterministic::try_run(&config, stall).unwrap_err();
    assert!(first.message.starts_with("runtime stalled"), "{first}");
    assert!(first.same_failure(&second));
    assert!(first.time >= Duration::from_millis(3));
}

#[test]
fn a_sweep_reports_the_lowest_failing_seed_whatever_its_thread_count() {
    for strategy in [Strategy::Uniform, Strategy::pct(2)] {
        let lowest = lowest_failing_seed(&strategy);
        for threads in [1, 2, 3] {
            let failure = Sweep::new(config(strategy.clone()), 0..1_000)
                .threads(threads)
                .run(first_finisher)
                .unwrap_err();
            assert_eq!(failure.seed, lowest, "{threads} threads");
            let schedule = failure.schedule.clone().expect("recorded by a rerun");
            let replay = config(Strategy::Replay(Arc::new(schedule)));
            let again = deterministic::try_run(&replay, first_finisher).unwrap_err();
            assert_eq!(
                (again.time, &again.auditor),
                (failure.time, &failure.auditor)
            );
        }
    }
}

#[test]
fn a_passing_sweep_runs_every_seed_of_its_shard() {
    let passing = |context: Context| async move {
        context.sleep(Duration::from_millis(1)).await;
    };
    let swept = Sweep::new(Config::default(), 0..90)
        .threads(2)
        .run(passing)
        .unwrap();
    assert_eq!((swept.seeds, swept.threads), (90, 2));
    let mut covered = 0;
    for shard in 0..4 {
        let sweep = Sweep::new(Config::default(), 0..90)
            .shard(shard, 4)
            .unwrap();
        assert!(sweep.seeds().all(|seed| seed % 4 == shard));
        covered += sweep.run(passing).unwrap().seeds;
    }
    assert_eq!(covered, 90);
    // Reads SEEDS / SHARD when set; runs at least one seed either way.
    assert!(
        deterministic::explore(Config::default(), 0..5, passing)
            .unwrap()
            .seeds
            >= 1
    );
}

#[test]
fn each_shard_finds_its_own_lowest_failing_seed() {
    let lowest = lowest_failing_seed(&Strategy::Uniform);
    let found: Vec<u64> = (0..3)
        .map(|shard| {
            let sweep = Sweep::new(Config::default(), 0..1_000)
                .shard(shard, 3)
                .unwrap();
            sweep.run(first_finisher).unwrap_err().seed
        })
        .collect();
    assert!(found.iter().enumerate().all(|(i, s)| s % 3 == i as u64));
    assert_eq!(*found.iter().min().unwrap(), lowest);
}

#[test]
fn recorded_schedules_replay_exactly_and_survive_their_text_form() {
    for strategy in [
        Strategy::Uniform,
        Strategy::pct(3),
        Strategy::Bytes(vec![9, 4, 200, 7, 1].into()),
    ] {
        let config = Config {
            seed: 11,
            ..config(strategy)
        };
        let plain = deterministic::try_run(&config, finisher_and_number);
        let (recorded, schedule) = deterministic::record(&config, finisher_and_number);
        let text: Schedule = schedule.to_string().parse().unwrap();
        let replay = self::config(Strategy::Replay(Arc::new(text)));
        let replayed = deterministic::try_run(&replay, finisher_and_number);
        match (plain, recorded, replayed) {
            (Ok(a), Ok(b), Ok(c)) => assert!(a == b && b == c),
            (Err(a), Err(b), Err(c)) => assert!(a.same_failure(&b) && b.same_failure(&c)),
            _ => panic!("recording or replay changed the outcome"),
        }
    }
}

#[test]
fn the_same_bytes_give_the_same_run() {
    let state = |bytes: &[u8]| {
        let config = config(Strategy::Bytes(bytes.into()));
        let (runner, context, auditor) = Executor::init(config);
        let _ = catch_unwind(AssertUnwindSafe(|| runner.start(first_finisher(context))));
        auditor.state()
    };
    assert_eq!(state(&[1, 2, 3, 4]), state(&[1, 2, 3, 4]));
    assert_ne!(state(&[1, 2, 3, 4]), state(&[3, 2, 3, 4]));
}

#[test]
fn a_deterministic_body_passes_the_determinism_check() {
    let config = config(Strategy::pct(2));
    let state = deterministic::check_determinism(&config, |context| async move {
        let _ = first_finisher(context).await;
    })
    .unwrap();
    let (runner, context, auditor) = Executor::init(config);
    let _ = catch_unwind(AssertUnwindSafe(|| runner.start(first_finisher(context))));
    assert_eq!(state, auditor.state());
}

#[test]
fn the_determinism_check_points_at_hash_map_iteration() {
    let divergence = deterministic::check_determinism(&Config::default(), |context| async move {
        context.sleep(Duration::from_millis(2)).await;
        // Each HashMap gets its own random hash keys: its iteration order
        // differs from run to run.
        let workers: HashMap<u32, ()> = (0..32).map(|i| (i, ())).collect();
        for (id, ()) in workers {
            context.spawn(&format!("worker-{id}"), async {});
        }
    })
    .unwrap_err();
    let report = divergence.to_string();
    println!("{report}");
    let (first, second) = (divergence.first.unwrap(), divergence.second.unwrap());
    assert!(first.starts_with("spawn of task #"), "{report}");
    assert!(first.contains("'worker-"), "{report}");
    assert!(first.ends_with("by #0 'root'"), "{report}");
    assert_ne!(first, second);
    assert!(
        divergence.index > 3,
        "the sleep before it matched: {report}"
    );
    assert!(report.contains(&format!("diverged at event {}", divergence.index)));
}

/// Eight workers yield ten times each, then log their id; fails when the
/// last one spawned logs before the first one.
async fn last_before_first(context: Context) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for id in 0..8 {
        let log = log.clone();
        handles.push(context.spawn(&format!("w{id}"), async move {
            for _ in 0..10 {
                reschedule().await;
            }
            log.lock().push(id);
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let log = log.lock();
    let position = |id| log.iter().position(|&x| x == id).unwrap();
    assert!(position(0) < position(7), "w7 logged before w0");
}

#[test]
fn shrinking_a_uniform_failure_keeps_one_decision() {
    let config = Config::default();
    let failure = Sweep::new(config.clone(), 0..100)
        .threads(1)
        .run(last_before_first)
        .unwrap_err();
    let recorded = failure.schedule.clone().unwrap();
    let listed: usize = recorded.decisions().map(|d| d.order.len()).sum();
    let shrunk = deterministic::shrink(&config, &failure, last_before_first).unwrap();
    println!(
        "uniform seed {}: {} decisions listing {listed} tasks shrunk to:\n{}",
        failure.seed,
        recorded.decisions().count(),
        shrunk.description
    );
    assert!(
        recorded.decisions().count() >= 10,
        "every round was shuffled"
    );
    assert_eq!(
        shrunk.schedule.decisions().count(),
        1,
        "{}",
        shrunk.description
    );
    let decision = shrunk.schedule.decisions().next().unwrap();
    assert_eq!(decision.order.len(), 1, "{}", shrunk.description);
    assert!(!decision.hold);
    assert!(
        shrunk.description.contains("'w7' run(s) first"),
        "{}",
        shrunk.description
    );
    assert!(shrunk.failure.message.contains("w7 logged before w0"));
}

/// A stalled cluster: every pending task says what it waits on.
#[test]
fn a_stall_says_what_each_task_waits_on() {
    use commonware_runtime::{Listener as _, Network as _, Stream as _};
    let stall = |context: Context| async move {
        let address = "10.0.0.1:9000".parse().unwrap();
        let mut listener = context.bind(address).await.unwrap();
        let (_dialer_sink, mut dialer_stream) = context.dial(address).await.unwrap();
        let (_, listener_sink, _listener_stream) = listener.accept().await.unwrap();
        let reader = context.spawn("reader", async move {
            // The peer sent 3 of the 8 bytes and then nothing.
            let mut buf = [0u8; 8];
            dialer_stream.recv(&mut buf).await
        });
        let mut listener_sink = listener_sink;
        commonware_runtime::Sink::send(&mut listener_sink, &[1, 2, 3])
            .await
            .unwrap();
        let c = context.clone();
        context.spawn("shutdown", async move {
            let _ = c.stopped().await;
        });
        let (_tx, rx) = futures::channel::oneshot::channel::<()>();
        context.spawn("channel", async move {
            let _ = rx.await;
        });
        let mut lonely = context
            .bind("10.0.0.2:7000".parse().unwrap())
            .await
            .unwrap();
        context.spawn("listener", async move {
            let _ = lonely.accept().await;
        });
        let _keep = listener_sink;
        let _ = reader.await;
    };
    let failure = deterministic::try_run(&config(Strategy::Uniform), stall).unwrap_err();
    let message = &failure.message;
    assert!(message.starts_with("runtime stalled"), "{message}");
    assert!(
        message.contains("root (task #0)")
            && message.contains("waits on the Handle of task #1 'reader'"),
        "{message}"
    );
    assert!(
        message.contains("'reader'")
            && message
                .contains("a recv on connection #0 (bytes from the listener), 5 byte(s) missing"),
        "{message}"
    );
    assert!(
        message.contains("waits on the stopped() signal"),
        "{message}"
    );
    assert!(
        message.contains("channel (task #3)")
            && message.contains("waits on nothing the runtime saw"),
        "{message}"
    );
    assert!(
        message.contains(
            "listener (task #4): last polled 1ms ago, waits on an accept on 10.0.0.2:7000 (nothing dialed it)"
        ),
        "{message}"
    );
}

/// A timeout lists the pending tasks the same way, timers included.
#[test]
fn a_timeout_says_what_each_task_waits_on() {
    let config = Config {
        timeout: Some(Duration::from_millis(20)),
        ..config(Strategy::Uniform)
    };
    let failure = deterministic::try_run(&config, |context: Context| async move {
        let c = context.clone();
        context.spawn("sleeper", async move {
            c.sleep(Duration::from_secs(60)).await;
        });
        loop {
            reschedule().await;
        }
    })
    .unwrap_err();
    let message = &failure.message;
    assert!(message.starts_with("runtime timeout"), "{message}");
    // The same listing on demand.
    let (runner, context, _) = Executor::default();
    let report = runner.start(async move {
        let c = context.clone();
        let _sleeper = context.spawn("sleeper", async move {
            c.sleep(Duration::from_secs(1)).await;
        });
        context.sleep(Duration::from_millis(2)).await;
        context.wait_report()
    });
    assert!(
        report.starts_with("2 task(s) pending at 2ms (virtual):")
            && report
                .contains("sleeper (task #1): last polled 1ms ago, waits on a timer due at 1.001s"),
        "{report}"
    );
    assert!(message.contains("sleeper (task #1)"), "{message}");
    assert!(
        message.contains("waits on a timer due at 60.001s"),
        "{message}"
    );
    assert!(
        message
            .contains("root (task #0): last polled 1ms ago, waits on nothing: it is ready to run"),
        "{message}"
    );
}

/// Reachability points: tallied by a sweep, listed with their first seed,
/// gaps named; they change nothing in a run.
#[test]
fn a_sweep_tallies_reachability_points() {
    use commonware_runtime::Assertions;
    let body = |mut context: Context| async move {
        let roll = context.next_u64() % 4;
        context.sometimes("rolled zero", roll == 0);
        context.sometimes("rolled seven", roll == 7);
        if roll == 1 {
            context.reached("rolled one");
        }
        context.always("roll below four", roll < 4);
        context.sleep(Duration::from_millis(1)).await;
    };
    let swept = Sweep::new(config(Strategy::Uniform), 0..200)
        .threads(2)
        .run(body)
        .unwrap();
    let points = swept.points.points();
    let find = |name: &str| points.iter().find(|p| p.name == name).unwrap().clone();
    let zero = find("rolled zero");
    assert!((20..80).contains(&zero.seeds), "{zero:?}");
    let first = zero.first_seed.unwrap();
    // Replaying the first seed gets there.
    let config = Config {
        seed: first,
        ..config(Strategy::Uniform)
    };
    let (_, context, _) = Executor::init(config.clone());
    let roll = { context.clone() }.next_u64() % 4;
    assert_eq!(roll, 0);
    assert!(find("rolled seven").is_gap());
    assert_eq!(find("roll below four").seeds, 200);
    assert!(find("rolled one").seeds > 0);
    assert_eq!(swept.points.gaps().len(), 1);
    let table = swept.points.to_string();
    assert!(
        table.contains("rolled seven") && table.contains("GAP"),
        "{table}"
    );

    // Collecting points changes nothing in the run.
    let (runner, context, auditor) = Executor::init(config.clone());
    runner.start(body(context));
    let (runner, context, collected) = Executor::init(config);
    context.collect_points();
    runner.start(body(context));
    assert_eq!(auditor.state(), collected.state());
}

#[test]
#[should_panic(expected = "always 'never odd' failed")]
fn an_always_point_fails_the_run_naming_the_point() {
    use commonware_runtime::Assertions;
    let (runner, context, _) = Executor::default();
    runner.start(async move {
        context.always("never odd", 3 % 2 == 0);
    });
}

/// The README's stall example, word for word.
#[test]
fn the_readme_stall_example() {
    let config = Config {
        seed: 7,
        ..Config::default()
    };
    let failure = deterministic::try_run(&config, |context: Context| async move {
        let c = context.clone();
        let waiter = context.spawn("waiter", async move {
            c.sleep(Duration::from_millis(5)).await;
            let (_tx, rx) = futures::channel::oneshot::channel::<()>();
            let _keep = &_tx;
            let _ = rx.await;
        });
        let _ = waiter.await;
    })
    .unwrap_err();
    assert_eq!(
        failure.message,
        "runtime stalled at 7ms (virtual): no task is ready and no timer is pending; 2 task(s) wait forever:
  - root (task #0): last polled 7ms ago, waits on the Handle of task #1 'waiter'
  - waiter (task #1): last polled 1ms ago, waits on nothing the runtime saw (a channel, a lock, or a waker held outside the runtime)"
    );
}
