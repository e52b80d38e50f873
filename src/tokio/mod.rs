//! A production-focused runtime based on [Tokio](https://tokio.rs) with
//! secure randomness and storage backed by the local filesystem.
//!
//! # Panics
//!
//! By default, the runtime catches a panic in a spawned task: the panic
//! message is printed by the process's panic hook, the task's handle resolves
//! to `Err(Error::Exited)` and every other task keeps running. With
//! [`Config::catch_panics`] set to `false`, a panic in any spawned task
//! propagates out of [`crate::Runner::start`] with its original payload (as
//! in the deterministic runtime), ending the run. A panic in the root future
//! always propagates out of `start`.
//!
//! # Example
//!
//! ```rust
//! use commonware_runtime::{Spawner, Runner, tokio::Executor};
//!
//! let (executor, runtime) = Executor::default();
//! executor.start(async move {
//!     println!("Parent started");
//!     let result = runtime.spawn("child", async move {
//!         println!("Child started");
//!         "hello"
//!     });
//!     println!("Child result: {:?}", result.await);
//!     println!("Parent exited");
//! });
//! ```
//!
//! # What this module owns
//!
//! A thin adapter from the crate's traits onto Tokio: [`Executor`] builds a
//! Tokio runtime from [`Config`], [`Runner`] owns it and drives the root
//! future, and [`Context`] (one `Arc`, cheap to clone) spawns tasks with
//! label prefixes and metrics (in `task.rs`: the label table, its per-thread
//! cache and the future each task runs in), reads the real clock, draws from the OS random
//! generator, and implements `Network` (in `network.rs`, over Tokio TCP) and
//! `Storage` (in `storage/`, over files under
//! [`Config::storage_directory`]).
//!
//! # Invariants
//!
//! * `start` returns once the root future finishes; the Tokio runtime is then
//!   shut down, so every task still pending is dropped and its handle
//!   resolves to `Err(Error::Closed)`. A `Context` stays usable for the clock
//!   and random numbers after that; tasks spawned later never run.
//! * A task's label is its parent's label, `_`, and the label it was spawned
//!   with; tasks spawned by the root (or by a task with an empty label) are
//!   not prefixed. This matches the deterministic runtime.
//! * Nothing here panics on input a user or peer controls; failures are
//!   [`crate::Error`]s.

mod metrics;
mod network;
mod storage;
mod task;

pub use network::{Listener, Sink, Stream};
pub use storage::Blob;

use crate::{metrics::IoMetrics, Handle, Signal, Signaler};
use futures::{
    channel::oneshot,
    future::{select, Either},
};
use governor::clock::{Clock as GClock, ReasonablyRealtime};
use metrics::TaskFamilies;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use rand::rngs::OsRng;
use rand_core::{CryptoRng, RngCore};
use std::{
    any::Any,
    env,
    future::Future,
    panic::resume_unwind,
    path::PathBuf,
    pin::pin,
    sync::Arc,
    time::{Duration, SystemTime},
};
use task::LabelTable;
use tokio::runtime::Builder;

/// A panic caught in a task.
type Panic = Box<dyn Any + Send>;

/// Configuration for the `tokio` runtime.
#[derive(Clone)]
pub struct Config {
    /// Registry for metrics.
    pub registry: Arc<std::sync::Mutex<Registry>>,

    /// Number of threads to use for the runtime.
    ///
    /// `0` builds a current-thread runtime: every task runs on the thread
    /// that calls `start`, and only while `start` runs.
    pub threads: usize,

    /// Whether or not to catch panics.
    pub catch_panics: bool,

    /// Duration after which to close the connection if no message is read.
    ///
    /// A `recv` that has not filled its buffer within this duration fails
    /// with [`crate::Error::Timeout`]; bytes it had already read are kept for
    /// the next `recv`.
    pub read_timeout: Duration,

    /// Duration after which to close the connection if a message cannot be written.
    ///
    /// A `send` that has not handed all its bytes to the kernel within this
    /// duration (a peer that stopped reading) fails with
    /// [`crate::Error::Timeout`].
    pub write_timeout: Duration,

