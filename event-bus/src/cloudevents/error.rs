//! [`CloudEventError`]: everything that can be wrong with a CloudEvent from outside, typed.

use http::StatusCode;

/// Why a CloudEvent could not be read, written or decoded into a typed event.
///
/// Every variant caused by the input maps to a 4xx status ([`status`](CloudEventError::status)),
/// so a receiver answers a sender's mistake with a reason and never with a 5xx.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, CloudEventError};
///
/// let error = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","type":"t"}"#).unwrap_err();
/// assert!(matches!(error, CloudEventError::MissingAttribute("source")));
/// assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudEventError {
    /// A required attribute (`id`, `source`, `specversion`, `type`) is absent.
    #[error("the required attribute `{0}` is missing")]
    MissingAttribute(&'static str),
    /// An attribute is present but not valid (empty, wrong JSON type, bad name, bad encoding…).
    #[error("the attribute `{name}` is invalid: {reason}")]
    InvalidAttribute {
        /// The attribute's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `specversion` is not `1.0`.
    #[error("unsupported CloudEvents specversion `{0}` (only 1.0 is)")]
    UnsupportedSpecVersion(String),
    /// The request is neither binary mode (no `ce-specversion` header) nor a CloudEvents media
    /// type.
    #[error(
        "unsupported media type `{0}`: send a binary-mode event (ce-* headers) or application/cloudevents+json / application/cloudevents-batch+json"
    )]
    UnsupportedMediaType(String),
    /// The body is not the JSON the content type promises.
    #[error("malformed CloudEvents JSON: {0}")]
    Malformed(String),
    /// The event's `type` is not the one the typed decoder expects.
    #[error("unexpected event type `{found}` (expected `{expected}`)")]
    UnexpectedType {
        /// The type the decoder wants (`E::NAME`).
        expected: &'static str,
        /// The type the event carries.
        found: String,
    },
    /// The event carries a version (the `eventversion` extension) that the typed decoder does not
    /// read.
    #[error("event `{ty}` has version {found}; this program reads version {expected}")]
    VersionMismatch {
        /// The event type.
        ty: String,
        /// `E::VERSION`.
        expected: u32,
        /// The version the event carries.
        found: String,
    },
    /// The event has no data, but the typed decoder needs some.
    #[error("event `{0}` has no data")]
    NoData(String),
    /// The data is not JSON (`datacontenttype` names another format).
    #[error("event `{ty}` has data of type `{content_type}`, not JSON")]
    NotJson {
        /// The event type.
        ty: String,
        /// Its `datacontenttype`.
        content_type: String,
    },
    /// The data is JSON that does not deserialize into the typed event.
    #[error("the data of event `{ty}` does not decode: {error}")]
    Data {
        /// The event type.
        ty: String,
        /// The deserializer's error.
        #[source]
        error: serde_json::Error,
    },
    /// A typed event could not be serialized (its `Serialize` impl failed).
    #[error("cannot encode the event: {0}")]
    Encode(#[source] serde_json::Error),
}

impl CloudEventError {
    /// The HTTP status a receiver answers with: 415 for an unsupported media type, 500 for an
    /// event this program could not encode, 400 for everything else (the sender's input).
    ///
    /// ```
    /// use event_bus::cloudevents::CloudEventError;
    ///
    /// let error = CloudEventError::UnsupportedMediaType("text/plain".into());
    /// assert_eq!(error.status().as_u16(), 415);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            CloudEventError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CloudEventError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        CloudEventError::InvalidAttribute {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
