//! Synchronous dispatch on the caller's thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::payload::{PayloadOwner, dropped};
use super::spawn::run_entry;
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::{Callback, SyncFn};
use crate::metrics::{self, Timer};
use crate::panic::{panic_message, run_guarded};
use crate::registry::snapshot::{self, Entry, Runner, Running, Snapshot};
use crate::report::{FailureCause, Report};
use crate::spans;
use tracing::Instrument as _;

/// Runs the sync listeners of `snapshot` in order and hands async ones to the ambient runtime.
#[inline(always)]
pub(crate) fn trigger<E: Event>(
    scope: Scope<'_>,
    snapshot: Option<&Arc<Snapshot<E>>>,
    event: E,
) -> Report {
    let Some(snapshot) = snapshot else {
        if metrics::on() {
            metrics::dispatched(E::NAME, "trigger");
        }
        // No listener list yet: the payload still drops here, guarded.
        return dropped::<E, _>(event, Report::new(0));
    };
    if snapshot.has_async || metrics::on() {
        return trigger_mixed(scope, snapshot, event);
    }
    run_sync_only(&snapshot.sync_only, snapshot, event)
}

/// The hot loop, over `listeners` (the snapshot's array of synchronous callbacks; `snapshot` is
/// read only after a failure, for the failed listener's name). It only runs them until one
/// fails: the report of a dispatch where every listener succeeded is computed in registers at the
/// end, and the first failure hands over to [`continue_after_failure`] (cold), which records it
/// and runs the rest. One `catch_unwind` covers the whole loop.
///
/// The payload is dropped here, its `Drop` guarded: a panic there is reported as the payload's.
#[inline(always)]
pub(crate) fn run_sync_only<E: Event>(
    listeners: &[Box<SyncFn<E>>],
    snapshot: &Snapshot<E>,
    event: E,
) -> Report {
    let report = run_sync_listeners(listeners, snapshot, &event);
    dropped::<E, _>(event, report)
}

#[inline(always)]
fn run_sync_listeners<E: Event>(
    listeners: &[Box<SyncFn<E>>],
    snapshot: &Snapshot<E>,
    event: &E,
) -> Report {
    // The listeners not started yet, kept outside the unwind boundary: after a failure (an error
    // or a panic), the listener before them is the one that failed.
    let mut remaining = listeners.iter();
    let finished = catch_unwind(AssertUnwindSafe(|| {
        for listener in remaining.by_ref() {
            listener(event)?;
        }
        Ok(())
    }));
    let cause = match finished {
        Ok(Ok(())) => return Report::all_succeeded(listeners.len()),
        Ok(Err(error)) => FailureCause::Error(error),
        Err(payload) => FailureCause::Panic(panic_message(payload)),
    };
    let next = listeners.len() - remaining.len();
    continue_after_failure(listeners, &snapshot.entries, event, next, cause)
}

/// Records the failure of the listener before `next` and runs the listeners from `next` on, each
/// one either succeeding or recorded as a failure (its name looked up in the entries only then).
/// After a panic the loop resumes after the listener that panicked.
#[cold]
#[inline(never)]
fn continue_after_failure<E: Event>(
    listeners: &[Box<SyncFn<E>>],
    entries: &[Arc<Entry<E>>],
    event: &E,
    mut next: usize,
    cause: FailureCause,
) -> Report {
    let mut report = Report::new(listeners.len());
    fail(&mut report, entries, next.wrapping_sub(1), cause);
    loop {
        let finished = catch_unwind(AssertUnwindSafe(|| {
            while let Some(listener) = listeners.get(next) {
                next += 1;
                if let Err(error) = listener(event) {
                    fail(&mut report, entries, next - 1, FailureCause::Error(error));
                }
            }
        }));
        match finished {
            Ok(()) => break,
            Err(payload) => {
                let cause = FailureCause::Panic(panic_message(payload));
                fail(&mut report, entries, next.wrapping_sub(1), cause);
            }
        }
    }
    report.set_succeeded(listeners.len() - report.failures().len());
    report
}

/// Records the failure of the listener at `index` (the same position in `entries`).
#[cold]
#[inline(never)]
fn fail<E: Event>(
    report: &mut Report,
    entries: &[Arc<Entry<E>>],
    index: usize,
    cause: FailureCause,
) {
    if let Some(entry) = entries.get(index) {
        report.record_failure(E::NAME, &entry.runner.name, cause);
    }
}

/// Some entries are async: they need the payload in an `Arc` and a runtime to be spawned on. Also
/// the path of every dispatch while metrics are recorded.
#[inline(never)]
fn trigger_mixed<E: Event>(scope: Scope<'_>, snapshot: &Arc<Snapshot<E>>, event: E) -> Report {
    if metrics::on() {
        metrics::dispatched(E::NAME, "trigger");
    }
    let mut report = Report::new(snapshot.entries.len());
    let event = Arc::new(event);
    let runtime = Handle::try_current().ok();
    for entry in snapshot.entries.iter() {
        let runner = &entry.runner;
        match (&runner.callback, &runtime) {
            (Callback::Sync(listener), _) => {
                let timer = Timer::start();
                let outcome = run_guarded(|| listener.call(&event));
                metrics::listener_ran(E::NAME, &runner.name, outcome.is_ok(), timer);
                match outcome {
                    Ok(()) => report.record_success(),
                    Err(cause) => report.record_failure(E::NAME, &runner.name, cause),
                }
            }
            (Callback::Async(_), Some(runtime)) => {
                // Counted before the drain flag is read (see `lifecycle`); the flag is also read
                // before, so that a dispatch during a drain adds nothing it could count.
                let counted = (!scope.refuses()).then(|| Runner::count(runner));
                snapshot::counted();
                let Some(counted) = counted.filter(|_| !scope.refuses()) else {
                    // Refused: not a task, nor a cancelled one.
                    report.record_failure(E::NAME, &runner.name, FailureCause::ShuttingDown);
                    continue;
                };
                let tracked = Running::new(counted);
                // The task keeps its own owner of the payload, guarded: a panic in the payload's
                // `Drop` is never the listener's (even when the task is cancelled), and never
                // escapes.
                let payload = PayloadOwner::new(Arc::clone(&event));
                let span = spans::listener(E::NAME, &runner.name);
                runtime.spawn(
                    async move {
                        // Its failure is logged there: nobody awaits this task.
                        let _ = run_entry(tracked.runner(), payload).await;
                        tracked.finish();
                    }
                    .instrument(span),
                );
            }
            (Callback::Async(_), None) => {
                report.record_failure(E::NAME, &runner.name, FailureCause::NoRuntime)
            }
        }
    }
    dropped::<E, _>(event, report)
}
