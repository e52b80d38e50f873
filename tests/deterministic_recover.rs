//! `Context::recover()`: synced storage survives a simulated crash, unsynced
//! writes do not; time, the random stream and the auditor carry over; tasks
//! and the network start fresh.

use commonware_runtime::{
    deterministic::{Context, Executor},
    Blob, Clock, Error, Listener, Network, Runner, Spawner, Storage,
};
use rand::RngCore;
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    panic::{catch_unwind, AssertUnwindSafe},
    time::Duration,
};

async fn contents(context: &Context, partition: &str, name: &[u8]) -> Vec<u8> {
    let blob = context.open(partition, name).await.unwrap();
    let mut buf = vec![0u8; blob.len().await.unwrap() as usize];
    blob.read_at(&mut buf, 0).await.unwrap();
    buf
}

#[test]
fn synced_data_survives_and_unsynced_does_not() {
    let (executor, context, _) = Executor::default();
    let context = executor.start(async move {
        let blob = context.open("p", b"log").await.unwrap();
        blob.write_at(b"committed", 0).await.unwrap();
        blob.sync().await.unwrap();
        blob.write_at(b" and lost", 9).await.unwrap();
        assert_eq!(blob.len().await.unwrap(), 18);
        let closed = context.open("p", b"closed").await.unwrap();
        closed.write_at(b"closed", 0).await.unwrap();
        closed.close().await.unwrap();
        let never = context.open("p", b"never").await.unwrap();
        never.write_at(b"never synced", 0).await.unwrap();
        // The handles are still open (and dirty) when the "power" goes.
        context.spawn("holder", async move {
            let _keep = (blob, never);
            futures::future::pending::<()>().await;
        });
        context
    });
    let (executor, context, _) = context.recover();
    executor.start(async move {
        assert_eq!(contents(&context, "p", b"log").await, b"committed");
        assert_eq!(contents(&context, "p", b"closed").await, b"closed");
        // Opened, so it exists, but nothing of it was ever synced.
        assert_eq!(contents(&context, "p", b"never").await, b"");
        assert_eq!(
            context.scan("p").await.unwrap(),
            vec![b"closed".to_vec(), b"log".to_vec(), b"never".to_vec()]
        );
    });
}

#[test]
fn unsynced_truncate_and_removal_effects() {
    let (executor, context, _) = Executor::default();
    let context = executor.start(async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(&[5u8; 10_000], 0).await.unwrap();
        blob.sync().await.unwrap();
        blob.truncate(10).await.unwrap();
        blob.write_at(b"tail", 20_000).await.unwrap();
        // Removal is a partition-map operation: it is durable at once.
        let gone = context.open("q", b"gone").await.unwrap();
        gone.sync().await.unwrap();
        context.remove("q", None).await.unwrap();
        context
    });
    let (executor, context, _) = context.recover();
    executor.start(async move {
        assert_eq!(contents(&context, "p", b"b").await, vec![5u8; 10_000]);
        assert_eq!(
            context.scan("q").await,
            Err(Error::PartitionMissing("q".into()))
        );
    });
}

#[test]
fn old_handles_cannot_touch_the_recovered_disk() {
    let (executor, context, _) = Executor::default();
    let (context, blob) = executor.start(async move {
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"before", 0).await.unwrap();
        blob.sync().await.unwrap();
        (context, blob)
    });
    let (executor, context, _) = context.recover();
    executor.start(async move {
        // A handle that escaped the crashed runtime writes into its own past.
        blob.write_at(b"zombie", 0).await.unwrap();
        blob.sync().await.unwrap();
        assert_eq!(contents(&context, "p", b"b").await, b"before");
    });
}

#[test]
fn recovery_chains() {
    let (executor, context, _) = Executor::default();
    let mut context = executor.start(async move { context });
    for round in 0..5u8 {
        let (executor, next, _) = context.recover();
        context = executor.start(async move {
            let blob = next.open("p", b"b").await.unwrap();
            assert_eq!(blob.len().await.unwrap(), u64::from(round));
            blob.write_at(&[round], u64::from(round)).await.unwrap();
            blob.sync().await.unwrap();
            // Unsynced garbage past the synced end.
            blob.write_at(&[0xEE; 3], u64::from(round) + 1)
                .await
                .unwrap();
            next
        });
    }
    let (executor, context, _) = context.recover();
    executor.start(async move {
        assert_eq!(contents(&context, "p", b"b").await, vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn time_rng_and_auditor_carry_over() {
    let (executor, context, auditor) = Executor::seeded(9);
    let (context, before) = executor.start(async move {
        context.sleep(Duration::from_secs(3)).await;
        let blob = context.open("p", b"b").await.unwrap();
        blob.write_at(b"x", 0).await.unwrap();
        blob.sync().await.unwrap();
        let now = context.current();
        (context, now)
    });
    let state = auditor.state();
    let mut reference = {
        // The same program without the crash: the rng continues the same stream.
        let (executor, context, _) = Executor::seeded(9);
        executor.start(async move {
            context.sleep(Duration::from_secs(3)).await;
            let blob = context.open("p", b"b").await.unwrap();
            blob.write_at(b"x", 0).await.unwrap();
            blob.sync().await.unwrap();
            context
        })
    };
    let (executor, recovered, recovered_auditor) = context.recover();
    assert_eq!(recovered_auditor.state(), state);
    assert_eq!(auditor.state(), state);
    assert!(recovered.current() >= before);
    let mut recovered_rng = recovered.clone();
    assert_eq!(recovered_rng.next_u64(), reference.next_u64());
    executor.start(async move {
        assert_eq!(contents(&recovered, "p", b"b").await, b"x");
    });
}

#[test]
fn network_starts_fresh() {
    let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1);
    let (executor, context, _) = Executor::default();
    let (context, listener) = executor.start(async move {
        let listener = context.bind(address).await.unwrap();
        let (_sink, _stream) = context.dial(address).await.unwrap();
        (context, listener)
    });
    let (executor, context, _) = context.recover();
    executor.start(async move {
        // The old listener is not in the new socket table: the address is
        // free, and dialers start again at the first ephemeral port.
        let mut fresh = context.bind(address).await.unwrap();
        let (_sink, _stream) = context.dial(address).await.unwrap();
        let (dialer, _, _) = fresh.accept().await.unwrap();
        assert_eq!(dialer.port(), 32768);
    });
    drop(listener);
}

#[test]
fn recover_before_finish_panics() {
    let (_executor, context, _) = Executor::default();
    let result = catch_unwind(AssertUnwindSafe(|| context.recover()));
    let message = result
        .err()
        .and_then(|e| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert_eq!(message, "execution is not finished");
}

#[test]
fn recover_twice_panics() {
    let (executor, context, _) = Executor::default();
    let context = executor.start(async move { context });
    let _ = context.clone().recover();
    let result = catch_unwind(AssertUnwindSafe(|| context.recover()));
    let message = result
        .err()
        .and_then(|e| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert_eq!(message, "runtime has already been recovered");
}
