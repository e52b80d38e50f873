//! CONTRACT.md "Tasks and handles", "Deterministic scheduling and time",
//! "Auditor", "stop / stopped / Signaler" and "Error", one test per line.

use commonware_runtime::{
    deterministic::{self, Config, Executor},
    reschedule, Clock, Error, Handle, Runner, Signal, Signaler, Spawner,
};
use futures::{channel::oneshot, FutureExt};
use rand::{Rng, RngCore};
use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, UNIX_EPOCH},
};

fn panic_message(result: std::thread::Result<()>) -> String {
    let payload = result.expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".into()
    }
}

// ---- Tasks and handles ----

#[test]
fn spawned_task_runs_without_awaiting_its_handle() {
    let (executor, context, _) = Executor::default();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    executor.start(async move {
        drop(context.spawn("child", async move {
            flag.store(true, Ordering::SeqCst);
        }));
        for _ in 0..3 {
            reschedule().await;
        }
    });
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn handle_returns_output() {
    let (executor, context, _) = Executor::default();
    let out = executor.start(async move { context.spawn("child", async { "hello" }).await });
    assert_eq!(out, Ok("hello"));
}

#[test]
fn abort_resolves_to_closed() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        let handle = context.spawn("child", futures::future::pending::<()>());
        reschedule().await;
        handle.abort();
        assert_eq!(handle.await, Err(Error::Closed));
    });
}

#[test]
fn abort_after_finish_changes_nothing() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        let handle = context.spawn("child", async { 6 });
        for _ in 0..3 {
            reschedule().await;
        }
        handle.abort();
        assert_eq!(handle.await, Ok(6));
    });
}

#[test]
fn aborted_task_is_dropped() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (executor, context, _) = Executor::default();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Flag(dropped.clone());
    executor.start(async move {
        let handle = context.spawn("child", async move {
            let _flag = flag;
            futures::future::pending::<()>().await
        });
        reschedule().await;
        handle.abort();
    });
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn panic_in_spawned_task_propagates_with_message() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (executor, context, _) = Executor::default();
        executor.start(async move {
            let handle = context.spawn("child", async { panic!("child exploded") });
            let _ = handle.await;
            unreachable!("the runtime stops before the handle resolves");
        });
    }));
    assert_eq!(panic_message(result), "child exploded");
}

#[test]
fn panic_in_root_propagates_with_message() {
    let result = catch_unwind(|| {
        let (executor, _, _) = Executor::default();
        executor.start(async { panic!("root exploded") });
    });
    assert_eq!(panic_message(result), "root exploded");
}

#[test]
fn start_returns_when_root_finishes_even_with_running_tasks() {
    let (executor, context, _) = Executor::default();
    let out = executor.start(async move {
        context.spawn("forever", async move {
            loop {
                reschedule().await;
            }
        });
        reschedule().await;
        7
    });
    assert_eq!(out, 7);
}

#[test]
fn handle_awaited_after_runtime_ended_is_an_error() {
    let (executor, context, _) = Executor::default();
    // The handle leaves the runtime inside a tuple (returning it bare would
    // read as a forgotten `.await`).
    let (handle,): (Handle<()>,) =
        executor.start(async move { (context.spawn("never", futures::future::pending()),) });
    assert_eq!(futures::executor::block_on(handle), Err(Error::Closed));
}

#[test]
fn spawning_root_panics() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (executor, context, _) = Executor::default();
        executor.start(async move {
            context.spawn("root", async {});
        });
    }));
    assert_eq!(panic_message(result), "root task cannot be spawned");
}

type Registry = Arc<Mutex<prometheus_client::registry::Registry>>;

/// A default runtime that reports to a registry of the test's.
fn with_registry() -> (Registry, deterministic::Runner, deterministic::Context) {
    let registry = Registry::default();
    let cfg = Config {
        registry: registry.clone(),
        ..Config::default()
    };
    let (executor, context, _) = Executor::init(cfg);
    (registry, executor, context)
}

/// The registry's text exposition.
fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry.lock().unwrap()).unwrap();
    text
}

