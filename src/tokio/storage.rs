//! `Storage` for the tokio runtime: blobs are files under
//! [`super::Config::storage_directory`].
//!
//! # Layout
//!
//! A partition is a directory directly below `storage_directory`; a blob is
//! a file in it.
//!
//! * A name of at most 127 bytes ([`MAX_SHORT_NAME`]) is stored in the file
//!   named by its lowercase hex encoding (the empty name is the file
//!   `_empty`, which no hex string can equal). This is the reference
//!   crate's layout, so its data directories open unchanged.
//! * A longer name would make a hex file name over the 255 bytes file
//!   systems allow. It is stored in a *slot*: the data file
//!   `~<h>-<k>`, where `<h>` is the 16 hex digits of the name's 64-bit
//!   FNV-1a hash and `<k>` a decimal index, and the name file
//!   `~<h>-<k>.name`, which holds the whole name. `~` is not a hex digit,
//!   so these never look like short names. Names with the same hash take
//!   slots `0, 1, 2, …` in turn; `open` and `remove` probe from slot 0 and
//!   compare the stored name, so a hash collision costs a probe, never a
//!   wrong blob. `scan` reads the name of each data file from its name
//!   file.
//!
//! # Invariants
//!
//! * The name files of one hash occupy consecutive slots from 0 (a probe
//!   ends at the first missing one). A slot whose data file is gone keeps
//!   its name file while a later slot of the same hash is in use; `remove`
//!   deletes the name files it no longer needs from the top of the chain
//!   down.
//! * A data file never exists without its name file: `open` writes and
//!   fsyncs the name file and syncs the directory before it creates the
//!   data file; `remove` deletes the data file before the name file. A
//!   crash may leave a name file without data (no blob: `scan` skips it
//!   and the next `open` of that name reuses the slot), never the reverse.
//! * Creating and removing slots, and reading them in `scan`, hold one
//!   process-wide lock, so concurrent opens of one long name agree on its
//!   slot.
//! * Errors do not depend on the encoding: a long name's errors carry the
//!   hex of the whole name, as a short name's do.
//!
//! # Names that could escape
//!
//! A partition name is used only if it is exactly one normal path component
//! of at most 255 bytes: empty names, `.`, `..`, names containing `/`, `\`
//! or NUL (and so every absolute path), and longer names are rejected
//! before the file system is touched: `open` fails with
//! `PartitionCreationFailed`, while `scan` and `remove` fail with
//! `PartitionMissing` (such a partition cannot exist). The deterministic
//! runtime applies the same rule.
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
//! # Blobs
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
//!
//! Positional I/O and link counts are Unix APIs: this backend builds on Unix.

use super::{Context, Inner};
use crate::{hex, is_safe_partition, Error};
use parking_lot::Mutex;
use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Write},
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::Arc,
};
use tokio::sync::RwLock;

/// The file name of the blob whose name is empty.
const EMPTY_NAME: &str = "_empty";

/// Longest name stored as a hex file name (254 characters; file names are
/// at most 255 bytes).
const MAX_SHORT_NAME: usize = 127;

/// First character of a long name's files (not a hex digit, not `_`).
const LONG_MARK: char = '~';

/// Suffix of a long name's name file.
const NAME_SUFFIX: &str = ".name";

/// Longest a blob may be: the deterministic runtime's limit
/// (`deterministic::MAX_BLOB_LEN`), so that both accept the same offsets.
const MAX_LEN: u64 = 1 << 40;

/// Held while long-name slots are created, removed or read.
static SLOTS: Mutex<()> = Mutex::new(());

/// The file name of the blob named `name`, if the name is short.
fn file_name(name: &[u8]) -> Option<String> {
    if name.is_empty() {
        Some(EMPTY_NAME.to_string())
    } else if name.len() <= MAX_SHORT_NAME {
        Some(hex(name))
    } else {
        None
    }
}

