//! The simulated disk: a partition map of blobs with durable and volatile
//! images.
//!
//! [`Disk`] maps a partition name to its blobs, and each blob name to its
//! durable image: the contents the last `sync` or `close` published, which is
//! all that survives `Context::recover()`. Every `open` gets its own
//! volatile copy of that image, shared by the clones of the returned
//! [`Blob`]; `write_at` and `truncate` change only the volatile copy until
//! the handle publishes it.
//!
//! An image is a table of 4 KiB pages behind `Arc`s, so a copy shares every
//! page it has not changed (copy-on-write) and a missing page reads as zeros
//! (gaps cost nothing). A handle remembers which pages it changed since it
//! last published, so `sync` costs in proportion to what changed, not to the
//! size of the blob, and after it the durable and volatile images share all
//! their pages again.
//!
//! # Invariants
//! * Bytes of the last page beyond the blob's length are zero, so extending
//!   a blob (by `truncate` or by writing past the end) reads as zeros.
//! * A page table never reaches past the page holding the blob's last byte.
//! * Publishing gives the durable image exactly the handle's contents: if
//!   the durable image is still the one the handle started from (same
//!   version), only the changed pages and the new table length are copied;
//!   if another handle published in between, the whole table is replaced.
//! * Lengths never exceed [`MAX_BLOB_LEN`]; larger offsets and lengths are
//!   errors, never allocations. Arithmetic on offsets is checked.
//! * Maps are `BTreeMap`s: `scan` is sorted and nothing observable depends
//!   on hash order. Every operation is folded into the auditor, writes with
//!   their payload; handles are named in it by a sequence number given at
//!   `open`.
//! * Lock order: a handle's state, then the disk.
//!
//! # Faults
//! Each operation asks the fault injector for its partition's
//! [`StorageFaults`] (one atomic load while none is configured) and may
//! fail instead, changing nothing. Reads may flip one bit of what they
//! return when it comes from a page this handle has not changed (synced
//! data), writes may land whole sectors off target. With `torn`, a handle
//! also remembers its unsynced writes and truncates in order; when its last
//! clone goes away without publishing them (its task was aborted, or its
//! runtime ended: a crash), a prefix of them chosen by the seed is
//! published as if it had reached the disk before the power went.

use super::{
    faults::{self, what, Injector, StorageFaults, SECTOR},
    kind,
};
use crate::{hex, metrics::Metrics, Error};
use commonware_executor::Core;
use parking_lot::Mutex;
use std::{collections::BTreeMap, ops::Range, sync::Arc};

/// Bytes per page of a blob image.
const PAGE: usize = 4096;

/// One page of a blob image.
type Page = [u8; PAGE];

/// The largest length a simulated blob may reach (1 TiB): writes ending past
/// it fail with [`Error::OffsetOverflow`], truncates past it with
/// [`Error::BlobTruncateFailed`]. A sparse blob costs 8 bytes of page table
/// per 4 KiB of length up to its last written page.
pub const MAX_BLOB_LEN: u64 = 1 << 40;

/// Blob name to contents, as the reference runtime stores a partition.
///
/// Kept for API compatibility. The reference defines it over a `HashMap`;
/// ours is a `BTreeMap` so that iterating it is deterministic.
pub type Partition = BTreeMap<Vec<u8>, Vec<u8>>;

/// Pages and length of a blob.
#[derive(Clone, Default)]
struct Image {
    /// `pages[i]` holds bytes `i * PAGE .. (i + 1) * PAGE`; `None`, or an
    /// index past the end, holds zeros.
    pages: Vec<Option<Arc<Page>>>,
    len: u64,
}

/// Index of the page holding byte `offset`, and the position in it.
fn locate(offset: u64) -> (usize, usize) {
    // Offsets are below MAX_BLOB_LEN, so the index fits in usize even on
    // 32-bit targets.
    (
        (offset / PAGE as u64) as usize,
        (offset % PAGE as u64) as usize,
    )
}

