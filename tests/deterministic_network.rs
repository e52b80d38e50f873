//! The deterministic runtime's simulated network: every behaviour CONTRACT.md
//! lists under "Deterministic network" and "What published dependents rely
//! on", plus determinism of a 50-connection echo workload (same seed, same
//! auditor state, also in another process).

mod common;

use commonware_runtime::{
    deterministic::{Context, Executor, Sink as DSink, Stream as DStream},
    Clock, Error, Listener, Network, Runner, Sink, Spawner, Stream,
};
use futures::{future::FutureExt, pin_mut, select};
use prometheus_client::{encoding::text::encode, registry::Registry};
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

fn local(port: u16) -> SocketAddr {
    addr([127, 0, 0, 1], port)
}

/// Runs `f` on a fresh default runtime.
fn run<F, Fut>(f: F)
where
    F: FnOnce(Context) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (executor, context, _) = Executor::default();
    executor.start(f(context));
}

/// Binds `address`, dials it and accepts: (dialer sink, dialer stream,
/// dialer address seen by the listener, listener sink, listener stream).
async fn connect(
    context: &Context,
    listener: &mut impl Listener<DSink, DStream>,
    address: SocketAddr,
) -> (DSink, DStream, SocketAddr, DSink, DStream) {
    let (dialer_sink, dialer_stream) = context.dial(address).await.unwrap();
    let (dialer, listener_sink, listener_stream) = listener.accept().await.unwrap();
    (
        dialer_sink,
        dialer_stream,
        dialer,
        listener_sink,
        listener_stream,
    )
}

#[test]
fn loopback_ephemeral_ports_cannot_be_bound() {
    run(|context| async move {
        for port in [32768, 40000, 60999] {
            assert_eq!(
                context.bind(local(port)).await.err(),
                Some(Error::BindFailed)
            );
        }
        // The edges of the range and other addresses are fine.
        let _below = context.bind(local(32767)).await.unwrap();
        let _above = context.bind(local(61000)).await.unwrap();
        let _other_ip = context.bind(addr([10, 0, 0, 1], 40000)).await.unwrap();
    });
}

#[test]
fn binding_twice_fails() {
    run(|context| async move {
        let _listener = context.bind(local(3000)).await.unwrap();
        assert_eq!(
            context.bind(local(3000)).await.err(),
            Some(Error::BindFailed)
        );
        // Same port, other IP: a different address.
        let _other = context.bind(addr([10, 0, 0, 2], 3000)).await.unwrap();
    });
}

#[test]
fn any_ipv4_and_port_zero_are_exact_keys() {
    run(|context| async move {
        // Simulated networks bind random_ip:0, random_ip:1, ... and dial
        // those exact addresses.
        let mut zero = context.bind(addr([1, 2, 3, 4], 0)).await.unwrap();
        let mut one = context.bind(addr([1, 2, 3, 4], 1)).await.unwrap();
        assert_eq!(
            context.bind(addr([1, 2, 3, 4], 0)).await.err(),
            Some(Error::BindFailed)
        );
        let (mut sink, _stream) = context.dial(addr([1, 2, 3, 4], 0)).await.unwrap();
        sink.send(b"to zero").await.unwrap();
        let (_, _, mut stream) = zero.accept().await.unwrap();
        let mut buf = [0u8; 7];
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to zero");

        let (mut sink, _stream) = context.dial(addr([1, 2, 3, 4], 1)).await.unwrap();
        sink.send(b"to one").await.unwrap();
        let (_, _, mut stream) = one.accept().await.unwrap();
        let mut buf = [0u8; 6];
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to one");
    });
}

#[test]
fn ipv6_addresses_bind_and_dial() {
    run(|context| async move {
        let address = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 40000);
        let mut listener = context.bind(address).await.unwrap();
        let (mut sink, _, dialer, _, mut stream) = connect(&context, &mut listener, address).await;
        assert_eq!(dialer, local(32768));
        sink.send(b"v6").await.unwrap();
        let mut buf = [0u8; 2];
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"v6");
    });
}

#[test]
fn dialing_without_listener_fails() {
    run(|context| async move {
        assert_eq!(
            context.dial(local(4000)).await.err(),
            Some(Error::ConnectionFailed)
        );
    });
}

