//! `Storage` for the tokio runtime: blobs are files under
//! [`super::Config::storage_directory`], one directory per partition.
//!
//! Files: `names.rs` (file names, and the slots of long names), `blob.rs`
//! (the [`Blob`] handle). Positional I/O and link counts are Unix APIs: this
//! backend builds on Unix.
//!
//! # Names that could escape
//!
//! A partition name is used only if it is exactly one normal path component
//! of at most 255 bytes: empty names, `.`, `..`, names containing `/`, `\`
//! or NUL (and so every absolute path), and longer names are rejected
//! before the file system is touched: `open` fails with
//! `PartitionCreationFailed`, while `scan` and `remove` fail with
//! `PartitionMissing` (such a partition cannot exist). The deterministic
//! runtime applies the same rule.
//!
//! # Durability
//!
//! `sync` is `fsync` of the blob's file. If the blob was removed meanwhile
//! its data cannot be reached by name, so `sync` fails as the
//! deterministic runtime's does: `BlobMissing`, or `PartitionMissing` if the
//! whole partition is gone. Creating a partition or a blob, and removing
//! one, also syncs the directory that changed, so an acknowledged `sync` of a new blob survives
//! a power cut; `close` syncs too. The storage directory itself is created
//! on the first `open` (with its missing parents, which are not synced).

mod blob;
mod names;

pub use blob::Blob;

use super::Context;
use crate::{hex, is_safe_partition, Error};
use names::{open_blob, remove_blob, scan_dir, sync_dir};
use std::{
    fs::{self, File},
    io::ErrorKind,
    path::{Path, PathBuf},
};

impl Context {
    /// The directory of `partition`, or `None` if the name could escape the
    /// storage directory.
    fn partition_dir(&self, partition: &str) -> Option<PathBuf> {
        is_safe_partition(partition).then(|| self.inner.cfg.storage_directory.join(partition))
    }
}

/// Creates (durably) the directory of `partition` and the blob `name` in
/// it unless they exist, and opens the blob's file.
fn open_file(root: &Path, dir: &Path, partition: &str, name: &[u8]) -> Result<File, Error> {
    let creation_failed = || Error::PartitionCreationFailed(partition.into());
    fs::create_dir_all(root).map_err(|_| creation_failed())?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(root).map_err(|_| creation_failed())?,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(_) => return Err(creation_failed()),
    }
    open_blob(dir, name).map_err(|_| Error::BlobOpenFailed(partition.into(), hex(name)))
}

/// Removes the blob `name` from the partition directory `dir`.
fn remove_file(dir: &Path, partition: &str, name: &[u8]) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::PartitionMissing(partition.into()));
    }
    let missing = || Error::BlobMissing(partition.into(), hex(name));
    remove_blob(dir, name).map_err(|_| missing())?;
    sync_dir(dir).map_err(|_| Error::BlobSyncFailed(partition.into(), hex(name)))
}

/// Removes the partition directory `dir` and everything in it.
fn remove_dir(root: &Path, dir: &Path, partition: &str) -> Result<(), Error> {
    fs::remove_dir_all(dir).map_err(|_| Error::PartitionMissing(partition.into()))?;
    sync_dir(root).map_err(|_| Error::WriteFailed)
}

impl crate::Storage<Blob> for Context {
    async fn open(&self, partition: &str, name: &[u8]) -> Result<Blob, Error> {
        let dir = self
            .partition_dir(partition)
            .ok_or_else(|| Error::PartitionCreationFailed(partition.into()))?;
        let root = self.inner.cfg.storage_directory.clone();
        let (owned_partition, owned_name) = (partition.to_string(), name.to_vec());
        let (file, len, dir) = self
            .inner
            .blocking(move || {
                let file = open_file(&root, &dir, &owned_partition, &owned_name)?;
                let len = file
                    .metadata()
                    .map_err(|_| Error::BlobOpenFailed(owned_partition, hex(&owned_name)))?
                    .len();
                Ok::<_, Error>((file, len, dir))
            })
            .await
            .map_err(|_| Error::BlobOpenFailed(partition.into(), hex(name)))??;
        Ok(Blob::new(
            self.inner.clone(),
            file,
            len,
            dir,
            partition,
            name,
        ))
    }

