//! Task labels, interned, and the counts kept per label.
//!
//! # What this module owns
//! Every label a task of this executor has had, for the executor's life
//! (and its successors', as metric families keep theirs), each with its
//! [`LabelStats`]; and the rule that names a spawned task: `parent_name`
//! under a labelled task, `name` alone under the run's root task, under a
//! task with an empty label, or outside any task. A slot names its label by
//! a [`LabelId`], so a spawn copies no string and touches no reference
//! count. A label's counts change only under the executor's state borrow,
//! so a relaxed load and store count exactly, without an atomic
//! read-modify-write; they are atomics only so that [`Published`] can read
//! them without that borrow (a scrape from another thread must not wait for
//! the run loop, which may itself be waiting for the registry the scrape
//! holds).
//!
//! # Invariants
//! * A label keeps its id for good and ids are never reused: an id indexes
//!   `counts`, and the same string always gets the same id.
//! * Every label is in the published list from the moment it is interned.
//! * `running` is the number of live counted tasks with that label: the
//!   arena adds one when it inserts a counted task and takes it back when
//!   the task leaves (completion, abort, the end of a run).
//! * The recent list only holds resolutions the table would give.

use parking_lot::Mutex;
use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

/// How many resolved spawns [`LabelTable::child`] checks before formatting a
/// label and searching the table.
const RECENT: usize = 8;

/// Up to this many labels, a lookup scans the table instead of a map.
const SCAN: usize = 8;

/// Names one label of one executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LabelId(u32);

impl LabelId {
    /// The id as a number (ids are handed out in order of first use).
    pub(crate) fn get(self) -> u32 {
        self.0
    }
}

/// What the executor counted for one label (only tasks spawned as
/// children, see [`crate::Core::spawn_child`], are counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelStats {
    /// Tasks spawned with this label.
    pub spawned: u64,
    /// Tasks with this label alive now (spawned, not yet finished, aborted
    /// or dropped).
    pub running: u64,
    /// Polls of tasks with this label.
    pub polls: u64,
}

/// One label and its counts (see the module doc for why atomics).
#[derive(Debug)]
struct Counts {
    /// Boxed, not shared: a reader copies it (scrapes are rare), a runtime
    /// saves an allocation per label.
    name: Box<str>,
    spawned: AtomicU64,
    running: AtomicU64,
    polls: AtomicU64,
}

/// Adds `delta` (wrapping) to a counter only its executor's state borrow
/// writes.
fn bump(counter: &AtomicU64, delta: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(delta),
        Ordering::Relaxed,
    );
}

