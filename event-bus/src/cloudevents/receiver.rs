//! [`Receiver`]: an axum `Router` that takes CloudEvents over HTTP and delivers them, typed, into
//! registries, pipelines or durable inboxes, answering as Knative and other senders expect.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::binding::read;
use super::detached::Detached;
use super::event::CloudEvent;
use crate::event::Event;
use crate::pipeline::{Durable, Idempotency, Message, Next, Pipeline, PipelineError, from_fn};

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The default bound on requests processed at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// What happened to one event: `Ok` once processed (or durably stored), else the status to
/// answer and why.
/// A route may answer with an event (request-response).
type Outcome = Result<Option<CloudEvent>, (StatusCode, String)>;
type Delivery =
    Arc<dyn Fn(CloudEvent) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// A route: where its events go, and whether it answers with a reply (then every request is
/// answered by running it, even under [`Receiver::deduplicate`]).
#[derive(Clone)]
struct Route {
    delivery: Delivery,
    replies: bool,
}

/// What a [`Receiver`] does with an event whose `type` has no route.
///
/// ```
/// use event_bus::cloudevents::{Receiver, UnknownType};
///
/// let receiver = Receiver::new().unknown_types(UnknownType::Ignore);
/// # drop(receiver);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownType {
    /// Answer 400 with the type in the reason (the default: a sender that routes events to the
    /// wrong service hears about it).
    #[default]
    Reject,
    /// Answer 2xx and drop the event (for a receiver subscribed to more types than it handles).
    Ignore,
}

/// An HTTP endpoint for CloudEvents, as an axum [`Router`] to mount in an application or serve
/// alone.
///
/// Each `route` names an event type and where its events go: the type's registry (awaited, so the
/// answer reflects what the listeners did), a [`Pipeline`], or a [`Durable`] inbox (answered once
/// the event is stored; processed right after, and by `recover` after a crash). Binary,
/// structured and batch content modes are read (see [`read`]).
///
/// Answers: **200** once every event of the request is processed or durably stored; **400** with
/// a reason for a malformed event, a missing attribute, data that does not decode into the route's
/// type, a version this program does not read, or an unknown `type` (unless
/// [`UnknownType::Ignore`]); **413** over the body limit (1 MiB by default); **415** for a body
/// that is not a CloudEvent; **500** when a listener or the pipeline failed (so the sender
/// retries); **503** when a retryable pipeline error says to try again; **429** with `Retry-After`
/// when more than [`max_in_flight`](Receiver::max_in_flight) requests are being processed. A batch
/// is answered with the first failure, after every event before it was processed. No input makes
/// it panic; a panicking listener is a failure like any other.
///
/// Processing runs in its own task: a sender that disconnects does not cut it short.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::cloudevents::Receiver;
///
/// #[event(name = "com.example.user.created")]
/// #[derive(serde::Deserialize)]
/// struct UserCreated {
///     email: String,
/// }
///
/// UserCreated::register(|user: &UserCreated| println!("welcome {}", user.email));
/// let app: axum::Router = Receiver::new().route::<UserCreated>().into_router();
/// // axum::serve(listener, app).await  — or nest it: Router::new().nest("/events", app)
/// # drop(app);
/// ```
pub struct Receiver {
    routes: HashMap<String, Route>,
    unknown: UnknownType,
    body_limit: usize,
    max_in_flight: usize,
    retry_after: Duration,
    source: Arc<String>,
    deduplicate: Option<Idempotency>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.routes.keys().collect();
        types.sort();
        f.debug_struct("Receiver")
            .field("types", &types)
            .field("unknown", &self.unknown)
            .field("body_limit", &self.body_limit)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

impl Receiver {
    /// A receiver with no routes, a 1 MiB body limit, 1,024 requests in flight and unknown types
    /// rejected.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    ///
    /// let app = Receiver::new().body_limit(64 * 1024).max_in_flight(100).into_router();
    /// # drop(app);
    /// ```
    pub fn new() -> Self {
        Receiver {
            routes: HashMap::new(),
            unknown: UnknownType::Reject,
            body_limit: DEFAULT_BODY_LIMIT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry_after: Duration::from_secs(1),
            source: Arc::new(String::from("/event-bus")),
            deduplicate: None,
        }
    }

