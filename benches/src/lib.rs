//! Workloads for the side-by-side benchmarks of our runtime, the registry's
//! `commonware-runtime` 0.0.16 (imported as `cw16`) and tokio.
//!
//! # What this crate owns
//! * [`ours`] and [`reference`]: the same deterministic-runtime workloads,
//!   generated from one macro body against each crate's public API, so the
//!   two sides run literally the same user code.
//! * [`tokio_ct`]: the same workloads written directly on tokio's
//!   current_thread runtime, where the workload has a tokio equivalent.
//! * [`WORKLOADS`]: names, sizes and targets shared by the criterion bench
//!   (`benches/runtime.rs`) and the report generator (`src/bin/results.rs`);
//!   [`SEED_WORKLOADS`] and [`NETWORK_STORAGE`] the same for `benches/seed.rs`
//!   and `benches/network_storage.rs`.
//! * [`memory`]: the counting allocator and the per-task memory measurement.
//!
//! # Invariants
//! * Every workload returns a value derived from all of its work (a sum, a
//!   count), checked by the caller, so no side can skip work.
//! * Sizes live in [`WORKLOADS`] only; the bench and the report agree on them.

pub mod adapter;
pub mod cpu;
pub mod memory;

use futures::task::AtomicWaker;
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

/// One row of the results table.
pub struct Workload {
    /// Criterion group name.
    pub group: &'static str,
    /// What the workload does, at its full size.
    pub description: &'static str,
    /// Operations per iteration (the unit of the per-op numbers).
    pub ops: u64,
    /// What one operation is.
    pub unit: &'static str,
    /// Required speed-up of ours over the reference.
    pub target: f64,
    /// Whether ours must also be at least as fast as tokio current_thread.
    pub versus_tokio: bool,
}

/// Spawn+join: tasks per iteration.
pub const SPAWN_TASKS: u64 = 500_000;
/// Reschedule: tasks, and yields per task.
pub const YIELD_TASKS: usize = 1_000;
/// Reschedule: yields per task.
pub const YIELDS: usize = 4_000;
/// Duplicate wakes: parked tasks.
pub const PARKED_TASKS: usize = 1_000;
/// Duplicate wakes: deliveries per iteration.
pub const DELIVERIES: u64 = 100;
/// Duplicate wakes: wakes per task per delivery, benched side by side.
pub const WAKES: [usize; 3] = [1, 4, 16];
/// Sleepers: tasks, each sleeping a pseudo-random 1 ms..=10 s.
pub const SLEEPERS: u64 = 500_000;
/// Sleep loop: sleeps of one task.
pub const SLEEPS: u64 = 2_000_000;
/// Ping-pong: messages (both directions together).
pub const MESSAGES: u64 = 3_000_000;
/// Spawn tree: depth below the root, and children per node.
pub const TREE_DEPTH: u32 = 9;
/// Spawn tree: children per node.
pub const TREE_BRANCHING: u64 = 4;

/// Seed workloads: seeds per iteration (each a fresh runtime).
pub const SEEDS: u64 = 1_000;
/// Seed sweep: tasks of the small program.
pub const SEED_TASKS: usize = 10;
/// Seed sweep: yields of each task before its 1 ms sleep.
pub const SEED_YIELDS: usize = 10;

/// Echo: connections.
pub const ECHO_CONNECTIONS: usize = 100;
/// Echo: messages echoed per connection.
pub const ECHO_MESSAGES: usize = 2_000;
/// Echo: message size in bytes.
pub const ECHO_MESSAGE: usize = 64;
/// Blob: 4 KiB writes per round.
pub const BLOB_WRITES: u64 = 16_384;
/// Blob: rounds of write, sync, read back.
pub const BLOB_ROUNDS: u64 = 6;
/// Blob: block size in bytes.
pub const BLOCK: usize = 4_096;

/// Tasks a spawn tree of `depth` and `branching` spawns (the root excluded).
pub const fn tree_tasks(depth: u32, branching: u64) -> u64 {
    let mut total = 0;
    let mut level = 1;
    let mut d = 0;
    while d < depth {
        level *= branching;
        total += level;
        d += 1;
    }
    total
}

