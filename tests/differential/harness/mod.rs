//! Differential testing of the two backends: one operation model and one
//! interpreter, applied to the deterministic runtime and to the tokio
//! runtime, whose results must agree.
//!
//! This module owns the operation language ([`Op`]), a generator of op
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

//!
//! Files: `generate.rs` (sequences from a [`Source`]), `interpret.rs` (one
//! backend's run), `compare.rs` (the comparison, the shrinker, the report),
//! `show.rs` (printing).

mod compare;
mod generate;
mod interpret;
mod show;

pub use compare::*;
pub use generate::*;
pub use interpret::*;
pub use show::*;

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
