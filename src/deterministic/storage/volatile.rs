//! The volatile side of one opened blob: [`Volatile`], the handle's own
//! image, the pages it changed since it last published, and (with torn
//! writes on) the changes a crash may tear.
//!
//! # Invariants
//! * Bytes of the last page beyond the blob's length are zero, so extending
//!   a blob (by `truncate` or by writing past the end) reads as zeros.
//! * A page table never reaches past the page holding the blob's last byte.
//! * Publishing gives the durable image exactly the handle's contents: if
//!   the durable image is still the one the handle started from (same
//!   version), only the changed pages and the new table length are copied;
//!   if another handle published in between, the whole table is replaced.
//!   Either way the two images share all their pages afterwards.

use super::{
    disk::Durable,
    pages::{locate, spans, write_page, Image, Spares},
};
use crate::Error;
use std::sync::Arc;

/// The volatile state of one opened blob (shared by its clones).
pub(super) struct Volatile {
    pub(super) image: Image,
    /// Pages changed since the last publish, each listed once.
    pub(super) dirty: Vec<usize>,
    /// Bit `i` is set iff page `i` is in `dirty`.
    pub(super) marks: Vec<u64>,
    /// Shortest the page table has been since the last publish: the durable
    /// table agrees with this one below it, except on dirty pages.
    pub(super) low: usize,
    /// Version of the durable image this state started from.
    pub(super) base: u64,
    /// With torn writes on: the writes and truncates since the last
    /// publish, in order.
    pub(super) unsynced: Option<Vec<Change>>,
}

/// A change to a blob that has not reached the durable image yet.
pub(super) enum Change {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

impl Volatile {
    /// A volatile copy of the durable `image` of version `base`; `torn`
    /// records the changes made to it.
    pub(super) fn new(image: Image, base: u64, torn: bool) -> Self {
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
    pub(super) fn is_dirty(&self, index: usize) -> bool {
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
    /// [`MAX_BLOB_LEN`](super::MAX_BLOB_LEN) and `data` is not empty.
    pub(super) fn write(
        &mut self,
        data: &[u8],
        offset: u64,
        end: u64,
        spares: &Spares,
    ) -> Result<(), Error> {
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

    /// Sets the length to `len` (at most [`MAX_BLOB_LEN`](super::MAX_BLOB_LEN)), zero-extending.
    pub(super) fn truncate(&mut self, len: u64) {
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
    pub(super) fn publish(&mut self, durable: &mut Durable, version: u64, spares: &Spares) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deterministic::storage::pages::{Page, PAGE};

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
            id: 1,
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