    /// Delivers events of type `E::NAME` into `E`'s global registry, awaited: 200 when every
    /// listener succeeded, 500 naming the failed ones otherwise.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::Receiver;
    ///
    /// #[event(name = "ping")]
    /// #[derive(serde::Deserialize)]
    /// struct Ping;
    ///
    /// let app = Receiver::new().route::<Ping>().into_router();
    /// # drop(app);
    /// ```
    pub fn route<E: Event + DeserializeOwned>(mut self) -> Self {
        let delivery: Delivery = Arc::new(|cloud: CloudEvent| {
            Box::pin(async move {
                let event = cloud.decode::<E>().map_err(rejected)?;
                let report = event.deliver().await;
                if report.is_success() {
                    Ok(None)
                } else {
                    Err((StatusCode::INTERNAL_SERVER_ERROR, report.to_string()))
                }
            })
        });
        self.routes.insert(
            E::NAME.to_owned(),
            Route {
                delivery,
                replies: false,
            },
        );
        self
    }

    /// Processes events of type `E::NAME` through `pipeline` as messages (key = `partitionkey`,
    /// content = data, id = the event id): 200 once it returns `Ok`, 503 for a retryable error,
    /// 500 for a permanent one. The data is checked to decode into `E` first (400 if not).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::Receiver;
    /// use event_bus::pipeline::Pipeline;
    ///
    /// #[event(name = "order.requested")]
    /// #[derive(serde::Deserialize)]
    /// struct OrderRequested;
    ///
    /// let app = Receiver::new().pipeline::<OrderRequested>(Pipeline::builder().build()).into_router();
    /// # drop(app);
    /// ```
    pub fn pipeline<E: Event + DeserializeOwned>(mut self, pipeline: Pipeline) -> Self {
        let delivery: Delivery = Arc::new(move |cloud: CloudEvent| {
            let pipeline = pipeline.clone();
            Box::pin(async move {
                cloud.decode::<E>().map_err(rejected)?;
                pipeline
                    .process(cloud.into_message())
                    .await
                    .map_err(failed)?;
                Ok(None)
            })
        });
        self.routes.insert(
            E::NAME.to_owned(),
            Route {
                delivery,
                replies: false,
            },
        );
        self
    }

