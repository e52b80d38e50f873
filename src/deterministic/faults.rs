//! Fault injection: what can go wrong in the simulated network and disk,
//! how often, and the seeded decisions that make it go wrong.
//!
//! # What this module owns
//! * The configuration. [`Faults`] sits on [`Config::faults`](super::Config)
//!   (everything off by default) and can be replaced at run time with
//!   [`Context::set_faults`](super::Context::set_faults). The network is
//!   configured per link (a direction between two IPs, [`LinkFaults`]), the
//!   disk per storage partition ([`StorageFaults`]), each with a default for
//!   everything not listed, and a node's clock per IP
//!   ([`ClockFaults`](super::ClockFaults), whose semantics `clocks.rs`
//!   owns). Network partitions are made and healed at run
//!   time ([`Context::partition`](super::Context::partition) /
//!   [`heal`](super::Context::heal)); [`PartitionMode`] says what a cut does
//!   to connections already open across it.
//! * [`Injector`]: the live fault state. Like the disk, it belongs to the
//!   simulated hardware rather than to one runtime instance, so a runtime
//!   made by `recover()` keeps its partitions and settings.
//! * Asking whether a fault fires ([`Injector::decide`]; the decision and
//!   its [`Fault`] are `decision.rs`'s): a named decision of the scheduler,
//!   from a stream of its own, recorded and replayed by name, so a seed
//!   injects the same faults at the same moments and a shrinker can remove
//!   them one by one. Latency and jitter ([`ArrivalClock::arrival`]) are
//!   plain draws from the runtime's generator. Every fault injected is
//!   folded into the auditor ([`audit`]).
//! * [`Halt`]: where [`Runner::start_until`](super::Runner::start_until)
//!   crashes a run.
//!
//! # Invariants
//! * With every probability at zero, no latency, no bandwidth limit and no
//!   cut, nothing here draws a random number or changes behaviour: a run is
//!   identical, auditor state included, to one without fault injection. The
//!   hot paths check that with one atomic load.
//! * A probability of 0 or less never fires and is not asked; 1 or more
//!   always fires (and is still a decision a shrinker may remove); NaN
//!   counts as 0.
//! * Arrival times on one lane never decrease, so latency, jitter and
//!   bandwidth delay bytes but never reorder them within a connection.
//! * Maps are `BTreeMap`s/`BTreeSet`s: nothing observable depends on hash
//!   order.

use super::{
    auditor::kind,
    clocks::ClockFaults,
    decision::Fault,
    network::{Byzantine, Hooks},
    timeline::Log,
    Context,
};
use commonware_executor::{Core, END_OF_TIME};
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, OnceLock,
    },
    task::{Context as TaskContext, Poll, Waker},
    time::Duration,
};

/// Faults of one link: the bytes sent from one IP to another.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Fixed one-way delay of every send.
    pub latency: Duration,
    /// Extra delay of every send, uniform in `0..=jitter`. Bytes still
    /// arrive in the order they were sent on a connection.
    pub jitter: Duration,
    /// Bytes per second the link carries (`None`: unlimited). A send
    /// occupies the link for `len / bandwidth` and queues behind earlier
    /// sends; the sender itself does not wait.
    pub bandwidth: Option<u64>,
    /// Probability that a dial over this link fails with
    /// `Error::ConnectionFailed`.
    pub dial_failure: f64,
    /// Probability, per send, that the connection is reset instead: the send
    /// fails with `Error::SendFailed`, and from then on both ends' sends and
    /// receives fail (bytes not yet received are lost).
    pub reset: f64,
    /// Rates of what the link may do to a send besides carrying it (drop,
    /// delay, duplicate, corrupt, replay); see also `Context::byzantine`.
    pub byzantine: Byzantine,
}

impl LinkFaults {
    fn active(&self) -> bool {
        self.delays() || self.dial_failure > 0.0 || self.reset > 0.0 || self.byzantine.active()
    }

    /// Whether sends over the link arrive later than they are sent.
    pub(crate) fn delays(&self) -> bool {
        self.latency > Duration::ZERO || self.jitter > Duration::ZERO || self.bandwidth.is_some()
    }
}

