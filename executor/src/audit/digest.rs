//! The running digest behind `Auditor::state()`.
//!
//! Every scheduling decision and every event a backend reports is folded into
//! two 64-bit lanes. The digest depends only on the sequence of events fed to
//! it (no addresses, no clocks), so two runs that do the same things in the
//! same order end in the same state. It is not cryptographic: it only has to
//! make accidental collisions between different runs vanishingly unlikely
//! while costing a few nanoseconds per event, because it stays on in every
//! run.
//!
//! A digest can also keep a [`Trace`]: every event with the task that caused
//! it, so two runs that should have been identical can be compared event by
//! event to find where they diverged. The trace is off unless asked for; off,
//! it costs one never-taken branch per event.

use std::{collections::BTreeMap, sync::Arc};

/// Event kinds fed to the digest. Backends may use any value; the executor's
/// own events use the ones below.
pub mod kind {
    /// A task was spawned (word: task sequence number; bytes: label).
    pub const SPAWN: u8 = 1;
    /// A task was polled (word: task sequence number).
    pub const POLL: u8 = 2;
    /// A task finished (word: task sequence number).
    pub const FINISH: u8 = 3;
    /// A task was aborted (word: task sequence number).
    pub const ABORT: u8 = 4;
    /// Virtual time skipped ahead, past the one cycle every round adds
    /// (word: new time in nanoseconds). A plain tick is implied by the
    /// round and not recorded.
    pub const TIME: u8 = 5;
    /// A random number was drawn (word: the value).
    pub const RANDOM: u8 = 6;
    /// A scheduling round started (word: number of tasks chosen to run).
    pub const ROUND: u8 = 7;
    /// A fault decision fired (word: the fault's parameter seed). A fault
    /// that does not fire leaves no event: replay knows only what fired.
    pub const FAULT: u8 = 8;

    /// The name of one of the executor's kinds above.
    pub fn name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            SPAWN => "spawn",
            POLL => "poll",
            FINISH => "finish",
            ABORT => "abort",
            TIME => "time",
            RANDOM => "random",
            ROUND => "round",
            FAULT => "fault",
            _ => return None,
        })
    }
}

/// One traced event. Payloads are kept as length and hash only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The event kind (see [`kind`]).
    pub kind: u8,
    /// The event's word.
    pub word: u64,
    /// Length of the event's payload.
    pub len: usize,
    /// Hash of the event's payload.
    pub hash: u64,
    /// Sequence number of the task being polled when the event happened
    /// (the polled task itself for a poll event); `None` for the executor
    /// between polls.
    pub task: Option<u64>,
}

/// Every event of a run, in order, with the task that caused it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    events: Vec<TraceEvent>,
    /// Task labels by sequence number, from spawn events.
    labels: BTreeMap<u64, Arc<str>>,
    current: Option<u64>,
}

impl Trace {
    /// The events so far.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// The label of the task with sequence number `seq`, if it was spawned
    /// while tracing.
    pub fn label(&self, seq: u64) -> Option<&str> {
        self.labels.get(&seq).map(|label| &**label)
    }

    fn push(&mut self, kind: u8, word: u64, bytes: &[u8]) {
        match kind {
            kind::POLL => self.current = Some(word),
            kind::ROUND | kind::TIME => self.current = None,
            kind::SPAWN => {
                self.labels
                    .insert(word, String::from_utf8_lossy(bytes).into());
            }
            _ => {}
        }
        let hash = if bytes.is_empty() {
            0
        } else {
            let mut digest = Digest::default();
            digest.mix_bytes(bytes);
            digest.a ^ digest.b.rotate_left(17)
        };
        self.events.push(TraceEvent {
            kind,
            word,
            len: bytes.len(),
            hash,
            task: self.current,
        });
    }
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const K3: u64 = 0x1656_67B1_9E37_79F9;

/// A running, order-sensitive hash of events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    a: u64,
    b: u64,
    events: u64,
    trace: Option<Box<Trace>>,
}