impl Counts {
    fn new(name: Box<str>) -> Self {
        Self {
            name,
            spawned: AtomicU64::new(0),
            running: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> LabelStats {
        LabelStats {
            spawned: self.spawned.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
            polls: self.polls.load(Ordering::Relaxed),
        }
    }
}

/// Every label of an executor and its counts, readable without the
/// executor's state.
#[derive(Clone, Default)]
pub(crate) struct Published(Arc<Mutex<Vec<Arc<Counts>>>>);

impl Published {
    /// Every label with counted tasks and its counts, in label order.
    pub(crate) fn counted(&self) -> Vec<(Arc<str>, LabelStats)> {
        let mut counted: Vec<(Arc<str>, LabelStats)> = self
            .0
            .lock()
            .iter()
            .map(|counts| (counts, counts.stats()))
            .filter(|(_, stats)| stats.spawned > 0)
            .map(|(counts, stats)| (Arc::from(&*counts.name), stats))
            .collect();
        counted.sort_by(|a, b| a.0.cmp(&b.0));
        counted
    }
}

/// A spawn resolved recently: `name` spawned under `parent` got `label`.
#[derive(Clone)]
struct Recent {
    parent: Option<LabelId>,
    name: Box<str>,
    label: LabelId,
}

/// The label table of one executor.
#[derive(Default)]
pub(crate) struct LabelTable {
    /// By id.
    counts: Vec<Arc<Counts>>,
    /// By name, once the table holds more than [`SCAN`] labels; until then
    /// a lookup scans `counts` (most runs have a handful of labels, and the
    /// map's node would be one more allocation per runtime).
    index: BTreeMap<Box<str>, LabelId>,
    published: Published,
    recent: [Option<Recent>; RECENT],
    next: usize,
}

impl LabelTable {
    /// How many labels the table holds.
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }

    /// The id of `label` itself, interned on first use.
    pub(crate) fn intern(&mut self, label: &str) -> LabelId {
        if self.counts.len() <= SCAN {
            if let Some(id) = self.counts.iter().position(|counts| *counts.name == *label) {
                return LabelId(id as u32);
            }
        } else if let Some(&id) = self.index.get(label) {
            return id;
        }
        let id = LabelId(u32::try_from(self.counts.len()).expect("more than 2^32 labels"));
        let counts = Arc::new(Counts::new(label.into()));
        self.published.0.lock().push(counts.clone());
        self.counts.push(counts);
        if self.counts.len() > SCAN {
            if self.index.is_empty() {
                for (i, counts) in self.counts.iter().enumerate() {
                    self.index.insert(counts.name.clone(), LabelId(i as u32));
                }
            } else {
                self.index.insert(label.into(), id);
            }
        }
        id
    }

    /// Where the labels and counts can be read without the state.
    pub(crate) fn published(&self) -> Published {
        self.published.clone()
    }

    /// The label of a task named `name` spawned under a task labelled
    /// `parent` (`None`: no prefix, see the module doc): the few spawns
    /// resolved last first, so a repeated spawn neither formats nor searches.
    pub(crate) fn child(&mut self, parent: Option<LabelId>, name: &str) -> LabelId {
        let parent = self.prefix(parent);
        if let Some(recent) = self
            .recent
            .iter()
            .flatten()
            .find(|recent| recent.parent == parent && *recent.name == *name)
        {
            return recent.label;
        }
        let full = child_label(parent.map(|parent| self.name(parent)), name);
        let label = self.intern(&full);
        self.recent[self.next] = Some(Recent {
            parent,
            name: name.into(),
            label,
        });
        self.next = (self.next + 1) % RECENT;
        label
    }

    /// The label that prefixes a child of a task labelled `parent`: none
    /// for an empty label (or no parent).
    pub(crate) fn prefix(&self, parent: Option<LabelId>) -> Option<LabelId> {
        parent.filter(|&id| prefix(Some(self.name(id))).is_some())
    }

    pub(crate) fn name(&self, id: LabelId) -> &str {
        &self.counts[id.0 as usize].name
    }

    /// A counted task with this label was spawned. Takes `&mut self`, as
    /// the other counts do: only the state borrow counts (module doc).
    #[inline]
    pub(crate) fn spawned(&mut self, id: LabelId) {
        let counts = &self.counts[id.0 as usize];
        bump(&counts.spawned, 1);
        bump(&counts.running, 1);
    }

    /// A counted task with this label is being polled.
    #[inline]
    pub(crate) fn polled(&mut self, id: LabelId) {
        bump(&self.counts[id.0 as usize].polls, 1);
    }

    /// A counted task with this label left the arena.
    #[inline]
    pub(crate) fn finished(&mut self, id: LabelId) {
        bump(&self.counts[id.0 as usize].running, u64::MAX);
    }

    /// The same labels and counts, published afresh, with no task running
    /// (what a successor executor starts from: its predecessor's tasks are
    /// gone).
    pub(crate) fn successor(&self) -> Self {
        let mut next = Self {
            recent: self.recent.clone(),
            next: self.next,
            ..Self::default()
        };
        for counts in &self.counts {
            let id = next.intern(&counts.name);
            let fresh = &next.counts[id.0 as usize];
            bump(&fresh.spawned, counts.spawned.load(Ordering::Relaxed));
            bump(&fresh.polls, counts.polls.load(Ordering::Relaxed));
        }
        next
    }
}

/// The label that prefixes the label of a task spawned by a task labelled
/// `parent`: `parent` itself, unless there is none or it is empty.
#[inline]
fn prefix(parent: Option<&str>) -> Option<&str> {
    parent.filter(|parent| !parent.is_empty())
}

/// The label of a task spawned with `name` by a task labelled `parent`
/// (`None`: outside any task): `parent_name`, or `name` alone when
/// [`prefix`] gives none.
pub fn child_label<'a>(parent: Option<&str>, name: &'a str) -> Cow<'a, str> {
    match prefix(parent) {
        Some(parent) => Cow::Owned(format!("{parent}_{name}")),
        None => Cow::Borrowed(name),
    }
}

