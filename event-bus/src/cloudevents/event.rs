//! [`CloudEvent`]: the CloudEvents v1.0 context attributes, extensions and data, with the JSON
//! event format (structured mode and batches).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::value::RawValue;

use super::error::CloudEventError;
use super::time;

/// The only CloudEvents version this crate reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// The attributes the specification defines; every other name is an extension.
const RESERVED: [&str; 10] = [
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
    "data_base64",
];

/// One CloudEvents v1.0 event: its context attributes, extensions and data (kept as bytes, exactly
/// as received or encoded).
///
/// Usually made from a typed event with [`CloudEvent::from_event`] and read back with
/// [`CloudEvent::decode`]; built by hand with [`CloudEvent::new`] and the `with_*` methods.
///
/// ```
/// use event_bus::cloudevents::{CloudEvent, Extension};
///
/// let event = CloudEvent::new("42", "/shop", "com.example.order.placed")?
///     .with_subject("order-7")
///     .with_data("application/json", br#"{"order":7}"#.to_vec())
///     .with_extension("partitionkey", "7")?;
/// assert_eq!(event.event_type(), "com.example.order.placed");
/// assert_eq!(event.extension("partitionkey").and_then(Extension::as_str), Some("7"));
///
/// let json = event.to_json();
/// assert_eq!(CloudEvent::from_json(&json)?, event);
/// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    id: String,
    source: String,
    ty: String,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    extensions: BTreeMap<String, Extension>,
    data: Option<Vec<u8>>,
}

/// An extension attribute's value: the JSON format keeps strings, booleans and integers apart;
/// HTTP headers carry every value as a string.
///
/// ```
/// use event_bus::cloudevents::Extension;
///
/// assert_eq!(Extension::from(3).to_string(), "3");
/// assert_eq!(Extension::from("eu").to_string(), "eu");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// A string value.
    String(String),
    /// A boolean value.
    Boolean(bool),
    /// An integer value.
    Integer(i64),
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extension::String(value) => f.write_str(value),
            Extension::Boolean(value) => write!(f, "{value}"),
            Extension::Integer(value) => write!(f, "{value}"),
        }
    }
}

impl Extension {
    /// The value if it is a string.
    ///
    /// ```
    /// use event_bus::cloudevents::Extension;
    ///
    /// assert_eq!(Extension::from("eu").as_str(), Some("eu"));
    /// assert_eq!(Extension::from(true).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Extension::String(value) => Some(value),
            _ => None,
        }
    }
}

impl From<&str> for Extension {
    fn from(value: &str) -> Self {
        Extension::String(value.to_owned())
    }
}

impl From<String> for Extension {
    fn from(value: String) -> Self {
        Extension::String(value)
    }
}

impl From<bool> for Extension {
    fn from(value: bool) -> Self {
        Extension::Boolean(value)
    }
}

impl From<i64> for Extension {
    fn from(value: i64) -> Self {
        Extension::Integer(value)
    }
}

impl From<i32> for Extension {
    fn from(value: i32) -> Self {
        Extension::Integer(i64::from(value))
    }
}

impl CloudEvent {
    /// An event with the three attributes every event needs besides `specversion`; each must be
    /// non-empty.
    ///
    /// ```
    /// use event_bus::cloudevents::CloudEvent;
    ///
    /// assert!(CloudEvent::new("1", "/here", "ping").is_ok());
    /// assert!(CloudEvent::new("", "/here", "ping").is_err());
    /// ```
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Result<Self, CloudEventError> {
        let event = CloudEvent {
            id: non_empty("id", id.into())?,
            source: non_empty("source", source.into())?,
            ty: non_empty("type", event_type.into())?,
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        };
        Ok(event)
    }

    /// The event's id: with `source`, what identifies it (a duplicate has both equal).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert_eq!(CloudEvent::new("1", "/s", "t")?.id(), "1");
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the event happened (a URI reference).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert_eq!(CloudEvent::new("1", "/s", "t")?.source(), "/s");
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The event's `type` (for a typed event, `E::NAME`).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert_eq!(CloudEvent::new("1", "/s", "t")?.event_type(), "t");
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn event_type(&self) -> &str {
        &self.ty
    }

