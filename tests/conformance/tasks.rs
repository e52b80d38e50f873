//! Tasks, handles, stop signals and time: what both runtimes promise through
//! `Spawner` and `Clock`.

use commonware_runtime::{reschedule, Clock, Error, Runner, Spawner};
use futures::{
    channel::oneshot,
    future::{select, Either},
    FutureExt,
};
use governor::clock::{Clock as GClock, ReasonablyRealtime};
use rand::{CryptoRng, RngCore};
use std::{
    pin::pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

/// A handle resolves to the task's output.
pub async fn spawn_returns_value(ctx: impl Spawner) {
    let handle = ctx.spawn("child", async { 42u32 });
    assert_eq!(handle.await, Ok(42));
}

/// A task runs even if its handle is dropped without being awaited.
pub async fn task_runs_without_await(ctx: impl Spawner) {
    let (tx, rx) = oneshot::channel();
    drop(ctx.spawn("detached", async move {
        let _ = tx.send(7u8);
    }));
    assert_eq!(rx.await, Ok(7));
}

/// Aborting a pending task resolves its handle to `Closed` and stops it.
pub async fn abort_closes_handle(ctx: impl Spawner + Clock) {
    let ran = Arc::new(Mutex::new(false));
    let handle = ctx.spawn("stuck", {
        let ctx = ctx.clone();
        let ran = ran.clone();
        async move {
            ctx.sleep(Duration::from_millis(50)).await;
            *ran.lock().unwrap() = true;
        }
    });
    handle.abort();
    assert_eq!(handle.await, Err(Error::Closed));
    ctx.sleep(Duration::from_millis(100)).await;
    assert!(!*ran.lock().unwrap(), "an aborted task kept running");
}

/// Aborting a task that already finished keeps its value.
pub async fn abort_after_finish_keeps_value(ctx: impl Spawner + Clock) {
    let (tx, rx) = oneshot::channel();
    let handle = ctx.spawn("quick", async move {
        let _ = tx.send(());
        9u8
    });
    rx.await.expect("task ran");
    // The task returns right after sending, within the same poll.
    ctx.sleep(Duration::from_millis(20)).await;
    handle.abort();
    assert_eq!(handle.await, Ok(9));
}

/// The root may finish while spawned tasks still run.
pub async fn root_finishes_before_tasks(ctx: impl Spawner) {
    ctx.spawn("forever", async {
        loop {
            reschedule().await;
        }
    });
}

/// `stop` reaches every waiter, the first value wins, a `stopped` taken
/// afterwards is ready at once, and nothing is aborted.
pub async fn stop_signals_every_waiter(ctx: impl Spawner + Clock) {
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let signal = ctx.stopped();
            let ctx2 = ctx.clone();
            ctx.spawn("waiter", async move {
                let value = signal.await;
                // Still running after the signal: stop aborts nothing.
                ctx2.sleep(Duration::from_millis(5)).await;
                value
            })
        })
        .collect();
    ctx.sleep(Duration::from_millis(10)).await;
    ctx.stop(7);
    ctx.stop(8);
    for waiter in waiters {
        assert_eq!(waiter.await, Ok(Ok(7)));
    }
    assert_eq!(ctx.stopped().now_or_never(), Some(Ok(7)));
}

/// `sleep(d)` resumes no earlier than `d` later on the runtime's clock.
pub async fn sleep_advances_clock(ctx: impl Clock) {
    let start = ctx.current();
    ctx.sleep(Duration::from_millis(10)).await;
    let elapsed = ctx.current().duration_since(start).expect("time went back");
    assert!(elapsed >= Duration::from_millis(10), "{elapsed:?}");
}

/// `sleep_until` waits for its deadline, and a deadline in the past
/// resolves at once.
pub async fn sleep_until_deadline(ctx: impl Clock) {
    let deadline = ctx.current() + Duration::from_millis(10);
    ctx.sleep_until(deadline).await;
    assert!(ctx.current() >= deadline);
    let before = ctx.current();
    ctx.sleep_until(before - Duration::from_secs(3600)).await;
    let waited = ctx
        .current()
        .duration_since(before)
        .expect("time went back");
    assert!(waited < Duration::from_secs(1), "{waited:?}");
}

/// Sleepers wake in deadline order.
pub async fn sleepers_wake_in_deadline_order(ctx: impl Spawner + Clock) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [150u64, 50, 100]
        .into_iter()
        .map(|ms| {
            let ctx2 = ctx.clone();
            let order = order.clone();
            ctx.spawn("sleeper", async move {
                ctx2.sleep(Duration::from_millis(ms)).await;
                order.lock().unwrap().push(ms);
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("sleeper finished");
    }
    assert_eq!(*order.lock().unwrap(), [50, 100, 150]);
}

/// Handles are `Unpin`: selecting on `&mut handle` in a loop works, a
/// pending handle survives losing the race, and it still yields the value.
pub async fn select_on_handle(ctx: impl Spawner + Clock) {
    let (release, released) = oneshot::channel::<()>();
    let mut handle = ctx.spawn("slow", async move {
        released.await.expect("released");
        5u8
    });
    let mut release = Some(release);
    let value = loop {
        let tick = pin!(ctx.sleep(Duration::from_millis(5)));
        match select(&mut handle, tick).await {
            Either::Left((value, _)) => break value,
            Either::Right(_) => {}
        }
        if let Some(release) = release.take() {
            release.send(()).expect("task waiting");
        }
    };
    assert_eq!(value, Ok(5));
}

/// Many short tasks all complete, each with its own value.
pub async fn many_tasks_complete(ctx: impl Spawner) {
    let handles: Vec<_> = (0..1000u32)
        .map(|i| {
            ctx.spawn("many", async move {
                reschedule().await;
                i * 2
            })
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await, Ok(i as u32 * 2));
    }
}

/// governor's clock (what rate limiters read) is the runtime's clock.
pub async fn governor_clock_is_current<C>(ctx: C)
where
    C: Clock + GClock<Instant = SystemTime> + ReasonablyRealtime,
{
    ctx.sleep(Duration::from_millis(3)).await;
    let before = ctx.current();
    let now = GClock::now(&ctx);
    let after = ctx.current();
    assert!(
        before <= now && now <= after,
        "{before:?} {now:?} {after:?}"
    );
}

/// A context is usable before `start` and after its runner is gone (for
/// random numbers and the clock), and its clones share one generator.
pub fn context_outlives_runner<C>(runner: impl Runner, mut ctx: C)
where
    C: Clock + RngCore + CryptoRng,
{
    let mut before = [0u8; 16];
    ctx.fill_bytes(&mut before);
    let start = ctx.current();
    runner.start(async {});
    let mut clone = ctx.clone();
    let (a, b) = (clone.next_u64(), ctx.next_u64());
    assert_ne!(a, b, "clones repeat each other's draws");
    assert_ne!(before, [0u8; 16]);
    assert!(ctx.current() >= start);
}
