//! Networking both runtimes promise: bind/dial/accept, exact-length byte
//! streams, closed peers, half-close, cancel-safe `recv`, many connections.

use crate::support::{address, listen};
use commonware_runtime::{Clock, Error, Listener, Network, Sink, Spawner, Stream};
use futures::FutureExt;
use std::{net::IpAddr, time::Duration};

/// A dial reaches the listener, `accept` names the dialer (on loopback, not
/// the listener's own port), and bytes flow both ways.
pub async fn dial_accept_exchange<L, Si, St>(ctx: impl Spawner + Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let (mut listener, addr) = listen(&ctx).await;
    let server = ctx.spawn("server", async move {
        let (peer, mut sink, mut stream) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 5];
        stream.recv(&mut buf).await.expect("recv");
        sink.send(b"world").await.expect("send");
        (peer, buf)
    });
    let (mut sink, mut stream) = ctx.dial(addr).await.expect("dial");
    sink.send(b"hello").await.expect("send");
    let mut buf = [0u8; 5];
    stream.recv(&mut buf).await.expect("recv");
    assert_eq!(&buf, b"world");
    let (peer, received) = server.await.expect("server");
    assert_eq!(&received, b"hello");
    assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 1]));
    assert_ne!(peer.port(), addr.port());
}

/// Binding a bound address fails; once the listener is dropped the address
/// is free again and dials to the old listener fail.
pub async fn bind_twice_fails_until_dropped<L, Si, St>(ctx: impl Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let (listener, addr) = listen(&ctx).await;
    assert!(matches!(ctx.bind(addr).await, Err(Error::BindFailed)));
    drop(listener);
    assert!(matches!(ctx.dial(addr).await, Err(Error::ConnectionFailed)));
    let again = ctx.bind(addr).await;
    assert!(again.is_ok(), "a dropped listener's address stays taken");
}

/// Dialing an address nobody listens on fails.
pub async fn dial_unbound_fails<L, Si, St>(ctx: impl Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let (listener, addr) = listen(&ctx).await;
    drop(listener);
    assert!(matches!(ctx.dial(addr).await, Err(Error::ConnectionFailed)));
    // And one that was never bound at all (fresh port, nobody holds it).
    let never = address();
    if ctx.bind(never).await.map(drop).is_ok() {
        assert!(matches!(
            ctx.dial(never).await,
            Err(Error::ConnectionFailed)
        ));
    }
}

/// A connected pair: the dialer's halves and the listener's halves.
async fn connect<L, Si, St>(ctx: &impl Network<L, Si, St>) -> ((Si, St), (Si, St))
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let (mut listener, addr) = listen(ctx).await;
    let (dialed, accepted) = futures::join!(ctx.dial(addr), listener.accept());
    let dialed = dialed.expect("dial");
    let (_, sink, stream) = accepted.expect("accept");
    (dialed, (sink, stream))
}

/// `recv(buf)` fills exactly `buf`, joining and splitting sends, in order;
/// zero-length sends and recvs complete at once.
pub async fn recv_is_exact_length<L, Si, St>(ctx: impl Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let ((mut sink, _), (_, mut stream)) = connect(&ctx).await;
    sink.send(&[]).await.expect("empty send");
    sink.send(&[1, 2, 3]).await.expect("send");
    sink.send(&[4, 5]).await.expect("send");
    sink.send(&[6, 7, 8, 9, 10]).await.expect("send");
    stream.recv(&mut []).await.expect("empty recv");
    let mut first = [0u8; 4];
    stream.recv(&mut first).await.expect("recv");
    assert_eq!(first, [1, 2, 3, 4]);
    let mut rest = [0u8; 6];
    stream.recv(&mut rest).await.expect("recv");
    assert_eq!(rest, [5, 6, 7, 8, 9, 10]);

    // A large message arrives whole through a small and a large buffer.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let sender = async {
        sink.send(&big).await.expect("send big");
    };
    let receiver = async {
        let mut head = [0u8; 1];
        stream.recv(&mut head).await.expect("recv head");
        let mut tail = vec![0u8; big.len() - 1];
        stream.recv(&mut tail).await.expect("recv tail");
        (head, tail)
    };
    let (_, (head, tail)) = futures::join!(sender, receiver);
    assert_eq!(head[0], big[0]);
    assert!(tail == big[1..], "large message corrupted");
}

