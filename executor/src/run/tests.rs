//! Run-loop tests: ordering, time, stalls, timeouts, panics, held-back
//! tasks, successors, and the state lock between rounds.

use super::*;
use crate::{
    test_support::{executor, run_ok, yield_now, DropFlag, MS},
    Canceled, Scheduler, TaskId, Uniform,
};
use parking_lot::Mutex;
use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll, Waker},
};

fn interleaving(seed: u64) -> (Vec<usize>, String) {
    let exec = executor(seed);
    let core = exec.core().clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let (l, d, c) = (log.clone(), done.clone(), core.clone());
    run_ok(&exec, async move {
        for i in 0..5 {
            let (l, d) = (l.clone(), d.clone());
            c.spawn("t", async move {
                for _ in 0..3 {
                    l.lock().push(i);
                    yield_now().await;
                }
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
        while d.load(Ordering::SeqCst) < 5 {
            yield_now().await;
        }
    });
    let log = log.lock().clone();
    (log, core.digest())
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    assert_eq!(interleaving(1), interleaving(1));
    let distinct: std::collections::BTreeSet<_> = (0..20).map(|s| interleaving(s).0).collect();
    assert!(distinct.len() > 10);
}

/// Enough tasks for the run loop to prefetch (`PREFETCH_MIN_TASKS`), each
/// yielding, sleeping and finishing: returns every task's wake-up time in
/// the order they woke, and the digest.
fn crowd(seed: u64) -> (Vec<(u64, usize)>, String) {
    let exec = executor(seed);
    let core = exec.core().clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l, c) = (log.clone(), core.clone());
    run_ok(&exec, async move {
        let handles: Vec<_> = (0..PREFETCH_MIN_TASKS + 1000)
            .map(|i| {
                let (l, c2) = (l.clone(), c.clone());
                c.spawn("crowd", async move {
                    yield_now().await;
                    c2.sleep_until(c2.now() + (i as u64 * 7919 % 1000) * MS)
                        .await;
                    l.lock().push((c2.now(), i));
                    yield_now().await;
                    i
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await, Ok(i));
        }
    });
    let log = log.lock().clone();
    (log, core.digest())
}

#[test]
fn a_crowd_runs_the_same_with_prefetching() {
    let (log, digest) = crowd(3);
    assert_eq!(log.len(), PREFETCH_MIN_TASKS + 1000);
    assert!(
        log.windows(2).all(|w| w[0].0 <= w[1].0),
        "woken in time order"
    );
    assert_eq!(crowd(3), (log.clone(), digest));
    assert_ne!(crowd(4).0, log, "another seed, another order");
}

#[test]
fn time_advances_by_cycle_and_skips_when_idle() {
    let exec = executor(0);
    let core = exec.core().clone();
    let c = core.clone();
    run_ok(&exec, async move {
        assert_eq!(c.now(), 0);
        yield_now().await;
        assert_eq!(c.now(), MS, "one round passed");
        c.sleep_until(10_000 * MS).await;
        assert_eq!(c.now(), 10_000 * MS, "skipped straight to the deadline");
        c.sleep_until(0).await; // past deadline resolves at once
        assert_eq!(c.now(), 10_000 * MS);
    });
    assert!(core.finished());
}

#[test]
fn stall_lists_pending_tasks() {
    let exec = executor(0);
    let c = exec.core().clone();
    let result = exec.run("root", async move {
        c.spawn("stuck", std::future::pending::<()>());
        c.sleep_until(5 * MS).await;
        std::future::pending::<()>().await;
    });
    match result {
        Err(failure @ Failure::Stalled(_)) => {
            let message = failure.to_string();
            assert!(message.starts_with("runtime stalled"), "{message}");
            assert!(message.contains("root (task #0)"), "{message}");
            assert!(message.contains("stuck (task #1)"), "{message}");
            assert!(message.contains("last polled"), "{message}");
        }
        _ => panic!("expected a stall"),
    }
}

#[test]
fn timeout_is_checked_each_round() {
    let exec = RunLoop::new(CoreConfig {
        start: 0,
        cycle: MS,
        deadline: Some(10 * MS),
        scheduler: Box::new(Uniform::new(0)),
    });
    let c = exec.core().clone();
    let c2 = c.clone();
    let result = exec.run("root", async move {
        c2.sleep_until(1_000 * MS).await;
    });
    assert!(matches!(result, Err(Failure::Timeout(m)) if m.starts_with("runtime timeout")));
    assert_eq!(
        c.now(),
        1_000 * MS,
        "time skipping lands past the deadline, then the check fires"
    );
}

#[test]
fn panics_are_reported_with_the_label() {
    let exec = executor(0);
    let c = exec.core().clone();
    let result = exec.run("root", async move {
        c.spawn("bad", async { panic!("boom") });
        std::future::pending::<()>().await;
    });
    match result {
        Err(failure @ Failure::Panic { .. }) => {
            assert_eq!(failure.to_string(), "task 'bad' panicked: boom");
            assert!(format!("{failure:?}").contains("\"boom\""));
            let Failure::Panic { label, payload } = failure else {
                unreachable!()
            };
            assert_eq!(label, "bad");
            assert_eq!(*payload.downcast::<&str>().unwrap(), "boom");
        }
        _ => panic!("expected a panic"),
    }
}

#[test]
fn leftover_tasks_are_dropped_when_root_finishes() {
    let exec = executor(0);
    let c = exec.core().clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    run_ok(&exec, async move {
        let flag = DropFlag(d);
        c.spawn("forever", async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        c.sleep_until(u64::MAX / 2).await;
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(exec.core().tasks(), 0);
    assert_eq!(exec.core().timers(), 0);
}

/// Holds the task with the highest sequence number back for `rounds` rounds.
struct HoldLast {
    rounds: usize,
    inner: Uniform,
}

impl Scheduler for HoldLast {
    fn name(&self) -> String {
        "hold-last".into()
    }
    fn schedule(&mut self, ready: &mut [TaskId], _now: u64) -> usize {
        ready.sort();
        if self.rounds > 0 && ready.len() > 1 {
            self.rounds -= 1;
            ready.len() - 1
        } else {
            ready.len()
        }
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    fn fault(&mut self, name: &dyn std::fmt::Display, p: f64) -> Option<u64> {
        self.inner.fault(name, p)
    }
    fn fork(&self) -> Box<dyn Scheduler> {
        Box::new(HoldLast {
            rounds: self.rounds,
            inner: self.inner.clone(),
        })
    }
}

#[test]
fn held_back_tasks_stay_ready_and_time_advances() {
    let exec = RunLoop::new(CoreConfig {
        start: 0,
        cycle: MS,
        deadline: None,
        scheduler: Box::new(HoldLast {
            rounds: 5,
            inner: Uniform::new(0),
        }),
    });
    let c = exec.core().clone();
    let first_poll = Arc::new(Mutex::new(None));
    let f = first_poll.clone();
    run_ok(&exec, async move {
        let c2 = c.clone();
        c.spawn("late", async move {
            *f.lock() = Some(c2.now());
        });
        for _ in 0..10 {
            yield_now().await;
        }
    });
    // Spawned in round 0, ready from round 1, held in rounds 1-5, run in round 6.
    assert_eq!(
        *first_poll.lock(),
        Some(6 * MS),
        "held for five rounds, then run"
    );
}

#[test]
fn successor_keeps_time_digest_and_random_stream() {
    let exec = executor(9);
    let c = exec.core().clone();
    let c2 = c.clone();
    run_ok(&exec, async move {
        c2.sleep_until(7 * MS).await;
    });
    let before = c.digest();
    let next = c.successor();
    assert_eq!(next.core().now(), c.now());
    assert_eq!(next.core().digest(), before);
    assert_eq!(next.core().next_u64(), c.next_u64());
    assert!(!next.core().finished());
}

#[test]
fn other_threads_reach_the_state_between_rounds() {
    let exec = executor(0);
    let c = exec.core().clone();
    run_ok(&exec, async move {
        let done = Arc::new(AtomicUsize::new(0));
        let (c2, d) = (c.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            // Blocks until the run loop lets go of the state between rounds.
            let now = c2.now();
            d.store(1, Ordering::SeqCst);
            now
        });
        let mut rounds = 0;
        while done.load(Ordering::SeqCst) == 0 {
            rounds += 1;
            assert!(rounds < 10_000_000, "the thread never got the state");
            yield_now().await;
        }
        assert!(thread.join().unwrap() <= c.now());
    });
}

#[test]
fn an_ended_run_closes_later_spawns_and_refuses_a_second_run() {
    let exec = executor(0);
    let core = exec.core().clone();
    assert!(exec.run("root", async {}).is_ok(), "the root completes");
    let mut late = core.spawn("late", async { 1 });
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(
        Pin::new(&mut late).poll(&mut cx),
        Poll::Ready(Err(Canceled))
    );
    assert_eq!(core.tasks(), 0, "the late task never entered the arena");
    let again = catch_unwind(AssertUnwindSafe(|| exec.run("root", async {})));
    assert!(again.is_err(), "a second run of one executor panics");
}

#[test]
fn a_sleep_polled_after_the_run_ended_panics_with_a_message() {
    let exec = executor(0);
    let core = exec.core().clone();
    assert!(exec.run("root", async {}).is_ok(), "the root completes");
    let mut sleep = core.sleep_until(core.now() + MS);
    let mut cx = Context::from_waker(Waker::noop());
    let panic = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut sleep).poll(&mut cx)))
        .expect_err("the sleep panics");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("runtime that has ended"), "{message}");
}

#[test]
fn a_run_whose_time_passes_its_end_times_out() {
    let exec = RunLoop::new(CoreConfig {
        start: 0,
        cycle: END_OF_TIME,
        deadline: None,
        scheduler: Box::new(Uniform::new(0)),
    });
    let result = exec.run("root", async {
        loop {
            yield_now().await;
        }
    });
    let Err(Failure::Timeout(message)) = result else {
        panic!("expected a timeout");
    };
    assert!(message.contains("virtual time passed its end"), "{message}");
}

#[test]
fn a_cycle_past_the_end_of_time_is_refused() {
    let refused = catch_unwind(|| {
        RunLoop::new(CoreConfig {
            start: 0,
            cycle: END_OF_TIME + 1,
            deadline: None,
            scheduler: Box::new(Uniform::new(0)),
        })
    });
    assert!(refused.is_err());
}

/// Tasks that yield, sleep and finish in a seeded order, some leaving a
/// task and a timer pending when the root returns: the log of (time, task)
/// wake-ups and the digest.
fn mixed(seed: u64) -> (Vec<(u64, usize)>, String) {
    let exec = executor(seed);
    let core = exec.core().clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l, c) = (log.clone(), core.clone());
    run_ok(&exec, async move {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (l, c2) = (l.clone(), c.clone());
                c.spawn("mixed", async move {
                    for _ in 0..i % 3 {
                        yield_now().await;
                    }
                    if i % 5 == 0 {
                        let c3 = c2.clone();
                        c2.spawn("forever", async move {
                            c3.sleep_until(c3.now() + 3_600_000 * MS).await;
                        });
                    }
                    c2.sleep_until(c2.now() + (i as u64 * 7919 % 50) * MS).await;
                    l.lock().push((c2.now(), i));
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("task");
        }
    });
    let log = log.lock().clone();
    (log, core.digest())
}

#[test]
fn memory_kept_between_executors_changes_nothing() {
    let fresh = std::thread::spawn(|| mixed(7)).join().unwrap();
    let runs = std::thread::spawn(|| {
        let first = mixed(7);
        let kept = crate::spare::take();
        assert!(kept.wheel.is_some(), "a finished run leaves its wheel");
        crate::spare::give(kept);
        // A burst in between: more than the cache keeps.
        let _ = crowd(1);
        (first, mixed(7), mixed(7), mixed(8))
    })
    .join()
    .unwrap();
    assert_eq!(runs.0, fresh);
    assert_eq!(runs.1, fresh, "an executor on kept memory runs the same");
    assert_eq!(runs.2, fresh);
    assert_ne!(runs.3, fresh, "another seed, another run");
    assert_eq!(runs.3, std::thread::spawn(|| mixed(8)).join().unwrap());
}

/// Wakers cloned on the executor's thread and dropped on another, wakers
/// cloned there and dropped here before and after their task finished,
/// wakes from both sides, and an abort from another thread: every task
/// block is freed once, which the state's count of blocks shows.
#[test]
fn wakers_crossing_threads_free_every_task_block() {
    use std::sync::mpsc;
    let exec = executor(9);
    let core = exec.core().clone();
    let blocks = || Arc::strong_count(&core.shared);
    let base = blocks();
    let (to_remote, remote_rx) = mpsc::channel::<Waker>();
    let (to_home, home_rx) = mpsc::channel::<Waker>();
    let remote = std::thread::spawn(move || {
        for waker in remote_rx {
            let clone = waker.clone();
            waker.wake_by_ref();
            to_home.send(clone).unwrap();
            drop(waker);
        }
    });
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (c, k) = (core.clone(), kept.clone());
    let home = Arc::new(Mutex::new(home_rx));
    let result = exec.run("root", async move {
        let mut handles = Vec::new();
        for i in 0..40 {
            let (to_remote, k) = (to_remote.clone(), k.clone());
            handles.push(c.spawn("crossing", async move {
                std::future::poll_fn(|cx| {
                    to_remote.send(cx.waker().clone()).unwrap();
                    k.lock().push(cx.waker().clone());
                    drop(cx.waker().clone());
                    Poll::Ready(())
                })
                .await;
                for _ in 0..i % 4 {
                    yield_now().await;
                }
            }));
        }
        let victim = c.spawn("victim", std::future::pending::<()>());
        yield_now().await;
        // The other thread gets the state between rounds: no joining it
        // from inside the run.
        let (id, c2) = (victim.id(), c.clone());
        let aborter = std::thread::spawn(move || assert!(c2.abort(id)));
        while !aborter.is_finished() {
            yield_now().await;
        }
        aborter.join().unwrap();
        assert_eq!(victim.await, Err(Canceled));
        for handle in handles {
            handle.await.expect("task");
        }
        // Clones made on the other thread, dropped here: some of their
        // tasks are done, some wakes are late.
        let home = home.lock();
        for _ in 0..40 {
            let waker = home.recv().unwrap();
            waker.wake_by_ref();
            drop(waker);
        }
        // Half the wakers kept here, dropped here after their tasks ended;
        // the other half dropped after the run, on this test's thread.
        let mut kept = k.lock();
        kept.truncate(20);
    });
    if let Err(failure) = result {
        panic!("run failed: {failure}");
    }
    remote.join().unwrap();
    assert_eq!(kept.lock().len(), 20);
    drop(kept);
    assert_eq!(blocks(), base, "every task block was freed");
}
