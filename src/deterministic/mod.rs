//! A deterministic runtime that randomly selects tasks to run based on a seed.
//!
//! # Panics
//!
//! If any task panics, the runtime will panic (and shutdown). Before the
//! panic propagates, the failure line is printed to stderr:
//!
//! ```text
//! deterministic runtime panicked (seed=1234, strategy=pct(3)): <message>
//!   in task '<label>' at 12ms (virtual), auditor=<state>; rerun with this seed and strategy to reproduce
//! ```
//!
//! Rerunning with that seed and [`Config::strategy`] reproduces the failure
//! at the same virtual time with the same auditor state. See [`explore`]
//! for seed sweeps, [`record`] and [`shrink`] for recorded schedules and
//! their shrinking, and [`check_determinism`] for finding what broke
//! determinism.
//!
//! # Example
//!
//! ```rust
//! use commonware_runtime::{Spawner, Runner, deterministic::Executor};
//!
//! let (executor, runtime, auditor) = Executor::default();
//! executor.start(async move {
//!     println!("Parent started");
//!     let result = runtime.spawn("child", async move {
//!         println!("Child started");
//!         "hello"
//!     });
//!     println!("Child result: {:?}", result.await);
//!     println!("Parent exited");
//! });
//! println!("Auditor state: {}", auditor.state());
//! ```
//!
//! # What this module owns
//! [`Context`], the one handle user code holds: spawning (with label
//! prefixes), virtual time, the seeded random stream, stop signals, the
//! in-memory network and storage, and the faults injected into them
//! ([`Faults`], `Context::partition`, [`Runner::start_until`]). Scheduling
//! itself lives in the `commonware-executor` crate.
//!
//! The files split in two layers. The runtime core: this file ([`Config`],
//! [`Executor`], [`Runner`], [`Context`]), `strategy.rs` (the
//! [`Strategy`] a config selects), `auditor.rs` (the [`Auditor`] and the
//! audit event kinds), `failure.rs` (the failure line), `metrics.rs` (task
//! metrics read from the executor), `network/`, `storage/`, `faults.rs`
//! (fault settings and the live injector), `decision.rs` (every fault as a
//! named decision: [`Fault`], `Context::fault`), `clocks.rs` (a node's own
//! clock), `timeline/` (a run drawn: the [`Timeline`] data, the log the
//! runtime writes while a tool draws a run, the story, the HTML page and
//! the Chrome trace JSON) and `watch.rs` (what the tools ask of the
//! runtimes built on their thread). The exploration tools on top, which
//! only build runtimes through [`Executor`] and the watch: `run.rs` (one
//! run with its panic caught: [`try_run`], [`record`], [`replay`],
//! [`record_timeline`], [`FailedRun`]; a program is a test body or a whole
//! harness run), `sweep.rs` ([`Sweep`], [`explore`]), `points.rs` (the
//! reachability points of [`Assertions`](crate::Assertions): a run's
//! record, a sweep's [`Points`]), `shrink.rs` ([`shrink`] and
//! [`shrink_harness`]: faults, choices and random numbers, with the story),
//! `determinism.rs` and `crash_states.rs` ([`crash_states`]: every crash
//! state of a run, checked).
//!
//! # Invariants
//! * Everything observable flows through the executor's strategy (order,
//!   random numbers, fault decisions) and is folded into the [`Auditor`]'s
//!   digest.
//! * A `Context` stays usable before `start` and after its runner is gone
//!   (e.g. to draw random numbers); clones share one generator and auditor.

// The runtime core: what a `Context` is and does.
mod auditor;
mod clocks;
mod decision;
mod failure;
mod faults;
mod metrics;
mod network;
mod points;
mod storage;
mod strategy;
pub mod timeline;
mod watch;

// Tools on top of the core: caught runs, sweeps, shrinking and
// determinism checks. The core never calls into them (it reads the
// thread's watch, which they set).
mod crash_states;
mod determinism;
mod run;
mod shrink;
mod sweep;