    /// Stores events of type `E::NAME` in `durable`'s inbox and answers 200 as soon as they are
    /// stored; each is then processed in the background (and by [`Durable::recover`] if the
    /// program dies first). 503 when the store cannot take it.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::Receiver;
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "order.requested")]
    /// #[derive(serde::Deserialize)]
    /// struct OrderRequested;
    ///
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// let app = Receiver::new().durable::<OrderRequested>(durable).into_router();
    /// # drop(app);
    /// ```
    pub fn durable<E: Event + DeserializeOwned>(mut self, durable: Durable) -> Self {
        let delivery: Delivery = Arc::new(move |cloud: CloudEvent| {
            let durable = durable.clone();
            Box::pin(async move {
                cloud.decode::<E>().map_err(rejected)?;
                let accepted = durable
                    .accept(cloud.into_message())
                    .await
                    .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
                // Stored: the answer no longer depends on processing. A failure stays in the
                // inbox for `recover`.
                tokio::spawn(async move {
                    if let Err(error) = accepted.process().await {
                        tracing::warn!(%error, "a received event failed; it stays in the inbox");
                    }
                });
                Ok(None)
            })
        });
        self.routes.insert(
            E::NAME.to_owned(),
            Route {
                delivery,
                replies: false,
            },
        );
        self
    }

    /// Answers events of type `Q::NAME` with an event: `f` gets the decoded `Q` and returns the
    /// reply `R`, sent back in the 200 response as a binary-mode CloudEvent (its `source` is
    /// [`source`](Receiver::source)). An error from `f` is a 500 with its message. In a batch,
    /// replies are not sent (the batch is answered 200 once every event was handled).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::cloudevents::Receiver;
    ///
    /// #[event(name = "price.asked")]
    /// #[derive(serde::Deserialize)]
    /// struct PriceAsked { sku: String }
    ///
    /// #[event(name = "price.quoted")]
    /// #[derive(serde::Serialize)]
    /// struct PriceQuoted { cents: u64 }
    ///
    /// let app = Receiver::new()
    ///     .reply(|ask: PriceAsked| async move {
    ///         Ok::<_, std::io::Error>(PriceQuoted { cents: ask.sku.len() as u64 * 100 })
    ///     })
    ///     .into_router();
    /// # drop(app);
    /// ```
    pub fn reply<Q, R, F, Fut, Err>(mut self, f: F) -> Self
    where
        Q: Event + DeserializeOwned,
        R: Event + serde::Serialize,
        F: Fn(Q) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Err>> + Send + 'static,
        Err: Into<crate::BoxError>,
    {
        let f = Arc::new(f);
        let source = Arc::clone(&self.source);
        let delivery: Delivery = Arc::new(move |cloud: CloudEvent| {
            let (f, source) = (Arc::clone(&f), Arc::clone(&source));
            Box::pin(async move {
                let question = cloud.decode::<Q>().map_err(rejected)?;
                let answer = f(question).await.map_err(|error| {
                    (StatusCode::INTERNAL_SERVER_ERROR, error.into().to_string())
                })?;
                let reply = CloudEvent::from_event(&answer, source.as_str()).map_err(rejected)?;
                Ok(Some(reply))
            })
        });
        self.routes.insert(
            Q::NAME.to_owned(),
            Route {
                delivery,
                replies: true,
            },
        );
        self
    }

    /// Runs commands of type `C` sent as CloudEvents (type [`C::NAME`](crate::cqrs::Command::NAME),
    /// JSON data; see [`Sender::send_command`](super::Sender::send_command)) through their local
    /// handler: 200 once it succeeded, 422 with its error (or panic; not retried by the sender:
    /// a command runs once), 501 if this process has no handler.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    /// use event_bus::prelude::*;
    ///
    /// #[command(name = "billing.charge")]
    /// #[derive(serde::Deserialize)]
    /// struct Charge {
    ///     cents: u64,
    /// }
    ///
    /// let app = Receiver::new().command::<Charge>().into_router();
    /// # drop(app);
    /// ```
    pub fn command<C>(mut self) -> Self
    where
        C: crate::cqrs::Command + DeserializeOwned,
    {
        let delivery: Delivery = Arc::new(|cloud: CloudEvent| {
            Box::pin(async move {
                let command: C = decode_message(&cloud, C::NAME)?;
                command.send().await.map_err(cqrs_failed)?;
                Ok(None)
            })
        });
        self.routes.insert(
            C::NAME.to_owned(),
            Route {
                delivery,
                replies: false,
            },
        );
        self
    }

    /// Answers queries of type `Q` sent as CloudEvents (see
    /// [`Sender::ask`](super::Sender::ask)) with their local handler's reply, sent back as a
    /// CloudEvent of type `{Q::NAME}.reply` with JSON data; 422 with the handler's error, 501
    /// if this process has no handler.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    /// use event_bus::prelude::*;
    ///
    /// #[query(name = "stock.level", reply = u64)]
    /// #[derive(serde::Deserialize)]
    /// struct StockLevel {
    ///     sku: String,
    /// }
    ///
    /// let app = Receiver::new().query::<StockLevel>().into_router();
    /// # drop(app);
    /// ```
    pub fn query<Q>(mut self) -> Self
    where
        Q: crate::cqrs::Query + DeserializeOwned,
        Q::Reply: serde::Serialize,
    {
        let source = Arc::clone(&self.source);
        let delivery: Delivery = Arc::new(move |cloud: CloudEvent| {
            let source = Arc::clone(&source);
            Box::pin(async move {
                let query: Q = decode_message(&cloud, Q::NAME)?;
                let reply = query.ask().await.map_err(cqrs_failed)?;
                let reply = super::cqrs::message_event(&reply_type(Q::NAME), &source, &reply)
                    .map_err(rejected)?;
                Ok(Some(reply))
            })
        });
        self.routes.insert(
            Q::NAME.to_owned(),
            Route {
                delivery,
                replies: true,
            },
        );
        self
    }

    /// The `source` of the events this receiver sends back as replies; `/event-bus` by default.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    ///
    /// let app = Receiver::new().source("https://prices.example.com").into_router();
    /// # drop(app);
    /// ```
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Arc::new(source.into());
        self
    }

    /// Processes each event at most once per `source` + `id` (the CloudEvents identity), on the
    /// idempotency adapter's store and claims: a duplicate that arrives after the first was
    /// processed is answered 200 without running anything; one that arrives while the first is
    /// being processed waits for its outcome (see [`Idempotency`]); a failed first attempt lets
    /// the next one run. The adapter's key is replaced by `source` + `id`; its store, namespace,
    /// lease and TTL are kept (give it a TTL: the records are kept that long). Routes added with
    /// [`reply`](Receiver::reply) are not deduplicated: a request is answered by running it each
    /// time (a duplicate would have no reply to send back).
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let seen = Idempotency::new(Arc::new(MemoryStore::new())).ttl(Duration::from_secs(24 * 3600));
    /// let app = Receiver::new().deduplicate(seen).into_router();
    /// # drop(app);
    /// ```
    pub fn deduplicate(mut self, idempotency: Idempotency) -> Self {
        self.deduplicate = Some(idempotency.key_by(|message: &Message| {
            let source = message.metadata().get(SOURCE).map_or("", String::as_str);
            format!("{}\n{source}\n{}", source.len(), message.id())
        }));
        self
    }

    /// What to do with an event whose type has no route ([`UnknownType::Reject`] by default).
    ///
    /// ```
    /// use event_bus::cloudevents::{Receiver, UnknownType};
    ///
    /// let app = Receiver::new().unknown_types(UnknownType::Ignore).into_router();
    /// # drop(app);
    /// ```
    pub fn unknown_types(mut self, unknown: UnknownType) -> Self {
        self.unknown = unknown;
        self
    }

    /// The largest body accepted, in bytes (413 above it); 1 MiB by default.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    ///
    /// let app = Receiver::new().body_limit(16 * 1024).into_router();
    /// # drop(app);
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many requests are processed at once; more are answered 429 with `Retry-After`.
    /// At least 1; 1,024 by default.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    ///
    /// let app = Receiver::new().max_in_flight(8).into_router();
    /// # drop(app);
    /// ```
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// The `Retry-After` a 429 carries (rounded up to whole seconds, at least 1); 1 s by default.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    /// use std::time::Duration;
    ///
    /// let app = Receiver::new().retry_after(Duration::from_secs(5)).into_router();
    /// # drop(app);
    /// ```
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// The router: `POST /` takes events. Mount it with `Router::nest` or serve it with
    /// `axum::serve`.
    ///
    /// ```
    /// use event_bus::cloudevents::Receiver;
    ///
    /// let app = axum::Router::new().nest("/events", Receiver::new().into_router());
    /// # drop(app);
    /// ```
    pub fn into_router(self) -> Router {
        let seconds = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(self.max_in_flight)),
            retry_after: HeaderValue::from(seconds.max(1)),
            receiver: self,
        });
        Router::new()
            .route("/", axum::routing::post(receive))
            .with_state(shared)
    }
}

