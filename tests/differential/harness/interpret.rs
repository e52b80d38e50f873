//! The interpreter: runs one op sequence on one backend and records every
//! result, tracking which results the two backends must agree on (the
//! module documentation of `harness` lists the exceptions).

use super::*;

/// The backend an interpreter runs on (only addresses differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Deterministic,
    Tokio,
}

/// The bytes a write or send of `len` bytes with `fill` carries.
pub(super) fn pattern(len: u16, fill: u8) -> Vec<u8> {
    (0..usize::from(len))
        .map(|i| fill.wrapping_add((i % 251) as u8))
        .collect()
}

/// One open of a blob (shared by its clones).
pub(super) struct OpenModel {
    /// The incarnation of the blob it opened.
    gen: usize,
    /// Its view equals the other backend's (see the module docs).
    clean: bool,
    /// It changed the blob since it last published.
    dirty: bool,
    /// Live clones.
    clones: usize,
}

/// One incarnation of a blob: from its creation by `open` to its removal.
#[derive(Default)]
pub(super) struct GenModel {
    key: (String, Vec<u8>),
    /// The backends' contents may differ (see the module docs).
    divergent: bool,
    /// Opens with live clones.
    opens: Vec<usize>,
}

pub(super) struct HandleSlot<B> {
    id: usize,
    open: usize,
    blob: B,
}

/// How far a connection end got.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Presence {
    /// Waiting in the listener's backlog (both halves alive in the kernel).
    Pending,
    /// Accepted (or the dialer): the halves are the `Option`s.
    Live,
    /// Never accepted: its listener was dropped.
    Gone,
}

pub(super) struct End<Si, St> {
    presence: Presence,
    sink: Option<Si>,
    stream: Option<St>,
    /// A TCP reset reached (or may reach) it: nothing it does is compared.
    reset: bool,
}

impl<Si, St> End<Si, St> {
    fn sink_alive(&self) -> bool {
        self.presence == Presence::Pending
            || (self.presence == Presence::Live && self.sink.is_some())
    }

    fn stream_alive(&self) -> bool {
        self.presence == Presence::Pending
            || (self.presence == Presence::Live && self.stream.is_some())
    }

    fn closed(&self) -> bool {
        !self.sink_alive() && !self.stream_alive()
    }
}

/// One connection: end 0 dialed, end 1 was accepted.
pub(super) struct Conn<Si, St> {
    ends: [End<Si, St>; 2],
    /// Bytes each end tried to send.
    attempted: [u64; 2],
    /// Bytes each end sent successfully.
    sent: [u64; 2],
    /// Bytes each end received.
    received: [u64; 2],
}

pub(super) struct ListenerSlot<L> {
    listener: Option<L>,
    /// Its address once bound (kept after a drop, to dial and rebind it).
    addr: Option<SocketAddr>,
    /// Dialed connections not accepted yet, oldest first.
    pending: VecDeque<usize>,
}

/// A loopback port for the tokio backend: below Linux's ephemeral range, so
/// no outgoing connection takes a port a listener will bind again, starting
/// at an offset from the pid so that concurrent processes rarely meet.
pub(super) fn next_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 32_768 - FIRST;
    let start = (std::process::id() % 200) * 100 + 7;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (FIRST + (start + n) % SPAN) as u16
}

pub(super) struct Interp<B, L, Si, St> {
    backend: Backend,
    out: Arc<Mutex<Vec<Step>>>,
    handles: Vec<HandleSlot<B>>,
    next_handle: usize,
    opens: Vec<OpenModel>,
    gens: Vec<GenModel>,
    /// The live incarnation of each blob.
    current: BTreeMap<(String, Vec<u8>), usize>,
    listeners: Vec<ListenerSlot<L>>,
    conns: Vec<Conn<Si, St>>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B, L, Si, St> Interp<B, L, Si, St>
where
    B: Blob,
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    fn record(&self, kind: &'static str, what: String, outcome: Outcome) {
        lock(&self.out).push(Step {
            kind,
            what,
            outcome,
        });
    }