impl Default for Digest {
    fn default() -> Self {
        Self {
            a: 0x6A09_E667_F3BC_C908,
            b: 0xBB67_AE85_84CA_A73B,
            events: 0,
            trace: None,
        }
    }
}

impl Digest {
    /// Folds one 64-bit word into both lanes.
    #[inline]
    fn mix(&mut self, word: u64) {
        self.a = (self.a ^ word).wrapping_mul(K1).rotate_left(29);
        self.b = (self.b.wrapping_add(word) ^ self.a)
            .wrapping_mul(K2)
            .rotate_left(31);
    }

    /// Folds an event's kind, position and word in one `mix`: the kind and
    /// position are spread by an odd multiplier (a bijection) and xored onto
    /// the word, so two events at one position collide only if their words
    /// differ by exactly the spread difference of their kinds.
    #[inline]
    fn head(&mut self, kind: u8, word: u64) {
        self.events += 1;
        let tag = (u64::from(kind) << 56 ^ self.events).wrapping_mul(K3);
        self.mix(word ^ tag);
    }

    /// Records an event of `kind` carrying one word of data.
    #[inline]
    pub fn event(&mut self, kind: u8, word: u64) {
        self.head(kind, word);
        if let Some(trace) = &mut self.trace {
            trace.push(kind, word, &[]);
        }
    }

    /// Records the spawn of task `seq` with the label `name`, whose id in
    /// the executor's label table is `label`. The label's text is folded in
    /// only when it is `fresh` (new to the table), its id after that: ids
    /// are handed out in order of first use, so both carry the same
    /// information, and a spawn with a known label hashes no bytes. The
    /// trace (if kept) records the text every time.
    pub fn spawn(&mut self, seq: u64, label: u32, name: &str, fresh: bool) {
        // Injective while `seq < 2^40` (a trillion spawns).
        self.head(kind::SPAWN, seq ^ (u64::from(label) << 40));
        if fresh {
            self.mix_bytes(name.as_bytes());
        }
        if let Some(trace) = &mut self.trace {
            trace.push(kind::SPAWN, seq, name.as_bytes());
        }
    }

    /// Records an event of `kind` carrying a word and a byte payload.
    pub fn event_bytes(&mut self, kind: u8, word: u64, bytes: &[u8]) {
        self.head(kind, word);
        self.mix_bytes(bytes);
        if let Some(trace) = &mut self.trace {
            trace.push(kind, word, bytes);
        }
    }

    /// Starts keeping a [`Trace`] of every later event (a no-op if one is
    /// kept already).
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Box::default);
    }

    /// The trace, if one is kept.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_deref()
    }

    /// Folds a payload into the lanes. Payloads (blocks written to storage,
    /// messages sent) are the bulk of what the digest sees, so they go
    /// through a wide accumulator first: 64-byte stripes, eight 64-bit lanes
    /// each taking a keyed 32×32-bit product and a neighbour's word (the
    /// shape of xxh3's accumulate step), which the compiler turns into
    /// vector multiplies. Each lane's key changes per stripe, so a word's
    /// lane and stripe both matter. The lanes are then merged into one word
    /// for `mix`, followed by the tail (< 64 bytes) as little-endian words.
    fn mix_bytes(&mut self, bytes: &[u8]) {
        self.mix(bytes.len() as u64);
        let mut stripes = bytes.chunks_exact(STRIPE);
        if bytes.len() >= STRIPE {
            let mut lanes = LANE_SEEDS;
            let mut keys = LANE_KEYS;
            for stripe in &mut stripes {
                accumulate(&mut lanes, &keys, stripe);
                for key in &mut keys {
                    *key = key.wrapping_add(K1);
                }
            }
            self.mix(merge(&lanes));
        }
        // The tail as little-endian words, zero-padded.
        for rest in stripes.remainder().chunks(8) {
            self.mix(padded_word(rest));
        }
    }

    /// Number of events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The digest as 32 lowercase hex characters.
    pub fn hex(&self) -> String {
        let finish = |mut x: u64| {
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
            x ^ (x >> 33)
        };
        // Spelled out digit by digit: `format!` costs more than the rest of
        // an empty run, and a sweep reads the state of every seed.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        let words = [
            finish(self.a ^ self.events),
            finish(self.b.wrapping_add(self.a)),
        ];
        for (i, digit) in hex.iter_mut().enumerate() {
            let shift = 60 - 4 * (i % 16);
            *digit = DIGITS[(words[i / 16] >> shift) as usize & 15];
        }
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }
}

