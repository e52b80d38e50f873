//! Real directories: partition names that could escape are refused without
//! touching the disk, the layout is the reference's (hex file names), synced
//! data survives the runtime, and a full disk gives errors.

use crate::{run, support::Scratch};
use commonware_runtime::{Blob, Error, Spawner, Storage};
use std::{fs, path::Path, process::Command};

/// Every entry below `dir`, recursively, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            out.push(path.strip_prefix(dir).expect("below").display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Partition names that are not exactly one plain directory name.
fn unsafe_partitions(scratch: &Path) -> Vec<String> {
    let absolute = scratch.join("absolute").display().to_string();
    [
        "",
        ".",
        "..",
        "../escape",
        "./inside",
        "/",
        "a/b",
        "a\\b",
        "a\0b",
        "x/../..",
    ]
    .into_iter()
    .map(String::from)
    .chain([absolute])
    .collect()
}

/// `open` of an unsafe partition is `PartitionCreationFailed`; `scan` and
/// `remove` are `PartitionMissing`; nothing is created, inside or outside
/// the storage directory.
#[test]
fn unsafe_partition_names_touch_nothing() {
    let scratch = Scratch::new();
    let storage = scratch.path().join("storage");
    let partitions = unsafe_partitions(scratch.path());
    run(&storage, |ctx| async move {
        for partition in partitions {
            let name = &partition;
            assert!(
                matches!(ctx.open(name, b"blob").await,
                    Err(Error::PartitionCreationFailed(p)) if p == *name),
                "open {name:?}"
            );
            let missing = Some(Error::PartitionMissing(name.clone()));
            assert_eq!(ctx.scan(name).await.err(), missing, "scan {name:?}");
            assert_eq!(ctx.remove(name, None).await.err(), missing, "{name:?}");
            assert_eq!(ctx.remove(name, Some(b"blob")).await.err(), missing);
        }
    });
    assert_eq!(tree(scratch.path()), Vec::<String>::new());
}

/// Removing `.` or `..` cannot delete the storage directory or its parent.
#[test]
fn removing_dot_partitions_keeps_data() {
    let scratch = Scratch::new();
    let storage = scratch.path().join("storage");
    fs::write(scratch.path().join("neighbour"), b"keep").expect("neighbour");
    run(&storage, |ctx| async move {
        let blob = ctx.open("safe", b"blob").await.expect("open");
        blob.write_at(b"data", 0).await.expect("write");
        blob.close().await.expect("close");
        for partition in [".", "..", "safe/..", "../storage"] {
            assert_eq!(
                ctx.remove(partition, None).await,
                Err(Error::PartitionMissing(partition.into()))
            );
        }
        assert_eq!(ctx.scan("safe").await, Ok(vec![b"blob".to_vec()]));
    });
    assert_eq!(
        tree(scratch.path()),
        [
            "neighbour",
            "storage",
            "storage/safe",
            "storage/safe/626c6f62"
        ]
    );
}

/// Blobs are files named by the hex of their name (the empty name is
/// `_empty`), partitions are directories, and a file written in that layout
/// by someone else (e.g. the reference runtime) opens with its contents.
/// A name over 127 bytes (whose hex would be too long a file name) lives in
/// a slot named by its FNV-1a hash, with its name beside it.
#[test]
fn layout_is_hex_file_names() {
    let scratch = Scratch::new();
    let storage = scratch.path().to_path_buf();
    fs::create_dir_all(storage.join("old")).expect("partition");
    fs::write(storage.join("old").join("6f6c64"), b"from before").expect("file");
    run(&storage, |ctx| async move {
        for name in [&b"../../x"[..], b"", b"\xff"] {
            ctx.open("names", name)
                .await
                .expect("open")
                .close()
                .await
                .expect("close");
        }
        // 200 bytes would make a 400-character hex file name, more than
        // file systems allow.
        let long = ctx.open("names", &[0xab; 200]).await.expect("open long");
        long.close().await.expect("close long");
        let names = ctx.scan("names").await.expect("scan");
        assert!(names.contains(&vec![0xab; 200]), "scan lists the long name");
        let old = ctx.open("old", b"old").await.expect("open existing");
        let mut buf = [0u8; 11];
        old.read_at(&mut buf, 0).await.expect("read");
        assert_eq!(&buf, b"from before");
    });
    assert_eq!(
        tree(&storage),
        [
            "names",
            "names/2e2e2f2e2e2f78",
            "names/_empty",
            "names/ff",
            "names/~7f9abf60b98f0d9d-0",
            "names/~7f9abf60b98f0d9d-0.name",
            "old",
            "old/6f6c64"
        ]
    );
}

