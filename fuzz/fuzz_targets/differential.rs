//! Differential: a fuzzer-chosen sequence of storage and network operations
//! runs on the deterministic runtime and on the tokio runtime (real files in
//! a scratch directory, real loopback TCP), and every result must agree
//! except where CONTRACT.md documents a difference.
//!
//! The op model, interpreter and comparison are `tests/differential/
//! harness.rs`, shared with the seeded test `tests/differential.rs`; here
//! the fuzzer's bytes are the generator's choices. A disagreement panics
//! with the shrunk op sequence and both results.

#![no_main]

#[allow(dead_code)]
#[path = "../../tests/differential/harness/mod.rs"]
mod harness;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

/// Longest sequence one input makes.
const MAX_OPS: usize = 64;

/// The generator's choices, read from the fuzzer's bytes (zeros once they
/// run out, which ends the sequence).
struct Choices<'a>(Unstructured<'a>);

impl harness::Source for Choices<'_> {
    fn below(&mut self, n: u64) -> u64 {
        self.0.int_in_range(0..=n.max(1) - 1).unwrap_or(0)
    }

    fn exhausted(&self) -> bool {
        self.0.is_empty()
    }
}

fuzz_target!(|data: &[u8]| {
    let ops = harness::generate(&mut Choices(Unstructured::new(data)), MAX_OPS);
    harness::assert_agree(&ops, 0);
});
