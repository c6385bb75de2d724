//! The outcome of one dispatch: how many listeners ran, which failed and why.

use std::fmt;
use std::sync::Arc;

/// The error type a listener may return, boxed.
///
/// Any `Result<(), E>` where `E: Into<BoxError>` is accepted from a listener, so `std::io::Error`,
/// `anyhow::Error`, a `thiserror` enum or a plain `String` all work.
///
/// ```
/// use event_bus::BoxError;
///
/// let error: BoxError = "disk full".into();
/// assert_eq!(error.to_string(), "disk full");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one dispatch did: returned by [`trigger`](crate::Event::trigger), and by awaiting
/// [`spawn`](crate::Event::spawn) or [`deliver`](crate::Event::deliver).
///
/// A failing or panicking listener never stops the others; each failure is recorded here by listener
/// name and also emitted as a `tracing` event.
///
/// A `Report` is two words (the counts, and a pointer to the failures that is null when there are
/// none), so returning one from every dispatch costs nothing measurable.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Tick;
///
/// let registry = Registry::<Tick>::new();
/// registry.register(|_: &Tick| {});
/// registry.listener().name("grumpy").register(|_: &Tick| Err::<(), _>("no"));
///
/// let report = registry.trigger(Tick);
/// assert_eq!(report.listeners(), 2);
/// assert_eq!(report.succeeded(), 1);
/// assert_eq!(report.failures()[0].listener(), "grumpy");
/// assert!(!report.is_success());
/// ```
pub struct Report {
    /// Listeners in the high 32 bits, successes in the low 32 bits: one scalar, so that the whole
    /// report is a scalar pair, which the Rust ABI returns in two registers.
    counts: u64,
    /// `None` while nothing failed: the common case allocates nothing.
    #[expect(
        clippy::box_collection,
        reason = "a thin pointer keeps the report two words, returned in registers"
    )]
    failures: Option<Box<Vec<Failure>>>,
}

impl Report {
    #[inline]
    pub(crate) fn new(listeners: usize) -> Self {
        let listeners = u64::from(u32::try_from(listeners).unwrap_or(u32::MAX));
        Report {
            counts: listeners << 32,
            failures: None,
        }
    }

    /// The report of a dispatch to `listeners` listeners that all succeeded.
    #[inline(always)]
    pub(crate) fn all_succeeded(listeners: usize) -> Self {
        let listeners = u64::from(u32::try_from(listeners).unwrap_or(u32::MAX));
        Report {
            counts: (listeners << 32) | listeners,
            failures: None,
        }
    }

    /// Never overflows into the listener count: there is at most one success per listener.
    #[inline]
    pub(crate) fn record_success(&mut self) {
        self.counts += 1;
    }

    /// Sets the success count at once (for loops that derive it instead of counting).
    #[inline]
    pub(crate) fn set_succeeded(&mut self, succeeded: usize) {
        let succeeded = u64::from(u32::try_from(succeeded).unwrap_or(u32::MAX));
        self.counts = (self.counts & !u64::from(u32::MAX)) | succeeded;
    }

