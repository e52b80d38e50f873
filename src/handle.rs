//! [`Handle`]: the awaitable, abortable result of a spawned task.
//!
//! # What this module owns
//! The two ways a handle gets its task's result. Both executors deliver a
//! task's output through their own join handle, which [`Handle`] adopts (no
//! allocation beyond the executor's one block per task): the deterministic
//! executor's (`commonware_executor::JoinHandle`, whose executor also counts
//! the task's metrics) and Tokio's (which also reports a panic Tokio caught;
//! the Tokio backend wraps its tasks for metrics itself, `tokio::task`).
//!
//! # Invariants
//! * A handle resolves exactly once its task stops existing: `Ok(value)` if
//!   it completed, `Err(Error::Exited)` if it panicked and the backend caught
//!   it, `Err(Error::Closed)` if it was aborted or dropped unfinished
//!   (including when its runtime ended), so awaiting a handle never hangs on
//!   a task that will never run again.
//! * Aborting a task that already finished changes nothing.

use crate::Error;
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

/// Where a handle's result comes from.
enum Join<T> {
    /// The deterministic executor delivers it.
    Deterministic(commonware_executor::JoinHandle<T>),
    /// Tokio delivers it; the slot is `None` once the result has been taken.
    Tokio(Option<::tokio::task::JoinHandle<T>>),
}

/// Handle to a spawned task.
pub struct Handle<T>
where
    T: Send + 'static,
{
    join: Join<T>,
}

impl<T> Handle<T>
where
    T: Send + 'static,
{
    /// Aborts the task. Its handle then resolves to `Err(Error::Closed)`,
    /// unless the task had already finished.
    pub fn abort(&self) {
        match &self.join {
            Join::Deterministic(handle) => handle.abort(),
            Join::Tokio(Some(handle)) => handle.abort(),
            Join::Tokio(None) => {}
        }
    }

    /// The handle of a task of the deterministic executor.
    pub(crate) fn deterministic(handle: commonware_executor::JoinHandle<T>) -> Self {
        Self {
            join: Join::Deterministic(handle),
        }
    }

    /// The handle of a Tokio task. A task that panicked (Tokio caught it)
    /// resolves to `Err(Error::Exited)`; one Tokio cancelled (abort, runtime
    /// shutdown) to `Err(Error::Closed)`.
    pub(crate) fn tokio(handle: ::tokio::task::JoinHandle<T>) -> Self {
        Self {
            join: Join::Tokio(Some(handle)),
        }
    }
}

impl<T> Future for Handle<T>
where
    T: Send + 'static,
{
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.join {
            // A task dropped before completing (aborted, or its runtime
            // ended) has no output.
            Join::Deterministic(handle) => Pin::new(handle)
                .poll(cx)
                .map(|result| result.map_err(|_| Error::Closed)),
            Join::Tokio(slot) => {
                let Some(handle) = slot else {
                    return Poll::Ready(Err(Error::Closed));
                };
                let result = ready!(Pin::new(handle).poll(cx));
                *slot = None;
                Poll::Ready(match result {
                    Ok(value) => Ok(value),
                    Err(error) if error.is_panic() => Err(Error::Exited),
                    Err(_) => Err(Error::Closed),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_unpin_send_sync() {
        fn check<T: Unpin + Send + Sync>() {}
        check::<Handle<u8>>();
    }
}
