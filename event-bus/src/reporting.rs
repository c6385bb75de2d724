//! One place where every final failure and every panic arrives: an application-wide
//! [`ErrorReporter`] (an error tracker, an alerting hook, a test's assertion), next to the
//! `tracing` events the library always emits.
//!
//! What reaches the reporter, each exactly once:
//!
//! - every listener failure and panic, from every dispatch mode: `trigger`, `spawn` (awaited or
//!   dropped), `deliver`, and the async listeners `trigger` detaches, including detached tasks
//!   cancelled because their runtime shut down ([`Origin::Listener`]); a panic in an event
//!   payload's `Drop`, in any mode ([`Origin::PayloadDrop`]);
//! - every panic of a pipeline handler, when it happens, whether or not a retry follows
//!   ([`Origin::Handler`]);
//! - every message a pipeline parks as a dead letter ([`Origin::DeadLetter`]), every join that
//!   expires incomplete ([`Origin::JoinExpired`]), and every message a durable inbox accepted
//!   whose processing failed ([`Origin::Inbox`]);
//! - every panic of a durable listener that will be retried ([`Origin::Request`]), and every
//!   durable request that becomes a dead request, panic or error ([`Origin::DeadRequest`]).
//!
//! Panics carry a backtrace when [`install_panic_hook`] was called: the hook captures one for
//! each panic (whatever `RUST_BACKTRACE` says) and then runs the hook that was installed before
//! it, so the usual message still goes to standard error.
//!
//! ```
//! use event_bus::prelude::*;
//! use event_bus::reporting::{self, Origin};
//! use std::sync::{Arc, Mutex};
//!
//! #[event]
//! struct Ping;
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! reporting::set_error_reporter(move |failure: &reporting::Reported<'_>| {
//!     sink.lock().unwrap().push((failure.origin(), failure.name().to_owned(), failure.to_string()));
//! });
//!
//! let registry = Registry::<Ping>::new();
//! registry.listener().name("flaky").register(|_: &Ping| Err(std::io::Error::other("disk full")));
//! registry.trigger(Ping);
//!
//! let seen = seen.lock().unwrap();
//! assert_eq!(seen[0].0, Origin::Listener);
//! assert_eq!(seen[0].1, "flaky");
//! assert!(seen[0].2.contains("disk full"));
//! # drop(seen);
//! # reporting::take_error_reporter();
//! ```

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

/// Receives every final failure and every panic (see the [module docs](self)).
///
/// Called on the thread where the failure was observed, possibly from many threads at once; keep
/// it quick (hand the report to a channel for slow work). A reporter that panics is isolated: the
/// panic is swallowed and the dispatch goes on. Any `Fn(&Reported<'_>) + Send + Sync + 'static`
/// is a reporter.
///
/// ```
/// use event_bus::reporting::{ErrorReporter, Reported};
///
/// struct Stderr;
///
/// impl ErrorReporter for Stderr {
///     fn report(&self, failure: &Reported<'_>) {
///         eprintln!("{:?} {}: {failure}", failure.origin(), failure.name());
///     }
/// }
///
/// event_bus::reporting::set_error_reporter(Stderr);
/// # event_bus::reporting::take_error_reporter();
/// ```
pub trait ErrorReporter: Send + Sync + 'static {
    /// One failure or panic.
    fn report(&self, failure: &Reported<'_>);
}

impl<F> ErrorReporter for F
where
    F: Fn(&Reported<'_>) + Send + Sync + 'static,
{
    fn report(&self, failure: &Reported<'_>) {
        self(failure)
    }
}

/// Where a reported failure happened.
///
/// ```
/// use event_bus::reporting::Origin;
///
/// assert_ne!(Origin::Listener, Origin::DeadLetter);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// A listener returned an error, panicked, or could not run (in any dispatch mode).
    Listener,
    /// An event payload's `Drop` panicked.
    PayloadDrop,
    /// A pipeline handler panicked (a retry may follow).
    Handler,
    /// A pipeline parked a message as a dead letter.
    DeadLetter,
    /// A join expired before all its parts arrived.
    JoinExpired,
    /// A message a durable inbox accepted failed when processed (it stays in the inbox).
    Inbox,
    /// A durable listener panicked on a request that will be retried.
    Request,
    /// A durable listener's request failed for the last time (or panicked for the last time):
    /// it is now a dead request.
    DeadRequest,
}

/// One failure, as the [`ErrorReporter`] sees it. Its `Display` is the error or panic message.
///
/// ```
/// use event_bus::reporting::Reported;
///
/// fn line(failure: &Reported<'_>) -> String {
///     format!("{} / {}: {failure} (panic: {})", failure.event(), failure.name(), failure.is_panic())
/// }
/// # let _ = line;
/// ```
pub struct Reported<'a> {
    origin: Origin,
    event: &'a str,
    name: &'a str,
    error: &'a dyn fmt::Display,
    panic: bool,
    backtrace: Option<&'a Backtrace>,
}

