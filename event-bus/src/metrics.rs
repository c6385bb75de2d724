//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): the
//! application installs the recorder it wants (Prometheus, OpenTelemetry, StatsD, ...), then calls
//! [`enable`]. Until then nothing is recorded and the hot paths pay nothing for it: `trigger` keeps
//! its fast path without even reading the switch (flipping it makes every thread's cached
//! listener list stale, and the list is sorted again on its next load), and each other dispatch
//! mode checks one flag.
//!
//! | metric | type | labels | one per |
//! | --- | --- | --- | --- |
//! | `event_bus_triggered_total` | counter | `event`, `mode` (`trigger`, `spawn`, `deliver`) | dispatch |
//! | `event_bus_delivered_total` | counter | `event`, `listener` | listener run that succeeded |
//! | `event_bus_failed_total` | counter | `event`, `listener`, `cause` (`error`, `panic`, `no_runtime`, `shutting_down`, `cancelled`, `payload_drop_panic`) | listener run that failed (panics included), or payload `Drop` panic (with an empty `listener`) |
//! | `event_bus_panicked_total` | counter | `event`, `listener` | listener run that panicked |
//! | `event_bus_listener_duration_seconds` | histogram | `event`, `listener` | listener run (an async listener: until its future completes) |
//! | `event_bus_pipeline_processed_total` | counter | `source`, `outcome` (`ok`, `error`) | [`Pipeline::process`](crate::pipeline::Pipeline::process) |
//! | `event_bus_pipeline_duration_seconds` | histogram | `source` | [`Pipeline::process`](crate::pipeline::Pipeline::process) |
//! | `event_bus_handler_duration_seconds` | histogram | `source`, `handler` (its position in the chain) | pipeline handler run (including the rest of the chain it called) |
//! | `event_bus_retried_total` | counter | `source` | retry by a [`Retry`](crate::pipeline::Retry) handler |
//! | `event_bus_dead_lettered_total` | counter | `source` | message parked by [`DeadLetters`](crate::pipeline::DeadLetters) |
//! | `event_bus_requests_executed_total` | counter | `event`, `listener`, `outcome` (`succeeded`, `retried`, `dead`) | durable request run ([`executor`](crate::executor)) |
//! | `event_bus_request_duration_seconds` | histogram | `event`, `listener` | durable request run |
//! | `event_bus_requests_pending` | gauge | `namespace` | unexecuted durable requests, set at each executor scan |
//! | `event_bus_requests_dead` | gauge | `namespace` | dead requests, set at each executor scan |
//! | `event_bus_joins_pending` | gauge | `namespace` | pending joins of a [`Join`](crate::pipeline::Join), set by `Join::pending` and `Join::sweep` |
//! | `event_bus_inbox_depth` | gauge | `namespace` | messages in a durable inbox, set by `Durable::recover` and `Durable::pending` |
//!
//! Durations are in seconds. Label values are the event's [`NAME`](crate::Event::NAME), the
//! listener's name, and the message's source.
//!
//! ```
//! // After installing the application's recorder (for example an exporter's `install()`):
//! event_bus::metrics::enable();
//! assert!(event_bus::metrics::is_enabled());
//! # event_bus::metrics::disable();
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[cfg(feature = "pipeline")]
use ::metrics::gauge;
use ::metrics::{counter, histogram};

use crate::report::FailureCause;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts recording into the `metrics` facade's global recorder. Call it once the application's
/// recorder is installed. Dispatches already running finish unrecorded; later ones record (on
/// another thread, from the moment it sees the switch, as with any atomic flag).
///
/// ```
/// event_bus::metrics::enable();
/// # event_bus::metrics::disable();
/// ```
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
    crate::registry::thread_cache::invalidate_all();
}

/// Stops recording.
///
/// ```
/// event_bus::metrics::disable();
/// assert!(!event_bus::metrics::is_enabled());
/// ```
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
    crate::registry::thread_cache::invalidate_all();
}

/// Whether [`enable`] was called (and not undone by [`disable`]).
///
/// ```
/// assert!(!event_bus::metrics::is_enabled());
/// ```
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether to record: one relaxed load, `false` at compile time without the feature.
#[inline(always)]
pub(crate) fn on() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A start time, taken only when recording.
#[derive(Clone, Copy)]
pub(crate) struct Timer(Option<Instant>);

impl Timer {
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Timer(on().then(Instant::now))
    }

    /// The time since the start, if recording started then and still is (a run that began
    /// before [`disable`] records nothing after it).
    #[inline]
    fn elapsed(self) -> Option<Duration> {
        self.0.filter(|_| on()).map(|started| started.elapsed())
    }
}

