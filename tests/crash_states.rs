//! Crash-state enumeration: planted ordering bugs in small storage engines
//! are found in one run, with the writes the failing state kept; their
//! fixed versions pass; the counts of states explored are fixed.

use commonware_runtime::{
    deterministic::{crash_states, Config, Context, CrashStates, Explored, Persistence},
    Blob, Storage,
};

const RECORD: &[u8] = b"the quick brown fox jumps over the lazy dog";

fn settings(persistence: Persistence) -> CrashStates {
    CrashStates {
        persistence,
        ..CrashStates::default()
    }
}

/// A header blob naming the length of the record in a data blob. Correct
/// when the data is synced before the header names it.
async fn header_and_data(context: Context, fixed: bool) {
    let data = context.open("db", b"data").await.unwrap();
    data.write_at(RECORD, 0).await.unwrap();
    if fixed {
        data.sync().await.unwrap();
    }
    let header = context.open("db", b"header").await.unwrap();
    header
        .write_at(&(RECORD.len() as u64).to_le_bytes(), 0)
        .await
        .unwrap();
    header.sync().await.unwrap();
    if !fixed {
        data.sync().await.unwrap();
    }
}

/// Recovery of [`header_and_data`]: what the header names must be there.
async fn check_header_and_data(context: Context) -> Result<(), String> {
    let header = context
        .open("db", b"header")
        .await
        .map_err(|e| e.to_string())?;
    if header.len().await.unwrap() < 8 {
        return Ok(());
    }
    let mut len = [0; 8];
    header.read_at(&mut len, 0).await.unwrap();
    let len = u64::from_le_bytes(len);
    let data = context
        .open("db", b"data")
        .await
        .map_err(|e| e.to_string())?;
    let have = data.len().await.unwrap();
    if have < len {
        return Err(format!("header names {len} bytes, data holds {have}"));
    }
    let mut record = vec![0; len as usize];
    data.read_at(&mut record, 0).await.unwrap();
    if record != RECORD {
        return Err("record corrupt".into());
    }
    Ok(())
}

/// A log whose first page holds the length of a record on the second
/// page. Correct when the record is synced before the length is written.
async fn length_and_record(context: Context, fixed: bool) {
    let log = context.open("log", b"0").await.unwrap();
    if fixed {
        log.write_at(RECORD, 4096).await.unwrap();
        log.sync().await.unwrap();
        log.write_at(&(RECORD.len() as u32).to_le_bytes(), 0)
            .await
            .unwrap();
    } else {
        log.write_at(&(RECORD.len() as u32).to_le_bytes(), 0)
            .await
            .unwrap();
        log.write_at(RECORD, 4096).await.unwrap();
    }
    log.sync().await.unwrap();
}

/// Recovery of [`length_and_record`]: a length names a whole record.
async fn check_length_and_record(context: Context) -> Result<(), String> {
    let log = context.open("log", b"0").await.map_err(|e| e.to_string())?;
    if log.len().await.unwrap() < 4 {
        return Ok(());
    }
    let mut len = [0; 4];
    log.read_at(&mut len, 0).await.unwrap();
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 {
        return Ok(());
    }
    let mut record = vec![0; len];
    log.read_at(&mut record, 4096)
        .await
        .map_err(|e| format!("length {len} names a missing record: {e}"))?;
    if record != RECORD {
        return Err(format!("length {len} names a torn record"));
    }
    Ok(())
}

#[test]
fn a_header_synced_before_its_data_is_found() {
    let failure = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| header_and_data(context, false),
        check_header_and_data,
    )
    .unwrap_err();
    println!("{failure}");
    assert_eq!(failure.point, "sync of db/686561646572");
    let kept: Vec<_> = failure.kept.iter().map(ToString::to_string).collect();
    let lost: Vec<_> = failure.lost.iter().map(ToString::to_string).collect();
    assert_eq!(kept, ["#2 write db/686561646572 bytes 0..8"]);
    assert_eq!(lost, ["#1 write db/64617461 bytes 0..43"]);
    assert_eq!(failure.message, "header names 43 bytes, data holds 0");
    // Nothing kept, the data kept, then the header without the data.
    assert_eq!(failure.states, 3);
}

#[test]
fn a_header_synced_after_its_data_passes() {
    let explored = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| header_and_data(context, true),
        check_header_and_data,
    )
    .unwrap();
    println!("{explored}");
    // The data's sync: nothing kept, the data kept. The header's sync:
    // the new empty header, the header kept. The end of the run repeats
    // the last.
    assert_eq!(
        explored,
        Explored {
            points: 3,
            states: 4,
            sampled: 0
        }
    );
}

#[test]
fn a_length_written_before_its_record_is_found() {
    let failure = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| length_and_record(context, false),
        check_length_and_record,
    )
    .unwrap_err();
    println!("{failure}");
    assert_eq!(failure.point, "sync of log/30");
    let kept: Vec<_> = failure.kept.iter().map(ToString::to_string).collect();
    assert_eq!(kept, ["#1 write log/30 bytes 0..4"]);
    assert_eq!(failure.lost.len(), 1);
    assert_eq!(failure.states, 2);
}

