//! What every dispatch mode does with the payload's last owner: a panic in the payload's `Drop` is
//! the payload's (reported once as [`PayloadDropPanic`](FailureCause::PayloadDropPanic), never
//! blamed on a listener, never escaping the dispatch).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::event::Event;
use crate::panic::panic_message;
use crate::report::{FailureCause, Report};

/// Drops one owner of the payload (the last one runs its `Drop`); the panic message, logged and
/// reported, if that `Drop` panicked.
#[inline]
pub(crate) fn drop_payload<E: Event, P>(owner: P) -> Option<String> {
    let payload = catch_unwind(AssertUnwindSafe(move || drop(owner))).err()?;
    Some(payload_drop_panicked::<E>(payload))
}

#[cold]
#[inline(never)]
fn payload_drop_panicked<E: Event>(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = panic_message(payload);
    FailureCause::PayloadDropPanic(message.clone()).log(E::NAME, "");
    message
}

/// Drops one owner of the payload, adding a panic of its `Drop` to `report`.
#[inline]
pub(crate) fn dropped<E: Event, P>(owner: P, report: Report) -> Report {
    match drop_payload::<E, P>(owner) {
        None => report,
        Some(message) => with_payload_drop_panic::<E>(report, message),
    }
}

#[cold]
#[inline(never)]
fn with_payload_drop_panic<E: Event>(mut report: Report, message: String) -> Report {
    report.push_failure(
        E::NAME,
        &Arc::from(""),
        FailureCause::PayloadDropPanic(message),
    );
    report
}
