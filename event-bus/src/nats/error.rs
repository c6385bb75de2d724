//! [`NatsError`]: what can go wrong between this process and NATS JetStream, typed.

use crate::cloudevents::CloudEventError;

/// Why a NATS operation failed.
///
/// [`is_retryable`](NatsError::is_retryable) tells the errors worth trying again (the server was
/// unreachable, slow or restarting) from those that will fail the same way again (a bad name, a
/// configuration the server refuses, an event that cannot be encoded).
///
/// ```
/// use event_bus::nats::NatsError;
///
/// let error = NatsError::Config("a group name cannot contain `.`".into());
/// assert!(!error.is_retryable());
/// assert!(error.to_string().contains("group name"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// Could not connect to the server.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server's URL.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// A name given to this library is not valid for NATS (a subject, a stream, a group).
    #[error("invalid NATS configuration: {0}")]
    Config(String),
    /// The event could not be written as a CloudEvent (its payload does not serialize, or an
    /// attribute is not valid).
    #[error(transparent)]
    Encode(#[from] CloudEventError),
    /// The server refused a stream or consumer configuration, or a message (too large, headers
    /// too long): trying again fails the same way.
    #[error("JetStream refused `{what}`: {reason}")]
    Refused {
        /// What was asked (`stream EB_orders`, `consumer billing`, `publish to orders`…).
        what: String,
        /// What the server said.
        reason: String,
    },
    /// Creating or looking up a stream or a consumer failed (no answer in time, the server away).
    #[error("JetStream did not answer `{what}`: {reason}")]
    JetStream {
        /// What was asked (`stream EB_orders`, `consumer billing`…).
        what: String,
        /// What the server or client said.
        reason: String,
    },
    /// A publish was not acknowledged by the stream (timeout, no stream for the subject, the
    /// server went away): the event may or may not be stored; publishing it again is safe
    /// inside the stream's duplicate window (same `Nats-Msg-Id`).
    #[error("publish to `{subject}` was not acknowledged: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// What the client reported.
        reason: String,
    },
}

impl NatsError {
    /// Whether trying again later may succeed.
    ///
    /// ```
    /// use event_bus::nats::NatsError;
    ///
    /// let error = NatsError::Publish { subject: "orders".into(), reason: "timed out".into() };
    /// assert!(error.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NatsError::Connect { .. } | NatsError::JetStream { .. } | NatsError::Publish { .. }
        )
    }

    pub(crate) fn jetstream(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        NatsError::JetStream {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// [`Refused`](NatsError::Refused) when the server answered with an error, else
    /// [`JetStream`](NatsError::JetStream).
    pub(crate) fn answered(
        what: impl Into<String>,
        reason: impl std::fmt::Display,
        server_refused: bool,
    ) -> Self {
        if server_refused {
            NatsError::Refused {
                what: what.into(),
                reason: reason.to_string(),
            }
        } else {
            NatsError::jetstream(what, reason)
        }
    }
}
