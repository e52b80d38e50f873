//! Byzantine links: what a link may do to each `send` besides carrying it.
//!
//! Two sources decide: the built-in behaviours of [`Byzantine`] (a field of
//! [`LinkFaults`](crate::deterministic::LinkFaults)), each at its rate, and
//! a user hook set with [`Context::byzantine`] on a link or on every link
//! from a node, which sees each payload and returns an [`Action`] (so a
//! test can make a node equivocate). The built-ins decide first; a send
//! they leave alone goes to the hook.
//!
//! # Invariants
//! * The built-ins draw one number per send, and only on a link where one of
//!   their rates is above zero, so that a send's behaviours exclude each
//!   other and each happens at exactly its rate; a delay, a corrupted bit
//!   and a replayed payload draw one more each. With no rate set and no
//!   hook, nothing here runs.
//! * Every behaviour that is not `Pass` is folded into the auditor, with
//!   the connection direction and what it delivers instead.
//! * A hook that panics panics the task that sent, with a message naming
//!   the hook and the link.
//! * Bytes still never overtake each other within a connection: what a
//!   behaviour delivers goes through the connection's ordered path.

use crate::deterministic::{
    faults::{self, what, Injector},
    Context,
};
use commonware_executor::Core;
use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    time::Duration,
};

/// Rates of the built-in Byzantine behaviours of a link, per send. Their
/// sum is at most 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Byzantine {
    /// The payload is lost; the sender sees success.
    pub drop: f64,
    /// The payload arrives late, by up to `max_delay` (uniform), holding
    /// back what is sent after it.
    pub delay: f64,
    /// The longest extra delay of `delay`.
    pub max_delay: Duration,
    /// The payload arrives twice.
    pub duplicate: f64,
    /// One bit of the payload is flipped.
    pub corrupt: f64,
    /// An earlier payload of the same direction (one of the last
    /// [`REPLAY_WINDOW`]) arrives again after this one.
    pub replay: f64,
}

/// How many earlier payloads of a direction `replay` chooses from.
pub const REPLAY_WINDOW: usize = 16;

impl Byzantine {
    pub(crate) fn active(&self) -> bool {
        self.drop > 0.0
            || self.delay > 0.0
            || self.duplicate > 0.0
            || self.corrupt > 0.0
            || self.replay > 0.0
    }

    /// Panics, naming the setting (`name` is the link's), unless every
    /// rate is a probability, their sum at most 1, and `max_delay` within
    /// virtual time.
    pub(crate) fn check(&self, name: &str) {
        let rates = [
            ("drop", self.drop),
            ("delay", self.delay),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("replay", self.replay),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                panic!("{name}.byzantine.{field} is {rate}, not a probability in 0.0..=1.0");
            }
        }
        let sum: f64 = rates.iter().map(|(_, rate)| rate).sum();
        if sum > 1.0 + 1e-9 {
            panic!("{name}.byzantine: the rates sum to {sum}, more than 1");
        }
        if self.max_delay > Duration::from_nanos(commonware_executor::END_OF_TIME) {
            panic!(
                "{name}.byzantine.max_delay of {:?} passes the end of virtual time",
                self.max_delay
            );
        }
    }
}

/// What a link does to one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Carry it as sent.
    Pass,
    /// Lose it (the sender sees success).
    Drop,
    /// Carry it this much later (holding back what follows).
    Delay(Duration),
    /// Carry it twice.
    Duplicate,
    /// Carry it with one bit, chosen by the seed, flipped.
    Corrupt,
    /// Carry it, then an earlier payload of this direction chosen by the
    /// seed (just it, if there is none).
    Replay,
    /// Carry these bytes instead.
    Replace(Vec<u8>),
}

/// One send, as a hook sees it.
#[derive(Debug)]
pub struct Message<'a> {
    /// The sender's IP.
    pub from: IpAddr,
    /// The receiver's IP.
    pub to: IpAddr,
    /// The connection, numbered in dial order from 0.
    pub connection: u64,
    /// Whether the dialer of the connection is the sender.
    pub from_dialer: bool,
    /// The bytes sent.
    pub payload: &'a [u8],
}

type HookFn = dyn FnMut(&Message<'_>) -> Action + Send;

/// A user hook with its name.
struct Hook {
    name: String,
    hook: Mutex<Box<HookFn>>,
}

/// A link (`to` is `None` for every link from a node).
type Link = (IpAddr, Option<IpAddr>);

/// The hooks in force, by link.
#[derive(Default)]
pub(crate) struct Hooks {
    map: Mutex<BTreeMap<Link, Arc<Hook>>>,
}

impl Hooks {
    pub(crate) fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }

    /// The hook of the link from `from` to `to`, or of every link from
    /// `from`.
    fn get(&self, from: IpAddr, to: IpAddr) -> Option<Arc<Hook>> {
        let map = self.map.lock();
        map.get(&(from, Some(to)))
            .or_else(|| map.get(&(from, None)))
            .cloned()
    }
}

/// What one send delivers, in order, and how much later than planned.
pub(super) struct Deliveries {
    pub(super) payloads: Vec<Vec<u8>>,
    pub(super) delay: Duration,
}

