//! Sleeps: futures that complete at a virtual time.
//!
//! # What this module owns
//! [`Sleep`] and [`Core::sleep_until`], which makes one. A sleep registers
//! a timer in its executor's wheel the first time it is polled before its
//! deadline, points that timer at whichever task polls it last, and cancels
//! it if dropped before it fires.
//!
//! # Invariants
//! * A sleep found due has nothing to cancel: every round ends by firing
//!   the timers due by then, and virtual time moves only there, so on the
//!   executor's thread a due sleep's timer has fired already (checked in
//!   debug builds).
//! * A sleep holds at most one timer, and that timer wakes the task (or
//!   waker) that polled the sleep last.
//! * Off the executor's thread the lock-free time read may be stale: a
//!   sleep that looks pending is checked again under the state lock.

use crate::{
    core::{Core, Wake},
    time::wheel::TimerId,
};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// Completes once virtual time reaches a deadline. Dropping it cancels its
/// timer.
pub struct Sleep {
    core: Core,
    deadline: u64,
    timer: Option<TimerId>,
}

impl Core {
    /// A future that completes once virtual time reaches `deadline` (ns).
    #[inline]
    pub fn sleep_until(&self, deadline: u64) -> Sleep {
        Sleep {
            core: self.clone(),
            deadline,
            timer: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    /// Inline (across crates too) for the due case, the other half of every
    /// sleep's polls; registering stays out of line.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Due: its timer, if any, has fired already (every round ends by
        // firing the timers due by then, and time only moves there), so
        // there is nothing to cancel and no need for the state.
        if this.core.now() >= this.deadline {
            this.completed();
            return Poll::Ready(());
        }
        this.register(cx)
    }
}

impl Sleep {
    /// Forgets the timer of a sleep found due (it has fired).
    #[inline]
    fn completed(&mut self) {
        #[cfg(debug_assertions)]
        if let Some(id) = self.timer {
            let guard = self.core.shared.state.lock();
            let pending = guard.borrow_mut().wheel.get_mut(id).is_some();
            assert!(!pending, "a due sleep's timer has not fired");
        }
        self.timer = None;
    }

    /// Registers the sleep's timer for the task polling it (or points the
    /// registered one at that task); completes the sleep if another
    /// thread's stale view of the time called it due too late.
    fn register(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let guard = self.core.shared.state.lock();
        let mut state = guard.borrow_mut();
        // Off the executor's thread the time read before may be stale.
        if state.now >= self.deadline {
            drop(state);
            drop(guard);
            self.completed();
            return Poll::Ready(());
        }
        if state.ended {
            drop(state);
            drop(guard);
            ended_runtime_sleep();
        }
        let shared = &*self.core.shared;
        state.note_wait(crate::wait::Wait::Timer(self.deadline));
        let stale = match self.timer.and_then(|id| state.wheel.get_mut(id)) {
            Some(wake) if wake.will_wake(cx.waker(), shared) => None,
            Some(wake) => Some(std::mem::replace(wake, Wake::new(cx.waker(), shared))),
            None => {
                self.timer = Some(
                    state
                        .wheel
                        .insert(self.deadline, Wake::new(cx.waker(), shared)),
                );
                None
            }
        };
        drop(state);
        drop(stale);
        Poll::Pending
    }

    /// Cancels the pending timer of a sleep dropped before it fired (kept
    /// out of line: most sleeps complete and have nothing to cancel).
    #[cold]
    #[inline(never)]
    fn cancel(&mut self, id: TimerId) {
        let waker = self.core.shared.state.lock().borrow_mut().wheel.cancel(id);
        drop(waker);
    }
}

/// A sleep polled after its executor's run ended would never fire: say so
/// rather than hang whoever awaits it.
#[cold]
#[inline(never)]
fn ended_runtime_sleep() -> ! {
    panic!("sleep on a runtime that has ended: its run is over and virtual time no longer moves (use the context `recover()` returns)")
}

impl Drop for Sleep {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.timer.take() {
            self.cancel(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{executor, run_ok, MS};
    use parking_lot::Mutex;
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Waker,
    };

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
}
