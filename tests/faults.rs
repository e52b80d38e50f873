//! Fault injection of the deterministic runtime: every fault happens at
//! its configured rate over a range of seeds, only where it is configured,
//! and the same way every time for one seed (outcome and auditor state).

use commonware_runtime::{
    deterministic::{
        Config, Context, Executor, Faults, Halt, LinkFaults, PartitionMode, StorageFaults, SECTOR,
    },
    reschedule, Blob, Clock, Error, Listener, Network, Runner, Sink, Spawner, Storage, Stream,
};
use futures::{pin_mut, select_biased, FutureExt};
use std::{
    fmt::Debug,
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(ip(last), 80)
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Runs `f` on a fresh runtime; returns its output and the auditor state.
fn run<T, Fut>(seed: u64, faults: Faults, f: impl FnOnce(Context) -> Fut) -> (T, String)
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let (runner, context, auditor) = Executor::init(Config {
        seed,
        faults,
        ..Config::default()
    });
    let output = runner.start(f(context));
    (output, auditor.state())
}

/// Runs `f` once per seed, and the first seed once more to check that a
/// seed reproduces its run exactly; also checks that seeds differ.
fn sweep<T, Fut>(seeds: Range<u64>, faults: Faults, f: impl Fn(Context) -> Fut) -> Vec<T>
where
    T: PartialEq + Debug + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let runs: Vec<(T, String)> = seeds
        .clone()
        .map(|seed| run(seed, faults.clone(), &f))
        .collect();
    assert_eq!(
        run(seeds.start, faults, &f),
        runs[0],
        "seed {} replayed differently",
        seeds.start
    );
    assert!(
        runs.windows(2).any(|pair| pair[0] != pair[1]),
        "every seed ran the same"
    );
    runs.into_iter().map(|(output, _)| output).collect()
}

/// Asserts that `hits` of `trials` is within five standard deviations of
/// probability `p`.
fn assert_rate(what: &str, hits: usize, trials: usize, p: f64) {
    let mean = trials as f64 * p;
    let spread = 5.0 * (trials as f64 * p * (1.0 - p)).sqrt() + 1.0;
    assert!(
        (hits as f64 - mean).abs() <= spread,
        "{what}: {hits} of {trials}, expected about {mean:.0}"
    );
}

fn link(from: u8, to: u8, faults: LinkFaults) -> Faults {
    let mut all = Faults::default();
    all.links.insert((ip(from), ip(to)), faults);
    all
}

fn storage(partition: &str, faults: StorageFaults) -> Faults {
    let mut all = Faults::default();
    all.storage_partitions.insert(partition.into(), faults);
    all
}

/// Receives with a virtual-time limit (`None` if it did not complete).
async fn recv_within(
    context: &Context,
    stream: &mut impl Stream,
    buf: &mut [u8],
    limit: Duration,
) -> Option<Result<(), Error>> {
    let recv = stream.recv(buf).fuse();
    let sleep = context.sleep(limit).fuse();
    pin_mut!(recv, sleep);
    select_biased! {
        result = recv => Some(result),
        () = sleep => None,
    }
}

// ---------------------------------------------------------------- network

#[test]
fn dials_fail_at_their_rate_on_their_link_only() {
    let faults = link(
        1,
        2,
        LinkFaults {
            dial_failure: 0.25,
            ..LinkFaults::default()
        },
    );
    let runs = sweep(0..20, faults, |context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (from1, from3) = (context.with_ip(ip(1)), context.with_ip(ip(3)));
        let mut failed = Vec::new();
        for _ in 0..50 {
            match from1.dial(addr(2)).await {
                Ok(_) => {
                    // The listener sees the dialer's IP.
                    let (dialer, _, _) = listener.accept().await.unwrap();
                    assert_eq!(dialer.ip(), ip(1));
                    failed.push(false);
                }
                Err(err) => {
                    assert_eq!(err, Error::ConnectionFailed);
                    failed.push(true);
                }
            }
            // Another link is unaffected.
            assert!(from3.dial(addr(2)).await.is_ok());
            listener.accept().await.unwrap();
        }
        failed
    });
    let hits = runs.iter().flatten().filter(|&&failed| failed).count();
    assert_rate("failed dials", hits, 20 * 50, 0.25);
}