/// Bytes per accumulator step of [`Digest::mix_bytes`].
const STRIPE: usize = 64;
const LANES: usize = STRIPE / 8;
const LANE_SEEDS: [u64; LANES] = [K1, K2, K3, K1 ^ K2, K2 ^ K3, K1 ^ K3, !K1, !K2];
const LANE_KEYS: [u64; LANES] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
    0x4528_21E6_38D0_1377,
    0xBE54_66CF_34E9_0C6C,
    0xC0AC_29B7_C97C_50DD,
    0x3F84_D5B5_B547_0917,
];

/// Folds the lanes into one word: a folded 128-bit product per pair of
/// lanes (as xxh3 merges its accumulators), each rotated into the result.
fn merge(lanes: &[u64; LANES]) -> u64 {
    lanes.chunks_exact(2).fold(0u64, |merged, pair| {
        let wide = u128::from(pair[0] ^ K1) * u128::from(pair[1] ^ K3);
        merged
            .rotate_left(23)
            .wrapping_add(wide as u64 ^ (wide >> 64) as u64)
    })
}

/// Folds one stripe into the lanes: each lane adds the product of its
/// keyed word's halves, and its neighbour's plain word.
#[inline(always)]
fn accumulate(lanes: &mut [u64; LANES], keys: &[u64; LANES], stripe: &[u8]) {
    for i in 0..LANES {
        let data = le_word(stripe, i * 8);
        let keyed = data ^ keys[i];
        lanes[i ^ 1] = lanes[i ^ 1].wrapping_add(data);
        lanes[i] = lanes[i].wrapping_add((keyed & 0xFFFF_FFFF) * (keyed >> 32));
    }
}

/// `bytes` (at most 8) as a zero-padded little-endian word. Built from two
/// overlapping fixed-size reads instead of a variable-length copy (a
/// `memcpy` call, the bulk of the cost of a short payload such as a label)
/// or a byte loop: for 4 to 8 bytes, the first and the last four bytes,
/// whose overlap holds the same bytes in both; below that, likewise with
/// two bytes, and one byte alone.
#[inline(always)]
fn padded_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n <= 8);
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let u32_at = |at: usize| {
        u64::from(u32::from_le_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    };
    match n {
        0 => 0,
        1 => u64::from(bytes[0]),
        2..=3 => u16_at(0) | u16_at(n - 2) << (8 * (n - 2)),
        _ => u32_at(0) | u32_at(n - 4) << (8 * (n - 4)),
    }
}

