//! [`Nats`]: a connection to a NATS server with JetStream, and publishing typed events on it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::consumer::Consume;
use super::error::NatsError;
use super::wire;
use crate::cloudevents::{CloudEvent, Mode, TraceContext};
use crate::event::Event;
use crate::subscription::Subscription;

/// How long a stream remembers message ids to drop duplicate publishes, unless
/// [`Nats::duplicate_window`] says otherwise.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A connection to NATS with JetStream, on which typed events are published and consumed.
///
/// Each event type `E` travels on the subject `E::NAME` (behind the optional
/// [`subject_prefix`](Nats::subject_prefix)) and is stored in its own stream, created on first
/// use with file storage, limits retention and a [duplicate window](Nats::duplicate_window). The
/// stream of subject `orders.placed` is named `EB_orders_placed` (characters a stream name cannot
/// hold become `_`).
///
/// Cloning is cheap and shares the connection; the client reconnects by itself when the server
/// restarts.
///
/// ```no_run
/// use event_bus::prelude::*;
/// use event_bus::nats::Nats;
///
/// #[event(name = "orders.placed", key = order)]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct OrderPlaced {
///     order: u64,
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), event_bus::nats::NatsError> {
/// let nats = Nats::connect("nats://127.0.0.1:4222").await?;
/// let published = nats.publish(&OrderPlaced { order: 7 }).await?; // stored by the stream
/// assert!(!published.duplicate);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Nats {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    source: String,
    subject_prefix: Option<String>,
    duplicate_window: Duration,
    mode: Mode,
    /// Streams known to exist, by subject.
    streams: Mutex<HashMap<String, String>>,
}

impl Clone for Inner {
    fn clone(&self) -> Self {
        Inner {
            client: self.client.clone(),
            jetstream: self.jetstream.clone(),
            source: self.source.clone(),
            subject_prefix: self.subject_prefix.clone(),
            duplicate_window: self.duplicate_window,
            mode: self.mode,
            streams: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("source", &self.inner.source)
            .field("subject_prefix", &self.inner.subject_prefix)
            .field("duplicate_window", &self.inner.duplicate_window)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// What the stream answered to a publish.
///
/// ```
/// use event_bus::nats::Published;
///
/// let published = Published { stream: "EB_orders".into(), sequence: 1, duplicate: false };
/// assert_eq!(published.sequence, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream that stored the event.
    pub stream: String,
    /// The event's sequence number in the stream.
    pub sequence: u64,
    /// The stream had already stored an event with this id inside its duplicate window: this
    /// publish stored nothing.
    pub duplicate: bool,
}

impl Nats {
    /// Connects to the server at `url` (`nats://host:port`; several URLs separated by commas).
    /// Fails with [`NatsError::Connect`] if no server answers; once connected, the client
    /// reconnects by itself whenever the connection drops.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), event_bus::nats::NatsError> {
    /// let nats = event_bus::nats::Nats::connect("nats://127.0.0.1:4222").await?;
    /// # drop(nats); Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, NatsError> {
        let client = async_nats::ConnectOptions::new()
            .name("event-bus")
            .connect(url)
            .await
            .map_err(|error| NatsError::Connect {
                url: url.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self::from_client(client))
    }

    /// Uses a client the application connected itself (for TLS, credentials, custom options).
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
    /// let nats = event_bus::nats::Nats::from_client(client);
    /// # drop(nats); Ok(()) }
    /// ```
    pub fn from_client(client: async_nats::Client) -> Self {
        let jetstream = jetstream::new(client.clone());
        Nats {
            inner: Arc::new(Inner {
                client,
                jetstream,
                source: "/event-bus".to_owned(),
                subject_prefix: None,
                duplicate_window: DEFAULT_DUPLICATE_WINDOW,
                mode: Mode::Binary,
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        // Settings are made before the handle is shared; a shared one keeps the old settings.
        Arc::make_mut(&mut self.inner)
    }

    /// The CloudEvents `source` of published events (default `/event-bus`): a URI reference
    /// naming this application.
    ///
    /// ```no_run
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let nats = nats.source("/billing");
    /// # }
    /// ```
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.inner_mut().source = source.into();
        self
    }

    /// Puts every subject behind `prefix` (`{prefix}.{E::NAME}`), and so every stream too: for
    /// several environments (or tests) on one server.
    ///
    /// ```no_run
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let nats = nats.subject_prefix("staging");
    /// # }
    /// ```
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inner_mut().subject_prefix = Some(prefix.into());
        self
    }

    /// How long the streams this handle creates remember message ids to drop a second publish
    /// of the same event (default [`DEFAULT_DUPLICATE_WINDOW`]). A stream that exists keeps its
    /// own setting.
    ///
    /// ```no_run
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let nats = nats.duplicate_window(std::time::Duration::from_secs(600));
    /// # }
    /// ```
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.inner_mut().duplicate_window = window;
        self
    }

    /// How events are written into messages (default [`Mode::Binary`]: attributes in `ce-`
    /// headers, the data as payload). Consumers read both modes.
    ///
    /// ```no_run
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let nats = nats.mode(event_bus::cloudevents::Mode::Structured);
    /// # }
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.inner_mut().mode = mode;
        self
    }

    /// The underlying client.
    ///
    /// ```no_run
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// println!("{:?}", nats.client().connection_state());
    /// # }
    /// ```
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The subject events of type `E` travel on.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// assert_eq!(nats.subject_prefix("dev").subject::<OrderPlaced>(), "dev.orders.placed");
    /// # }
    /// ```
    pub fn subject<E: Event>(&self) -> String {
        self.subject_of(E::NAME)
    }

    pub(crate) fn subject_of(&self, name: &str) -> String {
        match &self.inner.subject_prefix {
            Some(prefix) => {
                let mut subject = String::with_capacity(prefix.len() + 1 + name.len());
                subject.push_str(prefix);
                subject.push('.');
                subject.push_str(name);
                subject
            }
            None => name.to_owned(),
        }
    }

    /// The name of the stream that stores events of type `E`.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// assert_eq!(nats.stream_name::<OrderPlaced>(), "EB_orders_placed");
    /// # }
    /// ```
    pub fn stream_name<E: Event>(&self) -> String {
        stream_name_of(&self.subject::<E>())
    }

    /// Makes sure the stream of `E` exists (creating it if not) and returns its name. Publishing
    /// and consuming call this themselves; call it at startup to fail early.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let stream = nats.ensure_stream::<OrderPlaced>().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ensure_stream<E: Event>(&self) -> Result<String, NatsError> {
        self.ensure_stream_of(&self.subject::<E>()).await
    }

