//! Loom models of the wake protocol. `wake.rs` says what they check, how
//! far each explores, and how to run them.
//!
//! Each model is one task (id [`TASK`]), the executor's thread (the model's
//! main thread) and one or two wakers on threads of their own. The protocol
//! is reached through [`Protocol`], implemented by the executor's own
//! [`Marks`] and [`RemoteQueue`] ([`Current`]) and by the counterexample
//! ([`QueuedOnly`]). A waker writes its flag in [`World::data`] (what a
//! channel or timer would write) and then wakes the task; a poll clears
//! `queued` first and then reads every flag, relaxed, so only the protocol
//! orders them. After every waker has returned,
//! [`ModelLoop::check_no_lost_wake`] drains once more, as the next round
//! would, and asserts that no write went unseen by the last poll without
//! the task being back in the ready set, and that the poll which follows
//! sees every write.

use super::{Marks, RemoteQueue};
use crate::sync::{AtomicBool, Ordering, SegQueue};
use loom::{model::Builder, sync::Arc, thread};

/// The id of the model's one task.
const TASK: usize = 0;

/// A protocol as the executor's thread and a waker's thread use it.
trait Protocol: Send + Sync + 'static {
    /// A task in the ready set: woken, about to be polled.
    fn queued() -> Self;
    /// What the run loop does right before polling the task.
    fn clear_before_poll(&self);
    /// A wake from a thread other than the executor's.
    fn wake_remote(&self);
    /// The run loop's drain of the remote queue into the ready set.
    fn drain(&self, ready: &mut Vec<usize>);
}

/// The executor's protocol: its own marks and remote queue, called as the
/// ready queue and the run loop call them.
struct Current {
    marks: Marks,
    remote: RemoteQueue<usize>,
}

impl Protocol for Current {
    fn queued() -> Self {
        let marks = Marks::new();
        assert!(marks.mark_queued());
        Self {
            marks,
            remote: RemoteQueue::new(),
        }
    }

    fn clear_before_poll(&self) {
        self.marks.clear_queued();
    }

    fn wake_remote(&self) {
        self.remote.wake(&self.marks, || TASK);
    }

    fn drain(&self, ready: &mut Vec<usize>) {
        self.remote
            .drain_into(ready, |id| (id == TASK).then_some(&self.marks));
    }
}

/// THE COUNTEREXAMPLE, not the executor's protocol: a waker on another
/// thread decides from `queued` alone (an acquire load, then a swap if it
/// read clear), the run loop clears `queued` with a release store before
/// polling, and drained entries join the ready set as they are. Loom finds
/// the lost wake: the waker reads a stale `queued == true` and pushes
/// nothing, while the poll has already missed the waker's write.
struct QueuedOnly {
    queued: AtomicBool,
    remote: SegQueue<usize>,
}

impl Protocol for QueuedOnly {
    fn queued() -> Self {
        Self {
            queued: AtomicBool::new(true),
            remote: SegQueue::new(),
        }
    }

    fn clear_before_poll(&self) {
        self.queued.store(false, Ordering::Release);
    }

    fn wake_remote(&self) {
        if !self.queued.load(Ordering::Acquire) && !self.queued.swap(true, Ordering::AcqRel) {
            self.remote.push(TASK);
        }
    }

    fn drain(&self, ready: &mut Vec<usize>) {
        while let Some(id) = self.remote.pop() {
            ready.push(id);
        }
    }
}

/// What the threads share: the protocol's state and one flag per waker.
struct World<P> {
    protocol: P,
    /// Set by waker `i` before it wakes the task; read by every poll.
    data: Vec<AtomicBool>,
}

/// Starts waker `i` on a thread of its own: it writes its flag, then wakes.
fn spawn_waker<P: Protocol>(world: &Arc<World<P>>, i: usize) -> thread::JoinHandle<()> {
    let world = world.clone();
    thread::spawn(move || {
        world.data[i].store(true, Ordering::Relaxed);
        world.protocol.wake_remote();
    })
}

/// The executor's thread, reduced to the steps that touch the protocol.
struct ModelLoop<P> {
    world: Arc<World<P>>,
    /// The ready set: ids the next round polls.
    ready: Vec<usize>,
    /// Which flags the last poll saw.
    seen: Vec<bool>,
}

impl<P: Protocol> ModelLoop<P> {
    /// An executor whose one task is in the ready set, with `wakers`
    /// wakers' flags, none written yet.
    fn new(wakers: usize) -> Self {
        let world = Arc::new(World {
            protocol: P::queued(),
            data: (0..wakers).map(|_| AtomicBool::new(false)).collect(),
        });
        Self {
            world,
            ready: vec![TASK],
            seen: vec![false; wakers],
        }
    }