/// The short blob name encoded by `file`, if it is one this module writes.
fn blob_name(file: &str) -> Option<Vec<u8>> {
    if file == EMPTY_NAME {
        return Some(Vec::new());
    }
    if file.is_empty() || file.len() % 2 != 0 || file.len() > 2 * MAX_SHORT_NAME {
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

/// 64-bit FNV-1a: stable across builds and platforms, as a file name must
/// be. Collisions are resolved by probing, so its strength does not matter.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash naming a long name's slots. Tests make names starting with
/// [`tests::COLLIDE`] collide.
fn name_hash(name: &[u8]) -> u64 {
    #[cfg(test)]
    if name.starts_with(tests::COLLIDE) {
        return 0x0123_4567_89ab_cdef;
    }
    fnv1a(name)
}

/// The data file of slot `k` of the long names hashing to `hash`.
fn slot_file(hash: u64, k: u64) -> String {
    format!("{LONG_MARK}{hash:016x}-{k}")
}

/// The name file of a slot's data file.
fn name_file(data: &str) -> String {
    format!("{data}{NAME_SUFFIX}")
}

/// Whether `file` is a slot's data file (`~` 16 hex digits `-` index).
fn is_slot_file(file: &str) -> bool {
    let Some(rest) = file.strip_prefix(LONG_MARK) else {
        return false;
    };
    let Some((hash, index)) = rest.split_once('-') else {
        return false;
    };
    hash.len() == 16
        && hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && !index.is_empty()
        && index.bytes().all(|c| c.is_ascii_digit())
}

/// Where a probe for a long name ended.
enum Probe {
    /// The slot holding the name: its index and data file.
    Found(u64, String),
    /// The first free slot of the name's hash: its data file.
    Free(String),
}

/// Looks up the long `name` in the partition directory `dir`.
fn probe(dir: &Path, name: &[u8]) -> std::io::Result<Probe> {
    let hash = name_hash(name);
    let mut k = 0;
    loop {
        let data = slot_file(hash, k);
        match fs::read(dir.join(name_file(&data))) {
            Ok(stored) if stored == name => return Ok(Probe::Found(k, data)),
            Ok(_) => k += 1,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Probe::Free(data)),
            Err(err) => return Err(err),
        }
    }
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

/// Opens the data file at `path` in `dir`, creating it (durably) if it does
/// not exist.
fn open_data(dir: &Path, path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            sync_dir(dir)?;
            Ok(file)
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => options.open(path),
        Err(err) => Err(err),
    }
}

/// Opens the data file of the long `name` in `dir`, first writing its name
/// file (durably) if the name has no slot yet.
fn open_long(dir: &Path, name: &[u8]) -> std::io::Result<File> {
    let _slots = SLOTS.lock();
    let data = match probe(dir, name)? {
        Probe::Found(_, data) => data,
        Probe::Free(data) => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(name_file(&data)))?;
            file.write_all(name)?;
            file.sync_all()?;
            sync_dir(dir)?;
            data
        }
    };
    open_data(dir, &dir.join(data))
}

/// Creates (durably) the directory of `partition` and the blob `name` in
/// it unless they exist, and opens the blob's file.
fn open_file(root: &Path, dir: &Path, partition: &str, name: &[u8]) -> Result<File, Error> {
    let creation_failed = || Error::PartitionCreationFailed(partition.into());
    fs::create_dir_all(root).map_err(|_| creation_failed())?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(root).map_err(|_| creation_failed())?,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(_) => return Err(creation_failed()),
    }
    match file_name(name) {
        Some(file) => open_data(dir, &dir.join(file)),
        None => open_long(dir, name),
    }
    .map_err(|_| Error::BlobOpenFailed(partition.into(), hex(name)))
}

/// The names of the blobs in the partition directory `dir`, sorted.
fn scan_dir(dir: &Path, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
    let corrupt = || Error::PartitionCorrupt(partition.into());
    let _slots = SLOTS.lock();
    let entries = fs::read_dir(dir).map_err(|_| Error::PartitionMissing(partition.into()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|_| Error::ReadFailed)?;
        if !entry.file_type().map_err(|_| Error::ReadFailed)?.is_file() {
            return Err(corrupt());
        }
        let file = entry.file_name();
        let file = file.to_str().ok_or_else(corrupt)?;
        if let Some(name) = blob_name(file) {
            names.push(name);
        } else if is_slot_file(file) {
            let name = fs::read(dir.join(name_file(file))).map_err(|_| corrupt())?;
            if name.len() <= MAX_SHORT_NAME {
                return Err(corrupt());
            }
            names.push(name);
        } else if !file.strip_suffix(NAME_SUFFIX).is_some_and(is_slot_file) {
            return Err(corrupt());
        }
    }
    names.sort_unstable();
    // Two files claiming one name: the directory was not written by us.
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(corrupt());
    }
    Ok(names)
}

