//! Execute asynchronous tasks with a configurable scheduler.
//!
//! A drop-in re-implementation of the `commonware-runtime` 0.0.16 API. The
//! [`deterministic`] module runs tasks on a hand-rolled single-threaded
//! executor over virtual time, so a seed reproduces a run exactly; the
//! [`tokio`] module runs the same code in production on Tokio, real TCP and
//! real files. [`mocks`] has an in-memory channel usable in any runtime.
//!
//! Everything a user program depends on is in this file: the traits, the
//! [`Error`] type, [`Handle`], [`Signaler`]/[`Signal`] and [`reschedule`].
//! Code written against the traits runs unchanged on both runtimes.

#![forbid(unsafe_code)]

pub mod deterministic;
pub mod mocks;
pub mod tokio;

mod handle;
mod metrics;
mod signal;
pub use handle::Handle;
pub use signal::{Signal, Signaler};

/// The README's code blocks run as doctests, so the tour cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};
use thiserror::Error;

/// Errors returned by runtime operations.
#[derive(Error, Debug, PartialEq)]
pub enum Error {
    #[error("exited")]
    Exited,
    #[error("closed")]
    Closed,
    #[error("timeout")]
    Timeout,
    #[error("bind failed")]
    BindFailed,
    #[error("connection failed")]
    ConnectionFailed,
    #[error("write failed")]
    WriteFailed,
    #[error("read failed")]
    ReadFailed,
    #[error("send failed")]
    SendFailed,
    #[error("recv failed")]
    RecvFailed,
    #[error("partition creation failed: {0}")]
    PartitionCreationFailed(String),
    #[error("partition missing: {0}")]
    PartitionMissing(String),
    #[error("partition corrupt: {0}")]
    PartitionCorrupt(String),
    #[error("blob open failed: {0}/{1}")]
    BlobOpenFailed(String, String),
    #[error("blob missing: {0}/{1}")]
    BlobMissing(String, String),
    #[error("blob truncate failed: {0}/{1}")]
    BlobTruncateFailed(String, String),
    #[error("blob sync failed: {0}/{1}")]
    BlobSyncFailed(String, String),
    #[error("blob close failed: {0}/{1}")]
    BlobCloseFailed(String, String),
    #[error("blob insufficient length")]
    BlobInsufficientLength,
    #[error("offset overflow")]
    OffsetOverflow,
}

/// Longest partition name, in bytes: the longest name a directory can have
/// on common file systems (Linux's `NAME_MAX`).
pub(crate) const MAX_PARTITION_LEN: usize = 255;

/// Whether `partition` is a name both backends accept: exactly one plain
/// path component (not empty, `.` or `..`; no `/`, `\\` or NUL) of at most
/// [`MAX_PARTITION_LEN`] bytes. The tokio backend maps it to one directory
/// below its storage directory; the deterministic backend rejects the same
/// names, so code tested in simulation does not fail on them in production.
pub(crate) fn is_safe_partition(partition: &str) -> bool {
    use std::path::{Component, Path};
    if partition.is_empty()
        || partition.len() > MAX_PARTITION_LEN
        || partition.contains(['/', '\\', '\0'])
    {
        return false;
    }
    let mut components = Path::new(partition).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(name)), None) if name == partition
    )
}

/// Lowercase hex of `bytes`: how blob names appear in errors (and, in the
/// tokio backend, on disk).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xF)]));
    }
    out
}

/// Interface that any task scheduler must implement to start
/// running tasks.
pub trait Runner {
    /// Start running a root task.
    fn start<F>(self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// Interface that any task scheduler must implement to spawn
/// sub-tasks in a given root task.
pub trait Spawner: Clone + Send + Sync + 'static {
    /// Enqueues a task to be executed.
    ///
    /// Label tracks how many instances of a specific type of
    /// task have been spawned or are running concurrently (and is appended to all
    /// metrics). Label is automatically appended to the parent task labels (i.e. spawning
    /// "fun" from "have" will be labeled "have_fun").
    ///
    /// Unlike a future, a spawned task will start executing immediately (even if the caller
    /// does not await the handle).
    fn spawn<F, T>(&self, label: &str, f: F) -> Handle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static;

    /// Signals the runtime to stop execution and that all outstanding tasks
    /// should perform any required cleanup and exit. This method is idempotent and
    /// can be called multiple times.
    ///
    /// This method does not actually kill any tasks but rather signals to them, using
    /// the `Signal` returned by `stopped`, that they should exit.
    fn stop(&self, value: i32);

    /// Returns an instance of a `Signal` that resolves when `stop` is called by
    /// any task.
    ///
    /// If `stop` has already been called, the returned `Signal` will resolve immediately.
    fn stopped(&self) -> Signal;
}

/// Interface that any task scheduler must implement to provide
/// time-based operations.
///
/// It is necessary to mock time to provide deterministic execution
/// of arbitrary tasks.
pub trait Clock: Clone + Send + Sync + 'static {
    /// Returns the current time.
    fn current(&self) -> SystemTime;

    /// Sleep for the given duration.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static;

    /// Sleep until the given deadline.
    fn sleep_until(&self, deadline: SystemTime) -> impl Future<Output = ()> + Send + 'static;
}

