//! The driver: one simulated run of a cluster under faults, judged by the
//! [`Checker`].
//!
//! A run is a whole harness run in the sense of the runtime's tools: [`run`]
//! builds its deterministic runtime from the [`Config`] it is given (a
//! seed to sweep, or a recorded schedule to replay), and may cut the power
//! and recover any number of times. Every node has its own IP (its context
//! dials from it, and it is a lane of the run's timeline), partition and
//! blobs. The root task boots every node, then, every 0.2 to 2 s of
//! virtual time for [`Options::duration`], asks the runtime about each
//! fault, by name, with [`Context::fault`]:
//!
//! * **crash** (`crash node N`, every step for every node): the node's task
//!   is aborted (and with it its sender tasks, connections and open blobs:
//!   unsynced writes are lost or torn); it reboots from its partition after
//!   a downtime drawn from the fault. At most a minority is down at once.
//! * **partition** (`partition`, every step): the network is split in two
//!   (`Context::partition`), drawn from the fault, and heals after a
//!   while; open connections across the cut are reset or stall, as the
//!   seed picks for the run;
//! * **power cut** (`power cut`, before each epoch): the runtime is halted
//!   at a moment drawn from the fault (`Runner::start_until`), wherever
//!   every task is, and the run continues in `Context::recover()` from
//!   what the disk kept;
//! * **network**: every link has latency and jitter; dials fail and
//!   connections get reset now and then (the runtime's own fault
//!   decisions);
//! * **disk**: reads, writes, syncs and truncates fail now and then (the
//!   node crashes and reboots, as a process would), and a crash tears the
//!   unsynced writes (a prefix of them survives);
//! * **clock** (only when listed): every node gets its own clock, drawn
//!   from the seed (offset, drift, two jumps), for the whole run;
//! * **byzantine** (only when listed): links drop, delay, duplicate and
//!   replay frames now and then. (Not corrupt or replace: the protocol
//!   tolerates crashes, not lying peers.)
//!
//! Because every fault is a named decision, asked at the same step whether
//! or not an earlier fault fired, a shrinker can remove any of them and
//! every other fault stays where it was.
//!
//! Then the faults stop (partitions heal, failure probabilities drop to
//! zero, every node boots) and the cluster gets [`Options::settle`] to show
//! it still commits. The driver logs what it does and every election with
//! [`Context::note`], for the story and the picture of a run.
//!
//! # Invariants
//! * Everything that decides what happens comes from the config: a run is
//!   reproduced exactly by its seed and options (or by its schedule), and
//!   ends in the same auditor state. Wall time is measured only to report
//!   the rate.
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
        StorageFaults,
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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Port every node listens on (each node has its own IP).
const PORT: u16 = 7000;

/// Pause between two fault steps.
const FAULT_GAP: Range<Duration> = Duration::from_millis(200)..Duration::from_millis(2000);

/// Chance that a node crashes at a step.
const CRASH: f64 = 0.05;

/// How long a node the driver crashed stays down.
const DOWNTIME: Range<Duration> = Duration::from_millis(300)..Duration::from_millis(4000);

/// Chance that the network splits at a step (when it is whole).
const PARTITION: f64 = 0.15;

/// How long a partition lasts.
const PARTITION_TIME: Range<Duration> = Duration::from_millis(500)..Duration::from_millis(6000);

/// Chance that the power goes out somewhere in an epoch.
const POWER_CUT: f64 = 0.5;

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

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => write!(f, "ok"),
            Outcome::Unsafe(violation) => write!(f, "UNSAFE: {violation}"),
            Outcome::Stuck(why) => write!(f, "STUCK: {why}"),
        }
    }
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
        write!(f, "{}", self.outcome)
    }
}

/// Simulates one run of `options` under `config` (its seed, or the
/// schedule it replays; its faults are set here). The report says how the
/// run ended; [`judged`] turns a failed run into a panic, for the runtime's
/// sweeps and shrinker.
pub fn run(options: &Options, config: Config) -> Report {
    let started = Instant::now();
    let seed = config.seed;
    let (mut runner, mut context, auditor) = Executor::init(Config {
        faults: options.faults.runtime(false),
        ..config
    });
    for (id, ip) in node_ips(options.nodes).into_iter().enumerate() {
        context.name_node(ip, &format!("node {id}"));
    }
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
        let cut = (options.faults.power
            && now < options.duration
            && cluster.state.lock().injected.power_cuts < MAX_POWER_CUTS)
            .then(|| context.fault("power cut", POWER_CUT))
            .flatten();
        let root = cluster.clone().simulate(context.clone());
        let Some(mut cut) = cut else {
            runner.start(root);
            break;
        };
        let at = cut.gen_range(now..options.duration);
        context.note(format_args!(
            "the power will go out at {:.3}s",
            at.as_secs_f64()
        ));
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
    }
}

/// `report`, or a panic with its outcome if the run failed (`UNSAFE: ...`
/// or `STUCK: ...`): how the runtime's sweeps and shrinker see a failure.
pub fn judged(report: Report) -> Report {
    if report.outcome != Outcome::Pass {
        panic!("{}", report.outcome);
    }
    report
}

