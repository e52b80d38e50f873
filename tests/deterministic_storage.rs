//! The deterministic runtime's simulated disk: every behaviour CONTRACT.md
//! lists under "Deterministic storage" and "What published dependents rely
//! on", a model-based check of random operation sequences, and determinism
//! of a mixed storage workload (same seed, same auditor state, also in
//! another process). `edges` holds the table of offsets and lengths at the
//! edges, `stale` the handles whose blob was removed.

mod common;
#[path = "deterministic_storage/edges.rs"]
mod edges;
#[path = "deterministic_storage/stale.rs"]
mod stale;

use commonware_runtime::{
    deterministic::{Blob as DBlob, Context, Executor},
    Blob, Error, Runner, Spawner, Storage,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

/// Runs `f` on a fresh default runtime.
fn run<F, Fut>(f: F)
where
    F: FnOnce(Context) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (executor, context, _) = Executor::default();
    executor.start(f(context));
}

/// The whole contents of a blob.
async fn contents(blob: &DBlob) -> Vec<u8> {
    let len = blob.len().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    blob.read_at(&mut buf, 0).await.unwrap();
    buf
}

#[test]
fn open_creates_partition_and_empty_blob() {
    run(|context| async move {
        assert_eq!(
            context.scan("p").await,
            Err(Error::PartitionMissing("p".into()))
        );
        let blob = context.open("p", b"name").await.unwrap();
        assert_eq!(blob.len().await.unwrap(), 0);
        assert_eq!(context.scan("p").await.unwrap(), vec![b"name".to_vec()]);
    });
}

#[test]
fn names_may_be_any_bytes_including_empty() {
    run(|context| async move {
        for name in [&b""[..], &[0u8, 255, 10][..], "ünï/../".as_bytes()] {
            let blob = context.open("p", name).await.unwrap();
            blob.write_at(name, 0).await.unwrap();
            blob.close().await.unwrap();
            let blob = context.open("p", name).await.unwrap();
            assert_eq!(contents(&blob).await, name);
        }
        assert_eq!(context.scan("p").await.unwrap().len(), 3);
    });
}

#[test]
fn each_open_sees_last_synced_contents_only() {
    run(|context| async move {
        let first = context.open("p", b"b").await.unwrap();
        first.write_at(b"synced", 0).await.unwrap();
        first.sync().await.unwrap();
        first.write_at(b"unsynced", 6).await.unwrap();
        // Len includes unsynced writes (journals append at len()).
        assert_eq!(first.len().await.unwrap(), 14);

        let second = context.open("p", b"b").await.unwrap();
        assert_eq!(contents(&second).await, b"synced");
        // Its own copy: writes to one handle are invisible to the other.
        second.write_at(b"S", 0).await.unwrap();
        assert_eq!(contents(&first).await, b"syncedunsynced");
        assert_eq!(contents(&second).await, b"Synced");
    });
}

#[test]
fn clones_share_state() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        let clone = blob.clone();
        clone.write_at(b"shared", 0).await.unwrap();
        assert_eq!(contents(&blob).await, b"shared");
        blob.truncate(3).await.unwrap();
        assert_eq!(contents(&clone).await, b"sha");
        // Syncing through a clone publishes the shared state.
        clone.sync().await.unwrap();
        let reopened = context.open("p", b"b").await.unwrap();
        assert_eq!(contents(&reopened).await, b"sha");
    });
}

#[test]
fn close_publishes() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"closed", 0).await.unwrap();
        blob.close().await.unwrap();
        let blob = context.open("p", b"b").await.unwrap();
        assert_eq!(contents(&blob).await, b"closed");
    });
}

#[test]
fn last_publish_wins_whole() {
    run(|context| async move {
        let a = context.open("p", b"b").await.unwrap();
        let b = context.open("p", b"b").await.unwrap();
        a.write_at(&[1u8; 10_000], 0).await.unwrap();
        a.sync().await.unwrap();
        b.write_at(&[2u8; 5], 9_000).await.unwrap();
        b.sync().await.unwrap();
        // b started from the empty image: its contents replace a's entirely.
        let mut expected = vec![0u8; 9_005];
        expected[9_000..].fill(2);
        assert_eq!(
            contents(&context.open("p", b"b").await.unwrap()).await,
            expected
        );
        // a publishes its whole contents again, not only what changed.
        a.write_at(&[3u8; 1], 0).await.unwrap();
        a.sync().await.unwrap();
        let mut expected = vec![1u8; 10_000];
        expected[0] = 3;
        assert_eq!(
            contents(&context.open("p", b"b").await.unwrap()).await,
            expected
        );
    });
}