/// The executor workloads, in table order.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        group: "spawn_join",
        description: "spawn+join of 500,000 tasks returning their index",
        ops: SPAWN_TASKS,
        unit: "task",
        target: 5.0,
        versus_tokio: true,
    },
    Workload {
        group: "reschedule",
        description: "1,000 tasks × 4,000 `reschedule()` yields",
        ops: (YIELD_TASKS * YIELDS) as u64,
        unit: "yield",
        target: 10.0,
        versus_tokio: true,
    },
    Workload {
        group: "duplicate_wakes_1",
        description: "1,000 parked tasks, woken 1× per delivery (100 deliveries)",
        ops: PARKED_TASKS as u64 * DELIVERIES,
        unit: "delivery",
        target: 30.0,
        versus_tokio: false,
    },
    Workload {
        group: "duplicate_wakes_4",
        description: "1,000 parked tasks, woken 4× per delivery (100 deliveries)",
        ops: PARKED_TASKS as u64 * DELIVERIES,
        unit: "delivery",
        target: 30.0,
        versus_tokio: false,
    },
    Workload {
        group: "duplicate_wakes_16",
        description: "1,000 parked tasks, woken 16× per delivery (100 deliveries)",
        ops: PARKED_TASKS as u64 * DELIVERIES,
        unit: "delivery",
        target: 30.0,
        versus_tokio: false,
    },
    Workload {
        group: "sleepers",
        description: "500,000 tasks each sleeping a pseudo-random 1 ms–10 s",
        ops: SLEEPERS,
        unit: "task",
        target: 10.0,
        versus_tokio: false,
    },
    Workload {
        group: "sleep_loop",
        description: "one task sleeping 2,000,000 times (1 ms each) in a loop",
        ops: SLEEPS,
        unit: "sleep",
        target: 5.0,
        versus_tokio: false,
    },
    Workload {
        group: "ping_pong",
        description: "two tasks ping-ponging 3,000,000 messages over `futures::channel::mpsc`",
        ops: MESSAGES,
        unit: "message",
        target: 5.0,
        versus_tokio: true,
    },
    Workload {
        group: "spawn_tree",
        description: "spawn tree depth 9, branching 4 (349,524 short-lived tasks)",
        ops: tree_tasks(TREE_DEPTH, TREE_BRANCHING),
        unit: "task",
        target: 8.0,
        versus_tokio: false,
    },
];

/// The price of a seed: a fresh runtime per seed (the `seed` bench), in
/// table order.
pub const SEED_WORKLOADS: &[Workload] = &[
    Workload {
        group: "seed_empty",
        description: "a fresh runtime per seed running an empty root, auditor state read, dropped (1,000 seeds)",
        ops: SEEDS,
        unit: "seed",
        target: 3.0,
        versus_tokio: true,
    },
    Workload {
        group: "seed_sweep",
        description: "a fresh runtime per seed running 10 tasks × (10 `reschedule()`, then a 1 ms sleep), auditor state read, dropped (1,000 seeds)",
        ops: SEEDS,
        unit: "seed",
        target: 5.0,
        versus_tokio: true,
    },
];

/// The simulated network and storage workloads, in table order.
pub const NETWORK_STORAGE: &[Workload] = &[
    Workload {
        group: "echo",
        description: "100 connections × 2,000 echoed 64-byte messages",
        ops: (ECHO_CONNECTIONS * ECHO_MESSAGES) as u64,
        unit: "round trip",
        target: 10.0,
        versus_tokio: false,
    },
    Workload {
        group: "blob_append",
        description: "16,384 writes of 4 KiB to one blob, sync, read all back (6 rounds, appending: the blob grows to 384 MiB)",
        ops: BLOB_WRITES * BLOB_ROUNDS,
        unit: "block written and read",
        target: 10.0,
        versus_tokio: false,
    },
    Workload {
        group: "blob_overwrite",
        description: "16,384 writes of 4 KiB to one blob, sync, read all back (6 rounds, each overwriting the same 64 MiB)",
        ops: BLOB_WRITES * BLOB_ROUNDS,
        unit: "block written and read",
        target: 10.0,
        versus_tokio: false,
    },
];

/// Where the duplicate-wakes workload parks its tasks: one waker slot per
/// task and a delivery counter. A delivery bumps the counter and wakes every
/// parked task a given number of times.
pub struct Board {
    round: AtomicU64,
    acked: AtomicUsize,
    slots: Vec<AtomicWaker>,
}

impl Board {
    /// A board for `tasks` parked tasks.
    pub fn new(tasks: usize) -> Arc<Self> {
        Arc::new(Self {
            round: AtomicU64::new(0),
            acked: AtomicUsize::new(0),
            slots: (0..tasks).map(|_| AtomicWaker::new()).collect(),
        })
    }