/// Removes the long `name`'s data file from `dir`, then the name files its
/// hash no longer needs.
fn remove_long(dir: &Path, name: &[u8]) -> Result<(), ()> {
    let _slots = SLOTS.lock();
    let Ok(Probe::Found(k, data)) = probe(dir, name) else {
        return Err(());
    };
    fs::remove_file(dir.join(&data)).map_err(|_| ())?;
    let hash = name_hash(name);
    if dir.join(name_file(&slot_file(hash, k + 1))).exists() {
        // A later slot is in use: this name file keeps the chain whole.
        return Ok(());
    }
    // Trim the chain's tail of slots without data, from the top down, so a
    // crash midway leaves no gap. What stays is harmless, so failures
    // here are not the removal's.
    for slot in (0..=k).rev() {
        let data = slot_file(hash, slot);
        if slot != k && dir.join(&data).exists() {
            break;
        }
        if fs::remove_file(dir.join(name_file(&data))).is_err() {
            break;
        }
    }
    Ok(())
}

/// Removes the blob `name` from the partition directory `dir`.
fn remove_file(dir: &Path, partition: &str, name: &[u8]) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::PartitionMissing(partition.into()));
    }
    let missing = || Error::BlobMissing(partition.into(), hex(name));
    match file_name(name) {
        Some(file) => fs::remove_file(dir.join(file)).map_err(|_| missing())?,
        None => remove_long(dir, name).map_err(|_| missing())?,
    }
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

/// The end of a read of `len` bytes at `offset`. Only an end that
/// overflows `u64` is an error here: any other end past the blob's length
/// is `BlobInsufficientLength` (an empty read at `u64::MAX` included).
fn read_end(offset: u64, len: usize) -> Result<u64, Error> {
    u64::try_from(len)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .ok_or(Error::OffsetOverflow)
}