    /// The index in `handles` that `h` addresses.
    fn handle(&self, h: u8) -> Option<usize> {
        (!self.handles.is_empty()).then(|| usize::from(h) % self.handles.len())
    }

    /// Open `open` changed its blob: every other open of the incarnation
    /// now sees something else on tokio than in simulation.
    fn changed(&mut self, open: usize) {
        self.opens[open].dirty = true;
        let gen = self.opens[open].gen;
        for &other in &self.gens[gen].opens {
            if other != open {
                self.opens[other].clean = false;
            }
        }
    }

    /// Open `open` published (sync/close succeeded).
    fn published(&mut self, open: usize) {
        let gen = self.opens[open].gen;
        if !self.opens[open].clean {
            self.gens[gen].divergent = true;
        }
        self.opens[open].dirty = false;
    }

    /// One clone of open `open` is gone.
    fn release(&mut self, open: usize) {
        self.opens[open].clones -= 1;
        if self.opens[open].clones == 0 {
            let gen = self.opens[open].gen;
            self.gens[gen].opens.retain(|&o| o != open);
            // Tokio keeps unsynced writes in the file; the simulation drops
            // them with the handle.
            if self.opens[open].dirty {
                self.gens[gen].divergent = true;
            }
        }
    }

    /// Whether a new open of `key` would be clean.
    fn comparable(&self, key: &(String, Vec<u8>)) -> bool {
        match self.current.get(key) {
            Some(&gen) => {
                !self.gens[gen].divergent
                    && self.gens[gen].opens.iter().all(|&o| !self.opens[o].dirty)
            }
            None => true,
        }
    }

    /// Records the result of a publish through open `open`.
    fn publish_outcome(&mut self, open: usize, result: Result<(), Error>) -> Outcome {
        if result.is_ok() {
            self.published(open);
        }
        Outcome::Unit(result)
    }

    async fn storage_op<C: Storage<B>>(&mut self, ctx: &C, op: &Op) {
        match op {
            Op::Open { partition, name } => {
                let what = format!("h{} = open({partition:?}, {name:?})", self.next_handle);
                let result = ctx.open(&partition.0, &name.0).await;
                let outcome = Outcome::Unit(result.as_ref().map(|_| ()).map_err(clone_error));
                if let Ok(blob) = result {
                    let key = (partition.0.clone(), name.0.clone());
                    let gen = match self.current.get(&key) {
                        Some(&gen) => gen,
                        None => {
                            self.gens.push(GenModel {
                                key: key.clone(),
                                ..GenModel::default()
                            });
                            self.current.insert(key.clone(), self.gens.len() - 1);
                            self.gens.len() - 1
                        }
                    };
                    let clean = self.comparable(&key);
                    self.opens.push(OpenModel {
                        gen,
                        clean,
                        dirty: false,
                        clones: 1,
                    });
                    let open = self.opens.len() - 1;
                    self.gens[gen].opens.push(open);
                    self.handles.push(HandleSlot {
                        id: self.next_handle,
                        open,
                        blob,
                    });
                    self.next_handle += 1;
                }
                self.record("open", what, outcome);
            }
            Op::Remove { partition, name } => {
                let what = match name {
                    Some(name) => format!("remove({partition:?}, {name:?})"),
                    None => format!("remove({partition:?}, None)"),
                };
                let result = ctx
                    .remove(&partition.0, name.as_ref().map(|n| n.0.as_slice()))
                    .await;
                if result.is_ok() {
                    match name {
                        Some(name) => {
                            self.current.remove(&(partition.0.clone(), name.0.clone()));
                        }
                        None => self.current.retain(|key, _| key.0 != partition.0),
                    }
                }
                self.record("remove", what, Outcome::Unit(result));
            }
            Op::Scan { partition } => {
                let result = ctx.scan(&partition.0).await;
                self.record(
                    "scan",
                    format!("scan({partition:?})"),
                    Outcome::Names(result),
                );
            }
            Op::Clone { h } => {
                let Some(i) = self.handle(*h) else {
                    return self.record("clone", "clone (no handle)".into(), Outcome::NoOp);
                };
                let (open, blob) = (self.handles[i].open, self.handles[i].blob.clone());
                let what = format!("h{} = h{}.clone()", self.next_handle, self.handles[i].id);
                self.opens[open].clones += 1;
                self.handles.push(HandleSlot {
                    id: self.next_handle,
                    open,
                    blob,
                });
                self.next_handle += 1;
                self.record("clone", what, Outcome::Done);
            }
            Op::Close { h } | Op::Drop { h } => {
                let close = matches!(op, Op::Close { .. });
                let kind = if close { "close" } else { "drop" };
                let Some(i) = self.handle(*h) else {
                    return self.record(kind, format!("{kind} (no handle)"), Outcome::NoOp);
                };
                let slot = self.handles.remove(i);
                let what = format!("h{}.{kind}()", slot.id);
                let outcome = if close {
                    let result = slot.blob.close().await;
                    self.publish_outcome(slot.open, result)
                } else {
                    drop(slot.blob);
                    Outcome::Done
                };
                self.release(slot.open);
                self.record(kind, what, outcome);
            }
            Op::Write { h, .. }
            | Op::Read { h, .. }
            | Op::Len { h }
            | Op::Truncate { h, .. }
            | Op::Sync { h } => {
                let Some(i) = self.handle(*h) else {
                    return self.record("blob", "blob op (no handle)".into(), Outcome::NoOp);
                };
                self.blob_op(i, op).await;
            }
            _ => unreachable!("not a storage op"),
        }
    }

