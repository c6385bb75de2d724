//! Typed events and pipeline messages to and from CloudEvents.
//!
//! The mapping: `type` = [`Event::NAME`], `id` a fresh UUID, `time` now, `datacontenttype`
//! `application/json` with the payload's JSON as data, `subject` and the `partitionkey` extension
//! = [`Event::key`] (when the event has one), and the `eventversion` extension =
//! [`Event::VERSION`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CloudEventError;
use super::event::{CloudEvent, Extension};
use crate::event::Event;
use crate::pipeline::Message;

/// The extension that carries a typed event's key (the partitioning extension of the spec).
pub const PARTITION_KEY: &str = "partitionkey";
/// The extension that carries a typed event's [`Event::VERSION`].
pub const EVENT_VERSION: &str = "eventversion";

impl CloudEvent {
    /// The CloudEvent of a typed event, from `source` (a URI reference naming this application).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::{CloudEvent, Extension};
    ///
    /// #[event(name = "com.example.order.placed", key = order, version = 2)]
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Placed {
    ///     order: u64,
    /// }
    ///
    /// let cloud = CloudEvent::from_event(&Placed { order: 7 }, "/shop")?;
    /// assert_eq!(cloud.event_type(), "com.example.order.placed");
    /// assert_eq!(cloud.subject(), Some("7"));
    /// assert_eq!(cloud.extension("partitionkey").and_then(Extension::as_str), Some("7"));
    /// assert_eq!(cloud.decode::<Placed>()?, Placed { order: 7 });
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn from_event<E: Event + Serialize>(
        event: &E,
        source: impl Into<String>,
    ) -> Result<Self, CloudEventError> {
        let data = serde_json::to_vec(event).map_err(CloudEventError::Encode)?;
        let mut cloud = CloudEvent::new(
            crate::pipeline::message_id::new_message_id(),
            source,
            E::NAME,
        )?
        .with_time_now()
        .with_data("application/json", data)
        .with_extension(EVENT_VERSION, E::VERSION.to_string())?;
        if let Some(key) = event.key() {
            cloud = cloud
                .with_subject(key.clone())
                .with_extension(PARTITION_KEY, key)?;
        }
        Ok(cloud)
    }

    /// Decodes the typed event this CloudEvent carries: its `type` must be `E::NAME`, its
    /// `eventversion` (1 when absent) `E::VERSION`, and its data JSON that deserializes into `E`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::{CloudEvent, CloudEventError};
    ///
    /// #[event(name = "com.example.ping")]
    /// #[derive(serde::Deserialize, Debug)]
    /// struct Ping {
    ///     n: u32,
    /// }
    ///
    /// let ok = CloudEvent::new("1", "/s", "com.example.ping")?.with_data("application/json", br#"{"n":1}"#.to_vec());
    /// assert_eq!(ok.decode::<Ping>()?.n, 1);
    ///
    /// let other = CloudEvent::new("2", "/s", "com.example.pong")?;
    /// assert!(matches!(other.decode::<Ping>(), Err(CloudEventError::UnexpectedType { .. })));
    /// # Ok::<(), CloudEventError>(())
    /// ```
    pub fn decode<E: Event + DeserializeOwned>(&self) -> Result<E, CloudEventError> {
        if self.event_type() != E::NAME {
            return Err(CloudEventError::UnexpectedType {
                expected: E::NAME,
                found: self.event_type().to_owned(),
            });
        }
        self.check_version(E::VERSION)?;
        let data = self
            .data()
            .ok_or_else(|| CloudEventError::NoData(self.event_type().to_owned()))?;
        if !self.is_json() {
            return Err(CloudEventError::NotJson {
                ty: self.event_type().to_owned(),
                content_type: self.datacontenttype().unwrap_or_default().to_owned(),
            });
        }
        serde_json::from_slice(data).map_err(|error| CloudEventError::Data {
            ty: self.event_type().to_owned(),
            error,
        })
    }

    fn check_version(&self, expected: u32) -> Result<(), CloudEventError> {
        let found = match self.extension(EVENT_VERSION) {
            None => {
                return if expected == 1 {
                    Ok(())
                } else {
                    self.version_mismatch(expected, "1 (none given)")
                };
            }
            Some(Extension::Integer(n)) => n.to_string(),
            Some(other) => other.to_string(),
        };
        if found.trim() == expected.to_string() {
            Ok(())
        } else {
            self.version_mismatch(expected, &found)
        }
    }

    fn version_mismatch(&self, expected: u32, found: &str) -> Result<(), CloudEventError> {
        Err(CloudEventError::VersionMismatch {
            ty: self.event_type().to_owned(),
            expected,
            found: found.to_owned(),
        })
    }

    /// The CloudEvent of a pipeline message (event-driver's converter): `id` = the message id,
    /// `type` = its source, `partitionkey` (and `subject`) = its key, data = its content
    /// (`application/json` when it is JSON, else `application/octet-stream`). The message's
    /// metadata is not carried.
    ///
    /// ```
    /// use event_bus::cloudevents::{CloudEvent, Extension};
    /// use event_bus::pipeline::Message;
    ///
    /// let message = Message::new("payment.confirmed", "order-7", br#"{"cents":100}"#.to_vec());
    /// let cloud = CloudEvent::from_message(&message, "/payments")?;
    /// assert_eq!(cloud.id(), message.id());
    /// assert_eq!(cloud.extension("partitionkey").and_then(Extension::as_str), Some("order-7"));
    /// let back = cloud.into_message();
    /// assert_eq!((back.source(), back.key(), back.content()), (message.source(), message.key(), message.content()));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn from_message(
        message: &Message,
        source: impl Into<String>,
    ) -> Result<Self, CloudEventError> {
        let content_type =
            if serde_json::from_slice::<serde::de::IgnoredAny>(message.content()).is_ok() {
                "application/json"
            } else {
                "application/octet-stream"
            };
        let mut cloud = CloudEvent::new(message.id(), source, message.source())?
            .with_time(humantime::format_rfc3339_micros(message.time()).to_string())?
            .with_data(content_type, message.content().to_vec());
        if !message.key().is_empty() {
            cloud = cloud
                .with_subject(message.key())
                .with_extension(PARTITION_KEY, message.key())?;
        }
        Ok(cloud)
    }

    /// The pipeline message of a CloudEvent: source = `type`, key = `partitionkey` (else
    /// `subject`, else empty), content = data, id = `id`.
    ///
    /// ```
    /// use event_bus::cloudevents::CloudEvent;
    ///
    /// let cloud = CloudEvent::new("m-1", "/s", "order.requested")?
    ///     .with_extension("partitionkey", "7")?
    ///     .with_data("application/json", b"{}".to_vec());
    /// let message = cloud.into_message();
    /// assert_eq!((message.id(), message.source(), message.key()), ("m-1", "order.requested", "7"));
    /// # Ok::<(), event_bus::cloudevents::CloudEventError>(())
    /// ```
    pub fn into_message(self) -> Message {
        let key = self
            .extension(PARTITION_KEY)
            .map(ToString::to_string)
            .or_else(|| self.subject().map(str::to_owned))
            .unwrap_or_default();
        let id = self.id().to_owned();
        let source = self.event_type().to_owned();
        let content = self.into_data().unwrap_or_default();
        Message::new(source, key, content).with_id(id)
    }
}