#[test]
fn writing_past_end_zero_fills_and_overwrite_keeps_length() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"end", 5_000).await.unwrap();
        let mut expected = vec![0u8; 5_003];
        expected[5_000..].copy_from_slice(b"end");
        assert_eq!(contents(&blob).await, expected);
        blob.write_at(b"start", 0).await.unwrap();
        expected[..5].copy_from_slice(b"start");
        assert_eq!(contents(&blob).await, expected);
        assert_eq!(blob.len().await.unwrap(), 5_003);
    });
}

#[test]
fn writes_spanning_pages_read_back() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
        blob.write_at(&data, 4_000).await.unwrap();
        let mut buf = vec![0u8; 9_000];
        blob.read_at(&mut buf, 4_050).await.unwrap();
        assert_eq!(buf, &data[50..9_050]);
        blob.sync().await.unwrap();
        let reopened = context.open("p", b"b").await.unwrap();
        reopened.read_at(&mut buf, 4_050).await.unwrap();
        assert_eq!(buf, &data[50..9_050]);
    });
}

#[test]
fn empty_write_changes_nothing() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(&[], 100).await.unwrap();
        assert_eq!(blob.len().await.unwrap(), 0);
    });
}

#[test]
fn reading_past_end_fails_and_changes_nothing() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"0123456789", 0).await.unwrap();
        let mut buf = [7u8; 4];
        assert_eq!(
            blob.read_at(&mut buf, 8).await,
            Err(Error::BlobInsufficientLength)
        );
        assert_eq!(buf, [7u8; 4]);
        // Zero-length reads: fine up to len, an error beyond it.
        assert_eq!(blob.read_at(&mut [], 10).await, Ok(()));
        assert_eq!(
            blob.read_at(&mut [], 11).await,
            Err(Error::BlobInsufficientLength)
        );
        blob.read_at(&mut buf, 6).await.unwrap();
        assert_eq!(&buf, b"6789");
    });
}

#[test]
fn truncate_shrinks_and_zero_extends() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(&[9u8; 6_000], 0).await.unwrap();
        blob.truncate(4_100).await.unwrap();
        assert_eq!(blob.len().await.unwrap(), 4_100);
        // Growing again reads zeros where the truncated bytes were.
        blob.truncate(10_000).await.unwrap();
        let mut expected = vec![9u8; 4_100];
        expected.resize(10_000, 0);
        assert_eq!(contents(&blob).await, expected);
        blob.sync().await.unwrap();
        assert_eq!(
            contents(&context.open("p", b"b").await.unwrap()).await,
            expected
        );
        // Shrinking to a page boundary and regrowing by a write.
        blob.truncate(4_096).await.unwrap();
        blob.write_at(b"x", 8_192).await.unwrap();
        expected.truncate(4_096);
        expected.resize(8_192, 0);
        expected.push(b'x');
        assert_eq!(contents(&blob).await, expected);
        blob.sync().await.unwrap();
        assert_eq!(
            contents(&context.open("p", b"b").await.unwrap()).await,
            expected
        );
    });
}

#[test]
fn scan_is_sorted() {
    run(|context| async move {
        for name in [&b"c"[..], b"a", b"ab", b"", b"\xff", b"B"] {
            context.open("p", name).await.unwrap();
        }
        let names = context.scan("p").await.unwrap();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 6);
    });
}

#[test]
fn remove_errors_and_partitions() {
    run(|context| async move {
        assert_eq!(
            context.remove("p", Some(b"b")).await,
            Err(Error::PartitionMissing("p".into()))
        );
        assert_eq!(
            context.remove("p", None).await,
            Err(Error::PartitionMissing("p".into()))
        );
        context.open("p", b"b").await.unwrap();
        let missing = context.remove("p", Some(&[0x0a, 0xbc, 0x01])).await;
        assert_eq!(
            missing,
            Err(Error::BlobMissing("p".into(), "0abc01".into()))
        );
        assert_eq!(missing.unwrap_err().to_string(), "blob missing: p/0abc01");
        // Removing the last blob leaves an empty partition.
        context.remove("p", Some(b"b")).await.unwrap();
        assert_eq!(context.scan("p").await.unwrap(), Vec::<Vec<u8>>::new());
        context.remove("p", None).await.unwrap();
        assert_eq!(
            context.scan("p").await,
            Err(Error::PartitionMissing("p".into()))
        );
    });
}