    async fn blob_op(&mut self, i: usize, op: &Op) {
        let (id, open) = (self.handles[i].id, self.handles[i].open);
        let blob = self.handles[i].blob.clone();
        let clean = self.opens[open].clean;
        const UNCLEAN: &str = "another handle's writes are visible on tokio only";
        match op {
            Op::Write {
                offset, len, fill, ..
            } => {
                let data = pattern(*len, *fill);
                let result = blob.write_at(&data, *offset).await;
                if result.is_ok() && !data.is_empty() {
                    self.changed(open);
                }
                let what = format!("h{id}.write_at({len} bytes of {fill:#04x}.., {offset})");
                self.record("write_at", what, Outcome::Unit(result));
            }
            Op::Truncate { len, .. } => {
                let result = blob.truncate(*len).await;
                if result.is_ok() {
                    self.changed(open);
                }
                self.record(
                    "truncate",
                    format!("h{id}.truncate({len})"),
                    Outcome::Unit(result),
                );
            }
            Op::Read { offset, len, .. } => {
                let mut buf = vec![0u8; usize::from(*len)];
                let result = blob.read_at(&mut buf, *offset).await.map(|()| buf);
                let outcome = if clean {
                    Outcome::Bytes(result)
                } else {
                    Outcome::Skipped(UNCLEAN, Outcome::Bytes(result).to_string())
                };
                let what = format!("h{id}.read_at({len} bytes, {offset})");
                self.record("read_at", what, outcome);
            }
            Op::Len { .. } => {
                let result = blob.len().await;
                let outcome = if clean {
                    Outcome::Len(result)
                } else {
                    Outcome::Skipped(UNCLEAN, Outcome::Len(result).to_string())
                };
                self.record("len", format!("h{id}.len()"), outcome);
            }
            Op::Sync { .. } => {
                let result = blob.sync().await;
                let outcome = self.publish_outcome(open, result);
                self.record("sync", format!("h{id}.sync()"), outcome);
            }
            _ => unreachable!("not a blob op"),
        }
    }

    /// The indices (connection, end) of the live ends for which `alive`
    /// holds, in order.
    fn ends(&self, alive: impl Fn(&End<Si, St>) -> bool) -> Vec<(usize, usize)> {
        let mut ends = Vec::new();
        for (c, conn) in self.conns.iter().enumerate() {
            for (e, end) in conn.ends.iter().enumerate() {
                if end.presence == Presence::Live && alive(end) {
                    ends.push((c, e));
                }
            }
        }
        ends
    }

