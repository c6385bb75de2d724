//! Turning listener panics into [`FailureCause::Panic`] values, for plain calls and for futures.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::report::FailureCause;

/// The result of running one listener: `Ok` or why it did not complete.
pub(crate) type Outcome = Result<(), FailureCause>;

/// Extracts a readable message from a panic payload (`&str` and `String` payloads, as produced by
/// `panic!`; anything else gets a placeholder).
///
/// The payload is dropped here, through [`discard`]: a value given to `panic_any` may panic again
/// in its `Drop`.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let payload = match payload.downcast::<String>() {
        Ok(message) => return *message,
        Err(payload) => payload,
    };
    let message = match payload.downcast_ref::<&'static str>() {
        Some(message) => (*message).to_owned(),
        None => NON_STRING_PAYLOAD.to_owned(),
    };
    discard(payload);
    message
}

/// Drops a caught panic's payload without letting its `Drop` unwind into the caller: a panic
/// there is caught too, and that second payload is leaked rather than dropped (its `Drop` could
/// panic again, and so on).
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The message of a panic whose payload is neither a `&str` nor a `String`.
pub(crate) const NON_STRING_PAYLOAD: &str = "<non-string panic payload>";

/// Runs `f`, turning a panic into [`FailureCause::Panic`] and an `Err` into [`FailureCause::Error`].
#[inline]
pub(crate) fn run_guarded(f: impl FnOnce() -> Result<(), crate::BoxError>) -> Outcome {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(FailureCause::Error(error)),
        Err(payload) => Err(FailureCause::Panic(panic_message(payload))),
    }
}

/// A future that resolves to the inner future's output, or to the panic message if polling it
/// panicked. The inner future is `Unpin` (it arrives boxed), so no pinning projection is needed.
pub(crate) struct CatchPanic<F> {
    inner: F,
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(inner: F) -> Self {
        CatchPanic { inner }
    }
}

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = Pin::new(&mut self.inner);
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}

/// A listener future whose result and panic both become an [`Outcome`].
pub(crate) async fn guarded<F>(future: F) -> Outcome
where
    F: Future<Output = Result<(), crate::BoxError>> + Unpin,
{
    match CatchPanic::new(future).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(FailureCause::Error(error)),
        Err(message) => Err(FailureCause::Panic(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_str_string_and_other_payloads() {
        let caught = catch_unwind(|| panic!("static")).err().map(panic_message);
        assert_eq!(caught.as_deref(), Some("static"));
        let n = 7;
        let caught = catch_unwind(|| panic!("formatted {n}"))
            .err()
            .map(panic_message);
        assert_eq!(caught.as_deref(), Some("formatted 7"));
        let caught = catch_unwind(|| std::panic::panic_any(42_u8))
            .err()
            .map(panic_message);
        assert_eq!(caught.as_deref(), Some("<non-string panic payload>"));
    }

    /// A panic value whose `Drop` panics with another such value, forever.
    struct Relentless;

    impl Drop for Relentless {
        fn drop(&mut self) {
            std::panic::panic_any(Relentless);
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_again_is_contained() {
        let caught = catch_unwind(|| std::panic::panic_any(Relentless))
            .err()
            .map(panic_message);
        assert_eq!(caught.as_deref(), Some(NON_STRING_PAYLOAD));
        let caught = catch_unwind(|| std::panic::panic_any(Relentless)).err();
        discard(caught.expect("panic_any panics"));
    }

    #[test]
    fn run_guarded_maps_all_three_outcomes() {
        assert!(run_guarded(|| Ok(())).is_ok());
        assert!(matches!(
            run_guarded(|| Err("bad".into())),
            Err(FailureCause::Error(e)) if e.to_string() == "bad"
        ));
        assert!(matches!(
            run_guarded(|| panic!("oops")),
            Err(FailureCause::Panic(m)) if m == "oops"
        ));
    }

    #[tokio::test]
    async fn guarded_future_catches_panic_after_await() {
        let outcome = guarded(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("late");
        }))
        .await;
        assert!(matches!(outcome, Err(FailureCause::Panic(m)) if m == "late"));
    }
}