    async fn remove(&self, partition: &str, name: Option<&[u8]>) -> Result<(), Error> {
        let missing = || Error::PartitionMissing(partition.into());
        let dir = self.partition_dir(partition).ok_or_else(missing)?;
        let owned_partition = partition.to_string();
        match name {
            Some(name) => {
                let owned_name = name.to_vec();
                self.inner
                    .blocking(move || remove_file(&dir, &owned_partition, &owned_name))
                    .await
                    .map_err(|_| Error::BlobMissing(partition.into(), hex(name)))?
            }
            None => {
                let root = self.inner.cfg.storage_directory.clone();
                self.inner
                    .blocking(move || remove_dir(&root, &dir, &owned_partition))
                    .await
                    .map_err(|_| missing())?
            }
        }
    }

    async fn scan(&self, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
        let missing = || Error::PartitionMissing(partition.into());
        let dir = self.partition_dir(partition).ok_or_else(missing)?;
        let owned_partition = partition.to_string();
        self.inner
            .blocking(move || scan_dir(&dir, &owned_partition))
            .await
            .map_err(|_| missing())?
    }
}

#[cfg(test)]
mod tests {
    use super::{
        blob::{read_end, write_end, MAX_LEN},
        names::{
            blob_name, file_name, fnv1a, is_slot_file, name_file, name_hash, slot_file, COLLIDE,
            NAME_SUFFIX,
        },
        *,
    };
    use crate::{tokio::Executor, Blob as _, Runner as _, Storage as _};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "commonware-tokio-storage-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            Self(dir)
        }

        /// The files of partition `p`, sorted.
        fn files(&self, p: &str) -> Vec<String> {
            let mut files: Vec<String> = fs::read_dir(self.0.join(p))
                .expect("read partition")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .collect();
            files.sort();
            files
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `f` on a fresh runtime storing in `dir`.
    fn run<F, Fut>(dir: &Path, f: F) -> Fut::Output
    where
        F: FnOnce(Context) -> Fut,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (runner, context) = Executor::init(super::super::Config {
            threads: 1,
            storage_directory: dir.to_path_buf(),
            ..super::super::Config::default()
        });
        runner.start(f(context))
    }

    /// `n` bytes of `x` after `head`.
    fn long(head: &[u8], n: usize) -> Vec<u8> {
        let mut name = head.to_vec();
        name.extend(std::iter::repeat_n(b'x', n));
        name
    }

    /// Writes `name` itself into the blob `name` and closes it.
    async fn store(ctx: &Context, p: &str, name: &[u8]) {
        let blob = ctx.open(p, name).await.expect("open");
        blob.write_at(name, 0).await.expect("write");
        blob.close().await.expect("close");
    }

    /// Checks that the blob `name` holds `name`.
    async fn holds_itself(ctx: &Context, p: &str, name: &[u8]) {
        let blob = ctx.open(p, name).await.expect("open");
        assert_eq!(blob.len().await, Ok(name.len() as u64));
        let mut buf = vec![0u8; name.len()];
        blob.read_at(&mut buf, 0).await.expect("read");
        assert_eq!(buf, name);
    }

    #[test]
    fn short_names_round_trip_through_file_names() {
        for name in [
            &b""[..],
            b"a",
            b"\x00\xff/..",
            b"0123456789abcdef",
            &[7; 127],
        ] {
            let file = file_name(name).expect("short");
            assert!(file.len() <= 255);
            assert!(!file.contains(['/', '\\', '\0']));
            assert_eq!(blob_name(&file), Some(name.to_vec()));
        }
        assert_eq!(file_name(&[7; 128]), None);
    }

    #[test]
    fn foreign_file_names_are_not_blobs() {
        for file in [
            "",
            "a",
            "0A",
            "zz",
            "abc",
            "_",
            "0g",
            "~0123",
            &"ab".repeat(128),
        ] {
            assert_eq!(blob_name(file), None, "{file:?}");
        }
    }

    #[test]
    fn slot_files_are_recognised() {
        let data = slot_file(0xab, 12);
        assert_eq!(data, "~00000000000000ab-12");
        assert!(is_slot_file(&data));
        assert!(!is_slot_file(&name_file(&data)));
        for file in [
            "~00000000000000ab-",
            "~0000000000000ab-1",
            "~00000000000000AB-1",
            "00-1",
        ] {
            assert!(!is_slot_file(file), "{file:?}");
        }
        // FNV-1a names files on disk: it must never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unsafe_partitions_are_rejected() {
        let long = ["a".repeat(256), "b".repeat(300), "é".repeat(128)];
        let bad = [
            "", ".", "..", "/", "/etc", "a/b", "../x", "a\\b", "a\0b", "./a",
        ];
        for partition in bad.iter().copied().chain(long.iter().map(String::as_str)) {
            assert!(!is_safe_partition(partition), "{partition:?}");
        }
        let longest = ["a".repeat(255), "é".repeat(127)];
        let good = ["a", "partition-1", "...", ".hidden", "a b", "ünïcode"];
        for partition in good
            .iter()
            .copied()
            .chain(longest.iter().map(String::as_str))
        {
            assert!(is_safe_partition(partition), "{partition:?}");
        }
    }

    #[test]
    fn ends_of_reads_and_writes() {
        assert_eq!(read_end(u64::MAX, 0), Ok(u64::MAX));
        assert_eq!(read_end(u64::MAX, 1), Err(Error::OffsetOverflow));
        assert_eq!(read_end(5, 3), Ok(8));
        assert_eq!(write_end(MAX_LEN, 0), Ok(MAX_LEN));
        assert_eq!(write_end(MAX_LEN - 1, 1), Ok(MAX_LEN));
        assert_eq!(write_end(MAX_LEN, 1), Err(Error::OffsetOverflow));
        assert_eq!(write_end(MAX_LEN + 1, 0), Err(Error::OffsetOverflow));
        assert_eq!(write_end(u64::MAX, 1), Err(Error::OffsetOverflow));
    }

    #[test]
    fn blobs_are_as_long_as_in_simulation() {
        assert_eq!(MAX_LEN, crate::deterministic::MAX_BLOB_LEN);
    }

    #[test]
    fn long_names_are_stored_scanned_and_reopened() {
        let scratch = Scratch::new();
        let names = [
            long(b"", 127),
            long(b"", 128),
            long(b"", 200),
            long(b"\x01", 199),
            long(b"", 4096),
            long(b"", 5000),
            b"a".to_vec(),
            Vec::new(),
        ];
        // Two long names sharing a 200-byte prefix.
        let (one, two) = (
            [long(b"", 200), b"1".to_vec()].concat(),
            [long(b"", 200), b"2".to_vec()].concat(),
        );
        let all: Vec<Vec<u8>> = names
            .iter()
            .cloned()
            .chain([one.clone(), two.clone()])
            .collect();
        let stored = all.clone();
        run(&scratch.0, |ctx| async move {
            for name in &stored {
                store(&ctx, "p", name).await;
            }
        });
        let files = scratch.files("p");
        assert!(files.contains(&hex(&long(b"", 127))), "127 bytes stay hex");
        assert_eq!(files.iter().filter(|f| is_slot_file(f)).count(), 7);
        assert_eq!(files.iter().filter(|f| f.ends_with(NAME_SUFFIX)).count(), 7);
        assert!(files.iter().all(|f| f.len() <= 255));

        // A fresh runtime on the same directory finds everything.
        let mut sorted = all.clone();
        sorted.sort();
        let removed = long(b"", 200);
        run(&scratch.0, |ctx| async move {
            assert_eq!(ctx.scan("p").await, Ok(sorted.clone()));
            for name in &all {
                holds_itself(&ctx, "p", name).await;
            }
            ctx.remove("p", Some(&removed)).await.expect("remove");
            assert_eq!(
                ctx.remove("p", Some(&removed)).await,
                Err(Error::BlobMissing("p".into(), hex(&removed)))
            );
            let left: Vec<_> = sorted.into_iter().filter(|n| *n != removed).collect();
            assert_eq!(ctx.scan("p").await, Ok(left));
            holds_itself(&ctx, "p", &one).await;
            holds_itself(&ctx, "p", &two).await;
            let fresh = ctx.open("p", &removed).await.expect("reopen");
            assert_eq!(fresh.len().await, Ok(0), "a removed blob came back");
        });
    }

    #[test]
    fn colliding_names_take_consecutive_slots() {
        let scratch = Scratch::new();
        let [a, b, c] = [b'a', b'b', b'c'].map(|tail| [COLLIDE, &[tail; 150]].concat());
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        let hash = name_hash(&a);
        run(&scratch.0, |ctx| async move {
            for name in [&a2, &b2, &c2] {
                store(&ctx, "p", name).await;
            }
        });
        let slot = |k| slot_file(hash, k);
        assert_eq!(
            fs::read(scratch.0.join("p").join(name_file(&slot(1)))).ok(),
            Some(b.clone())
        );
        let dir = scratch.0.join("p");
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        run(&scratch.0, |ctx| async move {
            // Removing the middle slot keeps its name file: the chain to `c`
            // stays whole.
            ctx.remove("p", Some(&b2)).await.expect("remove b");
            holds_itself(&ctx, "p", &c2).await;
            holds_itself(&ctx, "p", &a2).await;
            assert_eq!(ctx.scan("p").await, Ok(vec![a2.clone(), c2.clone()]));
        });
        assert!(!dir.join(slot(1)).exists());
        assert!(dir.join(name_file(&slot(1))).exists());
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        run(&scratch.0, |ctx| async move {
            // `b` comes back in its old slot, empty.
            let blob = ctx.open("p", &b2).await.expect("reopen b");
            assert_eq!(blob.len().await, Ok(0));
            blob.close().await.expect("close");
            ctx.remove("p", Some(&c2)).await.expect("remove c");
            ctx.remove("p", Some(&b2)).await.expect("remove b");
            assert_eq!(ctx.scan("p").await, Ok(vec![a2.clone()]));
        });
        assert_eq!(scratch.files("p"), [slot(0), name_file(&slot(0))]);
        run(&scratch.0, |ctx| async move {
            ctx.remove("p", Some(&a)).await.expect("remove a");
            assert_eq!(ctx.scan("p").await, Ok(vec![]));
        });
        assert!(scratch.files("p").is_empty(), "every name file is trimmed");
    }

    #[test]
    fn a_name_file_without_data_is_no_blob() {
        let scratch = Scratch::new();
        let name = long(b"", 300);
        let dir = scratch.0.join("p");
        fs::create_dir_all(&dir).expect("partition");
        // What a crash between the two files of `open` leaves.
        let data = slot_file(name_hash(&name), 0);
        fs::write(dir.join(name_file(&data)), &name).expect("name file");
        let reopened = name.clone();
        run(&scratch.0, |ctx| async move {
            assert_eq!(ctx.scan("p").await, Ok(vec![]));
            assert_eq!(
                ctx.remove("p", Some(&reopened)).await,
                Err(Error::BlobMissing("p".into(), hex(&reopened)))
            );
            store(&ctx, "p", &reopened).await;
            assert_eq!(ctx.scan("p").await, Ok(vec![reopened.clone()]));
        });
        assert_eq!(scratch.files("p"), [data.clone(), name_file(&data)]);

        // The reverse (data without its name) is not ours.
        fs::remove_file(dir.join(name_file(&data))).expect("remove name file");
        run(&scratch.0, |ctx| async move {
            assert_eq!(
                ctx.scan("p").await,
                Err(Error::PartitionCorrupt("p".into()))
            );
        });
    }
}