    /// A listener address for a slot never bound: fixed in simulation, a
    /// free loopback port on tokio.
    async fn bind_fresh<C: Network<L, Si, St>>(
        &mut self,
        ctx: &C,
        slot: usize,
    ) -> Result<(), Error> {
        let attempts = match self.backend {
            Backend::Deterministic => 1,
            Backend::Tokio => 64,
        };
        let mut last = Err(Error::BindFailed);
        for _ in 0..attempts {
            let port = match self.backend {
                Backend::Deterministic => 1000 + slot as u16,
                Backend::Tokio => next_port(),
            };
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match ctx.bind(addr).await {
                Ok(listener) => {
                    self.listeners[slot].listener = Some(listener);
                    self.listeners[slot].addr = Some(addr);
                    return Ok(());
                }
                Err(e) => last = Err(e),
            }
        }
        last
    }

    async fn network_op<C: Network<L, Si, St>>(&mut self, ctx: &C, op: &Op) {
        match op {
            Op::Bind { slot } => {
                let s = usize::from(*slot % SLOTS);
                let what = format!("l{s}.bind()");
                let result = match self.listeners[s].addr {
                    None => self.bind_fresh(ctx, s).await,
                    Some(addr) => match ctx.bind(addr).await {
                        Ok(listener) => {
                            if self.listeners[s].listener.is_none() {
                                self.listeners[s].listener = Some(listener);
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                };
                self.record("bind", what, Outcome::Unit(result));
            }
            Op::DropListener { slot } => {
                let s = usize::from(*slot % SLOTS);
                let Some(listener) = self.listeners[s].listener.take() else {
                    return self.record(
                        "drop listener",
                        format!("l{s}.drop() (unbound)"),
                        Outcome::NoOp,
                    );
                };
                drop(listener);
                // The kernel resets the connections it had not handed out.
                for c in std::mem::take(&mut self.listeners[s].pending) {
                    self.conns[c].ends[1].presence = Presence::Gone;
                    self.conns[c].ends[0].reset = true;
                }
                self.record("drop listener", format!("l{s}.drop()"), Outcome::Done);
            }
            Op::Dial { slot } => {
                let bound: Vec<usize> = (0..self.listeners.len())
                    .filter(|&s| self.listeners[s].addr.is_some())
                    .collect();
                let Some(&s) = bound.get(usize::from(*slot) % bound.len().max(1)) else {
                    return self.record("dial", "dial (nothing bound)".into(), Outcome::NoOp);
                };
                let Some(addr) = self.listeners[s].addr else {
                    unreachable!("picked a bound slot");
                };
                let what = format!("c{} = dial(l{s})", self.conns.len());
                let result = ctx.dial(addr).await;
                let outcome = Outcome::Unit(result.as_ref().map(|_| ()).map_err(clone_error));
                if let Ok((sink, stream)) = result {
                    let live = self.listeners[s].listener.is_some();
                    let conn = Conn {
                        ends: [
                            End {
                                presence: Presence::Live,
                                sink: Some(sink),
                                stream: Some(stream),
                                reset: !live,
                            },
                            End {
                                presence: if live {
                                    Presence::Pending
                                } else {
                                    Presence::Gone
                                },
                                sink: None,
                                stream: None,
                                reset: false,
                            },
                        ],
                        attempted: [0; 2],
                        sent: [0; 2],
                        received: [0; 2],
                    };
                    self.conns.push(conn);
                    if live {
                        self.listeners[s].pending.push_back(self.conns.len() - 1);
                    }
                }
                self.record("dial", what, outcome);
            }
            Op::Accept { slot } => {
                let waiting: Vec<usize> = (0..self.listeners.len())
                    .filter(|&s| {
                        let slot = &self.listeners[s];
                        slot.listener.is_some() && !slot.pending.is_empty()
                    })
                    .collect();
                let s = match waiting.get(usize::from(*slot) % waiting.len().max(1)) {
                    Some(&s) => s,
                    None => usize::from(*slot % SLOTS),
                };
                let slot = &mut self.listeners[s];
                let (Some(listener), Some(&c)) = (slot.listener.as_mut(), slot.pending.front())
                else {
                    return self.record(
                        "accept",
                        format!("l{s}.accept() (nothing pending)"),
                        Outcome::NoOp,
                    );
                };
                slot.pending.pop_front();
                let result = listener.accept().await;
                let what = format!("l{s}.accept() -> c{c}");
                let end = &mut self.conns[c].ends[1];
                let outcome = match result {
                    Ok((addr, sink, stream)) => {
                        end.presence = Presence::Live;
                        end.sink = Some(sink);
                        end.stream = Some(stream);
                        Outcome::Peer(Ok(addr.ip()))
                    }
                    Err(e) => {
                        end.presence = Presence::Gone;
                        Outcome::Peer(Err(e))
                    }
                };
                self.record("accept", what, outcome);
            }
            Op::Send { end, len, fill } => {
                let ends = self.ends(|e| e.sink.is_some());
                if ends.is_empty() {
                    return self.record("send", "send (no sink)".into(), Outcome::NoOp);
                }
                let (c, x) = ends[usize::from(*end) % ends.len()];
                let y = 1 - x;
                let conn = &mut self.conns[c];
                let unread = conn.attempted[x] - conn.received[y];
                let len = u64::from(*len).min(MAX_UNREAD.saturating_sub(unread)) as u16;
                let data = pattern(len, *fill);
                let compared = !conn.ends[x].reset && conn.ends[y].stream_alive();
                let peer_closed = conn.ends[y].closed();
                let Some(sink) = conn.ends[x].sink.as_mut() else {
                    unreachable!("picked an end with a sink");
                };
                let result = sink.send(&data).await;
                conn.attempted[x] += u64::from(len);
                if result.is_ok() {
                    conn.sent[x] += u64::from(len);
                }
                if peer_closed && len > 0 {
                    // The closed socket answers with a reset.
                    conn.ends[x].reset = true;
                }
                let outcome = if compared {
                    Outcome::Unit(result)
                } else if conn.ends[x].reset && !peer_closed {
                    Outcome::Skipped("connection reset", format!("{result:?}"))
                } else {
                    Outcome::Skipped(
                        "peer's stream dropped: tokio buffers",
                        format!("{result:?}"),
                    )
                };
                let what = format!("c{c}.{}.send({len} bytes of {fill:#04x}..)", side(x));
                self.record("send", what, outcome);
            }
            Op::Recv { end, len } => {
                // Ends with something to receive (bytes, or the end of the
                // stream) first.
                let mut ends = self.ends(|e| e.stream.is_some());
                let ready: Vec<(usize, usize)> = ends
                    .iter()
                    .copied()
                    .filter(|&(c, x)| {
                        let conn = &self.conns[c];
                        conn.sent[1 - x] > conn.received[x] || !conn.ends[1 - x].sink_alive()
                    })
                    .collect();
                if !ready.is_empty() {
                    ends = ready;
                }
                if ends.is_empty() {
                    return self.record("recv", "recv (no stream)".into(), Outcome::NoOp);
                }
                let (c, x) = ends[usize::from(*end) % ends.len()];
                let y = 1 - x;
                let conn = &mut self.conns[c];
                let reset = conn.ends[x].reset;
                let available = conn.sent[y] - conn.received[x];
                let mut len = u64::from(*len);
                if reset || conn.ends[y].sink_alive() {
                    // Never wait for bytes that are not on their way.
                    len = len.min(available);
                }
                let mut buf = vec![0u8; len as usize];
                let Some(stream) = conn.ends[x].stream.as_mut() else {
                    unreachable!("picked an end with a stream");
                };
                let result = stream.recv(&mut buf).await.map(|()| buf);
                if result.is_ok() {
                    conn.received[x] += len;
                }
                let outcome = if reset {
                    Outcome::Skipped("connection reset", Outcome::Bytes(result).to_string())
                } else {
                    Outcome::Bytes(result)
                };
                let what = format!("c{c}.{}.recv({len} bytes)", side(x));
                self.record("recv", what, outcome);
            }
            Op::DropSink { end } | Op::DropStream { end } => {
                let sink = matches!(op, Op::DropSink { .. });
                let ends = self.ends(|e| {
                    if sink {
                        e.sink.is_some()
                    } else {
                        e.stream.is_some()
                    }
                });
                let kind = if sink { "drop sink" } else { "drop stream" };
                if ends.is_empty() {
                    return self.record(kind, format!("{kind} (none)"), Outcome::NoOp);
                }
                let (c, x) = ends[usize::from(*end) % ends.len()];
                let y = 1 - x;
                let conn = &mut self.conns[c];
                if sink {
                    drop(conn.ends[x].sink.take());
                } else {
                    drop(conn.ends[x].stream.take());
                }
                // A socket closed with unread bytes resets its peer.
                if conn.ends[x].closed() && conn.attempted[y] > conn.received[x] {
                    conn.ends[y].reset = true;
                }
                let what = format!("c{c}.{}.{}()", side(x), kind.replace(' ', "_"));
                self.record(kind, what, Outcome::Done);
            }
            _ => unreachable!("not a network op"),
        }
    }

    /// Compares what is left on disk: every partition the ops named is
    /// scanned, and every blob in it whose contents both backends must
    /// agree on is opened and read (its first and last 64 KiB).
    async fn final_check<C: Storage<B>>(&mut self, ctx: &C, ops: &[Op]) {
        let partitions: BTreeSet<&Part> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Open { partition, .. }
                | Op::Remove { partition, .. }
                | Op::Scan { partition } => Some(partition),
                _ => None,
            })
            .collect();
        for partition in partitions {
            let result = ctx.scan(&partition.0).await;
            let names = result.as_ref().map(Vec::clone).unwrap_or_default();
            self.record(
                "final scan",
                format!("final: scan({partition:?})"),
                Outcome::Names(result),
            );
            for name in names {
                let key = (partition.0.clone(), name.clone());
                let what = format!("final: {partition:?}/{:?}", Name(name.clone()));
                if !self.comparable(&key) {
                    let outcome = Outcome::Skipped("unsynced or divergent writes", String::new());
                    self.record("final open", what, outcome);
                    continue;
                }
                let blob = match ctx.open(&partition.0, &name).await {
                    Ok(blob) => blob,
                    Err(e) => {
                        self.record("final open", what, Outcome::Unit(Err(e)));
                        continue;
                    }
                };
                let len = blob.len().await;
                let size = len.as_ref().map_or(0, |len| (*len).min(MAX_BUF as u64));
                let last = len.as_ref().map_or(0, |len| len - size);
                self.record("final len", format!("{what}.len()"), Outcome::Len(len));
                for offset in [0, last] {
                    let mut buf = vec![0u8; size as usize];
                    let result = blob.read_at(&mut buf, offset).await.map(|()| buf);
                    let what = format!("{what}.read_at({size} bytes, {offset})");
                    self.record("final read", what, Outcome::Bytes(result));
                }
            }
        }
    }
}

pub(super) fn side(end: usize) -> &'static str {
    if end == 0 {
        "dialer"
    } else {
        "acceptor"
    }
}