#[test]
fn removed_blob_reopens_empty_and_cannot_be_synced() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"data", 0).await.unwrap();
        blob.sync().await.unwrap();
        context.remove("p", Some(b"b")).await.unwrap();
        assert_eq!(
            blob.sync().await,
            Err(Error::BlobMissing("p".into(), hex_of(b"b")))
        );
        context.remove("p", None).await.unwrap();
        assert_eq!(
            blob.clone().close().await,
            Err(Error::PartitionMissing("p".into()))
        );
        // The handle itself still works, and a new blob starts empty.
        assert_eq!(contents(&blob).await, b"data");
        let fresh = context.open("p", b"b").await.unwrap();
        assert_eq!(fresh.len().await.unwrap(), 0);
    });
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sparse_writes_read_zeros_in_the_gap() {
    run(|context| async move {
        let blob = context.open("p", b"b").await.unwrap();
        let far = 1u64 << 32;
        blob.write_at(b"far", far).await.unwrap();
        assert_eq!(blob.len().await.unwrap(), far + 3);
        let mut buf = [1u8; 16];
        blob.read_at(&mut buf, far / 2).await.unwrap();
        assert_eq!(buf, [0u8; 16]);
        let mut tail = [0u8; 3];
        blob.read_at(&mut tail, far).await.unwrap();
        assert_eq!(&tail, b"far");
    });
}

#[test]
fn storage_metrics_track_blobs_and_io() {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (executor, context, _) = Executor::init(commonware_runtime::deterministic::Config {
        registry: registry.clone(),
        ..Default::default()
    });
    let metrics = move || {
        let mut text = String::new();
        encode(&mut text, &registry.lock().unwrap()).unwrap();
        text
    };
    let check = metrics.clone();
    executor.start(async move {
        let blob = context.open("p", b"b").await.unwrap();
        let clone = blob.clone();
        assert!(check().contains("open_blobs 2"));
        drop(clone);
        blob.write_at(&[1u8; 100], 0).await.unwrap();
        blob.read_at(&mut [0u8; 40], 0).await.unwrap();
        assert!(check().contains("open_blobs 1"));
        blob.close().await.unwrap();
    });
    let text = metrics();
    for line in [
        "open_blobs 0",
        "storage_writes_total 1",
        "storage_write_bandwidth_total 100",
        "storage_reads_total 1",
        "storage_read_bandwidth_total 40",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// Auditor state after writing `payload`.
fn audited(payload: &'static [u8]) -> String {
    let (executor, context, auditor) = Executor::default();
    executor.start(async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(payload, 0).await.unwrap();
        blob.sync().await.unwrap();
    });
    auditor.state()
}

#[test]
fn auditor_sees_written_bytes() {
    assert_eq!(audited(b"same"), audited(b"same"));
    assert_ne!(audited(b"same"), audited(b"diff"));
}

/// One open handle of the model: which blob, and what it should hold.
struct ModelHandle {
    which: usize,
    blob: DBlob,
    data: Vec<u8>,
}

/// Random writes, truncates, syncs, reopens and reads on a few blobs through
/// several handles, checked against a plain `Vec<u8>` model of what each
/// handle and the disk should hold.
fn model_run(seed: u64) {
    let (executor, context, _) = Executor::seeded(seed);
    executor.start(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let names: [&[u8]; 2] = [b"x", b"y"];
        let mut durable: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
        let mut handles: Vec<ModelHandle> = Vec::new();
        for _ in 0..600 {
            if handles.is_empty() || rng.gen_ratio(1, 12) {
                let which = rng.gen_range(0..names.len());
                let blob = context.open("m", names[which]).await.unwrap();
                let data = durable.entry(names[which]).or_default().clone();
                handles.push(ModelHandle { which, blob, data });
                continue;
            }
            let slot = rng.gen_range(0..handles.len());
            let handle = &mut handles[slot];
            let name = names[handle.which];
            // Offsets cluster around page boundaries.
            let offset =
                (rng.gen_range(0..5u64) * 4096 + rng.gen_range(0..300u64)).saturating_sub(150);
            match rng.gen_range(0..10) {
                0..=3 => {
                    let first: u8 = rng.gen();
                    let data: Vec<u8> = (0..rng.gen_range(0..9_000u32))
                        .map(|i| first.wrapping_add(i as u8))
                        .collect();
                    handle.blob.write_at(&data, offset).await.unwrap();
                    if !data.is_empty() {
                        let end = offset as usize + data.len();
                        if handle.data.len() < end {
                            handle.data.resize(end, 0);
                        }
                        handle.data[offset as usize..end].copy_from_slice(&data);
                    }
                }
                4 | 5 => {
                    handle.blob.truncate(offset).await.unwrap();
                    handle.data.resize(offset as usize, 0);
                }
                6 | 7 => {
                    handle.blob.sync().await.unwrap();
                    durable.insert(name, handle.data.clone());
                }
                8 => {
                    let handle = handles.swap_remove(slot);
                    handle.blob.close().await.unwrap();
                    durable.insert(name, handle.data);
                    continue;
                }
                _ => {
                    let len = rng.gen_range(0..6_000);
                    let mut buf = vec![0u8; len];
                    let result = handle.blob.read_at(&mut buf, offset).await;
                    if offset as usize + len <= handle.data.len() {
                        result.unwrap();
                        assert_eq!(buf, &handle.data[offset as usize..offset as usize + len]);
                    } else {
                        assert_eq!(result, Err(Error::BlobInsufficientLength));
                    }
                }
            }
            let handle = &handles[slot];
            assert_eq!(handle.blob.len().await.unwrap(), handle.data.len() as u64);
        }
        for (name, data) in durable {
            let blob = context.open("m", name).await.unwrap();
            assert_eq!(contents(&blob).await, data, "blob {name:?}");
        }
    });
}

