//! Metrics both runtimes report into `Config::registry`, read back from the
//! Prometheus text encoding.

use crate::support::listen;
use commonware_runtime::{Blob, Clock, Error, Listener, Network, Sink, Spawner, Storage, Stream};
use prometheus_client::{encoding::text::encode, registry::Registry};
use std::{
    future::pending,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The encoded registry.
fn encoded(registry: &Mutex<Registry>) -> String {
    let mut text = String::new();
    encode(&mut text, &registry.lock().unwrap()).expect("encode");
    text
}

/// The value of the sample `key` (name and labels, as encoded).
fn sample(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// Tasks (spawned, running, polls by label, with parent prefixes), network
/// and storage counters all show what the workload did.
pub async fn metrics_report_real_values<L, Si, St, B>(
    ctx: impl Spawner + Clock + Network<L, Si, St> + Storage<B>,
    registry: Arc<Mutex<Registry>>,
) where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
    B: Blob,
{
    // Tasks: three workers, each with a child; one task aborted.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let ctx2 = ctx.clone();
            ctx.spawn("worker", async move {
                ctx2.spawn("leaf", async {}).await.expect("leaf");
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let stuck = ctx.spawn("stuck", pending::<()>());
    ctx.sleep(Duration::from_millis(5)).await;
    let text = encoded(&registry);
    assert_eq!(sample(&text, r#"tasks_running{label="stuck"}"#), Some(1.0));
    stuck.abort();
    assert_eq!(stuck.await, Err(Error::Closed));

    // Network: one connection, 100 bytes in two sends, one recv.
    let (mut listener, addr) = listen(&ctx).await;
    let (dialed, accepted) = futures::join!(ctx.dial(addr), listener.accept());
    let (mut sink, _dialer_stream) = dialed.expect("dial");
    let (_, _listener_sink, mut stream) = accepted.expect("accept");
    sink.send(&[1; 60]).await.expect("send");
    sink.send(&[2; 40]).await.expect("send");
    let mut buf = [0u8; 100];
    stream.recv(&mut buf).await.expect("recv");

    // Storage: two writes of 10 bytes, one read of 5.
    let blob = ctx.open("metrics", b"blob").await.expect("open");
    blob.write_at(&[3; 10], 0).await.expect("write");
    blob.write_at(&[4; 10], 10).await.expect("write");
    blob.read_at(&mut [0; 5], 5).await.expect("read");
    let clone = blob.clone();
    let text = encoded(&registry);
    assert_eq!(sample(&text, "open_blobs"), Some(2.0));
    drop(clone);
    blob.close().await.expect("close");

    // The aborted task's gauge drops once its runtime has dropped it, which
    // on a multi-threaded runtime may take a moment after `abort`.
    let mut text = encoded(&registry);
    for _ in 0..200 {
        if sample(&text, r#"tasks_running{label="stuck"}"#) == Some(0.0) {
            break;
        }
        ctx.sleep(Duration::from_millis(10)).await;
        text = encoded(&registry);
    }
    let expect = [
        (r#"tasks_spawned_total{label="worker"}"#, 3.0),
        (r#"tasks_spawned_total{label="worker_leaf"}"#, 3.0),
        (r#"tasks_spawned_total{label="stuck"}"#, 1.0),
        (r#"tasks_running{label="worker"}"#, 0.0),
        (r#"tasks_running{label="worker_leaf"}"#, 0.0),
        (r#"tasks_running{label="stuck"}"#, 0.0),
        ("network_dials_total", 1.0),
        ("network_accepts_total", 1.0),
        ("network_sends_total", 2.0),
        ("network_recvs_total", 1.0),
        ("bandwidth_total", 100.0),
        ("storage_writes_total", 2.0),
        ("storage_write_bandwidth_total", 20.0),
        ("storage_reads_total", 1.0),
        ("storage_read_bandwidth_total", 5.0),
        ("open_blobs", 0.0),
    ];
    for (key, value) in expect {
        assert_eq!(sample(&text, key), Some(value), "{key} in\n{text}");
    }
    for label in ["worker", "worker_leaf"] {
        let key = format!(r#"task_polls_total{{label="{label}"}}"#);
        let polls = sample(&text, &key).unwrap_or_default();
        assert!(polls >= 1.0, "{key} = {polls} in\n{text}");
    }
}
