//! The durable side of the simulated disk: [`Disk`], the partition map
//! from partition and blob name to what `sync` or `close` last published.
//!
//! # Invariants
//! * The map is a `BTreeMap`: `scan` is sorted and nothing observable
//!   depends on hash order.
//! * Every publish gives its blob a version no other publish of this disk
//!   (or of the disk it was forked from) had, so a handle can tell whether
//!   the durable image is still the one it started from.
//! * A fork shares pages with its origin but no state: handles of the old
//!   runtime cannot change the new one's disk.

use super::pages::{Image, Spares};
use crate::{hex, Error};
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// What `sync` or `close` last published for one blob.
pub(super) struct Durable {
    pub(super) image: Image,
    /// Changes on every publish (unique across the disk).
    pub(super) version: u64,
}

/// Partitions and the counters that name things deterministically.
#[derive(Default)]
pub(super) struct Partitions {
    pub(super) map: BTreeMap<String, BTreeMap<Vec<u8>, Durable>>,
    /// Last version handed out.
    versions: u64,
    /// Handles opened so far.
    pub(super) handles: u64,
}

impl Partitions {
    pub(super) fn version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    pub(super) fn durable(&mut self, partition: &str, name: &[u8]) -> Result<&mut Durable, Error> {
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
    pub(super) state: Mutex<Partitions>,
    pub(super) spares: Spares,
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
