//! [`Blob`], the tokio runtime's blob handle: a file read and written at
//! positions.
//!
//! # Invariants
//!
//! * Reads and writes are positional (`pread`/`pwrite` on Tokio's blocking
//!   pool), so clones of a blob never disturb each other's position.
//! * Clones of a blob share one file and one length behind a read-write
//!   lock: reads and syncs share it, a write or truncate holds it alone (so
//!   a successful `sync` covers every write that returned before it, and no
//!   write lands while it runs). The lock guard travels with the blocking
//!   operation, so an operation whose future is dropped still holds the
//!   blob until the kernel call returns and the length stays in step with
//!   the file.
//! * The length includes unsynced writes. A blob is at most [`MAX_LEN`]
//!   (1 TiB) long, the deterministic runtime's limit: a write ending past it
//!   is `OffsetOverflow`, a truncate past it `BlobTruncateFailed`. A read
//!   whose end overflows `u64` is `OffsetOverflow`; any other read ending
//!   past the length is `BlobInsufficientLength` (an empty read at
//!   `u64::MAX` included). None of these touch the file.
//! * Errors use the same variants as the deterministic runtime for the same
//!   situation.

use super::super::Inner;
use crate::{hex, Error};
use std::{
    fs::File,
    os::unix::fs::{FileExt, MetadataExt},
    path::PathBuf,
    sync::Arc,
};
use tokio::sync::RwLock;

/// Longest a blob may be: the deterministic runtime's limit
/// (`deterministic::MAX_BLOB_LEN`), so that both accept the same offsets.
pub(super) const MAX_LEN: u64 = 1 << 40;

/// What the clones of one blob share.
struct State {
    file: File,
    /// Length including unsynced writes (kept here so `len` and the bounds
    /// check of `read_at` cost no system call).
    len: u64,
    /// The partition's directory.
    dir: PathBuf,
    partition: String,
    name: Vec<u8>,
}

impl State {
    /// `fsync`s the file. A file that was removed meanwhile syncs fine but
    /// its data is lost on close, so that fails like the deterministic
    /// runtime's sync of a removed blob.
    fn sync(&self) -> Result<(), Error> {
        let failed = || Error::BlobSyncFailed(self.partition.clone(), hex(&self.name));
        self.file.sync_all().map_err(|_| failed())?;
        if self.file.metadata().map_err(|_| failed())?.nlink() > 0 {
            return Ok(());
        }
        Err(if self.dir.is_dir() {
            Error::BlobMissing(self.partition.clone(), hex(&self.name))
        } else {
            Error::PartitionMissing(self.partition.clone())
        })
    }
}

/// Implementation of [`crate::Blob`] for the `tokio` runtime.
pub struct Blob {
    inner: Arc<Inner>,
    state: Arc<RwLock<State>>,
}

impl Clone for Blob {
    fn clone(&self) -> Self {
        self.inner.metrics.open_blobs.inc();
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        self.inner.metrics.open_blobs.dec();
    }
}

impl Blob {
    /// A handle of the open `file` of blob `name` (`len` bytes long) in the
    /// directory `dir` of `partition`.
    pub(super) fn new(
        inner: Arc<Inner>,
        file: File,
        len: u64,
        dir: PathBuf,
        partition: &str,
        name: &[u8],
    ) -> Self {
        inner.metrics.open_blobs.inc();
        Self {
            inner,
            state: Arc::new(RwLock::new(State {
                file,
                len,
                dir,
                partition: partition.into(),
                name: name.into(),
            })),
        }
    }

    /// Size of the pieces large reads and writes are split into.
    fn piece(&self) -> usize {
        self.inner.cfg.maximum_buffer_size.max(1)
    }
}

/// The end of a read of `len` bytes at `offset`. Only an end that
/// overflows `u64` is an error here: any other end past the blob's length
/// is `BlobInsufficientLength` (an empty read at `u64::MAX` included).
pub(super) fn read_end(offset: u64, len: usize) -> Result<u64, Error> {
    u64::try_from(len)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .ok_or(Error::OffsetOverflow)
}

/// The end of a write of `len` bytes at `offset`, if a blob may reach it
/// (empty writes included, so both runtimes accept the same offsets).
pub(super) fn write_end(offset: u64, len: usize) -> Result<u64, Error> {
    match read_end(offset, len)? {
        end if end <= MAX_LEN => Ok(end),
        _ => Err(Error::OffsetOverflow),
    }
}

impl crate::Blob for Blob {
    async fn len(&self) -> Result<u64, Error> {
        Ok(self.state.read().await.len)
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let end = read_end(offset, buf.len())?;
        let mut state = self.state.clone().read_owned().await;
        if end > state.len {
            return Err(Error::BlobInsufficientLength);
        }
        let piece = self.piece();
        let mut scratch = vec![0; piece.min(buf.len())];
        for (index, chunk) in buf.chunks_mut(piece).enumerate() {
            let at = offset + (index * piece) as u64;
            let len = chunk.len();
            let read;
            (state, scratch, read) = self
                .inner
                .blocking(move || {
                    let read = state.file.read_exact_at(&mut scratch[..len], at);
                    (state, scratch, read)
                })
                .await
                .map_err(|_| Error::ReadFailed)?;
            read.map_err(|_| Error::ReadFailed)?;
            chunk.copy_from_slice(&scratch[..len]);
        }
        let metrics = &self.inner.metrics;
        metrics.storage_reads.inc();
        metrics.storage_read_bandwidth.inc_by(buf.len() as u64);
        Ok(())
    }

    async fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        write_end(offset, buf.len())?;
        let mut state = self.state.clone().write_owned().await;
        let piece = self.piece();
        let mut scratch = Vec::with_capacity(piece.min(buf.len()));
        for (index, chunk) in buf.chunks(piece).enumerate() {
            let at = offset + (index * piece) as u64;
            scratch.clear();
            scratch.extend_from_slice(chunk);
            let written;
            (state, scratch, written) = self
                .inner
                .blocking(move || {
                    let written = state.file.write_all_at(&scratch, at);
                    if written.is_ok() {
                        state.len = state.len.max(at + scratch.len() as u64);
                    }
                    (state, scratch, written)
                })
                .await
                .map_err(|_| Error::WriteFailed)?;
            written.map_err(|_| Error::WriteFailed)?;
        }
        let metrics = &self.inner.metrics;
        metrics.storage_writes.inc();
        metrics.storage_write_bandwidth.inc_by(buf.len() as u64);
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), Error> {
        let mut state = self.state.clone().write_owned().await;
        let failed = Error::BlobTruncateFailed(state.partition.clone(), hex(&state.name));
        if len > MAX_LEN {
            return Err(failed);
        }
        self.inner
            .blocking(move || {
                state.file.set_len(len)?;
                state.len = len;
                Ok::<_, std::io::Error>(())
            })
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(failed)
    }

    async fn sync(&self) -> Result<(), Error> {
        let state = self.state.clone().read_owned().await;
        let failed = Error::BlobSyncFailed(state.partition.clone(), hex(&state.name));
        self.inner
            .blocking(move || state.sync())
            .await
            .map_err(|_| failed)?
    }

    async fn close(self) -> Result<(), Error> {
        self.sync().await
    }
}
