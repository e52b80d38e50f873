//! The storage side of crash-state enumeration: [`Recorder`] watches a
//! disk's writes between syncs and, at each crash point, keeps what a crash
//! there could leave behind; [`Point::build`] makes the disk of one such
//! crash state.
//!
//! The disk model: a crash keeps the durable images, plus, for each page
//! written since its handle last published, the page as one of the writes
//! since then left it, or as it was durable (each page independently,
//! [`Persistence::Pages`]); or the durable images plus a prefix of the
//! writes in the order they were issued ([`Persistence::Ordered`]). A
//! blob's length after a crash is the length its handle had after the
//! latest write the state keeps, or its durable length if it keeps none.
//!
//! Each handle's writes are recorded as the page contents its own image
//! had after each write, so two handles with unsynced writes to one blob
//! combine page by page. Torn writes (`StorageFaults::torn`) of a dropped
//! handle reach the durable image as usual; the recorder still counts
//! them as unsynced, so later crash points may keep or drop them too.
//!
//! # Invariants
//! * Nothing here draws random numbers or audits: a recorded run is the
//!   same run as an unrecorded one.
//! * The recorder's lock is a leaf: it is taken while a handle's state (or
//!   the disk) is held, and never holds one itself.
//! * A built disk keeps the page-table invariants of `pages.rs`: no page
//!   past the one holding the last byte, zeros past the length.

use super::{
    disk::{Disk, Durable, Partitions},
    pages::{locate, Image, Page},
};
use crate::hex;
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{Hash, Hasher},
    sync::Arc,
};

/// What a crash may keep of the writes issued since the last sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Each written 4 KiB page reaches the disk, independently of the
    /// others, as any one of the writes since its handle last synced left
    /// it, or not at all (a page cache written back in any order).
    #[default]
    Pages,
    /// A prefix of the writes (and truncates), in the order they were
    /// issued (a disk that keeps write order).
    Ordered,
}

/// One unsynced write or truncate, numbered in issue order from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// Issue number, counted over the whole run from 1.
    pub number: u64,
    /// The blob's partition.
    pub partition: String,
    /// The blob's name, in lowercase hex.
    pub name: String,
    /// What was done.
    pub op: Op,
}

/// What an unsynced [`Write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `write_at` of `len` bytes at `offset`.
    Write {
        /// Where the write started.
        offset: u64,
        /// How many bytes it wrote.
        len: u64,
    },
    /// `truncate` to `len`.
    Truncate {
        /// The new length.
        len: u64,
    },
}

impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let blob = format!("{}/{}", self.partition, self.name);
        match self.op {
            Op::Write { offset, len } => write!(
                f,
                "#{} write {blob} bytes {offset}..{}",
                self.number,
                offset + len
            ),
            Op::Truncate { len } => write!(f, "#{} truncate {blob} to {len}", self.number),
        }
    }
}

/// A blob as a crash state sees it: its partition, name and identity.
type BlobKey = (String, Vec<u8>, u64);

/// A page as a write left it, and the blob's length then.
#[derive(Clone)]
struct Version {
    write: u64,
    handle: u64,
    content: Option<Arc<Page>>,
    len: u64,
}

/// One page written since its handle last published.
#[derive(Clone)]
pub(crate) struct Unit {
    blob: BlobKey,
    page: usize,
    versions: Vec<Version>,
}

#[derive(Default)]
struct Log {
    /// Every unsynced write, by number, until its handle publishes.
    writes: BTreeMap<u64, Write>,
    /// Versions of each unsynced page, in write order.
    pages: BTreeMap<(BlobKey, usize), Vec<Version>>,
    numbers: u64,
    points: Vec<Point>,
}

/// Records unsynced writes and crash points of one disk.
#[derive(Default)]
pub(crate) struct Recorder {
    log: Mutex<Log>,
}

/// The durable images of one crash state.
pub(crate) struct State(BTreeMap<String, BTreeMap<Vec<u8>, Image>>);

/// The durable images and unsynced pages at one crash point.
pub(crate) struct Point {
    /// Where the crash happens (e.g. `sync of journal/00`).
    pub(crate) label: String,
    durable: BTreeMap<String, BTreeMap<Vec<u8>, Image>>,
    ids: BTreeMap<(String, Vec<u8>), u64>,
    units: Vec<Unit>,
    writes: Vec<Write>,
}