#[test]
fn resets_happen_at_their_rate_and_both_ends_see_them() {
    let faults = link(
        1,
        2,
        LinkFaults {
            reset: 0.05,
            ..LinkFaults::default()
        },
    );
    let runs = sweep(0..40, faults, |context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (mut sink, mut stream) = context.with_ip(ip(1)).dial(addr(2)).await.unwrap();
        let (_, mut peer_sink, mut peer_stream) = listener.accept().await.unwrap();
        // A receive already waiting when the reset comes must fail too.
        let waiting = context.spawn("waiting", async move {
            let mut buf = [0; 4];
            stream.recv(&mut buf).await
        });
        reschedule().await;
        let mut sent = 0;
        while sent < 200 {
            match sink.send(&[7; 8]).await {
                Ok(()) => sent += 1,
                Err(err) => {
                    assert_eq!(err, Error::SendFailed);
                    assert_eq!(sink.send(&[7; 8]).await, Err(Error::SendFailed));
                    assert_eq!(peer_sink.send(&[1]).await, Err(Error::SendFailed));
                    let mut buf = [0; 8];
                    assert_eq!(peer_stream.recv(&mut buf).await, Err(Error::RecvFailed));
                    assert_eq!(waiting.await, Ok(Err(Error::RecvFailed)));
                    return (sent, true);
                }
            }
        }
        waiting.abort();
        (sent, false)
    });
    let resets = runs.iter().filter(|(_, reset)| *reset).count();
    let attempts: usize = runs
        .iter()
        .map(|&(sent, reset)| sent + usize::from(reset))
        .sum();
    assert_rate("resets per send", resets, attempts, 0.05);
}

/// Sends `count` numbered messages one millisecond apart from `ip(1)` to
/// `ip(2)`; returns (number, sent at, received at) for each, in order of
/// arrival.
async fn timed_messages(context: Context, count: u32, gap: Duration) -> Vec<(u32, u64, u64)> {
    let mut listener = context.bind(addr(2)).await.unwrap();
    let (mut sink, _) = context.with_ip(ip(1)).dial(addr(2)).await.unwrap();
    let (_, _, mut stream) = listener.accept().await.unwrap();
    let sender = context.clone();
    context.spawn("sender", async move {
        for number in 0..count {
            let mut message = number.to_le_bytes().to_vec();
            message.extend_from_slice(&nanos(sender.current()).to_le_bytes());
            sink.send(&message).await.unwrap();
            sender.sleep(gap).await;
        }
    });
    let mut arrivals = Vec::new();
    for _ in 0..count {
        let mut buf = [0; 12];
        stream.recv(&mut buf).await.unwrap();
        let number = u32::from_le_bytes(buf[..4].try_into().unwrap());
        let sent = u64::from_le_bytes(buf[4..].try_into().unwrap());
        arrivals.push((number, sent, nanos(context.current())));
    }
    arrivals
}

#[test]
fn latency_and_jitter_delay_bytes_without_reordering() {
    let (latency, jitter) = (10_000_000, 20_000_000);
    let faults = Faults {
        network: LinkFaults {
            latency: Duration::from_nanos(latency),
            jitter: Duration::from_nanos(jitter),
            ..LinkFaults::default()
        },
        ..Faults::default()
    };
    let runs = sweep(0..10, faults, |context| {
        timed_messages(context, 100, Duration::from_millis(1))
    });
    let mut delays = Vec::new();
    for arrivals in &runs {
        for (expected, &(number, sent, received)) in arrivals.iter().enumerate() {
            assert_eq!(number, expected as u32, "reordered");
            let delay = received - sent;
            // Never early; never later than the slowest earlier send (which
            // it may not overtake) plus the scheduler's 1 ms rounds.
            assert!(delay >= latency, "{delay}");
            assert!(delay <= latency + jitter + 2_000_000, "{delay}");
            delays.push(delay);
        }
    }
    let mean = delays.iter().sum::<u64>() / delays.len() as u64;
    assert!(
        (latency + jitter / 4..latency + jitter).contains(&mean),
        "{mean}"
    );
    assert!(
        delays.iter().any(|&d| d < latency + jitter / 4),
        "no spread"
    );
}

