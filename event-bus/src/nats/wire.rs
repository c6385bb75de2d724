//! CloudEvents in NATS messages: attributes in `ce-` headers (binary mode) or the whole event as
//! JSON in the payload (structured mode), as the CloudEvents NATS binding describes.

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderName};

use crate::cloudevents::{self, CloudEvent, CloudEventError, Mode};

/// The headers and payload of a NATS message carrying `event` in `mode`, with `Nats-Msg-Id` set
/// to the event's identity, its `source` and `id` (percent-encoded, space-separated), so that
/// JetStream drops a second publish of the same event inside the stream's duplicate window, and
/// only of the same event: two sources may use the same id.
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
/// assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("/shop id-1"));
/// assert_eq!(payload, br#"{"order":7}"#);
/// assert_eq!(event_bus::nats::read(Some(&headers), &payload)?, event);
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
pub fn write(event: &CloudEvent, mode: Mode) -> Result<(HeaderMap, Vec<u8>), CloudEventError> {
    let mut headers = HeaderMap::new();
    let payload = cloudevents::write_with(event, mode, |name, value| {
        headers.insert(header_name(name)?, value);
        Ok(())
    })?;
    headers.insert(NATS_MESSAGE_ID, message_id(event));
    Ok((headers, payload))
}

/// The names of the headers most events carry, made once (a name made from a `&str` is
/// validated and copied into an allocation of its own, for every message).
const KNOWN_NAMES: [HeaderName; 12] = [
    HeaderName::from_static("ce-specversion"),
    HeaderName::from_static("ce-id"),
    HeaderName::from_static("ce-source"),
    HeaderName::from_static("ce-type"),
    HeaderName::from_static("ce-time"),
    HeaderName::from_static("ce-subject"),
    HeaderName::from_static("ce-dataschema"),
    HeaderName::from_static("ce-partitionkey"),
    HeaderName::from_static("ce-eventversion"),
    HeaderName::from_static("ce-traceparent"),
    HeaderName::from_static("ce-tracestate"),
    HeaderName::from_static("content-type"),
];

/// The header named `name`: one of [`KNOWN_NAMES`], or made for it.
fn header_name(name: &str) -> Result<HeaderName, CloudEventError> {
    if let Some(known) = KNOWN_NAMES.iter().find(|known| {
        let known: &str = known.as_ref();
        known == name
    }) {
        return Ok(known.clone());
    }
    name.parse()
        .map_err(|_| CloudEventError::invalid(name, "not a valid NATS header name"))
}

/// The `Nats-Msg-Id` of `event`: its source and id, each percent-encoded (so neither can break
/// the header line nor collide with the other).
fn message_id(event: &CloudEvent) -> String {
    let (source, id) = (
        cloudevents::header_value(event.source()),
        cloudevents::header_value(event.id()),
    );
    let mut message_id = String::with_capacity(source.len() + 1 + id.len());
    message_id.push_str(&source);
    message_id.push(' ');
    message_id.push_str(&id);
    message_id
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
    let headers = headers.map(HeaderMap::iter).into_iter().flatten();
    let mut content_type = None;
    let mut binary = false;
    for (name, values) in headers.clone() {
        let name: &str = name.as_ref();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = values.first().map(|value| value.as_str().to_owned());
        } else if name
            .get(..3)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("ce-"))
        {
            binary = true;
        }
    }
    let essence = content_type.as_deref().map(cloudevents::media_type_essence);
    match essence.as_deref() {
        // No headers that say otherwise: a structured event, as publishers without headers send.
        Some(cloudevents::STRUCTURED) => CloudEvent::from_json(payload),
        None if !binary => CloudEvent::from_json(payload),
        Some(cloudevents::BATCH) => Err(CloudEventError::UnsupportedMediaType(format!(
            "{} (the NATS binding carries one event per message)",
            cloudevents::BATCH
        ))),
        Some(other) if !binary => Err(CloudEventError::UnsupportedMediaType(other.to_owned())),
        _ => {
            let attributes = headers.filter_map(|(name, values)| {
                let name: &str = name.as_ref();
                if !name
                    .get(..3)
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case("ce-"))
                {
                    return None;
                }
                let value = match &values[..] {
                    [value] => Ok(value.as_str()),
                    _ => Err("given more than once"),
                };
                Some((&name[3..], value))
            });
            cloudevents::read_binary_with(attributes, content_type, payload)
        }
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
    fn the_message_id_is_the_source_and_id_and_cannot_break_the_header() {
        let event = CloudEvent::new("a\r\nNats-Rollup: all", "/shop x", "t");
        let Ok(event) = event else {
            panic!("{event:?}");
        };
        let written = write(&event, Mode::Binary);
        let Ok((headers, _)) = written else {
            panic!("{written:?}");
        };
        let id = headers
            .get(NATS_MESSAGE_ID)
            .map(|value| value.as_str().to_owned());
        assert_eq!(id.as_deref(), Some("/shop%20x a%0D%0ANats-Rollup:%20all"));
        assert!(headers.get("Nats-Rollup").is_none());
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
