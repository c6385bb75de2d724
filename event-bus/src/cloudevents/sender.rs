//! [`Sender`]: CloudEvents over HTTP on a pooled client, with the common-library outcomes
//! (`Ack`, `Nack`, `Undelivered`), retries with backoff, typed request-response, and forwarding.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::binding::{Mode, Received, read, write, write_batch};
use super::error::CloudEventError;
use super::event::CloudEvent;
use super::trace::TraceContext;
use crate::event::Event;
use crate::pipeline::{Handler, HandlerFuture, Message, Next, PipelineError};
use crate::subscription::Subscription;

/// The largest reply body a sender reads (a reply is one event).
const REPLY_LIMIT: usize = 4 * 1024 * 1024;
/// The most of an error answer's body kept as its reason.
const REASON_LIMIT: usize = 64 * 1024;
/// The longest `Retry-After` honoured (a longer one is waited for this long).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What became of one send (the common-library results).
///
/// ```
/// use event_bus::cloudevents::Outcome;
///
/// let outcome = Outcome::Ack;
/// assert!(outcome.is_ack());
/// assert!(outcome.into_result().is_ok());
/// ```
#[derive(Debug)]
pub enum Outcome {
    /// The receiver answered 2xx: it processed or stored the event.
    Ack,
    /// The receiver answered with an error status and will not take the event (after retries
    /// where the status allowed them).
    Nack {
        /// The last status.
        status: StatusCode,
        /// The body of the last answer (the receiver's reason).
        reason: String,
    },
    /// The event never reached a receiver that answered (connection refused, timeout, …), after
    /// every retry.
    Undelivered(SendError),
}

impl Outcome {
    /// Whether the receiver acknowledged the event.
    ///
    /// ```
    /// # use event_bus::cloudevents::Outcome;
    /// assert!(Outcome::Ack.is_ack());
    /// ```
    pub fn is_ack(&self) -> bool {
        matches!(self, Outcome::Ack)
    }

    /// `Ok` for [`Ack`](Outcome::Ack), the reason as an error otherwise.
    ///
    /// ```
    /// # use event_bus::cloudevents::Outcome;
    /// let nack = Outcome::Nack { status: http::StatusCode::BAD_REQUEST, reason: "bad".into() };
    /// assert!(nack.into_result().is_err());
    /// ```
    pub fn into_result(self) -> Result<(), SendError> {
        match self {
            Outcome::Ack => Ok(()),
            Outcome::Nack { status, reason } => Err(SendError::Nack { status, reason }),
            Outcome::Undelivered(error) => Err(error),
        }
    }
}

/// Why a send or a request failed.
///
/// ```
/// use event_bus::cloudevents::SendError;
///
/// let error = SendError::Timeout(std::time::Duration::from_secs(1));
/// assert!(error.to_string().contains("1s"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event could not be encoded.
    #[error(transparent)]
    Encode(CloudEventError),
    /// No answer within the per-call timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The receiver refused the event.
    #[error("the receiver answered {status}: {reason}")]
    Nack {
        /// The status.
        status: StatusCode,
        /// The receiver's reason.
        reason: String,
    },
    /// A request got an answer that is not the expected reply event.
    #[error("the reply is not the expected event: {0}")]
    Reply(CloudEventError),
    /// The receiver's URL is not an `http://` URL.
    #[error("invalid receiver URL `{0}` (an http:// URL is needed)")]
    InvalidUrl(String),
}

impl SendError {
    /// Whether trying again later may succeed (transport failures, timeouts, and the statuses
    /// retried by a [`Sender`]).
    ///
    /// ```
    /// # use event_bus::cloudevents::SendError;
    /// assert!(SendError::Transport("refused".into()).is_retryable());
    /// let bad = SendError::Nack { status: http::StatusCode::BAD_REQUEST, reason: String::new() };
    /// assert!(!bad.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Timeout(_) | SendError::Transport(_) => true,
            SendError::Nack { status, .. } => retryable_status(*status),
            _ => false,
        }
    }
}

