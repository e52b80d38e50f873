//! Storage both runtimes promise: open/read/write/truncate/sync/close,
//! scan and remove, and the errors for reading past the end, overflowing
//! offsets and missing partitions or blobs.

use commonware_runtime::{Blob, Error, Spawner, Storage};

/// `open` creates an empty blob; writes, reads and `len` agree; synced data
/// is seen by a later `open`.
pub async fn write_read_sync_reopen<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("partition", b"blob").await.expect("open");
    assert_eq!(blob.len().await, Ok(0));
    blob.write_at(b"hello world", 0).await.expect("write");
    assert_eq!(blob.len().await, Ok(11));
    let mut buf = [0u8; 5];
    blob.read_at(&mut buf, 6).await.expect("read");
    assert_eq!(&buf, b"world");
    blob.sync().await.expect("sync");
    blob.close().await.expect("close");

    let reopened = ctx.open("partition", b"blob").await.expect("reopen");
    assert_eq!(reopened.len().await, Ok(11));
    let mut all = [0u8; 11];
    reopened.read_at(&mut all, 0).await.expect("read");
    assert_eq!(&all, b"hello world");
}

/// Writing past the end zero-fills the gap; overwriting in place keeps the
/// length.
pub async fn write_past_end_zero_fills<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("partition", b"gaps").await.expect("open");
    blob.write_at(b"ab", 0).await.expect("write");
    blob.write_at(b"cd", 6).await.expect("write past end");
    assert_eq!(blob.len().await, Ok(8));
    let mut buf = [0xFFu8; 8];
    blob.read_at(&mut buf, 0).await.expect("read");
    assert_eq!(&buf, b"ab\0\0\0\0cd");
    blob.write_at(b"XY", 1).await.expect("overwrite");
    assert_eq!(blob.len().await, Ok(8));
    blob.read_at(&mut buf, 0).await.expect("read");
    assert_eq!(&buf, b"aXY\0\0\0cd");
    blob.write_at(&[], 100).await.expect("empty write");
    assert_eq!(blob.len().await, Ok(8), "an empty write does not extend");
}

/// Reading past the end fails with `BlobInsufficientLength` (also an empty
/// read beyond the end) and leaves the buffer untouched.
pub async fn read_past_end_fails<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("partition", b"short").await.expect("open");
    blob.write_at(b"1234", 0).await.expect("write");
    let mut buf = [7u8; 3];
    assert_eq!(
        blob.read_at(&mut buf, 2).await,
        Err(Error::BlobInsufficientLength)
    );
    assert_eq!(buf, [7, 7, 7], "a failed read wrote into the buffer");
    assert_eq!(
        blob.read_at(&mut [], 5).await,
        Err(Error::BlobInsufficientLength)
    );
    blob.read_at(&mut [], 4)
        .await
        .expect("empty read at the end");
    let mut last = [0u8; 1];
    blob.read_at(&mut last, 3).await.expect("last byte");
    assert_eq!(last, [b'4']);
}

/// Offsets whose end overflows are `OffsetOverflow`; a truncate to a length
/// no blob can have is `BlobTruncateFailed`; nothing panics and the blob is
/// unchanged.
pub async fn offsets_overflow<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("partition", b"far").await.expect("open");
    blob.write_at(b"data", 0).await.expect("write");
    let mut buf = [0u8; 2];
    assert_eq!(
        blob.read_at(&mut buf, u64::MAX).await,
        Err(Error::OffsetOverflow)
    );
    assert_eq!(
        blob.write_at(b"xy", u64::MAX - 1).await,
        Err(Error::OffsetOverflow)
    );
    assert_eq!(
        blob.write_at(b"x", u64::MAX).await,
        Err(Error::OffsetOverflow)
    );
    assert!(matches!(
        blob.truncate(u64::MAX).await,
        Err(Error::BlobTruncateFailed(p, n)) if p == "partition" && n == "666172"
    ));
    assert_eq!(blob.len().await, Ok(4));
}

/// `truncate` shrinks, and growing zero-extends.
pub async fn truncate_shrinks_and_grows<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("partition", b"cut").await.expect("open");
    blob.write_at(b"abcdef", 0).await.expect("write");
    blob.truncate(3).await.expect("shrink");
    assert_eq!(blob.len().await, Ok(3));
    let mut buf = [0u8; 4];
    assert_eq!(
        blob.read_at(&mut buf, 0).await,
        Err(Error::BlobInsufficientLength)
    );
    blob.truncate(6).await.expect("grow");
    assert_eq!(blob.len().await, Ok(6));
    let mut all = [0xFFu8; 6];
    blob.read_at(&mut all, 0).await.expect("read");
    assert_eq!(&all, b"abc\0\0\0");
    blob.sync().await.expect("sync");
    let reopened = ctx.open("partition", b"cut").await.expect("reopen");
    assert_eq!(reopened.len().await, Ok(6));
}

