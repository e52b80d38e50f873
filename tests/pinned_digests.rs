//! Auditor states of fixed seeds, pinned: a change that moves one of these
//! changes what every user's recorded seed replays to. The workloads touch
//! every audited path (spawns, sleeps, random numbers, the network, storage,
//! injected faults, crashes and `recover`) under each strategy; update a
//! digest only for a deliberate change of the audit or the scheduler, and say
//! so in the commit.

use commonware_runtime::{
    deterministic::{Config, Executor, Faults, Halt, LinkFaults, StorageFaults, Strategy},
    reschedule, Blob, Clock, Listener, Network, Runner, Sink, Spawner, Storage, Stream,
};
use rand::Rng;
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

/// Tasks that yield, sleep, draw random numbers, talk over a faulty network
/// and write to faulty storage; returns the auditor state after a crash and
/// a recovered second run.
fn workload(seed: u64, strategy: Strategy) -> String {
    let faults = Faults {
        network: LinkFaults {
            latency: Duration::from_millis(2),
            jitter: Duration::from_millis(3),
            ..LinkFaults::default()
        },
        storage: StorageFaults {
            torn: true,
            misdirect: 0.1,
            ..StorageFaults::default()
        },
        ..Faults::default()
    };
    let config = Config {
        seed,
        strategy,
        faults,
        ..Config::default()
    };
    let (runner, context, _) = Executor::init(config);
    let ctx = context.clone();
    runner.start_until(Halt::At(Duration::from_millis(400)), async move {
        let server: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        let mut listener = ctx.bind(server).await.unwrap();
        ctx.spawn("server", async move {
            while let Ok((_, mut sink, mut stream)) = listener.accept().await {
                let mut buf = [0u8; 8];
                while stream.recv(&mut buf).await.is_ok() {
                    if sink.send(&buf).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut handles = Vec::new();
        for client in 0..4u8 {
            let mut ctx = ctx.with_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, client)));
            handles.push(ctx.clone().spawn("client", async move {
                let (mut sink, mut stream) = ctx.dial(server).await.unwrap();
                let blob = ctx.open("journal", &[client]).await.unwrap();
                for round in 0..6u64 {
                    let word: u64 = ctx.gen();
                    sink.send(&word.to_le_bytes()).await.unwrap();
                    let mut echo = [0u8; 8];
                    stream.recv(&mut echo).await.unwrap();
                    blob.write_at(&echo, round * 8).await.unwrap();
                    if round % 2 == 1 {
                        blob.sync().await.unwrap();
                    }
                    let pause = Duration::from_millis(ctx.gen_range(1..20));
                    ctx.sleep(pause).await;
                    reschedule().await;
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
        ctx.sleep(Duration::from_secs(10)).await;
    });
    let (runner, mut context, auditor) = context.recover();
    runner.start(async move {
        for name in context.scan("journal").await.unwrap() {
            let blob = context.open("journal", &name).await.unwrap();
            let len = blob.len().await.unwrap();
            let mut buf = vec![0u8; len as usize];
            blob.read_at(&mut buf, 0).await.unwrap();
        }
        let _: u64 = context.gen();
    });
    auditor.state()
}

#[test]
fn auditor_states_of_fixed_seeds_are_pinned() {
    let cases = [
        (0, Strategy::Uniform, "0da9631eda3106708f3acdda144a1850"),
        (7, Strategy::Uniform, "eb480f109756aeb05fa467681d1764a5"),
        (
            3,
            Strategy::Pct {
                depth: 3,
                steps: 200,
            },
            "f6251522045b650fe477eb2078f1eb13",
        ),
    ];
    let mut actual = Vec::new();
    for (seed, strategy, _) in &cases {
        actual.push(workload(*seed, strategy.clone()));
    }
    let expected: Vec<&str> = cases.iter().map(|(_, _, digest)| *digest).collect();
    assert_eq!(actual, expected);
}
