//! The durable side of the simulated disk: [`Disk`], the partition map
//! from partition and blob name to what `sync` or `close` last published.
//!
//! # Invariants
//! * The map is a `BTreeMap`: `scan` is sorted and nothing observable
//!   depends on hash order.
//! * Every blob `open` creates gets an identity no other blob of this disk
//!   (or of the disk it was forked from) had. A handle keeps the identity
//!   of the blob it opened and reaches a durable image only through it, so
//!   once that blob is removed the handle reaches nothing, even when a new
//!   blob takes its name.
//! * Every publish gives its blob a version no other publish of this disk
//!   (or of the disk it was forked from) had, so a handle can tell whether
//!   the durable image is still the one it started from.
//! * A fork shares pages with its origin but no state: handles of the old
//!   runtime cannot change the new one's disk.

use super::{
    crash::Recorder,
    pages::{Image, Spares},
};
use crate::{hex, Error};
use parking_lot::Mutex;
use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
};

/// What `sync` or `close` last published for one blob.
pub(super) struct Durable {
    pub(super) image: Image,
    /// The blob's identity, given when it was created.
    pub(super) id: u64,
    /// Changes on every publish (unique across the disk).
    pub(super) version: u64,
}

/// Partitions and the counters that name things deterministically.
#[derive(Default)]
pub(super) struct Partitions {
    pub(super) map: BTreeMap<String, BTreeMap<Vec<u8>, Durable>>,
    /// Last version handed out.
    versions: u64,
    /// Last blob identity handed out.
    ids: u64,
    /// Handles opened so far.
    pub(super) handles: u64,
}

impl Partitions {
    pub(super) fn version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    /// The durable image of `name` in `partition`, creating the partition
    /// and an empty blob with a new identity if they do not exist.
    pub(super) fn open(&mut self, partition: &str, name: &[u8]) -> &mut Durable {
        let version = self.version();
        let ids = &mut self.ids;
        let blobs = self.map.entry(partition.into()).or_default();
        blobs.entry(name.into()).or_insert_with(|| {
            *ids += 1;
            Durable {
                image: Image::default(),
                id: *ids,
                version,
            }
        })
    }

    /// The durable image of blob `id`, which a handle opened as `name` in
    /// `partition`. Once that blob is removed the error is the one the tokio
    /// backend's `sync` of an unlinked file gives: `PartitionMissing` while
    /// the partition does not exist, `BlobMissing` while it does (whether
    /// or not a new blob has taken the name).
    pub(super) fn durable(
        &mut self,
        partition: &str,
        name: &[u8],
        id: u64,
    ) -> Result<&mut Durable, Error> {
        self.map
            .get_mut(partition)
            .ok_or_else(|| Error::PartitionMissing(partition.into()))?
            .get_mut(name)
            .filter(|durable| durable.id == id)
            .ok_or_else(|| Error::BlobMissing(partition.into(), hex(name)))
    }
}

/// The durable state of all blobs: what outlives a runtime instance.
#[derive(Default)]
pub(crate) struct Disk {
    pub(super) state: Mutex<Partitions>,
    pub(super) spares: Spares,
    /// Set only while crash states are enumerated (`crash.rs`): one
    /// unset check per write and publish otherwise.
    pub(super) recorder: OnceLock<Arc<Recorder>>,
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
                            id: durable.id,
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
                ids: state.ids,
                handles: state.handles,
            }),
            spares: Spares::default(),
            recorder: OnceLock::new(),
        }
    }
}