    /// One round of the run loop: polls the ready set (clear-before-poll,
    /// then the poll), then drains the remote queue into the ready set.
    fn round(&mut self) {
        for _ in std::mem::take(&mut self.ready) {
            self.poll();
        }
        self.drain();
    }

    fn poll(&mut self) {
        self.world.protocol.clear_before_poll();
        for (seen, data) in self.seen.iter_mut().zip(&self.world.data) {
            *seen = data.load(Ordering::Relaxed);
        }
    }

    fn drain(&mut self) {
        self.world.protocol.drain(&mut self.ready);
        assert!(self.ready.len() <= 1, "the task is in the ready set twice");
    }

    /// Once every waker has returned: the next drain finds the task ready
    /// if the last poll missed a write, and the poll then sees every write.
    fn check_no_lost_wake(mut self) {
        self.drain();
        for (i, seen) in self.seen.iter().enumerate() {
            assert!(
                *seen || !self.ready.is_empty(),
                "lost wake: the poll missed waker {i}'s write and the task is not in the ready set"
            );
        }
        if !self.ready.is_empty() {
            self.poll();
            assert!(
                self.seen.iter().all(|seen| *seen),
                "lost wake: the task was polled again and missed a write ({:?})",
                self.seen
            );
        }
    }
}

/// Runs `model` under every interleaving loom explores, with at most
/// `preemptions` preemptions per execution (`None`: no bound;
/// `LOOM_MAX_PREEMPTIONS` overrides), and returns how many executions that
/// took.
fn check(model: fn(), preemptions: Option<usize>) -> usize {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = preemptions;
    }
    let count = executions.clone();
    builder.check(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        model();
    });
    let executions = executions.load(std::sync::atomic::Ordering::Relaxed);
    // More than one: loom did branch, the model is not trivially sequential.
    assert!(executions > 1, "loom explored a single execution");
    executions
}

/// One waker on another thread while the executor runs a round.
fn one_waker<P: Protocol>() {
    let mut exec = ModelLoop::<P>::new(1);
    let waker = spawn_waker(&exec.world, 0);
    exec.round();
    waker.join().unwrap();
    exec.check_no_lost_wake();
}

/// Two wakers while the executor runs two rounds: the second waker may
/// find the first one's entry pending and push none of its own.
fn two_wakers<P: Protocol>() {
    let mut exec = ModelLoop::<P>::new(2);
    let wakers = [spawn_waker(&exec.world, 0), spawn_waker(&exec.world, 1)];
    exec.round();
    exec.round();
    for waker in wakers {
        waker.join().unwrap();
    }
    exec.check_no_lost_wake();
}

/// A wake racing the drain that takes in an earlier wake's entry: the
/// task has been polled, waker 0's entry waits, and waker 1 wakes while
/// the executor drains and polls.
fn wake_racing_the_drain<P: Protocol>() {
    let mut exec = ModelLoop::<P>::new(2);
    exec.round();
    // Waker 0 wrote and woke before waker 1 starts (on this thread: only
    // its order before the race matters).
    exec.world.data[0].store(true, Ordering::Relaxed);
    exec.world.protocol.wake_remote();
    let waker = spawn_waker(&exec.world, 1);
    exec.round();
    exec.round();
    waker.join().unwrap();
    exec.check_no_lost_wake();
}

#[test]
fn loom_one_foreign_waker_is_never_lost() {
    let executions = check(one_waker::<Current>, None);
    println!("one foreign waker: {executions} executions, no lost wake");
}

/// Bounded: five preemptions take about 28,000 executions and a second;
/// with no bound (`LOOM_MAX_PREEMPTIONS=50`) the model passes too, after
/// about 960,000 executions and a minute.
#[test]
fn loom_two_foreign_wakers_are_never_lost() {
    let executions = check(two_wakers::<Current>, Some(5));
    println!("two foreign wakers: {executions} executions, no lost wake");
}

#[test]
fn loom_a_wake_racing_the_drain_is_never_lost() {
    let executions = check(wake_racing_the_drain::<Current>, None);
    println!("a wake racing the drain: {executions} executions, no lost wake");
}

/// The counterexample above fails the first model: the models can see the
/// lost wake they guard against.
#[test]
fn loom_counterexample_deciding_from_queued_loses_a_wake() {
    let failure = std::panic::catch_unwind(|| check(one_waker::<QueuedOnly>, None))
        .expect_err("loom found no lost wake in the counterexample");
    let message = failure
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| failure.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        message.starts_with("lost wake"),
        "failed otherwise: {message}"
    );
    println!("counterexample (waker decides from `queued`): {message}");
}