impl Recorder {
    /// Records that handle `handle` of `blob` changed `pages` (a write or a
    /// truncate, `op`); `image` is the handle's image after the change.
    pub(super) fn change(
        &self,
        blob: (&str, &[u8], u64),
        handle: u64,
        op: Op,
        pages: std::ops::Range<usize>,
        image: &Image,
    ) {
        let mut log = self.log.lock();
        log.numbers += 1;
        let number = log.numbers;
        let (partition, name, id) = blob;
        log.writes.insert(
            number,
            Write {
                number,
                partition: partition.into(),
                name: hex(name),
                op,
            },
        );
        for page in pages {
            let version = Version {
                write: number,
                handle,
                content: image.pages.get(page).cloned().flatten(),
                len: image.len,
            };
            log.pages
                .entry(((partition.into(), name.into(), id), page))
                .or_default()
                .push(version);
        }
    }

    /// Handle `handle` published: its writes are durable now.
    pub(super) fn published(&self, handle: u64) {
        let mut log = self.log.lock();
        let mut gone = BTreeSet::new();
        log.pages.retain(|_, versions| {
            versions.retain(|version| {
                if version.handle == handle {
                    gone.insert(version.write);
                }
                version.handle != handle
            });
            !versions.is_empty()
        });
        for write in gone {
            log.writes.remove(&write);
        }
    }

    /// Keeps what a crash now could leave behind, as crash point `label`.
    pub(crate) fn crash_point(&self, disk: &Disk, label: String) {
        let (durable, ids) = snapshot(&disk.state.lock());
        let mut log = self.log.lock();
        let units = log
            .pages
            .iter()
            .map(|((blob, page), versions)| Unit {
                blob: blob.clone(),
                page: *page,
                versions: versions.clone(),
            })
            .collect();
        let writes = log.writes.values().cloned().collect();
        log.points.push(Point {
            label,
            durable,
            ids,
            units,
            writes,
        });
    }

    /// The crash points recorded so far, in order.
    pub(crate) fn take_points(&self) -> Vec<Point> {
        std::mem::take(&mut self.log.lock().points)
    }
}

type Snapshot = (
    BTreeMap<String, BTreeMap<Vec<u8>, Image>>,
    BTreeMap<(String, Vec<u8>), u64>,
);

/// The durable images of `disk` (sharing their pages) and blob identities.
fn snapshot(disk: &Partitions) -> Snapshot {
    let mut ids = BTreeMap::new();
    let durable = disk
        .map
        .iter()
        .map(|(partition, blobs)| {
            let blobs = blobs
                .iter()
                .map(|(name, durable)| {
                    ids.insert((partition.clone(), name.clone()), durable.id);
                    (name.clone(), durable.image.clone())
                })
                .collect();
            (partition.clone(), blobs)
        })
        .collect();
    (durable, ids)
}

impl Point {
    /// How many choices each unsynced page has (`Pages`), or how many
    /// prefixes the writes have (`Ordered`, as one entry).
    pub(crate) fn radices(&self, persistence: Persistence) -> Vec<usize> {
        match persistence {
            Persistence::Pages => self.units.iter().map(|u| u.versions.len() + 1).collect(),
            Persistence::Ordered => vec![self.writes.len() + 1],
        }
    }

    /// For each unsynced page, the index of the version `choice` keeps
    /// (0: none).
    fn picks(&self, persistence: Persistence, choice: &[usize]) -> Vec<usize> {
        match persistence {
            Persistence::Pages => choice.to_vec(),
            Persistence::Ordered => {
                let kept: BTreeSet<u64> = self
                    .writes
                    .iter()
                    .take(choice.first().copied().unwrap_or(0))
                    .map(|w| w.number)
                    .collect();
                self.units
                    .iter()
                    .map(|unit| {
                        unit.versions
                            .iter()
                            .rposition(|v| kept.contains(&v.write))
                            .map_or(0, |i| i + 1)
                    })
                    .collect()
            }
        }
    }

    /// The writes a state keeps (the ones whose page versions it holds, or
    /// the prefix) and the ones it loses, in issue order.
    pub(crate) fn kept(
        &self,
        persistence: Persistence,
        choice: &[usize],
    ) -> (Vec<Write>, Vec<Write>) {
        let kept: BTreeSet<u64> = match persistence {
            Persistence::Ordered => self
                .writes
                .iter()
                .take(choice.first().copied().unwrap_or(0))
                .map(|w| w.number)
                .collect(),
            Persistence::Pages => self
                .units
                .iter()
                .zip(choice)
                .filter(|(_, pick)| **pick > 0)
                .map(|(unit, pick)| unit.versions[pick - 1].write)
                .collect(),
        };
        self.writes
            .iter()
            .cloned()
            .partition(|w| kept.contains(&w.number))
    }

