//! The simulated network: a socket table of listeners and in-memory
//! connections.
//!
//! `bind` registers a [`Listener`] under its exact address (any IP, any port,
//! port 0 included); `dial` allocates the dialer an ephemeral address on
//! `127.0.0.1` and hands the listener a connection made of two
//! [`mocks::Channel`] pipes, one per direction, so the two directions are
//! independent (half-close works) and the byte-stream semantics are those of
//! the mock channel: ordered, exact-length, cancel-safe reads; `RecvFailed`
//! once the peer's sink is gone and its bytes are consumed; `SendFailed`
//! once the peer's stream is gone.
//!
//! # Invariants
//! * Binding `127.0.0.1` with a port in [`EPHEMERAL`] fails, so a listener
//!   never collides with a dialer; binding a bound address fails. Dropping a
//!   [`Listener`] frees its address and drops the connections it had not
//!   accepted yet (their dialers see failed sends and receives).
//! * Dialers get ephemeral ports in order, starting at 32768; a dial that
//!   finds no listener still uses up its port's turn (as in the reference).
//!   A port stays taken while any half of its connection (or its pending
//!   accept) lives; after the range wraps, taken ports are skipped, and a
//!   dial fails with `ConnectionFailed` only when every port of the range is
//!   taken.
//! * Every bind, dial, accept, send and receive (with its payload) is folded
//!   into the auditor. Connections are named in it by a sequence number
//!   given at dial time, so nothing in the digest depends on where objects
//!   live in memory.
//! * The table is a `BTreeMap`: no hash order reaches anything observable.
//! * No lock of the table is held while a connection is dropped (dropping
//!   one releases its port, which takes the table lock).

use super::kind;
use crate::{metrics::Metrics, mocks, Error};
use commonware_executor::Core;
use futures::future::poll_fn;
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    sync::{Arc, Weak},
    task::{Poll, Waker},
};

/// Ports handed to dialers (on `127.0.0.1`); listeners may not bind them there.
const EPHEMERAL: Range<u16> = 32768..61000;

/// The socket table of one runtime instance (a `recover` starts a new one).
pub(crate) struct Sockets {
    core: Core,
    metrics: Arc<Metrics>,
    table: Arc<Mutex<Table>>,
}

/// Listening addresses and ephemeral ports in use.
struct Table {
    /// The accept queue of each bound address. Weak: the [`Listener`] owns
    /// the queue, and the queue owns connections that point back here.
    listeners: BTreeMap<SocketAddr, Weak<Mutex<Backlog>>>,
    /// Ephemeral ports held by live connections.
    ports: BTreeSet<u16>,
    /// Where the search for the next ephemeral port starts.
    cursor: u16,
    /// Connections dialed so far (names connections in the auditor).
    connections: u64,
}

impl Table {
    /// The first free ephemeral port at or after the cursor (wrapping).
    fn allocate(&mut self) -> Option<u16> {
        let span = EPHEMERAL.end - EPHEMERAL.start;
        let start = self.cursor - EPHEMERAL.start;
        let port = (0..span)
            .map(|step| EPHEMERAL.start + (start + step) % span)
            .find(|port| !self.ports.contains(port))?;
        self.ports.insert(port);
        self.cursor = if port + 1 == EPHEMERAL.end {
            EPHEMERAL.start
        } else {
            port + 1
        };
        Some(port)
    }
}

/// Connections dialed to a listener and not yet accepted.
#[derive(Default)]
struct Backlog {
    pending: VecDeque<Pending>,
    acceptor: Option<Waker>,
}

/// The listener's ends of a connection waiting in a [`Backlog`].
struct Pending {
    dialer: SocketAddr,
    sink: mocks::Sink,
    stream: mocks::Stream,
    link: Arc<Link>,
}

/// What the halves of one connection share: the auditor and metrics they
/// report to, and the dialer's ephemeral port, released when the last half
/// (or pending accept) is dropped.
struct Link {
    core: Core,
    metrics: Arc<Metrics>,
    table: Arc<Mutex<Table>>,
    id: u64,
    port: u16,
}

impl Link {
    /// Auditor word of one direction of this connection.
    fn word(&self, from_dialer: bool) -> u64 {
        self.id << 1 | u64::from(from_dialer)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.table.lock().ports.remove(&self.port);
    }
}

/// Audits an event about `addr`: the port goes in the word (above `extra`),
/// the IP octets in the payload.
fn audit_address(core: &Core, kind: u8, extra: u64, addr: SocketAddr) {
    let word = extra << 16 | u64::from(addr.port());
    match addr.ip() {
        IpAddr::V4(ip) => core.audit(kind, word, &ip.octets()),
        IpAddr::V6(ip) => core.audit(kind, word, &ip.octets()),
    }
}

impl Sockets {
    pub(crate) fn new(core: Core, metrics: Arc<Metrics>) -> Self {
        Self {
            core,
            metrics,
            table: Arc::new(Mutex::new(Table {
                listeners: BTreeMap::new(),
                ports: BTreeSet::new(),
                cursor: EPHEMERAL.start,
                connections: 0,
            })),
        }
    }

