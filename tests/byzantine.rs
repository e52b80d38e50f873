//! Byzantine links: each built-in behaviour happens at its configured rate,
//! only on its link, the same way for one seed; hooks see every send and
//! can make a node equivocate; a panicking hook is named.

use commonware_runtime::{
    deterministic::{Action, Byzantine, Config, Context, Executor, Faults, LinkFaults},
    Clock, Listener, Network, Runner, Sink, Spawner, Stream,
};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, UNIX_EPOCH},
};

const SENDS: u32 = 1000;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn nanos(context: &Context) -> u64 {
    context
        .current()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// What the receiver got: each message's index and send time as read, and
/// how late it arrived.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Received {
    index: u32,
    sent: u64,
    late: u64,
    whole: bool,
}

/// Node 1 sends `SENDS` 12-byte messages (index, send time), one a second,
/// to node 2 over a link with `byzantine`; returns what node 2 received.
fn exchange(seed: u64, byzantine: Byzantine) -> (Vec<Received>, String) {
    let mut faults = Faults::default();
    faults.links.insert(
        (ip(1), ip(2)),
        LinkFaults {
            byzantine,
            ..LinkFaults::default()
        },
    );
    let (runner, context, auditor) = Executor::init(Config {
        seed,
        faults,
        ..Config::default()
    });
    let received = runner.start(async move {
        let mut listener = context.bind(SocketAddr::new(ip(2), 80)).await.unwrap();
        let sender = context.with_ip(ip(1));
        let sending = context.clone().spawn("sender", async move {
            let (mut sink, _stream) = sender.dial(SocketAddr::new(ip(2), 80)).await.unwrap();
            let mut sent = Vec::new();
            for index in 0..SENDS {
                let mut msg = index.to_le_bytes().to_vec();
                msg.extend_from_slice(&nanos(&sender).to_le_bytes());
                sent.push(nanos(&sender));
                sink.send(&msg).await.unwrap();
                sender.sleep(Duration::from_secs(1)).await;
            }
            sent
        });
        let (_, _sink, mut stream) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 12];
        while stream.recv(&mut buf).await.is_ok() {
            let index = u32::from_le_bytes(buf[..4].try_into().unwrap());
            let sent = u64::from_le_bytes(buf[4..].try_into().unwrap());
            let late = nanos(&context).saturating_sub(sent);
            received.push(Received {
                index,
                sent,
                late,
                whole: false,
            });
        }
        let sent = sending.await.unwrap();
        // Whether each message is one that was sent, whole.
        for r in &mut received {
            r.whole = sent.get(r.index as usize) == Some(&r.sent);
        }
        received
    });
    (received, auditor.state())
}

/// `count` is within 4 standard deviations of `rate` of `SENDS`.
fn near_rate(count: usize, rate: f64) {
    let n = f64::from(SENDS);
    let mean = n * rate;
    let sd = (n * rate * (1.0 - rate)).sqrt();
    let (low, high) = (mean - 4.0 * sd, mean + 4.0 * sd);
    assert!(
        (low..=high).contains(&(count as f64)),
        "{count} not near {mean} ({low}..{high})"
    );
}

fn honest(received: &[Received]) -> bool {
    received.len() == SENDS as usize
        && received
            .iter()
            .enumerate()
            .all(|(i, r)| r.index == i as u32 && r.whole)
}

#[test]
fn no_rates_carry_everything_as_sent() {
    let (received, _) = exchange(1, Byzantine::default());
    assert!(honest(&received));
}

#[test]
fn drops_happen_at_their_rate() {
    let (received, _) = exchange(
        1,
        Byzantine {
            drop: 0.2,
            ..Byzantine::default()
        },
    );
    near_rate(SENDS as usize - received.len(), 0.2);
    assert!(received.windows(2).all(|w| w[0].index < w[1].index));
}

#[test]
fn duplicates_happen_at_their_rate() {
    let (received, _) = exchange(
        2,
        Byzantine {
            duplicate: 0.3,
            ..Byzantine::default()
        },
    );
    let twice = received.windows(2).filter(|w| w[0] == w[1]).count();
    near_rate(twice, 0.3);
    assert_eq!(received.len(), SENDS as usize + twice);
}

#[test]
fn corruption_happens_at_its_rate() {
    let (received, _) = exchange(
        3,
        Byzantine {
            corrupt: 0.1,
            ..Byzantine::default()
        },
    );
    assert_eq!(received.len(), SENDS as usize);
    let corrupt = received
        .iter()
        .enumerate()
        .filter(|(i, r)| r.index != *i as u32 || !r.whole)
        .count();
    near_rate(corrupt, 0.1);
}

