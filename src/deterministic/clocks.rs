//! Per-node clocks: [`ClockFaults`] gives a simulated node (a context made
//! with [`Context::with_ip`]) its own clock, off true virtual time by a
//! fixed offset, a drift rate and jumps at set times.
//!
//! A node's clock reads, at true virtual time `t` (nanoseconds since the
//! epoch), `t + offset + t * drift_ppm / 1_000_000 + (the jumps at or
//! before t)`. `current()` on the node reads it; `sleep(d)` lasts `d` by
//! it, that is `d * 1_000_000 / (1_000_000 + drift_ppm)` of true time (a
//! sleep, like one on a monotonic clock, does not move with jumps);
//! `sleep_until(t)` waits until the clock would read `t` if it made no
//! jump meanwhile.
//!
//! # Invariants
//! * With no clock configured, nothing here runs: `current()` and the
//!   sleeps cost one atomic load more and a run is identical, auditor state
//!   included, to one without clocks.
//! * Settings are checked when they are set (`ClockFaults::check`): a
//!   clock never reads before the epoch, never runs backwards between jumps
//!   (drift above -1,000,000 ppm), and starts, and lands from every jump,
//!   within virtual time; a clock whose offset or drift carries it past the
//!   end of virtual time panics, naming its settings, when it is read there.
//! * Every read of a node's clock is folded into the auditor with what it
//!   read. Drawing a clock ([`ClockFaults::draw`]) takes its numbers from
//!   the seeded generator, so a seed gives every node the same clock.
//! * Each offset, drift and jump is a separate field or list entry, so a
//!   shrinker can remove any one of them.

use super::{faults, Context};
use commonware_executor::END_OF_TIME;
use rand_core::RngCore;
use std::{net::IpAddr, time::Duration};

/// Parts per million: the unit of drift.
const MILLION: i128 = 1_000_000;

/// A step of a node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockJump {
    /// True virtual time (since the epoch) of the step.
    pub at: Duration,
    /// Nanoseconds the clock moves: forward if positive, backward if
    /// negative.
    pub by: i64,
}

/// The clock of one simulated node (everything zero: true virtual time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockFaults {
    /// Nanoseconds the clock reads ahead of true virtual time (behind if
    /// negative) from the start.
    pub offset: i64,
    /// How fast the clock runs, in parts per million: 100 gains 100 µs per
    /// true second, -100 loses as much. Above -1,000,000 (a clock never
    /// stops or runs backwards), at most 1,000,000.
    pub drift_ppm: i64,
    /// Steps of the clock, at true virtual times (in any order).
    pub jumps: Vec<ClockJump>,
}

impl ClockFaults {
    fn is_true_time(&self) -> bool {
        self.offset == 0 && self.drift_ppm == 0 && self.jumps.is_empty()
    }

    /// What the clock reads at true time `t`, before range checks.
    fn local(&self, t: u64) -> i128 {
        let t = i128::from(t);
        let jumps: i128 = self
            .jumps
            .iter()
            .filter(|jump| jump.at.as_nanos() as i128 <= t)
            .map(|jump| i128::from(jump.by))
            .sum();
        t + i128::from(self.offset) + t * i128::from(self.drift_ppm) / MILLION + jumps
    }

    /// True nanoseconds that `nanos` of this clock last (rounded up).
    fn true_nanos(&self, nanos: u64) -> u128 {
        let rate = (MILLION + i128::from(self.drift_ppm)) as u128;
        (u128::from(nanos) * MILLION as u128).div_ceil(rate)
    }

    /// Panics, naming the setting (`name` is the clock's), if the clock
    /// would read before the epoch or past the end of virtual time at its
    /// start or right after a jump, or if its drift is out of range.
    pub(crate) fn check(&self, name: &str) {
        if self.drift_ppm <= -MILLION as i64 || self.drift_ppm > MILLION as i64 {
            panic!(
                "{name}.drift_ppm is {}, not in -999999..=1000000 (a clock must run forwards)",
                self.drift_ppm
            );
        }
        let in_range = |value: i128| (0..=i128::from(END_OF_TIME)).contains(&value);
        // An offset (an i64) never passes the end of virtual time at the
        // start; a positive one reaches it later, where a read panics.
        if self.offset < 0 {
            panic!(
                "{name}.offset of {} ns moves the clock before the epoch",
                self.offset
            );
        }
        for (index, jump) in self.jumps.iter().enumerate() {
            let at = u64::try_from(jump.at.as_nanos())
                .ok()
                .filter(|at| *at <= END_OF_TIME);
            let Some(at) = at else {
                panic!(
                    "{name}.jumps[{index}].at of {:?} passes the end of virtual time",
                    jump.at
                );
            };
            let after = self.local(at);
            if !in_range(after) {
                panic!(
                    "{name}.jumps[{index}] (by {} ns at {:?}) moves the clock {}",
                    jump.by,
                    jump.at,
                    if after < 0 {
                        "before the epoch"
                    } else {
                        "past the end of virtual time"
                    }
                );
            }
        }
    }

