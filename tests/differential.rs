//! Differential tests: the same op sequences on the deterministic and the
//! tokio backend must give the same results (see `differential/harness.rs`
//! for the op model and what is compared).
//!
//! `seeded_sequences` runs a few hundred sequences from a fixed splitmix
//! seed and reports every distinct disagreement, shrunk; the other tests
//! are hand-written sequences for the edges the generator aims at, so a
//! failure names the edge directly. `fuzz/fuzz_targets/differential.rs`
//! runs the same harness on fuzzer-chosen sequences.

// Shared with the fuzz target, which uses parts these tests do not.
#[allow(dead_code)]
#[path = "differential/harness/mod.rs"]
mod harness;

use commonware_runtime::deterministic::MAX_BLOB_LEN;
use harness::{assert_agree, check, generate, shrink, Name, Op, Part, SplitMix};
use std::{collections::BTreeMap, time::Instant};

/// Sequences the seeded test runs, and their longest length.
const SEQUENCES: u64 = 400;
const MAX_OPS: usize = 60;

fn part(name: &str) -> Part {
    Part(name.to_string())
}

fn name(bytes: &[u8]) -> Name {
    Name(bytes.to_vec())
}

fn open(partition: &str, blob: &[u8]) -> Op {
    Op::Open {
        partition: part(partition),
        name: name(blob),
    }
}

fn write(h: u8, offset: u64, len: u16) -> Op {
    Op::Write {
        h,
        offset,
        len,
        fill: 0x41,
    }
}

fn read(h: u8, offset: u64, len: u16) -> Op {
    Op::Read { h, offset, len }
}

fn remove(partition: &str, blob: Option<&[u8]>) -> Op {
    Op::Remove {
        partition: part(partition),
        name: blob.map(name),
    }
}

fn scan(partition: &str) -> Op {
    Op::Scan {
        partition: part(partition),
    }
}

/// `n` bytes of `b'x'` followed by `tail`.
fn long(n: usize, tail: &[u8]) -> Vec<u8> {
    let mut name = vec![b'x'; n];
    name.extend_from_slice(tail);
    name
}