pub use auditor::Auditor;
pub use clocks::{ClockFaults, ClockJump};
pub use crash_states::{crash_states, CrashFailure, CrashStates, Explored};
pub use decision::Fault;
pub use determinism::{check_determinism, Divergence};
pub use faults::{Faults, Halt, LinkFaults, PartitionMode, StorageFaults, SECTOR};
pub use network::{Action, Byzantine, Listener, Message, Sink, Stream, REPLAY_WINDOW};
pub use points::{Point, PointKind, Points};
pub use run::{
    record, record_timeline, record_timeline_harness, replay, replay_harness, try_run, FailedRun,
    ReplayError,
};
pub use shrink::{shrink, shrink_harness, shrink_harness_with, shrink_with, Shrunk, MAX_RUNS};
pub use storage::{Blob, Op, Partition, Persistence, Write, MAX_BLOB_LEN};
pub use strategy::{ParseError, Schedule, Strategy, PCT_DEFAULT_STEPS};
pub use sweep::{explore, Each, ExploreError, Sweep, SweepError, Swept};
pub use timeline::Timeline;

use crate::{metrics::IoMetrics, Handle, Signal, Signaler};
use auditor::kind;
use commonware_executor::{
    Core, CoreConfig, CrashPoint, Failure, RunLoop, Wait, WaitNote, END_OF_TIME,
};
use failure::{panic_message, FailureLine};
use governor::clock::{Clock as GClock, ReasonablyRealtime};
use metrics::TaskCounts;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use rand_core::{CryptoRng, RngCore};
use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr},
    panic::resume_unwind,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Label of the task passed to `Runner::start`.
const ROOT_TASK: &str = "root";

/// How the stall and timeout reports show a task waiting on `stopped()`.
static STOPPED_WAIT: WaitNote = WaitNote {
    describe: |f, _| f.write_str("the stopped() signal (nothing called stop)"),
};

/// Configuration for the `deterministic` runtime.
#[derive(Clone)]
pub struct Config {
    /// Registry for metrics.
    pub registry: Arc<std::sync::Mutex<Registry>>,

    /// Seed for the random number generator.
    pub seed: u64,

    /// The cycle duration determines how much time is advanced after each iteration of the event
    /// loop. This is useful to prevent starvation if some task never yields.
    /// At most the end of virtual time (about 292 years): `init` panics,
    /// naming it, otherwise.
    pub cycle: Duration,

    /// If the runtime is still executing at this point (i.e. a test hasn't stopped), panic.
    /// At most the end of virtual time (about 292 years): `init` panics,
    /// naming it, otherwise.
    pub timeout: Option<Duration>,

    /// How tasks are scheduled and where random numbers come from (default:
    /// [`Strategy::Uniform`], the reference runtime's behaviour). Printed
    /// with the seed when a run fails.
    pub strategy: Strategy,

    /// Network and storage faults to inject (none by default). They can be
    /// changed while the runtime runs with [`Context::set_faults`].
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            registry: Arc::new(std::sync::Mutex::new(Registry::default())),
            seed: 42,
            cycle: Duration::from_millis(1),
            timeout: None,
            strategy: Strategy::Uniform,
            faults: Faults::default(),
        }
    }
}

/// `duration` in nanoseconds, the unit of the virtual clock, unless it
/// passes the end of virtual time ([`END_OF_TIME`], about 292 years).
#[inline]
fn virtual_nanos(duration: Duration) -> Option<u64> {
    u64::try_from(duration.as_nanos())
        .ok()
        .filter(|&nanos| nanos <= END_OF_TIME)
}

/// The panic for a duration or instant given by the user that the virtual
/// clock cannot reach; `what` names the argument.
#[cold]
#[inline(never)]
fn past_end_of_time(what: &str, value: Duration) -> ! {
    panic!(
        "{what} of {value:?} passes the end of virtual time ({:?} after the epoch)",
        Duration::from_nanos(END_OF_TIME)
    )
}

/// State of one runtime instance (a `recover` makes a new one).
struct Runtime {
    executor: RunLoop,
    core: Core,
    seed: u64,
    metrics: Arc<IoMetrics>,
    /// Reports this instance's executor's task counts (shared with the
    /// instances before and after it, like `metrics`).
    task_counts: TaskCounts,
    auditor: Arc<Auditor>,
    /// The stop signal, built by the first `stop` or `stopped` (most runs
    /// never stop: a seed sweep should not pay for a channel per seed).
    stop: std::sync::OnceLock<(Mutex<Signaler>, Signal)>,
    recovered: AtomicBool,
    /// Listeners and connections: fresh in every instance.
    network: network::Sockets,
    /// Durable blob images: carried (as a copy) into a recovered instance.
    storage: Arc<storage::Disk>,
    /// Fault settings and partitions in force: carried into a recovered
    /// instance (they belong to the simulated hardware).
    faults: Arc<faults::Injector>,
    /// The strategy the run was configured with (failure lines name it,
    /// and the member a portfolio seed ran).
    strategy: Strategy,
    /// This run's reachability points, once something collects them (a
    /// sweep, `Context::collect_points`); shared with recovered instances.
    points: OnceLock<Arc<points::RunPoints>>,
}