/// Faults of one storage partition. Probabilities are per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StorageFaults {
    /// `open` fails with `Error::BlobOpenFailed` (nothing is created).
    pub open: f64,
    /// `read_at` fails with `Error::ReadFailed`.
    pub read: f64,
    /// `write_at` fails with `Error::WriteFailed` (nothing is written).
    pub write: f64,
    /// `sync` (and `close`) fails with `Error::BlobSyncFailed` (nothing is
    /// made durable; a later sync may succeed).
    pub sync: f64,
    /// `truncate` fails with `Error::BlobTruncateFailed` (nothing changes).
    pub truncate: f64,
    /// `remove` fails, with the error the Tokio backend returns when the
    /// file system refuses: `Error::BlobMissing` for a blob,
    /// `Error::PartitionMissing` for a partition (nothing is removed).
    pub remove: f64,
    /// `read_at` succeeds but one bit of the returned bytes is flipped, if
    /// that bit comes from synced data (silent corruption of the medium;
    /// what is stored stays intact).
    pub corrupt: f64,
    /// `write_at` succeeds but lands a whole number of sectors (1 to 8 of
    /// [`SECTOR`] bytes) before or after where it was aimed; the aimed-at
    /// bytes keep their old contents.
    pub misdirect: f64,
    /// When a handle with unsynced writes goes away without syncing (a
    /// crash: its task aborted, its runtime ended before `recover()`), a
    /// prefix of those writes and truncates, chosen by the seed (possibly
    /// none, possibly all), reaches the durable image instead of none.
    pub torn: bool,
}

impl StorageFaults {
    fn active(&self) -> bool {
        self.open > 0.0
            || self.read > 0.0
            || self.write > 0.0
            || self.sync > 0.0
            || self.truncate > 0.0
            || self.remove > 0.0
            || self.corrupt > 0.0
            || self.misdirect > 0.0
            || self.torn
    }
}

/// What a network partition does to connections already open across it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionMode {
    /// They are reset: both ends' sends and receives fail.
    #[default]
    Reset,
    /// They stall: sends succeed, but nothing crosses until `heal`, when
    /// everything sent meanwhile arrives, in order.
    Stall,
}

/// Every fault setting of a deterministic runtime (all off by default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Faults of every link not listed in `links`.
    pub network: LinkFaults,
    /// Faults of the link from the first IP to the second. A connection's
    /// two directions are two links.
    pub links: BTreeMap<(IpAddr, IpAddr), LinkFaults>,
    /// What a network partition does to open connections.
    pub partition_mode: PartitionMode,
    /// Faults of every storage partition not listed in `storage_partitions`.
    pub storage: StorageFaults,
    /// Faults of the named storage partitions.
    pub storage_partitions: BTreeMap<String, StorageFaults>,
    /// The clock of each listed node (a context made with
    /// [`Context::with_ip`]); the others read true virtual time.
    pub clocks: BTreeMap<IpAddr, ClockFaults>,
}

impl Faults {
    /// The faults of the link from `from` to `to`.
    pub fn link(&self, from: IpAddr, to: IpAddr) -> LinkFaults {
        self.links.get(&(from, to)).copied().unwrap_or(self.network)
    }

    /// The faults of storage partition `partition`.
    pub fn storage_partition(&self, partition: &str) -> StorageFaults {
        self.storage_partitions
            .get(partition)
            .copied()
            .unwrap_or(self.storage)
    }

    /// Panics, naming the setting, if one is out of range: a probability
    /// outside `0.0..=1.0` (or NaN), or a link whose latency plus jitter
    /// passes the end of virtual time (a send over it could never arrive).
    fn check(&self) {
        // Names are only spelled out for a setting that fails: checking the
        // default settings of every new runtime formats nothing.
        let links = std::iter::once((None, &self.network))
            .chain(self.links.iter().map(|(link, faults)| (Some(link), faults)));
        for (link, faults) in links {
            let name = || match link {
                None => String::from("network"),
                Some((from, to)) => format!("links[({from}, {to})]"),
            };
            check_probability(
                || format!("Faults::{}.dial_failure", name()),
                faults.dial_failure,
            );
            check_probability(|| format!("Faults::{}.reset", name()), faults.reset);
            // The default (no Byzantine behaviour) is valid: only other
            // settings are checked, with their name spelled out.
            if faults.byzantine != Default::default() {
                faults.byzantine.check(&format!("Faults::{}", name()));
            }
            let delay = faults.latency.saturating_add(faults.jitter);
            if delay > Duration::from_nanos(END_OF_TIME) {
                panic!(
                    "Faults::{}: latency {:?} plus jitter {:?} passes the end of virtual time ({:?} after the epoch)",
                    name(),
                    faults.latency,
                    faults.jitter,
                    Duration::from_nanos(END_OF_TIME)
                );
            }
        }
        let partitions = std::iter::once((None, &self.storage)).chain(
            self.storage_partitions
                .iter()
                .map(|(partition, faults)| (Some(partition), faults)),
        );
        for (ip, clock) in &self.clocks {
            clock.check(&format!("Faults::clocks[{ip}]"));
        }
        for (partition, storage) in partitions {
            let name = || match partition {
                None => String::from("storage"),
                Some(partition) => format!("storage_partitions[{partition:?}]"),
            };
            for (field, p) in [
                ("open", storage.open),
                ("read", storage.read),
                ("write", storage.write),
                ("sync", storage.sync),
                ("truncate", storage.truncate),
                ("remove", storage.remove),
                ("corrupt", storage.corrupt),
                ("misdirect", storage.misdirect),
            ] {
                check_probability(|| format!("Faults::{}.{field}", name()), p);
            }
        }
    }

