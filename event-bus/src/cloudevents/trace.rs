//! Distributed tracing across CloudEvents: the W3C Trace Context carried in the `traceparent` and
//! `tracestate` extensions (the CloudEvents distributed-tracing extension).
//!
//! A [`Receiver`](super::Receiver) reads them from each event into the `cloudevents.receive`
//! `tracing` span it opens for the event, and makes them the *current* context while the event is
//! delivered; a [`Sender`](super::Sender) writes the current context (as a child: same trace id, a
//! fresh parent id) into every event it makes from a typed event or message. So a listener that
//! sends events while handling one continues its trace across processes. Code that gets its
//! context elsewhere (an OpenTelemetry span, an incoming HTTP request) sets it with
//! [`TraceContext::scope`].

use std::future::Future;

use super::event::{CloudEvent, Extension};

tokio::task_local! {
    /// `None` inside [`TraceContext::within`] for an event that carries no context.
    static CURRENT: Option<TraceContext>;
}

/// A W3C Trace Context: a validated `traceparent` and the `tracestate` that goes with it.
///
/// ```
/// use event_bus::cloudevents::TraceContext;
///
/// let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
/// assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// let child = context.child();
/// assert_eq!(child.trace_id(), context.trace_id());
/// assert_ne!(child.traceparent(), context.traceparent());
/// assert!(TraceContext::parse("not a traceparent", None).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// Parses a `traceparent` (version `00`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex
    /// flags>`, ids not all zero); `None` if it is not one.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace, parent, flags] = parts[..] else {
            return None;
        };
        let hex = |text: &str, len: usize| {
            text.len() == len
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let valid = version == "00"
            && hex(trace, 32)
            && hex(parent, 16)
            && hex(flags, 2)
            && trace.bytes().any(|b| b != b'0')
            && parent.bytes().any(|b| b != b'0');
        valid.then(|| TraceContext {
            traceparent: parts.join("-"),
            tracestate: tracestate
                .map(str::to_owned)
                .filter(|state| !state.is_empty()),
        })
    }

    /// The context an event carries in its `traceparent` / `tracestate` extensions, if valid.
    ///
    /// ```
    /// use event_bus::cloudevents::{CloudEvent, TraceContext};
    ///
    /// let event = CloudEvent::new("1", "/s", "t")?
    ///     .with_extension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
    /// assert!(TraceContext::of(&event).is_some());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn of(event: &CloudEvent) -> Option<Self> {
        let text = |name: &str| event.extension(name).and_then(Extension::as_str);
        TraceContext::parse(text("traceparent")?, text("tracestate"))
    }

    /// The context of the running task, if one is set (by a receiver or [`scope`](Self::scope)).
    ///
    /// ```
    /// use event_bus::cloudevents::TraceContext;
    ///
    /// assert!(TraceContext::current().is_none());
    /// ```
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok().flatten()
    }

    /// Runs `future` with `self` as the current context.
    ///
    /// ```
    /// use event_bus::cloudevents::TraceContext;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    /// let seen = context.clone().scope(async { TraceContext::current() }).await;
    /// assert_eq!(seen, Some(context));
    /// # }
    /// ```
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(Some(self), future).await
    }

    /// Runs `future` with `context` as the current context (none for `None`): one future type
    /// for both cases, so that a caller awaiting either does not hold room for two.
    pub(crate) fn within<F: Future>(
        context: Option<Self>,
        future: F,
    ) -> impl Future<Output = F::Output> {
        CURRENT.scope(context, future)
    }

    /// A child context: the same trace id and flags, a fresh parent id, the same `tracestate`.
    pub fn child(&self) -> Self {
        let mut parts: Vec<String> = self.traceparent.split('-').map(str::to_owned).collect();
        if let Some(parent) = parts.get_mut(2) {
            let id = loop {
                let id = fastrand::u64(..);
                if id != 0 {
                    break id;
                }
            };
            *parent = format!("{id:016x}");
        }
        TraceContext {
            traceparent: parts.join("-"),
            tracestate: self.tracestate.clone(),
        }
    }

    /// The trace id (32 hex digits).
    pub fn trace_id(&self) -> &str {
        self.traceparent.split('-').nth(1).unwrap_or_default()
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` value, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// `event` with a child of the current context (if there is one) written into it: what a
    /// sender does to an event it sends while handling another.
    pub(crate) fn stamp(mut event: CloudEvent) -> CloudEvent {
        if let Some(context) = TraceContext::current() {
            context.child().write_into(&mut event);
        }
        event
    }

    /// Writes this context into `event`'s `traceparent` / `tracestate` extensions.
    pub(crate) fn write_into(&self, event: &mut CloudEvent) {
        event.insert_extension("traceparent", Extension::String(self.traceparent.clone()));
        match &self.tracestate {
            Some(state) => event.insert_extension("tracestate", Extension::String(state.clone())),
            None => {
                event.remove_extension("tracestate");
            }
        }
    }
}
