//! The driver: one simulated run of a cluster under faults, judged by the
//! [`Checker`].
//!
//! A run is a deterministic runtime seeded with the run's seed; every node
//! has its own IP (its context dials from it), partition and blobs. The
//! root task boots every node, then injects faults for
//! [`Options::duration`] of virtual time, each decision drawn from the
//! runtime's generator:
//!
//! * **crash**: a node's task is aborted (and with it its sender tasks,
//!   connections and open blobs: unsynced writes are lost or torn); it
//!   reboots from its partition at a later step;
//! * **partition**: the network is split in two (`Context::partition`),
//!   later healed; open connections across the cut are reset or stall,
//!   as the seed picks for the run;
//! * **network**: every link has latency and jitter, dials fail now and
//!   then and connections get reset;
//! * **disk**: reads, writes, syncs and truncates fail now and then (the
//!   node crashes and reboots, as a process would), and a crash tears the
//!   unsynced writes (a prefix of them survives);
//! * **power cut**: the runtime is halted at a moment the seed picks
//!   (`Runner::start_until`), wherever every task is, and the run continues
//!   in `Context::recover()` from what the disk kept.
//! * **clock** (only when listed): every node gets its own clock, drawn
//!   from the seed (offset, drift, two jumps), for the whole run;
//! * **byzantine** (only when listed): links drop, delay, duplicate and
//!   replay frames now and then. (Not corrupt or replace: the protocol
//!   tolerates crashes, not lying peers.)
//!
//! Then the faults stop (partitions heal, failure probabilities drop to
//! zero, every node boots) and the cluster gets [`Options::settle`] to show
//! it still commits.
//!
//! # Invariants
//! * Everything that decides what happens comes from the seed: a run is
//!   reproduced exactly by its seed and options, and ends in the same
//!   auditor state. Wall time is measured only to report the rate.
//! * At most a minority of nodes is crashed by the driver at any time.
//! * The driver's state lives outside the runtime (behind an `Arc`), so a
//!   power cut, which drops the root task mid-flight, loses none of it.

use crate::{
    check::{Checker, Violation},
    node::{self, Observer},
    wire::Entry,
};
use commonware_runtime::{
    deterministic::{
        self, Byzantine, ClockFaults, Config, Context, Executor, Halt, LinkFaults, PartitionMode,
        Points, StorageFaults,
    },
    Assertions, Clock, Handle, Runner, Spawner,
};
use parking_lot::Mutex;
use rand::{seq::SliceRandom, Rng};
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

/// Port every node listens on (each node has its own IP).
const PORT: u16 = 7000;

/// Pause between two fault decisions.
const FAULT_GAP: Range<Duration> = Duration::from_millis(200)..Duration::from_millis(2000);

/// Most power cuts in one run.
const MAX_POWER_CUTS: u64 = 2;

/// How long a node that crashed on its own stays down before it reboots.
const REBOOT: Duration = Duration::from_millis(500);

/// With the planted `skip-fsync` bug: how often the log is synced.
const SKIP_FSYNC_FLUSH: Duration = Duration::from_millis(100);

/// Entries the cluster must commit during the settle period.
const MIN_PROGRESS: u64 = 5;

/// Delay of every link (with `network` faults, and while settling).
const LATENCY: Duration = Duration::from_millis(2);
const JITTER: Duration = Duration::from_millis(8);

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Crash and reboot single nodes.
    pub crash: bool,
    /// Halt the whole runtime and `recover()` it.
    pub power: bool,
    /// Split the network in two, and heal it.
    pub partition: bool,
    /// Latency, jitter, failed dials and reset connections.
    pub network: bool,
    /// I/O errors, and torn unsynced writes on crashes.
    pub disk: bool,
    /// A clock of its own per node (not in `ALL`: listed explicitly).
    pub clock: bool,
    /// Links that drop, delay, duplicate and replay frames (not in `ALL`).
    pub byzantine: bool,
}

