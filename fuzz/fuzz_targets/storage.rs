//! Storage: an arbitrary sequence of open / write / read / truncate / sync /
//! close / remove / scan / recover operations on the deterministic runtime's
//! simulated disk, checked against a plain model after every step.
//!
//! The model: each `(partition, name)` has a durable image (what `sync` or
//! `close` published) and an identity, new each time the blob is created;
//! each open handle has its own copy, which writes and truncates change
//! (zero-filling gaps), and the identity of the blob it opened, so once
//! that blob is removed its publishes fail even if the name was created
//! again. `recover()` drops every handle and keeps only the durable images. Reads must match the handle's copy, reads
//! past its end fail with `BlobInsufficientLength`, `scan` lists the model's
//! names in order, and errors for missing partitions and blobs match the
//! contract. Offsets past the simulated disk's limit must be errors, never
//! panics or allocations.

#![no_main]

use arbitrary::Arbitrary;
use commonware_runtime::{
    deterministic::{Blob, Context, Executor, MAX_BLOB_LEN},
    Blob as _, Error, Runner, Storage,
};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const PARTITIONS: [&str; 2] = ["p", "q"];
const NAMES: [&[u8]; 3] = [b"a", b"bb", b""];
const MAX_OPS: usize = 256;

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        partition: bool,
        name: u8,
    },
    Write {
        handle: u8,
        offset: u16,
        page: u8,
        data: Vec<u8>,
    },
    Read {
        handle: u8,
        offset: u16,
        len: u16,
    },
    Truncate {
        handle: u8,
        len: u16,
        page: u8,
    },
    Sync {
        handle: u8,
    },
    Close {
        handle: u8,
    },
    Remove {
        partition: bool,
        name: Option<u8>,
    },
    Scan {
        partition: bool,
    },
    Huge {
        handle: u8,
        truncate: bool,
    },
    Recover,
}

/// What the disk should hold.
#[derive(Default)]
struct Model {
    partitions: BTreeSet<&'static str>,
    /// Per blob: its identity and its durable image.
    durable: BTreeMap<(&'static str, &'static [u8]), (u64, Vec<u8>)>,
    next_id: u64,
}

struct Handle {
    partition: &'static str,
    name: &'static [u8],
    /// The identity of the blob it opened.
    id: u64,
    blob: Blob,
    data: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn partition(second: bool) -> &'static str {
    PARTITIONS[usize::from(second)]
}

fn name(index: u8) -> &'static [u8] {
    NAMES[usize::from(index) % NAMES.len()]
}

/// The error publishing a handle's contents should give, if any.
fn publish_error(model: &Model, handle: &Handle) -> Option<Error> {
    if !model.partitions.contains(handle.partition) {
        Some(Error::PartitionMissing(handle.partition.into()))
    } else if model
        .durable
        .get(&(handle.partition, handle.name))
        .map(|(id, _)| *id)
        != Some(handle.id)
    {
        Some(Error::BlobMissing(
            handle.partition.into(),
            hex(handle.name),
        ))
    } else {
        None
    }
}

/// Checks that every durable image reads back exactly (run first in each
/// epoch: after `recover()`, only published data may remain).
async fn check_durable(context: &Context, model: &Model) {
    for ((partition, name), (_, data)) in &model.durable {
        let blob = context.open(partition, name).await.expect("reopen");
        assert_eq!(blob.len().await, Ok(data.len() as u64));
        let mut buf = vec![0u8; data.len()];
        assert_eq!(blob.read_at(&mut buf, 0).await, Ok(()));
        assert!(
            buf == *data,
            "durable image of {partition}/{} changed",
            hex(name)
        );
    }
}

