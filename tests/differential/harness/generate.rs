//! Generating op sequences from any source of choices: a seeded
//! splitmix for the test, the fuzzer's bytes for the fuzz target.

use super::*;

/// Where a generator's choices come from.
pub trait Source {
    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64;
    /// Whether the source has run out (the sequence then ends).
    fn exhausted(&self) -> bool {
        false
    }
}

/// A seeded splitmix64 generator: portable and stable, so a seed names the
/// same sequence forever.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Source for SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub(super) fn pick<T: Clone>(src: &mut impl Source, items: &[T]) -> T {
    items[src.below(items.len() as u64) as usize].clone()
}

/// A partition name: mostly `p` or `q`, sometimes hostile or at the
/// 255-byte limit.
pub(super) fn gen_partition(src: &mut impl Source) -> Part {
    let name = match src.below(20) {
        0..=10 => "p".to_string(),
        11..=14 => "q".to_string(),
        15 => pick(
            src,
            &[
                "", ".", "..", "/", "a/b", "\\", "nul\0x", "/abs", "./p", "p/",
            ],
        )
        .to_string(),
        16 => pick(
            src,
            &[
                "a".repeat(255),
                "b".repeat(256),
                "c".repeat(300),
                "é".repeat(127),
                "é".repeat(128),
                "ü".repeat(85),
            ],
        ),
        17 => {
            let len = src.below(6);
            (0..len)
                .map(|_| pick(src, &['a', 'b', '.', '/', '\0', 'é', '-', ' ', '\\']))
                .collect()
        }
        _ => "q".to_string(),
    };
    Part(name)
}

/// A blob name: mostly a few short ones (so blobs are reopened), sometimes
/// hostile, non-UTF-8 or long (around the 127/128-byte boundary of the
/// tokio file names, up to 5000 bytes, with shared prefixes).
pub(super) fn gen_name(src: &mut impl Source) -> Name {
    let name = match src.below(16) {
        0..=7 => pick(src, &[&b"a"[..], b"b", b"a", b"b", b""]).to_vec(),
        8..=9 => pick(
            src,
            &[
                &b".."[..],
                b"/",
                b"\0",
                b"a/b",
                b"\xff\xfe\x80",
                b".",
                b"_empty",
            ],
        )
        .to_vec(),
        10..=13 => {
            let count = pick(src, &[126, 127, 128, 129, 200, 255, 256, 4096, 5000]);
            let mut name = vec![b'x'; count];
            match src.below(3) {
                0 => {}
                1 => name.push(b'1'),
                _ => name.push(b'2'),
            }
            name
        }
        14 => {
            let len = src.below(9);
            (0..len).map(|_| src.below(256) as u8).collect()
        }
        _ => {
            let mut name: Vec<u8> = (0..4).map(|_| src.below(256) as u8).collect();
            let count = 120 + src.below(480) as usize;
            name.extend(std::iter::repeat_n(b'y', count));
            name
        }
    };
    Name(name)
}

/// An offset (or a truncate length): mostly small, sometimes at the edges
/// (the simulated disk's limit, `i64::MAX`, `u64::MAX`).
pub(super) fn gen_offset(src: &mut impl Source) -> u64 {
    match src.below(16) {
        0..=7 => src.below(64),
        8..=9 => src.below(5000),
        10 => src.below(70_000),
        11 => (LIMIT - 4) + src.below(8),
        12 => (i64::MAX as u64 - 4) + src.below(8),
        13 => u64::MAX - src.below(8),
        14 => u64::MAX - src.below(70_000),
        _ => src.below(u64::MAX),
    }
}

/// A read offset: mostly inside what small writes wrote.
pub(super) fn gen_read_offset(src: &mut impl Source) -> u64 {
    match src.below(16) {
        0..=9 => src.below(48),
        10..=11 => src.below(5000),
        _ => gen_offset(src),
    }
}

/// A buffer length (at most [`MAX_BUF`]).
pub(super) fn gen_len(src: &mut impl Source) -> u16 {
    match src.below(8) {
        0 => 0,
        1..=4 => src.below(32) as u16,
        5..=6 => src.below(5000) as u16,
        _ => src.below(MAX_BUF as u64) as u16,
    }
}

/// A write whose allocation in the simulation stays small: non-empty writes
/// end below [`MAX_WRITE_END`] or past the limit.
pub(super) fn gen_write(src: &mut impl Source, h: u8) -> Op {
    let mut offset = gen_offset(src);
    let len = gen_len(src);
    let end = offset.checked_add(u64::from(len));
    if len > 0 && end.is_some_and(|end| end > MAX_WRITE_END && end <= LIMIT) {
        // Cross the limit instead: an error in both backends.
        offset = LIMIT - u64::from(len) + 1 + src.below(4);
    }
    Op::Write {
        h,
        offset,
        len,
        fill: src.below(256) as u8,
    }
}

/// Which families of ops a sequence draws from.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    Storage,
    Network,
    Mixed,
}

/// A sequence of at most `max_ops` ops drawn from `src`.
pub fn generate(src: &mut impl Source, max_ops: usize) -> Vec<Op> {
    let mode = match src.below(10) {
        0..=5 => Mode::Storage,
        6..=8 => Mode::Network,
        _ => Mode::Mixed,
    };
    let len = 1 + src.below(max_ops.max(1) as u64) as usize;
    let mut ops = Vec::with_capacity(len);
    while ops.len() < len && !src.exhausted() {
        let storage = match mode {
            Mode::Storage => true,
            Mode::Network => false,
            Mode::Mixed => src.below(2) == 0,
        };
        ops.push(if storage {
            gen_storage(src)
        } else {
            gen_network(src)
        });
    }
    ops
}

pub(super) fn gen_storage(src: &mut impl Source) -> Op {
    let h = src.below(256) as u8;
    match src.below(90) {
        0..=13 | 86..=89 => Op::Open {
            partition: gen_partition(src),
            name: gen_name(src),
        },
        14..=16 => Op::Clone { h },
        17..=30 => gen_write(src, h),
        31..=42 => Op::Read {
            h,
            offset: gen_read_offset(src),
            len: gen_len(src),
        },
        43..=47 => Op::Len { h },
        48..=52 => Op::Truncate {
            h,
            len: gen_offset(src),
        },
        53..=59 => Op::Sync { h },
        60..=65 | 78 => Op::Close { h },
        66..=67 => Op::Drop { h },
        68..=74 => Op::Remove {
            partition: gen_partition(src),
            name: Some(gen_name(src)),
        },
        75..=77 => Op::Remove {
            partition: gen_partition(src),
            name: None,
        },
        _ => Op::Scan {
            partition: gen_partition(src),
        },
    }
}

pub(super) fn gen_network(src: &mut impl Source) -> Op {
    let slot = src.below(256) as u8;
    let end = src.below(256) as u8;
    match src.below(68) {
        0..=7 => Op::Bind { slot },
        8..=9 => Op::DropListener { slot },
        10..=19 => Op::Dial { slot },
        20..=29 => Op::Accept { slot },
        30..=45 => Op::Send {
            end,
            len: gen_len(src).min(8192),
            fill: src.below(256) as u8,
        },
        46..=61 => Op::Recv {
            end,
            len: gen_len(src).min(8192),
        },
        62..=64 => Op::DropSink { end },
        _ => Op::DropStream { end },
    }
}
