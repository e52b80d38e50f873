//! The driver: one simulated run of a cluster under faults, judged by the
//! [`Checker`].
//!
//! A run is a deterministic runtime seeded with the run's seed. Its root
//! task boots every node, then injects faults for [`Options::duration`] of
//! virtual time, each decision drawn from the runtime's generator:
//!
//! * **node crash**: the node's task is aborted (and with it its sender
//!   tasks, connections and open blobs, whose unsynced writes are lost);
//!   it reboots from its partition at a later step;
//! * **power cut**: the root task returns, which drops every task of the
//!   runtime at once, and the run continues in `Context::recover()`, which
//!   keeps only what was synced.
//!
//! Then the faults stop, every node boots, and the cluster gets
//! [`Options::settle`] to show it still commits.
//!
//! # Invariants
//! * Everything that decides what happens comes from the seed: a run is
//!   reproduced exactly by its seed and options, and ends in the same
//!   auditor state. Wall time is measured only to report the rate.
//! * At most a minority of nodes is crashed at any time, so a majority can
//!   always make progress between faults.

use crate::{
    check::{Checker, Violation},
    node::{self, Observer},
};
use commonware_runtime::{
    deterministic::{Config, Context, Executor},
    Clock, Handle, Runner, Spawner,
};
use rand::Rng;
use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    ops::Range,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

/// Port every node listens on (each node has its own address).
const PORT: u16 = 7000;

/// Pause between two fault decisions.
const FAULT_GAP: Range<Duration> = Duration::from_millis(200)..Duration::from_millis(2000);

/// Percentage of fault decisions that cut the power (when enabled).
const POWER_CUT_PERCENT: u32 = 2;

/// How long a node that crashed on its own stays down before it reboots.
const REBOOT: Duration = Duration::from_millis(500);

/// With the planted `skip-fsync` bug: how often the log is synced.
const SKIP_FSYNC_FLUSH: Duration = Duration::from_millis(20);

/// Entries the cluster must commit during the settle period.
const MIN_PROGRESS: u64 = 5;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Crash and reboot single nodes.
    pub crash: bool,
    /// Cut the power of the whole cluster (`Context::recover()`).
    pub power: bool,
}

impl Faults {
    pub const ALL: Faults = Faults {
        crash: true,
        power: true,
    };
    pub const NONE: Faults = Faults {
        crash: false,
        power: false,
    };
}

/// A bug that can be planted in the protocol to watch the checker catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Acknowledge appends before syncing them; sync the log only every so
    /// often. A crash then loses entries a majority acknowledged.
    SkipFsync,
}

/// What a run simulates.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cluster size.
    pub nodes: usize,
    /// Virtual time during which faults are injected.
    pub duration: Duration,
    /// Fault-free virtual time at the end, in which commits must continue.
    pub settle: Duration,
    pub faults: Faults,
    pub bug: Option<Bug>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 5,
            duration: Duration::from_secs(60),
            settle: Duration::from_secs(10),
            faults: Faults::ALL,
            bug: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Safe, and commits continued once the faults stopped.
    Pass,
    /// A safety property broke (the run stops at once).
    Unsafe(Violation),
    /// Safe, but the cluster did not make progress after the faults.
    Stuck(String),
}

/// What one run did and how fast.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// The auditor's final state: equal for equal seeds and options.
    pub auditor: String,
    /// Entries committed.
    pub committed: u64,
    /// Highest term a leader was elected in.
    pub terms: u64,
    /// Single-node crashes injected.
    pub crashes: u64,
    /// Whole-cluster power cuts injected.
    pub power_cuts: u64,
    pub outcome: Outcome,
}

impl Report {
    /// Virtual seconds simulated per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {:>4}  {:>6.1}s virtual  {:>7.1}ms wall  {:>7.0}x  {:>4} committed  {:>3} terms  {:>2} crashes  {} power cuts  auditor {}  ",
            self.seed,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64() * 1e3,
            self.rate(),
            self.committed,
            self.terms,
            self.crashes,
            self.power_cuts,
            self.auditor,
        )?;
        match &self.outcome {
            Outcome::Pass => write!(f, "ok"),
            Outcome::Unsafe(violation) => write!(f, "UNSAFE: {violation}"),
            Outcome::Stuck(why) => write!(f, "STUCK: {why}"),
        }
    }
}

/// Simulates one run of `options` with `seed`.
pub fn run(options: &Options, seed: u64) -> Report {
    let started = Instant::now();
    let (mut runner, mut context, auditor) = Executor::init(Config {
        seed,
        ..Config::default()
    });
    let mut cluster = Cluster::new(options.clone());
    loop {
        cluster = runner.start(cluster.simulate(context.clone()));
        if cluster.outcome.is_some() {
            break;
        }
        // The power went out: only what was synced comes back.
        (runner, context, _) = context.recover();
    }
    let simulated = context
        .current()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Report {
        seed,
        simulated,
        wall: started.elapsed(),
        auditor: auditor.state(),
        committed: cluster.checker.committed_count(),
        terms: cluster.checker.terms(),
        crashes: cluster.crashes,
        power_cuts: cluster.power_cuts,
        outcome: cluster.outcome.unwrap_or(Outcome::Pass),
    }
}

