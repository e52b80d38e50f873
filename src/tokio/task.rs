//! Spawned tasks of the Tokio runtime: their labels, their metrics and the
//! future that wraps each of them.
//!
//! # What this module owns
//! * [`LabelTable`]: one runtime's table of task labels. Each label is resolved
//!   once into a shared [`Label`] (the full, prefixed name and its metrics),
//!   and each thread keeps the few labels it spawned last in a small cache,
//!   so a repeated spawn with the same label takes no lock, formats nothing
//!   and allocates nothing. A cache holds at most four labels (of any
//!   runtime, also one already dropped) until it replaces them or its thread
//!   exits; a label is its name, three metric handles and (without
//!   `catch_panics`) the sending end of its runtime's panic channel.
//! * [`Task`]: what Tokio runs for a spawned future. It counts polls, keeps
//!   the running gauge, makes its label the current one while it is polled
//!   (children are prefixed with it), and, when panics are not caught,
//!   reports the first panic to `start`.
//!
//! # Invariants
//! * A task holds exactly one reference to its label and nothing else
//!   beyond its future, so Tokio's per-task allocation grows by one pointer.
//! * A task's label is its parent's label, `_`, and the label it was spawned
//!   with; a task spawned outside any task (or by a task with an empty label)
//!   is not prefixed.
//! * `tasks_running` is incremented at spawn and decremented exactly once,
//!   when Tokio drops the task (completed, panicked, aborted, or dropped
//!   unfinished at shutdown), after its future is dropped.
//! * A panic always unwinds into Tokio, which catches it and resolves the
//!   handle to `Err(Error::Exited)`. Without `catch_panics` the original
//!   payload is first handed to `start` (the first panic wins) and a
//!   placeholder unwinds instead, so the panic hook runs once per panic.

use super::metrics::{LabelMetrics, TaskFamilies};
use super::Panic;
use crate::metrics::{child_label, is_child_label};
use futures::channel::oneshot;
use parking_lot::Mutex;
use pin_project_lite::pin_project;
use std::{
    cell::RefCell,
    collections::BTreeMap,
    future::Future,
    panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll},
};

/// How many labels each thread remembers.
const CACHED: usize = 4;

/// Gives every [`LabelTable`] an identity that is never reused, so a
/// thread's cache cannot mistake one runtime's label for another's.
static NEXT_TABLE: AtomicU64 = AtomicU64::new(0);

/// Where a task's panic goes when panics are not caught.
pub(super) type PanicSink = Mutex<Option<oneshot::Sender<Panic>>>;

thread_local! {
    /// This thread's view of task labels (one thread-local, so a spawn
    /// reaches it once).
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            current: None,
            cache: [None, None, None, None],
            next: 0,
        })
    };
}

struct Local {
    /// The label of the task being polled on this thread, if any.
    current: Option<Arc<Label>>,
    /// The labels this thread resolved last (any runtime), replaced in turn.
    cache: [Option<Arc<Label>>; CACHED],
    next: usize,
}

impl Local {
    /// The label `name` spawned under the current task, if cached.
    fn cached(&self, table: u64, name: &str) -> Option<Arc<Label>> {
        let parent = self.parent();
        self.cache
            .iter()
            .flatten()
            .find(|label| label.is(table, parent, name))
            .cloned()
    }

    /// The label of the task being polled, if any.
    fn parent(&self) -> Option<&str> {
        self.current.as_deref().map(|label| &*label.name)
    }

    /// Remembers `label`, returning the label it replaces.
    fn remember(&mut self, label: Arc<Label>) -> Option<Arc<Label>> {
        let slot = self.next;
        self.next = (slot + 1) % CACHED;
        self.cache[slot].replace(label)
    }
}

/// A resolved task label of one runtime.
///
/// Aligned to a cache line pair so that the reference counts `Arc` keeps
/// in front of it, which every spawn and every finished task write (often
/// on different threads), do not share a line with the fields both read.
#[repr(align(128))]
struct Label {
    table: u64,
    name: Box<str>,
    metrics: LabelMetrics,
    /// `Some` when panics are not caught.
    panics: Option<Arc<PanicSink>>,
}

impl Label {
    /// Whether this label is `name` spawned under `parent` in `table`.
    fn is(&self, table: u64, parent: Option<&str>, name: &str) -> bool {
        self.table == table && is_child_label(&self.name, parent, name)
    }