#[test]
fn bandwidth_queues_sends_behind_each_other() {
    let faults = Faults {
        network: LinkFaults {
            bandwidth: Some(10_000),
            ..LinkFaults::default()
        },
        ..Faults::default()
    };
    let (arrivals, _) = run(1, faults, |context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (mut sink, _) = context.dial(addr(2)).await.unwrap();
        let (_, _, mut stream) = listener.accept().await.unwrap();
        // Ten sends of 1,000 bytes at once, at 10,000 bytes per second: the
        // sender does not wait, the bytes arrive 100 ms apart.
        for _ in 0..10 {
            sink.send(&[0; 1000]).await.unwrap();
        }
        let start = nanos(context.current());
        let mut arrivals = Vec::new();
        for _ in 0..10 {
            stream.recv(&mut [0; 1000]).await.unwrap();
            arrivals.push((nanos(context.current()) - start) / 1_000_000);
        }
        arrivals
    });
    for (i, &ms) in arrivals.iter().enumerate() {
        let due = 100 * (i as u64 + 1);
        assert!((due - 1..=due + 1).contains(&ms), "{arrivals:?}");
    }
}

#[test]
fn changing_settings_mid_connection_keeps_the_order() {
    run(3, Faults::default(), |context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (mut sink, _) = context.dial(addr(2)).await.unwrap();
        let (_, _, mut stream) = listener.accept().await.unwrap();
        let slow = Faults {
            network: LinkFaults {
                latency: Duration::from_millis(50),
                jitter: Duration::from_millis(50),
                ..LinkFaults::default()
            },
            ..Faults::default()
        };
        for round in 0..3u8 {
            context.set_faults(if round == 1 {
                slow.clone()
            } else {
                Faults::default()
            });
            for i in 0..50u8 {
                sink.send(&[round, i]).await.unwrap();
            }
        }
        for round in 0..3u8 {
            for i in 0..50u8 {
                let mut buf = [0; 2];
                stream.recv(&mut buf).await.unwrap();
                assert_eq!(buf, [round, i]);
            }
        }
    });
}

#[test]
fn partitions_refuse_dials_and_reset_open_connections() {
    let (_, state) = run(5, Faults::default(), |context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (from1, from3) = (context.with_ip(ip(1)), context.with_ip(ip(3)));
        let (mut sink, mut stream) = from1.dial(addr(2)).await.unwrap();
        let (_, mut peer_sink, mut peer_stream) = listener.accept().await.unwrap();
        sink.send(b"before").await.unwrap();

        context.partition(&[ip(1)], &[ip(2)]);
        assert_eq!(sink.send(b"x").await, Err(Error::SendFailed));
        assert_eq!(peer_sink.send(b"x").await, Err(Error::SendFailed));
        assert_eq!(stream.recv(&mut [0; 1]).await, Err(Error::RecvFailed));
        assert_eq!(peer_stream.recv(&mut [0; 6]).await, Err(Error::RecvFailed));
        assert_eq!(
            from1.dial(addr(2)).await.err(),
            Some(Error::ConnectionFailed)
        );
        assert!(from3.dial(addr(2)).await.is_ok(), "an uncut pair");

        context.heal();
        assert!(from1.dial(addr(2)).await.is_ok());
    });
    let (_, again) = run(5, Faults::default(), |context| async move {
        let _listener = context.bind(addr(2)).await.unwrap();
        context.partition(&[ip(1)], &[ip(2)]);
    });
    assert_ne!(state, again);
}

