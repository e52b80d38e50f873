//! Log storage: a node's durable state on a [`Storage`] partition.
//!
//! Two blobs per node. `log` holds the replicated log as fixed-size
//! records (`term`, `value`, checksum), record `i` at offset `(i - 1) *
//! RECORD`. `vote` holds the hard state (current term and vote) in two
//! alternating slots, each with a version and a checksum.
//!
//! # Invariants
//! * What [`Log::open`] returns is a prefix of what was written: loading
//!   stops at the first record whose checksum fails (a torn or lost tail)
//!   and truncates the blob there. The checksum covers the record's index,
//!   so a record written at the wrong offset does not load either.
//! * A [`Log::append`] with `sync` is durable when it returns: a node
//!   acknowledges entries only after that (unless the `skip-fsync` bug is
//!   planted, which acknowledges after the write alone).
//! * [`HardState`] updates are atomic: a store writes the slot *not*
//!   holding the current state and syncs, so a torn store leaves the
//!   previous state loadable. Loading picks the valid slot with the highest
//!   version.

use crate::wire::Entry;
use commonware_runtime::{Blob, Error, Storage};

/// Bytes of one log record: term, value, checksum.
const RECORD: usize = 8 + 8 + 4;

/// Bytes of one hard-state slot: version, term, vote, checksum.
const SLOT: usize = 8 + 8 + 8 + 4;

/// How an absent vote is stored.
const NO_VOTE: u64 = u64::MAX;

/// A 32-bit checksum of a record's fields (a 64-bit mix, folded).
fn checksum(words: &[u64]) -> u32 {
    let mut hash = 0x9e37_79b9_7f4a_7c15u64;
    for &word in words {
        hash = (hash ^ word).wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 32;
    }
    (hash ^ hash >> 29) as u32
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn check(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads a whole blob.
async fn read_all<B: Blob>(blob: &B) -> Result<Vec<u8>, Error> {
    let len = blob.len().await?;
    let len = usize::try_from(len).map_err(|_| Error::OffsetOverflow)?;
    let mut bytes = vec![0; len];
    blob.read_at(&mut bytes, 0).await?;
    Ok(bytes)
}

/// The replicated log: an in-memory copy of the entries, mirrored to a blob.
pub struct Log<B: Blob> {
    blob: B,
    entries: Vec<Entry>,
    /// Whether opening it dropped a torn or lost tail.
    repaired: bool,
}

impl<B: Blob> Log<B> {
    /// Opens (or creates) the log in `partition`, dropping any torn tail.
    pub async fn open<S: Storage<B>>(storage: &S, partition: &str) -> Result<Self, Error> {
        let blob = storage.open(partition, b"log").await?;
        let bytes = read_all(&blob).await?;
        let mut entries = Vec::with_capacity(bytes.len() / RECORD);
        for record in bytes.chunks_exact(RECORD) {
            let index = entries.len() as u64 + 1;
            let (term, value) = (word(record, 0), word(record, 8));
            if check(record, 16) != checksum(&[index, term, value]) {
                break;
            }
            entries.push(Entry { term, value });
        }
        let valid = (entries.len() * RECORD) as u64;
        let repaired = valid != bytes.len() as u64;
        if repaired {
            blob.truncate(valid).await?;
            blob.sync().await?;
        }
        Ok(Self {
            blob,
            entries,
            repaired,
        })
    }

    /// Whether opening the log dropped a torn or lost tail.
    pub fn repaired(&self) -> bool {
        self.repaired
    }

    /// Index of the last entry (0 when empty).
    pub fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Term of the last entry (0 when empty).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |entry| entry.term)
    }

    /// Term of the entry at `index`: `Some(0)` for index 0, `None` past the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(0),
            _ => self.get(index).map(|entry| entry.term),
        }
    }

    /// The entry at `index` (1-based).
    pub fn get(&self, index: u64) -> Option<Entry> {
        let slot = usize::try_from(index.checked_sub(1)?).ok()?;
        self.entries.get(slot).copied()
    }

    /// Up to `max` entries starting at `index` (1-based).
    pub fn from(&self, index: u64, max: usize) -> &[Entry] {
        let start = usize::try_from(index.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        &self.entries[start..end]
    }

    /// Places `entries` right after index `after`, the way a follower must:
    /// entries already present with the same term are kept, the first one
    /// that differs cuts the log there, and the rest is appended. Entries
    /// that would leave a gap (`after` past the end) are ignored. With
    /// `sync`, the result is durable on return. Returns the index of the
    /// last of `entries` now in the log.
    pub async fn append(
        &mut self,
        after: u64,
        entries: &[Entry],
        sync: bool,
    ) -> Result<u64, Error> {
        let last = after + entries.len() as u64;
        if after > self.last_index() {
            return Ok(self.last_index());
        }
        let mut fresh = entries;
        let mut index = after + 1;
        while let Some((entry, rest)) = fresh.split_first() {
            match self.term(index) {
                Some(term) if term == entry.term => {
                    fresh = rest;
                    index += 1;
                }
                Some(_) => {
                    self.entries.truncate((index - 1) as usize);
                    self.blob.truncate((index - 1) * RECORD as u64).await?;
                    break;
                }
                None => break,
            }
        }
        if fresh.is_empty() {
            return Ok(last);
        }
        let mut bytes = Vec::with_capacity(fresh.len() * RECORD);
        for (offset, entry) in fresh.iter().enumerate() {
            let index = index + offset as u64;
            bytes.extend_from_slice(&entry.term.to_le_bytes());
            bytes.extend_from_slice(&entry.value.to_le_bytes());
            bytes.extend_from_slice(&checksum(&[index, entry.term, entry.value]).to_le_bytes());
        }
        self.blob
            .write_at(&bytes, (index - 1) * RECORD as u64)
            .await?;
        self.entries.extend_from_slice(fresh);
        if sync {
            self.blob.sync().await?;
        }
        Ok(last)
    }

    /// Makes every write so far durable.
    pub async fn sync(&self) -> Result<(), Error> {
        self.blob.sync().await
    }
}