/// The end of a write of `len` bytes at `offset`, if a blob may reach it
/// (empty writes included, so both runtimes accept the same offsets).
fn write_end(offset: u64, len: usize) -> Result<u64, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tokio::Executor, Blob as _, Runner as _, Storage as _};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Long names starting with this collide (see [`name_hash`]).
    pub(super) const COLLIDE: &[u8] = b"\xffcollide:";

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "commonware-tokio-storage-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            Self(dir)
        }

        /// The files of partition `p`, sorted.
        fn files(&self, p: &str) -> Vec<String> {
            let mut files: Vec<String> = fs::read_dir(self.0.join(p))
                .expect("read partition")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            files.sort();
            files
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `f` on a fresh runtime storing in `dir`.
    fn run<F, Fut>(dir: &Path, f: F) -> Fut::Output
    where
        F: FnOnce(Context) -> Fut,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (runner, context) = Executor::init(super::super::Config {
            threads: 1,
            storage_directory: dir.to_path_buf(),
            ..super::super::Config::default()
        });
        runner.start(f(context))
    }

    /// `n` bytes of `x` after `head`.
    fn long(head: &[u8], n: usize) -> Vec<u8> {
        let mut name = head.to_vec();
        name.extend(std::iter::repeat_n(b'x', n));
        name
    }

    /// Writes `name` itself into the blob `name` and closes it.
    async fn store(ctx: &Context, p: &str, name: &[u8]) {
        let blob = ctx.open(p, name).await.expect("open");
        blob.write_at(name, 0).await.expect("write");
        blob.close().await.expect("close");
    }

    /// Checks that the blob `name` holds `name`.
    async fn holds_itself(ctx: &Context, p: &str, name: &[u8]) {
        let blob = ctx.open(p, name).await.expect("open");
        assert_eq!(blob.len().await, Ok(name.len() as u64));
        let mut buf = vec![0u8; name.len()];
        blob.read_at(&mut buf, 0).await.expect("read");
        assert_eq!(buf, name);
    }

    #[test]
    fn short_names_round_trip_through_file_names() {
        for name in [
            &b""[..],
            b"a",
            b"\x00\xff/..",
            b"0123456789abcdef",
            &[7; 127],
        ] {
            let file = file_name(name).expect("short");
            assert!(file.len() <= 255);
            assert!(!file.contains(['/', '\\', '\0']));
            assert_eq!(blob_name(&file), Some(name.to_vec()));
        }
        assert_eq!(file_name(&[7; 128]), None);
    }

    #[test]
    fn foreign_file_names_are_not_blobs() {
        for file in [
            "",
            "a",
            "0A",
            "zz",
            "abc",
            "_",
            "0g",
            "~0123",
            &"ab".repeat(128),
        ] {
            assert_eq!(blob_name(file), None, "{file:?}");
        }
    }

    #[test]
    fn slot_files_are_recognised() {
        let data = slot_file(0xab, 12);
        assert_eq!(data, "~00000000000000ab-12");
        assert!(is_slot_file(&data));
        assert!(!is_slot_file(&name_file(&data)));
        for file in [
            "~00000000000000ab-",
            "~0000000000000ab-1",
            "~00000000000000AB-1",
            "00-1",
        ] {
            assert!(!is_slot_file(file), "{file:?}");
        }
        // FNV-1a names files on disk: it must never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unsafe_partitions_are_rejected() {
        let long = ["a".repeat(256), "b".repeat(300), "é".repeat(128)];
        let bad = [
            "", ".", "..", "/", "/etc", "a/b", "../x", "a\\b", "a\0b", "./a",
        ];
        for partition in bad.iter().copied().chain(long.iter().map(String::as_str)) {
            assert!(!is_safe_partition(partition), "{partition:?}");
        }
        let longest = ["a".repeat(255), "é".repeat(127)];
        let good = ["a", "partition-1", "...", ".hidden", "a b", "ünïcode"];
        for partition in good
            .iter()
            .copied()
            .chain(longest.iter().map(String::as_str))
        {
            assert!(is_safe_partition(partition), "{partition:?}");
        }
    }

    #[test]
    fn ends_of_reads_and_writes() {
        assert_eq!(read_end(u64::MAX, 0), Ok(u64::MAX));
        assert_eq!(read_end(u64::MAX, 1), Err(Error::OffsetOverflow));
        assert_eq!(read_end(5, 3), Ok(8));
        assert_eq!(write_end(MAX_LEN, 0), Ok(MAX_LEN));
        assert_eq!(write_end(MAX_LEN - 1, 1), Ok(MAX_LEN));
        assert_eq!(write_end(MAX_LEN, 1), Err(Error::OffsetOverflow));
        assert_eq!(write_end(MAX_LEN + 1, 0), Err(Error::OffsetOverflow));
        assert_eq!(write_end(u64::MAX, 1), Err(Error::OffsetOverflow));
    }

    #[test]
    fn blobs_are_as_long_as_in_simulation() {
        assert_eq!(MAX_LEN, crate::deterministic::MAX_BLOB_LEN);
    }

    #[test]
    fn long_names_are_stored_scanned_and_reopened() {
        let scratch = Scratch::new();
        let names = [
            long(b"", 127),
            long(b"", 128),
            long(b"", 200),
            long(b"\x01", 199),
            long(b"", 4096),
            long(b"", 5000),
            b"a".to_vec(),
            Vec::new(),
        ];
        // Two long names sharing a 200-byte prefix.
        let (one, two) = (
            [long(b"", 200), b"1".to_vec()].concat(),
            [long(b"", 200), b"2".to_vec()].concat(),
        );
        let all: Vec<Vec<u8>> = names
            .iter()
            .cloned()
            .chain([one.clone(), two.clone()])
            .collect();
        let stored = all.clone();
        run(&scratch.0, |ctx| async move {
            for name in &stored {
                store(&ctx, "p", name).await;
            }
        });
        let files = scratch.files("p");
        assert!(files.contains(&hex(&long(b"", 127))), "127 bytes stay hex");
        assert_eq!(files.iter().filter(|f| is_slot_file(f)).count(), 7);
        assert_eq!(files.iter().filter(|f| f.ends_with(NAME_SUFFIX)).count(), 7);
        assert!(files.iter().all(|f| f.len() <= 255));

        // A fresh runtime on the same directory finds everything.
        let mut sorted = all.clone();
        sorted.sort();
        let removed = long(b"", 200);
        run(&scratch.0, |ctx| async move {
            assert_eq!(ctx.scan("p").await, Ok(sorted.clone()));
            for name in &all {
                holds_itself(&ctx, "p", name).await;
            }
            ctx.remove("p", Some(&removed)).await.expect("remove");
            assert_eq!(
                ctx.remove("p", Some(&removed)).await,
                Err(Error::BlobMissing("p".into(), hex(&removed)))
            );
            let left: Vec<_> = sorted.into_iter().filter(|n| *n != removed).collect();
            assert_eq!(ctx.scan("p").await, Ok(left));
            holds_itself(&ctx, "p", &one).await;
            holds_itself(&ctx, "p", &two).await;
            let fresh = ctx.open("p", &removed).await.expect("reopen");
            assert_eq!(fresh.len().await, Ok(0), "a removed blob came back");
        });
    }

    #[test]
    fn colliding_names_take_consecutive_slots() {
        let scratch = Scratch::new();
        let [a, b, c] = [b'a', b'b', b'c'].map(|tail| [COLLIDE, &[tail; 150]].concat());
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        let hash = name_hash(&a);
        run(&scratch.0, |ctx| async move {
            for name in [&a2, &b2, &c2] {
                store(&ctx, "p", name).await;
            }
        });
        let slot = |k| slot_file(hash, k);
        assert_eq!(
            fs::read(scratch.0.join("p").join(name_file(&slot(1)))).ok(),
            Some(b.clone())
        );
        let dir = scratch.0.join("p");
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        run(&scratch.0, |ctx| async move {
            // Removing the middle slot keeps its name file: the chain to `c`
            // stays whole.
            ctx.remove("p", Some(&b2)).await.expect("remove b");
            holds_itself(&ctx, "p", &c2).await;
            holds_itself(&ctx, "p", &a2).await;
            assert_eq!(ctx.scan("p").await, Ok(vec![a2.clone(), c2.clone()]));
        });
        assert!(!dir.join(slot(1)).exists());
        assert!(dir.join(name_file(&slot(1))).exists());
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        run(&scratch.0, |ctx| async move {
            // `b` comes back in its old slot, empty.
            let blob = ctx.open("p", &b2).await.expect("reopen b");
            assert_eq!(blob.len().await, Ok(0));
            blob.close().await.expect("close");
            ctx.remove("p", Some(&c2)).await.expect("remove c");
            ctx.remove("p", Some(&b2)).await.expect("remove b");
            assert_eq!(ctx.scan("p").await, Ok(vec![a2.clone()]));
        });
        assert_eq!(scratch.files("p"), [slot(0), name_file(&slot(0))]);
        run(&scratch.0, |ctx| async move {
            ctx.remove("p", Some(&a)).await.expect("remove a");
            assert_eq!(ctx.scan("p").await, Ok(vec![]));
        });
        assert!(scratch.files("p").is_empty(), "every name file is trimmed");
    }

    #[test]
    fn a_name_file_without_data_is_no_blob() {
        let scratch = Scratch::new();
        let name = long(b"", 300);
        let dir = scratch.0.join("p");
        fs::create_dir_all(&dir).expect("partition");
        // What a crash between the two files of `open` leaves.
        let data = slot_file(name_hash(&name), 0);
        fs::write(dir.join(name_file(&data)), &name).expect("name file");
        let reopened = name.clone();
        run(&scratch.0, |ctx| async move {
            assert_eq!(ctx.scan("p").await, Ok(vec![]));
            assert_eq!(
                ctx.remove("p", Some(&reopened)).await,
                Err(Error::BlobMissing("p".into(), hex(&reopened)))
            );
            store(&ctx, "p", &reopened).await;
            assert_eq!(ctx.scan("p").await, Ok(vec![reopened.clone()]));
        });
        assert_eq!(scratch.files("p"), [data.clone(), name_file(&data)]);

        // The reverse (data without its name) is not ours.
        fs::remove_file(dir.join(name_file(&data))).expect("remove name file");
        run(&scratch.0, |ctx| async move {
            assert_eq!(
                ctx.scan("p").await,
                Err(Error::PartitionCorrupt("p".into()))
            );
        });
    }
}
