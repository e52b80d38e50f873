//! [`Blob`]: a handle on one opened blob, and what its clones share.
//!
//! # Invariants
//! * Clones share one volatile state and one blob identity (like one file
//!   descriptor behind a lock); `sync` and `close` publish it to the blob
//!   with that identity, never to a later blob of the same name: once the
//!   blob is removed they fail with `BlobMissing` (`PartitionMissing` while
//!   the partition does not exist), as tokio's `sync` of an unlinked file
//!   does. The other operations work on the handle's own copy regardless,
//!   as reads and writes through a descriptor of an unlinked file do.
//! * Every operation is folded into the auditor, writes with their payload;
//!   the handle is named in it by the sequence number `open` gave it.
//! * Lock order: a handle's state, then the disk.
//! * With torn writes on, the last clone to go away without publishing
//!   publishes a prefix of its unsynced changes chosen by the seed, as if
//!   they had reached the disk before the power went; if its blob was
//!   removed, the prefix is still drawn (so the seed's stream of draws does
//!   not depend on it) but lands nowhere.

use super::{
    crash::{self, Op},
    disk::Disk,
    pages::locate,
    volatile::{Change, Volatile},
    MAX_BLOB_LEN,
};
use crate::{
    deterministic::{
        auditor::kind,
        decision::Fault,
        faults::{self, what, Injector, StorageFaults, SECTOR},
    },
    hex,
    metrics::IoMetrics,
    Error,
};
use commonware_executor::Core;
use parking_lot::Mutex;
use std::{net::IpAddr, sync::Arc};

/// What the clones of one [`Blob`] share.
pub(super) struct Shared {
    pub(super) core: Core,
    pub(super) metrics: Arc<IoMetrics>,
    pub(super) disk: Arc<Disk>,
    pub(super) injector: Arc<Injector>,
    /// The node that opened the handle (the lane its faults are drawn on).
    pub(super) ip: IpAddr,
    pub(super) partition: String,
    pub(super) name: Vec<u8>,
    /// Identity of the blob this handle opened: the only one it publishes to.
    pub(super) id: u64,
    /// Names this handle in the auditor.
    pub(super) seq: u64,
    pub(super) state: Mutex<Volatile>,
}

impl Shared {
    /// Auditor word for an operation at `offset` (offsets that matter are
    /// below 2^40, so the handle fits above them).
    fn word(&self, offset: u64) -> u64 {
        offset ^ self.seq << 40
    }

    /// The blob this handle opened, as the crash recorder names it.
    fn blob(&self) -> (&str, &[u8], u64) {
        (&self.partition, &self.name, self.id)
    }

    fn faults(&self) -> StorageFaults {
        self.injector.storage(&self.partition)
    }

    /// Asks whether the storage fault `kind` (e.g. `write error`) fires
    /// on this handle's partition, with probability `p`.
    fn decide(&self, kind: &str, p: f64) -> Option<Fault> {
        let partition = &self.partition;
        let name = format_args!("{kind} in {partition}");
        self.injector.decide(&self.core, self.ip, name, p)
    }

    /// Audits an injected fault about this handle.
    fn audit_fault(&self, what: u64, offset: u64) {
        faults::audit(&self.core, what, &self.word(offset).to_le_bytes());
    }