    /// Records a failure and emits it as a `tracing` event.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_failure(
        &mut self,
        event: &'static str,
        listener: &Arc<str>,
        cause: FailureCause,
    ) {
        cause.log(event, listener);
        self.push_failure(event, listener, cause);
    }

    /// Records a failure that was already logged where it happened.
    pub(crate) fn push_failure(
        &mut self,
        event: &'static str,
        listener: &Arc<str>,
        cause: FailureCause,
    ) {
        self.failures.get_or_insert_default().push(Failure {
            event,
            listener: Arc::clone(listener),
            cause,
        });
    }

    /// How many listeners the event was dispatched to (the registry's snapshot at dispatch time).
    ///
    /// Always `succeeded() + detached()` plus the failures of listeners (every failure but a
    /// [`PayloadDropPanic`](FailureCause::PayloadDropPanic)).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// assert_eq!(registry.trigger(Ping).listeners(), 0);
    /// registry.register(|_: &Ping| {});
    /// assert_eq!(registry.trigger(Ping).listeners(), 1);
    /// ```
    #[inline]
    pub fn listeners(&self) -> usize {
        (self.counts >> 32) as usize
    }

    /// How many listeners finished without error or panic.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| {});
    /// assert_eq!(registry.trigger(Ping).succeeded(), 1);
    /// ```
    #[inline]
    pub fn succeeded(&self) -> usize {
        (self.counts & u64::from(u32::MAX)) as usize
    }

    /// How many async listeners [`trigger`](crate::Event::trigger) handed to the tokio runtime without
    /// waiting for them. Their outcome is not in this report; failures among them are still logged
    /// with `tracing`. Always 0 for [`spawn`](crate::Event::spawn) and
    /// [`deliver`](crate::Event::deliver), which wait for every listener.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Ping>::new();
    /// registry.register_async(|_: Arc<Ping>| async {});
    /// assert_eq!(registry.trigger(Ping).detached(), 1);
    /// # }
    /// ```
    #[inline]
    pub fn detached(&self) -> usize {
        // A payload `Drop` panic is in `failures` but is not a listener's.
        let failed = self
            .failures()
            .iter()
            .filter(|failure| !matches!(failure.cause, FailureCause::PayloadDropPanic(_)))
            .count();
        self.listeners().saturating_sub(self.succeeded() + failed)
    }

    /// The listeners that failed, in dispatch order.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// fn explode(_: &Ping) {
    ///     panic!("kaput");
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("boom").register(explode);
    /// let report = registry.trigger(Ping);
    /// assert!(matches!(report.failures()[0].cause(), FailureCause::Panic(msg) if msg == "kaput"));
    /// ```
    #[inline]
    pub fn failures(&self) -> &[Failure] {
        self.failures.as_deref().map_or(&[], Vec::as_slice)
    }

    /// `true` when no listener failed (detached listeners do not count as failures).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// assert!(Registry::<Ping>::new().trigger(Ping).is_success());
    /// ```
    #[inline]
    pub fn is_success(&self) -> bool {
        self.failures.is_none()
    }

    /// Consumes the report, returning its failures.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| Err::<(), _>("nope"));
    /// let failures = registry.trigger(Ping).into_failures();
    /// assert_eq!(failures[0].cause().to_string(), "returned an error: nope");
    /// ```
    pub fn into_failures(mut self) -> Vec<Failure> {
        self.failures
            .take()
            .map_or_else(Vec::new, |failures| *failures)
    }
}

impl Drop for Report {
    /// Inlined so that dropping a report without failures (the common case) is one null check at
    /// the call site rather than a call into drop glue.
    #[inline]
    fn drop(&mut self) {
        if let Some(failures) = self.failures.take() {
            drop_failures(failures);
        }
    }
}

#[cold]
#[inline(never)]
#[expect(
    clippy::box_collection,
    reason = "the report's own field type, dropped out of line"
)]
fn drop_failures(failures: Box<Vec<Failure>>) {
    drop(failures);
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("listeners", &self.listeners())
            .field("succeeded", &self.succeeded())
            .field("detached", &self.detached())
            .field("failures", &self.failures())
            .finish()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} listener(s): {} succeeded, {} detached, {} failed",
            self.listeners(),
            self.succeeded(),
            self.detached(),
            self.failures().len()
        )?;
        for failure in self.failures() {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

/// One listener that did not complete: its name and why.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// let registry = Registry::<Ping>::new();
/// registry.listener().name("audit").register(|_: &Ping| Err::<(), _>("db down"));
/// let report = registry.trigger(Ping);
/// let failure = &report.failures()[0];
/// assert_eq!(failure.listener(), "audit");
/// assert_eq!(failure.to_string(), "listener `audit` returned an error: db down");
/// ```
#[derive(Debug)]
pub struct Failure {
    event: &'static str,
    listener: Arc<str>,
    cause: FailureCause,
}

impl Failure {
    /// The [`NAME`](crate::Event::NAME) of the event the listener failed on.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event(name = "com.example.ping")]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| Err::<(), _>("no"));
    /// assert_eq!(registry.trigger(Ping).failures()[0].event(), "com.example.ping");
    /// ```
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// The listener's name: the one given with [`ListenerBuilder::name`](crate::ListenerBuilder::name),
    /// or else the path of its function or closure type.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// fn failing(_: &Ping) -> Result<(), std::io::Error> {
    ///     Err(std::io::Error::other("nope"))
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(failing);
    /// assert!(registry.trigger(Ping).failures()[0].listener().ends_with("failing"));
    /// ```
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Why the listener did not complete.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register_async(|_: Arc<Ping>| async {});
    /// // No tokio runtime here: the async listener cannot run.
    /// let report = registry.trigger(Ping);
    /// assert!(matches!(report.failures()[0].cause(), FailureCause::NoRuntime));
    /// ```
    pub fn cause(&self) -> &FailureCause {
        &self.cause
    }

    /// Consumes the failure, returning its cause (for instance to get at a returned error).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| Err::<(), _>(std::io::Error::other("io")));
    /// let failure = registry.trigger(Ping).into_failures().remove(0);
    /// if let FailureCause::Error(error) = failure.into_cause() {
    ///     assert!(error.downcast_ref::<std::io::Error>().is_some());
    /// }
    /// ```
    pub fn into_cause(self) -> FailureCause {
        self.cause
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            FailureCause::PayloadDropPanic(_) => {
                write!(f, "event `{}`: {}", self.event, self.cause)
            }
            cause => write!(f, "listener `{}` {cause}", self.listener),
        }
    }
}