    /// Hands `payload` to `start` unless a panic was reported before.
    fn report(&self, payload: Panic) {
        if let Some(sender) = self.panics.as_ref().and_then(|sink| sink.lock().take()) {
            // `start` already returned if the receiver is gone.
            let _ = sender.send(payload);
        }
    }
}

/// One runtime's task labels.
pub(super) struct LabelTable {
    id: u64,
    table: Mutex<BTreeMap<Box<str>, Arc<Label>>>,
    panics: Option<Arc<PanicSink>>,
}

impl LabelTable {
    /// An empty table. With `panics`, tasks report their first panic there
    /// instead of only resolving their handle to `Err(Error::Exited)`.
    pub(super) fn new(panics: Option<Arc<PanicSink>>) -> Self {
        Self {
            id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            table: Mutex::new(BTreeMap::new()),
            panics,
        }
    }

    /// Wraps `future` as a task labelled `name` (prefixed with the label of
    /// the task being polled, if any) and counts it as spawned and running.
    pub(super) fn task<F: Future>(&self, metrics: &TaskFamilies, name: &str, future: F) -> Task<F> {
        let label = self.resolve(metrics, name);
        label.metrics.spawned.inc();
        label.metrics.running.inc();
        Task {
            future,
            label: Held(Some(label)),
        }
    }

    /// The label `name` spawned under the current task: from this thread's
    /// cache, else from the table (created on first use, then cached).
    fn resolve(&self, metrics: &TaskFamilies, name: &str) -> Arc<Label> {
        let resolved = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            if let Some(label) = local.cached(self.id, name) {
                return (label, None);
            }
            let label = self.lookup(metrics, local.parent(), name);
            let evicted = local.remember(label.clone());
            (label, evicted)
        });
        match resolved {
            // The evicted label is dropped here, outside the borrow.
            Ok((label, _evicted)) => label,
            // Thread exiting: no current task and no cache.
            Err(_) => self.lookup(metrics, None, name),
        }
    }

    fn lookup(&self, metrics: &TaskFamilies, parent: Option<&str>, name: &str) -> Arc<Label> {
        let full = child_label(parent, name);
        let full = &*full;
        let mut table = self.table.lock();
        if let Some(label) = table.get(full) {
            return label.clone();
        }
        let label = Arc::new(Label {
            table: self.id,
            name: full.into(),
            metrics: metrics.label(full),
            panics: self.panics.clone(),
        });
        table.insert(full.into(), label.clone());
        label
    }
}

/// A task's label, which the task lends to [`Local::current`] while it is polled
/// (`None` only then). Dropping it takes the task out of `tasks_running`.
struct Held(Option<Arc<Label>>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(label) = &self.0 {
            label.metrics.running.dec();
        }
    }
}

/// Lends a task's label to [`Local::current`] and takes it back when dropped, also
/// when the poll unwinds.
struct Current<'a> {
    slot: &'a mut Option<Arc<Label>>,
}

impl<'a> Current<'a> {
    #[inline]
    fn enter(slot: &'a mut Option<Arc<Label>>) -> Self {
        swap_current(slot);
        Self { slot }
    }
}

impl Drop for Current<'_> {
    #[inline]
    fn drop(&mut self) {
        swap_current(self.slot);
    }
}

/// Swaps `slot` with this thread's current label. If the thread-local is
/// gone (thread exiting), the label stays in `slot`, both ways.
#[inline]
fn swap_current(slot: &mut Option<Arc<Label>>) {
    let _ = LOCAL.try_with(|local| std::mem::swap(&mut local.borrow_mut().current, slot));
}

/// Unwinds out of a task whose panic was reported to `start`.
struct Reported;

pin_project! {
    /// A spawned future as Tokio runs it (see the module invariants). Fields
    /// drop in order: the future, then the label (the running gauge).
    pub(super) struct Task<F> {
        #[pin]
        future: F,
        label: Held,
    }
}

impl<F: Future> Future for Task<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let catching = match &this.label.0 {
            Some(label) => {
                label.metrics.polls.inc();
                label.panics.is_some()
            }
            None => false,
        };
        let polled = {
            let _current = Current::enter(&mut this.label.0);
            if catching {
                catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx)))
            } else {
                Ok(this.future.as_mut().poll(cx))
            }
        };
        polled.unwrap_or_else(|payload| {
            if let Some(label) = &this.label.0 {
                label.report(payload);
            }
            resume_unwind(Box::new(Reported))
        })
    }
}