impl Runtime {
    fn new(
        executor: RunLoop,
        (seed, strategy): (u64, Strategy),
        metrics: Arc<IoMetrics>,
        task_counts: TaskCounts,
        auditor: Arc<Auditor>,
        storage: Arc<storage::Disk>,
        faults: Arc<faults::Injector>,
    ) -> Arc<Self> {
        let core = executor.core().clone();
        auditor.attach(core.clone());
        task_counts.read_from(core.clone());
        let network = network::Sockets::new(core.clone(), metrics.clone(), faults.clone());
        Arc::new(Self {
            executor,
            core,
            seed,
            metrics,
            task_counts,
            auditor,
            stop: std::sync::OnceLock::new(),
            recovered: AtomicBool::new(false),
            network,
            storage,
            faults,
            strategy,
            points: OnceLock::new(),
        })
    }

    /// Prints the failure line (see [`failure`]) before a failure
    /// propagates.
    /// The stop signal and its signaler.
    fn stop(&self) -> &(Mutex<Signaler>, Signal) {
        self.stop.get_or_init(|| {
            let (signaler, signal) = Signaler::new();
            (Mutex::new(signaler), signal)
        })
    }

    fn report_failure(&self, task: Option<&str>, message: &str) {
        if watch::quiet() {
            return;
        }
        let member = self.strategy.member(self.seed);
        let is_portfolio = matches!(self.strategy, Strategy::Portfolio { .. });
        let line = FailureLine {
            seed: self.seed,
            strategy: &self.strategy,
            member: is_portfolio.then_some(&member as &dyn std::fmt::Display),
            message,
            task,
            time: Duration::from_nanos(self.core.now()),
            auditor: &self.core.digest(),
        };
        eprintln!("{line}");
    }
}

/// Deterministic runtime that randomly selects tasks to run based on a seed.
pub struct Executor;

impl Executor {
    /// Initialize a new `deterministic` runtime with the given seed and cycle duration.
    pub fn init(cfg: Config) -> (Runner, Context, Arc<Auditor>) {
        let scheduler = watch::watched_scheduler(cfg.strategy.build(cfg.seed));
        if cfg.timeout.is_some() && cfg.cycle == Duration::default() {
            panic!("cycle duration must be non-zero when timeout is set");
        }
        let deadline = cfg.timeout.map(|timeout| {
            virtual_nanos(timeout).unwrap_or_else(|| past_end_of_time("Config::timeout", timeout))
        });
        let executor = RunLoop::new(CoreConfig {
            start: 0,
            cycle: virtual_nanos(cfg.cycle)
                .unwrap_or_else(|| past_end_of_time("Config::cycle", cfg.cycle)),
            deadline,
            scheduler,
        });
        let (task_counts, metrics) = TaskCounts::register(&cfg.registry);
        let auditor = Arc::new(Auditor::new());
        let faults = Arc::new(faults::Injector::new(cfg.faults));
        let runtime = Runtime::new(
            executor,
            (cfg.seed, cfg.strategy),
            metrics,
            task_counts,
            auditor.clone(),
            Arc::default(),
            faults,
        );
        let context = Context::new(runtime.clone());
        watch::watch_built(&context);
        (Runner { runtime }, context, auditor)
    }

    /// Initialize a new `deterministic` runtime with the default configuration
    /// and the provided seed.
    pub fn seeded(seed: u64) -> (Runner, Context, Arc<Auditor>) {
        Self::init(Config {
            seed,
            ..Config::default()
        })
    }

    /// Initialize a new `deterministic` runtime with the default configuration
    /// but exit after the given timeout.
    pub fn timed(timeout: Duration) -> (Runner, Context, Arc<Auditor>) {
        Self::init(Config {
            timeout: Some(timeout),
            ..Config::default()
        })
    }