/// Whether `label` is the [`child_label`] of `name` under `parent`, without
/// building it.
pub fn is_child_label(label: &str, parent: Option<&str>, name: &str) -> bool {
    match prefix(parent) {
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

    #[test]
    fn children_are_prefixed_through_the_recent_list() {
        let mut labels = LabelTable::default();
        let a = labels.intern("a");
        // More distinct spawns than the recent list holds, each made twice
        // in turn, so some hit and some miss; either way the same spawn
        // gets the same label.
        let parents: Vec<_> = ["a", "a_b", "a_b_c", "x", "a_", "ab"]
            .iter()
            .map(|p| labels.intern(p))
            .collect();
        let mut first = Vec::new();
        for round in 0..2 {
            for &parent in &parents {
                for name in ["b", "b_c"] {
                    let label = labels.child(Some(parent), name);
                    let expected = format!("{}_{name}", labels.name(parent));
                    assert_eq!(labels.name(label), expected);
                    if round == 0 {
                        first.push(label);
                    } else {
                        assert!(first.contains(&label));
                    }
                }
            }
        }
        // "a" + "b_c" and "a_b" + "c" are the same label.
        let abc = labels.child(Some(parents[1]), "c");
        assert_eq!(abc, labels.child(Some(a), "b_c"));
        let plain = labels.child(None, "a_b");
        assert_eq!(labels.name(plain), "a_b");
        // An unlabelled parent prefixes nothing.
        let empty = labels.intern("");
        assert_eq!(labels.child(Some(empty), "a"), a);
    }

    #[test]
    fn a_label_keeps_its_id_past_the_scanned_table() {
        let mut labels = LabelTable::default();
        let names: Vec<String> = (0..3 * SCAN).map(|i| format!("l{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(labels.intern(name).get(), i as u32);
            for (j, earlier) in names[..=i].iter().enumerate() {
                assert_eq!(labels.intern(earlier).get(), j as u32);
            }
        }
        assert_eq!(labels.len(), 3 * SCAN);
    }

    #[test]
    fn counts_follow_spawns_polls_and_finishes() {
        let mut labels = LabelTable::default();
        let (a, b) = (labels.intern("a"), labels.intern("b"));
        labels.spawned(a);
        labels.spawned(a);
        labels.polled(a);
        labels.finished(a);
        let counted = labels.published().counted();
        assert_eq!(counted.len(), 1, "b never had a counted task");
        assert_eq!(&*counted[0].0, "a");
        assert_eq!(
            counted[0].1,
            LabelStats {
                spawned: 2,
                running: 1,
                polls: 1
            }
        );
        let next = labels.successor();
        let carried = next.published().counted();
        assert_eq!(
            carried[0].1,
            LabelStats {
                spawned: 2,
                running: 0,
                polls: 1
            }
        );
        assert_eq!(next.name(b), "b");
        assert_eq!(
            labels.published().counted()[0].1.running,
            1,
            "the old table is apart"
        );
    }

    #[test]
    fn child_labels_are_prefixed_unless_the_parent_is_empty() {
        assert_eq!(child_label(Some("a"), "b"), "a_b");
        assert_eq!(child_label(None, "a_b"), "a_b");
        assert_eq!(child_label(Some(""), "b"), "b");
        assert!(is_child_label("a_b", None, "a_b"));
        assert!(is_child_label("b", Some(""), "b"));
        assert!(is_child_label("a_b_c", Some("a"), "b_c"));
        assert!(!is_child_label("a_b", Some("a"), "c"));
        assert!(!is_child_label("ab", Some("a"), "b"));
    }
}