/// Reachability points, in the spirit of Antithesis' assertions: a program
/// names the states it should reach (and the properties that must always
/// hold), and a seed sweep says how many seeds reached each one.
///
/// On the deterministic runtime a sweep ([`deterministic::Sweep`]) tallies
/// every point over its seeds ([`deterministic::Swept::points`]): how many
/// seeds reached it and the first one, so a rare state can be replayed, and
/// which points no seed reached (gaps). Points never change a run (no
/// random draw, no audit event); with nothing collecting they cost one
/// atomic load. On tokio `sometimes` and `reached` do nothing and `always`
/// panics when false, so production checks what simulation checked.
pub trait Assertions: Clone + Send + Sync + 'static {
    /// Declares point `name` and marks it reached when `condition` holds.
    /// Declaring it even when false lists it as a gap if no seed reaches it.
    fn sometimes(&self, name: &'static str, condition: bool);

    /// Marks point `name` reached. Known only to runs that get here:
    /// declare it with `sometimes(name, false)` to list it when none does.
    fn reached(&self, name: &'static str);

    /// Fails the run when `condition` is false: panics with a message
    /// naming the point (`always 'name' failed`), so the failure line
    /// carries the seed. A sweep counts the seeds that checked it.
    fn always(&self, name: &'static str, condition: bool);
}

/// The panic of an [`Assertions::always`] whose condition is false, the
/// same on both runtimes (kept out of line: it never runs in a passing run).
#[cold]
#[inline(never)]
pub(crate) fn always_failed(name: &str) -> ! {
    panic!("always '{name}' failed")
}

/// Interface that any runtime must implement to create
/// network connections.
pub trait Network<L, Si, St>: Clone + Send + Sync + 'static
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    /// Bind to the given socket address.
    fn bind(&self, socket: SocketAddr) -> impl Future<Output = Result<L, Error>> + Send;

    /// Dial the given socket address.
    fn dial(&self, socket: SocketAddr) -> impl Future<Output = Result<(Si, St), Error>> + Send;
}

/// Interface that any runtime must implement to handle
/// incoming network connections.
pub trait Listener<Si, St>: Sync + Send + 'static
where
    Si: Sink,
    St: Stream,
{
    /// Accept an incoming connection.
    fn accept(&mut self) -> impl Future<Output = Result<(SocketAddr, Si, St), Error>> + Send;
}

/// Interface that any runtime must implement to send
/// messages over a network connection.
pub trait Sink: Sync + Send + 'static {
    /// Send a message to the sink.
    fn send(&mut self, msg: &[u8]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Interface that any runtime must implement to receive
/// messages over a network connection.
pub trait Stream: Sync + Send + 'static {
    /// Receive a message from the stream, storing it in the given buffer.
    /// Reads exactly the number of bytes that fit in the buffer.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Interface to interact with storage.
///
/// To support storage implementations that enable concurrent reads and
/// writes, blobs are responsible for maintaining synchronization.
///
/// Storage can be backed by a local filesystem, cloud storage, etc.
pub trait Storage<B>: Clone + Send + Sync + 'static
where
    B: Blob,
{
    /// Open an existing blob in a given partition or create a new one.
    ///
    /// Multiple instances of the same blob can be opened concurrently, however,
    /// writing to the same blob concurrently may lead to undefined behavior.
    fn open(&self, partition: &str, name: &[u8]) -> impl Future<Output = Result<B, Error>> + Send;

    /// Remove a blob from a given partition.
    ///
    /// If no `name` is provided, the entire partition is removed.
    fn remove(
        &self,
        partition: &str,
        name: Option<&[u8]>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Return all blobs in a given partition.
    fn scan(&self, partition: &str) -> impl Future<Output = Result<Vec<Vec<u8>>, Error>> + Send;
}

/// Interface to read and write to a blob.
///
/// To support blob implementations that enable concurrent reads and
/// writes, blobs are responsible for maintaining synchronization.
///
/// Cloning a blob is similar to wrapping a single file descriptor in
/// a lock whereas opening a new blob (of the same name) is similar to
/// opening a new file descriptor. If multiple blobs are opened with the same
/// name, they are not expected to coordinate access to underlying storage
/// and writing to both is undefined behavior.
#[allow(clippy::len_without_is_empty)]
pub trait Blob: Clone + Send + Sync + 'static {
    /// Get the length of the blob.
    fn len(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Read from the blob at the given offset.
    ///
    /// `read_at` does not return the number of bytes read because it
    /// only returns once the entire buffer has been filled.
    fn read_at(
        &self,
        buf: &mut [u8],
        offset: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Write to the blob at the given offset.
    fn write_at(&self, buf: &[u8], offset: u64) -> impl Future<Output = Result<(), Error>> + Send;

    /// Truncate the blob to the given length.
    fn truncate(&self, len: u64) -> impl Future<Output = Result<(), Error>> + Send;

    /// Ensure all pending data is durably persisted.
    fn sync(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Close the blob.
    fn close(self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Yield control back to the runtime.
///
/// The same contract as the reference's `async fn` (a future that completes
/// on its second poll, waking its task on the first); a plain future
/// rather than an `async` block so its `poll` inlines into the caller.
pub fn reschedule() -> impl Future<Output = ()> + Send + Sync + Unpin {
    Reschedule { yielded: false }
}

/// The future [`reschedule`] returns.
struct Reschedule {
    yielded: bool,
}

impl Future for Reschedule {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