/// The little-endian word at `at` in `chunk` (which has 8 bytes there).
#[inline(always)]
fn le_word(chunk: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&chunk[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawns_fold_a_label_text_once_then_its_id() {
        let spawns = |names: [(&str, u32, bool); 3]| {
            let mut d = Digest::default();
            d.enable_trace();
            for (seq, (name, id, fresh)) in names.into_iter().enumerate() {
                d.spawn(seq as u64, id, name, fresh);
            }
            d
        };
        let base = spawns([("a", 0, true), ("b", 1, true), ("a", 0, false)]);
        // Another text for a new label, or another label for a spawn.
        let renamed = spawns([("a", 0, true), ("c", 1, true), ("a", 0, false)]);
        let relabelled = spawns([("a", 0, true), ("b", 1, true), ("b", 1, false)]);
        assert_ne!(base.hex(), renamed.hex());
        assert_ne!(base.hex(), relabelled.hex());
        assert_eq!(
            base.hex(),
            spawns([("a", 0, true), ("b", 1, true), ("a", 0, false)]).hex()
        );
        // The trace names every spawn, known labels too.
        assert_eq!(base.trace().unwrap().label(2), Some("a"));
    }

    #[test]
    fn same_events_same_state() {
        let mut x = Digest::default();
        let mut y = Digest::default();
        for d in [&mut x, &mut y] {
            d.event(kind::SPAWN, 1);
            d.event_bytes(9, 2, b"hello world");
        }
        assert_eq!(x.hex(), y.hex());
        assert_eq!(x.hex().len(), 32);
    }

    #[test]
    fn order_kind_and_payload_matter() {
        let run = |events: &[(u8, u64, &[u8])]| {
            let mut d = Digest::default();
            for (k, w, b) in events {
                d.event_bytes(*k, *w, b);
            }
            d.hex()
        };
        let base = run(&[(1, 1, b"a"), (2, 2, b"b")]);
        assert_ne!(base, run(&[(2, 2, b"b"), (1, 1, b"a")]));
        assert_ne!(base, run(&[(1, 1, b"a"), (3, 2, b"b")]));
        assert_ne!(base, run(&[(1, 1, b"a"), (2, 2, b"c")]));
        assert_ne!(base, run(&[(1, 1, b"a"), (2, 2, b"b\0")]));
        assert_ne!(run(&[]), run(&[(1, 0, b"")]));
    }

    #[test]
    fn every_payload_bit_and_chunk_position_matters() {
        let hash = |bytes: &[u8]| {
            let mut d = Digest::default();
            d.event_bytes(9, 0, bytes);
            d.hex()
        };
        let mut seen = std::collections::BTreeSet::new();
        for len in [1, 15, 16, 17, 31, 32, 64, 100, 4096] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let base = hash(&payload);
            assert!(seen.insert(base.clone()), "length {len} collides");
            for bit in (0..len * 8).step_by(len.max(8) / 8) {
                let mut flipped = payload.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert_ne!(base, hash(&flipped), "bit {bit} of {len} bytes ignored");
            }
            if len >= 32 {
                let mut swapped = payload.clone();
                let (first, second) = swapped.split_at_mut(16);
                first.swap_with_slice(&mut second[..16]);
                assert_ne!(base, hash(&swapped), "16-byte chunks swapped unnoticed");
            }
        }
        assert_ne!(hash(&[0; 32]), hash(&[0; 33]));
    }

    #[test]
    fn trace_is_off_by_default_and_does_not_change_the_state() {
        let mut plain = Digest::default();
        let mut traced = Digest::default();
        traced.enable_trace();
        assert!(plain.trace().is_none());
        for d in [&mut plain, &mut traced] {
            d.event_bytes(kind::SPAWN, 0, b"root");
            d.event(kind::ROUND, 1);
            d.event(kind::POLL, 0);
            d.event_bytes(kind::SPAWN, 1, b"worker");
            d.event_bytes(40, 9, b"payload");
            d.event(kind::TIME, 5);
            d.event(kind::RANDOM, 7);
        }
        assert_eq!(plain.hex(), traced.hex());
        let trace = traced.trace().unwrap();
        let tasks: Vec<_> = trace.events().iter().map(|e| e.task).collect();
        assert_eq!(tasks, [None, None, Some(0), Some(0), Some(0), None, None]);
        assert_eq!(trace.label(1), Some("worker"));
        assert_eq!(trace.label(2), None);
        let payload = &trace.events()[4];
        assert_eq!((payload.kind, payload.word, payload.len), (40, 9, 7));
        assert_ne!(payload.hash, trace.events()[3].hash);
        assert_eq!(kind::name(kind::POLL), Some("poll"));
        assert_eq!(kind::name(40), None);
    }

    #[test]
    fn tail_words_are_zero_padded_little_endian() {
        // A payload shorter than a chunk is its length, then its bytes as
        // zero-padded little-endian words (so digests do not depend on how
        // the words are built).
        for len in 0..16usize {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
            let mut folded = Digest::default();
            folded.mix_bytes(&bytes);
            let mut expected = Digest::default();
            expected.mix(len as u64);
            for rest in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..rest.len()].copy_from_slice(rest);
                expected.mix(u64::from_le_bytes(word));
            }
            assert_eq!((folded.a, folded.b), (expected.a, expected.b), "len {len}");
        }
    }
}
