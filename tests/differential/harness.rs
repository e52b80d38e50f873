//! Differential testing of the two backends: one operation model and one
//! interpreter, applied to the deterministic runtime and to the tokio
//! runtime, whose results must agree.
//!
//! This file owns the operation language ([`Op`]), a generator of op
//! sequences from any source of choices ([`Source`]: a seeded splitmix in
//! `tests/differential.rs`, the fuzzer's bytes in
//! `fuzz/fuzz_targets/differential.rs`), the interpreter that runs a
//! sequence on one backend and records every result ([`Step`]), the
//! comparison ([`check`]), a shrinker and the report printed on a
//! disagreement ([`assert_agree`]).
//!
//! # Invariants
//!
//! * Each backend gets the same op list, on a fresh runtime (the tokio one
//!   storing in a fresh scratch directory). Which handle, listener or
//!   connection end an op addresses is resolved from the interpreter's own
//!   state, which depends only on the ops and on results that are compared;
//!   so up to the first disagreement both runs perform exactly the same
//!   calls, and the first differing step is the disagreement reported.
//! * Every result is compared (`Result<_, Error>` equal, read bytes equal,
//!   `len` equal, `scan` lists equal) except where CONTRACT.md documents a
//!   difference; such steps still run on both backends and are recorded as
//!   [`Outcome::Skipped`] with the reason:
//!   - Storage: on tokio, handles of one blob share one file, so a handle
//!     sees other handles' writes at once, and a new `open` sees unsynced
//!     writes; in simulation each `open` works on its own copy of the last
//!     synced contents. The interpreter tracks, per handle, whether it is
//!     *clean*: opened while no other handle of the blob had unsynced
//!     changes, and no other handle changed the blob since. Reads and `len`
//!     are compared through clean handles only. A publish (`sync`/`close`)
//!     through an unclean handle, or dropping a handle with unsynced
//!     changes, makes the blob *divergent* until it is removed: every later
//!     handle of it is unclean.
//!   - Network: a `send` whose receiving `Stream` was dropped fails in
//!     simulation and succeeds on tokio (the kernel buffers the bytes), so
//!     it is not compared. A TCP socket closed with unread bytes (or sent
//!     to after it closed) resets its peer, which may then lose bytes not
//!     yet read: nothing that end does is compared from then on.
//! * Nothing compared depends on timing: a `recv` asks at most for the
//!   bytes its peer already sent unless the peer's `Sink` is gone (so it
//!   never waits for bytes that will not come), `accept` runs only when a
//!   dial is pending, and the bytes in flight per direction stay below
//!   what the kernel buffers without blocking.
//! * After the ops, every partition they named is scanned on both, and
//!   every blob in it whose contents both must agree on (not divergent, no
//!   unsynced changes in a live handle) is opened and read: what a later
//!   run of the program would find on disk.
//! * Allocations are bounded: buffers are at most 64 KiB, and a non-empty
//!   write ends below 16 MiB or past the simulated disk's limit (so the
//!   simulated page table stays small).

use commonware_runtime::{
    deterministic, tokio as rt, Blob, Error, Listener, Network, Runner, Sink, Storage, Stream,
};
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::{self, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    panic::{catch_unwind, AssertUnwindSafe},
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// Largest buffer a read, write, send or receive uses.
pub const MAX_BUF: usize = 64 * 1024;

/// Largest number of bytes in flight (sent, not yet received) per direction
/// of a connection: well below what loopback TCP buffers without blocking.
const MAX_UNREAD: u64 = 32 * 1024;

/// Non-empty writes end below this offset unless they cross the simulated
/// disk's limit: the simulation keeps a page table up to the last written
/// page.
const MAX_WRITE_END: u64 = 1 << 24;

/// Number of listener slots.
const SLOTS: u8 = 3;

/// The simulated disk's limit on a blob's length.
const LIMIT: u64 = deterministic::MAX_BLOB_LEN;

/// A blob name, printed compactly (runs of one byte as `[0x78; 200]`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(pub Vec<u8>);

/// A partition name, printed compactly (runs of one char as `"é"×127`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Part(pub String);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_bytes(&self.0))
    }
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_str(&self.0))
    }
}