    /// Publishes the volatile state (`sync` / `close`), unless an injected
    /// fault fails it with `error`.
    /// `op` names the operation (`sync` or `close`) at a crash point.
    fn publish(&self, op: &str, error: fn(String, String) -> Error) -> Result<(), Error> {
        if let Some(recorder) = self.disk.recorder() {
            let label = format!("{op} of {}/{}", self.partition, hex(&self.name));
            recorder.crash_point(&self.disk, label);
        }
        let faults = self.faults();
        if self.decide("sync error", faults.sync).is_some() {
            self.audit_fault(what::SYNC, 0);
            return Err(error(self.partition.clone(), hex(&self.name)));
        }
        let mut state = self.state.lock();
        let mut disk = self.disk.state.lock();
        let version = disk.version();
        let durable = disk.durable(&self.partition, &self.name, self.id)?;
        state.publish(durable, version, &self.disk.spares);
        if let Some(recorder) = self.disk.recorder() {
            recorder.published(self.seq);
        }
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
        // Always a tear, and still a decision a shrinker can remove (then
        // nothing unsynced survives, as without torn writes).
        let kept = self
            .decide("torn write", 1.0)
            .map_or(0, |mut tear| tear.below(changes.len() as u64 + 1) as usize);
        self.audit_fault(what::TORN, kept as u64);
        if kept == 0 {
            return;
        }
        let mut disk = self.disk.state.lock();
        let version = disk.version();
        let Ok(durable) = disk.durable(&self.partition, &self.name, self.id) else {
            // The blob was removed: its writes tear into nothing, whatever
            // has taken its name since.
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
/// survives `Context::recover()`. After its blob is removed a handle keeps
/// its own contents but can publish them nowhere: `sync` and `close` fail.
pub struct Blob {
    pub(super) shared: Arc<Shared>,
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
            if shared.decide("read error", faults.read).is_some() {
                shared.audit_fault(what::READ, offset);
                return Err(Error::ReadFailed);
            }
            state.image.read(buf, offset);
            let flip = (!buf.is_empty())
                .then(|| shared.decide("bit flip", faults.corrupt))
                .flatten();
            if let Some(mut flip) = flip {
                let bit = flip.below(size * 8);
                let at = offset + bit / 8;
                // Only what came from the medium (a page this handle has
                // not changed) can be corrupt.
                if !state.is_dirty(locate(at).0) {
                    buf[(bit / 8) as usize] ^= 1 << (bit % 8);
                    shared.audit_fault(what::CORRUPT, at);
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
        if shared.decide("write error", faults.write).is_some() {
            shared.audit_fault(what::WRITE, offset);
            return Err(Error::WriteFailed);
        }
        let mut offset = offset;
        let misdirect = (!buf.is_empty())
            .then(|| shared.decide("misdirected write", faults.misdirect))
            .flatten();
        if let Some(mut misdirect) = misdirect {
            let shift = (1 + misdirect.below(8)) * SECTOR;
            let later = offset < shift || misdirect.below(2) == 1;
            offset = if later {
                offset.saturating_add(shift)
            } else {
                offset - shift
            };
            shared.audit_fault(what::MISDIRECT, offset);
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
            if let Some(recorder) = shared.disk.recorder() {
                let op = Op::Write { offset, len: size };
                let pages = crash::written(offset, size);
                recorder.change(shared.blob(), shared.seq, op, pages, &state.image);
            }
        }
        shared.metrics.storage_writes.inc();
        shared.metrics.storage_write_bandwidth.inc_by(size);
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::TRUNCATE, shared.word(len), &[]);
        if len > MAX_BLOB_LEN
            || shared
                .decide("truncate error", shared.faults().truncate)
                .is_some()
        {
            if len <= MAX_BLOB_LEN {
                shared.audit_fault(what::TRUNCATE, len);
            }
            return Err(Error::BlobTruncateFailed(
                shared.partition.clone(),
                hex(&shared.name),
            ));
        }
        let mut state = shared.state.lock();
        let (old, table) = (state.image.len, state.image.pages.len());
        state.truncate(len);
        if let Some(recorder) = shared.disk.recorder() {
            let pages = crash::truncated(old, len, table);
            let op = Op::Truncate { len };
            recorder.change(shared.blob(), shared.seq, op, pages, &state.image);
        }
        if let Some(changes) = &mut state.unsynced {
            changes.push(Change::Truncate(len));
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::SYNC, shared.seq, &[]);
        shared.publish("sync", Error::BlobSyncFailed)
    }

    async fn close(self) -> Result<(), Error> {
        let shared = &*self.shared;
        shared.core.audit(kind::CLOSE, shared.seq, &[]);
        shared.publish("close", Error::BlobCloseFailed)
    }
}
