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
//!
//! # Faults
//! A dial comes from the IP of the context that makes it
//! (`Context::with_ip`, `127.0.0.1` by default), so every connection joins
//! two IPs and each direction is a link with its own [`LinkFaults`]. While
//! no fault is configured and no partition is in force, sends and receives
//! take the plain path above (one atomic load more). Otherwise a dial can be
//! refused (partition, `dial_failure`); a send can reset the connection
//! (`reset`: both ends' sends and receives fail from then on, and pending
//! receives wake up to fail); and a send that must be delayed (latency,
//! jitter, bandwidth, or a stalled partition) goes to the direction's
//! [`Lane`], whose carrier task delivers it to the pipe at its arrival time.
//! Once a direction has a carrier, every later send goes through it, so
//! bytes never overtake each other. A partition in `Reset` mode resets the
//! open connections across it when it is made; in `Stall` mode their
//! carriers hold the bytes until `heal`. On a link with Byzantine rates or
//! a hook, each send first goes to `byzantine.rs`, which decides what the
//! link carries instead (nothing, the bytes later, twice, corrupted, with
//! an earlier payload after them, or other bytes); what it decides takes
//! the path above.

mod byzantine;
mod lane;

pub(crate) use byzantine::Hooks;
pub use byzantine::{Action, Byzantine, Message, REPLAY_WINDOW};

use super::{
    auditor::kind,
    faults::{self, what, Injector, LinkFaults},
};
use crate::{metrics::IoMetrics, mocks, Error};
use commonware_executor::{Core, Wait, WaitNote};
use futures::{future::poll_fn, task::AtomicWaker};
use lane::{carry, Lane, CARRIER};
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Weak,
    },
    task::{Poll, Waker},
};

/// Ports handed to dialers (on `127.0.0.1`); listeners may not bind them there.
const EPHEMERAL: Range<u16> = 32768..61000;

/// The socket table of one runtime instance (a `recover` starts a new one).
pub(crate) struct Sockets {
    core: Core,
    metrics: Arc<IoMetrics>,
    faults: Arc<Injector>,
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
    /// Connections alive, by sequence number (partitions reset them).
    live: BTreeMap<u64, Weak<Connection>>,
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
    conn: Arc<Connection>,
}

/// What the halves of one connection share: the auditor and metrics they
/// report to, the dialer's ephemeral port, released when the last half
/// (or pending accept) is dropped, and the connection's fault state.
struct Connection {
    core: Core,
    metrics: Arc<IoMetrics>,
    table: Arc<Mutex<Table>>,
    id: u64,
    port: u16,
    /// IPs of the dialer and of the listener.
    ends: [IpAddr; 2],
    faults: Arc<Injector>,
    /// Set once the connection is reset: every send and receive fails.
    reset: AtomicBool,
    /// The pending receive of each direction (woken by a reset).
    readers: [AtomicWaker; 2],
    /// Each direction: 0 from the dialer, 1 from the listener.
    lanes: [Mutex<Lane>; 2],
}

/// The direction of a connection that starts at the dialer (or not).
fn direction(from_dialer: bool) -> usize {
    usize::from(!from_dialer)
}

impl Connection {
    /// Auditor word of one direction of this connection.
    fn word(&self, from_dialer: bool) -> u64 {
        self.id << 1 | u64::from(from_dialer)
    }

    /// The sending and receiving IPs of `direction`.
    fn ends(&self, direction: usize) -> (IpAddr, IpAddr) {
        match direction {
            0 => (self.ends[0], self.ends[1]),
            _ => (self.ends[1], self.ends[0]),
        }
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }

    /// Resets the connection (once): wakes its pending receives and its
    /// carriers, which then fail and stop.
    fn reset(&self) {
        if self.reset.swap(true, Ordering::AcqRel) {
            return;
        }
        faults::audit(&self.core, what::RESET, &self.id.to_le_bytes());
        for reader in &self.readers {
            reader.wake();
        }
        for lane in &self.lanes {
            let carrier = lane.lock().carrier.take();
            if let Some(carrier) = carrier {
                carrier.wake();
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        table.ports.remove(&self.port);
        table.live.remove(&self.id);
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
    pub(crate) fn new(core: Core, metrics: Arc<IoMetrics>, faults: Arc<Injector>) -> Self {
        Self {
            core,
            metrics,
            faults,
            table: Arc::new(Mutex::new(Table {
                listeners: BTreeMap::new(),
                ports: BTreeSet::new(),
                cursor: EPHEMERAL.start,
                connections: 0,
                live: BTreeMap::new(),
            })),
        }
    }

    /// Resets every open connection whose two IPs are now cut off.
    pub(crate) fn reset_cut(&self) {
        let connections: Vec<Arc<Connection>> = {
            let table = self.table.lock();
            table.live.values().filter_map(Weak::upgrade).collect()
        };
        for conn in &connections {
            if self.faults.is_cut(conn.ends[0], conn.ends[1]) {
                conn.reset();
            }
        }
        // The table is unlocked: dropping the last reference to a connection
        // takes its lock.
        drop(connections);
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

    fn dial(&self, origin: IpAddr, address: SocketAddr) -> Result<(Sink, Stream), Error> {
        if self.faults.network_active() {
            let to = address.ip();
            let refused = self.faults.is_cut(origin, to)
                || self
                    .faults
                    .decide(
                        &self.core,
                        origin,
                        format_args!("dial failure {origin}>{to}"),
                        self.faults.link(origin, to).0.dial_failure,
                    )
                    .is_some();
            if refused {
                audit_address(&self.core, kind::FAULT, what::DIAL, address);
                return Err(Error::ConnectionFailed);
            }
        }
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
        let conn = Arc::new(Connection {
            core: self.core.clone(),
            metrics: self.metrics.clone(),
            table: self.table.clone(),
            id,
            port,
            ends: [origin, address.ip()],
            faults: self.faults.clone(),
            reset: AtomicBool::new(false),
            readers: Default::default(),
            lanes: Default::default(),
        });
        self.table.lock().live.insert(id, Arc::downgrade(&conn));
        let (dialer_sink, listener_stream) = mocks::Channel::init();
        let (listener_sink, dialer_stream) = mocks::Channel::init();
        let acceptor = {
            let mut backlog = backlog.lock();
            backlog.pending.push_back(Pending {
                dialer: SocketAddr::new(origin, port),
                sink: listener_sink,
                stream: listener_stream,
                conn: conn.clone(),
            });
            backlog.acceptor.take()
        };
        if let Some(acceptor) = acceptor {
            acceptor.wake();
        }
        self.metrics.network_dials.inc();
        Ok((
            Sink::new(dialer_sink, &conn, true),
            Stream {
                pipe: dialer_stream,
                word: conn.word(false),
                direction: direction(false),
                conn,
            },
        ))
    }
}

impl crate::Network<Listener, Sink, Stream> for super::Context {
    async fn bind(&self, socket: SocketAddr) -> Result<Listener, Error> {
        self.runtime.network.bind(socket)
    }

    async fn dial(&self, socket: SocketAddr) -> Result<(Sink, Stream), Error> {
        self.runtime.network.dial(self.ip, socket)
    }
}

/// Implementation of [`crate::Listener`] for the `deterministic` runtime.
pub struct Listener {
    address: SocketAddr,
    backlog: Arc<Mutex<Backlog>>,
    core: Core,
    metrics: Arc<IoMetrics>,
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
                    drop(backlog);
                    note_accept(&self.core, self.address);
                    Poll::Pending
                }
            }
        })
        .await;
        audit_address(&self.core, kind::ACCEPT, pending.conn.id, self.address);
        self.metrics.network_accepts.inc();
        Ok((
            pending.dialer,
            Sink::new(pending.sink, &pending.conn, false),
            Stream {
                pipe: pending.stream,
                word: pending.conn.word(true),
                direction: direction(true),
                conn: pending.conn,
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
    /// The pipe, until a send is first delayed; the [`Lane`] has it then.
    pipe: Option<mocks::Sink>,
    word: u64,
    direction: usize,
    conn: Arc<Connection>,
    /// This direction's link faults, with the settings generation they are
    /// from (`None`: not looked up yet).
    faults: Option<(LinkFaults, u64)>,
    /// The last payloads sent while Byzantine behaviour applied (replays
    /// choose among them).
    history: VecDeque<Vec<u8>>,
}

impl Sink {
    fn new(pipe: mocks::Sink, conn: &Arc<Connection>, from_dialer: bool) -> Self {
        Self {
            pipe: Some(pipe),
            word: conn.word(from_dialer),
            direction: direction(from_dialer),
            conn: conn.clone(),
            faults: None,
            history: VecDeque::new(),
        }
    }

    /// The send path while faults may apply.
    fn send_with_faults(&mut self, msg: &[u8]) -> Result<(), Error> {
        let conn = &*self.conn;
        let (from, to) = conn.ends(self.direction);
        let generation = conn.faults.generation();
        let settings = match self.faults {
            Some((settings, seen)) if seen == generation => settings,
            _ => {
                let (settings, generation) = conn.faults.link(from, to);
                self.faults = Some((settings, generation));
                settings
            }
        };
        let reset = format_args!("reset {from}>{to}");
        if conn
            .faults
            .decide(&conn.core, from, reset, settings.reset)
            .is_some()
        {
            conn.reset();
            return Err(Error::SendFailed);
        }
        if settings.byzantine.active() || conn.faults.hooked() {
            let message = byzantine::Message {
                from,
                to,
                connection: conn.id,
                from_dialer: self.direction == 0,
                payload: msg,
            };
            let word = self.word;
            let deliveries = byzantine::decide(
                &conn.core,
                &conn.faults,
                &settings.byzantine,
                conn.faults.hooks(),
                &message,
                word,
                &mut self.history,
            );
            let mut delayed = settings;
            delayed.latency = delayed.latency.saturating_add(deliveries.delay);
            for payload in &deliveries.payloads {
                self.deliver(&delayed, payload)?;
            }
            return Ok(());
        }
        self.deliver(&settings, msg)
    }

    /// Logs `bytes` sent now, arriving at `arrives`, when the run is drawn.
    #[inline]
    fn log(&self, bytes: usize, arrives: u64) {
        let conn = &*self.conn;
        if let Some(log) = conn.faults.log() {
            let (from, to) = conn.ends(self.direction);
            log.message(conn.core.now(), from, to, arrives, bytes);
        }
    }

    /// Carries `msg` over the link with `settings`: straight into the pipe,
    /// or through the lane when it must arrive later.
    fn deliver(&mut self, settings: &LinkFaults, msg: &[u8]) -> Result<(), Error> {
        let conn = &*self.conn;
        let (from, to) = conn.ends(self.direction);
        if !settings.delays() && !conn.faults.is_cut(from, to) {
            if let Some(pipe) = &self.pipe {
                pipe.push(msg)?;
                self.log(msg.len(), conn.core.now());
                return Ok(());
            }
        }
        let start = self.pipe.is_some();
        let carrier = {
            let mut lane = conn.lanes[self.direction].lock();
            if lane.broken {
                return Err(Error::SendFailed);
            }
            if let Some(pipe) = self.pipe.take() {
                lane.pipe = Some(pipe);
            }
            let at = lane
                .clock
                .arrival(&conn.core, settings, msg.len(), conn.core.now());
            lane.queue.push_back((at, msg.to_vec()));
            self.log(msg.len(), at);
            lane.carrier.take()
        };
        if start {
            let carrier = carry(self.conn.clone(), self.direction);
            conn.core.spawn(CARRIER, carrier);
        }
        if let Some(carrier) = carrier {
            carrier.wake();
        }
        Ok(())
    }
}

impl crate::Sink for Sink {
    async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let conn = &*self.conn;
        conn.core.audit(kind::SEND, self.word, msg);
        if !msg.is_empty() && conn.is_reset() {
            return Err(Error::SendFailed);
        }
        match &self.pipe {
            Some(pipe) if !conn.faults.network_active() => {
                pipe.push(msg)?;
                self.log(msg.len(), conn.core.now());
            }
            _ => self.send_with_faults(msg)?,
        }
        let conn = &*self.conn;
        conn.metrics.network_sends.inc();
        conn.metrics.network_bandwidth.inc_by(msg.len() as u64);
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.pipe.is_none() {
            // A carrier has the pipe: let it deliver the rest, then close.
            let carrier = {
                let mut lane = self.conn.lanes[self.direction].lock();
                lane.closed = true;
                lane.carrier.take()
            };
            if let Some(carrier) = carrier {
                carrier.wake();
            }
        }
    }
}

/// How the stall and timeout reports show a pending `recv`: the note's
/// word is the connection id (bits 33 and up), the direction (bit 32,
/// set from the dialer) and the bytes still missing (low 32 bits, capped).
static RECV_WAIT: WaitNote = WaitNote {
    describe: |f, word| {
        let from = if word >> 32 & 1 == 1 {
            "dialer"
        } else {
            "listener"
        };
        write!(
            f,
            "a recv on connection #{} (bytes from the {from}), {} byte(s) missing",
            word >> 33,
            word & u64::from(u32::MAX)
        )
    },
};

/// How the stall and timeout reports show a pending `accept`: the note's
/// word is the listener's IPv4 address (bits 16 to 47) and port (low 16
/// bits); other addresses show the port only.
static ACCEPT_WAIT: WaitNote = WaitNote {
    describe: |f, word| {
        let ip = Ipv4Addr::from((word >> 16) as u32);
        let port = word & 0xFFFF;
        match word >> 48 {
            0 => write!(f, "an accept on {ip}:{port} (nothing dialed it)"),
            _ => write!(f, "an accept on port {port} (nothing dialed it)"),
        }
    },
};

/// Notes a pending `accept` on `address`.
fn note_accept(core: &Core, address: SocketAddr) {
    let port = u64::from(address.port());
    let word = match address.ip() {
        IpAddr::V4(ip) => u64::from(u32::from(ip)) << 16 | port,
        IpAddr::V6(_) => 1 << 48 | port,
    };
    core.note_wait(Wait::Note(&ACCEPT_WAIT, word));
}

/// Notes a pending `recv` of `wanted` bytes with `buffered` already there.
fn note_recv(conn: &Connection, direction: usize, wanted: usize, buffered: usize) {
    let missing = wanted.saturating_sub(buffered).min(u32::MAX as usize) as u64;
    let from_dialer = u64::from(direction == 0);
    conn.core.note_wait(Wait::Note(
        &RECV_WAIT,
        conn.id << 33 | from_dialer << 32 | missing,
    ));
}

/// Implementation of [`crate::Stream`] for the `deterministic` runtime.
pub struct Stream {
    pipe: mocks::Stream,
    word: u64,
    direction: usize,
    conn: Arc<Connection>,
}

impl crate::Stream for Stream {
    async fn recv(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let conn = &*self.conn;
        let reader = &conn.readers[self.direction];
        let pipe = &mut self.pipe;
        let direction = self.direction;
        poll_fn(|cx| {
            let reset = !buf.is_empty() && conn.is_reset();
            if reset {
                return Poll::Ready(Err(Error::RecvFailed));
            }
            let poll = pipe.poll_recv(cx, buf);
            if poll.is_pending() {
                note_recv(conn, direction, buf.len(), pipe.buffered());
                // A reset must wake this receive; check again after
                // registering, in case it came in between.
                reader.register(cx.waker());
                if conn.is_reset() {
                    return Poll::Ready(Err(Error::RecvFailed));
                }
            }
            poll
        })
        .await?;
        conn.core.audit(kind::RECV, self.word, buf);
        conn.metrics.network_recvs.inc();
        Ok(())
    }
}