#[test]
fn labels_are_prefixed_by_parent() {
    let (registry, executor, context) = with_registry();
    executor.start(async move {
        let inner = context.clone();
        context
            .spawn("have", async move {
                inner.spawn("fun", async {}).await.unwrap();
            })
            .await
            .unwrap();
    });
    let text = encode(&registry);
    assert!(
        text.contains("tasks_spawned_total{label=\"have\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tasks_spawned_total{label=\"have_fun\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tasks_running{label=\"have_fun\"} 0"),
        "{text}"
    );
}

/// The executor counts task metrics itself; a scrape reads them without
/// waiting for the run loop, so a thread that scrapes while a task blocks on
/// it (holding the executor) finishes, and sees the counts so far: the
/// running task, its poll in progress, and a recovered runtime carries the
/// counts on.
#[test]
fn metrics_are_scraped_without_waiting_for_the_run_loop() {
    let (registry, executor, context) = with_registry();
    let scrape = |registry: &Registry| {
        let registry = registry.clone();
        std::thread::spawn(move || encode(&registry))
            .join()
            .unwrap()
    };
    let inner = registry.clone();
    let text = executor.start(async move {
        context
            .spawn("scraper", async move { scrape(&inner) })
            .await
            .unwrap()
    });
    for line in [
        r#"tasks_spawned_total{label="scraper"} 1"#,
        r#"tasks_running{label="scraper"} 1"#,
        r#"task_polls_total{label="scraper"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains(r#"label="root""#), "the root is not counted");
}

#[test]
fn task_metrics_carry_over_a_recovery() {
    let (registry, executor, context) = with_registry();
    let context = executor.start(async move {
        context.spawn("worker", async {}).await.unwrap();
        context.spawn("stuck", futures::future::pending::<()>());
        reschedule().await;
        context
    });
    let (executor, context, _) = context.recover();
    executor.start(async move {
        context.spawn("worker", async {}).await.unwrap();
    });
    let text = encode(&registry);
    for line in [
        r#"tasks_spawned_total{label="worker"} 2"#,
        r#"tasks_spawned_total{label="stuck"} 1"#,
        r#"tasks_running{label="stuck"} 0"#,
        r#"task_polls_total{label="worker"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}
// ---- Deterministic scheduling and time ----

#[test]
fn config_defaults() {
    let cfg = Config::default();
    assert_eq!(cfg.seed, 42);
    assert_eq!(cfg.cycle, Duration::from_millis(1));
    assert_eq!(cfg.timeout, None);
}

#[test]
fn seeded_and_timed_override_one_field() {
    // Same seed as default → same random stream; timed keeps seed 42.
    let draw = |(executor, mut context, _): (
        commonware_runtime::deterministic::Runner,
        commonware_runtime::deterministic::Context,
        _,
    )| { executor.start(async move { context.next_u64() }) };
    let default = draw(Executor::default());
    assert_eq!(draw(Executor::seeded(42)), default);
    assert_ne!(draw(Executor::seeded(43)), default);
    assert_eq!(draw(Executor::timed(Duration::from_secs(5))), default);
}

#[test]
fn clock_starts_at_epoch_and_sleep_advances_exactly() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        assert_eq!(context.current(), UNIX_EPOCH);
        context.sleep(Duration::from_millis(10)).await;
        assert_eq!(context.current(), UNIX_EPOCH + Duration::from_millis(10));
    });
}

#[test]
fn each_round_advances_time_by_cycle() {
    let (executor, context, _) = Executor::init(Config {
        cycle: Duration::from_millis(3),
        ..Config::default()
    });
    executor.start(async move {
        for round in 1..=5u64 {
            reschedule().await;
            assert_eq!(
                context.current(),
                UNIX_EPOCH + Duration::from_millis(3 * round)
            );
        }
    });
}

#[test]
fn sleepers_wake_in_deadline_order_whatever_the_seed() {
    for seed in 0..20 {
        let (executor, context, _) = Executor::seeded(seed);
        let order = executor.start(async move {
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut handles = Vec::new();
            for ms in [40u64, 10, 30, 20, 50] {
                let (context2, log) = (context.clone(), log.clone());
                handles.push(context.spawn("sleeper", async move {
                    context2.sleep(Duration::from_millis(ms)).await;
                    log.lock().unwrap().push(ms);
                }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
            let order = log.lock().unwrap().clone();
            order
        });
        assert_eq!(order, [10, 20, 30, 40, 50], "seed {seed}");
    }
}

#[test]
fn sleep_until_past_resolves_at_once() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        context.sleep(Duration::from_secs(1)).await;
        let before = context.current();
        context.sleep_until(UNIX_EPOCH).await;
        context.sleep(Duration::ZERO).await;
        assert_eq!(context.current(), before);
    });
}

