//! The tokio adapter workloads: the same work through our `tokio::Context` and
//! written directly on tokio, each on a two-worker multi-thread runtime
//! (our `Config::threads` default).
//!
//! # Invariants
//! * Each function returns the wall time of the work alone, measured inside
//!   the runtime, so building and shutting down runtimes is not counted on
//!   either side.
//! * Both sides of the TCP echo use `TCP_NODELAY`, 64-byte messages and
//!   exact-length reads; ports come from one counter, so no two listeners of
//!   a process share a port. They lie below Linux's ephemeral range
//!   (32768–60999): a client socket lingering in `TIME_WAIT` on an ephemeral
//!   port blocks a listener on that port even with `SO_REUSEADDR`, so
//!   repeated runs would collide there. A port another process holds is
//!   skipped.

use commonware_runtime::{
    Listener as _, Network as _, Runner as _, Sink as _, Spawner as _, Stream as _,
};
use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Spawn+join: tasks per iteration.
pub const SPAWN_TASKS: u64 = 100_000;
/// TCP echo: connections.
pub const CONNECTIONS: usize = 10;
/// TCP echo: round trips per connection.
pub const ROUND_TRIPS: usize = 1_000;
/// TCP echo: message size.
pub const MESSAGE: usize = 64;
/// Worker threads on both sides.
const THREADS: usize = 2;

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// Listener ports tried before a bind is given up.
const BIND_ATTEMPTS: usize = 100;

/// A loopback address no other listener of this process has used.
fn fresh_address() -> SocketAddr {
    let port = 20_000 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 10_000;
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Binds the first fresh address `bind` accepts.
async fn bind_fresh<L, E: std::fmt::Debug, F: std::future::Future<Output = Result<L, E>>>(
    bind: impl Fn(SocketAddr) -> F,
) -> (L, SocketAddr) {
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let address = fresh_address();
        match bind(address).await {
            Ok(listener) => return (listener, address),
            Err(error) => last = Some(error),
        }
    }
    panic!("bind failed on {BIND_ATTEMPTS} ports: {last:?}")
}

fn ours() -> (
    commonware_runtime::tokio::Runner,
    commonware_runtime::tokio::Context,
) {
    commonware_runtime::tokio::Executor::init(commonware_runtime::tokio::Config {
        threads: THREADS,
        tcp_nodelay: Some(true),
        ..Default::default()
    })
}

fn raw() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Spawns `n` tasks through our `tokio::Context` and joins them.
pub fn spawn_join_ours(n: u64) -> Duration {
    let (runner, context) = ours();
    runner.start(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| context.spawn("task", async move { i }))
            .collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.expect("task failed");
        }
        assert_eq!(sum, n * (n - 1) / 2);
        start.elapsed()
    })
}

/// The same on tokio directly.
pub fn spawn_join_raw(n: u64) -> Duration {
    raw().block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.expect("task failed");
        }
        assert_eq!(sum, n * (n - 1) / 2);
        start.elapsed()
    })
}

/// `connections` clients each send `round_trips` 64-byte messages to an
/// echo server and read each echo back, through our `tokio::Context`.
pub fn echo_ours(connections: usize, round_trips: usize) -> Duration {
    let (runner, context) = ours();
    runner.start(async move {
        let (mut listener, address) = bind_fresh(|address| context.bind(address)).await;
        let start = Instant::now();
        let server = context.spawn("server", {
            let context = context.clone();
            async move {
                let mut echoes = Vec::with_capacity(connections);
                for _ in 0..connections {
                    let (_, mut sink, mut stream) = listener.accept().await.expect("accept failed");
                    echoes.push(context.spawn("echo", async move {
                        let mut buf = [0u8; MESSAGE];
                        for _ in 0..round_trips {
                            stream.recv(&mut buf).await.expect("server recv failed");
                            sink.send(&buf).await.expect("server send failed");
                        }
                    }));
                }
                for echo in echoes {
                    echo.await.expect("echo failed");
                }
            }
        });
        let clients: Vec<_> = (0..connections)
            .map(|c| {
                let context = context.clone();
                context.clone().spawn("client", async move {
                    let (mut sink, mut stream) = context.dial(address).await.expect("dial failed");
                    let mut buf = [c as u8; MESSAGE];
                    for _ in 0..round_trips {
                        sink.send(&buf).await.expect("client send failed");
                        stream.recv(&mut buf).await.expect("client recv failed");
                    }
                    buf[0]
                })
            })
            .collect();
        for (c, client) in clients.into_iter().enumerate() {
            assert_eq!(client.await.expect("client failed"), c as u8);
        }
        server.await.expect("server failed");
        start.elapsed()
    })
}

/// The same on tokio directly.
pub fn echo_raw(connections: usize, round_trips: usize) -> Duration {
    raw().block_on(async move {
        let (listener, address) = bind_fresh(TcpListener::bind).await;
        let start = Instant::now();
        let server = tokio::spawn(async move {
            let mut echoes = Vec::with_capacity(connections);
            for _ in 0..connections {
                let (stream, _) = listener.accept().await.expect("accept failed");
                stream.set_nodelay(true).expect("nodelay");
                let (mut read, mut write) = stream.into_split();
                echoes.push(tokio::spawn(async move {
                    let mut buf = [0u8; MESSAGE];
                    for _ in 0..round_trips {
                        read.read_exact(&mut buf).await.expect("server recv failed");
                        write.write_all(&buf).await.expect("server send failed");
                    }
                }));
            }
            for echo in echoes {
                echo.await.expect("echo failed");
            }
        });
        let clients: Vec<_> = (0..connections)
            .map(|c| {
                tokio::spawn(async move {
                    let stream = TcpStream::connect(address).await.expect("dial failed");
                    stream.set_nodelay(true).expect("nodelay");
                    let (mut read, mut write) = stream.into_split();
                    let mut buf = [c as u8; MESSAGE];
                    for _ in 0..round_trips {
                        write.write_all(&buf).await.expect("client send failed");
                        read.read_exact(&mut buf).await.expect("client recv failed");
                    }
                    buf[0]
                })
            })
            .collect();
        for (c, client) in clients.into_iter().enumerate() {
            assert_eq!(client.await.expect("client failed"), c as u8);
        }
        server.await.expect("server failed");
        start.elapsed()
    })
}
