//! Network: arbitrary send / recv splits over the simulated socket table,
//! checked against a model byte stream in each direction.
//!
//! A client dials a listener; each side sends its stream in arbitrary chunks
//! (empty ones included) and receives the other side's stream in arbitrary
//! read sizes, under a fuzzer-chosen interleaving (`Strategy::Bytes`). Every
//! `recv` must return exactly the model's next bytes however the sends were
//! split; once a side has sent everything it drops its sink, and the other
//! side's next `recv` must fail with `RecvFailed` after the last byte. A
//! fuzzer-chosen number of `recv`s race a timer in `select!` first: a `recv`
//! dropped that way must lose no bytes (cancel safety).

#![no_main]

use arbitrary::Arbitrary;
use commonware_runtime::{
    deterministic::{Config, Context, Executor, Strategy},
    Clock, Error, Listener as _, Network, Runner, Spawner,
};
use futures::FutureExt;
use libfuzzer_sys::fuzz_target;
use std::{net::SocketAddr, time::Duration};

#[derive(Arbitrary, Debug)]
struct Side {
    /// What this side sends, chunk by chunk.
    sends: Vec<Vec<u8>>,
    /// How much each of its receives asks for (clamped to what is left).
    reads: Vec<u16>,
    /// How many of its first receives race a short timer.
    raced: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    client: Side,
    server: Side,
    schedule: Vec<u8>,
}

/// Sends every chunk, then drops the sink.
async fn send_all(mut sink: impl commonware_runtime::Sink, sends: Vec<Vec<u8>>) {
    for chunk in sends {
        sink.send(&chunk).await.expect("send");
    }
}

/// Receives `expected` in the side's read sizes and checks it, then checks
/// that the peer's closed sink shows as `RecvFailed`.
async fn recv_all(
    context: Context,
    mut stream: impl commonware_runtime::Stream,
    expected: Vec<u8>,
    reads: Vec<u16>,
    raced: u8,
) {
    let mut at = 0;
    let mut sizes = reads.into_iter().map(usize::from);
    let mut raced = usize::from(raced % 8);
    while at < expected.len() {
        let size = sizes
            .next()
            .unwrap_or(expected.len())
            .min(expected.len() - at);
        let mut buf = vec![0u8; size];
        if raced > 0 {
            raced -= 1;
            let mut timer = context.sleep(Duration::from_millis(1)).fuse();
            let received = {
                let mut recv = Box::pin(stream.recv(&mut buf).fuse());
                futures::select! {
                    result = recv => Some(result),
                    _ = timer => None,
                }
            };
            match received {
                // Cancelled: nothing may have been consumed; read again.
                None => continue,
                Some(result) => result.expect("recv"),
            }
        } else {
            stream.recv(&mut buf).await.expect("recv");
        }
        assert!(
            buf == expected[at..at + size],
            "bytes differ at offset {at}"
        );
        at += size;
    }
    assert_eq!(stream.recv(&mut [0u8; 1]).await, Err(Error::RecvFailed));
}

async fn exchange(context: Context, input: Input) {
    let Input { client, server, .. } = input;
    let (to_server, to_client) = (client.sends.concat(), server.sends.concat());
    let address: SocketAddr = "10.0.0.1:9000".parse().expect("address");
    let mut listener = context.bind(address).await.expect("bind");
    let serving = context.clone().spawn("server", {
        let context = context.clone();
        async move {
            let (peer, sink, stream) = listener.accept().await.expect("accept");
            assert_eq!(peer, "127.0.0.1:32768".parse::<SocketAddr>().expect("peer"));
            let sending = context.clone().spawn("send", send_all(sink, server.sends));
            recv_all(context, stream, to_server, server.reads, server.raced).await;
            sending.await.expect("server send task");
        }
    });
    let (sink, stream) = context.dial(address).await.expect("dial");
    let sending = context.clone().spawn("send", send_all(sink, client.sends));
    recv_all(
        context.clone(),
        stream,
        to_client,
        client.reads,
        client.raced,
    )
    .await;
    sending.await.expect("client send task");
    serving.await.expect("server task");
}

fuzz_target!(|input: Input| {
    let config = Config {
        strategy: Strategy::Bytes(input.schedule[..].into()),
        ..Config::default()
    };
    let (runner, context, _) = Executor::init(config);
    runner.start(exchange(context, input));
});
