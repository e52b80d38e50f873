//! The simulated disk: a partition map of blobs with durable and volatile
//! images, and `Storage` for the deterministic `Context` (`open`, `remove`,
//! `scan`).
//!
//! Files: `pages.rs` (page tables and spare pages), `disk.rs` (the durable
//! partition map), `volatile.rs` (one handle's unsynced image), `blob.rs`
//! (the [`Blob`] handle and its operations), `crash.rs` (what a crash at a
//! given point may leave on the disk, for crash-state enumeration).
//!
//! [`Disk`] maps a partition name to its blobs, and each blob name to its
//! durable image: the contents the last `sync` or `close` published, which is
//! all that survives `Context::recover()`. Every `open` gets its own
//! volatile copy of that image, shared by the clones of the returned
//! [`Blob`]; `write_at` and `truncate` change only the volatile copy until
//! the handle publishes it.
//!
//! A handle is tied to the blob it opened, not to its name: `open` gives
//! each blob it creates an identity, the handle keeps it, and `remove` ends
//! it. A handle whose blob was removed behaves as a descriptor of an
//! unlinked file does on the tokio backend: `len`, `read_at`, `write_at`
//! and `truncate` keep working on its own copy, while `sync` and `close`
//! fail (`BlobMissing`, or `PartitionMissing` while the partition does not
//! exist) and a crash tears its unsynced writes into nothing, even when a
//! new blob has taken the name.
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
//! * A handle publishes (by `sync`, `close` or a torn crash) only to the
//!   blob whose identity it holds; identities are never reused, so a
//!   removed blob is never published to, and `recover()` sees the durable
//!   images of live blobs only.
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
//! [`StorageFaults`](super::StorageFaults) (one atomic load while none is configured) and may
//! fail instead, changing nothing. Reads may flip one bit of what they
//! return when it comes from a page this handle has not changed (synced
//! data), writes may land whole sectors off target. With `torn`, a handle
//! also remembers its unsynced writes and truncates in order; when its last
//! clone goes away without publishing them (its task was aborted, or its
//! runtime ended: a crash), a prefix of them chosen by the seed is
//! published as if it had reached the disk before the power went.

mod blob;
mod crash;
mod disk;
mod pages;
mod volatile;

pub use blob::Blob;
pub(crate) use crash::Point;
pub use crash::{Op, Persistence, Write};
pub(crate) use disk::Disk;

use super::{
    auditor::kind,
    faults::{self, what},
};
use crate::{hex, Error};
use blob::Shared;
use parking_lot::Mutex;
use std::{collections::BTreeMap, sync::Arc};
use volatile::Volatile;

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
        let open_error = format_args!("open error in {partition}");
        if runtime
            .faults
            .decide(&runtime.core, self.ip, open_error, faults.open)
            .is_some()
        {
            let key = blob_key(partition, name);
            faults::audit(&runtime.core, what::OPEN, &key);
            return Err(Error::BlobOpenFailed(partition.into(), hex(name)));
        }
        let (seq, id, image, base) = {
            let mut disk = runtime.storage.state.lock();
            let seq = disk.handles;
            disk.handles += 1;
            let durable = disk.open(partition, name);
            (seq, durable.id, durable.image.clone(), durable.version)
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
                ip: self.ip,
                partition: partition.into(),
                name: name.into(),
                id,
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
        let p = runtime.faults.storage(partition).remove;
        let remove_error = format_args!("remove error in {partition}");
        if runtime
            .faults
            .decide(&runtime.core, self.ip, remove_error, p)
            .is_some()
        {
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
