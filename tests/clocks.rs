//! Per-node clocks: offsets, drift and jumps show on `current()` and on
//! sleeps of the node that has them and nowhere else, repeat per seed,
//! survive `recover()`, and bad settings panic naming the setting.

use commonware_runtime::{
    deterministic::{ClockFaults, ClockJump, Config, Context, Executor, Faults},
    Clock, Runner, Spawner,
};
use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, UNIX_EPOCH},
};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn nanos(context: &Context) -> u64 {
    let now = context.current().duration_since(UNIX_EPOCH).unwrap();
    now.as_nanos() as u64
}

fn clocks(clocks: impl IntoIterator<Item = (IpAddr, ClockFaults)>) -> Faults {
    Faults {
        clocks: clocks.into_iter().collect(),
        ..Faults::default()
    }
}

fn run<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
    seed: u64,
    faults: Faults,
    f: impl FnOnce(Context) -> F,
) -> (T, String) {
    let (runner, context, auditor) = Executor::init(Config {
        seed,
        faults,
        ..Config::default()
    });
    let out = runner.start(f(context));
    (out, auditor.state())
}

const SECOND: u64 = 1_000_000_000;

#[test]
fn an_offset_shows_on_its_node_only() {
    let faults = clocks([(
        ip(1),
        ClockFaults {
            offset: 5 * SECOND as i64,
            ..ClockFaults::default()
        },
    )]);
    let ((a, b, root), _) = run(1, faults, |context| async move {
        let a = context.with_ip(ip(1));
        let b = context.with_ip(ip(2));
        (nanos(&a), nanos(&b), nanos(&context))
    });
    assert_eq!(a, 5 * SECOND);
    assert_eq!((b, root), (0, 0));
}

#[test]
fn drift_shows_on_current_and_on_sleeps() {
    let faults = clocks([(
        ip(1),
        ClockFaults {
            drift_ppm: 100_000, // 10% fast
            ..ClockFaults::default()
        },
    )]);
    let ((read, slept, slow_read), _) = run(1, faults, |context| async move {
        let a = context.with_ip(ip(1));
        context.sleep(Duration::from_secs(10)).await;
        let read = nanos(&a);
        // One second by a clock 10% fast is 1/1.1 s of true time.
        let start = nanos(&context);
        a.sleep(Duration::from_secs(1)).await;
        let slept = nanos(&context) - start;
        (read, slept, nanos(&context.with_ip(ip(2))))
    });
    assert_eq!(read, 11 * SECOND);
    assert_eq!(slept, 909_090_910);
    assert_eq!(slow_read, 10 * SECOND + 909_090_910);
}

#[test]
fn jumps_move_current_but_not_sleeps() {
    let faults = clocks([(
        ip(1),
        ClockFaults {
            jumps: vec![
                ClockJump {
                    at: Duration::from_secs(2),
                    by: -(SECOND as i64),
                },
                ClockJump {
                    at: Duration::from_secs(4),
                    by: 10 * SECOND as i64,
                },
            ],
            ..ClockFaults::default()
        },
    )]);
    let (reads, _) = run(1, faults, |context| async move {
        let a = context.with_ip(ip(1));
        let mut reads = Vec::new();
        for _ in 0..5 {
            reads.push(nanos(&a));
            // A sleep across a jump still lasts a second of true time.
            let start = nanos(&context);
            a.sleep(Duration::from_secs(1)).await;
            assert_eq!(nanos(&context) - start, SECOND);
        }
        reads
    });
    let s = SECOND;
    assert_eq!(reads, [0, s, s, 2 * s, 13 * s]);
}

#[test]
fn sleep_until_waits_for_the_nodes_clock() {
    let faults = clocks([(
        ip(1),
        ClockFaults {
            offset: 5 * SECOND as i64,
            ..ClockFaults::default()
        },
    )]);
    let (woke, _) = run(1, faults, |context| async move {
        let a = context.with_ip(ip(1));
        a.sleep_until(UNIX_EPOCH + Duration::from_secs(6)).await;
        let woke = nanos(&context);
        // Already past by the node's clock: at once.
        a.sleep_until(UNIX_EPOCH + Duration::from_secs(3)).await;
        assert_eq!(nanos(&context), woke);
        woke
    });
    assert_eq!(woke, SECOND);
}

#[test]
fn tasks_spawned_on_a_node_keep_its_clock() {
    let faults = clocks([(
        ip(7),
        ClockFaults {
            offset: 3 * SECOND as i64,
            ..ClockFaults::default()
        },
    )]);
    let (read, _) = run(1, faults, |context| async move {
        let node = context.with_ip(ip(7));
        let child = node.clone();
        node.spawn("child", async move { nanos(&child) - nanos(&context) })
            .await
            .unwrap()
    });
    assert_eq!(read, 3 * SECOND);
}