/// Statuses worth sending again: 404, 408, 409, 425, 429 and every 5xx (the Knative rules).
fn retryable_status(status: StatusCode) -> bool {
    // 501: the receiver does not implement this (no route or no handler); asking again cannot
    // change that.
    matches!(status.as_u16(), 404 | 408 | 409 | 425 | 429)
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// Sends CloudEvents to one receiver URL over a pooled HTTP/1.1 client (keep-alive).
///
/// Each call retries with exponential backoff and full jitter (5 attempts from 100 ms up to 5 s
/// by default) when the event was not delivered or the answer is 404, 408, 409, 425, 429 or 5xx
/// (but 501), waiting at least what a `Retry-After` header says; it never retries another 4xx. Binary mode
/// by default. Cheap to clone (one shared pool).
///
/// ```no_run
/// use event_bus::prelude::*;
/// use event_bus::cloudevents::Sender;
///
/// #[event(name = "com.example.user.created")]
/// #[derive(serde::Serialize)]
/// struct UserCreated {
///     email: String,
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sender = Sender::new("http://127.0.0.1:8080/")?.source("/accounts");
/// let outcome = sender.send(&UserCreated { email: "a@b.c".into() }).await;
/// println!("{outcome:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    url: Uri,
    source: String,
    mode: Mode,
    timeout: Duration,
    attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("url", &self.inner.url)
            .field("source", &self.inner.source)
            .field("mode", &self.inner.mode)
            .field("timeout", &self.inner.timeout)
            .field("attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender to `url` (`http://host:port/path`), with source `/event-bus`, binary mode, a 10 s
    /// timeout per call and 5 attempts.
    ///
    /// ```
    /// use event_bus::cloudevents::Sender;
    ///
    /// assert!(Sender::new("http://127.0.0.1:8080/events").is_ok());
    /// assert!(Sender::new("not a url").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self, SendError> {
        let parsed: Uri = url
            .parse()
            .map_err(|_| SendError::InvalidUrl(url.to_owned()))?;
        if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
            return Err(SendError::InvalidUrl(url.to_owned()));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Sender {
            inner: Arc::new(Inner {
                url: parsed,
                source: String::from("/event-bus"),
                mode: Mode::Binary,
                timeout: Duration::from_secs(10),
                attempts: 5,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                client,
            }),
        })
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            url: self.inner.url.clone(),
            source: self.inner.source.clone(),
            client: self.inner.client.clone(),
            ..*self.inner
        };
        change(&mut inner);
        Sender {
            inner: Arc::new(inner),
        }
    }

    /// The `source` of the events this sender makes from typed events.
    ///
    /// ```
    /// # use event_bus::cloudevents::Sender;
    /// let sender = Sender::new("http://127.0.0.1:1/")?.source("https://shop.example.com");
    /// # Ok::<(), event_bus::cloudevents::SendError>(())
    /// ```
    pub fn source(self, source: impl Into<String>) -> Self {
        let source = source.into();
        self.with(|inner| inner.source = source)
    }

    /// Binary (the default) or structured mode.
    ///
    /// ```
    /// # use event_bus::cloudevents::{Mode, Sender};
    /// let sender = Sender::new("http://127.0.0.1:1/")?.mode(Mode::Structured);
    /// # Ok::<(), event_bus::cloudevents::SendError>(())
    /// ```
    pub fn mode(self, mode: Mode) -> Self {
        self.with(|inner| inner.mode = mode)
    }

    /// The timeout of one attempt (10 s by default).
    ///
    /// ```
    /// # use event_bus::cloudevents::Sender;
    /// let sender = Sender::new("http://127.0.0.1:1/")?.timeout(std::time::Duration::from_secs(2));
    /// # Ok::<(), event_bus::cloudevents::SendError>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|inner| inner.timeout = timeout)
    }

    /// Attempts per call (at least 1; 5 by default) and the backoff's first and largest delay.
    ///
    /// ```
    /// # use event_bus::cloudevents::Sender;
    /// use std::time::Duration;
    /// let sender = Sender::new("http://127.0.0.1:1/")?.retries(3, Duration::from_millis(50), Duration::from_secs(1));
    /// # Ok::<(), event_bus::cloudevents::SendError>(())
    /// ```
    pub fn retries(self, attempts: u32, initial: Duration, max: Duration) -> Self {
        self.with(|inner| {
            inner.attempts = attempts.max(1);
            inner.initial_backoff = initial;
            inner.max_backoff = max.max(initial);
        })
    }

    /// Sends a typed event (see [`CloudEvent::from_event`] for the mapping).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # use event_bus::cloudevents::Sender;
    /// # #[event] #[derive(serde::Serialize)] struct Ping;
    /// # async fn f(sender: Sender) {
    /// assert!(sender.send(&Ping).await.is_ack());
    /// # }
    /// ```
    pub async fn send<E: Event + Serialize>(&self, event: &E) -> Outcome {
        match CloudEvent::from_event(event, self.inner.source.as_str()) {
            Ok(cloud) => self.send_cloud(&TraceContext::stamp(cloud)).await,
            Err(error) => Outcome::Undelivered(SendError::Encode(error)),
        }
    }

    /// Sends a CloudEvent as it is.
    ///
    /// ```no_run
    /// # use event_bus::cloudevents::{CloudEvent, Sender};
    /// # async fn f(sender: Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// let outcome = sender.send_cloud(&CloudEvent::new("1", "/s", "ping")?).await;
    /// # Ok(()) }
    /// ```
    pub async fn send_cloud(&self, event: &CloudEvent) -> Outcome {
        let span = tracing::debug_span!(
            "cloudevents.send",
            otel.name = %format_args!("send {}", event.event_type()),
            messaging.system = "cloudevents",
            messaging.operation.type = "send",
            messaging.destination.name = event.event_type(),
            messaging.message.id = event.id(),
        );
        let mut headers = HeaderMap::new();
        match write(event, self.inner.mode, &mut headers) {
            Ok(body) => {
                let delivery = self.deliver(headers, body);
                tracing::Instrument::instrument(delivery, span).await.0
            }
            Err(error) => Outcome::Undelivered(SendError::Encode(error)),
        }
    }

    /// Sends events as one batch (`application/cloudevents-batch+json`).
    ///
    /// ```no_run
    /// # use event_bus::cloudevents::{CloudEvent, Sender};
    /// # async fn f(sender: Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// let events = [CloudEvent::new("1", "/s", "ping")?, CloudEvent::new("2", "/s", "ping")?];
    /// sender.send_batch(&events).await.into_result()?;
    /// # Ok(()) }
    /// ```
    pub async fn send_batch(&self, events: &[CloudEvent]) -> Outcome {
        let mut headers = HeaderMap::new();
        let body = write_batch(events, &mut headers);
        self.deliver(headers, body).await.0
    }

    /// Sends `question` and returns the typed reply the receiver answered with (see
    /// [`Receiver::reply`](super::Receiver::reply)).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # use event_bus::cloudevents::Sender;
    /// #[event(name = "price.asked")]
    /// #[derive(serde::Serialize)]
    /// struct PriceAsked { sku: String }
    ///
    /// #[event(name = "price.quoted")]
    /// #[derive(serde::Deserialize)]
    /// struct PriceQuoted { cents: u64 }
    ///
    /// # async fn f(sender: Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// let quote: PriceQuoted = sender.request(&PriceAsked { sku: "book".into() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn request<Q, R>(&self, question: &Q) -> Result<R, SendError>
    where
        Q: Event + Serialize,
        R: Event + DeserializeOwned,
    {
        let cloud = CloudEvent::from_event(question, self.inner.source.as_str())
            .map(TraceContext::stamp)
            .map_err(SendError::Encode)?;
        self.exchange(&cloud)
            .await?
            .decode::<R>()
            .map_err(SendError::Reply)
    }

    /// Sends `cloud` and returns the one event the receiver answered with.
    async fn exchange(&self, cloud: &CloudEvent) -> Result<CloudEvent, SendError> {
        let mut headers = HeaderMap::new();
        let body = write(cloud, self.inner.mode, &mut headers).map_err(SendError::Encode)?;
        let (outcome, reply) = self.deliver(headers, body).await;
        outcome.into_result()?;
        let (headers, body) = reply.unwrap_or_default();
        if body.is_empty() {
            return Err(SendError::Reply(CloudEventError::Malformed(
                "the receiver answered 2xx without a reply event (or its body could not be read)"
                    .into(),
            )));
        }
        match read(&headers, &body).map_err(SendError::Reply)? {
            Received::One(reply) => Ok(reply),
            Received::Batch(_) => Err(SendError::Reply(CloudEventError::Malformed(
                "a batch where one reply event was expected".into(),
            ))),
        }
    }

    /// Sends a command to the process whose [`Receiver`](super::Receiver) runs it
    /// ([`Receiver::command`](super::Receiver::command)): a CloudEvent of type
    /// [`C::NAME`](crate::cqrs::Command::NAME) with the command as JSON data. Acknowledged once the
    /// remote handler succeeded.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # use event_bus::cloudevents::Sender;
    /// #[command(name = "billing.charge")]
    /// #[derive(serde::Serialize)]
    /// struct Charge { cents: u64 }
    ///
    /// # async fn f(sender: Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// sender.send_command(&Charge { cents: 100 }).await.into_result()?;
    /// # Ok(()) }
    /// ```
    pub async fn send_command<C>(&self, command: &C) -> Outcome
    where
        C: crate::cqrs::Command + Serialize,
    {
        match super::cqrs::message_event(C::NAME, &self.inner.source, command) {
            Ok(cloud) => self.send_cloud(&TraceContext::stamp(cloud)).await,
            Err(error) => Outcome::Undelivered(SendError::Encode(error)),
        }
    }

    /// Asks a query of the process whose [`Receiver`](super::Receiver) answers it
    /// ([`Receiver::query`](super::Receiver::query)) and returns the typed reply.
    ///
    /// # Errors
    ///
    /// As [`request`](Sender::request): delivery failures, a refusal (with the remote error),
    /// or a reply that is not a `Q::Reply`.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # use event_bus::cloudevents::Sender;
    /// #[query(name = "stock.level", reply = u64)]
    /// #[derive(serde::Serialize)]
    /// struct StockLevel { sku: String }
    ///
    /// # async fn f(sender: Sender) -> Result<(), Box<dyn std::error::Error>> {
    /// let level: u64 = sender.ask(&StockLevel { sku: "tea".into() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ask<Q>(&self, query: &Q) -> Result<Q::Reply, SendError>
    where
        Q: crate::cqrs::Query + Serialize,
        Q::Reply: DeserializeOwned,
    {
        let cloud = super::cqrs::message_event(Q::NAME, &self.inner.source, query)
            .map(TraceContext::stamp)
            .map_err(SendError::Encode)?;
        let reply = self.exchange(&cloud).await?;
        let expected = super::receiver::reply_type(Q::NAME);
        if reply.event_type() != expected {
            return Err(SendError::Reply(CloudEventError::Malformed(format!(
                "expected a reply of type `{expected}`, got `{}`",
                reply.event_type()
            ))));
        }
        super::cqrs::decode_message(&reply, Q::NAME).map_err(SendError::Reply)
    }

    /// Registers a listener on `E`'s global registry that sends every triggered `E` (one line
    /// forwarding). The listener fails (and the dispatch's report says so) when the event is not
    /// acknowledged. For delivery that survives a crash or an offline receiver, put
    /// [`forwarding`] behind a [`Durable`](crate::pipeline::Durable) inbox instead.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # use event_bus::cloudevents::Sender;
    /// # #[event] #[derive(serde::Serialize)] struct Ping;
    /// # fn f(sender: &Sender) {
    /// let subscription = sender.forward::<Ping>();
    /// # }
    /// ```
    pub fn forward<E: Event + Serialize>(&self) -> Subscription<E> {
        let sender = self.clone();
        E::listener()
            .name(format!("cloudevents-forward({})", self.inner.url))
            .register_async(move |event: Arc<E>| {
                let sender = sender.clone();
                async move { sender.send(&*event).await.into_result() }
            })
    }

    /// One call with retries; the answer's headers and body when it was a 2xx.
    async fn deliver(
        &self,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> (Outcome, Option<(HeaderMap, Bytes)>) {
        let inner = &*self.inner;
        let body = Bytes::from(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (outcome, wait) = self.attempt(&headers, body.clone()).await;
            let retry = match &outcome {
                Ok(_) => false,
                Err(Outcome::Nack { status, .. }) => retryable_status(*status),
                Err(Outcome::Undelivered(error)) => error.is_retryable(),
                Err(Outcome::Ack) => false,
            };
            if !retry || attempt >= inner.attempts {
                return match outcome {
                    Ok(reply) => (Outcome::Ack, Some(reply)),
                    Err(outcome) => (outcome, None),
                };
            }
            let backoff = backoff(inner.initial_backoff, inner.max_backoff, attempt);
            tokio::time::sleep(backoff.max(wait.unwrap_or_default())).await;
        }
    }

    /// One attempt: the reply on a 2xx, else the outcome and the `Retry-After` delay, if any.
    async fn attempt(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> (Result<(HeaderMap, Bytes), Outcome>, Option<Duration>) {
        let inner = &*self.inner;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = inner.url.clone();
        *request.headers_mut() = headers.clone();
        let call = async {
            let response = inner
                .client
                .request(request)
                .await
                .map_err(|error| SendError::Transport(error.to_string()))?;
            let status = response.status();
            let headers = response.headers().clone();
            // The status decides; the body is read for a reply or a reason, and a body that
            // cannot be read (too large, cut short) never turns an answer into "undelivered".
            let limit = if status.is_success() {
                REPLY_LIMIT
            } else {
                REASON_LIMIT
            };
            let bytes = match Limited::new(response.into_body(), limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if status.is_success() => {
                    tracing::debug!(%error, "the body of a 2xx answer could not be read");
                    Bytes::new()
                }
                Err(error) => {
                    Bytes::from(format!("(the answer's body could not be read: {error})"))
                }
            };
            Ok::<_, SendError>((status, headers, bytes))
        };
        match tokio::time::timeout(inner.timeout, call).await {
            Err(_) => (
                Err(Outcome::Undelivered(SendError::Timeout(inner.timeout))),
                None,
            ),
            Ok(Err(error)) => (Err(Outcome::Undelivered(error)), None),
            Ok(Ok((status, headers, bytes))) if status.is_success() => (Ok((headers, bytes)), None),
            Ok(Ok((status, headers, bytes))) => {
                let wait = headers
                    .get(header::RETRY_AFTER)
                    .and_then(|value: &HeaderValue| value.to_str().ok())
                    .and_then(retry_after)
                    .map(|wait| wait.min(MAX_RETRY_AFTER));
                let reason = String::from_utf8_lossy(&bytes).into_owned();
                (Err(Outcome::Nack { status, reason }), wait)
            }
        }
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110, section 10.2.3).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Exponential backoff with full jitter: a random delay up to `initial * 2^(attempt-1)`, capped.
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = initial
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    ceiling.mul_f64(fastrand::f64())
}

/// A pipeline handler that sends each message to `sender` as a CloudEvent (see
/// [`CloudEvent::from_message`]) and continues once it is acknowledged. A refusal that retrying
/// cannot fix (a 4xx other than 404/408/409/425/429) is a permanent error, anything else
/// retryable: behind a [`Durable`](crate::pipeline::Durable) inbox, a crash or an offline receiver
/// loses nothing.
///
/// ```no_run
/// use event_bus::prelude::*;
/// use event_bus::cloudevents::{Sender, forwarding};
/// use event_bus::pipeline::{Durable, Pipeline};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// #[event(name = "com.example.order.placed")]
/// #[derive(serde::Serialize)]
/// struct OrderPlaced;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sender = Sender::new("http://127.0.0.1:8080/")?;
/// let outbox = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().then(forwarding(sender)).build());
/// outbox.listen::<OrderPlaced>()?;
/// # Ok(()) }
/// ```
pub fn forwarding(sender: Sender) -> Forwarding {
    Forwarding { sender }
}

/// The handler [`forwarding`] returns.
///
/// ```
/// # use event_bus::cloudevents::{Forwarding, Sender, forwarding};
/// let handler: Forwarding = forwarding(Sender::new("http://127.0.0.1:1/")?);
/// # Ok::<(), event_bus::cloudevents::SendError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Forwarding {
    sender: Sender,
}

impl Handler for Forwarding {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let sender = self.sender.clone();
        Box::pin(async move {
            let cloud = CloudEvent::from_message(&message, sender.inner.source.as_str())
                .map(TraceContext::stamp)
                .map_err(PipelineError::permanent)?;
            match sender.send_cloud(&cloud).await.into_result() {
                Ok(()) => next.run(message).await,
                Err(error) if error.is_retryable() => Err(PipelineError::retryable(error)),
                Err(error) => Err(PipelineError::permanent(error)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempt in 1..40 {
            let delay = backoff(initial, max, attempt);
            assert!(delay <= max, "{attempt}: {delay:?}");
            let ceiling = initial.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(delay <= ceiling);
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(10);
        let wait = retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        let past = std::time::SystemTime::now() - Duration::from_secs(10);
        assert_eq!(
            retry_after(&httpdate::fmt_http_date(past)),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn only_the_knative_statuses_are_retried() {
        for code in [404, 408, 409, 425, 429, 500, 502, 503, 504] {
            assert!(
                retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
        for code in [400, 401, 403, 405, 410, 413, 415, 422] {
            assert!(
                !retryable_status(StatusCode::from_u16(code).unwrap()),
                "{code}"
            );
        }
    }
}