/// Files in a partition that this runtime did not write (a name that is not
/// hex, a directory) make `scan` fail with `PartitionCorrupt`.
#[test]
fn foreign_entries_corrupt_a_partition() {
    let scratch = Scratch::new();
    let storage = scratch.path().to_path_buf();
    fs::create_dir_all(storage.join("files")).expect("partition");
    fs::write(storage.join("files").join("notes.txt"), b"").expect("file");
    fs::create_dir_all(storage.join("dirs").join("00")).expect("nested");
    run(&storage, |ctx| async move {
        for partition in ["files", "dirs"] {
            assert_eq!(
                ctx.scan(partition).await,
                Err(Error::PartitionCorrupt(partition.into()))
            );
        }
    });
}

/// Synced data survives dropping the runtime and reopening the same
/// directory with a new one.
#[test]
fn synced_data_survives_the_runtime() {
    let scratch = Scratch::new();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let written = data.clone();
    run(scratch.path(), |ctx| async move {
        let blob = ctx.open("journal", b"0001").await.expect("open");
        blob.write_at(&written, 0).await.expect("write");
        blob.sync().await.expect("sync");
        let other = ctx.open("journal", b"0002").await.expect("open");
        other.write_at(b"x", 0).await.expect("write");
        other.close().await.expect("close");
    });
    run(scratch.path(), |ctx| async move {
        assert_eq!(
            ctx.scan("journal").await,
            Ok(vec![b"0001".to_vec(), b"0002".to_vec()])
        );
        let blob = ctx.open("journal", b"0001").await.expect("reopen");
        assert_eq!(blob.len().await, Ok(data.len() as u64));
        // Read across several `maximum_buffer_size` pieces, unaligned.
        let mut buf = vec![0u8; 7_777];
        blob.read_at(&mut buf, 1_111).await.expect("read");
        assert!(buf == data[1_111..8_888], "data changed across runtimes");
    });
}

/// An unmounts-on-drop tmpfs of `size` bytes, or why none could be mounted.
struct Tmpfs {
    dir: Scratch,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = Scratch::new();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|err| format!("cannot run mount: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A full disk makes `write_at` fail with `WriteFailed` (no panic, the blob
/// stays usable), and freeing space makes writes work again.
#[test]
fn full_disk_fails_writes() {
    let tmpfs = match Tmpfs::mount("256k") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!("skipping full_disk_fails_writes: {reason}");
            return;
        }
    };
    run(tmpfs.dir.path(), |ctx| async move {
        let ballast = ctx.open("disk", b"ballast").await.expect("open");
        assert_eq!(
            ballast.write_at(&vec![1u8; 1 << 20], 0).await,
            Err(Error::WriteFailed)
        );
        drop(ballast);
        ctx.remove("disk", Some(b"ballast")).await.expect("remove");
        let blob = ctx
            .open("disk", b"after")
            .await
            .expect("open after freeing");
        blob.write_at(&[3u8; 4096], 0)
            .await
            .expect("write after freeing");
        blob.sync().await.expect("sync");
    });
}

/// Clones written and read from many tasks at once (on several threads,
/// in pieces of `maximum_buffer_size`) keep every byte where it was put.
#[test]
fn concurrent_clones_keep_every_byte() {
    let scratch = Scratch::new();
    run(scratch.path(), |ctx| async move {
        let blob = ctx.open("busy", b"blob").await.expect("open");
        let writers: Vec<_> = (0..8u8)
            .map(|task| {
                let blob = blob.clone();
                ctx.spawn("writer", async move {
                    for round in 0..20u64 {
                        let offset = (round * 8 + u64::from(task)) * 2500;
                        blob.write_at(&[task + 1; 2500], offset)
                            .await
                            .expect("write");
                        let mut back = [0u8; 2500];
                        blob.read_at(&mut back, offset).await.expect("read");
                        assert_eq!(back, [task + 1; 2500]);
                    }
                    blob.sync().await.expect("sync");
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(blob.len().await, Ok(160 * 2500));
        let mut all = vec![0u8; 160 * 2500];
        blob.read_at(&mut all, 0).await.expect("read all");
        for (slot, chunk) in all.chunks(2500).enumerate() {
            assert!(chunk.iter().all(|b| usize::from(*b) == slot % 8 + 1));
        }
    });
}

/// A write whose future is dropped after its first poll still finishes or
/// stops at a piece boundary, and the blob's length matches the file.
#[test]
fn dropped_write_keeps_length_in_step_with_file() {
    let scratch = Scratch::new();
    let file = scratch.path().join("p").join("62");
    run(scratch.path(), move |ctx| async move {
        let blob = ctx.open("p", b"b").await.expect("open");
        let data = vec![5u8; 10_000];
        {
            let mut write = std::pin::pin!(blob.write_at(&data, 0));
            let _ = futures::poll!(write.as_mut());
        }
        let len = blob.len().await.expect("len");
        assert_eq!(len % 1000, 0, "length {len} is not a piece boundary");
        assert_eq!(fs::metadata(&file).expect("file").len(), len);
    });
}