/// One operation. Handles (`h`) index the open handles in creation order,
/// connection ends (`end`) the ends with the needed half alive, listener
/// slots (`slot`) the slots, all modulo how many there are.
#[derive(Clone, Debug)]
pub enum Op {
    Open {
        partition: Part,
        name: Name,
    },
    Clone {
        h: u8,
    },
    Write {
        h: u8,
        offset: u64,
        len: u16,
        fill: u8,
    },
    Read {
        h: u8,
        offset: u64,
        len: u16,
    },
    Len {
        h: u8,
    },
    Truncate {
        h: u8,
        len: u64,
    },
    Sync {
        h: u8,
    },
    Close {
        h: u8,
    },
    Drop {
        h: u8,
    },
    Remove {
        partition: Part,
        name: Option<Name>,
    },
    Scan {
        partition: Part,
    },
    Bind {
        slot: u8,
    },
    DropListener {
        slot: u8,
    },
    Dial {
        slot: u8,
    },
    Accept {
        slot: u8,
    },
    Send {
        end: u8,
        len: u16,
        fill: u8,
    },
    Recv {
        end: u8,
        len: u16,
    },
    DropSink {
        end: u8,
    },
    DropStream {
        end: u8,
    },
}

/// What one step returned, in comparable form.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The op did not apply (no handle, listener or end to address).
    NoOp,
    /// The op has no result (a drop, a clone).
    Done,
    Unit(Result<(), Error>),
    Len(Result<u64, Error>),
    Bytes(Result<Vec<u8>, Error>),
    Names(Result<Vec<Vec<u8>>, Error>),
    Peer(Result<IpAddr, Error>),
    /// Ran on both backends, not compared: why, and what it returned.
    Skipped(&'static str, String),
    /// The backend panicked (its message).
    Panicked(String),
}

impl Outcome {
    /// Whether two outcomes of the same step agree.
    fn agrees(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Skipped(why, _), Self::Skipped(other, _)) => why == other,
            _ => self == other,
        }
    }

    /// Short form for signatures: the variant and, for errors, the error's.
    fn label(&self) -> String {
        fn result<T>(r: &Result<T, Error>) -> String {
            match r {
                Ok(_) => "Ok".into(),
                Err(e) => {
                    let debug = format!("{e:?}");
                    let variant = debug.split('(').next().unwrap_or_default();
                    format!("Err({variant})")
                }
            }
        }
        match self {
            Self::NoOp => "NoOp".into(),
            Self::Done => "Done".into(),
            Self::Unit(r) => result(r),
            Self::Len(r) => result(r),
            Self::Bytes(r) => result(r),
            Self::Names(r) => result(r),
            Self::Peer(r) => result(r),
            Self::Skipped(..) => "Skipped".into(),
            Self::Panicked(_) => "Panicked".into(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn result<T>(
            f: &mut fmt::Formatter<'_>,
            r: &Result<T, Error>,
            ok: impl Fn(&T) -> String,
        ) -> fmt::Result {
            match r {
                Ok(value) => write!(f, "Ok({})", ok(value)),
                Err(e) => write!(f, "Err({})", show_error(e)),
            }
        }
        match self {
            Self::NoOp => f.write_str("(no-op)"),
            Self::Done => f.write_str("done"),
            Self::Unit(r) => result(f, r, |()| "()".into()),
            Self::Len(r) => result(f, r, |len| len.to_string()),
            Self::Bytes(r) => result(f, r, |bytes| show_bytes(bytes)),
            Self::Names(r) => result(f, r, |names| {
                let names: Vec<String> = names.iter().map(|n| show_bytes(n)).collect();
                format!("[{}]", names.join(", "))
            }),
            Self::Peer(r) => result(f, r, |ip| ip.to_string()),
            Self::Skipped(why, raw) => write!(f, "not compared ({why}): {raw}"),
            Self::Panicked(msg) => write!(f, "PANIC: {msg}"),
        }
    }
}

/// One executed op: what it did (with resolved handles) and its outcome.
#[derive(Debug)]
pub struct Step {
    pub kind: &'static str,
    pub what: String,
    pub outcome: Outcome,
}

// ---------------------------------------------------------------------------
// Generation.

/// Where a generator's choices come from.
pub trait Source {
    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64;
    /// Whether the source has run out (the sequence then ends).
    fn exhausted(&self) -> bool {
        false
    }
}

/// A seeded splitmix64 generator: portable and stable, so a seed names the
/// same sequence forever.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source for SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pick<T: Clone>(src: &mut impl Source, items: &[T]) -> T {
    items[src.below(items.len() as u64) as usize].clone()
}

