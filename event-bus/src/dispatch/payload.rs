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

/// A listener task's own owner of the payload. However the task ends, this owner is dropped with
/// the panic of the payload's `Drop` caught: by [`PayloadOwner::release`] when the task runs to
/// its end, or by this guard's `Drop` when the task is cancelled (its future dropped by a runtime
/// shutting down). Unguarded, that panic would become the task's own and be blamed on its
/// listener.
///
/// Declared in the task before anything that borrows or clones the payload, so that a cancelled
/// task drops it after the listener's future: this owner is then the last if the task's is.
pub(crate) struct PayloadOwner<E: Event> {
    /// `None` only once released or dropped.
    payload: Option<Arc<E>>,
}

impl<E: Event> PayloadOwner<E> {
    pub(crate) fn new(payload: Arc<E>) -> Self {
        PayloadOwner {
            payload: Some(payload),
        }
    }

    /// The payload.
    pub(crate) fn get(&self) -> &Arc<E> {
        match &self.payload {
            Some(payload) => payload,
            // Only `release` and `Drop` take it, and both consume the owner.
            None => unreachable!("a released payload owner is gone"),
        }
    }

    /// Drops this owner now: the panic message, logged and reported, if the payload's `Drop`
    /// ran and panicked.
    #[inline]
    pub(crate) fn release(mut self) -> Option<String> {
        let payload = self.payload.take();
        // Nothing left for `Drop` to do.
        std::mem::forget(self);
        payload.and_then(drop_payload::<E, _>)
    }
}

impl<E: Event> Drop for PayloadOwner<E> {
    fn drop(&mut self) {
        if let Some(payload) = self.payload.take() {
            // Logged and reported by `drop_payload`: a cancelled task has no report to add it to.
            let _ = drop_payload::<E, _>(payload);
        }
    }
}