    /// Whether or not to disable Nagle's algorithm.
    ///
    /// The algorithm combines a series of small network packets into a single packet
    /// before sending to reduce overhead of sending multiple small packets which might not
    /// be efficient on slow, congested networks. However, to do so the algorithm introduces
    /// a slight delay as it waits to accumulate more data. Latency-sensitive networks should
    /// consider disabling it to send the packets as soon as possible to reduce latency.
    ///
    /// `None` leaves the operating system's default. The setting is a latency
    /// hint: a socket that refuses it still works.
    pub tcp_nodelay: Option<bool>,

    /// Base directory for all storage operations.
    ///
    /// Each partition is a directory directly below it; it is created on the
    /// first `open`.
    pub storage_directory: PathBuf,

    /// Maximum buffer size for operations on blobs.
    ///
    /// A `read_at` or `write_at` larger than this is carried out in pieces of
    /// at most this many bytes, which bounds the memory a single operation
    /// copies through. Defaults to 2 MiB; `0` is treated as `1`.
    pub maximum_buffer_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        // A random name so that concurrent runtimes (e.g. tests) never share
        // a directory.
        let storage_directory =
            env::temp_dir().join(format!("commonware_runtime_{:016x}", OsRng.next_u64()));
        Self {
            registry: Arc::new(std::sync::Mutex::new(Registry::default())),
            threads: 2,
            catch_panics: true,
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            tcp_nodelay: None,
            storage_directory,
            maximum_buffer_size: 2 * 1024 * 1024,
        }
    }
}

/// State shared by every clone of a [`Context`] and by the network and
/// storage objects it hands out.
struct Inner {
    cfg: Config,
    metrics: Arc<IoMetrics>,
    tasks: TaskFamilies,
    handle: tokio::runtime::Handle,
    signaler: Mutex<Signaler>,
    signal: Signal,
    /// Task labels; with `panics` set when `catch_panics` is off.
    labels: LabelTable,
}

impl Inner {
    /// Runs `f` on Tokio's blocking pool. `Err(())` means the runtime shut
    /// down before `f` could finish.
    async fn blocking<R, F>(&self, f: F) -> Result<R, ()>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f).await.map_err(|_| ())
    }
}

/// Runtime based on [Tokio](https://tokio.rs).
pub struct Executor;

impl Executor {
    /// Initialize a new `tokio` runtime with the given number of threads.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to create the runtime's threads.
    pub fn init(cfg: Config) -> (Runner, Context) {
        let mut builder = match cfg.threads {
            0 => Builder::new_current_thread(),
            threads => {
                let mut builder = Builder::new_multi_thread();
                builder.worker_threads(threads);
                builder
            }
        };
        let runtime = builder
            .enable_all()
            .build()
            .expect("failed to create Tokio runtime");
        let tasks = TaskFamilies::register(&cfg.registry);
        let metrics = IoMetrics::init(&cfg.registry);
        let (signaler, signal) = Signaler::new();
        let (panic_sender, panics) = oneshot::channel();
        // Without `catch_panics`, a task's panic goes to `start`.
        let labels =
            LabelTable::new((!cfg.catch_panics).then(|| Arc::new(Mutex::new(Some(panic_sender)))));
        let inner = Arc::new(Inner {
            cfg,
            metrics,
            tasks,
            handle: runtime.handle().clone(),
            signaler: Mutex::new(signaler),
            signal,
            labels,
        });
        (Runner { runtime, panics }, Context { inner })
    }

    /// Initialize a new `tokio` runtime with default configuration.
    // We'd love to implement the trait but we can't because of the return type.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> (Runner, Context) {
        Self::init(Config::default())
    }
}

/// Implementation of [`crate::Runner`] for the `tokio` runtime.
pub struct Runner {
    runtime: tokio::runtime::Runtime,
    panics: oneshot::Receiver<Panic>,
}

impl crate::Runner for Runner {
    fn start<F>(self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Self { runtime, panics } = self;
        // Dropping `runtime` when this returns (or unwinds) drops every task
        // still pending.
        runtime.block_on(async move {
            match select(pin!(f), panics).await {
                Either::Left((output, _)) => output,
                Either::Right((Ok(payload), _)) => resume_unwind(payload),
                // Every `Context` is gone, so no task can report a panic.
                Either::Right((Err(_), root)) => root.await,
            }
        })
    }
}

/// Implementation of [`crate::Spawner`], [`crate::Clock`],
/// [`crate::Network`], and [`crate::Storage`] for the `tokio`
/// runtime.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl crate::Spawner for Context {
    fn spawn<F, T>(&self, label: &str, f: F) -> Handle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.inner.labels.task(&self.inner.tasks, label, f);
        Handle::tokio(self.inner.handle.spawn(task))
    }

    fn stop(&self, value: i32) {
        self.inner.signaler.lock().signal(value);
    }

    fn stopped(&self) -> Signal {
        self.inner.signal.clone()
    }
}