/// Splits bytes `offset .. offset + len` by page: for each page touched,
/// its index, the range within the page and the range within the buffer.
fn spans(offset: u64, len: usize) -> impl Iterator<Item = (usize, Range<usize>, Range<usize>)> {
    let (mut index, mut start) = locate(offset);
    let mut done = 0;
    std::iter::from_fn(move || {
        if done == len {
            return None;
        }
        let n = (PAGE - start).min(len - done);
        let span = (index, start..start + n, done..done + n);
        index += 1;
        start = 0;
        done += n;
        Some(span)
    })
}

impl Image {
    /// Copies bytes `offset .. offset + buf.len()` (all below `len`) into `buf`.
    fn read(&self, buf: &mut [u8], offset: u64) {
        for (index, in_page, in_buf) in spans(offset, buf.len()) {
            let dst = &mut buf[in_buf];
            match self.pages.get(index) {
                Some(Some(page)) => dst.copy_from_slice(&page[in_page]),
                _ => dst.fill(0),
            }
        }
    }
}

/// Writes `src` over `range` of the page in `slot`, copying the page first
/// if it is shared with another image. A private page comes from `spares`
/// when one is there.
fn write_page(slot: &mut Option<Arc<Page>>, range: Range<usize>, src: &[u8], spares: &Spares) {
    if let Some(page) = slot.as_mut().and_then(Arc::get_mut) {
        page[range].copy_from_slice(src);
        return;
    }
    if let Some(mut spare) = spares.take() {
        let page = Arc::get_mut(&mut spare).expect("spare pages are unshared");
        // A whole-page write needs no copy of what it overwrites.
        if src.len() < PAGE {
            match slot {
                Some(shared) => page.copy_from_slice(&shared[..]),
                None => page.fill(0),
            }
        }
        page[range].copy_from_slice(src);
        *slot = Some(spare);
        return;
    }
    // A whole new page is copied once: no zeroing, and no copy of bytes
    // about to be overwritten.
    if src.len() == PAGE {
        if let Ok(page) = Arc::<[u8]>::from(src).try_into() {
            *slot = Some(page);
            return;
        }
    }
    let page = slot.get_or_insert_with(|| Arc::new([0; PAGE]));
    Arc::make_mut(page)[range].copy_from_slice(src);
}

/// Pages a `sync` released, kept for the next copy-on-write instead of
/// going back to the allocator: an overwrite-heavy workload would otherwise
/// hand the memory back to the OS at every sync and fault it in again on
/// the next round (most of such a workload's cost). Bounded, so a disk
/// keeps at most [`Spares::MAX`] pages (64 MiB) it does not use.
#[derive(Default)]
struct Spares {
    pages: Mutex<Vec<Arc<Page>>>,
}

impl Spares {
    const MAX: usize = 16_384;

    fn take(&self) -> Option<Arc<Page>> {
        self.pages.lock().pop()
    }

    /// Keeps `page` if nothing else holds it and there is room.
    fn give(&self, mut page: Arc<Page>) {
        if Arc::get_mut(&mut page).is_some() {
            let mut pages = self.pages.lock();
            if pages.len() < Self::MAX {
                pages.push(page);
            }
        }
    }
}

/// What `sync` or `close` last published for one blob.
struct Durable {
    image: Image,
    /// Changes on every publish (unique across the disk).
    version: u64,
}

/// Partitions and the counters that name things deterministically.
#[derive(Default)]
struct Partitions {
    map: BTreeMap<String, BTreeMap<Vec<u8>, Durable>>,
    /// Last version handed out.
    versions: u64,
    /// Handles opened so far.
    handles: u64,
}

impl Partitions {
    fn version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    fn durable(&mut self, partition: &str, name: &[u8]) -> Result<&mut Durable, Error> {
        self.map
            .get_mut(partition)
            .ok_or_else(|| Error::PartitionMissing(partition.into()))?
            .get_mut(name)
            .ok_or_else(|| Error::BlobMissing(partition.into(), hex(name)))
    }
}

/// The durable state of all blobs: what outlives a runtime instance.
#[derive(Default)]
pub(crate) struct Disk {
    state: Mutex<Partitions>,
    spares: Spares,
}

