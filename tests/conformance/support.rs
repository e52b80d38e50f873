//! Helpers shared by the test crates that run on real sockets and disks
//! (`conformance` and `tokio_backend`): TCP ports that do not collide, and
//! scratch directories that clean up after themselves.

use commonware_runtime::{Error, Listener, Network, Sink, Stream};
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
};

/// First port handed out. Ports below 10 000 are left to services.
const FIRST_PORT: u32 = 10_000;

/// Ports handed out lie in `FIRST_PORT..END_PORT`: below Linux's ephemeral
/// range (32768..61000), which the deterministic runtime also reserves for
/// dialers, so a test's listener never meets an outgoing connection's port.
const END_PORT: u32 = 32_768;

/// A loopback port no other test of this process has used. Each process
/// starts at its own offset (from its pid) so that test binaries running at
/// the same time rarely meet; [`listen`] steps over the ports they do share.
pub fn port() -> u16 {
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = END_PORT - FIRST_PORT;
    let start = *START.get_or_init(|| (std::process::id() % 200) * 100);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (FIRST_PORT + (start + n) % span) as u16
}

/// A loopback address with a fresh [`port`].
pub fn address() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port()))
}

/// Binds a listener on a fresh loopback address, skipping ports that
/// something else on the machine holds.
pub async fn listen<L, Si, St>(network: &impl Network<L, Si, St>) -> (L, SocketAddr)
where
    L: Listener<Si, St>,
    Si: Sink,
    St: Stream,
{
    for _ in 0..64 {
        let address = address();
        match network.bind(address).await {
            Ok(listener) => return (listener, address),
            Err(Error::BindFailed) => continue,
            Err(err) => panic!("bind {address} failed: {err}"),
        }
    }
    panic!("no free loopback port after 64 attempts");
}

/// A fresh, empty directory under the system temp dir, removed (with its
/// contents) on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "commonware-runtime-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Left over by an earlier process with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