/// A partition name: mostly `p` or `q`, sometimes hostile or at the
/// 255-byte limit.
fn gen_partition(src: &mut impl Source) -> Part {
    let name = match src.below(20) {
        0..=10 => "p".to_string(),
        11..=14 => "q".to_string(),
        15 => pick(
            src,
            &[
                "", ".", "..", "/", "a/b", "\\", "nul\0x", "/abs", "./p", "p/",
            ],
        )
        .to_string(),
        16 => pick(
            src,
            &[
                "a".repeat(255),
                "b".repeat(256),
                "c".repeat(300),
                "é".repeat(127),
                "é".repeat(128),
                "ü".repeat(85),
            ],
        ),
        17 => {
            let len = src.below(6);
            (0..len)
                .map(|_| pick(src, &['a', 'b', '.', '/', '\0', 'é', '-', ' ', '\\']))
                .collect()
        }
        _ => "q".to_string(),
    };
    Part(name)
}

/// A blob name: mostly a few short ones (so blobs are reopened), sometimes
/// hostile, non-UTF-8 or long (around the 127/128-byte boundary of the
/// tokio file names, up to 5000 bytes, with shared prefixes).
fn gen_name(src: &mut impl Source) -> Name {
    let name = match src.below(16) {
        0..=7 => pick(src, &[&b"a"[..], b"b", b"a", b"b", b""]).to_vec(),
        8..=9 => pick(
            src,
            &[
                &b".."[..],
                b"/",
                b"\0",
                b"a/b",
                b"\xff\xfe\x80",
                b".",
                b"_empty",
            ],
        )
        .to_vec(),
        10..=13 => {
            let count = pick(src, &[126, 127, 128, 129, 200, 255, 256, 4096, 5000]);
            let mut name = vec![b'x'; count];
            match src.below(3) {
                0 => {}
                1 => name.push(b'1'),
                _ => name.push(b'2'),
            }
            name
        }
        14 => {
            let len = src.below(9);
            (0..len).map(|_| src.below(256) as u8).collect()
        }
        _ => {
            let mut name: Vec<u8> = (0..4).map(|_| src.below(256) as u8).collect();
            let count = 120 + src.below(480) as usize;
            name.extend(std::iter::repeat_n(b'y', count));
            name
        }
    };
    Name(name)
}

/// An offset (or a truncate length): mostly small, sometimes at the edges
/// (the simulated disk's limit, `i64::MAX`, `u64::MAX`).
fn gen_offset(src: &mut impl Source) -> u64 {
    match src.below(16) {
        0..=7 => src.below(64),
        8..=9 => src.below(5000),
        10 => src.below(70_000),
        11 => (LIMIT - 4) + src.below(8),
        12 => (i64::MAX as u64 - 4) + src.below(8),
        13 => u64::MAX - src.below(8),
        14 => u64::MAX - src.below(70_000),
        _ => src.below(u64::MAX),
    }
}

/// A read offset: mostly inside what small writes wrote.
fn gen_read_offset(src: &mut impl Source) -> u64 {
    match src.below(16) {
        0..=9 => src.below(48),
        10..=11 => src.below(5000),
        _ => gen_offset(src),
    }
}

/// A buffer length (at most [`MAX_BUF`]).
fn gen_len(src: &mut impl Source) -> u16 {
    match src.below(8) {
        0 => 0,
        1..=4 => src.below(32) as u16,
        5..=6 => src.below(5000) as u16,
        _ => src.below(MAX_BUF as u64) as u16,
    }
}

/// A write whose allocation in the simulation stays small: non-empty writes
/// end below [`MAX_WRITE_END`] or past the limit.
fn gen_write(src: &mut impl Source, h: u8) -> Op {
    let mut offset = gen_offset(src);
    let len = gen_len(src);
    let end = offset.checked_add(u64::from(len));
    if len > 0 && end.is_some_and(|end| end > MAX_WRITE_END && end <= LIMIT) {
        // Cross the limit instead: an error in both backends.
        offset = LIMIT - u64::from(len) + 1 + src.below(4);
    }
    Op::Write {
        h,
        offset,
        len,
        fill: src.below(256) as u8,
    }
}

