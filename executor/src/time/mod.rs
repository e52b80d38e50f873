//! Virtual time: the timer wheel and the sleeps that use it.
//!
//! Virtual time is a `u64` count of nanoseconds since the epoch. It starts
//! where the executor's configuration says, moves only inside the run loop
//! (by `cycle` after every round, or straight to the next deadline when
//! nothing is ready), and never goes backwards. Nothing here reads the wall
//! clock.
//!
//! * `wheel.rs`: [`Wheel`](wheel::Wheel), every pending timer, in
//!   deadline order.
//! * `sleep.rs`: [`Sleep`], the future a task awaits to let time pass.

/// The last virtual instant a run can reach, in nanoseconds since the
/// epoch (about 292 years). Keeping it at half the `u64` range means that
/// adding any one duration at most this long to a time at most this late
/// cannot overflow, so the run loop's arithmetic needs no overflow paths:
/// backends reject durations and deadlines beyond it where the user gives
/// them, and a run whose time passes it ends with a timeout failure.
pub const END_OF_TIME: u64 = u64::MAX / 2;

pub(crate) mod sleep;
pub(crate) mod wheel;

pub use sleep::Sleep;
