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

pub(crate) mod sleep;
pub(crate) mod wheel;

pub use sleep::Sleep;