/// What the driver changes as the run goes.
struct State {
    /// Until when each node the driver crashed stays down.
    down: Vec<Option<SystemTime>>,
    /// Until when the partition in force lasts.
    partitioned: Option<SystemTime>,
    /// The candidates of each term.
    candidates: BTreeMap<u64, BTreeSet<u64>>,
    injected: Injected,
    /// Set when the run is over.
    outcome: Option<Outcome>,
}

/// The IP of each node.
fn node_ips(nodes: usize) -> Vec<IpAddr> {
    (0..nodes)
        .map(|id| IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8 + 1)))
        .collect()
}

/// One cluster under test; it outlives every runtime of the run.
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

    /// [`Cluster::trace`], and logs `event` in the run's timeline and
    /// story ([`Context::note`]) on the lane of `context`'s node. (What a
    /// fault the timeline shows already did is only traced.)
    fn event(&self, context: &Context, event: impl fmt::Display) {
        self.trace(context, &event);
        context.note(event);
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
                down: vec![None; options.nodes],
                partitioned: None,
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
        self.state.lock().down.fill(None);
        let mut nodes: Vec<Handle<()>> = (0..self.options.nodes)
            .map(|id| self.boot(&context, id))
            .collect();

        let end = UNIX_EPOCH + self.options.duration;
        while context.current() < end {
            let gap = context.gen_range(FAULT_GAP);
            context.sleep(gap).await;
            if let Some(violation) = self.checker.violation() {
                self.trace(&context, format_args!("UNSAFE: {violation}"));
                self.state.lock().outcome = Some(Outcome::Unsafe(violation));
                return;
            }
            self.crash_or_reboot(&context, &mut nodes);
            self.split_or_heal(&context);
        }

        // The faults stop: the network heals, every node comes back, and
        // commits must continue.
        self.event(&context, "faults stop: the network heals, every node boots");
        context.heal();
        // Clocks are the nodes' hardware: they stay.
        let mut calm = self.options.faults.runtime(true);
        calm.clocks = context.faults().clocks;
        context.set_faults(calm);
        self.state.lock().partitioned = None;
        let down = std::mem::take(&mut self.state.lock().down);
        for (id, node) in nodes.iter_mut().enumerate() {
            if down[id].is_some() {
                *node = self.boot(&context, id);
            }
        }
        let before = self.checker.committed_count();
        context.sleep(self.options.settle).await;
        let (after, slowest) = (self.checker.committed_count(), self.checker.slowest());
        self.event(
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

    /// Reboots the nodes whose downtime is over, then asks about a crash
    /// of every node. Every node is asked at every step, down or not, so a
    /// crash's occurrence number is its step whatever else fired.
    fn crash_or_reboot(self: &Arc<Self>, context: &Context, nodes: &mut [Handle<()>]) {
        let now = context.current();
        let max_down = (self.options.nodes - 1) / 2;
        let mut state = self.state.lock();
        for (id, node) in nodes.iter_mut().enumerate() {
            if state.down[id].is_some_and(|until| now >= until) {
                state.down[id] = None;
                *node = self.boot(context, id);
                let node = context.with_ip(self.ips[id]);
                self.event(&node, format_args!("node {id} reboots"));
            }
        }
        if !self.options.faults.crash {
            return;
        }
        for (id, handle) in nodes.iter_mut().enumerate() {
            let node = context.with_ip(self.ips[id]);
            let Some(mut crash) = node.fault(&format!("crash node {id}"), CRASH) else {
                continue;
            };
            let down = state.down.iter().filter(|until| until.is_some()).count();
            if state.down[id].is_some() || down >= max_down {
                continue;
            }
            handle.abort();
            state.down[id] = Some(now + crash.gen_range(DOWNTIME));
            state.injected.crashes += 1;
            self.trace(context, format_args!("node {id} crashes"));
        }
    }

    /// Heals a partition whose time is over, then asks about a new one
    /// (at every step, split or not).
    fn split_or_heal(&self, context: &Context) {
        let now = context.current();
        let mut state = self.state.lock();
        if state.partitioned.is_some_and(|until| now >= until) {
            context.heal();
            state.partitioned = None;
            self.event(context, "the partition heals");
        }
        if !self.options.faults.partition {
            return;
        }
        let Some(mut split) = context.fault("partition", PARTITION) else {
            return;
        };
        if state.partitioned.is_some() || self.ips.len() < 2 {
            return;
        }
        let mut ips = self.ips.clone();
        ips.shuffle(&mut split);
        let minority = split.gen_range(1..=ips.len() / 2);
        let (a, b) = ips.split_at(minority);
        context.partition(a, b);
        state.partitioned = Some(now + split.gen_range(PARTITION_TIME));
        state.injected.partitions += 1;
        let names = |ips: &[IpAddr]| {
            ips.iter()
                .map(|ip| {
                    let node = self.ips.iter().position(|known| known == ip);
                    node.map_or_else(|| ip.to_string(), |id| id.to_string())
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        self.event(
            context,
            format_args!("partition: nodes {} | nodes {}", names(a), names(b)),
        );
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
                        cluster.event(&node_context, event);
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
        self.cluster.event(&self.context, event);
    }

    fn committed(&self, node: u64, index: u64, entry: Entry) {
        self.cluster.checker.committed(node, index, entry);
        let partitioned = self.cluster.state.lock().partitioned.is_some();
        self.context
            .sometimes("commit during a partition", partitioned);
    }
}
