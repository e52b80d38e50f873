//! Handles whose blob was removed: they keep working on their own copy, as a
//! descriptor of an unlinked file does, but can never publish into a blob
//! later created under the same name, neither by `sync`/`close` nor by a
//! crash with torn writes.

use super::{contents, hex_of, run};
use commonware_runtime::{
    deterministic::{Config, Context, Executor, Faults, Halt, StorageFaults},
    Blob, Clock, Error, Runner, Storage,
};
use std::time::Duration;

/// How the blob under a stale handle goes away.
#[derive(Clone, Copy, Debug)]
enum Removal {
    Blob,
    Partition,
}

impl Removal {
    const ALL: [Self; 2] = [Self::Blob, Self::Partition];

    async fn apply(self, context: &Context) {
        let name = match self {
            Self::Blob => Some(&b"b"[..]),
            Self::Partition => None,
        };
        context.remove("p", name).await.unwrap();
    }
}

fn blob_missing() -> Error {
    Error::BlobMissing("p".into(), hex_of(b"b"))
}

/// What a fresh `open` of `p`/`b` reads.
async fn durable(context: &Context) -> Vec<u8> {
    contents(&context.open("p", b"b").await.unwrap()).await
}

#[test]
fn a_stale_handle_cannot_publish_into_a_new_blob() {
    for removal in Removal::ALL {
        run(move |ctx| async move {
            let stale = ctx.open("p", b"b").await.unwrap();
            stale.write_at(b"stale", 0).await.unwrap();
            removal.apply(&ctx).await;
            let fresh = ctx.open("p", b"b").await.unwrap();
            fresh.write_at(b"fresh", 0).await.unwrap();
            fresh.sync().await.unwrap();
            // The stale handle still reads, writes and truncates its own copy.
            assert_eq!(contents(&stale).await, b"stale");
            stale.write_at(b"!", 5).await.unwrap();
            stale.truncate(6).await.unwrap();
            assert_eq!(stale.len().await, Ok(6));
            assert_eq!(stale.sync().await, Err(blob_missing()), "{removal:?}");
            assert_eq!(stale.close().await, Err(blob_missing()), "{removal:?}");
            assert_eq!(durable(&ctx).await, b"fresh", "{removal:?}");
            // The handle on the new blob is unaffected.
            fresh.write_at(b"F", 0).await.unwrap();
            fresh.close().await.unwrap();
            assert_eq!(durable(&ctx).await, b"Fresh");
        });
    }
}

#[test]
fn a_stale_clone_cannot_publish_into_a_new_blob() {
    for removal in Removal::ALL {
        run(move |ctx| async move {
            let stale = ctx.open("p", b"b").await.unwrap();
            let clone = stale.clone();
            clone.write_at(b"stale", 0).await.unwrap();
            removal.apply(&ctx).await;
            let fresh = ctx.open("p", b"b").await.unwrap();
            let fresh_clone = fresh.clone();
            fresh_clone.write_at(b"fresh", 0).await.unwrap();
            drop(fresh_clone);
            fresh.sync().await.unwrap();
            drop(stale);
            assert_eq!(clone.sync().await, Err(blob_missing()), "{removal:?}");
            assert_eq!(clone.close().await, Err(blob_missing()), "{removal:?}");
            assert_eq!(durable(&ctx).await, b"fresh", "{removal:?}");
        });
    }
}

#[test]
fn a_stale_handle_of_a_removed_partition_reports_it_missing() {
    run(|ctx| async move {
        let stale = ctx.open("p", b"b").await.unwrap();
        ctx.remove("p", None).await.unwrap();
        assert_eq!(stale.sync().await, Err(Error::PartitionMissing("p".into())));
        // Once the partition exists again, the blob is what is missing.
        let other = ctx.open("p", b"other").await.unwrap();
        assert_eq!(stale.sync().await, Err(blob_missing()));
        other.close().await.unwrap();
        assert_eq!(ctx.scan("p").await.unwrap(), vec![b"other".to_vec()]);
    });
}

fn torn(seed: u64) -> Config {
    Config {
        seed,
        faults: Faults {
            storage: StorageFaults {
                torn: true,
                ..StorageFaults::default()
            },
            ..Faults::default()
        },
        ..Config::default()
    }
}

/// Gives the stale handle several unsynced changes, so that seeds tear
/// different prefixes of them.
async fn scribble(stale: &impl Blob) {
    stale.write_at(b"stale", 0).await.unwrap();
    stale.write_at(b"STALE", 5).await.unwrap();
    stale.truncate(3).await.unwrap();
    stale.write_at(b"more", 3).await.unwrap();
}

#[test]
fn a_dropped_stale_handle_tears_into_nothing() {
    for seed in 0..200 {
        for removal in Removal::ALL {
            let (runner, ctx, _) = Executor::init(torn(seed));
            runner.start(async move {
                let stale = ctx.open("p", b"b").await.unwrap();
                scribble(&stale).await;
                removal.apply(&ctx).await;
                let fresh = ctx.open("p", b"b").await.unwrap();
                fresh.write_at(b"fresh", 0).await.unwrap();
                fresh.sync().await.unwrap();
                drop(stale);
                assert_eq!(durable(&ctx).await, b"fresh", "seed {seed} {removal:?}");
                assert_eq!(contents(&fresh).await, b"fresh");
            });
        }
    }
}

#[test]
fn a_crash_with_a_stale_handle_recovers_only_the_new_blob() {
    for seed in 0..50 {
        for removal in Removal::ALL {
            let (runner, ctx, _) = Executor::init(torn(seed));
            let root = ctx.clone();
            let crashed = runner.start_until(Halt::At(Duration::from_secs(1)), async move {
                let stale = root.open("p", b"b").await.unwrap();
                scribble(&stale).await;
                removal.apply(&root).await;
                let fresh = root.open("p", b"b").await.unwrap();
                fresh.write_at(b"fresh", 0).await.unwrap();
                fresh.sync().await.unwrap();
                // Unsynced, so a crash may tear it into the new blob.
                fresh.write_at(b"F", 0).await.unwrap();
                root.sleep(Duration::from_secs(10)).await;
                drop((stale, fresh));
            });
            assert_eq!(crashed, None);
            let (runner, ctx, _) = ctx.recover();
            let recovered = runner.start(async move {
                assert_eq!(ctx.scan("p").await.unwrap(), vec![b"b".to_vec()]);
                durable(&ctx).await
            });
            assert!(
                recovered == b"fresh" || recovered == b"Fresh",
                "seed {seed} {removal:?}: {:?}",
                String::from_utf8_lossy(&recovered)
            );
        }
    }
}