    fn network_active(&self) -> bool {
        self.network.active() || self.links.values().any(LinkFaults::active)
    }

    fn storage_active(&self) -> bool {
        self.storage.active() || self.storage_partitions.values().any(StorageFaults::active)
    }

    fn clocks_active(&self) -> bool {
        self.clocks
            .values()
            .any(|clock| *clock != ClockFaults::default())
    }
}

/// Where [`Runner::start_until`](super::Runner::start_until) stops a run, as
/// a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// After this many task polls (of this runtime instance).
    AfterPolls(u64),
    /// At the first scheduling round that starts at or after this virtual
    /// time (since the epoch). An idle runtime skips ahead to exactly this
    /// time, not past it; a busy one halts within one `cycle` of it. A time
    /// past the end of virtual time (about 292 years, `Duration::MAX`
    /// included) never comes: the run goes on as under `start`.
    At(Duration),
}

impl Context {
    /// A clone of this context whose dials come from `ip`: the listener
    /// sees the dialer at `ip:<ephemeral port>`, and the connection is
    /// subject to the faults and partitions of the links between `ip` and
    /// the listener's IP. Tasks spawned with the clone inherit it. (Other
    /// contexts dial from `127.0.0.1`.)
    pub fn with_ip(&self, ip: IpAddr) -> Self {
        Self {
            runtime: self.runtime.clone(),
            ip,
        }
    }

    /// The fault settings in force.
    pub fn faults(&self) -> Faults {
        self.runtime.faults.get()
    }

    /// Replaces the fault settings. Open connections and blobs follow the
    /// new settings from their next operation; partitions in force stay.
    pub fn set_faults(&self, faults: Faults) {
        audit(&self.runtime.core, what::SETTINGS, &[]);
        self.runtime.faults.set(faults);
    }

    /// Cuts every IP of `a` off from every IP of `b` (both ways) until
    /// [`Context::heal`]: dials between them fail with
    /// `Error::ConnectionFailed`, and open connections between them are
    /// reset or stall, as [`Faults::partition_mode`] says.
    pub fn partition(&self, a: &[IpAddr], b: &[IpAddr]) {
        let runtime = &*self.runtime;
        let mut sides = Vec::with_capacity(16 * (a.len() + b.len()) + 8);
        sides.extend_from_slice(&(a.len() as u64).to_le_bytes());
        for ip in a.iter().chain(b) {
            sides.extend_from_slice(&match ip {
                IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
                IpAddr::V6(ip) => ip.octets(),
            });
        }
        audit(&runtime.core, what::CUT, &sides);
        runtime.faults.cut(a, b);
        if runtime.faults.cut_mode() == PartitionMode::Reset {
            runtime.network.reset_cut();
        }
    }

    /// Removes every partition; stalled connections deliver what they held.
    pub fn heal(&self) {
        audit(&self.runtime.core, what::HEAL, &[]);
        self.runtime.faults.heal();
    }
}

/// Bytes per sector: the unit misdirected writes are off by.
pub const SECTOR: u64 = 512;

/// Words of the audit events this module emits (kind [`kind::FAULT`]).
pub(crate) mod what {
    pub const DIAL: u64 = 1;
    pub const RESET: u64 = 2;
    pub const CUT: u64 = 3;
    pub const HEAL: u64 = 4;
    pub const OPEN: u64 = 5;
    pub const READ: u64 = 6;
    pub const WRITE: u64 = 7;
    pub const SYNC: u64 = 8;
    pub const TRUNCATE: u64 = 9;
    pub const REMOVE: u64 = 10;
    pub const CORRUPT: u64 = 11;
    pub const MISDIRECT: u64 = 12;
    pub const TORN: u64 = 13;
    pub const SETTINGS: u64 = 14;
    pub const CLOCK: u64 = 15;
    pub const BYZANTINE: u64 = 16;
    pub const HOOK: u64 = 17;
}