/// Runs [`SEQUENCES`] sequences (or `DIFFERENTIAL_SEQUENCES`), comparing
/// everything.
#[test]
fn seeded_sequences() {
    let sequences = std::env::var("DIFFERENTIAL_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEQUENCES);
    let started = Instant::now();
    let mut failures: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut ops_run = 0;
    for seed in 0..sequences {
        let ops = generate(&mut SplitMix::new(seed), MAX_OPS);
        ops_run += ops.len();
        if let Err(mismatch) = check(&ops, seed) {
            let seeds = failures.entry(mismatch.signature()).or_default();
            if seeds.is_empty() {
                reports.push(shrink(mismatch, 120).to_string());
            }
            seeds.push(seed);
        }
    }
    eprintln!(
        "{sequences} sequences ({ops_run} ops) in {:.1?}",
        started.elapsed()
    );
    if !failures.is_empty() {
        let mut summary = String::new();
        for (signature, seeds) in &failures {
            summary.push_str(&format!(
                "  {} sequences: {signature} (seeds {seeds:?})\n",
                seeds.len()
            ));
        }
        panic!(
            "{} of {sequences} sequences disagree, {} distinct ways:\n{summary}\n{}",
            failures.values().map(Vec::len).sum::<usize>(),
            failures.len(),
            reports.join("\n")
        );
    }
}

/// Blob names of any length: around the 127/128-byte boundary of the hex
/// file names, long names sharing a prefix, scan order with short and
/// long names mixed, removal and reopening.
#[test]
fn long_blob_names() {
    let names = [
        long(127, b""),
        long(128, b""),
        long(128, b"1"),
        long(200, b""),
        long(200, b"2"),
        long(4096, b""),
        b"a".to_vec(),
        b"".to_vec(),
        b"\xff".to_vec(),
    ];
    let mut ops = Vec::new();
    for (i, blob) in names.iter().enumerate() {
        ops.push(open("p", blob));
        ops.push(write(0, i as u64, 3));
        ops.push(Op::Close { h: 0 });
    }
    ops.push(scan("p"));
    for blob in &names {
        ops.push(open("p", blob));
        ops.push(Op::Len { h: 0 });
        ops.push(read(0, 0, 4));
        ops.push(Op::Close { h: 0 });
    }
    ops.push(remove("p", Some(&long(128, b""))));
    ops.push(remove("p", Some(&long(128, b""))));
    ops.push(remove("p", Some(&long(300, b""))));
    ops.push(scan("p"));
    ops.push(open("p", &long(128, b"1")));
    ops.push(Op::Len { h: 0 });
    ops.push(open("p", &long(128, b"")));
    ops.push(Op::Len { h: 1 });
    ops.push(scan("p"));
    assert_agree(&ops, 1);
}

/// Partition names: both backends accept and reject the same ones, with
/// the same errors (255 bytes is the longest a directory name can be).
#[test]
fn partition_name_limits() {
    let partitions = [
        "a".repeat(255),
        "b".repeat(256),
        "c".repeat(300),
        "é".repeat(127),
        "é".repeat(128),
        String::new(),
        ".".into(),
        "..".into(),
        "/".into(),
        "a/b".into(),
        "nul\0".into(),
        "\\".into(),
        "...".into(),
    ];
    let mut ops = Vec::new();
    for partition in &partitions {
        ops.push(scan(partition));
        ops.push(remove(partition, Some(b"x")));
        ops.push(open(partition, b"x"));
        ops.push(scan(partition));
        ops.push(remove(partition, Some(b"x")));
        ops.push(remove(partition, None));
        ops.push(scan(partition));
    }
    assert_agree(&ops, 2);
}

/// Offsets and lengths at the edges: empty reads and writes at huge
/// offsets, ends that overflow `u64`, `i64::MAX`, the 1 TiB limit.
#[test]
fn offset_edges() {
    let mut ops = vec![open("p", b"edges"), write(0, 0, 10)];
    for offset in [
        10,
        11,
        MAX_BLOB_LEN - 1,
        MAX_BLOB_LEN,
        MAX_BLOB_LEN + 1,
        i64::MAX as u64 - 1,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
    ] {
        for len in [0, 1, 2] {
            ops.push(read(0, offset, len));
            if offset >= MAX_BLOB_LEN - 1 || len == 0 {
                ops.push(write(0, offset, len));
            }
        }
        ops.push(Op::Truncate { h: 0, len: offset });
        ops.push(Op::Len { h: 0 });
        ops.push(read(0, offset.saturating_sub(4), 4));
        ops.push(Op::Truncate { h: 0, len: 10 });
    }
    ops.push(Op::Truncate {
        h: 0,
        len: MAX_BLOB_LEN,
    });
    ops.push(Op::Sync { h: 0 });
    ops.push(Op::Len { h: 0 });
    assert_agree(&ops, 3);
}

/// Handles used after their blob or partition was removed, and a blob
/// created again under the same name.
#[test]
fn stale_handles() {
    let ops = vec![
        open("p", b"a"),
        write(0, 0, 4),
        Op::Sync { h: 0 },
        remove("p", Some(b"a")),
        write(0, 4, 4),
        read(0, 0, 8),
        Op::Len { h: 0 },
        Op::Sync { h: 0 },
        open("p", b"a"),
        Op::Len { h: 1 },
        Op::Close { h: 0 },
        Op::Len { h: 0 },
        read(0, 0, 1),
        Op::Close { h: 0 },
        open("q", &long(300, b"")),
        write(0, 0, 3),
        remove("q", None),
        Op::Sync { h: 0 },
        open("q", &long(300, b"")),
        Op::Close { h: 0 },
        open("q", &long(300, b"")),
        Op::Len { h: 1 },
    ];
    assert_agree(&ops, 4);
}

/// Several handles of one blob, clones, reopening after close.
#[test]
fn several_handles() {
    let ops = vec![
        open("p", b"m"),
        write(0, 0, 8),
        Op::Clone { h: 0 },
        read(1, 0, 8),
        Op::Sync { h: 1 },
        open("p", b"m"),
        read(2, 0, 8),
        write(2, 8, 8),
        read(0, 0, 8),
        Op::Close { h: 2 },
        Op::Close { h: 0 },
        open("p", b"m"),
        Op::Len { h: 1 },
        Op::Drop { h: 0 },
        scan("p"),
    ];
    assert_agree(&ops, 5);
}

/// A byte stream split differently by sender and receiver, half-closes
/// both ways, a dial to a dropped listener.
#[test]
fn network_streams() {
    let send = |end, len| Op::Send { end, len, fill: 7 };
    let recv = |end, len| Op::Recv { end, len };
    let ops = vec![
        Op::Bind { slot: 0 },
        Op::Bind { slot: 0 },
        Op::Dial { slot: 0 },
        send(0, 5),
        send(0, 0),
        send(0, 1000),
        Op::Accept { slot: 0 },
        recv(1, 3),
        recv(1, 1002),
        send(1, 7),
        recv(0, 7),
        // The dialer's sink closes: the acceptor reads what was sent, then fails.
        send(0, 4),
        Op::DropSink { end: 0 },
        recv(0, 2),
        recv(0, 3),
        // The acceptor's direction still works.
        send(0, 6),
        recv(0, 6),
        Op::DropListener { slot: 0 },
        Op::Dial { slot: 0 },
        Op::Bind { slot: 0 },
        Op::Dial { slot: 0 },
        Op::Accept { slot: 0 },
        Op::DropStream { end: 2 },
        send(2, 3),
        recv(2, 3),
    ];
    assert_agree(&ops, 6);
}