impl Disk {
    /// A copy of the durable images (sharing their pages) for a recovered
    /// runtime, so that handles of the old runtime cannot change it.
    pub(crate) fn fork(&self) -> Self {
        let state = self.state.lock();
        let map = state
            .map
            .iter()
            .map(|(partition, blobs)| {
                let blobs = blobs
                    .iter()
                    .map(|(name, durable)| {
                        let durable = Durable {
                            image: durable.image.clone(),
                            version: durable.version,
                        };
                        (name.clone(), durable)
                    })
                    .collect();
                (partition.clone(), blobs)
            })
            .collect();
        Self {
            state: Mutex::new(Partitions {
                map,
                versions: state.versions,
                handles: state.handles,
            }),
            spares: Spares::default(),
        }
    }
}

/// Auditor payload naming a blob: the partition, a byte that cannot occur in
/// UTF-8, then the name.
fn blob_key(partition: &str, name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(partition.len() + 1 + name.len());
    key.extend_from_slice(partition.as_bytes());
    key.push(0xFF);
    key.extend_from_slice(name);
    key
}

impl crate::Storage<Blob> for super::Context {
    async fn open(&self, partition: &str, name: &[u8]) -> Result<Blob, Error> {
        let runtime = &*self.runtime;
        // The names the tokio backend cannot map to a directory fail here too
        // (so such partitions never exist, and scan/remove report them missing).
        if !crate::is_safe_partition(partition) {
            return Err(Error::PartitionCreationFailed(partition.into()));
        }
        let faults = runtime.faults.storage(partition);
        if faults::chance(&runtime.core, faults.open) {
            let key = blob_key(partition, name);
            faults::audit(&runtime.core, what::OPEN, &key);
            return Err(Error::BlobOpenFailed(partition.into(), hex(name)));
        }
        let (seq, image, base) = {
            let mut disk = runtime.storage.state.lock();
            let seq = disk.handles;
            disk.handles += 1;
            let version = disk.version();
            let blobs = disk.map.entry(partition.into()).or_default();
            let durable = blobs.entry(name.into()).or_insert_with(|| Durable {
                image: Image::default(),
                version,
            });
            (seq, durable.image.clone(), durable.version)
        };
        runtime
            .core
            .audit(kind::OPEN, seq, &blob_key(partition, name));
        runtime.metrics.open_blobs.inc();
        Ok(Blob {
            shared: Arc::new(Shared {
                core: runtime.core.clone(),
                metrics: runtime.metrics.clone(),
                disk: runtime.storage.clone(),
                injector: runtime.faults.clone(),
                partition: partition.into(),
                name: name.into(),
                seq,
                state: Mutex::new(Volatile::new(image, base, faults.torn)),
            }),
        })
    }

    async fn remove(&self, partition: &str, name: Option<&[u8]>) -> Result<(), Error> {
        let runtime = &*self.runtime;
        match name {
            Some(name) => runtime
                .core
                .audit(kind::REMOVE, 1, &blob_key(partition, name)),
            None => runtime.core.audit(kind::REMOVE, 0, partition.as_bytes()),
        }
        if faults::chance(&runtime.core, runtime.faults.storage(partition).remove) {
            // The errors the Tokio backend reports when the file system
            // refuses to remove.
            faults::audit(&runtime.core, what::REMOVE, partition.as_bytes());
            return Err(match name {
                Some(name) => Error::BlobMissing(partition.into(), hex(name)),
                None => Error::PartitionMissing(partition.into()),
            });
        }
        let mut disk = runtime.storage.state.lock();
        match name {
            Some(name) => {
                disk.map
                    .get_mut(partition)
                    .ok_or_else(|| Error::PartitionMissing(partition.into()))?
                    .remove(name)
                    .ok_or_else(|| Error::BlobMissing(partition.into(), hex(name)))?;
            }
            None => {
                disk.map
                    .remove(partition)
                    .ok_or_else(|| Error::PartitionMissing(partition.into()))?;
            }
        }
        Ok(())
    }

    async fn scan(&self, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
        let runtime = &*self.runtime;
        runtime.core.audit(kind::SCAN, 0, partition.as_bytes());
        let disk = runtime.storage.state.lock();
        let blobs = disk
            .map
            .get(partition)
            .ok_or_else(|| Error::PartitionMissing(partition.into()))?;
        Ok(blobs.keys().cloned().collect())
    }
}