/// Clones share one blob: a write through one is read through the other,
/// also concurrently from several tasks.
pub async fn clones_share_state<B: Blob>(ctx: impl Spawner + Storage<B>) {
    let blob = ctx.open("partition", b"shared").await.expect("open");
    let data: Vec<u8> = (0..=255u8).collect();
    blob.write_at(&data, 0).await.expect("write");
    let readers: Vec<_> = (0..8u8)
        .map(|i| {
            let blob = blob.clone();
            ctx.spawn("reader", async move {
                let mut buf = [0u8; 32];
                blob.read_at(&mut buf, u64::from(i) * 32)
                    .await
                    .expect("read");
                let expected = (0..32).map(|j| i * 32 + j);
                assert!(buf.iter().copied().eq(expected));
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("reader");
    }
    let clone = blob.clone();
    clone
        .write_at(b"!", 256)
        .await
        .expect("write through clone");
    assert_eq!(blob.len().await, Ok(257));
    let mut last = [0u8; 1];
    blob.read_at(&mut last, 256).await.expect("read");
    assert_eq!(last, *b"!");
}

/// Any byte string is a blob name, the empty one included; `scan` lists
/// them sorted.
pub async fn scan_is_sorted_and_names_are_bytes<B: Blob>(ctx: impl Storage<B>) {
    let names: [&[u8]; 6] = [b"zeta", b"", b"\x00\xff", b"../escape", b"alpha", b"a/b"];
    for name in names {
        let blob = ctx.open("names", name).await.expect("open");
        blob.write_at(name, 0).await.expect("write");
        blob.close().await.expect("close");
    }
    let mut expected: Vec<Vec<u8>> = names.iter().map(|name| name.to_vec()).collect();
    expected.sort();
    assert_eq!(ctx.scan("names").await, Ok(expected));
    for name in names {
        let blob = ctx.open("names", name).await.expect("reopen");
        let mut buf = vec![0u8; name.len()];
        blob.read_at(&mut buf, 0).await.expect("read");
        assert_eq!(buf, name);
    }
}

/// Scanning or removing in a missing partition, or removing a missing blob,
/// fails with the name of what is missing (blob names in lowercase hex).
pub async fn missing_partition_and_blob_errors<B: Blob>(ctx: impl Storage<B>) {
    assert_eq!(
        ctx.scan("nowhere").await,
        Err(Error::PartitionMissing("nowhere".into()))
    );
    assert_eq!(
        ctx.remove("nowhere", None).await,
        Err(Error::PartitionMissing("nowhere".into()))
    );
    assert_eq!(
        ctx.remove("nowhere", Some(b"x")).await,
        Err(Error::PartitionMissing("nowhere".into()))
    );
    drop(ctx.open("here", b"present").await.expect("open"));
    assert_eq!(
        ctx.remove("here", Some(b"\x0a\xbc")).await,
        Err(Error::BlobMissing("here".into(), "0abc".into()))
    );
    assert_eq!(
        Error::BlobMissing("here".into(), "0abc".into()).to_string(),
        "blob missing: here/0abc"
    );
}

/// Removing blobs and partitions: the last blob's removal leaves an empty
/// partition; removing the partition removes it and its blobs.
pub async fn remove_blobs_and_partitions<B: Blob>(ctx: impl Storage<B>) {
    for name in [&b"one"[..], b"two"] {
        let blob = ctx.open("doomed", name).await.expect("open");
        blob.write_at(b"x", 0).await.expect("write");
        blob.close().await.expect("close");
    }
    ctx.remove("doomed", Some(b"one"))
        .await
        .expect("remove blob");
    assert_eq!(ctx.scan("doomed").await, Ok(vec![b"two".to_vec()]));
    assert_eq!(
        ctx.remove("doomed", Some(b"one")).await,
        Err(Error::BlobMissing("doomed".into(), "6f6e65".into()))
    );
    ctx.remove("doomed", Some(b"two"))
        .await
        .expect("remove blob");
    assert_eq!(ctx.scan("doomed").await, Ok(vec![]));

    let blob = ctx.open("doomed", b"three").await.expect("open");
    blob.close().await.expect("close");
    ctx.remove("doomed", None).await.expect("remove partition");
    assert_eq!(
        ctx.scan("doomed").await,
        Err(Error::PartitionMissing("doomed".into()))
    );
    let fresh = ctx.open("doomed", b"three").await.expect("reopen");
    assert_eq!(fresh.len().await, Ok(0), "a removed blob came back");
}

/// Syncing a blob after it (or its partition) was removed fails with the
/// name of what is gone instead of pretending the data is safe.
pub async fn sync_after_remove_fails<B: Blob>(ctx: impl Storage<B>) {
    let blob = ctx.open("volatile", b"gone").await.expect("open");
    blob.write_at(b"data", 0).await.expect("write");
    blob.sync().await.expect("sync");
    ctx.remove("volatile", Some(b"gone")).await.expect("remove");
    blob.write_at(b"more", 4)
        .await
        .expect("writes to an open blob work");
    assert_eq!(
        blob.sync().await,
        Err(Error::BlobMissing("volatile".into(), "676f6e65".into()))
    );

    let blob = ctx.open("volatile", b"also").await.expect("open");
    ctx.remove("volatile", None)
        .await
        .expect("remove partition");
    assert_eq!(
        blob.close().await,
        Err(Error::PartitionMissing("volatile".into()))
    );
}

/// Partitions are independent namespaces.
pub async fn partitions_are_independent<B: Blob>(ctx: impl Storage<B>) {
    for partition in ["p0", "p1", "p2"] {
        let blob = ctx.open(partition, b"same").await.expect("open");
        blob.write_at(partition.as_bytes(), 0).await.expect("write");
        blob.close().await.expect("close");
    }
    ctx.remove("p1", None).await.expect("remove");
    for partition in ["p0", "p2"] {
        let blob = ctx.open(partition, b"same").await.expect("open");
        let mut buf = [0u8; 2];
        blob.read_at(&mut buf, 0).await.expect("read");
        assert_eq!(&buf, partition.as_bytes());
    }
    assert_eq!(
        ctx.scan("p1").await,
        Err(Error::PartitionMissing("p1".into()))
    );
}