    /// Resolves once delivery `round` has happened; until then task `task`
    /// stays parked.
    pub fn wait(&self, task: usize, round: u64) -> Wait<'_> {
        Wait {
            board: self,
            task,
            round,
        }
    }

    /// Publishes delivery `round` and wakes every parked task `wakes` times.
    pub fn deliver(&self, round: u64, wakes: usize) {
        self.round.store(round, Ordering::Release);
        for slot in &self.slots {
            if let Some(waker) = slot.take() {
                for _ in 1..wakes {
                    waker.wake_by_ref();
                }
                waker.wake();
            }
        }
    }

    /// A task saw its delivery.
    pub fn ack(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Deliveries seen so far, summed over tasks.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }
}

/// Future of [`Board::wait`].
pub struct Wait<'a> {
    board: &'a Board,
    task: usize,
    round: u64,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.board.round.load(Ordering::Acquire) >= self.round {
            return Poll::Ready(());
        }
        self.board.slots[self.task].register(cx.waker());
        Poll::Pending
    }
}

/// A task that stays parked on `board` until delivery `round`.
pub async fn parked(board: Arc<Board>, task: usize, round: u64) {
    board.wait(task, round).await
}

/// Pseudo-random sleep durations in nanoseconds, uniform in 1 ms..=10 s.
pub fn sleep_durations(n: u64, seed: u64) -> Vec<u64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.gen_range(1_000_000..=10_000_000_000))
        .collect()
}