#[test]
fn timeout_panics_and_time_skipping_does_not_jump_over_it() {
    let result = catch_unwind(|| {
        let (executor, context, _) = Executor::timed(Duration::from_secs(10));
        executor.start(async move {
            context.sleep(Duration::from_secs(3600)).await;
        });
    });
    assert!(panic_message(result).starts_with("runtime timeout"));
}

#[test]
fn busy_loop_hits_timeout() {
    let result = catch_unwind(|| {
        let (executor, _, _) = Executor::timed(Duration::from_millis(50));
        executor.start(async move {
            loop {
                reschedule().await;
            }
        });
    });
    assert!(panic_message(result).starts_with("runtime timeout"));
}

#[test]
fn stall_panics_and_lists_pending_tasks() {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (executor, context, _) = Executor::default();
        executor.start(async move {
            let (_tx, rx) = oneshot::channel::<()>();
            let (tx2, rx2) = oneshot::channel::<()>();
            context.spawn("waiter", async move {
                let _ = rx2.await;
            });
            context.sleep(Duration::from_millis(5)).await;
            let _ = rx.await;
            drop(tx2);
        });
    }));
    let message = panic_message(result);
    assert!(message.starts_with("runtime stalled"), "{message}");
    assert!(message.contains("root"), "{message}");
    assert!(message.contains("waiter"), "{message}");
    assert!(message.contains("last polled 5ms ago"), "{message}");
}

#[test]
fn zero_cycle_with_timeout_panics() {
    let result = catch_unwind(|| {
        Executor::init(Config {
            cycle: Duration::ZERO,
            timeout: Some(Duration::from_secs(1)),
            ..Config::default()
        });
    });
    assert_eq!(
        panic_message(result),
        "cycle duration must be non-zero when timeout is set"
    );
}

#[test]
fn overflowing_sleep_panics_with_a_clear_message() {
    let result = catch_unwind(|| {
        let (executor, context, _) = Executor::default();
        executor.start(async move {
            context.sleep(Duration::MAX).await;
        });
    });
    let message = panic_message(result);
    assert!(message.contains("sleep duration"), "{message}");
    assert!(
        message.contains("passes the end of virtual time"),
        "{message}"
    );
}

#[test]
fn overflowing_timeout_panics_with_a_clear_message() {
    let result = catch_unwind(|| {
        Executor::timed(Duration::MAX);
    });
    let message = panic_message(result);
    assert!(message.contains("Config::timeout"), "{message}");
    assert!(
        message.contains("passes the end of virtual time"),
        "{message}"
    );
}

/// The panic message of `f`, which must panic.
fn panic_of(f: impl FnOnce()) -> String {
    panic_message(catch_unwind(AssertUnwindSafe(f)))
}

