//! The HTTP protocol binding of CloudEvents v1.0 on the `http` crate's types: binary mode (`ce-`
//! headers, the data as the body), structured mode (`application/cloudevents+json`) and batch
//! mode (`application/cloudevents-batch+json`).
//!
//! In binary mode an empty body reads as an event without data (the mode cannot tell the two
//! apart), and a `datacontenttype` naming a CloudEvents media type is refused (the receiver would
//! read the body as a structured event): send those in structured mode.
//!
//! Header values are percent-encoded as the binding requires (section 3.1.3.2): a space, `"`, `%`
//! and every byte outside printable ASCII, after UTF-8 encoding; and decoded on the way in, where
//! invalid UTF-8 is a typed error.

use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::error::CloudEventError;
use super::event::CloudEvent;

/// The media type of one event in structured mode.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The media type of a batch.
pub const BATCH: &str = "application/cloudevents-batch+json";

/// What the binding percent-encodes in header values: controls, space, `"`, `%` (and, always,
/// every non-ASCII byte).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// How an event is written to an HTTP message.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, Mode, write};
///
/// let event = CloudEvent::new("1", "/s", "t")?.with_data("application/json", b"{}".to_vec());
/// let mut headers = http::HeaderMap::new();
/// let body = write(&event, Mode::Binary, &mut headers)?;
/// assert_eq!(headers["ce-id"], "1");
/// assert_eq!(body, b"{}");
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Attributes as `ce-` headers, the data as the body with its own `Content-Type` (the
    /// default: any receiver can read the data without knowing CloudEvents).
    #[default]
    Binary,
    /// The whole event as one JSON document (`application/cloudevents+json`).
    Structured,
}

/// What one HTTP request carried.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, Received, read};
///
/// let event = CloudEvent::new("1", "/s", "t")?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("content-type", "application/cloudevents-batch+json".parse().unwrap());
/// let received = read(&headers, &CloudEvent::batch_to_json(&[event.clone()]))?;
/// assert_eq!(received, Received::Batch(vec![event]));
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// One event, in binary or structured mode.
    One(CloudEvent),
    /// A batch (possibly empty).
    Batch(Vec<CloudEvent>),
}

impl Received {
    /// The events, in order.
    ///
    /// ```
    /// # use event_bus::cloudevents::{CloudEvent, Received};
    /// let event = CloudEvent::new("1", "/s", "t")?;
    /// assert_eq!(Received::One(event.clone()).into_events(), vec![event]);
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn into_events(self) -> Vec<CloudEvent> {
        match self {
            Received::One(event) => vec![event],
            Received::Batch(events) => events,
        }
    }
}