/// Generates the deterministic-runtime workloads against `$krate`'s public
/// API (ours and the reference expose the same one).
macro_rules! deterministic_workloads {
    ($krate:ident) => {
        use crate::Board;
        use futures::{channel::mpsc, SinkExt, StreamExt};
        use std::{future::Future, pin::Pin, time::Duration};
        use $krate::{
            deterministic::Executor, reschedule, Clock, Listener, Network, Runner, Sink, Spawner,
            Stream,
        };

        type Context = $krate::deterministic::Context;

        /// Spawns `n` tasks returning their index and joins them all;
        /// returns the sum of the indices.
        pub fn spawn_join(n: u64) -> u64 {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let handles: Vec<_> = (0..n)
                    .map(|i| context.spawn("task", async move { i }))
                    .collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await.expect("task failed");
                }
                sum
            })
        }

        /// `tasks` tasks each yield `yields` times; returns the total yields.
        pub fn yielders(tasks: usize, yields: usize) -> usize {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        context.spawn("yielder", async move {
                            for _ in 0..yields {
                                reschedule().await;
                            }
                            yields
                        })
                    })
                    .collect();
                let mut total = 0;
                for handle in handles {
                    total += handle.await.expect("task failed");
                }
                total
            })
        }

        /// `tasks` parked tasks; `deliveries` times, each is woken `wakes`
        /// times. Returns the deliveries seen, summed over tasks.
        pub fn duplicate_wakes(tasks: usize, deliveries: u64, wakes: usize) -> usize {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let board = Board::new(tasks);
                let handles: Vec<_> = (0..tasks)
                    .map(|task| {
                        let board = board.clone();
                        context.spawn("parked", async move {
                            for round in 1..=deliveries {
                                board.wait(task, round).await;
                                board.ack();
                            }
                        })
                    })
                    .collect();
                for round in 1..=deliveries {
                    board.deliver(round, wakes);
                    while board.acked() < tasks * round as usize {
                        reschedule().await;
                    }
                }
                for handle in handles {
                    handle.await.expect("task failed");
                }
                board.acked()
            })
        }

        /// A fresh runtime seeded with `seed` runs an empty root, its
        /// auditor state is read and it is dropped: the fixed price of a
        /// seed. Returns the state's length.
        pub fn seed_empty(seed: u64) -> usize {
            let (runner, _context, auditor) = Executor::seeded(seed);
            runner.start(async {});
            auditor.state().len()
        }

        /// A fresh runtime seeded with `seed` runs the small program of a
        /// seed sweep: `tasks` tasks each yield `yields` times, then sleep
        /// 1 ms; the root joins them. Its auditor state is read and it is
        /// dropped. Returns the number of tasks joined.
        pub fn seed_run(seed: u64, tasks: usize, yields: usize) -> usize {
            let (runner, context, auditor) = Executor::seeded(seed);
            let joined = runner.start(async move {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        let sleeper = context.clone();
                        context.spawn("worker", async move {
                            for _ in 0..yields {
                                reschedule().await;
                            }
                            sleeper.sleep(Duration::from_millis(1)).await;
                        })
                    })
                    .collect();
                let mut joined = 0;
                for handle in handles {
                    handle.await.expect("task failed");
                    joined += 1;
                }
                joined
            });
            assert!(!auditor.state().is_empty());
            joined
        }

        /// One task per duration (ns), each sleeping that long; returns the
        /// number of tasks that woke.
        pub fn sleepers(durations: Vec<u64>) -> u64 {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let handles: Vec<_> = durations
                    .into_iter()
                    .map(|nanos| {
                        let sleeper = context.clone();
                        context.spawn("sleeper", async move {
                            sleeper.sleep(Duration::from_nanos(nanos)).await;
                        })
                    })
                    .collect();
                let mut woke = 0;
                for handle in handles {
                    handle.await.expect("task failed");
                    woke += 1;
                }
                woke
            })
        }

        /// One task sleeping 1 ms `n` times; returns the virtual time spent.
        pub fn sleep_loop(n: u64) -> Duration {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let start = context.current();
                for _ in 0..n {
                    context.sleep(Duration::from_millis(1)).await;
                }
                context
                    .current()
                    .duration_since(start)
                    .expect("time went backwards")
            })
        }

        /// Two tasks exchange `messages` messages in total (half each way)
        /// over bounded `futures` channels; returns the last value.
        pub fn ping_pong(messages: u64) -> u64 {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let (mut to_pong, mut from_ping) = mpsc::channel::<u64>(1);
                let (mut to_ping, mut from_pong) = mpsc::channel::<u64>(1);
                let pong = context.spawn("pong", async move {
                    while let Some(value) = from_ping.next().await {
                        if to_ping.send(value + 1).await.is_err() {
                            break;
                        }
                    }
                });
                let ping = context.spawn("ping", async move {
                    let mut value = 0;
                    for _ in 0..messages / 2 {
                        to_pong.send(value).await.expect("pong hung up");
                        value = from_pong.next().await.expect("pong hung up");
                    }
                    value
                });
                let value = ping.await.expect("ping failed");
                pong.await.expect("pong failed");
                value
            })
        }

        fn node(
            context: Context,
            depth: u32,
            branching: u64,
        ) -> Pin<Box<dyn Future<Output = u64> + Send>> {
            Box::pin(async move {
                if depth == 0 {
                    return 1;
                }
                let handles: Vec<_> = (0..branching)
                    .map(|_| context.spawn("n", node(context.clone(), depth - 1, branching)))
                    .collect();
                let mut leaves = 0;
                for handle in handles {
                    leaves += handle.await.expect("node failed");
                }
                leaves
            })
        }

        /// `connections` clients each exchange `messages` 64-byte messages
        /// with an echo server over the simulated network; returns the
        /// bytes echoed.
        pub fn echo(connections: usize, messages: usize) -> usize {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], 8_000));
                let mut listener = context.bind(address).await.expect("bind failed");
                let server = context.spawn("server", {
                    let context = context.clone();
                    async move {
                        let mut echoes = Vec::with_capacity(connections);
                        for _ in 0..connections {
                            let (_, mut sink, mut stream) =
                                listener.accept().await.expect("accept failed");
                            echoes.push(context.spawn("echo", async move {
                                let mut buf = [0u8; crate::ECHO_MESSAGE];
                                for _ in 0..messages {
                                    stream.recv(&mut buf).await.expect("server recv failed");
                                    sink.send(&buf).await.expect("server send failed");
                                }
                            }));
                        }
                        for echo in echoes {
                            echo.await.expect("echo failed");
                        }
                    }
                });
                let clients: Vec<_> = (0..connections)
                    .map(|c| {
                        let dialer = context.clone();
                        context.spawn("client", async move {
                            let (mut sink, mut stream) =
                                dialer.dial(address).await.expect("dial failed");
                            let mut buf = [c as u8; crate::ECHO_MESSAGE];
                            let mut echoed = 0;
                            for m in 0..messages {
                                buf[1..9].copy_from_slice(&(m as u64).to_le_bytes());
                                let sent = buf;
                                sink.send(&buf).await.expect("client send failed");
                                stream.recv(&mut buf).await.expect("client recv failed");
                                assert_eq!(buf, sent, "echo differs");
                                echoed += buf.len();
                            }
                            echoed
                        })
                    })
                    .collect();
                let mut echoed = 0;
                for client in clients {
                    echoed += client.await.expect("client failed");
                }
                server.await.expect("server failed");
                echoed
            })
        }

        /// `rounds` times: writes `writes` blocks of 4 KiB to one blob,
        /// syncs, and reads those blocks back. With `append`, each round
        /// writes after the previous one (the blob grows, as a journal
        /// does); otherwise every round overwrites the same blocks. Returns
        /// the blob's length; with `meter`, also the peak heap growth over
        /// the run (bytes).
        pub fn blob(
            writes: u64,
            rounds: u64,
            append: bool,
            meter: Option<&'static peak_alloc::PeakAlloc>,
        ) -> (u64, Option<usize>) {
            use $krate::{Blob as _, Storage as _};
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let baseline = meter.map(|meter| {
                    meter.reset_peak_usage();
                    meter.current_usage()
                });
                let mut block = [0u8; crate::BLOCK];
                let mut read = [0u8; crate::BLOCK];
                let mut len = 0;
                for round in 0..rounds {
                    let first = if append { round * writes } else { 0 };
                    let blob = context.open("bench", b"blob").await.expect("open failed");
                    for i in 0..writes {
                        block[..8].copy_from_slice(&(round ^ i).to_le_bytes());
                        let offset = (first + i) * crate::BLOCK as u64;
                        blob.write_at(&block, offset).await.expect("write failed");
                    }
                    blob.sync().await.expect("sync failed");
                    for i in 0..writes {
                        let offset = (first + i) * crate::BLOCK as u64;
                        blob.read_at(&mut read, offset).await.expect("read failed");
                        assert_eq!(read[..8], (round ^ i).to_le_bytes(), "block differs");
                    }
                    len = blob.len().await.expect("len failed");
                    blob.close().await.expect("close failed");
                }
                let peak = meter
                    .zip(baseline)
                    .map(|(meter, baseline)| meter.peak_usage().saturating_sub(baseline));
                (len, peak)
            })
        }

        /// Parks `n` tasks at once, twice, and measures the heap with
        /// `meter` (see [`crate::memory`]).
        pub fn task_memory(
            n: usize,
            meter: &'static peak_alloc::PeakAlloc,
        ) -> crate::memory::TaskMemory {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move {
                let board = Board::new(n);
                let mut handles = Vec::with_capacity(n);
                let future_bytes = std::mem::size_of_val(&crate::parked(board.clone(), 0, 0));
                // Let one-time, per-label state exist before the baseline.
                context
                    .spawn("parked", crate::parked(board.clone(), 0, 0))
                    .await
                    .expect("warm-up task failed");
                let baseline = meter.current_usage() as i64;
                let mut pending_bytes = 0.0;
                let mut retained = [0i64; 2];
                for (wave, retained) in retained.iter_mut().enumerate() {
                    let round = wave as u64 + 1;
                    for task in 0..n {
                        handles.push(
                            context.spawn("parked", crate::parked(board.clone(), task, round)),
                        );
                    }
                    // Round 1 polls every new task once (they park), round 2
                    // resumes us.
                    reschedule().await;
                    reschedule().await;
                    let live = meter.current_usage() as i64 - baseline;
                    if wave == 0 {
                        pending_bytes = live as f64 / n as f64;
                    }
                    board.deliver(round, 1);
                    for handle in handles.drain(..) {
                        handle.await.expect("parked task failed");
                    }
                    reschedule().await;
                    reschedule().await;
                    *retained = meter.current_usage() as i64 - baseline;
                }
                crate::memory::TaskMemory {
                    tasks: n,
                    future_bytes,
                    pending_bytes,
                    retained_after_first: retained[0],
                    retained_after_second: retained[1],
                }
            })
        }

        /// A tree of tasks, `depth` levels below the root, each node
        /// spawning `branching` children and joining them; returns the
        /// number of leaves.
        pub fn spawn_tree(depth: u32, branching: u64) -> u64 {
            let (runner, context, _) = Executor::seeded(0);
            runner.start(async move { node(context.clone(), depth, branching).await })
        }
    };
}