/// A dispatch of `event` in `mode`.
#[cold]
pub(crate) fn dispatched(event: &'static str, mode: &'static str) {
    counter!("event_bus_triggered_total", "event" => event, "mode" => mode).increment(1);
}

/// A listener run that began at `timer`: its duration, and a delivery if it succeeded (failures
/// are counted where they are logged, once each: [`listener_failed`]).
#[inline(always)]
pub(crate) fn listener_ran(event: &'static str, listener: &Arc<str>, ok: bool, timer: Timer) {
    if let Some(elapsed) = timer.elapsed() {
        record_listener(event, listener, ok, elapsed);
    }
}

#[cold]
#[inline(never)]
fn record_listener(event: &'static str, listener: &Arc<str>, ok: bool, elapsed: Duration) {
    histogram!(
        "event_bus_listener_duration_seconds",
        "event" => event,
        "listener" => Arc::clone(listener)
    )
    .record(elapsed.as_secs_f64());
    if ok {
        counter!("event_bus_delivered_total", "event" => event, "listener" => Arc::clone(listener))
            .increment(1);
    }
}

/// A listener failure, counted where it is logged (once per failure, in every mode). A payload
/// `Drop` panic is counted with an empty listener.
#[cold]
pub(crate) fn listener_failed(event: &'static str, listener: &str, cause: &FailureCause) {
    if !on() {
        return;
    }
    let label = match cause {
        FailureCause::Error(_) => "error",
        FailureCause::Panic(_) => "panic",
        FailureCause::NoRuntime => "no_runtime",
        FailureCause::ShuttingDown => "shutting_down",
        FailureCause::Cancelled => "cancelled",
        FailureCause::PayloadDropPanic(_) => "payload_drop_panic",
    };
    let listener: Arc<str> = Arc::from(listener);
    counter!(
        "event_bus_failed_total",
        "event" => event,
        "listener" => Arc::clone(&listener),
        "cause" => label
    )
    .increment(1);
    if matches!(cause, FailureCause::Panic(_)) {
        counter!("event_bus_panicked_total", "event" => event, "listener" => listener).increment(1);
    }
}

/// A `Pipeline::process` of a message from `source`.
#[cfg(feature = "pipeline")]
#[cold]
pub(crate) fn processed(source: &str, ok: bool, timer: Timer) {
    let Some(elapsed) = timer.elapsed() else {
        return;
    };
    let source = source.to_owned();
    histogram!("event_bus_pipeline_duration_seconds", "source" => source.clone())
        .record(elapsed.as_secs_f64());
    let outcome = if ok { "ok" } else { "error" };
    counter!("event_bus_pipeline_processed_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

/// A pipeline handler, at `position` in its chain, done with a message from `source` (its
/// duration includes the rest of the chain it called).
#[cfg(feature = "pipeline")]
#[cold]
pub(crate) fn handled(source: &str, position: usize, timer: Timer) {
    let Some(elapsed) = timer.elapsed() else {
        return;
    };
    histogram!(
        "event_bus_handler_duration_seconds",
        "source" => source.to_owned(),
        "handler" => position.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// A retry of a message from `source`.
#[cfg(feature = "pipeline")]
pub(crate) fn retried(source: &str) {
    if on() {
        counter!("event_bus_retried_total", "source" => source.to_owned()).increment(1);
    }
}

/// A message from `source` parked as a dead letter.
#[cfg(feature = "pipeline")]
pub(crate) fn dead_lettered(source: &str) {
    if on() {
        counter!("event_bus_dead_lettered_total", "source" => source.to_owned()).increment(1);
    }
}

/// A durable request run, with its outcome (`succeeded`, `retried`, `dead`).
#[cfg(feature = "pipeline")]
pub(crate) fn request_executed(event: &str, listener: &str, outcome: &'static str, timer: Timer) {
    let Some(elapsed) = timer.elapsed() else {
        return;
    };
    let (event, listener) = (event.to_owned(), listener.to_owned());
    histogram!(
        "event_bus_request_duration_seconds",
        "event" => event.clone(),
        "listener" => listener.clone()
    )
    .record(elapsed.as_secs_f64());
    counter!(
        "event_bus_requests_executed_total",
        "event" => event,
        "listener" => listener,
        "outcome" => outcome
    )
    .increment(1);
}

/// Sets a gauge labelled with a store namespace.
#[cfg(feature = "pipeline")]
pub(crate) fn depth(name: &'static str, namespace: &str, value: usize) {
    if on() {
        // Counts far below 2^52 are exact in an f64.
        #[allow(clippy::cast_precision_loss)]
        let value = value as f64;
        gauge!(name, "namespace" => namespace.to_owned()).set(value);
    }
}