#[test]
fn stalled_partitions_deliver_everything_after_heal() {
    let faults = Faults {
        partition_mode: PartitionMode::Stall,
        ..Faults::default()
    };
    let stall = |context: Context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let from1 = context.with_ip(ip(1));
        let (mut sink, _) = from1.dial(addr(2)).await.unwrap();
        let (_, _, mut stream) = listener.accept().await.unwrap();
        sink.send(&[0]).await.unwrap();
        context.partition(&[ip(1)], &[ip(2)]);
        for i in 1..=3u8 {
            sink.send(&[i]).await.unwrap();
        }
        assert_eq!(
            from1.dial(addr(2)).await.err(),
            Some(Error::ConnectionFailed)
        );
        let mut buf = [0; 1];
        // Sent before the cut: arrives.
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(buf, [0]);
        // Sent after: held for as long as the cut lasts.
        let held = recv_within(&context, &mut stream, &mut buf, Duration::from_secs(10)).await;
        assert_eq!(held, None);
        context.heal();
        let mut rest = [0; 3];
        stream.recv(&mut rest).await.unwrap();
        assert_eq!(rest, [1, 2, 3]);
        nanos(context.current())
    };
    for seed in 0..3 {
        let (at, state) = run(seed, faults.clone(), stall);
        assert!(at >= 10_000_000_000);
        assert_eq!(run(seed, faults.clone(), stall), (at, state));
    }
}

// ---------------------------------------------------------------- storage

/// A storage operation that faults can fail.
#[derive(Clone, Copy, Debug)]
enum Op {
    Open,
    Read,
    Write,
    Sync,
    Truncate,
    Remove,
}

const BLOB: &[u8] = b"blob";
const BLOB_HEX: &str = "626c6f62";

/// Performs `op` `count` times on partition `partition` (set up without
/// faults, then with `faults`); returns which attempts failed, checking
/// that a failure has the right error and changed nothing.
async fn exercise(
    context: Context,
    partition: &'static str,
    faults: Faults,
    op: Op,
    count: usize,
) -> Vec<bool> {
    let blob = context.open(partition, BLOB).await.unwrap();
    blob.write_at(&[0xAA; 1024], 0).await.unwrap();
    blob.sync().await.unwrap();
    context.set_faults(faults);
    let mut failed = Vec::new();
    let mut synced = 0xAA;
    for i in 0..count {
        let byte = i as u8;
        let result = match op {
            Op::Open => context.open(partition, BLOB).await.map(drop),
            Op::Read => {
                let mut buf = [0; 16];
                let result = blob.read_at(&mut buf, 0).await;
                if result.is_ok() {
                    assert_eq!(buf, [synced; 16]);
                }
                result
            }
            Op::Write => {
                let result = blob.write_at(&[byte; 16], 0).await;
                let mut buf = [0; 1];
                blob.read_at(&mut buf, 0).await.ok();
                if result.is_ok() {
                    synced = byte;
                }
                result
            }
            Op::Sync => {
                blob.write_at(&[byte; 16], 0).await.unwrap();
                let result = blob.sync().await;
                if result.is_ok() {
                    synced = byte;
                }
                result
            }
            Op::Truncate => {
                let before = blob.len().await.unwrap();
                let result = blob.truncate(2048 - i as u64).await;
                let after = blob.len().await.unwrap();
                assert_eq!(after == before, result.is_err());
                result
            }
            Op::Remove => {
                let name = [b'r', byte];
                context.open(partition, &name).await.ok();
                let result = context.remove(partition, Some(&name)).await;
                let listed = context
                    .scan(partition)
                    .await
                    .unwrap()
                    .contains(&name.to_vec());
                assert_eq!(listed, result.is_err());
                result
            }
        };
        if let Err(err) = &result {
            let p = partition.to_string();
            let expected = match op {
                Op::Open => Error::BlobOpenFailed(p, BLOB_HEX.into()),
                Op::Read => Error::ReadFailed,
                Op::Write => Error::WriteFailed,
                Op::Sync => Error::BlobSyncFailed(p, BLOB_HEX.into()),
                Op::Truncate => Error::BlobTruncateFailed(p, BLOB_HEX.into()),
                Op::Remove => Error::BlobMissing(p, format!("72{byte:02x}")),
            };
            assert_eq!(*err, expected, "{op:?}");
        }
        if matches!(op, Op::Read | Op::Write | Op::Sync) {
            // What is durable is what the last successful op left.
            let check = context.open(partition, BLOB).await;
            if let (Op::Sync, Ok(check)) = (op, check) {
                let mut buf = [0; 16];
                check.read_at(&mut buf, 0).await.unwrap();
                assert_eq!(buf, [synced; 16]);
            }
        }
        failed.push(result.is_err());
    }
    failed
}