#[test]
fn arguments_past_the_end_of_virtual_time_are_rejected_where_given() {
    let end = Duration::from_nanos(u64::MAX / 2);
    let message = panic_of(|| {
        Executor::init(Config {
            cycle: Duration::from_nanos(u64::MAX),
            ..Config::default()
        });
    });
    assert!(message.contains("Config::cycle"), "{message}");
    // The largest cycle the clock allows is accepted, and a run with it
    // ends with a timeout naming the end of time, not an overflow.
    let message = panic_of(|| {
        let (executor, context, _) = Executor::init(Config {
            cycle: end,
            ..Config::default()
        });
        drop(context);
        executor.start(async move {
            loop {
                reschedule().await;
            }
        });
    });
    assert!(
        message.contains("runtime timeout: virtual time passed its end"),
        "{message}"
    );
    // Deadlines and durations, named as the caller wrote them, at the call.
    let message = panic_of(|| {
        let (_, context, _) = Executor::default();
        drop(context.sleep_until(UNIX_EPOCH + Duration::from_nanos(u64::MAX)));
    });
    assert!(message.contains("sleep_until deadline"), "{message}");
    let (_, context, _) = Executor::default();
    drop(context.sleep_until(UNIX_EPOCH + end));
    let message = panic_of(|| drop(context.sleep(end + Duration::from_nanos(1))));
    assert!(message.contains("sleep duration"), "{message}");
    let message = panic_of(|| {
        Executor::init(Config {
            faults: deterministic::Faults {
                network: deterministic::LinkFaults {
                    latency: Duration::MAX,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Config::default()
        });
    });
    assert!(message.contains("Faults::network"), "{message}");
    assert!(message.contains("latency"), "{message}");
    let message = panic_of(|| {
        let (_, context, _) = Executor::default();
        let mut faults = deterministic::Faults::default();
        faults.storage.read = f64::NAN;
        context.set_faults(faults);
    });
    assert!(message.contains("Faults::storage.read"), "{message}");
}

#[test]
fn a_crash_point_past_the_end_of_virtual_time_never_comes() {
    let (runner, context, _) = Executor::default();
    let output = runner.start_until(deterministic::Halt::At(Duration::MAX), async move {
        context.sleep(Duration::from_secs(3600)).await;
        7
    });
    assert_eq!(output, Some(7));
}

// ---- A runtime that has ended fails fast ----

#[test]
fn spawn_after_the_run_ended_resolves_to_closed_at_once() {
    let (executor, context, _) = Executor::default();
    executor.start(async {});
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let handle = context.spawn("late", async move {
        flag.store(true, Ordering::SeqCst);
    });
    assert_eq!(handle.now_or_never(), Some(Err(Error::Closed)));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn spawn_after_a_failed_run_resolves_to_closed_at_once() {
    let config = Config::default();
    let (executor, context, _) = Executor::init(config);
    let spawner = context.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        executor.start(async move { panic!("boom") });
    }));
    assert!(result.is_err());
    let handle = spawner.spawn("late", async { 1 });
    assert_eq!(handle.now_or_never(), Some(Err(Error::Closed)));
}

#[test]
fn sleep_after_the_run_ended_panics_instead_of_hanging() {
    let (executor, context, _) = Executor::default();
    let late = context.clone();
    executor.start(async move { context.sleep(Duration::from_millis(5)).await });
    // Due already: completes.
    assert_eq!(
        late.sleep_until(UNIX_EPOCH + Duration::from_millis(1))
            .now_or_never(),
        Some(())
    );
    let message = panic_of(|| {
        let _ = late.sleep(Duration::from_millis(1)).now_or_never();
    });
    assert!(message.contains("runtime that has ended"), "{message}");
}

#[test]
fn a_recovered_runtime_runs_what_its_new_context_spawns() {
    let (runner, context, _) = Executor::default();
    runner.start(async {});
    let old = context.clone();
    let (runner, context, _) = context.recover();
    let value = runner.start(async move { context.spawn("child", async { 5 }).await });
    assert_eq!(value, Ok(5));
    assert_eq!(
        old.spawn("late", async {}).now_or_never(),
        Some(Err(Error::Closed))
    );
}

#[test]
fn context_rng_works_with_rand_and_is_seeded() {
    let run = |seed| {
        let (executor, mut context, _) = Executor::seeded(seed);
        executor.start(async move {
            let a: u64 = context.gen();
            let b = context.gen_range(0..100u32);
            let mut bytes = [0u8; 13];
            context.fill_bytes(&mut bytes);
            (a, b, bytes)
        })
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
    fn crypto<R: rand::CryptoRng + RngCore>() {}
    crypto::<commonware_runtime::deterministic::Context>();
}

#[test]
fn context_works_before_start_and_after_runner_dropped() {
    let (executor, context, _) = Executor::seeded(3);
    let before = context.clone().next_u32();
    drop(executor);
    let after = context.clone().next_u32();
    assert_ne!((before, after), (0, 0));
    // Clones share one generator: the stream continues.
    let (_, fresh, _) = Executor::seeded(3);
    let mut fresh = fresh;
    assert_eq!(fresh.next_u32(), before);
    assert_eq!(fresh.next_u32(), after);
}

#[test]
fn governor_clock_reads_virtual_time() {
    use governor::clock::Clock as _;
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        context.sleep(Duration::from_secs(2)).await;
        assert_eq!(context.now(), UNIX_EPOCH + Duration::from_secs(2));
    });
}

// ---- Auditor ----

