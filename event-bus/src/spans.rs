//! The `tracing` spans of dispatch and pipelines, named and attributed after OpenTelemetry's
//! messaging conventions (`messaging.system`, `messaging.operation.type`,
//! `messaging.destination.name`, `messaging.message.id`), with `otel.name` set to
//! `"{operation} {destination}"` for exporters that read it (tracing-opentelemetry does).
//!
//! The table of spans is in the crate docs ("Tracing").

use tracing::Span;

/// The system name every span carries.
pub(crate) const SYSTEM: &str = "event-bus";

/// A span for one listener run of `event`.
#[inline]
pub(crate) fn listener(event: &'static str, listener: &str) -> Span {
    tracing::debug_span!(
        "event_bus.listener",
        otel.name = %format_args!("process {event}"),
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.destination.name = event,
        event_bus.listener = listener,
    )
}

/// A span for one message through a pipeline.
#[cfg(feature = "pipeline")]
#[inline]
pub(crate) fn pipeline(source: &str, id: &str, key: &str) -> Span {
    tracing::debug_span!(
        "event_bus.pipeline",
        otel.name = %format_args!("process {source}"),
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.destination.name = source,
        messaging.message.id = id,
        event_bus.key = key,
    )
}

/// A span for one message a durable inbox processes.
#[cfg(feature = "pipeline")]
#[inline]
pub(crate) fn inbox(source: &str, id: &str) -> Span {
    tracing::debug_span!(
        "event_bus.inbox",
        otel.name = %format_args!("process {source}"),
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.destination.name = source,
        messaging.message.id = id,
    )
}

/// A span for one run of a durable listener's request.
#[cfg(feature = "pipeline")]
#[inline]
pub(crate) fn request(event: &str, id: &str, listener: &str) -> Span {
    tracing::debug_span!(
        "event_bus.request",
        otel.name = %format_args!("process {event}"),
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.destination.name = event,
        messaging.message.id = id,
        event_bus.listener = listener,
    )
}

/// A span for one handler of a pipeline, at `position` in its chain.
#[cfg(feature = "pipeline")]
#[inline]
pub(crate) fn handler(source: &str, id: &str, position: usize) -> Span {
    tracing::debug_span!(
        "event_bus.handler",
        otel.name = %format_args!("process {source}"),
        messaging.system = SYSTEM,
        messaging.operation.type = "process",
        messaging.destination.name = source,
        messaging.message.id = id,
        event_bus.handler = position,
    )
}