/// `sometimes` and `reached` do nothing in production; `always` still
/// panics when its condition is false.
impl crate::Assertions for Context {
    #[inline]
    fn sometimes(&self, _name: &'static str, _condition: bool) {}

    #[inline]
    fn reached(&self, _name: &'static str) {}

    #[inline]
    fn always(&self, name: &'static str, condition: bool) {
        if !condition {
            crate::always_failed(name);
        }
    }
}

impl crate::Clock for Context {
    fn current(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        // Entering binds the timer to this runtime, so a sleep created
        // outside of it (e.g. before `start`) works once awaited inside.
        let _runtime = self.inner.handle.enter();
        tokio::time::sleep(duration)
    }

    fn sleep_until(&self, deadline: SystemTime) -> impl Future<Output = ()> + Send + 'static {
        // A deadline in the past resolves at once.
        let remaining = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        self.sleep(remaining)
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
        OsRng.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        OsRng.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        OsRng.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        OsRng.try_fill_bytes(dest)
    }
}

impl CryptoRng for Context {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, Error, Runner as _, Spawner};
    use std::{panic::AssertUnwindSafe, time::Instant};

    fn executor(catch_panics: bool) -> (Runner, Context) {
        Executor::init(Config {
            catch_panics,
            ..Config::default()
        })
    }

    #[test]
    fn labels_are_prefixed_by_parent() {
        let (runner, context) = Executor::default();
        let label = runner.start(async move {
            let inner = context.clone();
            context
                .spawn("a", async move {
                    inner.spawn("b", async move { task::current() }).await
                })
                .await
        });
        assert_eq!(label, Ok(Ok(Some("a_b".to_string()))));
    }

    #[test]
    fn empty_parent_label_is_not_prefixed() {
        let (runner, context) = Executor::default();
        let label = runner.start(async move {
            let inner = context.clone();
            context
                .spawn("", async move {
                    inner.spawn("b", async move { task::current() }).await
                })
                .await
        });
        assert_eq!(label, Ok(Ok(Some("b".to_string()))));
    }

    #[test]
    fn caught_panic_resolves_exited_and_runtime_continues() {
        let (runner, context) = executor(true);
        runner.start(async move {
            let failed = context.spawn("bad", async { panic!("boom") });
            assert_eq!(failed.await, Err::<(), _>(Error::Exited));
            assert_eq!(context.spawn("good", async { 5 }).await, Ok(5));
        });
    }

    #[test]
    #[should_panic(expected = "uncaught in task")]
    fn uncaught_task_panic_propagates_out_of_start() {
        let (runner, context) = executor(false);
        runner.start(async move {
            let failed = context.spawn("bad", async { panic!("uncaught in task") });
            let _ = failed.await;
            // The panic must end `start` even though the root keeps waiting.
            std::future::pending::<()>().await;
        });
    }

    #[test]
    #[should_panic(expected = "root failure")]
    fn root_panic_propagates_even_when_catching() {
        let (runner, _) = executor(true);
        runner.start(async { panic!("root failure") });
    }

    #[test]
    fn start_drops_pending_tasks() {
        let (runner, context) = Executor::default();
        // Handing the handle out of `start` unawaited is the point.
        #[allow(clippy::async_yields_async)]
        let handle = runner.start({
            let context = context.clone();
            async move { context.spawn("forever", std::future::pending::<()>()) }
        });
        assert_eq!(futures::executor::block_on(handle), Err(Error::Closed));
    }