impl Faults {
    pub const ALL: Faults = Faults {
        crash: true,
        power: true,
        partition: true,
        network: true,
        disk: true,
        clock: false,
        byzantine: false,
    };
    pub const NONE: Faults = Faults {
        crash: false,
        power: false,
        partition: false,
        network: false,
        disk: false,
        clock: false,
        byzantine: false,
    };

    /// The runtime's fault settings for these faults; `calm` keeps only
    /// the delays (for the settle period).
    fn runtime(&self, calm: bool) -> deterministic::Faults {
        let mut faults = deterministic::Faults::default();
        if self.network {
            faults.network = LinkFaults {
                latency: LATENCY,
                jitter: JITTER,
                ..LinkFaults::default()
            };
            if !calm {
                faults.network.dial_failure = 0.05;
                faults.network.reset = 0.002;
            }
        }
        if self.byzantine && !calm {
            faults.network.byzantine = Byzantine {
                drop: 0.01,
                delay: 0.01,
                max_delay: Duration::from_millis(50),
                duplicate: 0.01,
                replay: 0.01,
                ..Byzantine::default()
            };
        }
        if self.disk {
            faults.storage.torn = true;
            if !calm {
                faults.storage = StorageFaults {
                    open: 0.001,
                    read: 0.001,
                    write: 0.001,
                    sync: 0.002,
                    truncate: 0.001,
                    torn: true,
                    ..StorageFaults::default()
                };
            }
        }
        faults
    }
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
    /// Print the run's events (faults, elections, the verdict) as they
    /// happen.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 5,
            duration: Duration::from_secs(60),
            settle: Duration::from_secs(10),
            faults: Faults::ALL,
            bug: None,
            trace: false,
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

/// Faults injected during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// Nodes crashed by the driver.
    pub crashes: u64,
    /// Nodes that crashed on their own (an I/O error).
    pub failures: u64,
    /// Network partitions made.
    pub partitions: u64,
    /// Whole-cluster power cuts.
    pub power_cuts: u64,
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
    pub injected: Injected,
    pub outcome: Outcome,
    /// The run's reachability points.
    pub points: Points,
}

impl Report {
    /// Virtual seconds simulated per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Injected {
            crashes,
            failures,
            partitions,
            power_cuts,
        } = self.injected;
        write!(
            f,
            "seed {:>4}  {:>5.1}s in {:>5.1}ms = {:>5.0}x | {:>3} committed {:>3} terms | {:>2} crashes {:>2} io-crashes {:>2} partitions {} power cuts | auditor {} | ",
            self.seed,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64() * 1e3,
            self.rate(),
            self.committed,
            self.terms,
            crashes,
            failures,
            partitions,
            power_cuts,
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
        faults: options.faults.runtime(false),
        ..Config::default()
    });
    context.collect_points();
    if options.faults.clock {
        let mut faults = context.faults();
        for ip in node_ips(options.nodes) {
            let clock = ClockFaults::draw(
                &mut context,
                Duration::from_secs(2),
                50_000,
                2,
                options.duration,
            );
            faults.clocks.insert(ip, clock);
        }
        context.set_faults(faults);
    }
    if options.faults.partition {
        let mut faults = context.faults();
        faults.partition_mode = match context.gen_bool(0.5) {
            true => PartitionMode::Stall,
            false => PartitionMode::Reset,
        };
        context.set_faults(faults);
    }
    let cluster = Arc::new(Cluster::new(options.clone()));
    loop {
        // Maybe the power goes out somewhere ahead, wherever the tasks are.
        let now = context
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let cut = options.faults.power
            && now < options.duration
            && cluster.state.lock().injected.power_cuts < MAX_POWER_CUTS
            && context.gen_bool(0.5);
        let root = cluster.clone().simulate(context.clone());
        if !cut {
            runner.start(root);
            break;
        }
        let at = context.gen_range(now..options.duration);
        if runner.start_until(Halt::At(at), root).is_some() {
            break;
        }
        cluster.state.lock().injected.power_cuts += 1;
        cluster.trace(
            &context,
            "power cut: every task stops where it is; recovering",
        );
        (runner, context, _) = context.recover();
    }
    let simulated = context
        .current()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let state = cluster.state.lock();
    Report {
        seed,
        simulated,
        wall: started.elapsed(),
        auditor: auditor.state(),
        committed: cluster.checker.committed_count(),
        terms: cluster.checker.terms(),
        injected: state.injected,
        outcome: state.outcome.clone().unwrap_or(Outcome::Pass),
        points: {
            let mut points = Points::default();
            points.add(seed, &context);
            points
        },
    }
}