#[test]
fn io_errors_happen_at_their_rate_in_their_partition_only() {
    for op in [
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::Truncate,
        Op::Remove,
    ] {
        let p = 0.2;
        let rate = match op {
            Op::Open => StorageFaults {
                open: p,
                ..StorageFaults::default()
            },
            Op::Read => StorageFaults {
                read: p,
                ..StorageFaults::default()
            },
            Op::Write => StorageFaults {
                write: p,
                ..StorageFaults::default()
            },
            Op::Sync => StorageFaults {
                sync: p,
                ..StorageFaults::default()
            },
            Op::Truncate => StorageFaults {
                truncate: p,
                ..StorageFaults::default()
            },
            Op::Remove => StorageFaults {
                remove: p,
                ..StorageFaults::default()
            },
        };
        let faults = storage("faulty", rate);
        let runs = sweep(0..10, Faults::default(), |context| {
            let faults = faults.clone();
            async move {
                let failed = exercise(context.clone(), "faulty", faults.clone(), op, 100).await;
                let clean = exercise(context, "clean", faults, op, 20).await;
                assert!(
                    clean.iter().all(|&f| !f),
                    "{op:?} failed in a clean partition"
                );
                failed
            }
        });
        let hits = runs.iter().flatten().filter(|&&f| f).count();
        assert_rate(&format!("{op:?} errors"), hits, 10 * 100, p);
    }
}

#[test]
fn corruption_flips_one_bit_of_synced_data_only() {
    let faults = storage(
        "p",
        StorageFaults {
            corrupt: 0.3,
            ..StorageFaults::default()
        },
    );
    let runs = sweep(0..10, Faults::default(), move |context| {
        let faults = faults.clone();
        async move {
            let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
            let blob = context.open("p", b"b").await.unwrap();
            blob.write_at(&pattern, 0).await.unwrap();
            blob.sync().await.unwrap();
            context.set_faults(faults);
            let mut corrupt = 0;
            for _ in 0..100 {
                let mut buf = vec![0; 4096];
                blob.read_at(&mut buf, 0).await.unwrap();
                let flipped: u32 = buf
                    .iter()
                    .zip(&pattern)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                assert!(flipped <= 1);
                corrupt += flipped as usize;
            }
            // Unsynced data (a page this handle changed) is never corrupt.
            blob.write_at(&pattern, 4096).await.unwrap();
            for _ in 0..100 {
                let mut buf = vec![0; 4096];
                blob.read_at(&mut buf, 4096).await.unwrap();
                assert_eq!(buf, pattern);
            }
            // And what is stored stays intact.
            context.set_faults(Faults::default());
            let mut buf = vec![0; 4096];
            blob.read_at(&mut buf, 0).await.unwrap();
            assert_eq!(buf, pattern);
            corrupt
        }
    });
    assert_rate("corrupt reads", runs.iter().sum(), 10 * 100, 0.3);
}

#[test]
fn misdirected_writes_land_whole_sectors_away() {
    let faults = storage(
        "p",
        StorageFaults {
            misdirect: 0.3,
            ..StorageFaults::default()
        },
    );
    let runs = sweep(0..5, Faults::default(), move |context| {
        let faults = faults.clone();
        async move {
            let aim = 8 * SECTOR;
            let mut shifts = Vec::new();
            for trial in 0..100u32 {
                let blob = context.open("p", &trial.to_le_bytes()).await.unwrap();
                blob.write_at(&[0; 16 * SECTOR as usize], 0).await.unwrap();
                context.set_faults(faults.clone());
                blob.write_at(&[0xFF; SECTOR as usize], aim).await.unwrap();
                context.set_faults(Faults::default());
                let mut contents = vec![0; blob.len().await.unwrap() as usize];
                blob.read_at(&mut contents, 0).await.unwrap();
                let landed = contents.iter().position(|&b| b == 0xFF).unwrap() as u64;
                let marked = contents.iter().filter(|&&b| b == 0xFF).count();
                assert_eq!(marked, SECTOR as usize, "exactly one copy");
                assert_eq!(landed % SECTOR, 0);
                let shift = landed as i64 - aim as i64;
                assert!(shift.unsigned_abs() <= 8 * SECTOR, "{shift}");
                shifts.push(shift);
            }
            shifts
        }
    });
    let misdirected = runs.iter().flatten().filter(|&&s| s != 0).count();
    assert_rate("misdirected writes", misdirected, 5 * 100, 0.3);
    assert!(runs.iter().flatten().any(|&s| s < 0) && runs.iter().flatten().any(|&s| s > 0));
}