/// Small programs that sweep benches run once per seed, on our runtime.
pub mod programs {
    use commonware_runtime::{deterministic::Context, reschedule, Clock, Spawner};
    use std::time::Duration;

    /// `tasks` tasks yielding `yields` times each, always ready (the worst
    /// case for strategies that poll fewer tasks per round); the root joins
    /// them.
    pub async fn yielding(context: Context, tasks: usize, yields: usize) {
        spawn_and_join(context, tasks, yields, false).await;
    }

    /// `tasks` tasks yielding `yields` times each, then sleeping 1 ms; the
    /// root joins them (the `seed_sweep` program of the `seed` bench).
    pub async fn yielding_then_sleeping(context: Context, tasks: usize, yields: usize) {
        spawn_and_join(context, tasks, yields, true).await;
    }

    async fn spawn_and_join(context: Context, tasks: usize, yields: usize, sleep: bool) {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let sleeper = context.clone();
                context.spawn("worker", async move {
                    for _ in 0..yields {
                        reschedule().await;
                    }
                    if sleep {
                        sleeper.sleep(Duration::from_millis(1)).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("worker");
        }
    }
}

/// The workloads on our deterministic runtime.
pub mod ours {
    deterministic_workloads!(commonware_runtime);
}

/// The same workloads on the registry's `commonware-runtime` 0.0.16.
pub mod reference {
    deterministic_workloads!(cw16);
}

/// The workloads that have a direct equivalent, written on tokio's
/// current_thread runtime.
pub mod tokio_ct {
    use crate::Board;
    use commonware_runtime::reschedule;
    use futures::{channel::mpsc, SinkExt, StreamExt};
    use std::{future::Future, pin::Pin};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    }

    /// A current_thread runtime with a paused clock (virtual time that jumps
    /// to the next timer when idle): tokio's closest match to a seed.
    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
    }

