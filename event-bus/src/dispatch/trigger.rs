//! Synchronous dispatch on the caller's thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::run_async;
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::Callback;
use crate::panic::{panic_message, run_guarded};
use crate::registry::snapshot::{Entry, Running, Snapshot};
use crate::report::{FailureCause, Report};

/// Runs the sync listeners of `snapshot` in order and hands async ones to the ambient runtime.
#[inline(always)]
pub(crate) fn trigger<E: Event>(
    scope: Scope<'_>,
    snapshot: Option<&Arc<Snapshot<E>>>,
    event: E,
) -> Report {
    let Some(snapshot) = snapshot else {
        return Report::new(0);
    };
    if snapshot.has_async {
        return trigger_mixed(scope, snapshot, event);
    }
    let mut report = Report::new(snapshot.entries.len());
    run_sync_only(&snapshot.entries, &event, &mut report);
    report
}

/// The hot loop: every entry is synchronous, so each one either succeeds or is recorded as a
/// failure, and the success count is derived at the end instead of kept in the loop. One
/// `catch_unwind` covers the whole loop; after a panic it resumes after the entry that panicked.
#[inline(always)]
fn run_sync_only<E: Event>(entries: &[Entry<E>], event: &E, report: &mut Report) {
    let mut next = 0;
    while next < entries.len() {
        let finished = catch_unwind(AssertUnwindSafe(|| {
            for (index, entry) in entries.iter().enumerate().skip(next) {
                next = index + 1;
                if let Callback::Sync(listener) = &entry.callback
                    && let Err(error) = listener(event)
                {
                    report.record_failure(E::NAME, &entry.name, FailureCause::Error(error));
                }
            }
        }));
        if let Err(payload) = finished
            && let Some(entry) = next.checked_sub(1).and_then(|index| entries.get(index))
        {
            let cause = FailureCause::Panic(panic_message(payload));
            report.record_failure(E::NAME, &entry.name, cause);
        }
    }
    report.set_succeeded(entries.len() - report.failures().len());
}

/// Some entries are async: they need the payload in an `Arc` and a runtime to be spawned on.
#[inline(never)]
fn trigger_mixed<E: Event>(scope: Scope<'_>, snapshot: &Arc<Snapshot<E>>, event: E) -> Report {
    let mut report = Report::new(snapshot.entries.len());
    let event = Arc::new(event);
    let runtime = Handle::try_current().ok();
    for (index, entry) in snapshot.entries.iter().enumerate() {
        match (&entry.callback, &runtime) {
            (Callback::Sync(listener), _) => match run_guarded(|| listener(&event)) {
                Ok(()) => report.record_success(),
                Err(cause) => report.record_failure(E::NAME, &entry.name, cause),
            },
            (Callback::Async(listener), Some(runtime)) => {
                // Counted before the drain flag is read (see `lifecycle`).
                let tracked = Running::start(snapshot, index);
                if scope.refuses() {
                    drop(tracked);
                    report.record_failure(E::NAME, &entry.name, FailureCause::ShuttingDown);
                    continue;
                }
                let task = run_async(listener, Arc::clone(&event));
                let name = Arc::clone(&entry.name);
                runtime.spawn(async move {
                    if let Err(cause) = task.await {
                        cause.log(E::NAME, &name);
                    }
                    drop(tracked);
                });
            }
            (Callback::Async(_), None) => {
                report.record_failure(E::NAME, &entry.name, FailureCause::NoRuntime)
            }
        }
    }
    report
}