fn audited(seed: u64, payload: u64) -> String {
    let (executor, context, auditor) = Executor::seeded(seed);
    executor.start(async move {
        let mut handles = Vec::new();
        for i in 0..5u64 {
            let mut ctx = context.clone();
            handles.push(context.spawn("worker", async move {
                for _ in 0..3 {
                    let _ = ctx.next_u64();
                    reschedule().await;
                }
                i * payload
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        context.stop(payload as i32);
    });
    auditor.state()
}

#[test]
fn auditor_state_is_hex_and_repeats_per_seed() {
    let state = audited(1, 1);
    assert!(state.len() >= 16 && state.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(state, audited(1, 1));
    assert_ne!(state, audited(2, 1));
    assert_ne!(state, audited(1, 2), "stop value is audited");
}

#[test]
fn auditor_state_changes_when_work_runs() {
    let (executor, context, auditor) = Executor::default();
    let before = auditor.state();
    executor.start(async move {
        reschedule().await;
        drop(context);
    });
    assert_ne!(before, auditor.state());
}

// ---- stop / stopped / Signaler ----

#[test]
fn first_stop_value_wins() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        let signal = context.stopped();
        context.stop(1);
        context.stop(2);
        assert_eq!(signal.await, Ok(1));
        assert_eq!(context.stopped().await, Ok(1));
    });
}

#[test]
fn stopped_after_stop_is_ready_on_first_poll() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        context.stop(9);
        assert_eq!(context.stopped().now_or_never(), Some(Ok(9)));
    });
}

#[test]
fn stop_aborts_nothing() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        let inner = context.clone();
        let handle = context.spawn("worker", async move {
            let mut signal = inner.stopped();
            let value = (&mut signal).await.unwrap();
            // Still running after the signal: cleanup work is possible.
            inner.sleep(Duration::from_millis(5)).await;
            value * 2
        });
        context.sleep(Duration::from_millis(1)).await;
        context.stop(21);
        assert_eq!(handle.await, Ok(42));
    });
}

#[test]
fn select_on_mut_signal_in_a_loop() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        let (mut signaler, mut signal) = Signaler::new();
        let inner = context.clone();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let handle = context.spawn("looper", async move {
            loop {
                futures::select! {
                    value = &mut signal => return value.unwrap(),
                    _ = inner.sleep(Duration::from_millis(10)).fuse() => {
                        t.fetch_add(1, Ordering::SeqCst);
                    },
                }
            }
        });
        context.sleep(Duration::from_millis(35)).await;
        signaler.signal(4);
        assert_eq!(handle.await, Ok(4));
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn dropped_signaler_resolves_err() {
    let (signaler, signal): (Signaler, Signal) = Signaler::new();
    drop(signaler);
    assert!(futures::executor::block_on(signal).is_err());
}

// ---- Error ----

#[test]
fn error_display_strings() {
    let cases: Vec<(Error, &str)> = vec![
        (Error::Exited, "exited"),
        (Error::Closed, "closed"),
        (Error::Timeout, "timeout"),
        (Error::BindFailed, "bind failed"),
        (Error::ConnectionFailed, "connection failed"),
        (Error::WriteFailed, "write failed"),
        (Error::ReadFailed, "read failed"),
        (Error::SendFailed, "send failed"),
        (Error::RecvFailed, "recv failed"),
        (
            Error::PartitionCreationFailed("p".into()),
            "partition creation failed: p",
        ),
        (Error::PartitionMissing("p".into()), "partition missing: p"),
        (Error::PartitionCorrupt("p".into()), "partition corrupt: p"),
        (
            Error::BlobOpenFailed("p".into(), "0a".into()),
            "blob open failed: p/0a",
        ),
        (
            Error::BlobMissing("p".into(), "0a".into()),
            "blob missing: p/0a",
        ),
        (
            Error::BlobTruncateFailed("p".into(), "0a".into()),
            "blob truncate failed: p/0a",
        ),
        (
            Error::BlobSyncFailed("p".into(), "0a".into()),
            "blob sync failed: p/0a",
        ),
        (
            Error::BlobCloseFailed("p".into(), "0a".into()),
            "blob close failed: p/0a",
        ),
        (Error::BlobInsufficientLength, "blob insufficient length"),
        (Error::OffsetOverflow, "offset overflow"),
    ];
    assert_eq!(cases.len(), 19);
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
        let _: &dyn std::error::Error = &error;
        assert_eq!(error, error);
    }
}