    /// The durable images of the crash state `choice`, and a digest of
    /// them that tells distinct states apart.
    pub(crate) fn build(&self, persistence: Persistence, choice: &[usize]) -> (State, u64) {
        let picks = self.picks(persistence, choice);
        let mut images = self.durable.clone();
        // The latest kept write of each blob sets its length.
        let mut lengths: BTreeMap<&BlobKey, (u64, u64)> = BTreeMap::new();
        for (unit, pick) in self.units.iter().zip(&picks) {
            let Some(version) = pick.checked_sub(1).map(|i| &unit.versions[i]) else {
                continue;
            };
            let (partition, name, id) = &unit.blob;
            // A blob removed (or replaced) since is not on the disk.
            if self.ids.get(&(partition.clone(), name.clone())) != Some(id) {
                continue;
            }
            let Some(image) = images.get_mut(partition).and_then(|b| b.get_mut(name)) else {
                continue;
            };
            if image.pages.len() <= unit.page {
                image.pages.resize(unit.page + 1, None);
            }
            image.pages[unit.page] = version.content.clone();
            let latest = lengths.entry(&unit.blob).or_insert((0, 0));
            if version.write > latest.0 {
                *latest = (version.write, version.len);
            }
        }
        for ((partition, name, _), (_, len)) in lengths {
            if let Some(image) = images.get_mut(partition).and_then(|b| b.get_mut(name)) {
                set_len(image, len);
            }
        }
        let digest = digest(&images);
        (State(images), digest)
    }
}

/// Sets `image`'s length to `len`, dropping pages past it and zeroing the
/// rest of its last page.
fn set_len(image: &mut Image, len: u64) {
    let (index, tail) = locate(len);
    let keep = index + usize::from(tail != 0);
    image.pages.truncate(keep);
    if tail != 0 {
        if let Some(Some(page)) = image.pages.get_mut(index) {
            if page[tail..].iter().any(|b| *b != 0) {
                Arc::make_mut(page)[tail..].fill(0);
            }
        }
    }
    image.len = len;
}

/// A digest of the contents of every blob (names, lengths and bytes).
fn digest(images: &BTreeMap<String, BTreeMap<Vec<u8>, Image>>) -> u64 {
    // Only compared within one process: `DefaultHasher::new` is the same
    // hasher in every call.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (partition, blobs) in images {
        partition.hash(&mut hasher);
        for (name, image) in blobs {
            name.hash(&mut hasher);
            image.len.hash(&mut hasher);
            for (index, page) in image.pages.iter().enumerate() {
                if let Some(page) = page {
                    if page.iter().any(|b| *b != 0) {
                        index.hash(&mut hasher);
                        page[..].hash(&mut hasher);
                    }
                }
            }
        }
    }
    hasher.finish()
}

impl Disk {
    /// Makes `images` this (empty) disk's durable images, for a run that
    /// recovers from a crash state.
    pub(crate) fn install(&self, images: State) {
        let mut state = self.state.lock();
        for (partition, blobs) in images.0 {
            for (name, image) in blobs {
                let durable: &mut Durable = state.open(&partition, &name);
                durable.image = image;
            }
            // An empty partition still exists.
            state.map.entry(partition).or_default();
        }
    }

    /// Turns on recording for crash-state enumeration.
    pub(crate) fn record(&self) -> Arc<Recorder> {
        self.recorder.get_or_init(Arc::default).clone()
    }

    /// The recorder, when crash states are being enumerated.
    pub(crate) fn recorder(&self) -> Option<&Arc<Recorder>> {
        self.recorder.get()
    }
}

/// Pages `write_at(offset, len)` changes (`len` > 0).
pub(super) fn written(offset: u64, len: u64) -> std::ops::Range<usize> {
    locate(offset).0..locate(offset + len - 1).0 + 1
}

/// Pages `truncate` from `old` to `new` bytes (with `table` pages before)
/// changes: the ones it cuts or zeroes, or the one holding the new last
/// byte when it grows.
pub(super) fn truncated(old: u64, new: u64, table: usize) -> std::ops::Range<usize> {
    if new < old {
        locate(new).0..table.max(locate(new).0 + 1)
    } else if new > 0 {
        let last = locate(new - 1).0;
        last..last + 1
    } else {
        0..0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deterministic::storage::pages::PAGE;

    #[test]
    fn lengths_zero_the_tail_and_drop_pages() {
        let mut image = Image {
            pages: vec![Some(Arc::new([1; PAGE])), Some(Arc::new([1; PAGE]))],
            len: 2 * PAGE as u64,
        };
        set_len(&mut image, 10);
        assert_eq!(image.pages.len(), 1);
        let page = image.pages[0].as_ref().unwrap();
        assert!(page[..10].iter().all(|b| *b == 1));
        assert!(page[10..].iter().all(|b| *b == 0));
        assert_eq!(truncated(2 * PAGE as u64, 10, 2), 0..2);
        assert_eq!(truncated(0, PAGE as u64 + 1, 0), 1..2);
        assert_eq!(written(PAGE as u64 - 1, 2), 0..2);
    }
}