    /// Initialize a new `deterministic` runtime with the default configuration.
    // We'd love to implement the trait but we can't because of the return type.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> (Runner, Context, Arc<Auditor>) {
        Self::init(Config::default())
    }
}

/// Implementation of [`crate::Runner`] for the `deterministic` runtime.
pub struct Runner {
    runtime: Arc<Runtime>,
}

impl Runner {
    /// Starts running a root task, like [`crate::Runner::start`], but crashes
    /// the runtime at `halt` if the root task has not completed by then:
    /// every task is dropped wherever it is, as in a power cut, and `None`
    /// is returned. [`Context::recover`] then continues from what was synced
    /// (and, with [`StorageFaults::torn`], from the torn unsynced writes).
    pub fn start_until<F>(self, halt: Halt, f: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let halt = match halt {
            Halt::AfterPolls(polls) => CrashPoint::AfterPolls(polls),
            // A crash point the clock never reaches never comes.
            Halt::At(at) => match virtual_nanos(at) {
                Some(at) => CrashPoint::At(at),
                None => return self.run(f, None),
            },
        };
        self.run(f, Some(halt))
    }

    fn run<F>(self, f: F, halt: Option<CrashPoint>) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = &self.runtime;
        match runtime.executor.run_until(ROOT_TASK, f, halt) {
            Ok(None) => {
                if let Some(log) = runtime.faults.log() {
                    log.power_cut(runtime.core.now());
                }
                None
            }
            Ok(output) => output,
            Err(Failure::Panic { label, payload }) => {
                runtime.report_failure(Some(&label), panic_message(&*payload));
                resume_unwind(payload)
            }
            Err(Failure::Stalled(message)) | Err(Failure::Timeout(message)) => {
                runtime.report_failure(None, &message);
                panic!("{message}")
            }
        }
    }
}

impl crate::Runner for Runner {
    fn start<F>(self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.run(f, None)
            .expect("root task completed without output")
    }
}

/// Implementation of [`crate::Spawner`], [`crate::Clock`],
/// [`crate::Network`], and [`crate::Storage`] for the `deterministic`
/// runtime.
#[derive(Clone)]
pub struct Context {
    runtime: Arc<Runtime>,
    /// The IP this context dials from (see [`Context::with_ip`]).
    ip: IpAddr,
}

impl Context {
    fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Recover the inner state (deadline, metrics, auditor, rng, synced storage, etc.) from the
    /// current runtime and use it to initialize a new instance of the runtime. A recovered runtime
    /// does not inherit the current runtime's pending tasks, unsynced storage, network connections, nor
    /// its shutdown signaler.
    ///
    /// It is only permitted to call this method after the runtime has finished (i.e. once `start` returns)
    /// and only permitted to do once (otherwise multiple recovered runtimes will share the same inner state).
    /// If either one of these conditions is violated, this method will panic.
    pub fn recover(self) -> (Runner, Self, Arc<Auditor>) {
        let old = &self.runtime;
        if !old.core.finished() {
            panic!("execution is not finished");
        }
        if old.recovered.swap(true, Ordering::SeqCst) {
            panic!("runtime has already been recovered");
        }
        let successor = Runtime::new(
            old.core.successor(),
            (old.seed, old.strategy.clone()),
            old.metrics.clone(),
            old.task_counts.clone(),
            old.auditor.clone(),
            Arc::new(old.storage.fork()),
            old.faults.clone(),
        );
        if let Some(points) = old.points.get() {
            let _ = successor.points.set(points.clone());
        }
        if let Some(log) = successor.faults.log() {
            log.recover(successor.core.now());
        }
        let context = Self {
            runtime: successor.clone(),
            ip: self.ip,
        };
        watch::watch_built(&context);
        (Runner { runtime: successor }, context, old.auditor.clone())
    }

    fn core(&self) -> &Core {
        &self.runtime.core
    }

    /// Starts collecting this run's reachability points (see
    /// [`Assertions`](crate::Assertions)) so [`Points::add`] can tally them;
    /// a sweep does this for every seed. Collecting changes nothing in the
    /// run: points draw nothing and are not audited.
    pub fn collect_points(&self) {
        let _ = self.runtime.points.set(Arc::default());
    }