/// Why a listener did not complete.
///
/// ```
/// use event_bus::FailureCause;
///
/// let cause = FailureCause::Panic("index out of bounds".into());
/// assert_eq!(cause.to_string(), "panicked: index out of bounds");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FailureCause {
    /// The listener returned `Err`.
    #[error("returned an error: {0}")]
    Error(#[source] BoxError),
    /// The listener panicked; the panic message (or a placeholder for a non-string payload).
    #[error("panicked: {0}")]
    Panic(String),
    /// The listener is async (or the dispatch mode spawns tasks) and there was no tokio runtime on
    /// the calling thread, so it was not run.
    #[error("not run: no tokio runtime on the dispatching thread")]
    NoRuntime,
    /// The listener's task was cancelled before it finished (the runtime shut down). Logged (and
    /// reported to the [error reporter](crate::reporting)) for detached tasks too.
    #[error("cancelled before completion (runtime shut down)")]
    Cancelled,
    /// The listener would have run as a detached task, but its registry (or the whole program)
    /// is draining for shutdown: see [`Registry::drain`](crate::Registry::drain) and
    /// [`drain`](crate::drain). It was not run.
    #[error("not run: shutting down (draining)")]
    ShuttingDown,
    /// Not a listener's failure: the event payload's `Drop` panicked after the listeners ran.
    /// Every dispatch mode drops the payload's last owner (its own, or a listener task's) with
    /// the panic caught, so it never escapes the call; the dispatch's report has it when the
    /// dispatch itself (or, for an awaited `spawn`, one of its tasks) dropped the payload last;
    /// otherwise (an async listener detached by `trigger` held it longest, or the listener tasks
    /// holding it were cancelled by their runtime shutting down) it is logged and reported to the
    /// [error reporter](crate::reporting) only. The failure's
    /// [`listener`](Failure::listener) is empty, and no listener is counted as failed.
    #[error("the event payload panicked while being dropped: {0}")]
    PayloadDropPanic(String),
}

impl FailureCause {
    /// Emits this failure as a `tracing` event: panics at `ERROR`, everything else at `WARN`.
    pub(crate) fn log(&self, event: &'static str, listener: &str) {
        use crate::reporting::{self, Origin};
        crate::metrics::listener_failed(event, listener, self);
        match self {
            FailureCause::Panic(message) => {
                tracing::error!(event, listener, panic = %message, "event listener panicked");
                let backtrace = reporting::take_backtrace(message);
                let panic = Some(backtrace.as_ref());
                reporting::report(Origin::Listener, event, listener, message, panic);
            }
            FailureCause::PayloadDropPanic(message) => {
                tracing::error!(event, panic = %message, "event payload panicked while dropped");
                let backtrace = reporting::take_backtrace(message);
                let panic = Some(backtrace.as_ref());
                reporting::report(Origin::PayloadDrop, event, "", message, panic);
            }
            other => {
                tracing::warn!(event, listener, cause = %other, "event listener failed");
                reporting::report(Origin::Listener, event, listener, other, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_counts_and_failures() {
        let mut report = Report::new(3);
        report.record_success();
        report.record_failure(
            "Ping",
            &Arc::from("audit"),
            FailureCause::Panic("boom".into()),
        );
        assert_eq!(
            report.to_string(),
            "3 listener(s): 1 succeeded, 1 detached, 1 failed; listener `audit` panicked: boom"
        );
        assert!(!report.is_success());
        assert_eq!(report.failures()[0].event(), "Ping");
    }

    /// Found by a fault hunt: the payload's `Drop` panic is in `failures`, but it is not a
    /// listener, so it must not hide a detached one.
    #[test]
    fn a_payload_drop_panic_is_not_counted_against_detached_listeners() {
        let mut report = Report::new(2);
        report.record_success();
        report.push_failure(
            "Ping",
            &Arc::from(""),
            FailureCause::PayloadDropPanic("drop".into()),
        );
        assert_eq!(report.detached(), 1);
        report.record_failure(
            "Ping",
            &Arc::from("audit"),
            FailureCause::Error("no".into()),
        );
        assert_eq!(report.detached(), 0);
    }

    #[test]
    fn a_report_is_two_words() {
        assert_eq!(
            std::mem::size_of::<Report>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn error_cause_exposes_source() {
        let cause = FailureCause::Error("inner".into());
        let source = std::error::Error::source(&cause).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("inner"));
    }
}