/// `Error` is not `Clone`; its variants carry only strings.
pub(super) fn clone_error(e: &Error) -> Error {
    match e {
        Error::Exited => Error::Exited,
        Error::Closed => Error::Closed,
        Error::Timeout => Error::Timeout,
        Error::BindFailed => Error::BindFailed,
        Error::ConnectionFailed => Error::ConnectionFailed,
        Error::WriteFailed => Error::WriteFailed,
        Error::ReadFailed => Error::ReadFailed,
        Error::SendFailed => Error::SendFailed,
        Error::RecvFailed => Error::RecvFailed,
        Error::PartitionCreationFailed(p) => Error::PartitionCreationFailed(p.clone()),
        Error::PartitionMissing(p) => Error::PartitionMissing(p.clone()),
        Error::PartitionCorrupt(p) => Error::PartitionCorrupt(p.clone()),
        Error::BlobOpenFailed(p, n) => Error::BlobOpenFailed(p.clone(), n.clone()),
        Error::BlobMissing(p, n) => Error::BlobMissing(p.clone(), n.clone()),
        Error::BlobTruncateFailed(p, n) => Error::BlobTruncateFailed(p.clone(), n.clone()),
        Error::BlobSyncFailed(p, n) => Error::BlobSyncFailed(p.clone(), n.clone()),
        Error::BlobCloseFailed(p, n) => Error::BlobCloseFailed(p.clone(), n.clone()),
        Error::BlobInsufficientLength => Error::BlobInsufficientLength,
        Error::OffsetOverflow => Error::OffsetOverflow,
    }
}