/// The simulation's state, carried across power cuts (it lives outside
/// the runtime: the root task takes it and gives it back).
struct Cluster {
    options: Options,
    checker: Arc<Checker>,
    configs: Vec<node::Config>,
    /// Which nodes are crashed (by the driver) right now.
    down: Vec<bool>,
    crashes: u64,
    power_cuts: u64,
    /// Set once the run is over; `None` after a power cut.
    outcome: Option<Outcome>,
}

impl Cluster {
    fn new(options: Options) -> Self {
        let peers: Vec<SocketAddr> = (0..options.nodes)
            .map(|id| SocketAddr::from((Ipv4Addr::new(10, 0, 0, id as u8 + 1), PORT)))
            .collect();
        let configs = (0..options.nodes as u64)
            .map(|id| node::Config {
                id,
                peers: peers.clone(),
                heartbeat: Duration::from_millis(100),
                election: Duration::from_millis(500)..Duration::from_millis(1000),
                propose: Duration::from_millis(100)..Duration::from_millis(300),
                skip_fsync: options.bug.map(|Bug::SkipFsync| SKIP_FSYNC_FLUSH),
            })
            .collect();
        Self {
            checker: Arc::new(Checker::new(options.nodes)),
            down: vec![false; options.nodes],
            options,
            configs,
            crashes: 0,
            power_cuts: 0,
            outcome: None,
        }
    }

    /// Runs until the end (setting `outcome`) or the next power cut.
    async fn simulate(mut self, mut context: Context) -> Self {
        // Every node boots (at the start, or when the power comes back).
        self.down.fill(false);
        let mut nodes: Vec<Handle<()>> = (0..self.options.nodes)
            .map(|id| self.boot(&context, id))
            .collect();

        let end = UNIX_EPOCH + self.options.duration;
        let faults = self.options.faults;
        let max_down = (self.options.nodes - 1) / 2;
        while context.current() < end {
            let gap = context.gen_range(FAULT_GAP);
            context.sleep(gap).await;
            if let Some(violation) = self.checker.violation() {
                self.outcome = Some(Outcome::Unsafe(violation));
                return self;
            }
            if faults.power && context.gen_range(0..100) < POWER_CUT_PERCENT {
                self.power_cuts += 1;
                return self;
            }
            if !faults.crash {
                continue;
            }
            let down: Vec<usize> = (0..self.down.len()).filter(|&id| self.down[id]).collect();
            let reboot = !down.is_empty() && (down.len() == max_down || context.gen_bool(0.5));
            if reboot {
                let id = down[context.gen_range(0..down.len())];
                self.down[id] = false;
                nodes[id] = self.boot(&context, id);
            } else if max_down > 0 {
                let up: Vec<usize> = (0..self.down.len()).filter(|&id| !self.down[id]).collect();
                let id = up[context.gen_range(0..up.len())];
                nodes[id].abort();
                self.down[id] = true;
                self.crashes += 1;
            }
        }

        // The faults stop: every node comes back, and commits must continue.
        for (id, node) in nodes.iter_mut().enumerate() {
            if std::mem::take(&mut self.down[id]) {
                *node = self.boot(&context, id);
            }
        }
        let before = self.checker.committed_count();
        context.sleep(self.options.settle).await;
        let (after, slowest) = (self.checker.committed_count(), self.checker.slowest());
        self.outcome = Some(if let Some(violation) = self.checker.violation() {
            Outcome::Unsafe(violation)
        } else if after < before + MIN_PROGRESS {
            Outcome::Stuck(format!(
                "{} entries committed in the {:?} after the faults stopped (want {MIN_PROGRESS})",
                after - before,
                self.options.settle
            ))
        } else if slowest < before {
            Outcome::Stuck(format!(
                "a node is at commit index {slowest}, behind the {before} committed when the faults stopped"
            ))
        } else {
            Outcome::Pass
        });
        self
    }

    /// Spawns node `id`; it reboots by itself if it crashes on an error.
    fn boot(&self, context: &Context, id: usize) -> Handle<()> {
        let config = self.configs[id].clone();
        let observer: Arc<dyn Observer> = self.checker.clone();
        let node_context = context.clone();
        context.spawn(&format!("node{id}"), async move {
            loop {
                match node::run(node_context.clone(), config.clone(), observer.clone()).await {
                    Ok(never) => match never {},
                    Err(_) => node_context.sleep(REBOOT).await,
                }
            }
        })
    }
}
