//! Prometheus metrics shared by both runtimes.
//!
//! Names match the reference crate (`tasks_spawned`, `tasks_running`,
//! `task_polls` labelled by task label; `bandwidth`; `open_blobs`,
//! `storage_reads`, `storage_read_bandwidth`, `storage_writes`,
//! `storage_write_bandwidth`), plus network operation counters of ours.
//!
//! The two runtimes report task metrics differently. Tokio's tasks update
//! [`TaskFamilies`] as they spawn, run and finish (the Tokio backend resolves
//! a label once and keeps its metrics, see `tokio::task`). The deterministic
//! executor counts per label itself, under the state borrow it already
//! holds (no atomics, see `commonware_executor::LabelStats`), and
//! [`TaskCounts`] reads those counts when the registry is encoded: a spawn
//! or a poll costs the metrics nothing.

use commonware_executor::Core;
use parking_lot::Mutex;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        MetricType,
    },
    registry::Registry,
};
use std::{borrow::Cow, sync::Arc};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Work {
    label: String,
}

/// Name and help of the three task metrics, as the reference registers them.
const TASKS_SPAWNED: (&str, &str) = ("tasks_spawned", "Total number of tasks spawned");
const TASKS_RUNNING: (&str, &str) = ("tasks_running", "Number of tasks currently running");
const TASK_POLLS: (&str, &str) = ("task_polls", "Total number of task polls");

/// The task metrics of one label, already resolved in the families.
pub(crate) struct LabelMetrics {
    pub(crate) spawned: Counter,
    pub(crate) running: Gauge,
    pub(crate) polls: Counter,
}

/// The Tokio runtime's task metrics: one family per metric, by label.
pub(crate) struct TaskFamilies {
    spawned: Family<Work, Counter>,
    running: Family<Work, Gauge>,
    polls: Family<Work, Counter>,
}

impl TaskFamilies {
    /// Creates the families and registers them in `registry`.
    pub(crate) fn register(registry: &std::sync::Mutex<Registry>) -> Self {
        let families = Self {
            spawned: Family::default(),
            running: Family::default(),
            polls: Family::default(),
        };
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register(TASKS_SPAWNED.0, TASKS_SPAWNED.1, families.spawned.clone());
        registry.register(TASKS_RUNNING.0, TASKS_RUNNING.1, families.running.clone());
        registry.register(TASK_POLLS.0, TASK_POLLS.1, families.polls.clone());
        families
    }
    /// The task metrics of `label`, created (at zero) on first use. Counts
    /// nothing: the caller keeps them and counts its tasks itself.
    pub(crate) fn label(&self, label: &str) -> LabelMetrics {
        let work = Work {
            label: label.to_string(),
        };
        LabelMetrics {
            spawned: self.spawned.get_or_create(&work).clone(),
            running: self.running.get_or_create(&work).clone(),
            polls: self.polls.get_or_create(&work).clone(),
        }
    }
}

/// The deterministic runtime's task metrics: the counts its executor keeps
/// per label, read at each scrape. A recovered runtime points them at its
/// own executor, which carries the counts on.
#[derive(Clone, Default)]
pub(crate) struct TaskCounts {
    source: Arc<Mutex<Option<Core>>>,
}

impl TaskCounts {
    /// Registers the counts in `registry`; they report nothing until
    /// [`TaskCounts::read_from`] names an executor.
    pub(crate) fn register(registry: &std::sync::Mutex<Registry>) -> Self {
        let counts = Self::default();
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register_collector(Box::new(counts.clone()));
        counts
    }

    /// Reports the counts of `core`'s executor from now on.
    pub(crate) fn read_from(&self, core: Core) {
        *self.source.lock() = Some(core);
    }
}

impl std::fmt::Debug for TaskCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskCounts")
    }
}

impl Collector for TaskCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = match &*self.source.lock() {
            Some(core) => core.label_stats(),
            None => Vec::new(),
        };
        let work = |label: &str| Work {
            label: label.to_string(),
        };
        let (name, help) = TASKS_SPAWNED;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, counts) in &stats {
            ConstCounter::new(counts.spawned).encode(family.encode_family(&work(label))?)?;
        }
        let (name, help) = TASKS_RUNNING;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (label, counts) in &stats {
            let running = i64::try_from(counts.running).unwrap_or(i64::MAX);
            ConstGauge::new(running).encode(family.encode_family(&work(label))?)?;
        }
        let (name, help) = TASK_POLLS;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, counts) in &stats {
            ConstCounter::new(counts.polls).encode(family.encode_family(&work(label))?)?;
        }
        Ok(())
    }
}

/// Every metric a runtime reports.
pub(crate) struct Metrics {
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

/// The full label of a task named `name` spawned under a task labelled
/// `parent`: `parent_name`, or `name` alone without a parent.
pub(crate) fn full_label<'a>(parent: Option<&str>, name: &'a str) -> Cow<'a, str> {
    match parent {
        Some(parent) => Cow::Owned(format!("{parent}_{name}")),
        None => Cow::Borrowed(name),
    }
}

/// Whether `label` is the [`full_label`] of `name` under `parent`, without
/// building it.
pub(crate) fn is_spawned_label(label: &str, parent: Option<&str>, name: &str) -> bool {
    match parent {
        None => label == name,
        Some(parent) => {
            label
                .strip_prefix(parent)
                .and_then(|rest| rest.strip_prefix('_'))
                == Some(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn label_resolves_the_registered_families() {
        let registry = std::sync::Mutex::new(Registry::default());
        let families = TaskFamilies::register(&registry);
        let task = families.label("a");
        task.spawned.inc();
        let resolved = families.label("a");
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

    #[test]
    fn prefixed_labels_are_recognised_without_building_them() {
        assert_eq!(full_label(Some("a"), "b"), "a_b");
        assert_eq!(full_label(None, "a_b"), "a_b");
        assert!(is_spawned_label("a_b", None, "a_b"));
        assert!(is_spawned_label("a_b_c", Some("a"), "b_c"));
        assert!(!is_spawned_label("a_b", Some("a"), "c"));
        assert!(!is_spawned_label("ab", Some("a"), "b"));
    }
}
