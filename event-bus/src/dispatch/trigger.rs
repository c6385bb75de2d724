//! Synchronous dispatch on the caller's thread.

use std::sync::Arc;

use tokio::runtime::Handle;

use super::run_async;
use crate::event::Event;
use crate::listener::Callback;
use crate::panic::run_guarded;
use crate::registry::snapshot::Snapshot;
use crate::report::{FailureCause, Report};

/// Runs the sync listeners of `snapshot` in order and hands async ones to the ambient runtime.
pub(crate) fn trigger<E: Event>(snapshot: Option<&Snapshot<E>>, event: E) -> Report {
    let Some(snapshot) = snapshot else {
        return Report::new(E::NAME, 0);
    };
    let mut report = Report::new(E::NAME, snapshot.entries.len());
    if !snapshot.has_async {
        for entry in snapshot.entries.iter() {
            if let Callback::Sync(listener) = &entry.callback {
                match run_guarded(|| listener(&event)) {
                    Ok(()) => report.record_success(),
                    Err(cause) => report.record_failure(&entry.name, cause),
                }
            }
        }
        return report;
    }

    let event = Arc::new(event);
    let runtime = Handle::try_current().ok();
    for entry in snapshot.entries.iter() {
        match (&entry.callback, &runtime) {
            (Callback::Sync(listener), _) => match run_guarded(|| listener(&event)) {
                Ok(()) => report.record_success(),
                Err(cause) => report.record_failure(&entry.name, cause),
            },
            (Callback::Async(listener), Some(runtime)) => {
                let task = run_async(listener, Arc::clone(&event));
                let name = Arc::clone(&entry.name);
                runtime.spawn(async move {
                    if let Err(cause) = task.await {
                        cause.log(E::NAME, &name);
                    }
                });
                report.record_detached();
            }
            (Callback::Async(_), None) => {
                report.record_failure(&entry.name, FailureCause::NoRuntime)
            }
        }
    }
    report
}
