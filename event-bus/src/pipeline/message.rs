//! [`Message`]: what flows through a pipeline.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use crate::event::Event;

/// One unit of work in a pipeline: an id, the `source` it came from (an event's
/// [`NAME`](crate::Event::NAME)), a `key` that groups related messages (an order id), opaque content
/// bytes (JSON when it comes from an event), string metadata and a creation time.
///
/// ```
/// use event_bus::pipeline::Message;
///
/// let message = Message::new("payment", "order-7", br#"{"cents":100}"#.to_vec())
///     .with_metadata("attempt", "1");
/// assert_eq!(message.source(), "payment");
/// assert_eq!(message.key(), "order-7");
/// assert_eq!(message.metadata().get("attempt").map(String::as_str), Some("1"));
/// assert_eq!(message.id().len(), 36); // a UUID
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    id: String,
    source: String,
    key: String,
    content: Vec<u8>,
    metadata: BTreeMap<String, String>,
    time: SystemTime,
}

impl Message {
    /// A message with a fresh UUID, the current time and no metadata.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("inventory", "order-1", b"{}".to_vec());
    /// assert_eq!(message.content(), b"{}");
    /// ```
    pub fn new(
        source: impl Into<String>,
        key: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        Message {
            id: super::message_id::new_message_id(),
            source: source.into(),
            key: key.into(),
            content: content.into(),
            metadata: BTreeMap::new(),
            time: SystemTime::now(),
        }
    }

    /// A message from an event: source = the event's [`NAME`](crate::Event::NAME), key = its
    /// [`key`](crate::Event::key) (empty without one), content = the event as JSON.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::Message;
    ///
    /// #[event(name = "payment.confirmed", key = order)]
    /// #[derive(serde::Serialize)]
    /// struct PaymentConfirmed {
    ///     order: u32,
    ///     cents: u64,
    /// }
    ///
    /// let message = Message::from_event(&PaymentConfirmed { order: 7, cents: 100 })?;
    /// assert_eq!(message.source(), "payment.confirmed");
    /// assert_eq!(message.key(), "7");
    /// assert_eq!(message.content(), br#"{"order":7,"cents":100}"#);
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn from_event<E: Event + Serialize>(event: &E) -> Result<Self, PipelineError> {
        let content = serde_json::to_vec(event).map_err(|error| PipelineError::Encode {
            source_name: E::NAME.to_owned(),
            error,
        })?;
        Ok(Message::new(
            E::NAME,
            event.key().unwrap_or_default(),
            content,
        ))
    }

    /// The message's unique id.
    ///
    /// ```
    /// let a = event_bus::pipeline::Message::new("s", "k", Vec::new());
    /// let b = event_bus::pipeline::Message::new("s", "k", Vec::new());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the message came from.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Message::new("s", "k", Vec::new()).source(), "s");
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The key grouping related messages.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Message::new("s", "k", Vec::new()).key(), "k");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The content bytes.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Message::new("s", "k", vec![1, 2]).content(), [1, 2]);
    /// ```
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// String metadata (headers).
    ///
    /// ```
    /// assert!(event_bus::pipeline::Message::new("s", "k", Vec::new()).metadata().is_empty());
    /// ```
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Mutable metadata.
    ///
    /// ```
    /// let mut message = event_bus::pipeline::Message::new("s", "k", Vec::new());
    /// message.metadata_mut().insert("trace".into(), "abc".into());
    /// assert_eq!(message.metadata()["trace"], "abc");
    /// ```
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// When the message was created.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new());
    /// assert!(message.time() <= std::time::SystemTime::now());
    /// ```
    pub fn time(&self) -> SystemTime {
        self.time
    }

    /// Replaces the id.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new()).with_id("fixed");
    /// assert_eq!(message.id(), "fixed");
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Replaces the source.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new()).with_source("t");
    /// assert_eq!(message.source(), "t");
    /// ```
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Replaces the key.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new()).with_key("other");
    /// assert_eq!(message.key(), "other");
    /// ```
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Replaces the content.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", vec![1]).with_content(Vec::new());
    /// assert!(message.content().is_empty());
    /// ```
    pub fn with_content(mut self, content: impl Into<Vec<u8>>) -> Self {
        self.content = content.into();
        self
    }

    /// Adds (or replaces) one metadata entry.
    ///
    /// ```
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new()).with_metadata("a", "b");
    /// assert_eq!(message.metadata()["a"], "b");
    /// ```
    pub fn with_metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }

    /// Replaces the creation time.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    /// let message = event_bus::pipeline::Message::new("s", "k", Vec::new()).with_time(then);
    /// assert_eq!(message.time(), then);
    /// ```
    pub fn with_time(mut self, time: SystemTime) -> Self {
        self.time = time;
        self
    }

    /// Consumes the message, returning its content.
    ///
    /// ```
    /// assert_eq!(event_bus::pipeline::Message::new("s", "k", vec![9]).into_content(), [9]);
    /// ```
    pub fn into_content(self) -> Vec<u8> {
        self.content
    }

    /// The compact binary form stores keep (postcard).
    ///
    /// ```
    /// use event_bus::pipeline::Message;
    ///
    /// let message = Message::new("s", "k", vec![1, 2, 3]);
    /// assert_eq!(Message::decode(&message.encode()?)?, message);
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, PipelineError> {
        postcard::to_stdvec(self).map_err(|error| PipelineError::Corrupt(error.to_string()))
    }

    /// Reads the form [`encode`](Message::encode) wrote; malformed bytes are a
    /// [`PipelineError::Corrupt`], never a panic.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, PipelineError};
    ///
    /// assert!(matches!(Message::decode(&[0xff, 0xff]), Err(PipelineError::Corrupt(_))));
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, PipelineError> {
        postcard::from_bytes(bytes).map_err(|error| PipelineError::Corrupt(error.to_string()))
    }
}