/// The label of the task being polled on this thread.
#[cfg(test)]
pub(super) fn current() -> Option<String> {
    LOCAL.with(|local| {
        let local = local.borrow();
        local.current.as_ref().map(|label| label.name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{executor::block_on, FutureExt};
    use prometheus_client::registry::Registry;

    fn metrics() -> TaskFamilies {
        TaskFamilies::register(&std::sync::Mutex::new(Registry::default()))
    }

    #[test]
    fn task_counts_polls_and_running() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let task = labels.task(&metrics, "a", async {
            crate::reschedule().await;
            current()
        });
        let label = metrics.label("a");
        assert_eq!(label.spawned.get(), 1);
        assert_eq!(label.running.get(), 1);
        assert_eq!(block_on(task), Some("a".to_string()));
        assert_eq!(label.polls.get(), 2);
        assert_eq!(label.running.get(), 0);
        assert_eq!(current(), None);
    }

    #[test]
    fn children_are_prefixed_and_cached() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let parent = labels.task(&metrics, "p", async {
            let first = labels.task(&metrics, "c", async { current() }).await;
            let second = labels.task(&metrics, "c", async { current() }).await;
            (first, second, current())
        });
        assert_eq!(
            block_on(parent),
            (Some("p_c".into()), Some("p_c".into()), Some("p".into()))
        );
        assert_eq!(metrics.label("p_c").spawned.get(), 2);
        assert_eq!(metrics.label("p_c").running.get(), 0);
        assert_eq!(metrics.label("c").spawned.get(), 0);
        // Outside a task the same name is not prefixed.
        block_on(labels.task(&metrics, "c", async {}));
        assert_eq!(metrics.label("c").spawned.get(), 1);
    }

    #[test]
    fn empty_parent_does_not_prefix() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let parent = labels.task(&metrics, "", async {
            labels.task(&metrics, "c", async { current() }).await
        });
        assert_eq!(block_on(parent), Some("c".into()));
    }

    #[test]
    fn cache_tells_labels_and_runtimes_apart() {
        let (first, second) = (metrics(), metrics());
        let (one, two) = (LabelTable::new(None), LabelTable::new(None));
        for _ in 0..3 {
            for name in ["x", "y", "xy", "x_y", "z", "w"] {
                block_on(one.task(&first, name, async {}));
            }
            block_on(two.task(&second, "x", async {}));
        }
        for name in ["x", "y", "xy", "x_y", "z", "w"] {
            assert_eq!(first.label(name).spawned.get(), 3, "{name}");
        }
        assert_eq!(second.label("x").spawned.get(), 3);
        assert_eq!(second.label("y").spawned.get(), 0);
    }

    #[test]
    fn prefix_match_is_exact() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let label = labels.lookup(&metrics, Some("a"), "b");
        assert!(label.is(labels.id, Some("a"), "b"));
        assert!(!label.is(labels.id, None, "b"));
        assert!(!label.is(labels.id, Some("a"), "_b"));
        assert!(!label.is(labels.id, Some("ab"), ""));
        assert!(!label.is(labels.id + 1, Some("a"), "b"));
    }

    #[test]
    fn dropped_task_leaves_gauge() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let task = labels.task(&metrics, "p", std::future::pending::<()>());
        assert_eq!(metrics.label("p").running.get(), 1);
        drop(task);
        assert_eq!(metrics.label("p").running.get(), 0);
    }

    #[test]
    fn panic_is_reported_once_and_label_restored() {
        let metrics = metrics();
        let (sender, mut receiver) = oneshot::channel();
        let labels = LabelTable::new(Some(Arc::new(Mutex::new(Some(sender)))));
        for _ in 0..2 {
            let task = labels.task(&metrics, "bad", async { panic!("boom") });
            let unwound = AssertUnwindSafe(task).catch_unwind();
            let payload = block_on(unwound).expect_err("unwinds");
            assert!(payload.is::<Reported>());
            assert_eq!(current(), None);
        }
        let payload = receiver.try_recv().expect("sent").expect("present");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(metrics.label("bad").running.get(), 0);
        assert_eq!(metrics.label("bad").polls.get(), 2);
    }

    #[test]
    fn task_adds_one_pointer() {
        let metrics = metrics();
        let labels = LabelTable::new(None);
        let future = std::future::ready([7u64; 64]);
        let size = std::mem::size_of_val(&future);
        let task = labels.task(&metrics, "big", future);
        assert_eq!(std::mem::size_of_val(&task), size + 8);
    }
}
