//! The consensus example's log storage (`examples/consensus/log.rs`) under
//! every crash state: whatever a crash keeps of the writes since the last
//! sync, the log reopens as a prefix of entries written at their indices,
//! with terms that never decrease (no stale tail), and the hard state
//! reopens as one that was stored.

#[allow(dead_code)]
#[path = "../examples/consensus/log.rs"]
mod log;
#[allow(dead_code)]
#[path = "../examples/consensus/wire.rs"]
mod wire;

use commonware_runtime::deterministic::{crash_states, Config, CrashStates, Persistence};
use log::{HardState, Log, Vote};
use wire::Entry;

/// The value of the entry written at `index` in `term`.
fn value(index: u64, term: u64) -> u64 {
    index * 1000 + term
}

fn entries(from: u64, count: u64, term: u64) -> Vec<Entry> {
    (from..from + count)
        .map(|index| Entry {
            term,
            value: value(index, term),
        })
        .collect()
}

/// A follower's storage: batches appended and synced across record and
/// page boundaries, a term change with a vote, and a leader of a new term
/// overwriting the tail (a truncate, then new records).
async fn follower(context: commonware_runtime::deterministic::Context) {
    let mut log = Log::open(&context, "node").await.unwrap();
    let mut vote = Vote::open(&context, "node").await.unwrap();
    vote.store(HardState {
        term: 1,
        vote: Some(0),
    })
    .await
    .unwrap();
    // 20-byte records: 300 of them cross the first page boundary.
    log.append(0, &entries(1, 150, 1), true).await.unwrap();
    log.append(150, &entries(151, 150, 1), true).await.unwrap();
    vote.store(HardState {
        term: 2,
        vote: Some(3),
    })
    .await
    .unwrap();
    // The new leader never had entries past 190: they are replaced.
    log.append(190, &entries(191, 20, 2), true).await.unwrap();
}

async fn recover(context: commonware_runtime::deterministic::Context) -> Result<(), String> {
    let log = Log::open(&context, "node")
        .await
        .map_err(|e| format!("log does not open: {e}"))?;
    let mut last_term = 0;
    for index in 1..=log.last_index() {
        let entry = log.get(index).ok_or("gap in the log")?;
        if entry.value != value(index, entry.term) {
            return Err(format!("entry {index} was never written: {entry:?}"));
        }
        if entry.term < last_term {
            return Err(format!(
                "stale entry {index} of term {} after term {last_term}",
                entry.term
            ));
        }
        last_term = entry.term;
    }
    let state = Vote::open(&context, "node")
        .await
        .map_err(|e| format!("vote does not open: {e}"))?
        .state();
    let stored = [
        HardState::default(),
        HardState {
            term: 1,
            vote: Some(0),
        },
        HardState {
            term: 2,
            vote: Some(3),
        },
    ];
    if !stored.contains(&state) {
        return Err(format!("hard state {state:?} was never stored"));
    }
    Ok(())
}

#[test]
fn the_consensus_log_recovers_from_every_crash_state() {
    // Six crash points: the two stores, the three appends, the end.
    for (persistence, states) in [(Persistence::Pages, 13), (Persistence::Ordered, 7)] {
        let explored = crash_states(
            Config::default(),
            CrashStates {
                persistence,
                ..CrashStates::default()
            },
            follower,
            recover,
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
        println!("{persistence:?}: {explored}");
        assert_eq!((explored.points, explored.states), (6, states));
        assert_eq!(explored.sampled, 0);
    }
}
