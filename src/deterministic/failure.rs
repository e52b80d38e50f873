//! The failure line: the one text, printed to stderr by a failing run and
//! shown by [`FailedRun`](super::FailedRun), that says how to reproduce a
//! failure.
//!
//! ```text
//! deterministic runtime panicked (seed=1234, strategy=pct(3)): lost update: counter=1
//!   in task 'worker1' at 12ms (virtual), auditor=…; rerun with this seed and strategy to reproduce
//! ```
//!
//! Under [`Strategy::Portfolio`](super::Strategy::Portfolio) the line also
//! names the member the seed ran (`strategy=portfolio(steps=37),
//! member=pct(3, steps=37)`): the seed and the portfolio reproduce the run,
//! and so do the seed and the member alone.
//!
//! # Invariants
//! * The line is made here and nowhere else: [`Runner`](super::Runner)
//!   prints it before a failure propagates, and `FailedRun`'s `Display`
//!   writes it (without the task: the panic payload a caught run gets does not name it).
//! * Everything in it comes from the run (seed, strategy name, message,
//!   virtual time, auditor state), never from the wall clock or the host.

use std::{any::Any, fmt, time::Duration};

/// The failure line of one run (see the module doc).
pub(super) struct FailureLine<'a> {
    pub(super) seed: u64,
    /// The strategy's name, as `Strategy`'s `Display` writes it.
    pub(super) strategy: &'a dyn fmt::Display,
    /// The member of a portfolio the seed ran, if the strategy is one.
    pub(super) member: Option<&'a dyn fmt::Display>,
    pub(super) message: &'a str,
    /// The label of the task that panicked, when known.
    pub(super) task: Option<&'a str>,
    /// Virtual time since the epoch.
    pub(super) time: Duration,
    pub(super) auditor: &'a str,
}

impl fmt::Display for FailureLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deterministic runtime panicked (seed={}, strategy={}",
            self.seed, self.strategy
        )?;
        if let Some(member) = self.member {
            write!(f, ", member={member}")?;
        }
        write!(f, "): {}\n  ", self.message)?;
        if let Some(task) = self.task {
            write!(f, "in task '{task}' ")?;
        }
        write!(
            f,
            "at {:?} (virtual), auditor={}; rerun with this seed and strategy to reproduce",
            self.time, self.auditor
        )
    }
}

/// The message a panic payload carries, if it is a string.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<panic payload is not a string>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let text: Box<dyn Any + Send> = Box::new("static");
        assert_eq!(panic_message(&*text), "static");
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_message(&*owned), "owned");
        let other: Box<dyn Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(&*other), "<panic payload is not a string>");
    }

    #[test]
    fn the_line_names_the_task_when_known() {
        let line = |task| {
            FailureLine {
                seed: 7,
                strategy: &"uniform",
                member: None,
                message: "boom",
                task,
                time: Duration::from_millis(12),
                auditor: "ab",
            }
            .to_string()
        };
        assert_eq!(
            line(Some("worker")),
            "deterministic runtime panicked (seed=7, strategy=uniform): boom\n  in task 'worker' at 12ms (virtual), auditor=ab; rerun with this seed and strategy to reproduce"
        );
        assert_eq!(
            line(None),
            "deterministic runtime panicked (seed=7, strategy=uniform): boom\n  at 12ms (virtual), auditor=ab; rerun with this seed and strategy to reproduce"
        );
        let member = FailureLine {
            seed: 7,
            strategy: &"portfolio(steps=9)",
            member: Some(&"pct(3, steps=9)"),
            message: "boom",
            task: None,
            time: Duration::from_millis(12),
            auditor: "ab",
        };
        assert!(member.to_string().starts_with(
            "deterministic runtime panicked (seed=7, strategy=portfolio(steps=9), member=pct(3, steps=9)): boom\n"
        ));
    }
}
