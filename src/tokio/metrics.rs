//! The Tokio runtime's task metrics: one prometheus family per task
//! metric, by task label, updated by the tasks themselves (`task.rs`).
//!
//! # Invariants
//! * The families are registered once per runtime, under the reference's
//!   names; a label's metrics are created at zero on first use and shared
//!   by every later lookup of the same label.

use crate::metrics::{TaskLabel, TASKS_RUNNING, TASKS_SPAWNED, TASK_POLLS};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// The task metrics of one label, already resolved in the families.
pub(crate) struct LabelMetrics {
    pub(crate) spawned: Counter,
    pub(crate) running: Gauge,
    pub(crate) polls: Counter,
}

/// The Tokio runtime's task metrics: one family per metric, by label.
pub(crate) struct TaskFamilies {
    spawned: Family<TaskLabel, Counter>,
    running: Family<TaskLabel, Gauge>,
    polls: Family<TaskLabel, Counter>,
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
        let key = TaskLabel::new(label);
        LabelMetrics {
            spawned: self.spawned.get_or_create(&key).clone(),
            running: self.running.get_or_create(&key).clone(),
            polls: self.polls.get_or_create(&key).clone(),
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
}