    /// Always [`SPEC_VERSION`].
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert_eq!(CloudEvent::new("1", "/s", "t")?.specversion(), "1.0");
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn specversion(&self) -> &str {
        SPEC_VERSION
    }

    /// The media type of the data, if given.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_data("text/plain", b"hi".to_vec());
    /// assert_eq!(event.datacontenttype(), Some("text/plain"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn datacontenttype(&self) -> Option<&str> {
        self.datacontenttype.as_deref()
    }

    /// The schema the data adheres to, if given.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_dataschema("https://example.com/v2");
    /// assert_eq!(event.dataschema(), Some("https://example.com/v2"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }

    /// The subject of the event in the context of its source (for a keyed typed event, its key).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_subject("order-7");
    /// assert_eq!(event.subject(), Some("order-7"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// When the event happened, as the RFC 3339 text it was given or received with.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_time("2026-12-01T10:00:00Z")?;
    /// assert_eq!(event.time(), Some("2026-12-01T10:00:00Z"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn time(&self) -> Option<&str> {
        self.time.as_deref()
    }

    /// An extension attribute's value.
    ///
    /// ```
    /// # use event_bus::cloudevents::{CloudEvent, Extension};
    /// let event = CloudEvent::new("1", "/s", "t")?.with_extension("region", "eu")?;
    /// assert_eq!(event.extension("region").and_then(Extension::as_str), Some("eu"));
    /// assert_eq!(event.extension("other"), None);
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn extension(&self, name: &str) -> Option<&Extension> {
        self.extensions.get(name)
    }

    /// Every extension attribute, by name.
    ///
    /// ```
    /// # use event_bus::cloudevents::{CloudEvent, Extension};
    /// let event = CloudEvent::new("1", "/s", "t")?.with_extension("retries", 3)?;
    /// assert_eq!(event.extensions().get("retries"), Some(&Extension::Integer(3)));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn extensions(&self) -> &BTreeMap<String, Extension> {
        &self.extensions
    }

    /// The data, as bytes.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_data("text/plain", b"hi".to_vec());
    /// assert_eq!(event.data(), Some(&b"hi"[..]));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// Takes the data out of the event.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_data("text/plain", b"hi".to_vec());
    /// assert_eq!(event.into_data(), Some(b"hi".to_vec()));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn into_data(self) -> Option<Vec<u8>> {
        self.data
    }

    /// Sets the data and its media type.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_data("application/json", b"[1]".to_vec());
    /// assert_eq!(event.data(), Some(&b"[1]"[..]));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_data(mut self, content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.datacontenttype = Some(content_type.into());
        self.data = Some(data.into());
        self
    }

    /// Sets `subject`.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert_eq!(CloudEvent::new("1", "/s", "t")?.with_subject("x").subject(), Some("x"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `dataschema`.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_dataschema("urn:v2");
    /// assert_eq!(event.dataschema(), Some("urn:v2"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_dataschema(mut self, schema: impl Into<String>) -> Self {
        self.dataschema = Some(schema.into());
        self
    }

    /// Sets `time` from RFC 3339 text (checked).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert!(CloudEvent::new("1", "/s", "t")?.with_time("2026-12-01T10:00:00.5+01:00").is_ok());
    /// assert!(CloudEvent::new("1", "/s", "t")?.with_time("yesterday").is_err());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_time(mut self, time: impl Into<String>) -> Result<Self, CloudEventError> {
        let time = time.into();
        if !time::is_rfc3339(&time) {
            return Err(CloudEventError::invalid(
                "time",
                format!("`{time}` is not RFC 3339"),
            ));
        }
        self.time = Some(time);
        Ok(self)
    }

    /// Sets `time` to now (UTC).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert!(CloudEvent::new("1", "/s", "t")?.with_time_now().time().is_some());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_time_now(mut self) -> Self {
        self.time = Some(time::now());
        self
    }

    /// Sets an extension attribute. Names are 1 to 20 lowercase ASCII letters or digits and not
    /// one of the specification's attributes.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?;
    /// assert!(event.clone().with_extension("traceparent", "00-…").is_ok());
    /// assert!(event.clone().with_extension("Bad-Name", "x").is_err());
    /// assert!(event.with_extension("subject", "x").is_err());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn with_extension(
        mut self,
        name: impl Into<String>,
        value: impl Into<Extension>,
    ) -> Result<Self, CloudEventError> {
        let name = name.into();
        check_extension_name(&name)?;
        self.extensions.insert(name, value.into());
        Ok(self)
    }

    /// Removes an extension attribute, returning its value.
    ///
    /// ```
    /// # use event_bus::cloudevents::{CloudEvent, Extension};
    /// let mut event = CloudEvent::new("1", "/s", "t")?.with_extension("region", "eu")?;
    /// assert_eq!(event.remove_extension("region"), Some(Extension::from("eu")));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn remove_extension(&mut self, name: &str) -> Option<Extension> {
        self.extensions.remove(name)
    }

    /// Whether the data is JSON: no `datacontenttype` (JSON by the format's default) or a JSON
    /// media type (`application/json`, `text/json`, `…+json`).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?;
    /// assert!(event.clone().with_data("application/vnd.shop+json; charset=utf-8", b"1".to_vec()).is_json());
    /// assert!(!event.with_data("text/plain", b"1".to_vec()).is_json());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn is_json(&self) -> bool {
        self.datacontenttype
            .as_deref()
            .is_none_or(is_json_media_type)
    }

    /// The event in the JSON event format (structured mode, `application/cloudevents+json`).
    ///
    /// JSON data is embedded as is; other data as a string when it is UTF-8 text, else as
    /// `data_base64`.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::new("1", "/s", "t")?.with_data("application/json", b"{\"n\":1}".to_vec());
    /// let json = String::from_utf8(event.to_json()).unwrap();
    /// assert!(json.contains(r#""data":{"n":1}"#), "{json}");
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a map of strings and already-valid JSON cannot fail.
        serde_json::to_vec(&JsonFormat(self)).unwrap_or_default()
    }

    /// Events in the JSON batch format (`application/cloudevents-batch+json`).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let events = vec![CloudEvent::new("1", "/s", "t")?, CloudEvent::new("2", "/s", "t")?];
    /// let json = CloudEvent::batch_to_json(&events);
    /// assert_eq!(CloudEvent::batch_from_json(&json)?, events);
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn batch_to_json(events: &[CloudEvent]) -> Vec<u8> {
        serde_json::to_vec(&JsonBatch(events)).unwrap_or_default()
    }

    /// Reads one event in the JSON event format.
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// let event = CloudEvent::from_json(br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":[1,2]}"#)?;
    /// assert_eq!(event.data(), Some(&b"[1,2]"[..]));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn from_json(json: &[u8]) -> Result<Self, CloudEventError> {
        let object: JsonObject<'_> = serde_json::from_slice(json).map_err(|error| {
            CloudEventError::Malformed(format!("expected one JSON object: {error}"))
        })?;
        CloudEvent::from_object(object)
    }

    /// Reads events in the JSON batch format (an array of events; empty is allowed).
    ///
    /// ```
    /// # use event_bus::cloudevents::CloudEvent;
    /// assert!(CloudEvent::batch_from_json(b"[]")?.is_empty());
    /// assert!(CloudEvent::batch_from_json(b"{}").is_err());
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn batch_from_json(json: &[u8]) -> Result<Vec<Self>, CloudEventError> {
        let array: Vec<JsonObject<'_>> = serde_json::from_slice(json).map_err(|error| {
            CloudEventError::Malformed(format!("expected a JSON array of event objects: {error}"))
        })?;
        array.into_iter().map(CloudEvent::from_object).collect()
    }

    fn from_object(mut object: JsonObject<'_>) -> Result<Self, CloudEventError> {
        let specversion = take_string(&mut object, "specversion")?
            .ok_or(CloudEventError::MissingAttribute("specversion"))?;
        if specversion != SPEC_VERSION {
            return Err(CloudEventError::UnsupportedSpecVersion(specversion));
        }
        let id = take_string(&mut object, "id")?.ok_or(CloudEventError::MissingAttribute("id"))?;
        let source = take_string(&mut object, "source")?
            .ok_or(CloudEventError::MissingAttribute("source"))?;
        let ty =
            take_string(&mut object, "type")?.ok_or(CloudEventError::MissingAttribute("type"))?;
        let mut event = CloudEvent::new(id, source, ty)?;
        event.datacontenttype = take_string(&mut object, "datacontenttype")?;
        event.dataschema = take_string(&mut object, "dataschema")?;
        event.subject = take_string(&mut object, "subject")?;
        if let Some(time) = take_string(&mut object, "time")? {
            event = event.with_time(time)?;
        }
        let data = object.remove("data").filter(|raw| raw.get() != "null");
        let base64 = take_string(&mut object, "data_base64")?;
        event.data = match (data, base64) {
            (Some(_), Some(_)) => {
                return Err(CloudEventError::invalid(
                    "data_base64",
                    "an event has `data` or `data_base64`, not both",
                ));
            }
            (Some(raw), None) if event.is_json() => Some(raw.get().as_bytes().to_vec()),
            (Some(raw), None) => match serde_json::from_str::<String>(raw.get()) {
                Ok(text) => Some(text.into_bytes()),
                Err(_) => Some(raw.get().as_bytes().to_vec()),
            },
            (None, Some(encoded)) => Some(BASE64.decode(encoded.as_bytes()).map_err(|error| {
                CloudEventError::invalid("data_base64", format!("not base64: {error}"))
            })?),
            (None, None) => None,
        };
        // In the document's order: of a name given twice, the last value stands.
        for (name, raw) in object.0 {
            if raw.get() == "null" {
                event.extensions.remove(name.as_ref());
                continue;
            }
            check_extension_name(&name)?;
            let value = serde_json::from_str::<ExtensionJson>(raw.get()).map_err(|_| {
                CloudEventError::invalid(
                    &*name,
                    "an extension is a string, a boolean or an integer",
                )
            })?;
            event.extensions.insert(name.into_owned(), value.into());
        }
        Ok(event)
    }

    /// Sets every attribute read from binary-mode headers; used by the HTTP binding.
    pub(crate) fn set_attribute(
        &mut self,
        name: &str,
        value: String,
    ) -> Result<(), CloudEventError> {
        match name {
            "id" => self.id = non_empty("id", value)?,
            "source" => self.source = non_empty("source", value)?,
            "type" => self.ty = non_empty("type", value)?,
            "dataschema" => self.dataschema = Some(value),
            "subject" => self.subject = Some(value),
            "time" => {
                let event = std::mem::replace(self, CloudEvent::placeholder());
                *self = event.with_time(value)?;
            }
            "specversion" => {
                if value != SPEC_VERSION {
                    return Err(CloudEventError::UnsupportedSpecVersion(value));
                }
            }
            "datacontenttype" | "data" | "data_base64" => {
                return Err(CloudEventError::invalid(
                    name,
                    "not an attribute of a binary-mode event (the data's type is the Content-Type header)",
                ));
            }
            _ => {
                check_extension_name(name)?;
                self.extensions
                    .insert(name.to_owned(), Extension::String(value));
            }
        }
        Ok(())
    }

    /// Sets an extension whose name the crate knows to be valid.
    pub(crate) fn insert_extension(&mut self, name: &'static str, value: Extension) {
        self.extensions.insert(name.to_owned(), value);
    }

    /// Sets the data's media type and bytes as they came; used by the HTTP binding.
    pub(crate) fn set_data(&mut self, content_type: Option<String>, data: Option<Vec<u8>>) {
        self.datacontenttype = content_type;
        self.data = data;
    }

    /// An event with every attribute set to a placeholder, filled by a reader.
    pub(crate) fn placeholder() -> Self {
        CloudEvent {
            id: String::from("-"),
            source: String::from("-"),
            ty: String::from("-"),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// Every attribute but `datacontenttype` and the data, as (name, text) pairs: what binary mode
    /// writes as `ce-` headers.
    pub(crate) fn attributes(&self) -> Vec<(&str, std::borrow::Cow<'_, str>)> {
        use std::borrow::Cow;
        let mut attributes = vec![
            ("specversion", Cow::Borrowed(SPEC_VERSION)),
            ("id", Cow::Borrowed(self.id.as_str())),
            ("source", Cow::Borrowed(self.source.as_str())),
            ("type", Cow::Borrowed(self.ty.as_str())),
        ];
        let optional = [
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("time", &self.time),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                attributes.push((name, Cow::Borrowed(value.as_str())));
            }
        }
        for (name, value) in &self.extensions {
            let value = match value.as_str() {
                Some(text) => Cow::Borrowed(text),
                None => Cow::Owned(value.to_string()),
            };
            attributes.push((name, value));
        }
        attributes
    }
}