#[test]
fn dialers_get_ephemeral_ports_in_order() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let mut connections = Vec::new();
        for expected in 32768..32773 {
            let (dialer_sink, dialer_stream) = context.dial(local(5000)).await.unwrap();
            let (dialer, _, _) = listener.accept().await.unwrap();
            assert_eq!(dialer, local(expected));
            connections.push((dialer_sink, dialer_stream));
        }
        // A failed dial uses up its port too (as in the reference).
        assert!(context.dial(local(5001)).await.is_err());
        let (_sink, _stream) = context.dial(local(5000)).await.unwrap();
        let (dialer, _, _) = listener.accept().await.unwrap();
        assert_eq!(dialer, local(32774));
    });
}

#[test]
fn recv_fills_exactly_joining_and_splitting_sends() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(5000)).await;
        sink.send(b"he").await.unwrap();
        sink.send(b"llo wo").await.unwrap();
        sink.send(b"rld!").await.unwrap();
        let mut hello = [0u8; 5];
        stream.recv(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        let mut rest = [0u8; 7];
        stream.recv(&mut rest).await.unwrap();
        assert_eq!(&rest, b" world!");
    });
}

#[test]
fn recv_waits_for_bytes_sent_later_in_order() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(5000)).await;
        let reader = context.spawn("reader", async move {
            let mut buf = vec![0u8; 1000];
            stream.recv(&mut buf).await.unwrap();
            buf
        });
        let expected: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for chunk in expected.chunks(33) {
            sink.send(chunk).await.unwrap();
            context.sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(reader.await.unwrap(), expected);
    });
}

#[test]
fn zero_length_send_and_recv_complete_at_once() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(5000)).await;
        assert_eq!(sink.send(&[]).now_or_never(), Some(Ok(())));
        assert_eq!(stream.recv(&mut []).now_or_never(), Some(Ok(())));
    });
}

#[test]
fn both_directions_carry_bytes() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut dialer_sink, mut dialer_stream, _, mut listener_sink, mut listener_stream) =
            connect(&context, &mut listener, local(5000)).await;
        dialer_sink.send(b"ping").await.unwrap();
        listener_sink.send(b"pong").await.unwrap();
        let mut buf = [0u8; 4];
        listener_stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        dialer_stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    });
}

#[test]
fn dropped_sink_delivers_sent_bytes_then_recv_fails() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        // Dialer closes its sink: the listener reads what was sent, then fails.
        let (mut dialer_sink, _dialer_stream, _, _listener_sink, mut listener_stream) =
            connect(&context, &mut listener, local(5000)).await;
        dialer_sink.send(b"last words").await.unwrap();
        drop(dialer_sink);
        let mut buf = [0u8; 10];
        listener_stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"last words");
        assert_eq!(listener_stream.recv(&mut buf).await, Err(Error::RecvFailed));

        // Listener closes its sink while the dialer is waiting.
        let (_dialer_sink, mut dialer_stream, _, mut listener_sink, _listener_stream) =
            connect(&context, &mut listener, local(5000)).await;
        let reader = context.spawn("reader", async move {
            let mut buf = [0u8; 8];
            let first = dialer_stream.recv(&mut buf[..3]).await;
            let second = dialer_stream.recv(&mut buf).await;
            (first, second)
        });
        listener_sink.send(b"abc").await.unwrap();
        context.sleep(Duration::from_millis(5)).await;
        drop(listener_sink);
        assert_eq!(reader.await.unwrap(), (Ok(()), Err(Error::RecvFailed)));
    });
}

#[test]
fn send_to_dropped_stream_fails_and_other_direction_works() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut dialer_sink, mut dialer_stream, _, mut listener_sink, listener_stream) =
            connect(&context, &mut listener, local(5000)).await;
        drop(listener_stream);
        assert_eq!(dialer_sink.send(b"lost").await, Err(Error::SendFailed));
        listener_sink.send(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        dialer_stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");
    });
}

#[test]
fn half_close_dialer_drops_stream_and_listener_drops_sink() {
    run(|context| async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        // The dialer keeps only its sink, the listener only its stream.
        let (mut sink, _) = context.dial(local(5000)).await.unwrap();
        let (_, _, mut stream) = listener.accept().await.unwrap();
        for i in 0..10u8 {
            sink.send(&[i; 3]).await.unwrap();
        }
        let mut buf = [0u8; 30];
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(buf[29], 9);
        // Only the direction whose far end is gone reports errors.
        drop(stream);
        assert_eq!(sink.send(b"x").await, Err(Error::SendFailed));
    });
}