/// The state a node must never forget once it has acted on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// Who this node voted for in `term`, if anyone.
    pub vote: Option<u64>,
}

/// The durable home of a [`HardState`].
pub struct Vote<B: Blob> {
    blob: B,
    version: u64,
    state: HardState,
}

impl<B: Blob> Vote<B> {
    /// Opens (or creates) the hard state in `partition`.
    pub async fn open<S: Storage<B>>(storage: &S, partition: &str) -> Result<Self, Error> {
        let blob = storage.open(partition, b"vote").await?;
        let bytes = read_all(&blob).await?;
        let mut best = (0, HardState::default());
        for slot in bytes.chunks_exact(SLOT).take(2) {
            let (version, term, vote) = (word(slot, 0), word(slot, 8), word(slot, 16));
            if check(slot, 24) == checksum(&[version, term, vote]) && version > best.0 {
                let vote = (vote != NO_VOTE).then_some(vote);
                best = (version, HardState { term, vote });
            }
        }
        Ok(Self {
            blob,
            version: best.0,
            state: best.1,
        })
    }

    /// The current hard state.
    pub fn state(&self) -> HardState {
        self.state
    }

    /// Durably replaces the hard state (always synced: the bug under test
    /// is in the log, not here).
    pub async fn store(&mut self, state: HardState) -> Result<(), Error> {
        let version = self.version + 1;
        let vote = state.vote.unwrap_or(NO_VOTE);
        let mut slot = [0; SLOT];
        slot[0..8].copy_from_slice(&version.to_le_bytes());
        slot[8..16].copy_from_slice(&state.term.to_le_bytes());
        slot[16..24].copy_from_slice(&vote.to_le_bytes());
        slot[24..28].copy_from_slice(&checksum(&[version, state.term, vote]).to_le_bytes());
        let offset = (version % 2) * SLOT as u64;
        self.blob.write_at(&slot, offset).await?;
        self.blob.sync().await?;
        self.version = version;
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_runtime::{
        deterministic::{Context, Executor},
        Runner,
    };
    use std::future::Future;

    const P: &str = "node0";

    fn entry(term: u64, value: u64) -> Entry {
        Entry { term, value }
    }

    fn run<F: Future<Output = ()> + Send + 'static>(test: impl FnOnce(Context) -> F) {
        let (runner, context, _) = Executor::default();
        runner.start(test(context));
    }

