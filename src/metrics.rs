//! What both runtimes share about metrics: the network and storage
//! counters ([`IoMetrics`]), the names of the three task metrics and their
//! label set, and the rule that names a spawned task.
//!
//! Names match the reference crate (`tasks_spawned`, `tasks_running`,
//! `task_polls` labelled by task label; `bandwidth`; `open_blobs`,
//! `storage_reads`, `storage_read_bandwidth`, `storage_writes`,
//! `storage_write_bandwidth`), plus network operation counters of ours.
//!
//! The two runtimes count their tasks differently, each in its own module:
//! the Tokio backend's tasks update prometheus families as they spawn, run
//! and finish (`tokio::metrics`, `tokio::task`); the deterministic executor
//! counts per label itself and the registry reads those counts when it is
//! encoded (`deterministic::metrics`).
//!
//! # Invariants
//! * A task spawned with name `b` by a task labelled `a` is labelled `a_b`;
//!   a task spawned outside any task, or by a task with an empty label, is
//!   labelled `b`. The executor's `child_label` and `is_child_label` are
//!   the only place the workspace spells that rule: the deterministic
//!   runtime's executor applies it to its own labels, and the Tokio backend
//!   calls them through the re-export here.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::sync::{
    atomic::{AtomicI64, AtomicU64, Ordering},
    Arc,
};

pub(crate) use commonware_executor::{child_label, is_child_label};

/// The label set of the task metrics: the task's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TaskLabel {
    pub(crate) label: String,
}

impl TaskLabel {
    pub(crate) fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
        }
    }
}

/// Name and help of the three task metrics, as the reference registers them.
pub(crate) const TASKS_SPAWNED: (&str, &str) = ("tasks_spawned", "Total number of tasks spawned");
pub(crate) const TASKS_RUNNING: (&str, &str) =
    ("tasks_running", "Number of tasks currently running");
pub(crate) const TASK_POLLS: (&str, &str) = ("task_polls", "Total number of task polls");

/// A counter only its runtime adds to: one relaxed atomic add, no
/// allocation (a prometheus `Counter` is a heap-allocated `Arc`, and a
/// simulation builds a runtime per seed).
#[derive(Debug, Default)]
pub(crate) struct Count(AtomicU64);

impl Count {
    pub(crate) fn inc(&self) {
        self.inc_by(1);
    }

    pub(crate) fn inc_by(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge only its runtime moves (see [`Count`]).
#[derive(Debug, Default)]
pub(crate) struct Level(AtomicI64);

impl Level {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The network and storage metrics of a runtime (both backends count
/// them the same way), read by the registry when it is encoded.
#[derive(Debug, Default)]
pub(crate) struct IoMetrics {
    pub(crate) network_bandwidth: Count,
    pub(crate) network_dials: Count,
    pub(crate) network_accepts: Count,
    pub(crate) network_sends: Count,
    pub(crate) network_recvs: Count,

    pub(crate) open_blobs: Level,
    pub(crate) storage_reads: Count,
    pub(crate) storage_read_bandwidth: Count,
    pub(crate) storage_writes: Count,
    pub(crate) storage_write_bandwidth: Count,
}

/// Name, help and value of a counter.
type Named = (&'static str, &'static str, fn(&IoMetrics) -> &Count);

/// The network counters, in the order they are encoded.
const NETWORK: [Named; 5] = [
    ("bandwidth", "Total amount of data sent over network", |m| {
        &m.network_bandwidth
    }),
    (
        "network_dials",
        "Total number of outgoing connections dialed",
        |m| &m.network_dials,
    ),
    (
        "network_accepts",
        "Total number of incoming connections accepted",
        |m| &m.network_accepts,
    ),
    ("network_sends", "Total number of send operations", |m| {
        &m.network_sends
    }),
    ("network_recvs", "Total number of recv operations", |m| {
        &m.network_recvs
    }),
];

/// The storage counters, encoded after the `open_blobs` gauge.
const STORAGE: [Named; 4] = [
    ("storage_reads", "Total number of disk reads", |m| {
        &m.storage_reads
    }),
    (
        "storage_read_bandwidth",
        "Total amount of data read from disk",
        |m| &m.storage_read_bandwidth,
    ),
    ("storage_writes", "Total number of disk writes", |m| {
        &m.storage_writes
    }),
    (
        "storage_write_bandwidth",
        "Total amount of data written to disk",
        |m| &m.storage_write_bandwidth,
    ),
];

impl IoMetrics {
    /// Creates the network and storage metrics and registers them in
    /// `registry`: one collector, so registering copies no name or help
    /// text (they are spelled out only when the registry is encoded).
    pub(crate) fn init(registry: &std::sync::Mutex<Registry>) -> Arc<Self> {
        let metrics = Arc::new(Self::default());
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register_collector(Box::new(IoCollector(metrics.clone())));
        drop(registry);
        metrics
    }
}

/// Encodes a runtime's [`IoMetrics`] as the counters and gauge the
/// reference registers, under the same names.
#[derive(Debug)]
struct IoCollector(Arc<IoMetrics>);

impl Collector for IoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(&mut encoder)
    }
}

impl IoMetrics {
    /// Encodes the metrics as the counters and gauge the reference
    /// registers (for a collector that reports them with others).
    pub(crate) fn encode(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let metrics = self;
        for (name, help, count) in NETWORK {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(count(metrics).get()).encode(family)?;
        }
        let family = encoder.encode_descriptor(
            "open_blobs",
            "Number of open blobs",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(metrics.open_blobs.get()).encode(family)?;
        for (name, help, count) in STORAGE {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(count(metrics).get()).encode(family)?;
        }
        Ok(())
    }
}