    fn bind(&self, address: SocketAddr) -> Result<Listener, Error> {
        audit_address(&self.core, kind::BIND, 0, address);
        if address.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) && EPHEMERAL.contains(&address.port()) {
            return Err(Error::BindFailed);
        }
        let mut table = self.table.lock();
        if table.listeners.contains_key(&address) {
            return Err(Error::BindFailed);
        }
        let backlog = Arc::new(Mutex::new(Backlog::default()));
        table.listeners.insert(address, Arc::downgrade(&backlog));
        Ok(Listener {
            address,
            backlog,
            core: self.core.clone(),
            metrics: self.metrics.clone(),
            table: self.table.clone(),
        })
    }

    fn dial(&self, address: SocketAddr) -> Result<(Sink, Stream), Error> {
        let (port, target) = {
            let mut table = self.table.lock();
            let port = table.allocate();
            let target = match port {
                Some(port) => match table.listeners.get(&address).and_then(Weak::upgrade) {
                    Some(backlog) => {
                        let id = table.connections;
                        table.connections += 1;
                        Some((id, backlog))
                    }
                    None => {
                        table.ports.remove(&port);
                        None
                    }
                },
                None => None,
            };
            (port, target)
        };
        audit_address(
            &self.core,
            kind::DIAL,
            u64::from(port.unwrap_or(0)),
            address,
        );
        let (Some(port), Some((id, backlog))) = (port, target) else {
            return Err(Error::ConnectionFailed);
        };
        let link = Arc::new(Link {
            core: self.core.clone(),
            metrics: self.metrics.clone(),
            table: self.table.clone(),
            id,
            port,
        });
        let (dialer_sink, listener_stream) = mocks::Channel::init();
        let (listener_sink, dialer_stream) = mocks::Channel::init();
        let acceptor = {
            let mut backlog = backlog.lock();
            backlog.pending.push_back(Pending {
                dialer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                sink: listener_sink,
                stream: listener_stream,
                link: link.clone(),
            });
            backlog.acceptor.take()
        };
        if let Some(acceptor) = acceptor {
            acceptor.wake();
        }
        self.metrics.network_dials.inc();
        Ok((
            Sink {
                pipe: dialer_sink,
                word: link.word(true),
                link: link.clone(),
            },
            Stream {
                pipe: dialer_stream,
                word: link.word(false),
                link,
            },
        ))
    }
}

impl crate::Network<Listener, Sink, Stream> for super::Context {
    async fn bind(&self, socket: SocketAddr) -> Result<Listener, Error> {
        self.runtime.network.bind(socket)
    }

    async fn dial(&self, socket: SocketAddr) -> Result<(Sink, Stream), Error> {
        self.runtime.network.dial(socket)
    }
}

/// Implementation of [`crate::Listener`] for the `deterministic` runtime.
pub struct Listener {
    address: SocketAddr,
    backlog: Arc<Mutex<Backlog>>,
    core: Core,
    metrics: Arc<Metrics>,
    table: Arc<Mutex<Table>>,
}

impl crate::Listener<Sink, Stream> for Listener {
    async fn accept(&mut self) -> Result<(SocketAddr, Sink, Stream), Error> {
        let pending = poll_fn(|cx| {
            let mut backlog = self.backlog.lock();
            match backlog.pending.pop_front() {
                Some(pending) => Poll::Ready(pending),
                None => {
                    match &mut backlog.acceptor {
                        Some(acceptor) => acceptor.clone_from(cx.waker()),
                        acceptor @ None => *acceptor = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        audit_address(&self.core, kind::ACCEPT, pending.link.id, self.address);
        self.metrics.network_accepts.inc();
        Ok((
            pending.dialer,
            Sink {
                pipe: pending.sink,
                word: pending.link.word(false),
                link: pending.link.clone(),
            },
            Stream {
                pipe: pending.stream,
                word: pending.link.word(true),
                link: pending.link,
            },
        ))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.table.lock().listeners.remove(&self.address);
        // The backlog (and the connections in it) is dropped after this,
        // with the table unlocked.
    }
}

/// Implementation of [`crate::Sink`] for the `deterministic` runtime.
pub struct Sink {
    pipe: mocks::Sink,
    word: u64,
    link: Arc<Link>,
}

impl crate::Sink for Sink {
    async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let link = &*self.link;
        link.core.audit(kind::SEND, self.word, msg);
        self.pipe.push(msg)?;
        link.metrics.network_sends.inc();
        link.metrics.network_bandwidth.inc_by(msg.len() as u64);
        Ok(())
    }
}

/// Implementation of [`crate::Stream`] for the `deterministic` runtime.
pub struct Stream {
    pipe: mocks::Stream,
    word: u64,
    link: Arc<Link>,
}

impl crate::Stream for Stream {
    async fn recv(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        poll_fn(|cx| self.pipe.poll_recv(cx, buf)).await?;
        let link = &*self.link;
        link.core.audit(kind::RECV, self.word, buf);
        link.metrics.network_recvs.inc();
        Ok(())
    }
}