/// Which families of ops a sequence draws from.
#[derive(Clone, Copy)]
enum Mode {
    Storage,
    Network,
    Mixed,
}

/// A sequence of at most `max_ops` ops drawn from `src`.
pub fn generate(src: &mut impl Source, max_ops: usize) -> Vec<Op> {
    let mode = match src.below(10) {
        0..=5 => Mode::Storage,
        6..=8 => Mode::Network,
        _ => Mode::Mixed,
    };
    let len = 1 + src.below(max_ops.max(1) as u64) as usize;
    let mut ops = Vec::with_capacity(len);
    while ops.len() < len && !src.exhausted() {
        let storage = match mode {
            Mode::Storage => true,
            Mode::Network => false,
            Mode::Mixed => src.below(2) == 0,
        };
        ops.push(if storage {
            gen_storage(src)
        } else {
            gen_network(src)
        });
    }
    ops
}

fn gen_storage(src: &mut impl Source) -> Op {
    let h = src.below(256) as u8;
    match src.below(90) {
        0..=13 | 86..=89 => Op::Open {
            partition: gen_partition(src),
            name: gen_name(src),
        },
        14..=16 => Op::Clone { h },
        17..=30 => gen_write(src, h),
        31..=42 => Op::Read {
            h,
            offset: gen_read_offset(src),
            len: gen_len(src),
        },
        43..=47 => Op::Len { h },
        48..=52 => Op::Truncate {
            h,
            len: gen_offset(src),
        },
        53..=59 => Op::Sync { h },
        60..=65 | 78 => Op::Close { h },
        66..=67 => Op::Drop { h },
        68..=74 => Op::Remove {
            partition: gen_partition(src),
            name: Some(gen_name(src)),
        },
        75..=77 => Op::Remove {
            partition: gen_partition(src),
            name: None,
        },
        _ => Op::Scan {
            partition: gen_partition(src),
        },
    }
}

fn gen_network(src: &mut impl Source) -> Op {
    let slot = src.below(256) as u8;
    let end = src.below(256) as u8;
    match src.below(68) {
        0..=7 => Op::Bind { slot },
        8..=9 => Op::DropListener { slot },
        10..=19 => Op::Dial { slot },
        20..=29 => Op::Accept { slot },
        30..=45 => Op::Send {
            end,
            len: gen_len(src).min(8192),
            fill: src.below(256) as u8,
        },
        46..=61 => Op::Recv {
            end,
            len: gen_len(src).min(8192),
        },
        62..=64 => Op::DropSink { end },
        _ => Op::DropStream { end },
    }
}

// ---------------------------------------------------------------------------
// Interpretation.

/// The backend an interpreter runs on (only addresses differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Deterministic,
    Tokio,
}

/// The bytes a write or send of `len` bytes with `fill` carries.
fn pattern(len: u16, fill: u8) -> Vec<u8> {
    (0..usize::from(len))
        .map(|i| fill.wrapping_add((i % 251) as u8))
        .collect()
}