    /// Every live task of this runtime with what it waits on, as far as
    /// the runtime knows (a timer due at a time, a `recv` missing bytes, an
    /// `accept`, another task's `Handle`, `stopped()`, or nothing it saw):
    /// the listing the stall and timeout failures carry, on demand, e.g.
    /// when a harness finds a cluster making no progress.
    pub fn wait_report(&self) -> String {
        self.core().wait_report()
    }

    /// The points collected so far: `(name, kind, reached)`, in
    /// declaration order (empty when nothing collects).
    pub(super) fn points(&self) -> Vec<(&'static str, PointKind, bool)> {
        self.runtime
            .points
            .get()
            .map(|points| points.snapshot())
            .unwrap_or_default()
    }

    #[inline]
    fn note_point(&self, name: &'static str, kind: PointKind, hit: bool) {
        if let Some(points) = self.runtime.points.get() {
            points.note(name, kind, hit);
        }
    }
}

/// Reachability points: tallied when a sweep (or
/// [`Context::collect_points`]) collects them, otherwise one atomic load.
/// Never audited and never drawing, so they cannot change a run.
impl crate::Assertions for Context {
    #[inline]
    fn sometimes(&self, name: &'static str, condition: bool) {
        self.note_point(name, PointKind::Sometimes, condition);
    }

    #[inline]
    fn reached(&self, name: &'static str) {
        self.note_point(name, PointKind::Reached, true);
    }

    #[inline]
    fn always(&self, name: &'static str, condition: bool) {
        self.note_point(name, PointKind::Always, true);
        if !condition {
            crate::always_failed(name);
        }
    }
}

impl crate::Spawner for Context {
    fn spawn<F, T>(&self, label: &str, f: F) -> Handle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let core = self.core();
        // Only an unprefixed label can collide with the root's.
        if label == ROOT_TASK && core.spawns_unprefixed() {
            panic!("root task cannot be spawned");
        }
        Handle::deterministic(core.spawn_child(label, f))
    }

    fn stop(&self, value: i32) {
        self.core().audit(kind::STOP, value as u64, &[]);
        self.runtime.stop().0.lock().signal(value);
    }

    fn stopped(&self) -> Signal {
        self.core().audit(kind::STOPPED, 0, &[]);
        // For the stall and timeout reports: a task that asks for the
        // signal in its last poll most likely waits on it.
        self.core().note_wait(Wait::Note(&STOPPED_WAIT, 0));
        self.runtime.stop().1.clone()
    }
}

impl crate::Clock for Context {
    #[inline]
    fn current(&self) -> SystemTime {
        let mut now = self.core().now();
        // A node's own clock (`clocks.rs`), when some node has one.
        if self.runtime.faults.clocks_active() {
            now = self.local_now(now);
        }
        UNIX_EPOCH + Duration::from_nanos(now)
    }

    #[inline]
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        let core = self.core();
        let clocks = self.runtime.faults.clocks_active();
        let deadline = virtual_nanos(duration)
            .map(|nanos| {
                if clocks {
                    self.true_sleep(nanos)
                } else {
                    nanos
                }
            })
            .and_then(|nanos| core.now().checked_add(nanos))
            .filter(|&deadline| deadline <= END_OF_TIME)
            .unwrap_or_else(|| past_end_of_time("sleep duration", duration));
        core.sleep_until(deadline)
    }

    fn sleep_until(&self, deadline: SystemTime) -> impl Future<Output = ()> + Send + 'static {
        // A deadline before the epoch is in the past: it resolves at once.
        let since_epoch = deadline.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut deadline = virtual_nanos(since_epoch)
            .unwrap_or_else(|| past_end_of_time("sleep_until deadline", since_epoch));
        if self.runtime.faults.clocks_active() {
            deadline = self.true_deadline(self.core().now(), deadline);
            if deadline > END_OF_TIME {
                past_end_of_time("sleep_until deadline (by this node's clock)", since_epoch);
            }
        }
        self.core().sleep_until(deadline)
    }
}

impl GClock for Context {
    type Instant = SystemTime;

    fn now(&self) -> Self::Instant {
        crate::Clock::current(self)
    }
}

impl ReasonablyRealtime for Context {}

impl RngCore for Context {
    fn next_u32(&mut self) -> u32 {
        self.core().next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.core().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.core().fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Context {}