/// The volatile state of one opened blob (shared by its clones).
struct Volatile {
    image: Image,
    /// Pages changed since the last publish, each listed once.
    dirty: Vec<usize>,
    /// Bit `i` is set iff page `i` is in `dirty`.
    marks: Vec<u64>,
    /// Shortest the page table has been since the last publish: the durable
    /// table agrees with this one below it, except on dirty pages.
    low: usize,
    /// Version of the durable image this state started from.
    base: u64,
    /// With torn writes on: the writes and truncates since the last
    /// publish, in order.
    unsynced: Option<Vec<Change>>,
}

/// A change to a blob that has not reached the durable image yet.
enum Change {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

impl Volatile {
    /// A volatile copy of the durable `image` of version `base`; `torn`
    /// records the changes made to it.
    fn new(image: Image, base: u64, torn: bool) -> Self {
        Self {
            low: image.pages.len(),
            image,
            dirty: Vec::new(),
            marks: Vec::new(),
            base,
            unsynced: torn.then(Vec::new),
        }
    }

    /// Whether page `index` was changed since the last publish.
    fn is_dirty(&self, index: usize) -> bool {
        self.marks
            .get(index / 64)
            .is_some_and(|word| word & 1 << (index % 64) != 0)
    }

    fn mark(&mut self, index: usize) {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.marks.len() <= word {
            self.marks.resize(word + 1, 0);
        }
        if self.marks[word] & bit == 0 {
            self.marks[word] |= bit;
            self.dirty.push(index);
        }
    }

    /// Writes `data` at `offset`; `offset + data.len()` is at most
    /// [`MAX_BLOB_LEN`] and `data` is not empty.
    fn write(&mut self, data: &[u8], offset: u64, end: u64, spares: &Spares) -> Result<(), Error> {
        let (last, _) = locate(end - 1);
        let pages = &mut self.image.pages;
        if pages.len() <= last {
            pages
                .try_reserve(last + 1 - pages.len())
                .map_err(|_| Error::OffsetOverflow)?;
            pages.resize(last + 1, None);
        }
        for (index, in_page, in_buf) in spans(offset, data.len()) {
            write_page(&mut self.image.pages[index], in_page, &data[in_buf], spares);
            self.mark(index);
        }
        self.image.len = self.image.len.max(end);
        Ok(())
    }

    /// Sets the length to `len` (at most [`MAX_BLOB_LEN`]), zero-extending.
    fn truncate(&mut self, len: u64) {
        if len < self.image.len {
            let (index, tail) = locate(len);
            let keep = index + usize::from(tail != 0);
            if self.image.pages.len() > keep {
                self.image.pages.truncate(keep);
                self.low = self.low.min(keep);
            }
            if tail != 0 {
                if let Some(Some(page)) = self.image.pages.get_mut(index) {
                    Arc::make_mut(page)[tail..].fill(0);
                    self.mark(index);
                }
            }
        }
        self.image.len = len;
    }

    /// Makes `durable` hold this state's contents.
    fn publish(&mut self, durable: &mut Durable, version: u64, spares: &Spares) {
        let pages = &self.image.pages;
        if durable.version == self.base {
            let table = &mut durable.image.pages;
            table.truncate(self.low);
            table.resize(pages.len(), None);
            for &index in &self.dirty {
                if let (Some(slot), Some(page)) = (table.get_mut(index), pages.get(index)) {
                    if let Some(released) = std::mem::replace(slot, page.clone()) {
                        spares.give(released);
                    }
                }
            }
        } else {
            durable.image.pages.clone_from(pages);
        }
        durable.image.len = self.image.len;
        durable.version = version;
        self.base = version;
        self.low = pages.len();
        for index in self.dirty.drain(..) {
            if let Some(word) = self.marks.get_mut(index / 64) {
                *word = 0;
            }
        }
    }
}

/// What the clones of one [`Blob`] share.
struct Shared {
    core: Core,
    metrics: Arc<Metrics>,
    disk: Arc<Disk>,
    injector: Arc<Injector>,
    partition: String,
    name: Vec<u8>,
    /// Names this handle in the auditor.
    seq: u64,
    state: Mutex<Volatile>,
}

impl Shared {
    /// Auditor word for an operation at `offset` (offsets that matter are
    /// below 2^40, so the handle fits above them).
    fn word(&self, offset: u64) -> u64 {
        offset ^ self.seq << 40
    }

