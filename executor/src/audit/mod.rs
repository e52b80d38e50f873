//! What a run leaves for its auditors: the digest of every event, and the
//! labels of its tasks with their counts.
//!
//! * `digest.rs`: [`Digest`](digest::Digest), the running hash behind
//!   `Auditor::state()`, and the optional event [`Trace`](digest::Trace).
//! * `labels.rs`: the executor's label table and the per-label
//!   [`LabelStats`](labels::LabelStats) a metrics scrape reads.
//!
//! Neither knows about tasks or time: the executor feeds them.

pub mod digest;
pub(crate) mod labels;
