//! Run-loop tests: ordering, time, stalls, timeouts, aborts, held-back tasks.

use super::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const MS: u64 = 1_000_000;

fn executor(seed: u64) -> Executor {
    Executor::new(Config {
        start: 0,
        cycle: MS,
        deadline: None,
        strategy: Box::new(Uniform::new(seed)),
    })
}

/// Yields once (wakes itself and returns Pending the first time).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn run_ok(exec: &Executor, root: impl Future<Output = ()> + Send + 'static) {
    if exec.run("root", root).is_err() {
        panic!("run failed");
    }
}

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
fn sleepers_wake_in_deadline_order() {
    for seed in 0..10 {
        let exec = executor(seed);
        let c = exec.core().clone();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        run_ok(&exec, async move {
            let mut handles = Vec::new();
            for (i, at) in [50u64, 10, 30, 10, 20].into_iter().enumerate() {
                let (l, c2) = (l.clone(), c.clone());
                handles.push(c.spawn("s", async move {
                    c2.sleep_until(at * MS).await;
                    l.lock().push((at, i));
                }));
            }
            c.sleep_until(100 * MS).await;
        });
        let got = log.lock().clone();
        let times: Vec<_> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [10, 10, 20, 30, 50]);
    }
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
        Err(Failure::Stalled(message)) => {
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
    let exec = Executor::new(Config {
        start: 0,
        cycle: MS,
        deadline: Some(10 * MS),
        strategy: Box::new(Uniform::new(0)),
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
        Err(Failure::Panic { label, payload }) => {
            assert_eq!(label, "bad");
            assert_eq!(*payload.downcast::<&str>().unwrap(), "boom");
        }
        _ => panic!("expected a panic"),
    }
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn abort_drops_the_future_and_frees_the_slot() {
    let exec = executor(0);
    let c = exec.core().clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    run_ok(&exec, async move {
        let flag = DropFlag(d.clone());
        let id = c
            .spawn("victim", async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            })
            .id();
        yield_now().await;
        assert_eq!(c.tasks(), 2);
        assert!(c.abort(id));
        assert_eq!(d.load(Ordering::SeqCst), 1);
        assert_eq!(c.tasks(), 1);
        assert!(!c.abort(id), "second abort is a no-op");
        // A task aborting itself mid-poll is removed after the poll.
        let c2 = c.clone();
        let me = Arc::new(Mutex::new(None::<TaskId>));
        let results = Arc::new(Mutex::new(Vec::new()));
        let (me2, results2) = (me.clone(), results.clone());
        let id = c
            .spawn("self", async move {
                loop {
                    if let Some(id) = *me2.lock() {
                        // The first abort counts; a second in the same
                        // poll finds it aborted already.
                        let first = c2.abort(id);
                        let second = c2.abort(id);
                        results2.lock().push((first, second));
                    }
                    yield_now().await;
                }
            })
            .id();
        *me.lock() = Some(id);
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(c.tasks(), 1);
        assert_eq!(*results.lock(), [(true, false)], "removed after one poll");
    });
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

#[test]
fn wakes_from_other_threads_are_accepted() {
    let exec = executor(0);
    run_ok(&exec, async move {
        let mut thread = None;
        std::future::poll_fn(|cx| match thread.take() {
            None => {
                let waker = cx.waker().clone();
                let t = std::thread::spawn(move || waker.wake());
                // The wake lands in the lock-free queue before we return.
                t.join().unwrap();
                thread = Some(());
                Poll::Pending
            }
            Some(()) => Poll::Ready(()),
        })
        .await;
    })
}

#[test]
fn duplicate_wakes_poll_once_per_round() {
    let exec = executor(0);
    let c = exec.core().clone();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    run_ok(&exec, async move {
        let p2 = p.clone();
        let mut n = 0;
        c.spawn(
            "w",
            std::future::poll_fn(move |cx| {
                p2.fetch_add(1, Ordering::SeqCst);
                n += 1;
                for _ in 0..10 {
                    cx.waker().wake_by_ref();
                }
                if n == 3 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        );
        for _ in 0..5 {
            yield_now().await;
        }
    });
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}

/// Holds the task with the highest sequence number back for `rounds` rounds.
struct HoldLast {
    rounds: usize,
    inner: Uniform,
}

impl Strategy for HoldLast {
    fn name(&self) -> String {
        "hold-last".into()
    }
    fn schedule(&mut self, ready: &mut [TaskId]) -> usize {
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
    fn fork(&self) -> Box<dyn Strategy> {
        Box::new(HoldLast {
            rounds: self.rounds,
            inner: self.inner.clone(),
        })
    }
}

#[test]
fn held_back_tasks_stay_ready_and_time_advances() {
    let exec = Executor::new(Config {
        start: 0,
        cycle: MS,
        deadline: None,
        strategy: Box::new(HoldLast {
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
fn fill_bytes_matches_repeated_draws() {
    let (a, b) = (executor(5), executor(5));
    let mut bytes = [0u8; 20];
    a.core().fill_bytes(&mut bytes);
    let mut expected = Vec::new();
    for _ in 0..3 {
        expected.extend_from_slice(&b.core().next_u64().to_le_bytes());
    }
    assert_eq!(&bytes[..], &expected[..20]);
    assert_eq!(a.core().digest(), b.core().digest(), "same audited draws");
}

/// Wakes a flag, then the task waker it wraps: a waker that is not ours.
struct Foreign {
    woke: AtomicUsize,
    inner: Waker,
}

impl std::task::Wake for Foreign {
    fn wake(self: Arc<Self>) {
        self.woke.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

#[test]
fn timers_wake_foreign_wakers_and_follow_a_sleep_between_tasks() {
    let exec = executor(0);
    let c = exec.core().clone();
    run_ok(&exec, async move {
        // A sleep first polled through a combinator's own waker.
        let mut sleep = Box::pin(c.sleep_until(5 * MS));
        let mut foreign: Option<Arc<Foreign>> = None;
        let foreign = std::future::poll_fn(move |cx| {
            let foreign = foreign.get_or_insert_with(|| {
                Arc::new(Foreign {
                    woke: AtomicUsize::new(0),
                    inner: cx.waker().clone(),
                })
            });
            let waker = Waker::from(foreign.clone());
            let mut inner = Context::from_waker(&waker);
            match sleep.as_mut().poll(&mut inner) {
                Poll::Ready(()) => Poll::Ready(foreign.woke.load(Ordering::SeqCst)),
                Poll::Pending => Poll::Pending,
            }
        });
        assert_eq!(foreign.await, 1, "the combinator's waker fired once");
        assert_eq!(c.now(), 5 * MS);

        // A sleep registered by one task and awaited by another after the
        // first finished.
        let mut sleep = Box::pin(c.sleep_until(9 * MS));
        // Handing the (pending) sleep back to the root is the point.
        #[allow(clippy::async_yields_async)]
        let first = c.spawn("first", async move {
            let pending = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
            assert!(pending.is_pending());
            sleep
        });
        let sleep = first.await.expect("first finished");
        let c2 = c.clone();
        let second = c.spawn("second", async move {
            sleep.await;
            c2.now()
        });
        assert_eq!(second.await, Ok(9 * MS), "second woke at the deadline");
    });
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

/// Counts its drops, then panics.
struct PanicsOnDrop(Arc<AtomicUsize>);
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("drop panicked");
    }
}

#[test]
fn a_future_whose_drop_panics_is_dropped_once() {
    for finishes in [true, false] {
        let exec = executor(0);
        let c = exec.core().clone();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let result = exec.run("root", async move {
            let guard = PanicsOnDrop(d);
            let task = c.spawn("bad", async move {
                let _guard = guard;
                if !finishes {
                    std::future::pending::<()>().await;
                }
            });
            if finishes {
                std::future::pending::<()>().await;
            }
            // Aborting drops the future right here: the panic reaches us.
            task.abort();
        });
        match result {
            Err(Failure::Panic { label, .. }) => {
                assert_eq!(label, if finishes { "bad" } else { "root" })
            }
            _ => panic!("expected the drop's panic"),
        }
        drop(exec);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "finishes: {finishes}");
    }
}

/// Wakes `task` twice (by reference, then by value) from a new thread.
fn wake_twice_from_another_thread(task: &std::task::Waker) {
    let remote = task.clone();
    std::thread::spawn(move || {
        remote.wake_by_ref();
        remote.wake();
    })
    .join()
    .unwrap();
}

#[test]
fn a_task_woken_from_both_threads_is_polled_once() {
    let exec = executor(0);
    let c = exec.core().clone();
    run_ok(&exec, async move {
        let polls = Arc::new(AtomicUsize::new(0));
        let waker = Arc::new(std::sync::Mutex::new(None::<std::task::Waker>));
        let (p, w) = (polls.clone(), waker.clone());
        c.spawn(
            "t",
            std::future::poll_fn(move |cx| {
                p.fetch_add(1, Ordering::SeqCst);
                *w.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }),
        );
        // The task runs in the next round, which the root's second resume
        // follows.
        yield_now().await;
        yield_now().await;
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        let task = waker.lock().unwrap().clone().unwrap();
        // Woken here, then from another thread, then here again before the
        // task runs: one poll.
        task.wake_by_ref();
        wake_twice_from_another_thread(&task);
        task.wake_by_ref();
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        // A wake from another thread alone, twice: one entry, one poll.
        wake_twice_from_another_thread(&task);
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    });
}

/// A wake from another thread reaches a task whose poll just missed the
/// data: whatever the waker wrote before waking is seen by a later poll.
/// The producer hands over one item at a time (it waits until the consumer
/// saw the last one), so every item needs a wake from the other thread to
/// arrive; the consumer reads the data with no locked instruction after the
/// executor clears its queued mark, the window of the store-buffer race a
/// waker deciding from that mark would lose (stress, not proof). The root
/// yields every round so the run never stalls while the producer works; a
/// consumer stuck for seconds of wall time has lost a wake.
#[test]
fn wakes_from_another_thread_are_never_lost() {
    use std::sync::atomic::AtomicU64;
    const ITEMS: u64 = 20_000;
    let exec = executor(3);
    let c = exec.core().clone();
    run_ok(&exec, async move {
        let data = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let waker = Arc::new(std::sync::OnceLock::<std::task::Waker>::new());
        let (d, s, w) = (data.clone(), seen.clone(), waker.clone());
        c.spawn(
            "consumer",
            std::future::poll_fn(move |cx| {
                w.get_or_init(|| cx.waker().clone());
                let value = d.load(Ordering::Acquire);
                s.store(value, Ordering::Release);
                if value == ITEMS {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        );
        let watch = seen.clone();
        let producer = std::thread::spawn(move || {
            for i in 1..=ITEMS {
                while watch.load(Ordering::Acquire) < i - 1 {
                    std::hint::spin_loop();
                }
                // A locked write: the waker's own check must be what
                // decides, not a race between this store and its load.
                data.swap(i, Ordering::SeqCst);
                if let Some(task) = waker.get() {
                    task.wake_by_ref();
                }
            }
        });
        let (mut last, mut since) = (0, std::time::Instant::now());
        loop {
            let now_seen = seen.load(Ordering::Acquire);
            if now_seen == ITEMS {
                break;
            }
            if now_seen != last {
                (last, since) = (now_seen, std::time::Instant::now());
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "a wake was lost: the consumer saw {last} of {ITEMS}"
            );
            yield_now().await;
        }
        producer.join().unwrap();
    });
}
