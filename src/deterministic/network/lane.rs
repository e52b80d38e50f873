//! Delayed delivery: the [`Lane`] of one direction of a connection once
//! faults delay it, and the carrier task ([`carry`]) that delivers its
//! bytes to the receiving pipe at their arrival times.
//!
//! # Invariants
//! * Once a direction has a lane, every later send goes through it, and
//!   arrival times on a lane never decrease, so bytes never overtake each
//!   other.
//! * Nothing crosses a cut in `Stall` mode until `heal`; a reset wakes the
//!   carrier, which then drops what is in flight and stops.
//! * The carrier drops the pipe when it ends, so the receiver sees the end
//!   of the stream after the last byte sent.

use super::Connection;
use crate::{deterministic::faults, mocks, Error};
use futures::future::poll_fn;
use std::{
    collections::VecDeque,
    sync::Arc,
    task::{Poll, Waker},
};

/// One direction of a connection once faults delay it: the bytes in flight,
/// which its carrier task delivers to the receiving pipe at their arrival
/// times.
#[derive(Default)]
pub(super) struct Lane {
    /// The receiving pipe, handed over by the [`Sink`] when the carrier
    /// starts.
    pub(super) pipe: Option<mocks::Sink>,
    /// Bytes in flight with their arrival times (never decreasing).
    pub(super) queue: VecDeque<(u64, Vec<u8>)>,
    /// The carrier, while it waits for bytes or for a partition to heal.
    pub(super) carrier: Option<Waker>,
    /// The [`Sink`] is gone: deliver what is in flight, then close the pipe.
    pub(super) closed: bool,
    /// The receiving [`Stream`] is gone: sends fail.
    pub(super) broken: bool,
    pub(super) clock: faults::ArrivalClock,
}

/// Label of the tasks that carry delayed bytes.
pub(super) const CARRIER: &str = "network_carrier";

/// Stores `waker` in `slot` unless it is already there.
fn store_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(stored) => stored.clone_from(waker),
        None => *slot = Some(waker.clone()),
    }
}

/// Delivers one direction's delayed bytes, each at its arrival time and
/// none while a partition stalls the link. Ends, dropping the pipe (so the
/// receiver sees the end of the stream), once the sender is gone and every
/// byte arrived, or at once on a reset.
pub(super) async fn carry(conn: Arc<Connection>, direction: usize) {
    let (from, to) = conn.ends(direction);
    let lane = &conn.lanes[direction];
    loop {
        let next = poll_fn(|cx| {
            let mut lane = lane.lock();
            if conn.is_reset() {
                return Poll::Ready(None);
            }
            match lane.queue.front() {
                Some(&(at, _)) => Poll::Ready(Some(at)),
                None if lane.closed => Poll::Ready(None),
                None => {
                    store_waker(&mut lane.carrier, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(at) = next else {
            break;
        };
        conn.core.sleep_until(at).await;
        poll_fn(|cx| {
            if conn.is_reset() {
                return Poll::Ready(());
            }
            store_waker(&mut lane.lock().carrier, cx.waker());
            conn.faults.poll_joined(from, to, cx)
        })
        .await;
        let now = conn.core.now();
        let mut lane = lane.lock();
        if conn.is_reset() {
            break;
        }
        while lane.queue.front().is_some_and(|&(at, _)| at <= now) {
            let Some((_, bytes)) = lane.queue.pop_front() else {
                break;
            };
            let delivered = match &lane.pipe {
                Some(pipe) => pipe.push(&bytes),
                None => Err(Error::SendFailed),
            };
            if delivered.is_err() {
                lane.broken = true;
                lane.queue.clear();
            }
        }
    }
    let pipe = lane.lock().pipe.take();
    drop(pipe);
}
