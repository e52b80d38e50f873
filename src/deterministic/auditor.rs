//! [`Auditor`]: the determinism fingerprint of a run.
//!
//! The digest itself lives in the executor (it is updated on every poll,
//! under a lock the executor already holds). The auditor only points at the
//! current executor; `recover()` re-points it at the successor, which
//! continues the same digest, so one `Arc<Auditor>` follows a simulation
//! across restarts.

use commonware_executor::Core;
use parking_lot::Mutex;

/// Track the state of the runtime for determinism auditing.
pub struct Auditor {
    core: Mutex<Option<Core>>,
}

impl Auditor {
    pub(crate) fn new() -> Self {
        Self {
            core: Mutex::new(None),
        }
    }

    pub(crate) fn attach(&self, core: Core) {
        *self.core.lock() = Some(core);
    }

    /// Generate a representation of the current state of the runtime.
    ///
    /// This can be used to ensure that logic running on top
    /// of the runtime is interacting deterministically.
    pub fn state(&self) -> String {
        self.core
            .lock()
            .as_ref()
            .map(Core::digest)
            .unwrap_or_default()
    }
}
