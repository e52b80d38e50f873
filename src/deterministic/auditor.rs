//! [`Auditor`], the determinism fingerprint of a run, and the audit event
//! kinds this backend folds into it ([`kind`]), with their names.
//!
//! The digest itself lives in the executor (it is updated on every poll,
//! under a lock the executor already holds). The auditor only points at the
//! current executor; `recover()` re-points it at the successor, which
//! continues the same digest, so one `Arc<Auditor>` follows a simulation
//! across restarts.
//!
//! # Invariants
//! * The kind numbers are part of every pinned auditor state: a kind's
//!   number never changes, and a new kind takes a number no other kind
//!   (of this backend or of the executor, which uses 1..=7) has taken.
//! * Every kind has exactly one name, in [`kind_name`], which divergence
//!   reports use.

use commonware_executor::{digest, Core};
use parking_lot::Mutex;

/// Audit event kinds of this backend (the executor uses 1..=7).
pub(crate) mod kind {
    pub const STOP: u8 = 16;
    pub const STOPPED: u8 = 17;

    // Network (network.rs).
    pub const BIND: u8 = 32;
    pub const DIAL: u8 = 33;
    pub const ACCEPT: u8 = 34;
    pub const SEND: u8 = 35;
    pub const RECV: u8 = 36;

    // Storage (storage/).
    pub const OPEN: u8 = 48;
    pub const REMOVE: u8 = 49;
    pub const SCAN: u8 = 50;
    pub const LEN: u8 = 51;
    pub const READ: u8 = 52;
    pub const WRITE: u8 = 53;
    pub const TRUNCATE: u8 = 54;
    pub const SYNC: u8 = 55;
    pub const CLOSE: u8 = 56;

    // Injected faults (faults.rs; the word says which).
    pub const FAULT: u8 = 64;
}

/// Name of an audit event kind: the executor's and this backend's.
pub(super) fn kind_name(kind: u8) -> String {
    use kind::*;
    let name = match kind {
        STOP => "stop",
        STOPPED => "stopped",
        BIND => "bind",
        DIAL => "dial",
        ACCEPT => "accept",
        SEND => "send",
        RECV => "recv",
        OPEN => "open",
        REMOVE => "remove",
        SCAN => "scan",
        LEN => "len",
        READ => "read",
        WRITE => "write",
        TRUNCATE => "truncate",
        SYNC => "sync",
        CLOSE => "close",
        FAULT => "fault",
        other => return digest::kind::name(other).map_or(format!("kind {other}"), str::to_string),
    };
    name.to_string()
}

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
    /// Two runs that interact with the runtime identically end in the same
    /// state, so comparing states checks that logic running on top of the
    /// runtime is deterministic.
    pub fn state(&self) -> String {
        self.core
            .lock()
            .as_ref()
            .map(Core::digest)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_cover_both_layers() {
        assert_eq!(kind_name(digest::kind::SPAWN), "spawn");
        assert_eq!(kind_name(kind::SEND), "send");
        assert_eq!(kind_name(250), "kind 250");
    }
}