/// Whether a media type (parameters allowed) is JSON.
pub(crate) fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn non_empty(name: &'static str, value: String) -> Result<String, CloudEventError> {
    if value.is_empty() {
        Err(CloudEventError::invalid(name, "must not be empty"))
    } else {
        Ok(value)
    }
}

fn check_extension_name(name: &str) -> Result<(), CloudEventError> {
    if RESERVED.contains(&name) {
        return Err(CloudEventError::invalid(
            name,
            "is a specification attribute, not an extension",
        ));
    }
    let valid = (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(CloudEventError::invalid(
            name,
            "extension names are 1 to 20 lowercase ASCII letters or digits",
        ))
    }
}

/// The members of one JSON object in the document's order, names borrowed from the input
/// unless they hold escapes, values unparsed. (A map would allocate every name; events have about
/// ten members, so a search is cheaper than a tree.)
struct JsonObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> JsonObject<'a> {
    /// Removes every member named `name` and returns the value of the last (JSON readers keep the
    /// last of a name given twice).
    fn remove(&mut self, name: &str) -> Option<&'a RawValue> {
        let mut found = None;
        self.0.retain(|(member, value)| {
            if member == name {
                found = Some(*value);
                false
            } else {
                true
            }
        });
        found
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonObject<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(name) = map.next_key::<Name<'de>>()? {
                    members.push((name.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(JsonObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A member's name: borrowed from the input when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Removes an attribute that must be a JSON string (or null, meaning absent).
fn take_string(object: &mut JsonObject<'_>, name: &str) -> Result<Option<String>, CloudEventError> {
    match object.remove(name) {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
            .map_err(|_| CloudEventError::invalid(name, "must be a string")),
    }
}

/// An extension value in the JSON format.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ExtensionJson {
    String(String),
    Boolean(bool),
    Integer(i64),
}

impl From<ExtensionJson> for Extension {
    fn from(value: ExtensionJson) -> Self {
        match value {
            ExtensionJson::String(value) => Extension::String(value),
            ExtensionJson::Boolean(value) => Extension::Boolean(value),
            ExtensionJson::Integer(value) => Extension::Integer(value),
        }
    }
}

/// Serializes an event in the JSON event format.
struct JsonFormat<'a>(&'a CloudEvent);

impl serde::Serialize for JsonFormat<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &event.id)?;
        map.serialize_entry("source", &event.source)?;
        map.serialize_entry("type", &event.ty)?;
        let optional = [
            ("datacontenttype", &event.datacontenttype),
            ("dataschema", &event.dataschema),
            ("subject", &event.subject),
            ("time", &event.time),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                map.serialize_entry(name, value)?;
            }
        }
        for (name, value) in &event.extensions {
            match value {
                Extension::String(value) => map.serialize_entry(name, value)?,
                Extension::Boolean(value) => map.serialize_entry(name, value)?,
                Extension::Integer(value) => map.serialize_entry(name, value)?,
            }
        }
        if let Some(data) = &event.data {
            let raw = event
                .is_json()
                .then(|| std::str::from_utf8(data).ok())
                .flatten()
                .and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
                // Embedded only when it reads back byte for byte: no surrounding whitespace, and
                // not `null` (which the format reads as "no data").
                .filter(|raw| raw.get().len() == data.len() && raw.get() != "null");
            match (raw, std::str::from_utf8(data)) {
                (Some(raw), _) => map.serialize_entry("data", raw)?,
                (None, Ok(text)) if !event.is_json() => map.serialize_entry("data", text)?,
                _ => map.serialize_entry("data_base64", &BASE64.encode(data))?,
            }
        }
        map.end()
    }
}

/// Serializes events in the JSON batch format.
struct JsonBatch<'a>(&'a [CloudEvent]);

impl serde::Serialize for JsonBatch<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(&JsonFormat(event))?;
        }
        seq.end()
    }
}