    /// The value of the sample `key` (name and labels) in the encoded
    /// registry.
    fn sample(registry: &std::sync::Mutex<Registry>, key: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry.lock().expect("registry"))
            .expect("encode");
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn task_metrics_count_panicked_aborted_and_dropped_tasks() {
        for catch_panics in [true, false] {
            let cfg = Config {
                catch_panics,
                ..Config::default()
            };
            let registry = cfg.registry.clone();
            let (runner, context) = Executor::init(cfg);
            runner.start(async move {
                for i in 0..3u32 {
                    assert_eq!(context.spawn("ok", async move { i }).await, Ok(i));
                }
                if catch_panics {
                    let failed = context.spawn("bad", async { panic!("counted panic") });
                    assert_eq!(failed.await, Err::<(), _>(Error::Exited));
                }
                let aborted = context.spawn("aborted", std::future::pending::<()>());
                aborted.abort();
                assert_eq!(aborted.await, Err(Error::Closed));
                // Left running: dropped when `start` returns.
                drop(context.spawn("dropped", std::future::pending::<()>()));
                context.sleep(Duration::from_millis(5)).await;
                assert_eq!(
                    sample(
                        &context.inner.cfg.registry,
                        r#"tasks_running{label="dropped"}"#
                    ),
                    Some(1.0)
                );
            });
            let mut expect = vec![
                (r#"tasks_spawned_total{label="ok"}"#, 3.0),
                (r#"task_polls_total{label="ok"}"#, 3.0),
                (r#"tasks_running{label="ok"}"#, 0.0),
                (r#"tasks_spawned_total{label="aborted"}"#, 1.0),
                (r#"tasks_running{label="aborted"}"#, 0.0),
                (r#"tasks_spawned_total{label="dropped"}"#, 1.0),
                (r#"tasks_running{label="dropped"}"#, 0.0),
            ];
            if catch_panics {
                expect.extend([
                    (r#"tasks_spawned_total{label="bad"}"#, 1.0),
                    (r#"task_polls_total{label="bad"}"#, 1.0),
                    (r#"tasks_running{label="bad"}"#, 0.0),
                ]);
            }
            for (key, value) in expect {
                assert_eq!(sample(&registry, key), Some(value), "{key}");
            }
        }
    }

    #[test]
    fn uncaught_panic_resolves_its_handle_to_exited() {
        let (runner, context) = executor(false);
        let handle = Arc::new(Mutex::new(None));
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runner.start({
                let handle = handle.clone();
                async move {
                    *handle.lock() = Some(context.spawn("bad", async { panic!("reported") }));
                    std::future::pending::<()>().await;
                }
            })
        }));
        let payload = outcome.expect_err("the task's panic ends start");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"reported"));
        let handle = handle.lock().take().expect("spawned");
        assert_eq!(futures::executor::block_on(handle), Err(Error::Exited));
    }

    #[test]
    fn current_thread_runtime_runs_tasks() {
        let (runner, context) = Executor::init(Config {
            threads: 0,
            ..Config::default()
        });
        let value = runner.start(async move {
            context.sleep(Duration::from_millis(1)).await;
            context.spawn("child", async { 3 }).await
        });
        assert_eq!(value, Ok(3));
    }

    #[test]
    fn sleep_created_before_start_waits_on_the_real_clock() {
        let (runner, context) = Executor::default();
        let sleep = context.sleep(Duration::from_millis(20));
        let started = Instant::now();
        runner.start(sleep);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn sleep_until_past_deadline_resolves_at_once() {
        let (runner, context) = Executor::default();
        runner.start(async move {
            let past = context.current() - Duration::from_secs(60);
            context.sleep_until(past).await;
        });
    }

    #[test]
    fn default_config_matches_reference() {
        let cfg = Config::default();
        assert_eq!(cfg.threads, 2);
        assert!(cfg.catch_panics);
        assert_eq!(cfg.read_timeout, Duration::from_secs(60));
        assert_eq!(cfg.write_timeout, Duration::from_secs(30));
        assert_eq!(cfg.tcp_nodelay, None);
        assert_eq!(cfg.maximum_buffer_size, 2 * 1024 * 1024);
        assert!(cfg.storage_directory.starts_with(env::temp_dir()));
        assert_ne!(
            cfg.storage_directory,
            Config::default().storage_directory,
            "each default config gets a fresh directory"
        );
    }

    #[test]
    fn governor_clock_reads_real_time() {
        fn now<C: GClock<Instant = SystemTime> + ReasonablyRealtime>(clock: &C) -> SystemTime {
            clock.now()
        }
        let (_, context) = Executor::default();
        let before = SystemTime::now();
        let now = now(&context);
        assert!(now >= before && now <= SystemTime::now());
    }

    #[test]
    fn rng_draws_differ() {
        let (_, mut context) = Executor::default();
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        context.fill_bytes(&mut a);
        context.clone().fill_bytes(&mut b);
        assert_ne!(a, b);
        assert_ne!(context.next_u64(), context.next_u64());
    }
}
