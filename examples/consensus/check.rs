//! The checker: an oracle outside the protocol that judges a run.
//!
//! Nodes report to it (as an [`Observer`]) every entry they learn is
//! committed and every term they win. It keeps the first report for every
//! index and every term, so it can tell:
//!
//! * **Safety**: no two nodes commit different entries at the same index,
//!   and a committed entry never changes, including across crashes and
//!   restarts (a restarted node that re-learns index `i` must re-learn the
//!   same entry); at most one leader per term.
//! * **Liveness**: how far the cluster got, and how far its slowest node
//!   got, so the driver can demand progress once faults stop.
//!
//! # Invariants
//! * The first violation is kept and never replaced; later reports are
//!   still recorded but cannot hide it.
//! * The checker lives outside the runtime: it survives whole-cluster
//!   crashes (`recover()`), which is what lets it catch entries that were
//!   committed before a crash and replaced after it.

use crate::{node::Observer, wire::Entry};
use parking_lot::Mutex;
use std::{collections::BTreeMap, fmt};

/// A broken safety property: the run is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two different entries were reported committed at one index.
    Divergence {
        index: u64,
        first: (u64, Entry),
        second: (u64, Entry),
    },
    /// Two nodes led the same term.
    TwoLeaders { term: u64, first: u64, second: u64 },
    /// A node reported an index before every index below it was committed.
    OutOfOrder { node: u64, index: u64, known: u64 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Divergence {
                index,
                first: (a, x),
                second: (b, y),
            } => write!(
                f,
                "index {index} committed as {{term {}, value {:016x}}} by node {a} and as {{term {}, value {:016x}}} by node {b}",
                x.term, x.value, y.term, y.value
            ),
            Violation::TwoLeaders {
                term,
                first,
                second,
            } => write!(f, "term {term} led by node {first} and by node {second}"),
            Violation::OutOfOrder { node, index, known } => write!(
                f,
                "node {node} reported index {index} committed when only {known} were"
            ),
        }
    }
}

#[derive(Default)]
struct State {
    /// The first entry reported committed at each index (index 1 first),
    /// with the node that reported it.
    committed: Vec<(u64, Entry)>,
    /// Each node's commit index in its current incarnation.
    progress: Vec<u64>,
    /// The first leader of each term.
    leaders: BTreeMap<u64, u64>,
    violation: Option<Violation>,
}

/// Watches a cluster of nodes; share it between them with an `Arc`.
pub struct Checker {
    state: Mutex<State>,
}

impl Checker {
    /// A checker for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                progress: vec![0; nodes],
                ..State::default()
            }),
        }
    }

    /// The first safety violation seen, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.state.lock().violation.clone()
    }

    /// Number of entries committed so far (by any node).
    pub fn committed_count(&self) -> u64 {
        self.state.lock().committed.len() as u64
    }

    /// The lowest commit index among the nodes' current incarnations.
    pub fn slowest(&self) -> u64 {
        self.state
            .lock()
            .progress
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    }

    /// Highest term anyone was elected in.
    pub fn terms(&self) -> u64 {
        self.state
            .lock()
            .leaders
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }
}

impl State {
    fn violate(&mut self, violation: Violation) {
        self.violation.get_or_insert(violation);
    }
}

impl Observer for Checker {
    fn started(&self, node: u64) {
        if let Some(progress) = self.state.lock().progress.get_mut(node as usize) {
            *progress = 0;
        }
    }

    fn elected(&self, node: u64, term: u64) {
        let mut state = self.state.lock();
        let first = *state.leaders.entry(term).or_insert(node);
        if first != node {
            state.violate(Violation::TwoLeaders {
                term,
                first,
                second: node,
            });
        }
    }

    fn committed(&self, node: u64, index: u64, entry: Entry) {
        let mut state = self.state.lock();
        if let Some(progress) = state.progress.get_mut(node as usize) {
            *progress = (*progress).max(index);
        }
        let known = state.committed.len() as u64;
        if index == known + 1 {
            state.committed.push((node, entry));
            return;
        }
        // A node reports its commits in index order, from index 1 after
        // every start, so anything else is a protocol bug too.
        let Some(&first) = index
            .checked_sub(1)
            .and_then(|slot| state.committed.get(slot as usize))
        else {
            state.violate(Violation::OutOfOrder { node, index, known });
            return;
        };
        if first.1 != entry {
            state.violate(Violation::Divergence {
                index,
                first,
                second: (node, entry),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Entry = Entry { term: 1, value: 7 };
    const B: Entry = Entry { term: 2, value: 8 };

    #[test]
    fn agreeing_nodes_pass() {
        let checker = Checker::new(3);
        for node in 0..3 {
            checker.started(node);
            checker.committed(node, 1, A);
            checker.committed(node, 2, B);
        }
        assert_eq!(checker.violation(), None);
        assert_eq!((checker.committed_count(), checker.slowest()), (2, 2));
    }

    #[test]
    fn divergence_is_caught_even_after_a_restart() {
        let checker = Checker::new(2);
        checker.committed(0, 1, A);
        checker.started(0);
        checker.committed(0, 1, B);
        assert_eq!(
            checker.violation(),
            Some(Violation::Divergence {
                index: 1,
                first: (0, A),
                second: (0, B)
            })
        );
        assert_eq!(checker.slowest(), 0);
    }

    #[test]
    fn two_leaders_in_a_term_are_caught() {
        let checker = Checker::new(3);
        checker.elected(0, 4);
        checker.elected(0, 4);
        assert_eq!(checker.violation(), None);
        checker.elected(2, 4);
        assert_eq!(
            checker.violation(),
            Some(Violation::TwoLeaders {
                term: 4,
                first: 0,
                second: 2
            })
        );
    }
}