/// One open of a blob (shared by its clones).
struct OpenModel {
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
struct GenModel {
    key: (String, Vec<u8>),
    /// The backends' contents may differ (see the module docs).
    divergent: bool,
    /// Opens with live clones.
    opens: Vec<usize>,
}

struct HandleSlot<B> {
    id: usize,
    open: usize,
    blob: B,
}

/// How far a connection end got.
#[derive(Clone, Copy, PartialEq)]
enum Presence {
    /// Waiting in the listener's backlog (both halves alive in the kernel).
    Pending,
    /// Accepted (or the dialer): the halves are the `Option`s.
    Live,
    /// Never accepted: its listener was dropped.
    Gone,
}

struct End<Si, St> {
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
struct Conn<Si, St> {
    ends: [End<Si, St>; 2],
    /// Bytes each end tried to send.
    attempted: [u64; 2],
    /// Bytes each end sent successfully.
    sent: [u64; 2],
    /// Bytes each end received.
    received: [u64; 2],
}

struct ListenerSlot<L> {
    listener: Option<L>,
    /// Its address once bound (kept after a drop, to dial and rebind it).
    addr: Option<SocketAddr>,
    /// Dialed connections not accepted yet, oldest first.
    pending: VecDeque<usize>,
}

/// A loopback port for the tokio backend: below Linux's ephemeral range, so
/// no outgoing connection takes a port a listener will bind again, starting
/// at an offset from the pid so that concurrent processes rarely meet.
fn next_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 32_768 - FIRST;
    let start = (std::process::id() % 200) * 100 + 7;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (FIRST + (start + n) % SPAN) as u16
}

struct Interp<B, L, Si, St> {
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

fn side(end: usize) -> &'static str {
    if end == 0 {
        "dialer"
    } else {
        "acceptor"
    }
}

/// `Error` is not `Clone`; its variants carry only strings.
fn clone_error(e: &Error) -> Error {
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
async fn interpret<C, B, L, Si, St>(
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
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
fn collect(start: impl FnOnce(Arc<Mutex<Vec<Step>>>)) -> Vec<Step> {
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
struct Scratch(PathBuf);

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

/// The first step at which two runs disagree.
pub struct Mismatch {
    pub seed: u64,
    pub ops: Vec<Op>,
    pub index: usize,
    pub deterministic: Vec<Step>,
    pub tokio: Vec<Step>,
}

impl Mismatch {
    /// What kind of disagreement this is (the op and both results'
    /// variants), to group and shrink by.
    pub fn signature(&self) -> String {
        let describe = |step: Option<&Step>| match step {
            Some(step) => step.outcome.label(),
            None => "(ended)".into(),
        };
        let det = self.deterministic.get(self.index);
        let tok = self.tokio.get(self.index);
        let kind = det.or(tok).map_or("?", |step| step.kind);
        format!(
            "{kind}: deterministic {} / tokio {}",
            describe(det),
            describe(tok)
        )
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the backends disagree at step {} ({}), seed {}, {} ops:",
            self.index,
            self.signature(),
            self.seed,
            self.ops.len()
        )?;
        for (i, step) in self.deterministic.iter().take(self.index).enumerate() {
            writeln!(
                f,
                "  {i:>3}  {}  =>  {}",
                abbreviate(&step.what),
                step.outcome
            )?;
        }
        let show = |step: Option<&Step>| match step {
            Some(step) => format!("{}  =>  {}", abbreviate(&step.what), step.outcome),
            None => "(no such step: the run ended)".into(),
        };
        writeln!(
            f,
            "  {:>3}  deterministic: {}",
            self.index,
            show(self.deterministic.get(self.index))
        )?;
        writeln!(
            f,
            "       tokio:         {}",
            show(self.tokio.get(self.index))
        )?;
        writeln!(f, "ops:")?;
        for op in &self.ops {
            writeln!(f, "  {}", abbreviate(&format!("{op:?}")))?;
        }
        Ok(())
    }
}

/// Runs `ops` on both backends and returns the first disagreement.
pub fn check(ops: &[Op], seed: u64) -> Result<(), Box<Mismatch>> {
    let deterministic = run_deterministic(ops, seed);
    let tokio = run_tokio(ops);
    let steps = deterministic.len().max(tokio.len());
    for index in 0..steps {
        let agree = match (deterministic.get(index), tokio.get(index)) {
            (Some(d), Some(t)) => d.what == t.what && d.outcome.agrees(&t.outcome),
            _ => false,
        };
        if !agree {
            return Err(Box::new(Mismatch {
                seed,
                ops: ops.to_vec(),
                index,
                deterministic,
                tokio,
            }));
        }
    }
    Ok(())
}

/// `op` with the handle, end or slot it addresses lowered to `to`, if
/// that is lower.
fn lowered(op: &Op, to: u8) -> Option<Op> {
    let mut op = op.clone();
    let index = match &mut op {
        Op::Clone { h }
        | Op::Write { h, .. }
        | Op::Read { h, .. }
        | Op::Len { h }
        | Op::Truncate { h, .. }
        | Op::Sync { h }
        | Op::Close { h }
        | Op::Drop { h } => h,
        Op::Bind { slot } | Op::DropListener { slot } | Op::Dial { slot } | Op::Accept { slot } => {
            slot
        }
        Op::Send { end, .. }
        | Op::Recv { end, .. }
        | Op::DropSink { end }
        | Op::DropStream { end } => end,
        Op::Open { .. } | Op::Remove { .. } | Op::Scan { .. } => return None,
    };
    if to >= *index {
        return None;
    }
    *index = to;
    Some(op)
}

/// A short sub-sequence of `mismatch.ops` that still disagrees the same
/// way, found greedily within `budget` runs: drop chunks of ops (halving
/// the chunk size down to single ops), and lower the indices ops address
/// (which lets more ops go, as indices are taken modulo what exists).
pub fn shrink(mismatch: Box<Mismatch>, budget: usize) -> Box<Mismatch> {
    let signature = mismatch.signature();
    let mut best = mismatch;
    let mut runs = 0;
    // Whether `candidate` disagrees the same way (it then becomes `best`).
    let attempt = |candidate: Vec<Op>, best: &mut Box<Mismatch>, runs: &mut usize| {
        *runs += 1;
        match check(&candidate, best.seed) {
            Err(found) if found.signature() == signature => {
                *best = found;
                true
            }
            _ => false,
        }
    };
    loop {
        let mut chunk = best.ops.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < best.ops.len() && runs < budget {
                let mut candidate = best.ops.clone();
                candidate.drain(i..(i + chunk).min(best.ops.len()));
                if !attempt(candidate, &mut best, &mut runs) {
                    i += chunk;
                }
            }
            if chunk == 1 || runs >= budget {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        let mut lowered_any = false;
        for i in 0..best.ops.len() {
            for to in 0..4 {
                if runs >= budget {
                    return best;
                }
                let Some(op) = best.ops.get(i).and_then(|op| lowered(op, to)) else {
                    continue;
                };
                let mut candidate = best.ops.clone();
                candidate[i] = op;
                if attempt(candidate, &mut best, &mut runs) {
                    lowered_any = true;
                    break;
                }
            }
        }
        if runs >= budget || !lowered_any {
            return best;
        }
    }
}

/// Checks that both backends agree on `ops`; panics with the shrunk
/// sequence and both results if they do not.
pub fn assert_agree(ops: &[Op], seed: u64) {
    if let Err(mismatch) = check(ops, seed) {
        let shrunk = shrink(mismatch, 200);
        panic!("{shrunk}");
    }
}

// ---------------------------------------------------------------------------
// Printing.

/// Bytes as `b"..."` pieces, runs of 8 or more equal bytes as `[0x78; 200]`,
/// cut after about 200 characters (with the length).
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    let mut parts = 0;
    let flush = |out: &mut String, literal: &mut String, parts: &mut usize| {
        if !literal.is_empty() {
            if *parts > 0 {
                out.push_str(" + ");
            }
            let _ = write!(out, "b\"{literal}\"");
            literal.clear();
            *parts += 1;
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        if out.len() + literal.len() > 200 {
            flush(&mut out, &mut literal, &mut parts);
            let _ = write!(out, " + … ({} bytes in all)", bytes.len());
            return out;
        }
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run >= 8 {
            flush(&mut out, &mut literal, &mut parts);
            if parts > 0 {
                out.push_str(" + ");
            }
            let _ = write!(out, "[{:#04x}; {run}]", bytes[i]);
            parts += 1;
            i += run;
        } else {
            literal.extend(std::ascii::escape_default(bytes[i]).map(char::from));
            i += 1;
        }
    }
    flush(&mut out, &mut literal, &mut parts);
    if parts == 0 {
        out.push_str("b\"\"");
    }
    out
}

/// A string as `"..."` pieces, runs of 8 or more equal chars as `"é"×127`.
pub fn show_str(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|&&c| c == chars[i]).count();
        if run >= 8 {
            if !literal.is_empty() {
                parts.push(format!("{literal:?}"));
                literal.clear();
            }
            parts.push(format!("{:?}×{run}", chars[i].to_string()));
            i += run;
        } else {
            literal.push(chars[i]);
            i += 1;
        }
    }
    if !literal.is_empty() || parts.is_empty() {
        parts.push(format!("{literal:?}"));
    }
    parts.join(" + ")
}

/// An error with long names (hex of long blob names, long partitions) cut.
fn show_error(e: &Error) -> String {
    abbreviate(&format!("{e:?}"))
}

/// Cuts every quoted string longer than 48 characters to its start, its
/// length and its end.
fn abbreviate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let Some(end) = rest.find('"') else {
            break;
        };
        let inner = &rest[..end];
        let count = inner.chars().count();
        if count > 48 {
            let head: String = inner.chars().take(20).collect();
            let tail: String = inner.chars().skip(count - 8).collect();
            let _ = write!(out, "{head}…({count} chars)…{tail}");
        } else {
            out.push_str(inner);
        }
        out.push('"');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