    pub(crate) async fn ensure_stream_of(&self, subject: &str) -> Result<String, NatsError> {
        if let Some(name) = self.inner.streams.lock().get(subject) {
            return Ok(name.clone());
        }
        validate_subject(subject)?;
        let name = stream_name_of(subject);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![subject.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: self.inner.duplicate_window,
            ..Default::default()
        };
        let stream = self
            .inner
            .jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|error| {
                let refused = matches!(
                    error.kind(),
                    jetstream::context::CreateStreamErrorKind::JetStream(_)
                        | jetstream::context::CreateStreamErrorKind::InvalidStreamName
                );
                NatsError::answered(format!("stream {name}"), error, refused)
            })?;
        let subjects = &stream.cached_info().config.subjects;
        if !subjects.iter().any(|s| s == subject) {
            return Err(NatsError::Config(format!(
                "the stream `{name}` exists for the subjects {subjects:?}, not `{subject}`: two subjects map to one stream name"
            )));
        }
        self.inner
            .streams
            .lock()
            .insert(subject.to_owned(), name.clone());
        Ok(name)
    }

    /// Deletes the stream of `E` with every event in it (and its consumers). `false` if there was
    /// none.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// nats.delete_stream::<OrderPlaced>().await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_stream<E: Event>(&self) -> Result<bool, NatsError> {
        let subject = self.subject::<E>();
        let name = stream_name_of(&subject);
        self.inner.streams.lock().remove(&subject);
        match self.inner.jetstream.delete_stream(&name).await {
            Ok(status) => Ok(status.success),
            Err(error) => match error.kind() {
                jetstream::context::DeleteStreamErrorKind::JetStream(cause)
                    if cause.kind() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(NatsError::jetstream(format!("delete stream {name}"), error)),
            },
        }
    }

    /// Publishes `event` as a CloudEvent (see [`CloudEvent::from_event`]; `Nats-Msg-Id` = its
    /// source and fresh id) on `E`'s subject, and returns once the stream stored it. The current
    /// [`TraceContext`] (if any) travels with it.
    ///
    /// A publish that fails with a [retryable](NatsError::is_retryable) error may still have been
    /// stored; to retry without a second copy, publish the same [`CloudEvent`] again with
    /// [`publish_cloud`](Nats::publish_cloud) inside the duplicate window.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Serialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let published = nats.publish(&OrderPlaced).await?;
    /// println!("stored as #{} in {}", published.sequence, published.stream);
    /// # Ok(()) }
    /// ```
    pub async fn publish<E: Event + Serialize>(&self, event: &E) -> Result<Published, NatsError> {
        let cloud = CloudEvent::from_event(event, self.inner.source.clone())?;
        self.send(&self.subject::<E>(), Cow::Owned(TraceContext::stamp(cloud)))
            .await
    }

    /// Publishes a CloudEvent on `subject` (creating the subject's stream, named as for a typed
    /// event, if needed) and returns once the stream stored it; the same event (same `source` and
    /// `id`) again inside the duplicate window is stored once.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Serialize)] struct OrderPlaced;
    /// use event_bus::cloudevents::CloudEvent;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = CloudEvent::from_event(&OrderPlaced, "/shop")?;
    /// let subject = nats.subject::<OrderPlaced>();
    /// nats.publish_cloud(&subject, &cloud).await?;
    /// assert!(nats.publish_cloud(&subject, &cloud).await?.duplicate);
    /// # Ok(()) }
    /// ```
    pub async fn publish_cloud(
        &self,
        subject: &str,
        event: &CloudEvent,
    ) -> Result<Published, NatsError> {
        // An event that carries its own context keeps it.
        if TraceContext::of(event).is_none() && TraceContext::current().is_some() {
            let stamped = TraceContext::stamp(event.clone());
            return self.send(subject, Cow::Owned(stamped)).await;
        }
        self.send(subject, Cow::Borrowed(event)).await
    }

    async fn send(
        &self,
        subject: &str,
        event: Cow<'_, CloudEvent>,
    ) -> Result<Published, NatsError> {
        let span = tracing::debug_span!(
            "nats.publish",
            otel.name = %format_args!("send {subject}"),
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.destination.name = subject,
            messaging.message.id = event.id(),
        );
        tracing::Instrument::instrument(self.send_in_span(subject, event), span).await
    }

    async fn send_in_span(
        &self,
        subject: &str,
        event: Cow<'_, CloudEvent>,
    ) -> Result<Published, NatsError> {
        // The rare paths (creating the stream, publishing again) are boxed, so that the future of
        // every publish does not hold room for them.
        if !self.inner.streams.lock().contains_key(subject) {
            Box::pin(self.ensure_stream_of(subject)).await?;
        }
        let (headers, payload) = wire::write(&event, self.inner.mode)?;
        let mut ack = self.send_once(subject, headers, payload.into()).await;
        if let Err(error) = &ack
            && error.kind() == jetstream::context::PublishErrorKind::StreamNotFound
        {
            // Deleted since it was ensured (or the server lost it): create it again, once.
            self.inner.streams.lock().remove(subject);
            ack = Box::pin(async {
                self.ensure_stream_of(subject).await?;
                let (headers, payload) = wire::write(&event, self.inner.mode)?;
                Ok::<_, NatsError>(self.send_once(subject, headers, payload.into()).await)
            })
            .await?;
        }
        let ack = ack.map_err(|error| {
            use jetstream::context::PublishErrorKind;
            // The stream may have been deleted (or the server lost it): ensure it again next time.
            self.inner.streams.lock().remove(subject);
            match error.kind() {
                PublishErrorKind::MaxPayloadExceeded
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::WrongLastSequence => NatsError::Refused {
                    what: format!("publish to {subject}"),
                    reason: error.to_string(),
                },
                _ => NatsError::Publish {
                    subject: subject.to_owned(),
                    reason: error.to_string(),
                },
            }
        })?;
        Ok(Published {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn send_once(
        &self,
        subject: &str,
        headers: async_nats::HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
        self.inner
            .jetstream
            .send_publish(
                subject.to_owned(),
                PublishMessage::build().payload(payload).headers(headers),
            )
            .await?
            .await
    }

    /// Registers a listener on `E`'s global registry that publishes every triggered `E` (one line
    /// forwarding). The listener fails (and the dispatch's report says so) when the stream does
    /// not acknowledge the event. For forwarding that survives a crash, publish from a
    /// [`Durable`](crate::pipeline::Durable) inbox instead.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Serialize)] struct OrderPlaced;
    /// # fn f(nats: &event_bus::nats::Nats) {
    /// let forwarding = nats.forward::<OrderPlaced>();
    /// # }
    /// ```
    pub fn forward<E: Event + Serialize>(&self) -> Subscription<E> {
        let nats = self.clone();
        E::listener()
            .name(format!("nats-forward({})", self.subject::<E>()))
            .register_async(move |event: Arc<E>| {
                let nats = nats.clone();
                async move { nats.publish(&*event).await.map(drop) }
            })
    }

    /// Starts building a consumer of `E` for the consumer `group`: every member of a group shares
    /// one durable JetStream consumer, so each event goes to one of them (a work queue); see
    /// [`Consume`] for fan-out, targets and limits.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let consuming = nats.consume::<OrderPlaced>("billing").start().await?;
    /// # Ok(()) }
    /// ```
    pub fn consume<E: Event + DeserializeOwned>(&self, group: &str) -> Consume<E> {
        Consume::new(self.clone(), group)
    }
}

/// A subject for a stream: non-empty tokens, no wildcards, no whitespace.
fn validate_subject(subject: &str) -> Result<(), NatsError> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|token| token.is_empty() || token == "*" || token == ">")
        || subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(NatsError::Config(format!(
            "`{subject}` is not a NATS subject for events (dot-separated non-empty tokens, no wildcards or whitespace): give the event a name such as `orders.placed`"
        )));
    }
    Ok(())
}

/// `EB_` and the subject, with what a stream name cannot hold replaced by `_`.
fn stream_name_of(subject: &str) -> String {
    let body: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("EB_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_hold_only_what_jetstream_allows() {
        assert_eq!(stream_name_of("orders.placed"), "EB_orders_placed");
        assert_eq!(stream_name_of("a.b*c>d é"), "EB_a_b_c_d__");
    }

    #[test]
    fn subjects_with_wildcards_or_blanks_are_refused() {
        for subject in ["", "a..b", "a.*", "a.>", "a b", ".a", "a."] {
            assert!(validate_subject(subject).is_err(), "{subject:?}");
        }
        assert!(validate_subject("orders.placed").is_ok());
        assert!(validate_subject("UserCreated").is_ok());
    }
}