#[test]
fn replays_happen_at_their_rate() {
    let (received, _) = exchange(
        4,
        Byzantine {
            replay: 0.25,
            ..Byzantine::default()
        },
    );
    // A replay is an earlier message arriving after a later one.
    let mut newest = None;
    let mut replays = 0;
    for r in &received {
        assert!(r.whole, "replays are whole payloads");
        match newest {
            Some(n) if r.index <= n => replays += 1,
            _ => newest = Some(r.index),
        }
    }
    // The first send has nothing to replay.
    near_rate(replays, 0.25);
    assert_eq!(received.len(), SENDS as usize + replays);
}

#[test]
fn delays_happen_at_their_rate() {
    let (baseline, _) = exchange(5, Byzantine::default());
    let on_time = baseline.iter().map(|r| r.late).max().unwrap();
    let (received, _) = exchange(
        5,
        Byzantine {
            delay: 0.2,
            max_delay: Duration::from_millis(500),
            ..Byzantine::default()
        },
    );
    assert!(received
        .iter()
        .enumerate()
        .all(|(i, r)| r.index == i as u32));
    // Delays below 2 ms are hard to tell from scheduling: 0.4% of them.
    let late = received
        .iter()
        .filter(|r| r.late > on_time + 2_000_000)
        .count();
    near_rate(late, 0.2 * 0.996);
    assert!(received.iter().all(|r| r.late <= on_time + 500_000_000));
}

#[test]
fn behaviours_repeat_per_seed_and_differ_across_seeds() {
    let all = Byzantine {
        drop: 0.1,
        delay: 0.1,
        max_delay: Duration::from_millis(300),
        duplicate: 0.1,
        corrupt: 0.1,
        replay: 0.1,
    };
    let first = exchange(7, all);
    assert_eq!(exchange(7, all), first);
    let other = exchange(8, all);
    assert_ne!(other.0, first.0);
    assert_ne!(other.1, first.1);
    // Off, everything arrives as sent, and the run differs.
    let (plain, state) = exchange(7, Byzantine::default());
    assert!(honest(&plain));
    assert_ne!(state, first.1);
}

#[test]
#[should_panic(expected = "Faults::links[(10.0.0.1, 10.0.0.2)].byzantine: the rates sum to")]
fn rates_above_one_panic_naming_the_link() {
    exchange(
        1,
        Byzantine {
            drop: 0.6,
            duplicate: 0.6,
            ..Byzantine::default()
        },
    );
}

/// Node 1 sends one vote to node 2 and to node 3; returns what each got.
fn votes(setup: impl FnOnce(&Context)) -> (Vec<u8>, Vec<u8>) {
    let (runner, context, _) = Executor::seeded(1);
    setup(&context);
    runner.start(async move {
        let mut two = context.bind(SocketAddr::new(ip(2), 80)).await.unwrap();
        let mut three = context.bind(SocketAddr::new(ip(3), 80)).await.unwrap();
        let node = context.with_ip(ip(1));
        let voter = context.clone().spawn("voter", async move {
            for peer in [2, 3] {
                let (mut sink, _) = node.dial(SocketAddr::new(ip(peer), 80)).await.unwrap();
                sink.send(b"vote A").await.unwrap();
            }
        });
        let mut got = Vec::new();
        for listener in [&mut two, &mut three] {
            let (_, _, mut stream) = listener.accept().await.unwrap();
            let mut buf = vec![0; 6];
            match stream.recv(&mut buf).await {
                Ok(()) => got.push(buf),
                Err(_) => got.push(Vec::new()),
            }
        }
        voter.await.unwrap();
        (got[0].clone(), got[1].clone())
    })
}

#[test]
fn a_hook_makes_a_node_equivocate() {
    let (two, three) = votes(|context| {
        context.byzantine(ip(1), Some(ip(3)), "equivocate", |message| {
            assert_eq!(message.payload, b"vote A");
            Action::Replace(b"vote B".to_vec())
        });
    });
    assert_eq!(two, b"vote A");
    assert_eq!(three, b"vote B");
}

#[test]
fn a_node_hook_sees_every_link_from_the_node() {
    let (two, three) = votes(|context| {
        context.byzantine(ip(1), None, "silence", |_| Action::Drop);
    });
    assert!(two.is_empty() && three.is_empty());
    // A link hook takes precedence over the node's.
    let (two, three) = votes(|context| {
        context.byzantine(ip(1), None, "silence", |_| Action::Drop);
        context.byzantine(ip(1), Some(ip(2)), "pass", |_| Action::Pass);
    });
    assert_eq!(two, b"vote A");
    assert!(three.is_empty());
    // Cleared, nothing is changed.
    let (two, three) = votes(|context| {
        context.byzantine(ip(1), None, "silence", |_| Action::Drop);
        context.clear_byzantine();
    });
    assert_eq!((two, three), (b"vote A".to_vec(), b"vote A".to_vec()));
}

#[test]
#[should_panic(expected = "Byzantine hook 'evil' on the link 10.0.0.1 -> 10.0.0.2 panicked: boom")]
fn a_panicking_hook_is_named() {
    votes(|context| {
        context.byzantine(ip(1), Some(ip(2)), "evil", |_| panic!("boom"));
    });
}
