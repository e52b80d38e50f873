//! Real TCP at the boundary: stalled, silent and resetting peers give
//! errors (never a hung task or a panic), and the bytes on the wire are
//! exactly the bytes sent (no framing), so peers written against raw
//! sockets interoperate.

use crate::{
    run,
    support::{listen, Scratch},
};
use commonware_runtime::{Error, Listener, Network, Sink, Stream};
use std::net::SocketAddr;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A peer that never reads: once the kernel's buffers are full, `send`
/// fails with `Timeout` after `write_timeout`.
#[test]
fn send_to_peer_that_never_reads_times_out() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        let (mut listener, addr) = listen(&ctx).await;
        let (dialed, accepted) = futures::join!(ctx.dial(addr), listener.accept());
        let (mut sink, _stream) = dialed.expect("dial");
        let _silent = accepted.expect("accept");
        let chunk = vec![0u8; 1 << 16];
        for _ in 0..100_000 {
            match sink.send(&chunk).await {
                Ok(()) => continue,
                Err(err) => {
                    assert_eq!(err, Error::Timeout);
                    return;
                }
            }
        }
        panic!("6.5 GB went to a peer that never reads");
    });
}

/// A peer that sends nothing, or less than asked for: `recv` fails with
/// `Timeout`, keeps what it read, and the connection stays usable.
#[test]
fn recv_from_silent_peer_times_out_and_keeps_bytes() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        let (mut listener, addr) = listen(&ctx).await;
        let (dialed, accepted) = futures::join!(ctx.dial(addr), listener.accept());
        let (mut sink, _) = dialed.expect("dial");
        let (_, _, mut stream) = accepted.expect("accept");
        let mut buf = [0u8; 4];
        assert_eq!(stream.recv(&mut buf).await, Err(Error::Timeout));
        sink.send(&[1, 2]).await.expect("send");
        assert_eq!(stream.recv(&mut buf).await, Err(Error::Timeout));
        sink.send(&[3, 4]).await.expect("send");
        stream.recv(&mut buf).await.expect("recv after timeouts");
        assert_eq!(buf, [1, 2, 3, 4]);
    });
}

/// Connects a raw Tokio socket (not through the runtime) to `addr`.
async fn raw_peer(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("raw connect")
}

/// A peer that resets the connection in the middle of a message: `recv`
/// fails with `RecvFailed` and `send` with `SendFailed`.
#[test]
fn peer_reset_mid_message_fails_recv_and_send() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        let (mut listener, addr) = listen(&ctx).await;
        let (peer, accepted) = futures::join!(raw_peer(addr), listener.accept());
        let mut peer = peer;
        let (_, mut sink, mut stream) = accepted.expect("accept");
        peer.write_all(&[9; 3]).await.expect("raw write");
        let mut head = [0u8; 3];
        stream.recv(&mut head).await.expect("recv head");
        assert_eq!(head, [9; 3]);
        // Half a message, then a reset (linger 0 sends RST, not FIN).
        peer.write_all(&[8; 5]).await.expect("raw write");
        peer.set_zero_linger().expect("linger");
        drop(peer);
        let mut message = [0u8; 10];
        assert_eq!(stream.recv(&mut message).await, Err(Error::RecvFailed));
        let mut failed = None;
        for _ in 0..100 {
            if let Err(err) = sink.send(&[0; 1024]).await {
                failed = Some(err);
                break;
            }
        }
        assert_eq!(failed, Some(Error::SendFailed));
    });
}

/// No framing: a raw socket reads exactly the bytes `send` was given, and
/// `recv` accepts whatever split the raw writer used.
#[test]
fn raw_sockets_interoperate() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        let (mut listener, addr) = listen(&ctx).await;
        let (peer, accepted) = futures::join!(raw_peer(addr), listener.accept());
        let mut peer = peer;
        let (from, mut sink, mut stream) = accepted.expect("accept");
        assert_eq!(from, peer.local_addr().expect("raw address"));
        sink.send(b"ping").await.expect("send");
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).await.expect("raw read");
        assert_eq!(&buf, b"ping");
        for byte in b"pong" {
            peer.write_all(&[*byte]).await.expect("raw write");
        }
        stream.recv(&mut buf).await.expect("recv");
        assert_eq!(&buf, b"pong");
    });
}

/// Binding an address this machine does not have fails with `BindFailed`;
/// binding port 0 lets the system pick a port.
#[test]
fn bind_errors_and_port_zero() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        // TEST-NET-1 (RFC 5737) is never assigned to a local interface.
        let foreign: SocketAddr = "192.0.2.1:20000".parse().expect("address");
        assert!(matches!(ctx.bind(foreign).await, Err(Error::BindFailed)));
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        assert!(ctx.bind(any_port).await.is_ok());
    });
}