struct Shared {
    receiver: Receiver,
    permits: Arc<Semaphore>,
    retry_after: HeaderValue,
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many events in flight; retry later",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, shared.retry_after.clone());
        return response;
    };
    let limit = shared.receiver.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large(limit);
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return too_large(limit),
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}"),
            )
                .into_response();
        }
    };
    let (events, batch) = match read(&headers, &bytes) {
        Ok(received) => {
            let batch = matches!(received, super::binding::Received::Batch(_));
            (received.into_events(), batch)
        }
        Err(error) => return (error.status(), error.to_string()).into_response(),
    };
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        match shared.receiver.routes.get(event.event_type()) {
            Some(route) => deliveries.push((route.clone(), event)),
            None if shared.receiver.unknown == UnknownType::Ignore => {}
            None => {
                let reason = format!("no route for event type `{}`", event.event_type());
                return (StatusCode::BAD_REQUEST, reason).into_response();
            }
        }
    }
    // Polled here (no task hand-off per request), but finished in a task of its own if the
    // sender goes away mid-way: a disconnect never cancels processing half-way. A panic becomes a
    // 500.
    let single = !batch;
    let dedupe = shared.receiver.deduplicate.clone();
    let processing = Detached::new(async move {
        let _permit = permit;
        let mut reply = None;
        for (route, event) in deliveries {
            // A request is answered by running its route every time: a duplicate has no stored
            // reply to send back.
            let dedupe = dedupe.as_ref().filter(|_| !route.replies);
            reply = traced(&route.delivery, dedupe, event).await?;
        }
        Ok::<_, (StatusCode, String)>(reply.filter(|_| single))
    });
    match processing.await {
        Ok(Ok(None)) => StatusCode::OK.into_response(),
        Ok(Ok(Some(reply))) => {
            let mut headers = HeaderMap::new();
            match super::binding::write(&reply, super::binding::Mode::Binary, &mut headers) {
                Ok(body) => (StatusCode::OK, headers, body).into_response(),
                Err(error) => (error.status(), error.to_string()).into_response(),
            }
        }
        Ok(Err((status, reason))) => (status, reason).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "processing panicked").into_response(),
    }
}