/// A kind of fault the driver injects step by step.
#[derive(Clone, Copy)]
enum Kind {
    Crash,
    Partition,
}

/// What the driver changes as the run goes.
struct State {
    /// Which nodes the driver has crashed.
    down: Vec<bool>,
    /// Whether a partition is in force.
    partitioned: bool,
    /// The candidates of each term.
    candidates: BTreeMap<u64, BTreeSet<u64>>,
    injected: Injected,
    /// Set when the run is over.
    outcome: Option<Outcome>,
}

/// One cluster under test; it outlives every runtime of the run.
/// The IP of each node.
fn node_ips(nodes: usize) -> Vec<IpAddr> {
    (0..nodes)
        .map(|id| IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8 + 1)))
        .collect()
}

struct Cluster {
    options: Options,
    checker: Arc<Checker>,
    configs: Vec<node::Config>,
    ips: Vec<IpAddr>,
    state: Mutex<State>,
}

impl Cluster {
    /// Prints `event` at the current virtual time, if tracing.
    fn trace(&self, context: &Context, event: impl fmt::Display) {
        if self.options.trace {
            let at = context.current().duration_since(UNIX_EPOCH);
            println!("  [{:>8.3}s] {event}", at.unwrap_or_default().as_secs_f64());
        }
    }