/// Folds an injected fault into the auditor.
pub(crate) fn audit(core: &Core, what: u64, bytes: &[u8]) {
    core.audit(kind::FAULT, what, bytes);
}

/// Panics, naming `setting`, unless `p` is a probability.
fn check_probability(setting: impl FnOnce() -> String, p: f64) {
    if !(0.0..=1.0).contains(&p) {
        panic!("{} is {p}, not a probability in 0.0..=1.0", setting());
    }
}

/// A uniform number in `0..n` from the runtime's generator (`n == 1`
/// draws nothing): a jitter draw.
fn below(core: &Core, n: u64) -> u64 {
    match n {
        0 | 1 => 0,
        // The bias of a plain modulo is below 2^-40 for the small ranges
        // used here, far under anything a test could observe.
        n => core.next_u64() % n,
    }
}

/// Nanoseconds in `duration`, saturating at `u64::MAX` (a delay past the
/// end of the virtual clock never arrives, which is what it means).
fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// When the bytes sent in one direction of one connection arrive: the
/// link's bandwidth queue and the arrival time of the last send.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ArrivalClock {
    /// When the link finishes carrying what was already sent (bandwidth).
    free: u64,
    /// When the last send arrives.
    last: u64,
}

impl ArrivalClock {
    /// When `len` bytes sent at `now` over a link with `faults` arrive.
    /// Never earlier than anything sent before on this lane.
    pub(crate) fn arrival(
        &mut self,
        core: &Core,
        faults: &LinkFaults,
        len: usize,
        now: u64,
    ) -> u64 {
        let mut start = now;
        if let Some(bandwidth) = faults.bandwidth {
            let bits = (len as u128) * 1_000_000_000;
            let busy = (bits / u128::from(bandwidth.max(1))).min(u128::from(u64::MAX)) as u64;
            start = self.free.max(now).saturating_add(busy);
            self.free = start;
        }
        let jitter = match saturating_nanos(faults.jitter) {
            0 => 0,
            jitter => below(core, jitter.saturating_add(1)),
        };
        let arrival = start
            .saturating_add(saturating_nanos(faults.latency))
            .saturating_add(jitter)
            .max(self.last);
        self.last = arrival;
        arrival
    }
}

/// Network partitions in force: unordered pairs of IPs that cannot talk.
#[derive(Default)]
struct Cuts {
    pairs: BTreeSet<(IpAddr, IpAddr)>,
    /// Who waits for a heal (stalled lanes).
    waiting: Vec<Waker>,
}

