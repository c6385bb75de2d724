//! Awaited dispatch: every listener in order, in the caller's task.

use std::sync::Arc;

use super::payload::dropped;
use super::run_async;
use crate::event::Event;
use crate::listener::Callback;
use crate::metrics::{self, Timer};
use crate::panic::run_guarded;
use crate::registry::snapshot::Snapshot;
use crate::report::Report;
use crate::spans;
use tracing::Instrument as _;

/// Runs each listener of `snapshot` in order, awaiting async ones.
pub(crate) async fn deliver<E: Event>(snapshot: Option<Arc<Snapshot<E>>>, event: E) -> Report {
    if metrics::on() {
        metrics::dispatched(E::NAME, "deliver");
    }
    let Some(snapshot) = snapshot else {
        // No listener list yet: the payload still drops here, guarded.
        return dropped::<E, _>(event, Report::new(0));
    };
    let mut report = Report::new(snapshot.entries.len());
    let event = Arc::new(event);
    for entry in snapshot.entries.iter() {
        let span = spans::listener(E::NAME, &entry.runner.name);
        let timer = Timer::start();
        let outcome = match &entry.runner.callback {
            Callback::Sync(listener) => span.in_scope(|| run_guarded(|| listener.call(&event))),
            Callback::Async(listener) => {
                let started = span.in_scope(|| run_async(listener, Arc::clone(&event)));
                started.instrument(span).await
            }
        };
        metrics::listener_ran(E::NAME, &entry.runner.name, outcome.is_ok(), timer);
        match outcome {
            Ok(()) => report.record_success(),
            Err(cause) => report.record_failure(E::NAME, &entry.runner.name, cause),
        }
    }
    dropped::<E, _>(event, report)
}
