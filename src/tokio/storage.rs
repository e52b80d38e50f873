//! `Storage` for the tokio runtime: blobs are files under
//! [`super::Config::storage_directory`].
//!
//! # Layout
//!
//! A partition is a directory directly below `storage_directory`; a blob is a
//! file in it named by the lowercase hex encoding of the blob's name, so any
//! byte string is a safe file name (the empty name is the file `_empty`,
//! which no hex string can equal). This is the reference crate's layout, so
//! its data directories open unchanged. A name longer than 127 bytes makes a
//! file name longer than most file systems allow; `open` then fails with
//! `BlobOpenFailed`.
//!
//! # Names that could escape
//!
//! A partition name is used only if it is exactly one normal path component:
//! empty names, `.`, `..`, names containing `/`, `\` or NUL (and so every
//! absolute path) are rejected before the file system is touched: `open`
//! fails with `PartitionCreationFailed`, while `scan` and `remove` fail with
//! `PartitionMissing` (such a partition cannot exist).
//!
//! # Durability
//!
//! `sync` is `fsync` of the blob's file. If the blob was removed meanwhile
//! its data cannot be reached by name, so `sync` fails as the
//! deterministic runtime's does: `BlobMissing`, or `PartitionMissing` if the
//! whole partition is gone. Creating a partition or a blob, and removing one, also syncs the
//! directory that changed, so an acknowledged `sync` of a new blob survives
//! a power cut; `close` syncs too. The storage directory itself is created
//! on the first `open` (with its missing parents, which are not synced).
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
//! * The length includes unsynced writes; reading past it is
//!   `BlobInsufficientLength`, and an offset whose end overflows is
//!   `OffsetOverflow`; neither touches the file.
//! * Errors use the same variants as the deterministic runtime for the same
//!   situation.
//!
//! Positional I/O and link counts are Unix APIs: this backend builds on Unix.

use super::{Context, Inner};
use crate::{hex, is_safe_partition, Error};
use std::{
    ffi::OsStr,
    fs::{self, File, OpenOptions},
    io::ErrorKind,
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::Arc,
};
use tokio::sync::RwLock;

/// The file name of the blob whose name is empty.
const EMPTY_NAME: &str = "_empty";

/// Largest end offset a file can have (`off_t` is signed 64-bit).
const MAX_END: u64 = i64::MAX as u64;

/// The file name of the blob named `name`.
fn file_name(name: &[u8]) -> String {
    if name.is_empty() {
        EMPTY_NAME.to_string()
    } else {
        hex(name)
    }
}

/// The blob name encoded by `file`, if it is one this module writes.
fn blob_name(file: &OsStr) -> Option<Vec<u8>> {
    let file = file.to_str()?;
    if file == EMPTY_NAME {
        return Some(Vec::new());
    }
    if file.is_empty() || file.len() % 2 != 0 {
        return None;
    }
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    file.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Makes the creation or removal of entries in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Context {
    /// The directory of `partition`, or `None` if the name could escape the
    /// storage directory.
    fn partition_dir(&self, partition: &str) -> Option<PathBuf> {
        is_safe_partition(partition).then(|| self.inner.cfg.storage_directory.join(partition))
    }
}

/// Creates (durably) the directory of `partition` and the blob file `name`
/// in it unless they exist, and opens the file.
fn open_file(root: &Path, dir: &Path, partition: &str, name: &[u8]) -> Result<File, Error> {
    let creation_failed = || Error::PartitionCreationFailed(partition.into());
    let open_failed = || Error::BlobOpenFailed(partition.into(), hex(name));
    fs::create_dir_all(root).map_err(|_| creation_failed())?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(root).map_err(|_| creation_failed())?,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(_) => return Err(creation_failed()),
    }
    let path = dir.join(file_name(name));
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.clone().create_new(true).open(&path) {
        Ok(file) => {
            sync_dir(dir).map_err(|_| open_failed())?;
            Ok(file)
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            options.open(&path).map_err(|_| open_failed())
        }
        Err(_) => Err(open_failed()),
    }
}

/// The names of the blobs in the partition directory `dir`, sorted.
fn scan_dir(dir: &Path, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
    let entries = fs::read_dir(dir).map_err(|_| Error::PartitionMissing(partition.into()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|_| Error::ReadFailed)?;
        let is_file = entry.file_type().map_err(|_| Error::ReadFailed)?.is_file();
        let name = blob_name(&entry.file_name())
            .filter(|_| is_file)
            .ok_or_else(|| Error::PartitionCorrupt(partition.into()))?;
        names.push(name);
    }
    names.sort_unstable();
    Ok(names)
}

/// Removes the blob file `name` from the partition directory `dir`.
fn remove_file(dir: &Path, partition: &str, name: &[u8]) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::PartitionMissing(partition.into()));
    }
    fs::remove_file(dir.join(file_name(name)))
        .map_err(|_| Error::BlobMissing(partition.into(), hex(name)))?;
    sync_dir(dir).map_err(|_| Error::BlobSyncFailed(partition.into(), hex(name)))
}