#[test]
fn dropping_listener_frees_address_and_refuses_dials() {
    run(|context| async move {
        let listener = context.bind(local(6000)).await.unwrap();
        // A connection dialed but never accepted dies with the listener.
        let (mut sink, mut stream) = context.dial(local(6000)).await.unwrap();
        drop(listener);
        assert_eq!(
            context.dial(local(6000)).await.err(),
            Some(Error::ConnectionFailed)
        );
        assert_eq!(sink.send(b"anyone?").await, Err(Error::SendFailed));
        assert_eq!(stream.recv(&mut [0u8; 1]).await, Err(Error::RecvFailed));

        let mut listener = context.bind(local(6000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(6000)).await;
        sink.send(b"again").await.unwrap();
        let mut buf = [0u8; 5];
        stream.recv(&mut buf).await.unwrap();
        assert_eq!(&buf, b"again");
    });
}

#[test]
fn recv_is_cancel_safe_in_select_loop() {
    run(|context| async move {
        let mut listener = context.bind(local(7000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(7000)).await;
        let writer = context.clone();
        context.spawn("writer", async move {
            for i in 0..20u8 {
                sink.send(&[i]).await.unwrap();
                writer.sleep(Duration::from_millis(3)).await;
            }
        });
        // Ask for 4 bytes with a 5 ms timeout: most attempts time out with
        // a partial buffer, and none of those bytes may be lost.
        let mut received = Vec::new();
        let mut timeouts = 0;
        while received.len() < 20 {
            let mut buf = [0u8; 4];
            let done = {
                let recv = stream.recv(&mut buf).fuse();
                let timeout = context.sleep(Duration::from_millis(5)).fuse();
                pin_mut!(recv, timeout);
                select! {
                    result = recv => {
                        result.unwrap();
                        true
                    },
                    _ = timeout => false,
                }
            };
            if done {
                received.extend_from_slice(&buf);
            } else {
                timeouts += 1;
            }
        }
        assert!(timeouts > 0);
        assert_eq!(received, (0..20u8).collect::<Vec<_>>());
    });
}

#[test]
fn accept_waits_for_dials() {
    run(|context| async move {
        let mut listener = context.bind(local(8000)).await.unwrap();
        let acceptor = context.spawn("acceptor", async move {
            let (dialer, _, mut stream) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2];
            stream.recv(&mut buf).await.unwrap();
            (dialer, buf)
        });
        context.sleep(Duration::from_millis(10)).await;
        let (mut sink, _stream) = context.dial(local(8000)).await.unwrap();
        sink.send(b"hi").await.unwrap();
        assert_eq!(acceptor.await.unwrap(), (local(32768), *b"hi"));
    });
}

#[test]
fn ephemeral_ports_are_reused_and_exhaustion_is_an_error() {
    run(|context| async move {
        let mut listener = context.bind(local(9000)).await.unwrap();
        let range = 61000 - 32768;
        // Hold every ephemeral port at once.
        let mut held = Vec::with_capacity(range);
        for _ in 0..range {
            held.push(context.dial(local(9000)).await.unwrap());
        }
        assert_eq!(
            context.dial(local(9000)).await.err(),
            Some(Error::ConnectionFailed)
        );
        // A port stays taken until every half of its connection is gone:
        // the dialer's halves are gone but the listener has not accepted.
        held.swap_remove(5);
        assert_eq!(
            context.dial(local(9000)).await.err(),
            Some(Error::ConnectionFailed)
        );
        // Accept (and drop) the backlog: all those ports are free again.
        drop(held);
        for _ in 0..range {
            drop(listener.accept().await.unwrap());
        }
        // The search continues after the last port handed out, wrapping.
        let (_sink, _stream) = context.dial(local(9000)).await.unwrap();
        let (dialer, _, _) = listener.accept().await.unwrap();
        assert_eq!(dialer, local(32768));
    });
}

#[test]
fn network_metrics_count_traffic() {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (executor, context, _) = Executor::init(commonware_runtime::deterministic::Config {
        registry: registry.clone(),
        ..Default::default()
    });
    executor.start(async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(5000)).await;
        sink.send(&[7u8; 100]).await.unwrap();
        stream.recv(&mut [0u8; 100]).await.unwrap();
    });
    let mut text = String::new();
    encode(&mut text, &registry.lock().unwrap()).unwrap();
    for line in [
        "bandwidth_total 100",
        "network_dials_total 1",
        "network_accepts_total 1",
        "network_sends_total 1",
        "network_recvs_total 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// Auditor state after one connection carries `payload`.
fn audited(payload: &'static [u8]) -> String {
    let (executor, context, auditor) = Executor::default();
    executor.start(async move {
        let mut listener = context.bind(local(5000)).await.unwrap();
        let (mut sink, _, _, _, mut stream) = connect(&context, &mut listener, local(5000)).await;
        sink.send(payload).await.unwrap();
        let mut buf = vec![0u8; payload.len()];
        stream.recv(&mut buf).await.unwrap();
    });
    auditor.state()
}

#[test]
fn auditor_sees_network_payloads() {
    assert_eq!(audited(b"same"), audited(b"same"));
    assert_ne!(audited(b"same"), audited(b"diff"));
}

#[test]
fn auditor_sees_binds_and_dials() {
    let run = |port: u16| {
        let (executor, context, auditor) = Executor::default();
        executor.start(async move {
            let _listener = context.bind(local(port)).await.unwrap();
            let _ = context.dial(local(1)).await;
        });
        auditor.state()
    };
    assert_eq!(run(100), run(100));
    assert_ne!(run(100), run(101));
}

/// 50 clients each echo 20 messages of random size through one server that
/// serves every connection in its own task; returns the auditor state and
/// what the clients received, in completion order.
fn echo_workload(seed: u64) -> (String, Vec<(usize, Vec<u8>)>) {
    use rand::Rng;
    let (executor, context, auditor) = Executor::seeded(seed);
    let log = executor.start(async move {
        let address = addr([10, 0, 0, 1], 0);
        let mut listener = context.bind(address).await.unwrap();
        let server = context.clone();
        context.spawn("server", async move {
            loop {
                let (_, mut sink, mut stream) = listener.accept().await.unwrap();
                server.spawn("connection", async move {
                    let mut header = [0u8; 1];
                    while stream.recv(&mut header).await.is_ok() {
                        let mut body = vec![0u8; usize::from(header[0])];
                        stream.recv(&mut body).await.unwrap();
                        sink.send(&header).await.unwrap();
                        sink.send(&body).await.unwrap();
                    }
                });
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for client in 0..50 {
            let mut context = context.clone();
            let log = log.clone();
            clients.push(context.clone().spawn("client", async move {
                let (mut sink, mut stream) = context.dial(address).await.unwrap();
                for _ in 0..20 {
                    let size = context.gen_range(1..=255u8);
                    let body: Vec<u8> = (0..size).map(|_| context.gen()).collect();
                    // Split the message at a random point to vary the sends.
                    let cut = context.gen_range(0..=body.len());
                    sink.send(&[size]).await.unwrap();
                    sink.send(&body[..cut]).await.unwrap();
                    let pause = Duration::from_micros(context.gen_range(0..500));
                    context.sleep(pause).await;
                    sink.send(&body[cut..]).await.unwrap();
                    let mut echo = vec![0u8; body.len() + 1];
                    stream.recv(&mut echo).await.unwrap();
                    assert_eq!(echo[0], size);
                    assert_eq!(&echo[1..], &body[..]);
                    log.lock().unwrap().push((client, echo));
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        log
    });
    (auditor.state(), log)
}

#[test]
fn echo_workload_repeats_per_seed() {
    let first = echo_workload(7);
    assert_eq!(first.1.len(), 50 * 20);
    assert_eq!(first, echo_workload(7));
    assert_ne!(first.0, echo_workload(8).0);
}

/// Env var that turns the test binary into a child printing its state.
const CHILD: &str = "DETERMINISTIC_NETWORK_CHILD";

#[test]
fn echo_workload_child_process_entry() {
    if std::env::var_os(CHILD).is_some() {
        println!("STATE={}", echo_workload(11).0);
    }
}

#[test]
fn echo_workload_repeats_in_another_process() {
    let stdout = common::rerun_in_child("echo_workload_child_process_entry", CHILD);
    let state = stdout
        .lines()
        .find_map(|line| line.split("STATE=").nth(1))
        .unwrap_or_else(|| panic!("child printed no state:\n{stdout}"));
    assert_eq!(state, echo_workload(11).0);
}