/// Runs `ops` on `ctx`, recording each step into `out`, then compares
/// what is left on disk.
pub(super) async fn interpret<C, B, L, Si, St>(
    ctx: C,
    backend: Backend,
    ops: Vec<Op>,
    out: Arc<Mutex<Vec<Step>>>,
) where
    C: Storage<B> + Network<L, Si, St>,
    B: Blob,
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    let mut interp = Interp::<B, L, Si, St> {
        backend,
        out,
        handles: Vec::new(),
        next_handle: 0,
        opens: Vec::new(),
        gens: Vec::new(),
        current: BTreeMap::new(),
        listeners: (0..SLOTS)
            .map(|_| ListenerSlot {
                listener: None,
                addr: None,
                pending: VecDeque::new(),
            })
            .collect(),
        conns: Vec::new(),
    };
    for op in &ops {
        match op {
            Op::Bind { .. }
            | Op::DropListener { .. }
            | Op::Dial { .. }
            | Op::Accept { .. }
            | Op::Send { .. }
            | Op::Recv { .. }
            | Op::DropSink { .. }
            | Op::DropStream { .. } => interp.network_op(&ctx, op).await,
            _ => interp.storage_op(&ctx, op).await,
        }
    }
    interp.final_check(&ctx, &ops).await;
}

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