    fn faults(&self) -> StorageFaults {
        self.injector.storage(&self.partition)
    }

    /// Audits an injected fault about this handle.
    fn fault(&self, what: u64, offset: u64) {
        faults::audit(&self.core, what, &self.word(offset).to_le_bytes());
    }

    /// Publishes the volatile state (`sync` / `close`), unless an injected
    /// fault fails it with `error`.
    fn publish(&self, error: fn(String, String) -> Error) -> Result<(), Error> {
        let faults = self.faults();
        if faults::chance(&self.core, faults.sync) {
            self.fault(what::SYNC, 0);
            return Err(error(self.partition.clone(), hex(&self.name)));
        }
        let mut state = self.state.lock();
        let mut disk = self.disk.state.lock();
        let version = disk.version();
        let durable = disk.durable(&self.partition, &self.name)?;
        state.publish(durable, version, &self.disk.spares);
        match &mut state.unsynced {
            Some(changes) if faults.torn => changes.clear(),
            unsynced => *unsynced = faults.torn.then(Vec::new),
        }
        Ok(())
    }
}

impl Drop for Shared {
    /// The last clone is gone. With torn writes on, a prefix of what was
    /// never published reaches the durable image, as in a crash.
    fn drop(&mut self) {
        let state = self.state.get_mut();
        let Some(changes) = state.unsynced.take().filter(|c| !c.is_empty()) else {
            return;
        };
        let kept = faults::below(&self.core, changes.len() as u64 + 1) as usize;
        self.fault(what::TORN, kept as u64);
        if kept == 0 {
            return;
        }
        let mut disk = self.disk.state.lock();
        let version = disk.version();
        let Ok(durable) = disk.durable(&self.partition, &self.name) else {
            // Removed meanwhile: nothing to tear.
            return;
        };
        let mut torn = Volatile::new(durable.image.clone(), durable.version, false);
        for change in &changes[..kept] {
            match change {
                Change::Write(offset, data) => {
                    let end = offset + data.len() as u64;
                    // Succeeded once on the same image: cannot fail now.
                    let _ = torn.write(data, *offset, end, &self.disk.spares);
                }
                Change::Truncate(len) => torn.truncate(*len),
            }
        }
        torn.publish(durable, version, &self.disk.spares);
    }
}

/// Implementation of [`crate::Blob`] for the `deterministic` runtime.
///
/// Clones share one volatile state (like one file descriptor behind a
/// lock); `sync` and `close` publish it, so a later `open` sees it and it
/// survives `Context::recover()`.
pub struct Blob {
    shared: Arc<Shared>,
}

impl Clone for Blob {
    fn clone(&self) -> Self {
        self.shared.metrics.open_blobs.inc();
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        self.shared.metrics.open_blobs.dec();
    }
}

impl crate::Blob for Blob {
    async fn len(&self) -> Result<u64, Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::LEN, shared.seq, &[]);
        let len = shared.state.lock().image.len;
        Ok(len)
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let shared = &*self.shared;
        let size = buf.len() as u64;
        shared
            .core
            .audit(kind::READ, shared.word(offset), &size.to_le_bytes());
        let end = offset.checked_add(size).ok_or(Error::OffsetOverflow)?;
        let faults = shared.faults();
        {
            let state = shared.state.lock();
            if end > state.image.len {
                return Err(Error::BlobInsufficientLength);
            }
            if faults::chance(&shared.core, faults.read) {
                shared.fault(what::READ, offset);
                return Err(Error::ReadFailed);
            }
            state.image.read(buf, offset);
            if !buf.is_empty() && faults::chance(&shared.core, faults.corrupt) {
                let bit = faults::below(&shared.core, size * 8);
                let at = offset + bit / 8;
                // Only what came from the medium (a page this handle has
                // not changed) can be corrupt.
                if !state.is_dirty(locate(at).0) {
                    buf[(bit / 8) as usize] ^= 1 << (bit % 8);
                    shared.fault(what::CORRUPT, at);
                }
            }
        }
        shared.metrics.storage_reads.inc();
        shared.metrics.storage_read_bandwidth.inc_by(size);
        Ok(())
    }

    async fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::WRITE, shared.word(offset), buf);
        let size = buf.len() as u64;
        let faults = shared.faults();
        if faults::chance(&shared.core, faults.write) {
            shared.fault(what::WRITE, offset);
            return Err(Error::WriteFailed);
        }
        let mut offset = offset;
        if !buf.is_empty() && faults::chance(&shared.core, faults.misdirect) {
            let shift = (1 + faults::below(&shared.core, 8)) * SECTOR;
            let later = offset < shift || faults::below(&shared.core, 2) == 1;
            offset = if later {
                offset.saturating_add(shift)
            } else {
                offset - shift
            };
            shared.fault(what::MISDIRECT, offset);
        }
        let end = offset
            .checked_add(size)
            .filter(|end| *end <= MAX_BLOB_LEN)
            .ok_or(Error::OffsetOverflow)?;
        if !buf.is_empty() {
            let mut state = shared.state.lock();
            state.write(buf, offset, end, &shared.disk.spares)?;
            if let Some(changes) = &mut state.unsynced {
                changes.push(Change::Write(offset, buf.to_vec()));
            }
        }
        shared.metrics.storage_writes.inc();
        shared.metrics.storage_write_bandwidth.inc_by(size);
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::TRUNCATE, shared.word(len), &[]);
        if len > MAX_BLOB_LEN || faults::chance(&shared.core, shared.faults().truncate) {
            if len <= MAX_BLOB_LEN {
                shared.fault(what::TRUNCATE, len);
            }
            return Err(Error::BlobTruncateFailed(
                shared.partition.clone(),
                hex(&shared.name),
            ));
        }
        let mut state = shared.state.lock();
        state.truncate(len);
        if let Some(changes) = &mut state.unsynced {
            changes.push(Change::Truncate(len));
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::SYNC, shared.seq, &[]);
        shared.publish(Error::BlobSyncFailed)
    }

    async fn close(self) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::CLOSE, shared.seq, &[]);
        shared.publish(Error::BlobCloseFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (Volatile, Durable) {
        let volatile = Volatile {
            image: Image::default(),
            dirty: Vec::new(),
            marks: Vec::new(),
            low: 0,
            base: 1,
            unsynced: None,
        };
        let durable = Durable {
            image: Image::default(),
            version: 1,
        };
        (volatile, durable)
    }

    fn write(volatile: &mut Volatile, data: &[u8], offset: u64) {
        let end = offset + data.len() as u64;
        volatile
            .write(data, offset, end, &Spares::default())
            .unwrap();
    }

    /// Addresses of the pages of an image (`None` for a hole).
    fn pointers(image: &Image) -> Vec<Option<*const Page>> {
        image
            .pages
            .iter()
            .map(|page| page.as_ref().map(Arc::as_ptr))
            .collect()
    }

    #[test]
    fn publishing_shares_pages_and_copies_only_what_changed() {
        let (mut volatile, mut durable) = fresh();
        write(&mut volatile, &[1; 100 * PAGE], 0);
        assert_eq!(volatile.dirty.len(), 100);
        volatile.publish(&mut durable, 2, &Spares::default());
        assert!(volatile.dirty.is_empty());
        // After a publish both images hold the very same pages.
        assert_eq!(pointers(&volatile.image), pointers(&durable.image));
        let before = pointers(&durable.image);

        // Small writes to two pages: only those are copied and published.
        write(&mut volatile, b"x", 10);
        write(&mut volatile, b"yy", 50 * PAGE as u64 + 7);
        write(&mut volatile, b"z", 11);
        assert_eq!(volatile.dirty, vec![0, 50]);
        volatile.publish(&mut durable, 3, &Spares::default());
        let after = pointers(&durable.image);
        for (index, (old, new)) in before.iter().zip(&after).enumerate() {
            assert_eq!(old == new, index != 0 && index != 50, "page {index}");
        }
        assert_eq!(pointers(&volatile.image), after);
    }

    #[test]
    fn copy_on_write_keeps_the_durable_image() {
        let (mut volatile, mut durable) = fresh();
        write(&mut volatile, &[1; 10], 0);
        volatile.publish(&mut durable, 2, &Spares::default());
        write(&mut volatile, &[2; 3], 4);
        let mut buf = [0u8; 10];
        durable.image.read(&mut buf, 0);
        assert_eq!(buf, [1; 10]);
        volatile.image.read(&mut buf, 0);
        assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 1, 1, 1]);
    }

    #[test]
    fn gaps_and_extensions_allocate_no_pages() {
        let (mut volatile, _) = fresh();
        write(&mut volatile, b"far", 1 << 30);
        assert_eq!(volatile.image.pages.len(), (1 << 30) / PAGE + 1);
        assert_eq!(volatile.image.pages.iter().flatten().count(), 1);
        volatile.truncate(1 << 40);
        assert_eq!(volatile.image.pages.len(), (1 << 30) / PAGE + 1);
        let mut buf = [9u8; 5];
        volatile.image.read(&mut buf, (1 << 40) - 5);
        assert_eq!(buf, [0; 5]);
    }

    #[test]
    fn shrinking_zeroes_the_tail_of_the_last_page() {
        let (mut volatile, _) = fresh();
        write(&mut volatile, &[7; 2 * PAGE], 0);
        volatile.truncate(PAGE as u64 + 1);
        assert_eq!(volatile.image.pages.len(), 2);
        let last = volatile.image.pages[1].as_ref().unwrap();
        assert_eq!(last[0], 7);
        assert!(last[1..].iter().all(|byte| *byte == 0));
        volatile.truncate(PAGE as u64);
        assert_eq!(volatile.image.pages.len(), 1);
    }

    #[test]
    fn spans_split_at_page_boundaries() {
        let spans: Vec<_> = spans(PAGE as u64 - 2, PAGE + 4).collect();
        assert_eq!(
            spans,
            vec![
                (0, PAGE - 2..PAGE, 0..2),
                (1, 0..PAGE, 2..PAGE + 2),
                (2, 0..2, PAGE + 2..PAGE + 4),
            ]
        );
        assert_eq!(super::spans(5, 0).count(), 0);
    }

    #[test]
    fn released_pages_are_reused_and_read_right() {
        let spares = Spares::default();
        let (mut volatile, mut durable) = fresh();
        let write = |volatile: &mut Volatile, data: &[u8], offset: u64| {
            let end = offset + data.len() as u64;
            volatile.write(data, offset, end, &spares).unwrap();
        };
        write(&mut volatile, &[1; 3 * PAGE], 0);
        volatile.publish(&mut durable, 2, &spares);
        // Overwriting shared pages copies them; publishing releases the old
        // durable pages, which nothing else holds.
        write(&mut volatile, &[2; 2 * PAGE], 0);
        volatile.publish(&mut durable, 3, &spares);
        assert_eq!(spares.pages.lock().len(), 2);
        // A partial write takes a spare page and must carry the old bytes.
        write(&mut volatile, &[3; 10], PAGE as u64 + 5);
        assert_eq!(spares.pages.lock().len(), 1);
        let mut buf = vec![0u8; 3 * PAGE];
        volatile.image.read(&mut buf, 0);
        assert!(buf[..PAGE + 5].iter().all(|b| *b == 2));
        assert!(buf[PAGE + 5..PAGE + 15].iter().all(|b| *b == 3));
        assert!(buf[PAGE + 15..2 * PAGE].iter().all(|b| *b == 2));
        assert!(buf[2 * PAGE..].iter().all(|b| *b == 1));
        durable.image.read(&mut buf, 0);
        assert!(buf[..2 * PAGE].iter().all(|b| *b == 2), "durable untouched");
        // A page still shared is never kept as a spare.
        let shared = durable.image.pages[2].clone().unwrap();
        spares.give(shared);
        assert_eq!(spares.pages.lock().len(), 1);
    }
}
