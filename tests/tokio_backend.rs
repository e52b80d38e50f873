//! Behaviour only the tokio runtime has: real sockets that stall, reset or
//! time out, and real directories (names that could escape, the on-disk
//! layout, durability across runtimes, a full disk). What both runtimes
//! share is in the conformance suite.

#[path = "tokio_backend/network.rs"]
mod network;
#[path = "tokio_backend/storage.rs"]
mod storage;
#[path = "conformance/support.rs"]
mod support;

use commonware_runtime::{
    tokio::{Config, Context, Executor},
    Runner,
};
use std::{future::Future, path::Path, time::Duration};

/// Runs `f` on a fresh runtime storing under `directory`, with short
/// network timeouts.
fn run<F, Fut>(directory: &Path, f: F) -> Fut::Output
where
    F: FnOnce(Context) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (runner, context) = Executor::init(Config {
        storage_directory: directory.to_path_buf(),
        read_timeout: Duration::from_millis(200),
        write_timeout: Duration::from_millis(200),
        // Small pieces, so that large operations cross piece boundaries.
        maximum_buffer_size: 1000,
        ..Config::default()
    });
    runner.start(f(context))
}

/// Reachability points in production: `sometimes` and `reached` do
/// nothing, `always` panics when false, as in simulation.
#[test]
fn points_are_no_ops_except_a_false_always() {
    use commonware_runtime::Assertions;
    let scratch = support::Scratch::new();
    let directory = scratch.path().to_path_buf();
    run(&directory, |context| async move {
        context.sometimes("anything", true);
        context.sometimes("anything", false);
        context.reached("here");
        context.always("holds", true);
    });
    let result = std::panic::catch_unwind(|| {
        run(&directory, |context| async move {
            context.always("never false", false);
        })
    });
    let payload = result.unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(message, "always 'never false' failed");
}