/// Removes the partition directory `dir` and everything in it.
fn remove_dir(root: &Path, dir: &Path, partition: &str) -> Result<(), Error> {
    fs::remove_dir_all(dir).map_err(|_| Error::PartitionMissing(partition.into()))?;
    sync_dir(root).map_err(|_| Error::WriteFailed)
}

impl crate::Storage<Blob> for Context {
    async fn open(&self, partition: &str, name: &[u8]) -> Result<Blob, Error> {
        let dir = self
            .partition_dir(partition)
            .ok_or_else(|| Error::PartitionCreationFailed(partition.into()))?;
        let root = self.inner.cfg.storage_directory.clone();
        let (owned_partition, owned_name) = (partition.to_string(), name.to_vec());
        let (file, len, dir) = self
            .inner
            .blocking(move || {
                let file = open_file(&root, &dir, &owned_partition, &owned_name)?;
                let len = file
                    .metadata()
                    .map_err(|_| Error::BlobOpenFailed(owned_partition, hex(&owned_name)))?
                    .len();
                Ok::<_, Error>((file, len, dir))
            })
            .await
            .map_err(|_| Error::BlobOpenFailed(partition.into(), hex(name)))??;
        self.inner.metrics.open_blobs.inc();
        Ok(Blob {
            inner: self.inner.clone(),
            state: Arc::new(RwLock::new(State {
                file,
                len,
                dir,
                partition: partition.into(),
                name: name.into(),
            })),
        })
    }

    async fn remove(&self, partition: &str, name: Option<&[u8]>) -> Result<(), Error> {
        let missing = || Error::PartitionMissing(partition.into());
        let dir = self.partition_dir(partition).ok_or_else(missing)?;
        let owned_partition = partition.to_string();
        match name {
            Some(name) => {
                let owned_name = name.to_vec();
                self.inner
                    .blocking(move || remove_file(&dir, &owned_partition, &owned_name))
                    .await
                    .map_err(|_| Error::BlobMissing(partition.into(), hex(name)))?
            }
            None => {
                let root = self.inner.cfg.storage_directory.clone();
                self.inner
                    .blocking(move || remove_dir(&root, &dir, &owned_partition))
                    .await
                    .map_err(|_| missing())?
            }
        }
    }

    async fn scan(&self, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
        let missing = || Error::PartitionMissing(partition.into());
        let dir = self.partition_dir(partition).ok_or_else(missing)?;
        let owned_partition = partition.to_string();
        self.inner
            .blocking(move || scan_dir(&dir, &owned_partition))
            .await
            .map_err(|_| missing())?
    }
}

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
    /// Size of the pieces large reads and writes are split into.
    fn piece(&self) -> usize {
        self.inner.cfg.maximum_buffer_size.max(1)
    }
}

/// The end of `len` bytes at `offset`, if a file can have it.
fn end(offset: u64, len: usize) -> Result<u64, Error> {
    u64::try_from(len)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .filter(|end| *end <= MAX_END)
        .ok_or(Error::OffsetOverflow)
}

impl crate::Blob for Blob {
    async fn len(&self) -> Result<u64, Error> {
        Ok(self.state.read().await.len)
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let end = end(offset, buf.len())?;
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
        end(offset, buf.len())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_file_names() {
        for name in [&b""[..], b"a", b"\x00\xff/..", b"0123456789abcdef"] {
            let file = file_name(name);
            assert!(!file.contains(['/', '\\', '\0']));
            assert_eq!(blob_name(OsStr::new(&file)), Some(name.to_vec()));
        }
    }

    #[test]
    fn foreign_file_names_are_not_blobs() {
        for file in ["", "a", "0A", "zz", "abc", "_", "0g"] {
            assert_eq!(blob_name(OsStr::new(file)), None, "{file:?}");
        }
    }

    #[test]
    fn unsafe_partitions_are_rejected() {
        for partition in [
            "", ".", "..", "/", "/etc", "a/b", "../x", "a\\b", "a\0b", "./a",
        ] {
            assert!(!is_safe_partition(partition), "{partition:?}");
        }
        for partition in ["a", "partition-1", "...", ".hidden", "a b", "ünïcode"] {
            assert!(is_safe_partition(partition), "{partition:?}");
        }
    }

    #[test]
    fn end_rejects_overflow_and_offsets_past_off_t() {
        assert_eq!(end(u64::MAX, 1), Err(Error::OffsetOverflow));
        assert_eq!(end(MAX_END, 1), Err(Error::OffsetOverflow));
        assert_eq!(end(MAX_END, 0), Ok(MAX_END));
        assert_eq!(end(5, 3), Ok(8));
    }
}