/// A peer that closes after sending: its bytes are delivered, then `recv`
/// fails. A `recv` asking for more bytes than remain fails without
/// consuming them, so smaller ones still get every byte.
pub async fn closed_peer_delivers_then_fails<L, Si, St>(ctx: impl Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let ((mut sink, stream), (_, mut incoming)) = connect(&ctx).await;
    sink.send(&[1, 2, 3, 4, 5]).await.expect("send");
    drop((sink, stream));
    let mut buf = [0u8; 3];
    incoming
        .recv(&mut buf)
        .await
        .expect("bytes sent before close");
    assert_eq!(buf, [1, 2, 3]);
    let mut short = [0u8; 4];
    assert_eq!(incoming.recv(&mut short).await, Err(Error::RecvFailed));
    let mut one = [0u8; 1];
    for expected in [4, 5] {
        incoming.recv(&mut one).await.expect("remaining byte");
        assert_eq!(one, [expected]);
    }
    assert_eq!(incoming.recv(&mut one).await, Err(Error::RecvFailed));
    assert_eq!(incoming.recv(&mut []).await, Ok(()));
}

/// Sending to a peer that closed its end fails (possibly after the first
/// sends are buffered by the transport), and never hangs.
pub async fn send_to_closed_peer_fails<L, Si, St>(ctx: impl Clock + Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let ((mut sink, _stream), accepted) = connect(&ctx).await;
    drop(accepted);
    for _ in 0..200 {
        match sink.send(&[0u8; 1024]).await {
            Ok(()) => ctx.sleep(Duration::from_millis(5)).await,
            Err(err) => {
                assert_eq!(err, Error::SendFailed);
                return;
            }
        }
    }
    panic!("sends to a closed peer kept succeeding");
}

/// The two directions close independently: the dialer drops its stream and
/// keeps sending, the listener drops its sink and keeps receiving.
pub async fn half_close<L, Si, St>(ctx: impl Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let ((mut sink, dialer_stream), (listener_sink, mut stream)) = connect(&ctx).await;
    drop(dialer_stream);
    drop(listener_sink);
    for round in 0..10u8 {
        sink.send(&[round; 100])
            .await
            .expect("send after half-close");
        let mut buf = [0u8; 100];
        stream.recv(&mut buf).await.expect("recv after half-close");
        assert_eq!(buf, [round; 100]);
    }
}

/// A `recv` dropped before its buffer is full (a lost `select!` branch)
/// loses no bytes: the next `recv` gets them first.
pub async fn recv_is_cancel_safe<L, Si, St>(ctx: impl Clock + Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let ((mut sink, _), (_, mut stream)) = connect(&ctx).await;
    sink.send(&[1, 2, 3]).await.expect("send");
    let mut buf = [0u8; 6];
    futures::select! {
        _ = stream.recv(&mut buf).fuse() => panic!("recv finished with half its bytes"),
        _ = ctx.sleep(Duration::from_millis(50)).fuse() => {},
    }
    sink.send(&[4, 5, 6, 7]).await.expect("send");
    let mut buf = [0u8; 6];
    stream.recv(&mut buf).await.expect("recv");
    assert_eq!(buf, [1, 2, 3, 4, 5, 6]);
    let mut last = [0u8; 1];
    stream.recv(&mut last).await.expect("recv");
    assert_eq!(last, [7]);
}

/// Fifty clients talk to one echo server at the same time; every client
/// gets back exactly its own bytes.
pub async fn many_connections<L, Si, St>(ctx: impl Spawner + Network<L, Si, St>)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    const CLIENTS: usize = 50;
    const ROUNDS: usize = 20;
    let (mut listener, addr) = listen(&ctx).await;
    let server = ctx.spawn("echo", {
        let ctx = ctx.clone();
        async move {
            let mut peers = Vec::new();
            for _ in 0..CLIENTS {
                let (_, mut sink, mut stream) = listener.accept().await.expect("accept");
                peers.push(ctx.spawn("peer", async move {
                    let mut buf = [0u8; 64];
                    for _ in 0..ROUNDS {
                        stream.recv(&mut buf).await.expect("server recv");
                        sink.send(&buf).await.expect("server send");
                    }
                }));
            }
            for peer in peers {
                peer.await.expect("peer");
            }
        }
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let ctx2 = ctx.clone();
            ctx.spawn("client", async move {
                let (mut sink, mut stream) = ctx2.dial(addr).await.expect("dial");
                for round in 0..ROUNDS {
                    let msg = [(client * ROUNDS + round) as u8; 64];
                    sink.send(&msg).await.expect("client send");
                    let mut buf = [0u8; 64];
                    stream.recv(&mut buf).await.expect("client recv");
                    assert_eq!(buf, msg);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    server.await.expect("server");
}
