//! A criterion measurement of the calling thread's CPU time.
//!
//! The deterministic runtimes and tokio's current_thread runtime run every
//! task on the thread that starts them, so that thread's CPU time (user and
//! system, page faults included) is the whole cost of a workload. Unlike
//! wall-clock time it does not grow while other processes hold the cores,
//! so ratios between runtimes measured minutes apart stay comparable on a
//! busy machine.

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use std::time::Duration;

/// Only lends its duration formatter (nanoseconds, like ours).
static WALL: WallTime = WallTime;

/// CPU time of the benchmarking thread.
pub struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }

    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
