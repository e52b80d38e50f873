//! Whole harness runs (several epochs joined by `start_until` and
//! `recover`) through the exploration tools: a sweep finds a failing seed,
//! shrinking removes every fault and choice the failure does not need
//! (the harness's own faults, asked with `Context::fault`, and the
//! runtime's storage faults alike), the story and the timeline tell what
//! is left, and the shrunk schedule replays exactly, or is rejected,
//! saying where, when it belongs to another program.

use commonware_runtime::{
    deterministic::{
        self, Config, Executor, Faults, Halt, ReplayError, Schedule, StorageFaults, Sweep,
    },
    Blob, Clock, Runner, Spawner, Storage,
};
use rand::Rng;
use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

const RECORD: u64 = 8;

/// A writer acknowledges records before syncing them (it syncs every
/// fourth), a ticker asks about harmless faults, and a second partition
/// fails writes now and then. If the power goes out (a harness fault) the
/// run recovers and checks that every acknowledged record survived.
fn harness(config: Config) -> u64 {
    let faults = Faults {
        storage: StorageFaults::default(),
        ..Faults::default()
    };
    let mut faults = faults;
    faults.storage_partitions.insert(
        "scratch".into(),
        StorageFaults {
            write: 0.2,
            ..StorageFaults::default()
        },
    );
    let (runner, context, _) = Executor::init(Config { faults, ..config });
    let writer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    context.name_node(writer, "writer");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let acked = acknowledged.clone();
    let root = {
        let context = context.clone();
        async move {
            let node = context.with_ip(writer);
            let log = node.open("log", b"records").await.unwrap();
            let scratch = node.open("scratch", b"tmp").await.unwrap();
            context.clone().spawn("ticker", async move {
                for i in 0..40u64 {
                    context.sleep(Duration::from_millis(3)).await;
                    if context.fault(&format!("noise {}", i % 4), 0.3).is_some() {
                        context.note(format_args!("noise {i}"));
                    }
                }
            });
            for n in 0..40u64 {
                log.write_at(&n.to_le_bytes(), n * RECORD).await.unwrap();
                let _ = scratch.write_at(&n.to_le_bytes(), 0).await;
                if n % 4 == 3 {
                    log.sync().await.unwrap();
                }
                acked.store(n + 1, Ordering::SeqCst);
                node.note(format_args!("record {n} acknowledged"));
                node.sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let cut = context.fault("power cut", 0.5);
    let Some(mut cut) = cut else {
        runner.start(root);
        return acknowledged.load(Ordering::SeqCst);
    };
    let at = Duration::from_millis(cut.gen_range(1..90));
    if runner.start_until(Halt::At(at), root).is_some() {
        return acknowledged.load(Ordering::SeqCst);
    }
    let (runner, context, _) = context.recover();
    runner.start(async move {
        let log = context.open("log", b"records").await.unwrap();
        let kept = log.len().await.unwrap() / RECORD;
        let acked = acknowledged.load(Ordering::SeqCst);
        assert!(
            kept >= acked,
            "lost acknowledged records: {acked} acknowledged, {kept} kept"
        );
        kept
    })
}

/// The lowest failing seed of 0..200 with its recorded schedule.
fn failure() -> Box<deterministic::FailedRun> {
    Sweep::new(Config::default(), 0..200)
        .threads(2)
        .run_harness(harness)
        .expect_err("some seed cuts the power between a write and its sync")
}

#[test]
fn a_whole_run_shrinks_to_the_fault_its_failure_needs() {
    let failure = failure();
    assert!(
        failure.message.starts_with("lost acknowledged records"),
        "{failure}"
    );
    let recorded = failure.schedule.clone().unwrap();
    assert!(
        recorded.faults().count() > 5,
        "noise and write errors fired too: {recorded}"
    );
    let shrunk = deterministic::shrink_harness_with(&Config::default(), &recorded, harness, |f| {
        f.message.starts_with("lost acknowledged records")
    })
    .unwrap();
    let left: Vec<&str> = shrunk.schedule.faults().map(|f| f.name).collect();
    assert_eq!(left, ["power cut"], "{}", shrunk.description);
    assert_eq!(shrunk.before.0, recorded.faults().count());
    // The story tells it, with the writer's lane and the failure.
    assert!(
        shrunk.story.contains("fault     power cut (occurrence 0)"),
        "{}",
        shrunk.story
    );
    assert!(
        shrunk.story.contains("power cut: every task stops"),
        "{}",
        shrunk.story
    );
    assert!(shrunk.story.contains("writer"), "{}", shrunk.story);
    assert!(
        shrunk.story.contains("FAILED    lost acknowledged records"),
        "{}",
        shrunk.story
    );
    assert!(!shrunk.story.contains("noise"), "{}", shrunk.story);

    // The text form pastes into a test and replays the same failure:
    // message, virtual time and auditor state.
    let pasted: Schedule = shrunk.schedule.to_string().parse().unwrap();
    match deterministic::replay_harness(&Config::default(), &pasted, harness) {
        Err(ReplayError::Failed(again)) => assert!(again.same_failure(&shrunk.failure), "{again}"),
        Err(other) => panic!("{other}"),
        Ok(kept) => panic!("passed, keeping {kept}"),
    }
    // Shrinking is deterministic.
    let again = deterministic::shrink_harness_with(&Config::default(), &recorded, harness, |f| {
        f.message.starts_with("lost acknowledged records")
    })
    .unwrap();
    assert_eq!(again.schedule, shrunk.schedule);
    assert_eq!(again.runs, shrunk.runs);
    // Without the power cut, the run passes.
    let mut without = Schedule::new();
    for value in pasted.randoms() {
        without.push_random(*value);
    }
    assert!(deterministic::replay_harness(&Config::default(), &without, harness).is_ok());
}

#[test]
fn shrink_harness_keeps_the_same_message_and_records_a_bare_failure() {
    let mut failure = failure();
    failure.schedule = None;
    let shrunk = deterministic::shrink_harness(&Config::default(), &failure, harness).unwrap();
    assert_eq!(shrunk.failure.message, failure.message);
    assert!(shrunk.schedule.faults().any(|f| f.name == "power cut"));
}

#[test]
fn a_schedule_of_another_program_is_rejected_saying_where() {
    let failure = failure();
    let mut schedule = failure.schedule.clone().unwrap();
    schedule.push_fault("crash node 7", 0, 1);
    match deterministic::replay_harness(&Config::default(), &schedule, harness) {
        Err(ReplayError::Mismatch(why)) => assert!(
            why.contains("fault `crash node 7` occurrence 0 never came"),
            "{why}"
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A test body is another program than this harness.
    let body = |context: deterministic::Context| async move {
        context.sleep(Duration::from_millis(1)).await;
    };
    let error = deterministic::replay(&Config::default(), &schedule, body).unwrap_err();
    assert!(matches!(error, ReplayError::Mismatch(_)), "{error}");
    // Text that is no schedule is an error naming the byte.
    let error = "1:2;0,zz".parse::<Schedule>().unwrap_err();
    assert!(error.to_string().starts_with("at byte 6"), "{error}");
}

#[test]
fn every_epoch_is_drawn_and_exports_as_chrome_trace_json() {
    let failure = failure();
    let config = failure.config(&Config::default(), true);
    let (result, timeline) = deterministic::record_timeline_harness(&config, harness);
    assert!(result.is_err());
    assert_eq!(timeline.lanes, ["writer", "runtime"]);
    assert!(timeline.failure.is_some());
    let json: serde_json::Value = serde_json::from_str(&timeline.to_chrome_json()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["writer", "runtime"]);
    let has = |cat: &str| events.iter().any(|e| e["cat"] == cat);
    assert!(
        has("fault") && has("note") && has("power") && has("failure"),
        "{json}"
    );
    let html = timeline.to_html("harness");
    assert!(html.contains("power cut") && html.contains("lost acknowledged records"));
}

#[test]
fn harness_faults_and_notes_check_their_input() {
    let (_, context, _) = Executor::default();
    // Not drawn: a note is not even formatted.
    struct Panics;
    impl std::fmt::Display for Panics {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("formatted")
        }
    }
    context.note(Panics);
    assert!(context.fault("never", 0.0).is_none());
    assert!(context.fault("always", 1.0).is_some());
    let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| context.fault("odds", 1.5)))
        .unwrap_err();
    let message = bad.downcast_ref::<String>().unwrap();
    assert!(message.contains("fault `odds` is 1.5"), "{message}");
}