#[test]
fn drawn_clocks_repeat_per_seed_and_differ_across_seeds() {
    let draw = |seed: u64| {
        run(seed, Faults::default(), |mut context| async move {
            let drawn: Vec<_> = (0..4)
                .map(|_| {
                    ClockFaults::draw(
                        &mut context,
                        Duration::from_secs(2),
                        500,
                        3,
                        Duration::from_secs(60),
                    )
                })
                .collect();
            let faults = clocks((1..=4).map(ip).zip(drawn.clone()));
            context.set_faults(faults);
            let mut reads = Vec::new();
            for _ in 0..3 {
                context.sleep(Duration::from_secs(25)).await;
                for node in 1..=4 {
                    reads.push(nanos(&context.with_ip(ip(node))));
                }
            }
            (drawn, reads)
        })
    };
    let (first, state) = draw(5);
    assert_eq!(draw(5), (first.clone(), state.clone()));
    let (other, other_state) = draw(6);
    assert_ne!(first.0, other.0);
    assert_ne!(state, other_state);
    for clock in &first.0 {
        assert_eq!(clock.jumps.len(), 3);
        assert!(clock.drift_ppm.abs() <= 500);
    }
    // Each node reads its own clock.
    assert!(first.1.windows(2).any(|w| w[0] != w[1]));
}

#[test]
fn clock_reads_are_audited_and_zero_clocks_change_nothing() {
    let body = |context: Context| async move {
        context.sleep(Duration::from_millis(5)).await;
        nanos(&context.with_ip(ip(1)))
    };
    let (_, plain) = run(3, Faults::default(), body);
    let (_, zero) = run(3, clocks([(ip(1), ClockFaults::default())]), body);
    assert_eq!(plain, zero);
    let skewed = clocks([(
        ip(1),
        ClockFaults {
            offset: 1,
            ..ClockFaults::default()
        },
    )]);
    let (_, audited) = run(3, skewed, body);
    assert_ne!(plain, audited);
}

#[test]
fn clocks_survive_recover() {
    let faults = clocks([(
        ip(1),
        ClockFaults {
            offset: 7 * SECOND as i64,
            ..ClockFaults::default()
        },
    )]);
    let (runner, context, _) = Executor::init(Config {
        faults,
        ..Config::default()
    });
    let first = context.clone();
    runner.start(async move { first.sleep(Duration::from_secs(1)).await });
    let (runner, context, _) = context.recover();
    let read = runner.start(async move { nanos(&context.with_ip(ip(1))) });
    assert_eq!(read, 8 * SECOND);
}

fn init(clock: ClockFaults) {
    Executor::init(Config {
        faults: clocks([(ip(1), clock)]),
        ..Config::default()
    });
}

#[test]
#[should_panic(
    expected = "Faults::clocks[10.0.0.1].offset of -1 ns moves the clock before the epoch"
)]
fn an_offset_before_the_epoch_panics() {
    init(ClockFaults {
        offset: -1,
        ..ClockFaults::default()
    });
}

#[test]
#[should_panic(
    expected = "Faults::clocks[10.0.0.1].jumps[0] (by 0 ns at 1s) moves the clock past the end of virtual time"
)]
fn a_jump_past_the_end_of_time_panics() {
    init(ClockFaults {
        offset: i64::MAX - 10,
        jumps: vec![ClockJump {
            at: Duration::from_secs(1),
            by: 0,
        }],
        ..ClockFaults::default()
    });
}

#[test]
#[should_panic(
    expected = "Faults::clocks[10.0.0.1]: the clock (offset 9223372036854775807 ns, drift 0 ppm) reads"
)]
fn an_offset_reaching_the_end_of_time_panics_when_read_there() {
    let (runner, context, _) = Executor::init(Config {
        faults: clocks([(
            ip(1),
            ClockFaults {
                offset: i64::MAX,
                ..ClockFaults::default()
            },
        )]),
        ..Config::default()
    });
    runner.start(async move {
        context.sleep(Duration::from_millis(1)).await;
        nanos(&context.with_ip(ip(1)));
    });
}

#[test]
#[should_panic(expected = "Faults::clocks[10.0.0.1].drift_ppm is -1000000")]
fn a_stopped_clock_panics() {
    init(ClockFaults {
        drift_ppm: -1_000_000,
        ..ClockFaults::default()
    });
}

#[test]
#[should_panic(
    expected = "Faults::clocks[10.0.0.1].jumps[0] (by -2000000000 ns at 1s) moves the clock before the epoch"
)]
fn a_jump_before_the_epoch_panics() {
    init(ClockFaults {
        jumps: vec![ClockJump {
            at: Duration::from_secs(1),
            by: -2 * SECOND as i64,
        }],
        ..ClockFaults::default()
    });
}

#[test]
#[should_panic(expected = "Faults::clocks[10.0.0.1]: the clock (offset 0 ns, drift 1000000 ppm)")]
fn a_clock_drifting_past_the_end_of_time_panics_when_read_there() {
    let (runner, context, _) = Executor::init(Config {
        faults: clocks([(
            ip(1),
            ClockFaults {
                drift_ppm: 1_000_000,
                ..ClockFaults::default()
            },
        )]),
        ..Config::default()
    });
    runner.start(async move {
        context.sleep(Duration::from_secs(200 * 365 * 86_400)).await;
        nanos(&context.with_ip(ip(1)));
    });
}
