//! Offsets and lengths at the edges: the table both backends follow.
//!
//! * A read whose end overflows `u64` (a non-empty read, since an empty
//!   read ends where it starts) is `OffsetOverflow`; any other read ending
//!   past `len`, empty reads included, is `BlobInsufficientLength`.
//! * A write whose end overflows `u64` or passes [`MAX_BLOB_LEN`] is
//!   `OffsetOverflow`, empty writes included; an empty write within it
//!   changes nothing, not even the length.
//! * A truncate past [`MAX_BLOB_LEN`] is `BlobTruncateFailed`.
//! * A failed operation changes nothing.

use super::{contents, hex_of, run};
use commonware_runtime::{deterministic::MAX_BLOB_LEN, Blob, Error, Storage};

/// `(offset, len)` of a read of a 5-byte blob, and what it returns.
const READS: &[(u64, usize, Result<(), Error>)] = &[
    (0, 5, Ok(())),
    (5, 0, Ok(())),
    (4, 2, Err(Error::BlobInsufficientLength)),
    (6, 0, Err(Error::BlobInsufficientLength)),
    (MAX_BLOB_LEN, 1, Err(Error::BlobInsufficientLength)),
    (i64::MAX as u64, 1, Err(Error::BlobInsufficientLength)),
    (u64::MAX - 1, 1, Err(Error::BlobInsufficientLength)),
    (u64::MAX, 0, Err(Error::BlobInsufficientLength)),
    (u64::MAX, 1, Err(Error::OffsetOverflow)),
    (u64::MAX - 1, 2, Err(Error::OffsetOverflow)),
];

/// `(offset, len)` of a write to a 5-byte blob, what it returns, and the
/// length afterwards.
const WRITES: &[(u64, usize, Result<(), Error>, u64)] = &[
    (5, 0, Ok(()), 5),
    (1_000, 0, Ok(()), 5),
    (MAX_BLOB_LEN, 0, Ok(()), 5),
    (MAX_BLOB_LEN + 1, 0, Err(Error::OffsetOverflow), 5),
    (MAX_BLOB_LEN, 1, Err(Error::OffsetOverflow), 5),
    (MAX_BLOB_LEN - 1, 2, Err(Error::OffsetOverflow), 5),
    (i64::MAX as u64, 1, Err(Error::OffsetOverflow), 5),
    (u64::MAX, 0, Err(Error::OffsetOverflow), 5),
    (u64::MAX, 1, Err(Error::OffsetOverflow), 5),
    (u64::MAX - 1, 2, Err(Error::OffsetOverflow), 5),
    (MAX_BLOB_LEN - 1, 1, Ok(()), MAX_BLOB_LEN),
];

#[test]
fn reads_at_the_edges() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"01234", 0).await.unwrap();
        for (offset, len, expected) in READS {
            let mut buf = vec![7u8; *len];
            let got = blob.read_at(&mut buf, *offset).await;
            assert_eq!(&got, expected, "read of {len} at {offset}");
            if got.is_err() {
                assert!(buf.iter().all(|byte| *byte == 7), "buffer untouched");
            }
            assert_eq!(contents(&blob).await, b"01234");
        }
    });
}

#[test]
fn writes_at_the_edges() {
    run(|context| async move {
        for (offset, len, expected, after) in WRITES {
            context.remove("p", None).await.ok();
            let blob = context.open("p", b"b").await.unwrap();
            blob.write_at(b"01234", 0).await.unwrap();
            let got = blob.write_at(&vec![1u8; *len], *offset).await;
            assert_eq!(&got, expected, "write of {len} at {offset}");
            assert_eq!(blob.len().await, Ok(*after), "write of {len} at {offset}");
            let mut head = [0u8; 5];
            blob.read_at(&mut head, 0).await.unwrap();
            assert_eq!(&head, b"01234");
        }
    });
}

#[test]
fn truncates_at_the_edges() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"01234", 0).await.unwrap();
        let failed = Err(Error::BlobTruncateFailed("p".into(), hex_of(b"b")));
        for len in [MAX_BLOB_LEN + 1, i64::MAX as u64, u64::MAX] {
            assert_eq!(blob.truncate(len).await, failed, "truncate to {len}");
            assert_eq!(contents(&blob).await, b"01234");
        }
        // Large but allowed lengths cost nothing until written.
        blob.truncate(MAX_BLOB_LEN).await.unwrap();
        let mut buf = [1u8; 8];
        blob.read_at(&mut buf, MAX_BLOB_LEN - 8).await.unwrap();
        assert_eq!(buf, [0u8; 8]);
        blob.truncate(3).await.unwrap();
        assert_eq!(contents(&blob).await, b"012");
    });
}
