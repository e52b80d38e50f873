//! Ready-queue tests: duplicate, local and foreign wakes, entering and
//! leaving, and the same through the run loop.

use super::*;
use crate::{
    task::waker::waker,
    test_support::{bare_executor, drained, executor, marks_of, run_ok, unqueued_task, yield_now},
    RunLoop,
};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::Poll,
    time::Duration,
};

fn queue(exec: &RunLoop) -> &ReadyQueue {
    &exec.core().shared.queue
}

#[test]
// The owned clone is the point: `wake` (by value) must enqueue once too.
#[allow(clippy::waker_clone_wake)]
fn duplicate_wakes_enqueue_once() {
    let exec = bare_executor();
    let (task, _handle) = unqueued_task(&exec, 3);
    let w = waker(&task);
    // From a thread not running the executor: one remote entry.
    w.wake_by_ref();
    w.wake_by_ref();
    w.clone().wake();
    assert_eq!(queue(&exec).remote.len(), 1);
    assert_eq!(drained(queue(&exec), &[&task]), vec![TaskId::new(3, 7)]);
    // Queued and not yet polled: a new remote entry joins nothing.
    w.wake_by_ref();
    assert!(drained(queue(&exec), &[&task]).is_empty());
    task.header().marks.clear_queued();
    w.wake();
    assert_eq!(drained(queue(&exec), &[&task]), vec![TaskId::new(3, 7)]);
}

#[test]
fn queued_task_is_not_enqueued_again() {
    let exec = bare_executor();
    let (task, _handle) = unqueued_task(&exec, 1);
    let guard = queue(&exec).enter();
    waker(&task).wake_by_ref();
    waker(&task).wake();
    let mut out = Vec::new();
    guard.drain_into(&mut out, marks_of(&[&task]));
    assert_eq!(out, vec![TaskId::new(1, 7)], "one entry for two wakes");
    waker(&task).wake();
    assert!(guard.is_empty(), "still queued: not enqueued again");
}

#[test]
fn local_and_remote_wakes() {
    let exec = bare_executor();
    let (task, _handle) = unqueued_task(&exec, 5);
    let queue = queue(&exec);
    let w = waker(&task);
    std::thread::spawn(move || w.wake()).join().unwrap();
    assert_eq!(queue.remote.len(), 1);
    assert_eq!(drained(queue, &[&task]), vec![TaskId::new(5, 7)]);

    task.header().marks.clear_queued();
    let guard = queue.enter();
    waker(&task).wake();
    assert!(
        queue.remote.is_empty(),
        "a wake on the running thread stays local"
    );
    assert!(!guard.is_empty());
    let mut out = Vec::new();
    guard.drain_into(&mut out, marks_of(&[&task]));
    assert_eq!(out, vec![TaskId::new(5, 7)]);
    assert!(guard.is_empty());
}

#[test]
#[should_panic(expected = "already running")]
fn a_queue_cannot_be_entered_twice() {
    let queue = ReadyQueue::default();
    let _first = queue.enter();
    let _second = queue.enter();
}

#[test]
fn leaving_restores_the_outer_queue() {
    let (outer, inner) = (bare_executor(), bare_executor());
    let (inner_task, _handle) = unqueued_task(&inner, 2);
    let outer_guard = queue(&outer).enter();
    {
        let _inner_guard = queue(&inner).enter();
    }
    waker(&inner_task).wake();
    assert!(outer_guard.is_empty(), "inner's wake is not outer's");
    assert_eq!(
        queue(&inner).remote.len(),
        1,
        "inner is not the current executor"
    );
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