    /// A clock drawn from `context`'s seeded generator: an offset in
    /// `-max_offset..=max_offset` (never before the epoch), a drift in
    /// `-max_drift_ppm..=max_drift_ppm`, and `jumps` jumps of up to
    /// `max_offset` either way at times in `0..horizon`.
    pub fn draw(
        context: &mut Context,
        max_offset: Duration,
        max_drift_ppm: u32,
        jumps: usize,
        horizon: Duration,
    ) -> Self {
        let max_offset = i64::try_from(max_offset.as_nanos()).unwrap_or(i64::MAX);
        let horizon = u64::try_from(horizon.as_nanos()).unwrap_or(u64::MAX);
        let signed = |context: &mut Context, max: i64| -> i64 {
            match max {
                0 => 0,
                max => {
                    let span = (max as u64).saturating_mul(2).saturating_add(1);
                    (context.next_u64() % span) as i64 - max
                }
            }
        };
        // Never before the epoch at the start.
        let offset = signed(context, max_offset).max(0);
        let drift_ppm = signed(context, i64::from(max_drift_ppm.min(999_999)));
        let mut drawn: Vec<(u64, i64)> = (0..jumps)
            .map(|_| {
                let at = match horizon {
                    0 => 0,
                    horizon => context.next_u64() % horizon,
                };
                (at, signed(context, max_offset))
            })
            .collect();
        drawn.sort_by_key(|(at, _)| *at);
        let mut clock = Self {
            offset,
            drift_ppm,
            jumps: Vec::with_capacity(jumps),
        };
        for (at, by) in drawn {
            // A jump that would carry the clock before the epoch stops at
            // it (the jumps so far are the earlier ones).
            let floor = clock.local(at);
            let by = by.max(i64::try_from(-floor).unwrap_or(i64::MIN));
            clock.jumps.push(ClockJump {
                at: Duration::from_nanos(at),
                by,
            });
        }
        clock
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    }
}

impl Context {
    /// This node's clock, when it has one that is not true time.
    fn clock(&self) -> Option<ClockFaults> {
        self.runtime
            .faults
            .clock(self.ip)
            .filter(|clock| !clock.is_true_time())
    }

    /// What this node's clock reads at true time `now` (audited).
    #[cold]
    pub(super) fn local_now(&self, now: u64) -> u64 {
        let Some(clock) = self.clock() else {
            return now;
        };
        let local = clock.local(now);
        let Some(local) = u64::try_from(local).ok().filter(|l| *l <= END_OF_TIME) else {
            panic!(
                "Faults::clocks[{}]: the clock (offset {} ns, drift {} ppm) reads {local} ns at {:?}, past the end of virtual time",
                self.ip,
                clock.offset,
                clock.drift_ppm,
                Duration::from_nanos(now)
            );
        };
        let mut bytes = [0; 24];
        bytes[..16].copy_from_slice(&ip_bytes(self.ip));
        bytes[16..].copy_from_slice(&local.to_le_bytes());
        faults::audit(&self.runtime.core, faults::what::CLOCK, &bytes);
        local
    }

    /// True virtual time at which this node's clock, read at true time
    /// `now`, would reach `deadline` if it made no jump meanwhile (`now`
    /// if it already has).
    #[cold]
    pub(super) fn true_deadline(&self, now: u64, deadline: u64) -> u64 {
        let Some(clock) = self.clock() else {
            return deadline;
        };
        match u64::try_from(i128::from(deadline) - clock.local(now)) {
            Ok(wait) if wait > 0 => {
                let wait = u64::try_from(clock.true_nanos(wait)).unwrap_or(u64::MAX);
                now.saturating_add(wait)
            }
            _ => now,
        }
    }

    /// True nanoseconds a sleep of `nanos` by this node's clock lasts.
    #[cold]
    pub(super) fn true_sleep(&self, nanos: u64) -> u64 {
        match self.clock() {
            Some(clock) => u64::try_from(clock.true_nanos(nanos)).unwrap_or(u64::MAX),
            None => nanos,
        }
    }
}