/// Writes `event` into `headers` and returns the body, in `mode`.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, Mode, write};
///
/// let event = CloudEvent::new("1", "/s", "t")?.with_subject("größe 7");
/// let mut headers = http::HeaderMap::new();
/// write(&event, Mode::Binary, &mut headers)?;
/// assert_eq!(headers["ce-subject"], "gr%C3%B6%C3%9Fe%207");
///
/// let mut headers = http::HeaderMap::new();
/// let body = write(&event, Mode::Structured, &mut headers)?;
/// assert_eq!(headers["content-type"], "application/cloudevents+json");
/// assert_eq!(CloudEvent::from_json(&body)?, event);
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
pub fn write(
    event: &CloudEvent,
    mode: Mode,
    headers: &mut HeaderMap,
) -> Result<Vec<u8>, CloudEventError> {
    write_with(event, mode, |name, value| {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CloudEventError::invalid(name, "not a valid header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| CloudEventError::invalid(name, "cannot be written as a header value"))?;
        headers.insert(header, value);
        Ok(())
    })
}

/// A `Content-Type` without its parameters, in lower case (`Application/JSON; charset=utf-8`
/// → `application/json`).
pub(crate) fn media_type_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `value` percent-encoded for a header as the binding says (control characters, space, `"` and
/// `%`): never a line break.
pub(crate) fn header_value(value: &str) -> std::borrow::Cow<'_, str> {
    utf8_percent_encode(value, HEADER_VALUE).into()
}

/// [`write`] into any header store: `header(name, value)` is called for each header (names in
/// lower case, values already percent-encoded); returns the body. Shared with the NATS binding.
pub(crate) fn write_with(
    event: &CloudEvent,
    mode: Mode,
    mut header: impl FnMut(&str, &str) -> Result<(), CloudEventError>,
) -> Result<Vec<u8>, CloudEventError> {
    match mode {
        Mode::Structured => {
            header(CONTENT_TYPE.as_str(), STRUCTURED)?;
            Ok(event.to_json())
        }
        Mode::Binary => {
            let mut name = String::from("ce-");
            for (attribute, value) in event.attributes() {
                name.truncate(3);
                name.push_str(attribute);
                header(&name, &header_value(&value))?;
            }
            if let Some(content_type) = event.datacontenttype() {
                const CLOUDEVENTS: &str = "application/cloudevents";
                if content_type
                    .trim_start()
                    .get(..CLOUDEVENTS.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(CLOUDEVENTS))
                {
                    // The receiver would read the body as a structured event or a batch.
                    return Err(CloudEventError::invalid(
                        "datacontenttype",
                        "a CloudEvents media type cannot be the data's type in binary mode; use structured mode",
                    ));
                }
                if !content_type
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                {
                    return Err(CloudEventError::invalid(
                        "datacontenttype",
                        "a Content-Type header value is visible ASCII",
                    ));
                }
                header(CONTENT_TYPE.as_str(), content_type)?;
            }
            Ok(event.data().map(<[u8]>::to_vec).unwrap_or_default())
        }
    }
}

/// Writes `events` as a batch into `headers` and returns the body.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, write_batch};
///
/// let mut headers = http::HeaderMap::new();
/// let body = write_batch(&[CloudEvent::new("1", "/s", "t")?], &mut headers);
/// assert_eq!(headers["content-type"], "application/cloudevents-batch+json");
/// assert_eq!(CloudEvent::batch_from_json(&body)?.len(), 1);
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
pub fn write_batch(events: &[CloudEvent], headers: &mut HeaderMap) -> Vec<u8> {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(BATCH));
    CloudEvent::batch_to_json(events)
}

/// Reads the event (or batch) an HTTP message carries, in whichever mode it was sent.
///
/// The mode follows the binding: a `Content-Type` of `application/cloudevents+json` is structured
/// mode, `application/cloudevents-batch+json` a batch; otherwise a `ce-specversion` header means
/// binary mode. Anything else is [`UnsupportedMediaType`](CloudEventError::UnsupportedMediaType).
///
/// ```
/// use event_bus::cloudevents::{Received, read};
///
/// let mut headers = http::HeaderMap::new();
/// for (name, value) in [
///     ("ce-specversion", "1.0"),
///     ("ce-id", "A234-1234-1234"),
///     ("ce-source", "https://example.com/x"),
///     ("ce-type", "com.example.someevent"),
///     ("ce-comexampleextension1", "value"),
///     ("content-type", "application/json"),
/// ] {
///     headers.insert(name, value.parse().unwrap());
/// }
/// let Received::One(event) = read(&headers, br#"{"x":1}"#)? else { unreachable!() };
/// assert_eq!(event.id(), "A234-1234-1234");
/// assert_eq!(event.datacontenttype(), Some("application/json"));
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Received, CloudEventError> {
    let content_type = match headers.get(CONTENT_TYPE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| CloudEventError::UnsupportedMediaType("(not ASCII)".into()))?
                .to_owned(),
        ),
    };
    let essence = content_type.as_deref().map(media_type_essence);
    match essence.as_deref() {
        Some(STRUCTURED) => CloudEvent::from_json(body).map(Received::One),
        Some(BATCH) => CloudEvent::batch_from_json(body).map(Received::Batch),
        _ if headers.contains_key("ce-specversion") => {
            read_binary(headers, content_type, body).map(Received::One)
        }
        Some(other) if other.starts_with("application/cloudevents") => {
            Err(CloudEventError::UnsupportedMediaType(other.to_owned()))
        }
        Some(other) => Err(CloudEventError::UnsupportedMediaType(other.to_owned())),
        // Some `ce-` headers: a binary-mode event without its specversion.
        None if headers.keys().any(|name| name.as_str().starts_with("ce-")) => {
            Err(CloudEventError::MissingAttribute("specversion"))
        }
        None => Err(CloudEventError::UnsupportedMediaType(
            "(none: no Content-Type and no ce- headers)".into(),
        )),
    }
}

