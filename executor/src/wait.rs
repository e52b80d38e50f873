//! What a pending task waits on, as far as the runtime can know.
//!
//! # What this module owns
//! [`Wait`], the note kept per task (in `State::waits` at the task's slot
//! index, flagged by the slot's `noted`, so the slot itself stays small)
//! about the last thing its last poll registered a wake-up with: a timer of this executor (due at a
//! virtual time), the [`JoinHandle`](crate::JoinHandle) of another task, or
//! a backend's own note ([`WaitNote`]: a `recv` missing bytes on a
//! connection, a `stopped()` signal) made through [`Core::note_wait`]. The
//! stall report and the timeout report print it for every pending task, so
//! a run that stops making progress says why.
//!
//! # Invariants
//! * A note describes the task's last poll only: the run loop clears it
//!   when a poll starts, and the last wait registered during that poll
//!   wins. A task whose last poll noted nothing waits on something the
//!   runtime does not see (a channel, a lock, a waker held elsewhere).
//! * Noting never allocates, never audits and never draws: notes only
//!   describe, they cannot change a run.
//! * A note is taken only on the executor's own thread during a poll; from
//!   anywhere else (another thread, outside a run) noting does nothing.

use crate::core::{Core, Shared, State};
use std::fmt;

/// How a backend describes one kind of wait: a name for the kind and a
/// function that writes the note's word as text.
pub struct WaitNote {
    /// Writes the wait, given the word noted with it (e.g. "a recv on
    /// connection #3, 12 of 16 bytes missing").
    pub describe: fn(&mut fmt::Formatter<'_>, u64) -> fmt::Result,
}

/// What a task's last poll registered a wake-up with (see the module doc).
#[derive(Clone, Copy, Default)]
pub enum Wait {
    /// Nothing the runtime saw.
    #[default]
    Unknown,
    /// A timer of this executor, due at this virtual time (ns).
    Timer(u64),
    /// The join handle of the task with this sequence number.
    Task(u64),
    /// A backend's wait, with a word for its description.
    Note(&'static WaitNote, u64),
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Unknown => f.write_str("Unknown"),
            Wait::Timer(at) => write!(f, "Timer({at})"),
            Wait::Task(seq) => write!(f, "Task({seq})"),
            Wait::Note(note, word) => {
                f.write_str("Note(")?;
                (note.describe)(f, *word)?;
                f.write_str(")")
            }
        }
    }
}

impl State {
    /// Notes `wait` for the task being polled, if any.
    #[inline]
    pub(crate) fn note_wait(&mut self, wait: Wait) {
        let Some(current) = self.current else {
            return;
        };
        let Some(slot) = self.arena.get_mut(current) else {
            return;
        };
        slot.noted = true;
        let index = current.index() as usize;
        if self.waits.len() <= index {
            self.waits.resize(index + 1, Wait::Unknown);
        }
        self.waits[index] = wait;
    }
}

impl Shared {
    /// Notes `wait` for the task being polled, if this thread is running
    /// this executor's loop and a task is being polled; does nothing
    /// otherwise (never blocks).
    #[inline]
    pub(crate) fn note_wait(&self, wait: Wait) {
        let Some(guard) = self.state.try_lock() else {
            return;
        };
        let borrowed = guard.try_borrow_mut();
        if let Ok(mut state) = borrowed {
            state.note_wait(wait);
        }
    }
}

impl Core {
    /// Notes what the task being polled now waits on, for the stall and
    /// timeout reports (see [`Wait`]). Backends call it where a poll
    /// returns `Pending` on something the executor cannot see (a `recv`, a
    /// stop signal). Does nothing off the executor's thread or outside a
    /// poll; never audited.
    #[inline]
    pub fn note_wait(&self, wait: Wait) {
        self.shared.note_wait(wait);
    }
}