/// Writes eight 16-byte records after a synced header, without syncing,
/// then drops the handle (a crash); returns how many records survived,
/// checking that they are a prefix.
async fn crash_with_unsynced_records(context: Context) -> usize {
    let blob = context.open("p", b"log").await.unwrap();
    blob.write_at(b"head", 0).await.unwrap();
    blob.sync().await.unwrap();
    for record in 0..8u8 {
        blob.write_at(&[record + 1; 16], 4 + 16 * record as u64)
            .await
            .unwrap();
    }
    drop(blob);
    surviving_records(&context).await
}

async fn surviving_records(context: &Context) -> usize {
    let blob = context.open("p", b"log").await.unwrap();
    let len = blob.len().await.unwrap();
    let mut contents = vec![0; len as usize];
    blob.read_at(&mut contents, 0).await.unwrap();
    assert_eq!(&contents[..4], b"head");
    let records = contents[4..].chunks(16);
    for (record, chunk) in records.clone().enumerate() {
        assert_eq!(chunk, [record as u8 + 1; 16], "not a prefix");
    }
    records.count()
}

#[test]
fn torn_writes_keep_a_seeded_prefix_of_unsynced_writes() {
    let torn = storage(
        "p",
        StorageFaults {
            torn: true,
            ..StorageFaults::default()
        },
    );
    let kept = sweep(0..180, torn, crash_with_unsynced_records);
    let mut histogram = [0; 9];
    for &k in &kept {
        histogram[k] += 1;
    }
    // Uniform over 0..=8: 20 each on average.
    assert!(histogram.iter().all(|&n| n >= 5), "{histogram:?}");
    // Without torn writes, a crash keeps none of them.
    for seed in 0..5 {
        assert_eq!(
            run(seed, Faults::default(), crash_with_unsynced_records).0,
            0
        );
    }
}

#[test]
fn torn_truncates_keep_their_place_in_the_order() {
    let torn = storage(
        "p",
        StorageFaults {
            torn: true,
            ..StorageFaults::default()
        },
    );
    let states = sweep(0..60, torn, |context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(&[1; 8], 0).await.unwrap();
        blob.sync().await.unwrap();
        blob.write_at(&[2; 8], 8).await.unwrap();
        blob.truncate(4).await.unwrap();
        blob.write_at(&[3; 4], 4).await.unwrap();
        drop(blob);
        let blob = context.open("p", b"b").await.unwrap();
        let mut contents = vec![0; blob.len().await.unwrap() as usize];
        blob.read_at(&mut contents, 0).await.unwrap();
        contents
    });
    let prefixes: [&[u8]; 4] = [
        &[1, 1, 1, 1, 1, 1, 1, 1],
        &[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2],
        &[1, 1, 1, 1],
        &[1, 1, 1, 1, 3, 3, 3, 3],
    ];
    for prefix in prefixes {
        assert!(states.iter().any(|s| s == prefix), "{prefix:?} never kept");
    }
    assert!(states.iter().all(|s| prefixes.contains(&s.as_slice())));
}

// ------------------------------------------------------------------ crashes

#[test]
fn halt_after_polls_crashes_and_recover_resumes() {
    let (runner, context, auditor) = Executor::seeded(9);
    let busy = async {
        for _ in 0..1000 {
            reschedule().await;
        }
    };
    assert_eq!(runner.start_until(Halt::AfterPolls(100), busy), None);
    let state = auditor.state();
    let (runner, context, auditor) = context.recover();
    assert_eq!(auditor.state(), state);
    // A root that finishes before the halt returns its output.
    assert_eq!(
        runner.start_until(Halt::AfterPolls(100), async { 7 }),
        Some(7)
    );
    drop(context);
}