/// Runs `start` (which starts a runner on a root future), recording its
/// steps; a panic becomes the last step.
pub(super) fn collect(start: impl FnOnce(Arc<Mutex<Vec<Step>>>)) -> Vec<Step> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let result = catch_unwind(AssertUnwindSafe(|| start(out.clone())));
    let mut steps = std::mem::take(&mut *lock(&out));
    if let Err(payload) = result {
        steps.push(Step {
            kind: "panic",
            what: "(backend panicked)".into(),
            outcome: Outcome::Panicked(panic_message(&*payload)),
        });
    }
    steps
}

/// Runs `ops` on a fresh deterministic runtime seeded with `seed`.
pub fn run_deterministic(ops: &[Op], seed: u64) -> Vec<Step> {
    let ops = ops.to_vec();
    collect(move |out| {
        let (runner, ctx, _) = deterministic::Executor::seeded(seed);
        runner.start(interpret(ctx, Backend::Deterministic, ops, out));
    })
}

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "commonware-differential-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Left over by an earlier process with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ops` on a fresh tokio runtime storing in a fresh scratch directory.
pub fn run_tokio(ops: &[Op]) -> Vec<Step> {
    let ops = ops.to_vec();
    let scratch = Scratch::new();
    let directory = scratch.0.clone();
    collect(move |out| {
        let (runner, ctx) = rt::Executor::init(rt::Config {
            threads: 1,
            storage_directory: directory,
            // A harness mistake shows as a timeout, not a hang.
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            ..rt::Config::default()
        });
        runner.start(interpret(ctx, Backend::Tokio, ops, out));
    })
}
