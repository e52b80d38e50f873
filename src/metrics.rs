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
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
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

/// The network and storage metrics of a runtime (both backends count
/// them the same way).
pub(crate) struct IoMetrics {
    pub(crate) network_bandwidth: Counter,
    pub(crate) network_dials: Counter,
    pub(crate) network_accepts: Counter,
    pub(crate) network_sends: Counter,
    pub(crate) network_recvs: Counter,

    pub(crate) open_blobs: Gauge,
    pub(crate) storage_reads: Counter,
    pub(crate) storage_read_bandwidth: Counter,
    pub(crate) storage_writes: Counter,
    pub(crate) storage_write_bandwidth: Counter,
}

impl IoMetrics {
    /// Creates the network and storage metrics and registers them in
    /// `registry`.
    pub(crate) fn init(registry: &std::sync::Mutex<Registry>) -> Self {
        let metrics = Self {
            network_bandwidth: Counter::default(),
            network_dials: Counter::default(),
            network_accepts: Counter::default(),
            network_sends: Counter::default(),
            network_recvs: Counter::default(),
            open_blobs: Gauge::default(),
            storage_reads: Counter::default(),
            storage_read_bandwidth: Counter::default(),
            storage_writes: Counter::default(),
            storage_write_bandwidth: Counter::default(),
        };
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register(
            "bandwidth",
            "Total amount of data sent over network",
            metrics.network_bandwidth.clone(),
        );
        registry.register(
            "network_dials",
            "Total number of outgoing connections dialed",
            metrics.network_dials.clone(),
        );
        registry.register(
            "network_accepts",
            "Total number of incoming connections accepted",
            metrics.network_accepts.clone(),
        );
        registry.register(
            "network_sends",
            "Total number of send operations",
            metrics.network_sends.clone(),
        );
        registry.register(
            "network_recvs",
            "Total number of recv operations",
            metrics.network_recvs.clone(),
        );
        registry.register(
            "open_blobs",
            "Number of open blobs",
            metrics.open_blobs.clone(),
        );
        registry.register(
            "storage_reads",
            "Total number of disk reads",
            metrics.storage_reads.clone(),
        );
        registry.register(
            "storage_read_bandwidth",
            "Total amount of data read from disk",
            metrics.storage_read_bandwidth.clone(),
        );
        registry.register(
            "storage_writes",
            "Total number of disk writes",
            metrics.storage_writes.clone(),
        );
        registry.register(
            "storage_write_bandwidth",
            "Total amount of data written to disk",
            metrics.storage_write_bandwidth.clone(),
        );
        drop(registry);
        metrics
    }
}