    /// See [`crate::ours::seed_empty`] (tokio has no seed or auditor).
    pub fn seed_empty() -> usize {
        paused().block_on(async {});
        0
    }

    /// See [`crate::ours::seed_run`].
    pub fn seed_run(tasks: usize, yields: usize) -> usize {
        paused().block_on(async move {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..yields {
                            reschedule().await;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    })
                })
                .collect();
            let mut joined = 0;
            for handle in handles {
                handle.await.expect("task failed");
                joined += 1;
            }
            joined
        })
    }

    /// See [`crate::ours::spawn_join`].
    pub fn spawn_join(n: u64) -> u64 {
        runtime().block_on(async move {
            let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.expect("task failed");
            }
            sum
        })
    }

    /// See [`crate::ours::reschedule`] (the same runtime-agnostic
    /// `reschedule()` future).
    pub fn yielders(tasks: usize, yields: usize) -> usize {
        runtime().block_on(async move {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..yields {
                            reschedule().await;
                        }
                        yields
                    })
                })
                .collect();
            let mut total = 0;
            for handle in handles {
                total += handle.await.expect("task failed");
            }
            total
        })
    }

    /// See [`crate::ours::duplicate_wakes`].
    pub fn duplicate_wakes(tasks: usize, deliveries: u64, wakes: usize) -> usize {
        runtime().block_on(async move {
            let board = Board::new(tasks);
            let handles: Vec<_> = (0..tasks)
                .map(|task| {
                    let board = board.clone();
                    tokio::spawn(async move {
                        for round in 1..=deliveries {
                            board.wait(task, round).await;
                            board.ack();
                        }
                    })
                })
                .collect();
            for round in 1..=deliveries {
                board.deliver(round, wakes);
                while board.acked() < tasks * round as usize {
                    reschedule().await;
                }
            }
            for handle in handles {
                handle.await.expect("task failed");
            }
            board.acked()
        })
    }

    /// See [`crate::ours::ping_pong`].
    pub fn ping_pong(messages: u64) -> u64 {
        runtime().block_on(async move {
            let (mut to_pong, mut from_ping) = mpsc::channel::<u64>(1);
            let (mut to_ping, mut from_pong) = mpsc::channel::<u64>(1);
            let pong = tokio::spawn(async move {
                while let Some(value) = from_ping.next().await {
                    if to_ping.send(value + 1).await.is_err() {
                        break;
                    }
                }
            });
            let ping = tokio::spawn(async move {
                let mut value = 0;
                for _ in 0..messages / 2 {
                    to_pong.send(value).await.expect("pong hung up");
                    value = from_pong.next().await.expect("pong hung up");
                }
                value
            });
            let value = ping.await.expect("ping failed");
            pong.await.expect("pong failed");
            value
        })
    }

    fn node(depth: u32, branching: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                return 1;
            }
            let handles: Vec<_> = (0..branching)
                .map(|_| tokio::spawn(node(depth - 1, branching)))
                .collect();
            let mut leaves = 0;
            for handle in handles {
                leaves += handle.await.expect("node failed");
            }
            leaves
        })
    }

    /// See [`crate::ours::spawn_tree`].
    pub fn spawn_tree(depth: u32, branching: u64) -> u64 {
        runtime().block_on(node(depth, branching))
    }
}
