//! The deterministic runtime's task metrics: [`TaskCounts`], a prometheus
//! collector over the counts the executor keeps per label, registered with
//! the runtime's network and storage metrics as one collector.
//!
//! The executor counts under the state borrow it already holds (no atomics,
//! see `commonware_executor::LabelStats`), and the registry reads those
//! counts when it is encoded: a spawn or a poll costs the metrics nothing.
//!
//! # Invariants
//! * Reading the counts never waits for the run loop, from any thread.
//! * A recovered runtime points the same collector at its own executor,
//!   which carries the counts on, so one registry sees one series.

use crate::metrics::{IoMetrics, TaskLabel, TASKS_RUNNING, TASKS_SPAWNED, TASK_POLLS};
use commonware_executor::Core;
use parking_lot::Mutex;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::sync::Arc;

/// The deterministic runtime's task metrics: the counts its executor keeps
/// per label, read at each scrape. A recovered runtime points them at its
/// own executor, which carries the counts on.
#[derive(Clone, Default)]
pub(crate) struct TaskCounts {
    source: Arc<Mutex<Option<Core>>>,
}

/// Everything a deterministic runtime reports, registered as one collector
/// (one registration per runtime, no name copied): the network and storage
/// metrics, then the task counts.
#[derive(Debug)]
struct RuntimeCollector {
    io: Arc<IoMetrics>,
    tasks: TaskCounts,
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.io.encode(&mut encoder)?;
        self.tasks.encode(encoder)
    }
}

impl TaskCounts {
    /// Creates a runtime's task counts and network and storage metrics and
    /// registers them in `registry`; the counts report nothing until
    /// [`TaskCounts::read_from`] names an executor.
    pub(crate) fn register(registry: &std::sync::Mutex<Registry>) -> (Self, Arc<IoMetrics>) {
        let counts = Self::default();
        let io = Arc::new(IoMetrics::default());
        let collector = RuntimeCollector {
            io: io.clone(),
            tasks: counts.clone(),
        };
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register_collector(Box::new(collector));
        (counts, io)
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
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = match &*self.source.lock() {
            Some(core) => core.label_stats(),
            None => Vec::new(),
        };
        let (name, help) = TASKS_SPAWNED;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, counts) in &stats {
            ConstCounter::new(counts.spawned)
                .encode(family.encode_family(&TaskLabel::new(label))?)?;
        }
        let (name, help) = TASKS_RUNNING;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (label, counts) in &stats {
            let running = i64::try_from(counts.running).unwrap_or(i64::MAX);
            ConstGauge::new(running).encode(family.encode_family(&TaskLabel::new(label))?)?;
        }
        let (name, help) = TASK_POLLS;
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, counts) in &stats {
            ConstCounter::new(counts.polls)
                .encode(family.encode_family(&TaskLabel::new(label))?)?;
        }
        Ok(())
    }
}
