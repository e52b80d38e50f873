//! The thread watch: what the exploration tools ask of every runtime built
//! on the current thread while they run a program.
//!
//! # What this module owns
//! A harness builds its runtimes itself (`Executor::init`, then
//! `Context::recover` after each power cut), so a tool cannot hand them a
//! recorder. Instead it puts a *watch* on its thread for the run
//! ([`begin`] ... [`end`]): every runtime built on the thread while the
//! watch is on gets what the tool asked for ([`Observe`]: a recorder, a
//! trace, the reachability points, a timeline log, a quiet failure line),
//! and the watch keeps the latest one, so the tool can read its recording,
//! time and auditor state once the program returns or panics. The runtime
//! core reads the watch ([`watched_scheduler`], [`watch_built`],
//! [`quiet`]); it never calls the tools.
//!
//! # Invariants
//! * With no watch on the thread (every run outside the tools), a runtime
//!   is built exactly as its config says, and nothing is kept.
//! * A watch is removed when its run ends, however it ends (the tools call
//!   [`end`] after catching the panic), and an outer watch (a harness run
//!   inside a harness) is restored.
//! * A program that builds two unrelated runtimes is followed to the last.

use super::Context;
use commonware_executor::{Recorder, Scheduler};
use std::cell::RefCell;

/// What a caught run keeps besides its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Observe {
    /// Every scheduling choice, random number and fired fault, as a
    /// [`Schedule`] (`Core::recording`).
    pub schedule: bool,
    /// Every audit event, as a trace (`Core::trace`).
    pub events: bool,
    /// The run's reachability points (`Context::collect_points`).
    pub points: bool,
    /// The run's timeline log (faults, messages, notes).
    pub timeline: bool,
    /// Whether the runtime keeps its failure line to itself (a shrinker's
    /// thousands of candidate replays would otherwise each print one).
    pub quiet: bool,
}

impl Observe {
    pub const NOTHING: Self = Self {
        schedule: false,
        events: false,
        points: false,
        timeline: false,
        quiet: false,
    };
    pub const SCHEDULE: Self = Self {
        schedule: true,
        ..Self::NOTHING
    };
    pub const EVENTS: Self = Self {
        events: true,
        ..Self::NOTHING
    };
    pub const POINTS: Self = Self {
        points: true,
        ..Self::NOTHING
    };
}

/// The watch of the runs on this thread (see the module docs).
pub(super) struct Watch {
    observe: Observe,
    latest: Option<Context>,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// `scheduler`, wrapped in a recorder if this thread's watch records.
pub(super) fn watched_scheduler(scheduler: Box<dyn Scheduler>) -> Box<dyn Scheduler> {
    let record = WATCH.with(|watch| {
        watch
            .borrow()
            .as_ref()
            .is_some_and(|watch| watch.observe.schedule)
    });
    if record {
        Box::new(Recorder::new(scheduler))
    } else {
        scheduler
    }
}

/// Whether this thread's watch keeps failure lines quiet.
pub(super) fn quiet() -> bool {
    WATCH.with(|watch| {
        watch
            .borrow()
            .as_ref()
            .is_some_and(|watch| watch.observe.quiet)
    })
}

/// Notes a runtime built on this thread (by `init` or `recover`): it gets
/// what the watch observes, and becomes the one the watch follows.
pub(super) fn watch_built(context: &Context) {
    WATCH.with(|watch| {
        let mut watch = watch.borrow_mut();
        let Some(watch) = watch.as_mut() else {
            return;
        };
        if watch.observe.events {
            context.core().enable_trace();
        }
        if watch.observe.points {
            context.collect_points();
        }
        if watch.observe.timeline {
            context.runtime.faults.start_log();
        }
        watch.latest = Some(context.clone());
    });
}

/// Puts a watch observing `observe` on this thread; returns the watch it
/// replaces, for [`end`].
pub(super) fn begin(observe: Observe) -> Option<Watch> {
    WATCH.with(|watch| {
        watch.borrow_mut().replace(Watch {
            observe,
            latest: None,
        })
    })
}

/// Removes this thread's watch, restoring `outer`; returns the last
/// runtime built under it, if any.
pub(super) fn end(outer: Option<Watch>) -> Option<Context> {
    let watch = WATCH.with(|watch| std::mem::replace(&mut *watch.borrow_mut(), outer));
    watch.and_then(|watch| watch.latest)
}
