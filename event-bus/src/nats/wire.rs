//! CloudEvents in NATS messages: attributes in `ce-` headers (binary mode) or the whole event as
//! JSON in the payload (structured mode), as the CloudEvents NATS binding describes.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;

use crate::cloudevents::{self, CloudEvent, CloudEventError, Mode, Received};

/// The headers and payload of a NATS message carrying `event` in `mode`, with `Nats-Msg-Id` set
/// to the event's id (so JetStream drops a second publish of the same event inside the stream's
/// duplicate window).
///
/// Binary mode uses the HTTP binding's rules (a `ce-` header per attribute, percent-encoded, and
/// `Content-Type` for `datacontenttype`); structured mode puts the JSON event format in the
/// payload with `Content-Type: application/cloudevents+json`.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, Mode};
///
/// let event = CloudEvent::new("id-1", "/shop", "order.placed")?
///     .with_data("application/json", br#"{"order":7}"#.to_vec());
/// let (headers, payload) = event_bus::nats::write(&event, Mode::Binary)?;
/// assert_eq!(headers.get("ce-type").map(|v| v.as_str()), Some("order.placed"));
/// assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("id-1"));
/// assert_eq!(payload, br#"{"order":7}"#);
/// assert_eq!(event_bus::nats::read(Some(&headers), &payload)?, event);
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
pub fn write(event: &CloudEvent, mode: Mode) -> Result<(HeaderMap, Vec<u8>), CloudEventError> {
    let mut http = http::HeaderMap::new();
    let payload = cloudevents::write(event, mode, &mut http)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &http {
        let value = value
            .to_str()
            .map_err(|_| CloudEventError::invalid(name.as_str(), "not a visible ASCII value"))?;
        headers.insert(name.as_str(), value);
    }
    headers.insert(NATS_MESSAGE_ID, event.id());
    Ok((headers, payload))
}

/// The CloudEvent a NATS message carries, in either mode. A message with neither `ce-` headers
/// nor a `Content-Type` is read as a structured event (what publishers without headers send).
/// Batches are not part of the NATS binding and are refused.
///
/// ```
/// use event_bus::cloudevents::CloudEventError;
///
/// let structured = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
/// assert_eq!(event_bus::nats::read(None, structured)?.event_type(), "t");
/// assert!(matches!(
///     event_bus::nats::read(None, b"not an event"),
///     Err(CloudEventError::Malformed(_))
/// ));
/// # Ok::<(), CloudEventError>(())
/// ```
pub fn read(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<CloudEvent, CloudEventError> {
    let mut http = http::HeaderMap::new();
    for (name, values) in headers.map(HeaderMap::iter).into_iter().flatten() {
        let name: &str = name.as_ref();
        let Ok(http_name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            if name.to_ascii_lowercase().starts_with("ce-") {
                return Err(CloudEventError::invalid(name, "not a valid header name"));
            }
            continue; // not ours
        };
        for value in values {
            let value = http::HeaderValue::from_str(value.as_str())
                .map_err(|_| CloudEventError::invalid(name, "not a valid header value"))?;
            http.append(http_name.clone(), value);
        }
    }
    let binary = http.keys().any(|name| name.as_str().starts_with("ce-"));
    if !binary && !http.contains_key(http::header::CONTENT_TYPE) {
        return CloudEvent::from_json(payload);
    }
    match cloudevents::read(&http, payload)? {
        Received::One(event) => Ok(event),
        Received::Batch(_) => Err(CloudEventError::UnsupportedMediaType(format!(
            "{} (the NATS binding carries one event per message)",
            cloudevents::BATCH
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_round_trip_with_awkward_attributes() {
        let event = CloudEvent::new("id/ü 1", "/shop?x=1", "order placed")
            .and_then(|event| event.with_extension("partitionkey", "größe 7"))
            .map(|event| {
                event
                    .with_subject("a b")
                    .with_data("text/plain", b"hi".to_vec())
            });
        let Ok(event) = event else {
            panic!("valid event: {event:?}");
        };
        for mode in [Mode::Binary, Mode::Structured] {
            let written = write(&event, mode);
            let Ok((headers, payload)) = written else {
                panic!("{mode:?}: {written:?}");
            };
            assert_eq!(read(Some(&headers), &payload).ok(), Some(event.clone()));
        }
    }

    #[test]
    fn a_batch_or_a_foreign_content_type_is_a_typed_error() {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", cloudevents::BATCH);
        assert!(matches!(
            read(Some(&headers), b"[]"),
            Err(CloudEventError::UnsupportedMediaType(_))
        ));
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "text/plain");
        assert!(matches!(
            read(Some(&headers), b"x"),
            Err(CloudEventError::UnsupportedMediaType(_))
        ));
    }
}