    fn new(options: Options) -> Self {
        let ips = node_ips(options.nodes);
        let peers: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, PORT)).collect();
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
            state: Mutex::new(State {
                down: vec![false; options.nodes],
                partitioned: false,
                candidates: BTreeMap::new(),
                injected: Injected::default(),
                outcome: None,
            }),
            options,
            configs,
            ips,
        }
    }

    /// Runs the cluster to the end of the run (unless the power goes out).
    async fn simulate(self: Arc<Self>, mut context: Context) {
        // Every node boots (at the start, or when the power comes back).
        self.state.lock().down.fill(false);
        let mut nodes: Vec<Handle<()>> = (0..self.options.nodes)
            .map(|id| self.boot(&context, id))
            .collect();

        let end = UNIX_EPOCH + self.options.duration;
        let faults = self.options.faults;
        let kinds: Vec<Kind> = [
            (faults.crash, Kind::Crash),
            (faults.partition, Kind::Partition),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect();
        while context.current() < end {
            let gap = context.gen_range(FAULT_GAP);
            context.sleep(gap).await;
            if let Some(violation) = self.checker.violation() {
                self.trace(&context, format_args!("UNSAFE: {violation}"));
                self.state.lock().outcome = Some(Outcome::Unsafe(violation));
                return;
            }
            match kinds.choose(&mut context) {
                Some(Kind::Crash) => self.crash_or_reboot(&mut context, &mut nodes),
                Some(Kind::Partition) => self.split_or_heal(&mut context),
                None => {}
            }
        }

        // The faults stop: the network heals, every node comes back, and
        // commits must continue.
        self.trace(&context, "faults stop: the network heals, every node boots");
        context.heal();
        // Clocks are the nodes' hardware: they stay.
        let mut calm = faults.runtime(true);
        calm.clocks = context.faults().clocks;
        context.set_faults(calm);
        let down = std::mem::take(&mut self.state.lock().down);
        for (id, node) in nodes.iter_mut().enumerate() {
            if down[id] {
                *node = self.boot(&context, id);
            }
        }
        let before = self.checker.committed_count();
        context.sleep(self.options.settle).await;
        let (after, slowest) = (self.checker.committed_count(), self.checker.slowest());
        self.trace(
            &context,
            format_args!("{} entries committed while settling", after - before),
        );
        self.state.lock().outcome = Some(if let Some(violation) = self.checker.violation() {
            Outcome::Unsafe(violation)
        } else if after < before + MIN_PROGRESS {
            // What every task waits on: the liveness report.
            Outcome::Stuck(format!(
                "{} entries committed in the {:?} after the faults stopped (want {MIN_PROGRESS}); {}",
                after - before,
                self.options.settle,
                context.wait_report()
            ))
        } else if slowest < before {
            Outcome::Stuck(format!(
                "a node is at commit index {slowest}, behind the {before} committed when the faults stopped"
            ))
        } else {
            Outcome::Pass
        });
    }

    /// Crashes a node, or reboots one the driver crashed.
    fn crash_or_reboot(self: &Arc<Self>, context: &mut Context, nodes: &mut [Handle<()>]) {
        let max_down = (self.options.nodes - 1) / 2;
        let mut state = self.state.lock();
        let (down, up): (Vec<usize>, Vec<usize>) = (0..nodes.len()).partition(|&id| state.down[id]);
        if !down.is_empty() && (down.len() == max_down || context.gen_bool(0.5)) {
            let id = down[context.gen_range(0..down.len())];
            state.down[id] = false;
            nodes[id] = self.boot(context, id);
            self.trace(context, format_args!("node {id} reboots"));
        } else if down.len() < max_down {
            let id = up[context.gen_range(0..up.len())];
            nodes[id].abort();
            state.down[id] = true;
            state.injected.crashes += 1;
            self.trace(context, format_args!("node {id} crashes"));
        }
    }

    /// Splits the network in two at random, or heals it.
    fn split_or_heal(&self, context: &mut Context) {
        let mut state = self.state.lock();
        if state.partitioned {
            if context.gen_bool(0.5) {
                context.heal();
                state.partitioned = false;
                self.trace(context, "the partition heals");
            }
            return;
        }
        if self.ips.len() < 2 || context.gen_bool(0.5) {
            return;
        }
        let mut ips = self.ips.clone();
        ips.shuffle(context);
        let minority = context.gen_range(1..=ips.len() / 2);
        let (a, b) = ips.split_at(minority);
        context.partition(a, b);
        state.partitioned = true;
        state.injected.partitions += 1;
        self.trace(context, format_args!("partition {a:?} | {b:?}"));
    }

    /// Spawns node `id`, dialing from its own IP; it reboots by itself
    /// after an I/O error crashes it.
    fn boot(self: &Arc<Self>, context: &Context, id: usize) -> Handle<()> {
        let config = self.configs[id].clone();
        let node_context = context.with_ip(self.ips[id]);
        let observer: Arc<dyn Observer> = Arc::new(Watch {
            cluster: self.clone(),
            context: node_context.clone(),
        });
        let cluster = self.clone();
        context.spawn(&format!("node{id}"), async move {
            loop {
                match node::run(node_context.clone(), config.clone(), observer.clone()).await {
                    Ok(never) => match never {},
                    Err(crash) => {
                        cluster.state.lock().injected.failures += 1;
                        let event = format!("node {id} crashes on its own ({crash})");
                        cluster.trace(&node_context, event);
                        node_context.sleep(REBOOT).await;
                    }
                }
            }
        })
    }
}

/// What a node reports to: the checker, and the trace.
struct Watch {
    cluster: Arc<Cluster>,
    context: Context,
}

impl Observer for Watch {
    fn started(&self, node: u64) {
        self.cluster.checker.started(node);
    }

    fn campaigning(&self, node: u64, term: u64) {
        let mut state = self.cluster.state.lock();
        let candidates = state.candidates.entry(term).or_default();
        candidates.insert(node);
        let split = candidates.len() >= 2;
        drop(state);
        self.context.sometimes("two candidates in one term", split);
    }

    fn elected(&self, node: u64, term: u64) {
        self.cluster.checker.elected(node, term);
        let event = format_args!("node {node} leads term {term}");
        self.cluster.trace(&self.context, event);
    }

    fn committed(&self, node: u64, index: u64, entry: Entry) {
        self.cluster.checker.committed(node, index, entry);
        let partitioned = self.cluster.state.lock().partitioned;
        self.context
            .sometimes("commit during a partition", partitioned);
    }
}
