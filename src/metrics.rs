//! Prometheus metrics shared by both runtimes.
//!
//! Names match the reference crate (`tasks_spawned`, `tasks_running`,
//! `task_polls` labelled by task label; `bandwidth`; `open_blobs`,
//! `storage_reads`, `storage_read_bandwidth`, `storage_writes`,
//! `storage_write_bandwidth`), plus network operation counters of ours.
//! [`Metrics::label`] resolves a label's task metrics in the families; each
//! backend resolves a label once and keeps the result. [`Metrics::spawn`]
//! (the deterministic backend) caches them per label here, so a spawn does
//! not hash into the metric families; the cache also hands out the label as
//! one shared string, so a spawn allocates no label either (a prefixed label
//! is formatted, looked up and dropped). The Tokio backend keeps its own
//! per-label table with a per-thread cache in front (`tokio::task`).

use parking_lot::Mutex;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use std::{collections::BTreeMap, sync::Arc};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Work {
    label: String,
}

/// The task metrics of one label, already resolved in the families.
pub(crate) struct LabelMetrics {
    pub(crate) spawned: Counter,
    pub(crate) running: Gauge,
    pub(crate) polls: Counter,
}

/// Every metric a runtime reports.
pub(crate) struct Metrics {
    tasks_spawned: Family<Work, Counter>,
    tasks_running: Family<Work, Gauge>,
    task_polls: Family<Work, Counter>,
    labels: Mutex<BTreeMap<Arc<str>, Arc<LabelMetrics>>>,

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

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn init(registry: &std::sync::Mutex<Registry>) -> Self {
        let metrics = Self {
            tasks_spawned: Family::default(),
            tasks_running: Family::default(),
            task_polls: Family::default(),
            labels: Mutex::new(BTreeMap::new()),
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
            "tasks_spawned",
            "Total number of tasks spawned",
            metrics.tasks_spawned.clone(),
        );
        registry.register(
            "tasks_running",
            "Number of tasks currently running",
            metrics.tasks_running.clone(),
        );
        registry.register(
            "task_polls",
            "Total number of task polls",
            metrics.task_polls.clone(),
        );
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

    /// The task metrics of `label`, created (at zero) on first use. Counts
    /// nothing: the caller keeps them and counts its tasks itself.
    pub(crate) fn label(&self, label: &str) -> LabelMetrics {
        let work = Work {
            label: label.to_string(),
        };
        LabelMetrics {
            spawned: self.tasks_spawned.get_or_create(&work).clone(),
            running: self.tasks_running.get_or_create(&work).clone(),
            polls: self.task_polls.get_or_create(&work).clone(),
        }
    }

    /// Counts a spawn of a task labelled `label` and returns the label as a
    /// shared string, with the metrics the task updates while it lives (one
    /// pointer, so a task carries eight bytes of metrics).
    pub(crate) fn spawn(&self, label: &str) -> (Arc<str>, Arc<LabelMetrics>) {
        let mut labels = self.labels.lock();
        if let Some((label, entry)) = labels.get_key_value(label) {
            entry.spawned.inc();
            return (label.clone(), entry.clone());
        }
        let entry = Arc::new(self.label(label));
        entry.spawned.inc();
        let label: Arc<str> = label.into();
        labels.insert(label.clone(), entry.clone());
        (label, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn label_resolves_the_registered_metrics() {
        let registry = std::sync::Mutex::new(Registry::default());
        let metrics = Metrics::init(&registry);
        let (_, task) = metrics.spawn("a");
        let resolved = metrics.label("a");
        assert_eq!(resolved.spawned.get(), 1);
        resolved.polls.inc();
        assert_eq!(task.polls.get(), 1);
        resolved.running.inc();
        let mut text = String::new();
        encode(&mut text, &registry.lock().expect("registry")).expect("encode");
        for line in [
            r#"tasks_spawned_total{label="a"} 1"#,
            r#"task_polls_total{label="a"} 1"#,
            r#"tasks_running{label="a"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