#[test]
fn halt_at_a_time_crashes_there_even_when_idle() {
    let (runner, context, _) = Executor::seeded(9);
    let sleeper = context.clone();
    let root = async move { sleeper.sleep(Duration::from_secs(10)).await };
    assert_eq!(
        runner.start_until(Halt::At(Duration::from_secs(4)), root),
        None
    );
    let (runner, context, _) = context.recover();
    assert_eq!(nanos(context.current()), 4_000_000_000);
    let sleeper = context.clone();
    let root = async move { sleeper.sleep(Duration::from_millis(1)).await };
    assert_eq!(
        runner.start_until(Halt::At(Duration::from_secs(5)), root),
        Some(())
    );
}

/// Appends 16-byte records forever, syncing every third one, until the
/// power goes out at a seeded moment; returns how many records survived
/// and how many were synced.
fn power_cut(seed: u64, torn: bool) -> (usize, usize) {
    let faults = storage(
        "p",
        StorageFaults {
            torn,
            ..StorageFaults::default()
        },
    );
    let (runner, mut context, _) = Executor::init(Config {
        seed,
        faults,
        ..Config::default()
    });
    let at = Duration::from_millis(rand::Rng::gen_range(&mut context, 20..200));
    let writer = context.clone();
    let synced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = synced.clone();
    let root = async move {
        let blob = writer.open("p", b"log").await.unwrap();
        blob.write_at(b"head", 0).await.unwrap();
        blob.sync().await.unwrap();
        for record in 0u64.. {
            let byte = (record % 255) as u8 + 1;
            blob.write_at(&[byte; 16], 4 + 16 * record).await.unwrap();
            if record % 3 == 2 {
                blob.sync().await.unwrap();
                progress.store(record as usize + 1, std::sync::atomic::Ordering::SeqCst);
            }
            writer.sleep(Duration::from_millis(1)).await;
        }
    };
    assert_eq!(runner.start_until(Halt::At(at), root), None);
    let (runner, context, _) = context.recover();
    let survived = runner.start(async move { surviving_records(&context).await });
    (survived, synced.load(std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn a_power_cut_keeps_synced_data_and_tears_the_rest() {
    let mut tore = false;
    for seed in 0..30 {
        let (survived, synced) = power_cut(seed, true);
        assert!(
            survived >= synced && survived <= synced + 2,
            "{survived} vs {synced}"
        );
        tore |= survived > synced;
        assert_eq!(power_cut(seed, true), (survived, synced), "seed {seed}");
        let (survived, synced) = power_cut(seed, false);
        assert_eq!(survived, synced);
    }
    assert!(tore, "no power cut kept an unsynced write");
}

// ------------------------------------------------------------- no faults

#[test]
fn faults_that_are_all_off_change_nothing() {
    let workload = |context: Context| async move {
        let mut listener = context.bind(addr(2)).await.unwrap();
        let (mut sink, _) = context.with_ip(ip(1)).dial(addr(2)).await.unwrap();
        let (_, _, mut stream) = listener.accept().await.unwrap();
        for i in 0..20u8 {
            sink.send(&[i; 32]).await.unwrap();
            stream.recv(&mut [0; 32]).await.unwrap();
            let blob = context.open("p", &[i]).await.unwrap();
            blob.write_at(&[i; 64], 0).await.unwrap();
            blob.sync().await.unwrap();
            blob.read_at(&mut [0; 64], 0).await.unwrap();
        }
    };
    let (_, plain) = run(4, Faults::default(), workload);
    let mut zero = link(1, 2, LinkFaults::default());
    zero.storage_partitions
        .insert("p".into(), StorageFaults::default());
    zero.partition_mode = PartitionMode::Stall;
    let (_, configured) = run(4, zero, workload);
    assert_eq!(plain, configured);
    assert_eq!(Config::default().faults, Faults::default());
}