fn pair(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The live fault state of the simulated hardware.
pub(crate) struct Injector {
    config: Mutex<Faults>,
    /// Bumped by every change of `config`, so cached settings notice.
    generation: AtomicU64,
    /// Some link fault is configured, or some cut is in force.
    network: AtomicBool,
    /// Some storage fault is configured.
    storage: AtomicBool,
    /// Some node has a clock of its own.
    clocks: AtomicBool,
    /// Byzantine hooks (`network/byzantine.rs`): a leaf lock.
    hooks: Hooks,
    /// Some Byzantine hook is set.
    hooked: AtomicBool,
    cuts: Mutex<Cuts>,
    /// The run's timeline log, once something draws the run (faults that
    /// fire are logged here, with what the network and the harness did).
    log: OnceLock<Arc<Log>>,
}

impl Injector {
    /// Asks whether the fault `name` fires, with probability `p`, on the
    /// node `lane` (see `decision.rs`): its parameters if it does.
    pub(crate) fn decide(
        &self,
        core: &Core,
        lane: IpAddr,
        name: fmt::Arguments<'_>,
        p: f64,
    ) -> Option<Fault> {
        let param = core.fault(&name, p);
        if let Some(log) = self.log.get() {
            if p > 0.0 {
                log.asked(core.now(), lane, &name, param.is_some());
            }
        }
        param.map(Fault::new)
    }

    /// The run's timeline log, if the run is drawn.
    #[inline]
    pub(crate) fn log(&self) -> Option<&Log> {
        self.log.get().map(|log| &**log)
    }

    /// Starts logging the run for its timeline (a no-op if it is already).
    pub(crate) fn start_log(&self) {
        let _ = self.log.set(Arc::default());
    }

    pub(crate) fn new(faults: Faults) -> Self {
        // What `set` would leave on a new injector (no cut, no hook yet),
        // without its locks: every runtime builds one.
        faults.check();
        Self {
            network: AtomicBool::new(faults.network_active()),
            storage: AtomicBool::new(faults.storage_active()),
            clocks: AtomicBool::new(faults.clocks_active()),
            config: Mutex::new(faults),
            generation: AtomicU64::new(1),
            hooks: Hooks::default(),
            hooked: AtomicBool::new(false),
            cuts: Mutex::new(Cuts::default()),
            log: OnceLock::new(),
        }
    }

    /// Replaces the settings (partitions in force stay).
    pub(crate) fn set(&self, faults: Faults) {
        faults.check();
        // Lock order: settings, then cuts.
        let mut config = self.config.lock();
        let cut = !self.cuts.lock().pairs.is_empty();
        let hooked = self.hooked.load(Ordering::Acquire);
        self.network
            .store(faults.network_active() || cut || hooked, Ordering::Release);
        self.storage
            .store(faults.storage_active(), Ordering::Release);
        self.clocks.store(faults.clocks_active(), Ordering::Release);
        *config = faults;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The current settings.
    pub(crate) fn get(&self) -> Faults {
        self.config.lock().clone()
    }

    /// Changes to the settings so far (see [`Injector::link`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the network may misbehave at all (one atomic load).
    pub(crate) fn network_active(&self) -> bool {
        self.network.load(Ordering::Acquire)
    }

    /// Whether the disk may misbehave at all (one atomic load).
    pub(crate) fn storage_active(&self) -> bool {
        self.storage.load(Ordering::Acquire)
    }

    /// The faults of the link from `from` to `to`, with the generation they
    /// belong to.
    pub(crate) fn link(&self, from: IpAddr, to: IpAddr) -> (LinkFaults, u64) {
        let config = self.config.lock();
        (config.link(from, to), self.generation())
    }

    /// What a cut does to the connections already open across it.
    pub(crate) fn cut_mode(&self) -> PartitionMode {
        self.config.lock().partition_mode
    }

    /// The Byzantine hooks in force.
    pub(crate) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Whether some Byzantine hook is set (one atomic load).
    pub(crate) fn hooked(&self) -> bool {
        self.hooked.load(Ordering::Acquire)
    }

    /// Notes that hooks were set or removed.
    pub(crate) fn hooks_changed(&self) {
        // Lock order: settings, then cuts (as in `set`), then hooks.
        let config = self.config.lock();
        let cut = !self.cuts.lock().pairs.is_empty();
        let hooked = !self.hooks.is_empty();
        self.hooked.store(hooked, Ordering::Release);
        self.network
            .store(config.network_active() || cut || hooked, Ordering::Release);
    }

    /// Whether some node has a clock of its own (one atomic load).
    #[inline]
    pub(crate) fn clocks_active(&self) -> bool {
        self.clocks.load(Ordering::Acquire)
    }

    /// The clock of node `ip`, if it has one.
    pub(crate) fn clock(&self, ip: IpAddr) -> Option<ClockFaults> {
        if !self.clocks_active() {
            return None;
        }
        self.config.lock().clocks.get(&ip).cloned()
    }

    /// The faults of a storage partition (all off unless storage is active).
    pub(crate) fn storage(&self, partition: &str) -> StorageFaults {
        if !self.storage_active() {
            return StorageFaults::default();
        }
        self.config.lock().storage_partition(partition)
    }

    /// Cuts every IP of `a` off from every IP of `b` (a network partition).
    pub(crate) fn cut(&self, a: &[IpAddr], b: &[IpAddr]) {
        let mut cuts = self.cuts.lock();
        for &x in a {
            for &y in b {
                if x != y {
                    cuts.pairs.insert(pair(x, y));
                }
            }
        }
        if !cuts.pairs.is_empty() {
            self.network.store(true, Ordering::Release);
        }
    }

    /// Removes every cut, and wakes whoever waits for it.
    pub(crate) fn heal(&self) {
        let waiting = {
            // Lock order: settings, then cuts (as in `set`).
            let config = self.config.lock();
            let mut cuts = self.cuts.lock();
            cuts.pairs.clear();
            let hooked = self.hooked.load(Ordering::Acquire);
            self.network
                .store(config.network_active() || hooked, Ordering::Release);
            std::mem::take(&mut cuts.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }

    /// Whether `a` and `b` are cut off from each other.
    pub(crate) fn is_cut(&self, a: IpAddr, b: IpAddr) -> bool {
        self.network_active() && self.cuts.lock().pairs.contains(&pair(a, b))
    }

    /// Ready once `a` and `b` are not cut off from each other.
    pub(crate) fn poll_joined(&self, a: IpAddr, b: IpAddr, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut cuts = self.cuts.lock();
        if !cuts.pairs.contains(&pair(a, b)) {
            return Poll::Ready(());
        }
        if !cuts.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            cuts.waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_executor::Uniform;
    use std::net::Ipv4Addr;

    fn core(seed: u64) -> Core {
        commonware_executor::RunLoop::new(commonware_executor::CoreConfig {
            start: 0,
            cycle: 1,
            deadline: None,
            scheduler: Box::new(Uniform::new(seed)),
        })
        .core()
        .clone()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn impossible_faults_are_not_asked_and_certain_ones_fire() {
        let core = core(1);
        let injector = Injector::new(Faults::default());
        injector.start_log();
        let digest = core.digest();
        for p in [0.0, -1.0, f64::NAN] {
            assert!(injector
                .decide(&core, ip(1), format_args!("x"), p)
                .is_none());
        }
        assert_eq!(core.digest(), digest, "not asked: nothing audited");
        assert!(injector
            .decide(&core, ip(1), format_args!("x"), 1.0)
            .is_some());
        assert_ne!(core.digest(), digest, "a fault that fires is audited");
        let timeline = injector.log().unwrap().timeline(0, None, &[]);
        assert_eq!(timeline.events.len(), 1, "only the ask with p > 0 counted");
        // Faults never touch the random numbers `Context` hands out.
        let (a, b) = (self::core(5), self::core(5));
        for i in 0..100 {
            injector.decide(&a, ip(1), format_args!("y {i}"), 0.5);
        }
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn decisions_match_their_probability() {
        let core = core(7);
        let injector = Injector::new(Faults::default());
        let hits = (0..100_000)
            .filter(|_| {
                injector
                    .decide(&core, ip(1), format_args!("p"), 0.3)
                    .is_some()
            })
            .count();
        assert!((29_000..31_000).contains(&hits), "{hits}");
    }

    #[test]
    fn arrivals_never_reorder() {
        let core = core(3);
        let faults = LinkFaults {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(20),
            ..LinkFaults::default()
        };
        let mut lane = ArrivalClock::default();
        let mut last = 0;
        for now in (0..1000).map(|i| i * 1_000_000) {
            let arrival = lane.arrival(&core, &faults, 10, now);
            assert!(arrival >= now + 5_000_000 && arrival <= now + 25_000_000 || arrival == last);
            assert!(arrival >= last);
            last = arrival;
        }
    }

    #[test]
    fn bandwidth_queues_sends() {
        let core = core(3);
        let faults = LinkFaults {
            bandwidth: Some(1000),
            ..LinkFaults::default()
        };
        let mut lane = ArrivalClock::default();
        // 500 bytes at 1000 B/s: half a second each, back to back.
        assert_eq!(lane.arrival(&core, &faults, 500, 0), 500_000_000);
        assert_eq!(lane.arrival(&core, &faults, 500, 0), 1_000_000_000);
        assert_eq!(
            lane.arrival(&core, &faults, 500, 3_000_000_000),
            3_500_000_000
        );
    }

    #[test]
    fn settings_and_cuts_switch_the_fast_path() {
        let injector = Injector::new(Faults::default());
        assert!(!injector.network_active() && !injector.storage_active());
        injector.cut(&[ip(1)], &[ip(2), ip(3)]);
        assert!(injector.network_active());
        assert!(injector.is_cut(ip(3), ip(1)));
        assert!(!injector.is_cut(ip(2), ip(3)));
        injector.heal();
        assert!(!injector.network_active() && !injector.is_cut(ip(1), ip(2)));

        let mut faults = Faults::default();
        faults.storage_partitions.insert(
            "p".into(),
            StorageFaults {
                torn: true,
                ..StorageFaults::default()
            },
        );
        faults.links.insert(
            (ip(1), ip(2)),
            LinkFaults {
                reset: 0.5,
                ..LinkFaults::default()
            },
        );
        let generation = injector.generation();
        injector.set(faults);
        assert!(injector.generation() > generation);
        assert!(injector.network_active() && injector.storage_active());
        assert!(injector.storage("p").torn && !injector.storage("q").torn);
        assert_eq!(injector.link(ip(1), ip(2)).0.reset, 0.5);
        assert_eq!(injector.link(ip(2), ip(1)).0.reset, 0.0);
    }
}