#[test]
fn a_length_written_after_its_synced_record_passes() {
    let explored = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| length_and_record(context, true),
        check_length_and_record,
    )
    .unwrap();
    println!("{explored}");
    assert_eq!(
        explored,
        Explored {
            points: 3,
            states: 3,
            sampled: 0
        }
    );
}

/// Writing the record before its length is enough on a disk that keeps
/// write order, and not on one that writes pages back in any order.
#[test]
fn persistence_decides_whether_write_order_is_enough() {
    let body = |context: Context| async move {
        let log = context.open("log", b"0").await.unwrap();
        log.write_at(RECORD, 4096).await.unwrap();
        log.write_at(&(RECORD.len() as u32).to_le_bytes(), 0)
            .await
            .unwrap();
        log.sync().await.unwrap();
    };
    let explored = crash_states(
        Config::default(),
        settings(Persistence::Ordered),
        body,
        check_length_and_record,
    )
    .unwrap();
    assert_eq!(explored.states, 3);
    let failure = crash_states(
        Config::default(),
        settings(Persistence::Pages),
        body,
        check_length_and_record,
    )
    .unwrap_err();
    let kept: Vec<_> = failure.kept.iter().map(ToString::to_string).collect();
    assert_eq!(kept, ["#2 write log/30 bytes 0..4"]);
}

/// One page written twice before a sync may reach the disk as either
/// write left it: the state between the two is checked too.
#[test]
fn a_page_may_persist_between_two_writes() {
    let failure = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| async move {
            let log = context.open("log", b"0").await.unwrap();
            log.write_at(&(RECORD.len() as u32).to_le_bytes(), 0)
                .await
                .unwrap();
            log.write_at(RECORD, 4).await.unwrap();
            log.sync().await.unwrap();
        },
        |context| async move {
            let log = context.open("log", b"0").await.map_err(|e| e.to_string())?;
            let len = log.len().await.unwrap();
            if len > 0 && len < 4 + RECORD.len() as u64 {
                return Err(format!("torn: {len} bytes"));
            }
            Ok(())
        },
    )
    .unwrap_err();
    let kept: Vec<_> = failure.kept.iter().map(ToString::to_string).collect();
    assert_eq!(kept, ["#1 write log/30 bytes 0..4"]);
}

/// Crash points marked by the user are checked, unsynced writes included;
/// outside a crash-state run the mark does nothing.
#[test]
fn marked_crash_points_are_checked() {
    let failure = crash_states(
        Config::default(),
        CrashStates::default(),
        |context| async move {
            let blob = context.open("p", b"b").await.unwrap();
            blob.write_at(b"partial", 0).await.unwrap();
            context.crash_point("after the first write");
        },
        |context| async move {
            let blob = context.open("p", b"b").await.map_err(|e| e.to_string())?;
            match blob.len().await.unwrap() {
                0 => Ok(()),
                len => Err(format!("{len} bytes survived")),
            }
        },
    )
    .unwrap_err();
    assert_eq!(failure.point, "after the first write");
    assert_eq!(failure.states, 2);

    let (runner, context, _) = commonware_runtime::deterministic::Executor::default();
    commonware_runtime::Runner::start(runner, async move {
        context.crash_point("nothing");
    });
}

/// Past the bound, a seeded sample is checked: the same one every time.
#[test]
fn past_the_bound_states_are_sampled_per_seed() {
    let run = |seed: u64| {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = seen.clone();
        let explored = crash_states(
            Config {
                seed,
                ..Config::default()
            },
            CrashStates {
                bound: 1000,
                samples: 100,
                ..CrashStates::default()
            },
            |context| async move {
                let blob = context.open("p", b"b").await.unwrap();
                for page in 0..12u64 {
                    blob.write_at(&[page as u8 + 1], page * 4096).await.unwrap();
                }
                blob.sync().await.unwrap();
            },
            move |context| {
                let log = log.clone();
                async move {
                    let blob = context.open("p", b"b").await.unwrap();
                    let len = blob.len().await.unwrap();
                    let mut bytes = Vec::new();
                    for page in 0..len.div_ceil(4096) {
                        let mut byte = [0];
                        blob.read_at(&mut byte, page * 4096).await.unwrap();
                        bytes.push(byte[0]);
                    }
                    log.lock().push(bytes);
                    Ok(())
                }
            },
        )
        .unwrap();
        let seen = seen.lock().clone();
        (explored, seen)
    };
    let (explored, seen) = run(1);
    // 2^12 states at the sync: sampled (with repeats skipped); the end of
    // the run adds one.
    assert_eq!(explored.points, 2);
    assert_eq!(explored.sampled, 1);
    assert!(explored.states > 90 && explored.states <= 101, "{explored}");
    assert_eq!(run(1), (explored, seen.clone()));
    assert_ne!(run(2).1, seen);
}

/// A check that panics fails with its panic message.
#[test]
fn a_panicking_check_is_a_failure() {
    let failure = crash_states(
        Config::default(),
        CrashStates::default(),
        |_| async {},
        |_| async { panic!("recovery exploded") },
    )
    .unwrap_err();
    assert_eq!(failure.point, "end of run");
    assert_eq!(failure.message, "recovery exploded");
}