fn read_binary(
    headers: &HeaderMap,
    content_type: Option<String>,
    body: &[u8],
) -> Result<CloudEvent, CloudEventError> {
    let attributes = headers.keys().filter_map(|name| {
        let attribute = name.as_str().strip_prefix("ce-")?;
        let mut values = headers.get_all(name).iter();
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().map_err(|_| "the header value is not ASCII"),
            _ => Err("given more than once"),
        };
        Some((attribute, value))
    });
    read_binary_with(attributes, content_type, body)
}

/// A binary-mode event from its `ce-` attributes (name without the prefix, and the header's
/// percent-encoded value or why it cannot be read), its content type and its body. Shared with
/// the NATS binding.
pub(crate) fn read_binary_with<'h>(
    attributes: impl Iterator<Item = (&'h str, Result<&'h str, &'static str>)>,
    content_type: Option<String>,
    body: &[u8],
) -> Result<CloudEvent, CloudEventError> {
    let mut event = CloudEvent::placeholder();
    let mut seen = Vec::new();
    for (attribute, value) in attributes {
        let text = value.map_err(|reason| CloudEventError::invalid(attribute, reason))?;
        let decoded = percent_decode_str(text)
            .decode_utf8()
            .map_err(|_| CloudEventError::invalid(attribute, "percent-decodes to invalid UTF-8"))?;
        event.set_attribute(attribute, decoded.into_owned())?;
        seen.push(attribute);
    }
    for required in ["specversion", "id", "source", "type"] {
        if !seen.contains(&required) {
            return Err(CloudEventError::MissingAttribute(required));
        }
    }
    // Binary mode cannot tell "no data" from "empty data": an empty body is no data.
    let data = (!body.is_empty()).then(|| body.to_vec());
    event.set_data(content_type, data);
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    const REQUIRED: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ];

    #[test]
    fn percent_encoding_follows_the_binding() {
        let event = CloudEvent::new("1", "/s", "t")
            .unwrap()
            .with_subject("a \"b\" 100% €\u{7f}~!");
        let mut map = HeaderMap::new();
        write(&event, Mode::Binary, &mut map).unwrap();
        assert_eq!(map["ce-subject"], "a%20%22b%22%20100%25%20%E2%82%AC%7F~!");
        assert_eq!(read(&map, b"").unwrap(), Received::One(event));
    }

    #[test]
    fn binary_mode_needs_every_required_attribute() {
        for (missing, (header, _)) in REQUIRED.iter().enumerate() {
            let pairs: Vec<_> = REQUIRED
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != missing)
                .map(|(_, pair)| *pair)
                .collect();
            let error = read(&headers(&pairs), b"").unwrap_err();
            let name = header.trim_start_matches("ce-");
            match (missing, error) {
                // Without ce-specversion it is not a binary-mode event at all.
                (0, CloudEventError::MissingAttribute("specversion")) => {}
                (_, CloudEventError::MissingAttribute(attribute)) => assert_eq!(attribute, name),
                (_, other) => panic!("{other}"),
            }
        }
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-subject", "%FF%FE"));
        assert!(matches!(
            read(&headers(&pairs), b""),
            Err(CloudEventError::InvalidAttribute { .. })
        ));
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-id", "2"));
        assert!(read(&headers(&pairs), b"").is_err(), "an attribute twice");
        let mut pairs = REQUIRED.to_vec();
        pairs[0] = ("ce-specversion", "0.3");
        assert!(matches!(
            read(&headers(&pairs), b""),
            Err(CloudEventError::UnsupportedSpecVersion(_))
        ));
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-Bad_Name", "x"));
        assert!(read(&headers(&pairs), b"").is_err());
        assert!(matches!(
            read(&headers(&[("content-type", "text/plain")]), b"x"),
            Err(CloudEventError::UnsupportedMediaType(_))
        ));
        assert_eq!(
            read(&headers(&[("content-type", "text/plain")]), b"x")
                .unwrap_err()
                .status(),
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn the_data_keeps_its_own_content_type_in_binary_mode() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("content-type", "text/plain; charset=utf-8"));
        let Received::One(event) = read(&headers(&pairs), b"hello").unwrap() else {
            panic!("one event");
        };
        assert_eq!(event.datacontenttype(), Some("text/plain; charset=utf-8"));
        assert_eq!(event.data(), Some(&b"hello"[..]));
        let Received::One(empty) = read(&headers(&REQUIRED), b"").unwrap() else {
            panic!("one event");
        };
        assert_eq!(empty.data(), None);
    }
}