/// Applies `ops` from the front until a `Recover` (left at the front) or the
/// end.
async fn epoch(context: Context, model: &mut Model, ops: &mut VecDeque<Op>) {
    check_durable(&context, model).await;
    let mut handles: Vec<Handle> = Vec::new();
    while let Some(op) = ops.pop_front() {
        let pick = |handle: &u8, handles: &Vec<Handle>| {
            (!handles.is_empty()).then(|| usize::from(*handle) % handles.len())
        };
        match &op {
            Op::Recover => {
                ops.push_front(Op::Recover);
                return;
            }
            Op::Open {
                partition: p,
                name: n,
            } => {
                let (partition, name) = (partition(*p), name(*n));
                let blob = context.open(partition, name).await.expect("open");
                model.partitions.insert(partition);
                let next_id = &mut model.next_id;
                let (id, data) = model
                    .durable
                    .entry((partition, name))
                    .or_insert_with(|| {
                        *next_id += 1;
                        (*next_id, Vec::new())
                    })
                    .clone();
                handles.push(Handle {
                    partition,
                    name,
                    id,
                    blob,
                    data,
                });
            }
            Op::Write {
                handle,
                offset,
                page,
                data,
            } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = &mut handles[h];
                let offset = usize::from(*page % 4) * 4096 + usize::from(*offset % 8192);
                handle
                    .blob
                    .write_at(data, offset as u64)
                    .await
                    .expect("write");
                if !data.is_empty() {
                    let end = offset + data.len();
                    if handle.data.len() < end {
                        handle.data.resize(end, 0);
                    }
                    handle.data[offset..end].copy_from_slice(data);
                }
            }
            Op::Read {
                handle,
                offset,
                len,
            } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = &handles[h];
                let (offset, len) = (usize::from(*offset), usize::from(*len % 9000));
                let mut buf = vec![0u8; len];
                let result = handle.blob.read_at(&mut buf, offset as u64).await;
                if offset + len <= handle.data.len() {
                    assert_eq!(result, Ok(()));
                    assert!(buf == handle.data[offset..offset + len], "read mismatch");
                } else {
                    assert_eq!(result, Err(Error::BlobInsufficientLength));
                }
            }
            Op::Truncate { handle, len, page } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = &mut handles[h];
                let len = usize::from(*page % 4) * 4096 + usize::from(*len % 8192);
                handle.blob.truncate(len as u64).await.expect("truncate");
                handle.data.resize(len, 0);
            }
            Op::Sync { handle } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = &handles[h];
                let expected = publish_error(model, handle);
                assert_eq!(handle.blob.sync().await.err(), expected);
                if expected.is_none() {
                    model.durable.insert(
                        (handle.partition, handle.name),
                        (handle.id, handle.data.clone()),
                    );
                }
            }
            Op::Close { handle } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = handles.swap_remove(h);
                let expected = publish_error(model, &handle);
                assert_eq!(handle.blob.close().await.err(), expected);
                if expected.is_none() {
                    model
                        .durable
                        .insert((handle.partition, handle.name), (handle.id, handle.data));
                }
            }
            Op::Remove {
                partition: p,
                name: n,
            } => {
                let partition = partition(*p);
                let result = context.remove(partition, n.map(name)).await;
                let expected = if !model.partitions.contains(partition) {
                    Some(Error::PartitionMissing(partition.into()))
                } else if let Some(n) = n {
                    let key = (partition, name(*n));
                    model
                        .durable
                        .remove(&key)
                        .is_none()
                        .then(|| Error::BlobMissing(partition.into(), hex(key.1)))
                } else {
                    model.partitions.remove(partition);
                    model.durable.retain(|(p, _), _| *p != partition);
                    None
                };
                assert_eq!(result.err(), expected);
            }
            Op::Scan { partition: p } => {
                let partition = partition(*p);
                let result = context.scan(partition).await;
                if model.partitions.contains(partition) {
                    let names: Vec<Vec<u8>> = model
                        .durable
                        .keys()
                        .filter(|(p, _)| *p == partition)
                        .map(|(_, n)| n.to_vec())
                        .collect();
                    assert_eq!(result, Ok(names));
                } else {
                    assert_eq!(result, Err(Error::PartitionMissing(partition.into())));
                }
            }
            Op::Huge { handle, truncate } => {
                let Some(h) = pick(handle, &handles) else {
                    continue;
                };
                let handle = &handles[h];
                if *truncate {
                    let result = handle.blob.truncate(MAX_BLOB_LEN + 1).await;
                    assert!(
                        matches!(result, Err(Error::BlobTruncateFailed(..))),
                        "{result:?}"
                    );
                } else {
                    let result = handle.blob.write_at(b"x", u64::MAX).await;
                    assert_eq!(result, Err(Error::OffsetOverflow));
                }
            }
        }
        for handle in &handles {
            assert_eq!(handle.blob.len().await, Ok(handle.data.len() as u64));
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut ops: VecDeque<Op> = ops.into_iter().take(MAX_OPS).collect();
    let mut model = Model::default();
    let (mut runner, mut context, _) = Executor::default();
    loop {
        let ctx = context.clone();
        (model, ops) = runner.start(async move {
            epoch(ctx, &mut model, &mut ops).await;
            (model, ops)
        });
        if ops.pop_front().is_none() {
            return;
        }
        (runner, context, _) = context.recover();
    }
});
