//! Blob images as tables of 4 KiB copy-on-write pages, and the spare pages
//! a disk keeps for the next copy.
//!
//! # Invariants
//! * An [`Image`] shares every page it has not changed with the images it
//!   was copied from or published to (`Arc`s); a missing page, or an index
//!   past the end of the table, reads as zeros, so gaps cost nothing.
//! * A page is written in place only when nothing else holds it; otherwise
//!   it is copied first (from a spare page when there is one).
//! * [`Spares`] keeps only pages nothing else holds, and at most
//!   [`Spares::MAX`] of them.

use parking_lot::Mutex;
use std::{ops::Range, sync::Arc};

/// Bytes per page of a blob image.
pub(super) const PAGE: usize = 4096;

/// One page of a blob image.
pub(super) type Page = [u8; PAGE];

/// Pages and length of a blob.
#[derive(Clone, Default)]
pub(super) struct Image {
    /// `pages[i]` holds bytes `i * PAGE .. (i + 1) * PAGE`; `None`, or an
    /// index past the end, holds zeros.
    pub(super) pages: Vec<Option<Arc<Page>>>,
    pub(super) len: u64,
}

/// Index of the page holding byte `offset`, and the position in it.
pub(super) fn locate(offset: u64) -> (usize, usize) {
    // Offsets are below MAX_BLOB_LEN, so the index fits in usize even on
    // 32-bit targets.
    (
        (offset / PAGE as u64) as usize,
        (offset % PAGE as u64) as usize,
    )
}

/// Splits bytes `offset .. offset + len` by page: for each page touched,
/// its index, the range within the page and the range within the buffer.
pub(super) fn spans(
    offset: u64,
    len: usize,
) -> impl Iterator<Item = (usize, Range<usize>, Range<usize>)> {
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
    pub(super) fn read(&self, buf: &mut [u8], offset: u64) {
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
pub(super) fn write_page(
    slot: &mut Option<Arc<Page>>,
    range: Range<usize>,
    src: &[u8],
    spares: &Spares,
) {
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
pub(super) struct Spares {
    pub(super) pages: Mutex<Vec<Arc<Page>>>,
}

impl Spares {
    pub(super) const MAX: usize = 16_384;

    pub(super) fn take(&self) -> Option<Arc<Page>> {
        self.pages.lock().pop()
    }

    /// Keeps `page` if nothing else holds it and there is room.
    pub(super) fn give(&self, mut page: Arc<Page>) {
        if Arc::get_mut(&mut page).is_some() {
            let mut pages = self.pages.lock();
            if pages.len() < Self::MAX {
                pages.push(page);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
