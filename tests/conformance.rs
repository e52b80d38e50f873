//! One conformance suite for both runtimes.
//!
//! Every behaviour both runtimes promise is written once, as an async
//! function generic over the traits (`tasks`, `network`, `storage`,
//! `metrics`), and instantiated below for each runtime: `on_tokio::*` runs
//! it on a fresh Tokio runtime over real loopback TCP and files in a scratch
//! directory, `on_deterministic::*` on a fresh deterministic runtime. A
//! behaviour that only one runtime has (panics, timeouts, recovery, disks)
//! is tested beside that runtime, not here.

#[path = "conformance/metrics.rs"]
mod metrics;
#[path = "conformance/network.rs"]
mod network;
#[path = "conformance/storage.rs"]
mod storage;
#[path = "conformance/support.rs"]
mod support;
#[path = "conformance/tasks.rs"]
mod tasks;

use commonware_runtime::{deterministic, tokio, Runner};
use prometheus_client::registry::Registry;
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};
use support::Scratch;

/// Runs `check` as the root task of a fresh Tokio runtime whose storage is
/// a scratch directory, removed afterwards.
fn run_tokio<F, Fut>(check: F)
where
    F: FnOnce(tokio::Context, Arc<Mutex<Registry>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let scratch = Scratch::new();
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (runner, context) = tokio::Executor::init(tokio::Config {
        registry: registry.clone(),
        storage_directory: scratch.path().to_path_buf(),
        // Failures show up as errors within the test's patience.
        read_timeout: Duration::from_secs(20),
        write_timeout: Duration::from_secs(20),
        ..tokio::Config::default()
    });
    runner.start(check(context, registry));
}

/// Runs `check` as the root task of a fresh deterministic runtime, with a
/// virtual-time budget so that a hang fails instead of stalling the suite.
fn run_deterministic<F, Fut>(check: F)
where
    F: FnOnce(deterministic::Context, Arc<Mutex<Registry>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (runner, context, _) = deterministic::Executor::init(deterministic::Config {
        registry: registry.clone(),
        timeout: Some(Duration::from_secs(600)),
        ..deterministic::Config::default()
    });
    runner.start(check(context, registry));
}

/// Instantiates every check of the suite for one runtime: a module
/// `$backend` with one `#[test]` per check, run through `$run` (or, for
/// checks of the runner itself, on the `(runner, context)` that `$init`
/// makes).
macro_rules! instantiate {
    ($backend:ident, $run:ident, $init:expr) => {
        instantiate!(@tests $backend, $run, $init,
            tasks: [
                spawn_returns_value,
                task_runs_without_await,
                abort_closes_handle,
                abort_after_finish_keeps_value,
                root_finishes_before_tasks,
                stop_signals_every_waiter,
                sleep_advances_clock,
                sleep_until_deadline,
                sleepers_wake_in_deadline_order,
                select_on_handle,
                many_tasks_complete,
                governor_clock_is_current,
            ],
            network: [
                dial_accept_exchange,
                bind_twice_fails_until_dropped,
                dial_unbound_fails,
                recv_is_exact_length,
                closed_peer_delivers_then_fails,
                send_to_closed_peer_fails,
                half_close,
                recv_is_cancel_safe,
                many_connections,
            ],
            storage: [
                write_read_sync_reopen,
                write_past_end_zero_fills,
                read_past_end_fails,
                offsets_overflow,
                truncate_shrinks_and_grows,
                clones_share_state,
                scan_is_sorted_and_names_are_bytes,
                missing_partition_and_blob_errors,
                remove_blobs_and_partitions,
                sync_after_remove_fails,
                partitions_are_independent,
            ],
        );
    };
    (@tests $backend:ident, $run:ident, $init:expr, $($module:ident: [$($check:ident),* $(,)?]),* $(,)?) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[test]
                        fn $check() {
                            crate::$run(|ctx, _| crate::$module::$check(ctx));
                        }
                    )*
                }
            )*

            #[test]
            fn metrics_report_real_values() {
                crate::$run(crate::metrics::metrics_report_real_values);
            }

            #[test]
            fn context_outlives_runner() {
                let (runner, context) = $init;
                crate::tasks::context_outlives_runner(runner, context);
            }
        }
    };
}

instantiate!(
    on_tokio,
    run_tokio,
    commonware_runtime::tokio::Executor::default()
);
instantiate!(on_deterministic, run_deterministic, {
    let (runner, context, _) = commonware_runtime::deterministic::Executor::default();
    (runner, context)
});
