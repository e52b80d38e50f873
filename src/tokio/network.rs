//! `Network` for the tokio runtime: TCP over [`tokio::net`].
//!
//! # What this module owns
//!
//! [`Listener`], [`Sink`] and [`Stream`]: a listener wraps a bound
//! `TcpListener`; each connection is split into its write half ([`Sink`])
//! and read half ([`Stream`]), which live and close independently (dropping a
//! `Sink` sends FIN, so the peer's `recv` fails once it has read what was
//! sent; dropping a `Stream` leaves the other direction working).
//!
//! # Invariants
//!
//! * `recv(buf)` returns `Ok` only once `buf` is full, and fails with
//!   `RecvFailed` when the peer closed before enough bytes arrived, or with
//!   `Timeout` after [`super::Config::read_timeout`].
//! * `recv` is cancel-safe, like the deterministic runtime's: when a `recv`
//!   is dropped (a lost `select!` branch) or times out after reading some
//!   bytes, those bytes are kept in the stream and delivered first by the
//!   next `recv`. This costs nothing on the normal path: bytes are read
//!   straight into the caller's buffer and copied aside only on cancellation.
//! * `send(msg)` returns `Ok` once the kernel accepted all of `msg`; it fails
//!   with `Timeout` after [`super::Config::write_timeout`] (a peer that does
//!   not read) and with `SendFailed` once the connection is reset. Unlike
//!   `recv`, a `send` dropped before it returned may have sent a prefix of
//!   `msg`; treat the connection as broken then.
//! * Sockets belong to the runtime's reactor: bind, dial, accept, send and
//!   recv run inside tasks of the runtime (as with Tokio itself).

use super::{Context, Inner};
use crate::Error;
use std::{net::SocketAddr, sync::Arc};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    time::timeout,
};

impl crate::Network<Listener, Sink, Stream> for Context {
    async fn bind(&self, socket: SocketAddr) -> Result<Listener, Error> {
        let listener = TcpListener::bind(socket)
            .await
            .map_err(|_| Error::BindFailed)?;
        Ok(Listener {
            inner: self.inner.clone(),
            listener,
        })
    }

    async fn dial(&self, socket: SocketAddr) -> Result<(Sink, Stream), Error> {
        let stream = TcpStream::connect(socket)
            .await
            .map_err(|_| Error::ConnectionFailed)?;
        self.inner.metrics.network_dials.inc();
        Ok(split(&self.inner, stream))
    }
}

/// Applies the connection settings and splits `stream` into its halves.
fn split(inner: &Arc<Inner>, stream: TcpStream) -> (Sink, Stream) {
    if let Some(nodelay) = inner.cfg.tcp_nodelay {
        // A latency hint: the connection works the same if it is refused.
        let _ = stream.set_nodelay(nodelay);
    }
    let (read, write) = stream.into_split();
    (
        Sink {
            inner: inner.clone(),
            sink: write,
        },
        Stream {
            inner: inner.clone(),
            stream: read,
            unread: Vec::new(),
        },
    )
}

/// Implementation of [`crate::Listener`] for the `tokio` runtime.
pub struct Listener {
    inner: Arc<Inner>,
    listener: TcpListener,
}

impl crate::Listener<Sink, Stream> for Listener {
    async fn accept(&mut self) -> Result<(SocketAddr, Sink, Stream), Error> {
        let (stream, addr) = self.listener.accept().await.map_err(|_| Error::Closed)?;
        self.inner.metrics.network_accepts.inc();
        let (sink, stream) = split(&self.inner, stream);
        Ok((addr, sink, stream))
    }
}

/// Implementation of [`crate::Sink`] for the `tokio` runtime.
pub struct Sink {
    inner: Arc<Inner>,
    sink: OwnedWriteHalf,
}

impl crate::Sink for Sink {
    async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        timeout(self.inner.cfg.write_timeout, self.sink.write_all(msg))
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(|_| Error::SendFailed)?;
        let metrics = &self.inner.metrics;
        metrics.network_sends.inc();
        metrics.network_bandwidth.inc_by(msg.len() as u64);
        Ok(())
    }
}

/// Implementation of [`crate::Stream`] for the `tokio` runtime.
pub struct Stream {
    inner: Arc<Inner>,
    stream: OwnedReadHalf,
    /// Bytes read by a `recv` that did not complete, in arrival order.
    unread: Vec<u8>,
}

/// The buffer of one `recv` and how much of it is filled. If the `recv`
/// ends before filling it, the filled bytes go back to the stream.
struct Partial<'a> {
    buf: &'a mut [u8],
    filled: usize,
    unread: &'a mut Vec<u8>,
}

impl Partial<'_> {
    /// Moves as many kept bytes as fit into the buffer.
    fn take_unread(&mut self) {
        let n = self.unread.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        self.filled = n;
    }
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        // Invariant: `unread` is empty whenever the buffer is not full
        // (`take_unread` emptied it first), so appending keeps the order.
        if self.filled < self.buf.len() {
            self.unread.extend_from_slice(&self.buf[..self.filled]);
        }
    }
}

impl crate::Stream for Stream {
    async fn recv(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut partial = Partial {
            buf,
            filled: 0,
            unread: &mut self.unread,
        };
        partial.take_unread();
        let stream = &mut self.stream;
        let fill = async {
            while partial.filled < partial.buf.len() {
                match stream.read(&mut partial.buf[partial.filled..]).await {
                    Ok(0) | Err(_) => return Err(Error::RecvFailed),
                    Ok(n) => partial.filled += n,
                }
            }
            Ok(())
        };
        timeout(self.inner.cfg.read_timeout, fill)
            .await
            .map_err(|_| Error::Timeout)??;
        self.inner.metrics.network_recvs.inc();
        Ok(())
    }
}