impl<'a> Reported<'a> {
    /// Where it happened.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The event type's name (for listeners and payloads), or the message's source (for
    /// pipelines).
    pub fn event(&self) -> &'a str {
        self.event
    }

    /// The listener's name; for pipelines the dead letter's id, the join key or the message id.
    /// Empty for a payload's `Drop`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Whether this is a panic (its message is the `Display`).
    pub fn is_panic(&self) -> bool {
        self.panic
    }

    /// The panic's backtrace, captured by [`install_panic_hook`]'s hook on the panicking thread;
    /// `None` for errors, and for panics while the hook is not installed.
    pub fn backtrace(&self) -> Option<&'a Backtrace> {
        self.backtrace
    }
}

impl fmt::Display for Reported<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl fmt::Debug for Reported<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reported")
            .field("origin", &self.origin)
            .field("event", &self.event)
            .field("name", &self.name)
            .field("error", &self.error.to_string())
            .field("panic", &self.panic)
            .field("backtrace", &self.backtrace.is_some())
            .finish()
    }
}

/// Whether a reporter is set: the common case (none) costs one load per failure.
static SET: AtomicBool = AtomicBool::new(false);
static REPORTER: RwLock<Option<Arc<dyn ErrorReporter>>> = RwLock::new(None);

/// Sets the application's reporter, replacing any earlier one (returned).
///
/// ```
/// use event_bus::reporting;
///
/// assert!(reporting::set_error_reporter(|_: &reporting::Reported<'_>| {}).is_none());
/// assert!(reporting::take_error_reporter().is_some());
/// ```
pub fn set_error_reporter(reporter: impl ErrorReporter) -> Option<Arc<dyn ErrorReporter>> {
    let previous = REPORTER.write().replace(Arc::new(reporter));
    SET.store(true, Ordering::Release);
    previous
}

/// Removes the application's reporter and returns it.
///
/// ```
/// assert!(event_bus::reporting::take_error_reporter().is_none());
/// ```
pub fn take_error_reporter() -> Option<Arc<dyn ErrorReporter>> {
    let mut reporter = REPORTER.write();
    SET.store(false, Ordering::Release);
    reporter.take()
}

/// Installs (once per process) a panic hook that captures a backtrace of every panic for the
/// reporter, then runs the hook installed before it. Install it after any hook of your own that
/// should keep running (it chains to the hook current when it is installed).
///
/// ```
/// event_bus::reporting::install_panic_hook();
/// event_bus::reporting::install_panic_hook(); // once is enough; again does nothing
/// ```
pub fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = match (
                payload.downcast_ref::<&'static str>(),
                payload.downcast_ref::<String>(),
            ) {
                (Some(message), _) => (*message).to_owned(),
                (None, Some(message)) => message.clone(),
                (None, None) => crate::panic::NON_STRING_PAYLOAD.to_owned(),
            };
            let backtrace = Backtrace::force_capture();
            // During thread teardown the slot may be gone: then there is no backtrace to keep.
            let _ = LAST_PANIC.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some((message, backtrace));
                }
            });
            previous(info);
        }));
    });
}

thread_local! {
    /// This thread's latest panic seen by the hook (its message and backtrace), until a catch
    /// site takes it.
    static LAST_PANIC: RefCell<Option<(String, Backtrace)>> = const { RefCell::new(None) };
}

/// The backtrace of the panic with `message` just caught on this thread, if the hook captured
/// one. The hook's latest record is taken either way; it is returned only when its message is
/// the caught panic's, so a panic that did not go through the hook (`resume_unwind`) never gets
/// the backtrace of an earlier one caught elsewhere.
pub(crate) fn take_backtrace(message: &str) -> Option<Backtrace> {
    let (seen, backtrace) = LAST_PANIC
        .try_with(|last| last.try_borrow_mut().ok().and_then(|mut last| last.take()))
        .ok()
        .flatten()?;
    (seen == message).then_some(backtrace)
}

/// Forgets this thread's record of its latest panic (a panic caught here that happened elsewhere).
pub(crate) fn forget_backtrace() {
    let _ = LAST_PANIC.try_with(|last| last.try_borrow_mut().map(|mut last| last.take()));
}

/// Hands one failure to the reporter, if one is set. A panicking reporter is contained.
#[cold]
pub(crate) fn report(
    origin: Origin,
    event: &str,
    name: &str,
    error: &dyn fmt::Display,
    panic: Option<Option<&Backtrace>>,
) {
    if !SET.load(Ordering::Acquire) {
        return;
    }
    let Some(reporter) = REPORTER.read().clone() else {
        return;
    };
    let reported = Reported {
        origin,
        event,
        name,
        error,
        panic: panic.is_some(),
        backtrace: panic.flatten(),
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| reporter.report(&reported))) {
        crate::panic::discard(payload);
    }
}