/// The metadata entry that carries the event's `source` to the idempotency key.
const SOURCE: &str = "cloudevents.source";

/// Runs `delivery` through the idempotency adapter, keyed by the event's `source` + `id`.
/// Delivers one event inside a `cloudevents.receive` span, with its trace context (if any) as the
/// current one.
async fn traced(delivery: &Delivery, dedupe: Option<&Idempotency>, event: CloudEvent) -> Outcome {
    use tracing::Instrument as _;
    let context = super::trace::TraceContext::of(&event);
    let span = tracing::debug_span!(
        "cloudevents.receive",
        ce.id = event.id(),
        ce.source = event.source(),
        ce.type = event.event_type(),
        traceparent = context.as_ref().map(|c| c.traceparent()),
        tracestate = context.as_ref().and_then(|c| c.tracestate()),
    );
    let work = async move {
        match dedupe {
            None => delivery(event).await,
            Some(idempotency) => once(idempotency, Arc::clone(delivery), event).await,
        }
    }
    .instrument(span);
    super::trace::TraceContext::within(context, work).await
}

async fn once(idempotency: &Idempotency, delivery: Delivery, event: CloudEvent) -> Outcome {
    let message = Message::new(event.event_type(), "", Vec::new())
        .with_id(event.id())
        .with_metadata(SOURCE, event.source());
    let result: Arc<std::sync::Mutex<Option<Outcome>>> = Arc::default();
    let slot = Arc::clone(&result);
    let event = Arc::new(std::sync::Mutex::new(Some(event)));
    let pipeline = Pipeline::builder()
        .then(idempotency.clone())
        .then(from_fn(move |message: Message, next: Next| {
            let (delivery, slot) = (Arc::clone(&delivery), Arc::clone(&slot));
            let event = event.lock().ok().and_then(|mut event| event.take());
            async move {
                let Some(event) = event else {
                    return next.run(message).await;
                };
                let outcome = delivery(event).await;
                let failed = outcome.is_err();
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(outcome);
                }
                if failed {
                    // Not recorded as done: the sender's retry runs it again.
                    return Err(PipelineError::retryable("the delivery failed"));
                }
                next.run(message).await
            }
        }))
        .build();
    let processed = pipeline.process(message).await;
    let outcome = result.lock().ok().and_then(|mut slot| slot.take());
    match (outcome, processed) {
        (Some(outcome), _) => outcome,
        // Not run: a duplicate of an event already processed.
        (None, Ok(())) => Ok(None),
        (None, Err(error)) => Err(failed(error)),
    }
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than the limit of {limit} bytes"),
    )
        .into_response()
}

/// A typed decoding failure: the sender's input.
/// The type of the reply to a query named `name`.
pub(crate) fn reply_type(name: &str) -> String {
    format!("{name}.reply")
}

/// A command's or query's data, decoded.
fn decode_message<M: DeserializeOwned>(
    cloud: &CloudEvent,
    name: &'static str,
) -> Result<M, (StatusCode, String)> {
    super::cqrs::decode_message(cloud, name).map_err(rejected)
}

/// A command's or query's failure, as the sender sees it: 422 when the handler ran and failed or
/// panicked (a command is not idempotent in general: the sender must not run it again by
/// itself), 501 without a handler. Neither is retried by [`Sender`](super::Sender).
fn cqrs_failed(error: crate::cqrs::CqrsError) -> (StatusCode, String) {
    let status = match error {
        crate::cqrs::CqrsError::NoHandler { .. }
        | crate::cqrs::CqrsError::DuplicateHandler { .. } => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, error.to_string())
}

fn rejected(error: super::error::CloudEventError) -> (StatusCode, String) {
    (error.status(), error.to_string())
}

/// A pipeline failure: retryable ones ask the sender to come back.
fn failed(error: crate::pipeline::PipelineError) -> (StatusCode, String) {
    let status = if error.is_retryable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, error.to_string())
}