    async fn entries(context: &Context) -> Vec<Entry> {
        let log = Log::open(context, P).await.unwrap();
        (1..=log.last_index())
            .map(|i| log.get(i).unwrap())
            .collect()
    }

    #[test]
    fn synced_appends_survive_and_unsynced_do_not() {
        run(|context| async move {
            let mut log = Log::open(&context, P).await.unwrap();
            assert_eq!(
                log.append(0, &[entry(1, 1), entry(1, 2)], true).await,
                Ok(2)
            );
            assert_eq!(log.append(2, &[entry(1, 3)], false).await, Ok(3));
            assert_eq!((log.last_index(), log.last_term()), (3, 1));
            // A new open sees what a reboot would: the synced prefix.
            assert_eq!(entries(&context).await, [entry(1, 1), entry(1, 2)]);
            log.sync().await.unwrap();
            assert_eq!(entries(&context).await.len(), 3);
        });
    }

    #[test]
    fn append_keeps_matches_cuts_conflicts_and_ignores_gaps() {
        run(|context| async move {
            let mut log = Log::open(&context, P).await.unwrap();
            let three = [entry(1, 1), entry(1, 2), entry(1, 3)];
            log.append(0, &three, true).await.unwrap();
            // A stale, shorter copy of what is there changes nothing.
            assert_eq!(log.append(0, &three[..1], true).await, Ok(1));
            assert_eq!(log.last_index(), 3);
            // A gap is refused.
            assert_eq!(log.append(5, &[entry(2, 9)], true).await, Ok(3));
            assert_eq!(log.last_index(), 3);
            // A conflict at index 2 cuts the log there.
            assert_eq!(
                log.append(1, &[entry(1, 2), entry(2, 7)], true).await,
                Ok(3)
            );
            assert_eq!(log.append(1, &[entry(3, 8)], true).await, Ok(2));
            assert_eq!(entries(&context).await, [entry(1, 1), entry(3, 8)]);
            assert_eq!(log.term(0), Some(0));
            assert_eq!(log.term(3), None);
            assert_eq!(log.from(2, 10), [entry(3, 8)]);
            assert_eq!(log.from(9, 10), []);
        });
    }

    #[test]
    fn torn_and_misdirected_records_end_the_log() {
        run(|context| async move {
            let mut log = Log::open(&context, P).await.unwrap();
            log.append(0, &[entry(1, 1), entry(1, 2), entry(1, 3)], true)
                .await
                .unwrap();
            let blob = context.open(P, b"log").await.unwrap();
            // Record 1's bytes written over record 3's place: wrong index.
            let mut first = [0; RECORD];
            blob.read_at(&mut first, 0).await.unwrap();
            blob.write_at(&first, 2 * RECORD as u64).await.unwrap();
            // And half a record after it: a torn append.
            blob.write_at(&first[..7], 3 * RECORD as u64).await.unwrap();
            blob.sync().await.unwrap();
            assert_eq!(entries(&context).await, [entry(1, 1), entry(1, 2)]);
            // Loading cut the bad tail off the blob for good.
            let blob = context.open(P, b"log").await.unwrap();
            assert_eq!(blob.len().await, Ok(2 * RECORD as u64));
        });
    }

    #[test]
    fn hard_state_survives_a_torn_store() {
        run(|context| async move {
            let mut vote = Vote::open(&context, P).await.unwrap();
            assert_eq!(vote.state(), HardState::default());
            let first = HardState {
                term: 3,
                vote: Some(2),
            };
            let second = HardState {
                term: 4,
                vote: None,
            };
            vote.store(first).await.unwrap();
            vote.store(second).await.unwrap();
            assert_eq!(Vote::open(&context, P).await.unwrap().state(), second);
            // Tear the slot holding the latest state: the previous one loads.
            let blob = context.open(P, b"vote").await.unwrap();
            blob.write_at(&[0xAA; 5], 0).await.unwrap();
            blob.sync().await.unwrap();
            let mut vote = Vote::open(&context, P).await.unwrap();
            assert_eq!(vote.state(), first);
            // And storing again goes on from there.
            vote.store(second).await.unwrap();
            assert_eq!(Vote::open(&context, P).await.unwrap().state(), second);
        });
    }
}
