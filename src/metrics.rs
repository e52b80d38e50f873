//! Prometheus metrics shared by both runtimes.
//!
//! Names match the reference crate (`tasks_spawned`, `tasks_running`,
//! `task_polls` labelled by task label; `bandwidth`; `open_blobs`,
//! `storage_reads`, `storage_read_bandwidth`, `storage_writes`,
//! `storage_write_bandwidth`), plus network operation counters of ours.
//! [`Metrics::label`] resolves a label's task metrics in the families; each
//! backend resolves a label once and keeps the result. [`Metrics::spawn`]
//! (the deterministic backend) keeps them per label here, so a spawn does
//! not hash into the metric families; it also hands out the label as one
//! shared string, so a spawn allocates no label either, and it checks the
//! last few labels it resolved first, so a repeated spawn does not format a
//! prefixed label or search the table. The Tokio backend keeps its own
//! per-label table with a per-thread cache in front (`tokio::task`).

use parking_lot::Mutex;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

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
    labels: Mutex<Labels>,

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
            labels: Mutex::new(Labels::default()),
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

    /// Counts a spawn of a task named `name` under a task labelled `parent`
    /// (`None` for no prefix) and returns the new task's full label as a
    /// shared string, with the metrics the task updates while it lives (one
    /// pointer, so a task carries eight bytes of metrics). The last few
    /// labels resolved are checked first, so a repeated spawn neither
    /// formats nor searches the table.
    pub(crate) fn spawn(&self, parent: Option<&str>, name: &str) -> (Arc<str>, Arc<LabelMetrics>) {
        // The guard goes at the end of the statement, before the count.
        let (label, entry) = self.labels.lock().resolve(parent, name, self);
        entry.spawned.inc();
        (label, entry)
    }
}

/// The deterministic runtime's resolved labels: every label (kept for the
/// runtime's life, as the metric families keep them) and the few resolved
/// last.
#[derive(Default)]
struct Labels {
    table: BTreeMap<Arc<str>, Arc<LabelMetrics>>,
    recent: [Option<(Arc<str>, Arc<LabelMetrics>)>; RECENT],
    next: usize,
}

/// How many resolved labels [`Metrics::spawn`] checks before the table.
const RECENT: usize = 8;

impl Labels {
    /// The label `name` spawned under `parent` and its metrics: from the
    /// recent ones, else from the table (created in `metrics` on first use),
    /// then remembered.
    fn resolve(
        &mut self,
        parent: Option<&str>,
        name: &str,
        metrics: &Metrics,
    ) -> (Arc<str>, Arc<LabelMetrics>) {
        if let Some(found) = self
            .recent
            .iter()
            .flatten()
            .find(|(label, _)| is_spawned_label(label, parent, name))
        {
            return found.clone();
        }
        let full = full_label(parent, name);
        let found = match self.table.get_key_value(&*full) {
            Some((label, entry)) => (label.clone(), entry.clone()),
            None => {
                let label: Arc<str> = full.into();
                let entry = Arc::new(metrics.label(&label));
                self.table.insert(label.clone(), entry.clone());
                (label, entry)
            }
        };
        self.remember(found.clone());
        found
    }

    /// Remembers a resolved label, replacing the oldest one remembered.
    fn remember(&mut self, found: (Arc<str>, Arc<LabelMetrics>)) {
        self.recent[self.next] = Some(found);
        self.next = (self.next + 1) % RECENT;
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
    fn spawn_resolves_prefixed_labels_through_the_recent_cache() {
        let registry = std::sync::Mutex::new(Registry::default());
        let metrics = Metrics::init(&registry);
        // More distinct labels than the cache holds, each spawned twice in
        // turn, so some hits and some misses; the same label always comes
        // back as the same shared string and the same counters.
        let parents = ["a", "a_b", "a_b_c", "x", "a_", "ab"];
        let mut first = Vec::new();
        for round in 0..2 {
            for (i, parent) in parents.iter().enumerate() {
                for name in ["b", "b_c"] {
                    let (label, entry) = metrics.spawn(Some(parent), name);
                    assert_eq!(&*label, format!("{parent}_{name}"));
                    if round == 0 {
                        first.push((label, entry));
                    } else {
                        let (label0, entry0) = &first[i * 2 + usize::from(name == "b_c")];
                        assert!(Arc::ptr_eq(&label, label0));
                        assert!(Arc::ptr_eq(&entry, entry0));
                        assert_eq!(entry.spawned.get(), 2);
                    }
                }
            }
        }
        // "a" + "b_c" and "a_b" + "c" are the same label.
        let (abc, _) = metrics.spawn(Some("a_b"), "c");
        assert!(Arc::ptr_eq(&abc, &first[1].0));
        assert_eq!(first[1].1.spawned.get(), 3);
        let (plain, _) = metrics.spawn(None, "a_b");
        assert_eq!(&*plain, "a_b");
        assert!(is_spawned_label("a_b", None, "a_b"));
        assert!(!is_spawned_label("a_b", Some("a"), "c"));
        assert!(!is_spawned_label("ab", Some("a"), "b"));
    }

    #[test]
    fn label_resolves_the_registered_metrics() {
        let registry = std::sync::Mutex::new(Registry::default());
        let metrics = Metrics::init(&registry);
        let (_, task) = metrics.spawn(None, "a");
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