#[test]
fn random_operations_match_a_model() {
    for seed in 0..24 {
        model_run(seed);
    }
}

/// Each blob's name and contents.
type Snapshot = Vec<(Vec<u8>, Vec<u8>)>;

/// Several tasks write, truncate, sync, reopen, scan and remove blobs in
/// interleavings chosen by the seed; returns the auditor state and what
/// the disk holds at the end.
fn storage_workload(seed: u64) -> (String, Snapshot) {
    let (executor, context, auditor) = Executor::seeded(seed);
    let snapshot = executor.start(async move {
        let mut workers = Vec::new();
        for worker in 0..8u8 {
            let mut context = context.clone();
            workers.push(context.clone().spawn("worker", async move {
                for step in 0..30u8 {
                    let name = [context.gen_range(0..4u8)];
                    let blob = context.open("mixed", &name).await.unwrap();
                    let len = blob.len().await.unwrap();
                    let size = context.gen_range(1..600usize);
                    let data = vec![worker ^ step; size];
                    let offset = context.gen_range(0..=len);
                    blob.write_at(&data, offset).await.unwrap();
                    if context.gen_bool(0.3) {
                        blob.truncate(context.gen_range(0..=len)).await.unwrap();
                    }
                    if context.gen_bool(0.5) {
                        blob.sync().await.unwrap();
                    }
                    commonware_runtime::reschedule().await;
                    if context.gen_bool(0.1) {
                        let _ = context.remove("mixed", Some(&name)).await;
                    }
                    let _ = context.scan("mixed").await;
                    let _ = blob.close().await;
                }
            }));
        }
        for worker in workers {
            worker.await.unwrap();
        }
        let mut snapshot = Vec::new();
        for name in context.scan("mixed").await.unwrap() {
            let blob = context.open("mixed", &name).await.unwrap();
            let data = contents(&blob).await;
            snapshot.push((name, data));
        }
        snapshot
    });
    (auditor.state(), snapshot)
}

#[test]
fn storage_workload_repeats_per_seed() {
    let first = storage_workload(3);
    assert!(!first.1.is_empty());
    assert_eq!(first, storage_workload(3));
    assert_ne!(first.0, storage_workload(4).0);
}

/// Env var that turns the test binary into a child printing its state.
const CHILD: &str = "DETERMINISTIC_STORAGE_CHILD";

#[test]
fn storage_workload_child_process_entry() {
    if std::env::var_os(CHILD).is_some() {
        println!("STATE={}", storage_workload(5).0);
    }
}

#[test]
fn storage_workload_repeats_in_another_process() {
    let stdout = common::rerun_in_child("storage_workload_child_process_entry", CHILD);
    let state = stdout
        .lines()
        .find_map(|line| line.split("STATE=").nth(1))
        .unwrap_or_else(|| panic!("child printed no state:\n{stdout}"));
    assert_eq!(state, storage_workload(5).0);
}

#[test]
fn partition_names_the_tokio_backend_rejects_are_rejected() {
    let (executor, context, _) = Executor::default();
    executor.start(async move {
        for partition in ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "nul\0"] {
            assert_eq!(
                context.open(partition, b"blob").await.err(),
                Some(Error::PartitionCreationFailed(partition.into())),
                "{partition:?}"
            );
            assert_eq!(
                context.scan(partition).await,
                Err(Error::PartitionMissing(partition.into()))
            );
        }
        assert!(context.open("journal-1.data", b"").await.is_ok());
    });
}