/// Codes of the behaviours in the audit payload.
fn code(action: &Action) -> u8 {
    match action {
        Action::Pass => 0,
        Action::Drop => 1,
        Action::Delay(_) => 2,
        Action::Duplicate => 3,
        Action::Corrupt => 4,
        Action::Replay => 5,
        Action::Replace(_) => 6,
    }
}

/// Decides what the link does to `msg` (see the module invariants), and
/// remembers it in `history` for replays.
pub(super) fn decide(
    core: &Core,
    injector: &Injector,
    rates: &Byzantine,
    hooks: &Hooks,
    message: &Message<'_>,
    word: u64,
    history: &mut VecDeque<Vec<u8>>,
) -> Deliveries {
    let msg = message.payload;
    let mut action = Action::Pass;
    let (from, to) = (message.from, message.to);
    let total = rates.drop + rates.delay + rates.duplicate + rates.corrupt + rates.replay;
    let mut fault = injector.decide(core, from, format_args!("byzantine {from}>{to}"), total);
    if let Some(fault) = &mut fault {
        // Which action: a uniform in [0, total) against the cumulative
        // rates, from the fault's own parameters.
        let u = fault.unit() * total.min(1.0);
        let mut edge = 0.0;
        for (rate, candidate) in [
            (rates.drop, Action::Drop),
            (rates.delay, Action::Delay(Duration::ZERO)),
            (rates.duplicate, Action::Duplicate),
            (rates.corrupt, Action::Corrupt),
            (rates.replay, Action::Replay),
        ] {
            edge += rate;
            action = candidate;
            if u < edge {
                break;
            }
        }
        if action == Action::Delay(Duration::ZERO) {
            let max = u64::try_from(rates.max_delay.as_nanos()).unwrap_or(u64::MAX);
            let nanos = fault.below(max.saturating_add(1));
            action = Action::Delay(Duration::from_nanos(nanos));
        }
    }
    if action == Action::Pass {
        if let Some(hook) = hooks.get(message.from, message.to) {
            let call = catch_unwind(AssertUnwindSafe(|| (hook.hook.lock())(message)));
            action = call.unwrap_or_else(|payload| {
                let reason = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".into());
                panic!(
                    "Byzantine hook '{}' on the link {} -> {} panicked: {reason}",
                    hook.name, message.from, message.to
                )
            });
        }
    }
    let mut delay = Duration::ZERO;
    let payloads = match &action {
        Action::Pass => vec![msg.to_vec()],
        Action::Drop => Vec::new(),
        Action::Delay(by) => {
            delay = *by;
            vec![msg.to_vec()]
        }
        Action::Duplicate => vec![msg.to_vec(), msg.to_vec()],
        Action::Corrupt => {
            let mut bytes = msg.to_vec();
            if let (false, Some(fault)) = (bytes.is_empty(), &mut fault) {
                let bit = fault.below(bytes.len() as u64 * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            vec![bytes]
        }
        Action::Replay => {
            let mut payloads = vec![msg.to_vec()];
            if let (false, Some(fault)) = (history.is_empty(), &mut fault) {
                let index = fault.below(history.len() as u64) as usize;
                payloads.push(history[index].clone());
            }
            payloads
        }
        Action::Replace(bytes) => vec![bytes.clone()],
    };
    if action != Action::Pass {
        let mut audit = vec![code(&action)];
        audit.extend_from_slice(&(delay.as_nanos() as u64).to_le_bytes());
        for payload in &payloads {
            audit.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            audit.extend_from_slice(payload);
        }
        faults::audit(
            core,
            what::BYZANTINE,
            &[&word.to_le_bytes()[..], &audit].concat(),
        );
    }
    if history.len() == REPLAY_WINDOW {
        history.pop_front();
    }
    history.push_back(msg.to_vec());
    Deliveries { payloads, delay }
}

impl Context {
    /// Sets `hook` (named `name` in panics) on the link from `from` to `to`,
    /// or on every link from `from` without a hook of its own when `to` is
    /// `None`, replacing the hook there. It sees every send over the link
    /// that the built-in behaviours of
    /// [`LinkFaults::byzantine`](crate::deterministic::LinkFaults) leave
    /// alone, and decides what arrives. It must be deterministic (draw from
    /// a clone of this context if it needs randomness).
    pub fn byzantine<F>(&self, from: IpAddr, to: Option<IpAddr>, name: &str, hook: F)
    where
        F: FnMut(&Message<'_>) -> Action + Send + 'static,
    {
        let runtime = &*self.runtime;
        let mut audit = name.as_bytes().to_vec();
        audit.extend_from_slice(&ip_bytes(from));
        if let Some(to) = to {
            audit.extend_from_slice(&ip_bytes(to));
        }
        faults::audit(&runtime.core, what::HOOK, &audit);
        runtime.faults.hooks().map.lock().insert(
            (from, to),
            Arc::new(Hook {
                name: name.into(),
                hook: Mutex::new(Box::new(hook)),
            }),
        );
        runtime.faults.hooks_changed();
    }

    /// Removes every Byzantine hook.
    pub fn clear_byzantine(&self) {
        let runtime = &*self.runtime;
        faults::audit(&runtime.core, what::HOOK, &[]);
        runtime.faults.hooks().map.lock().clear();
        runtime.faults.hooks_changed();
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    }
}
