//! [`Consume`] and [`Consuming`]: typed events from a durable JetStream pull consumer into a
//! registry, a pipeline or a durable inbox, acknowledged only once handled.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::client::Nats;
use super::error::NatsError;
use super::puller::{Pulled, Puller};
use super::wire;
use crate::cloudevents::{CloudEvent, CloudEventError, TraceContext};
use crate::event::Event;
use crate::pipeline::{DeadLetters, Durable, Message, Pipeline, PipelineError};

/// The most events one consumer handles at once (more is clamped to this).
const MAX_CONCURRENCY: usize = 1 << 16;

/// Where consumed events go.
#[derive(Clone)]
enum Target {
    /// Decoded and delivered into `E`'s global registry, awaited.
    Registry,
    /// Processed as messages by a pipeline.
    Pipeline(Pipeline),
    /// Stored in a durable inbox, then processed.
    Durable(Durable),
}

/// A consumer of `E` being configured; [`start`](Consume::start) runs it. From
/// [`Nats::consume`].
///
/// - **Groups**: every member of a group shares one durable JetStream consumer named after the
///   group, so each event is handled by one member (a work queue). With
///   [`fan_out`](Consume::fan_out), each instance has its own durable consumer and handles every
///   event. A durable consumer remembers its position: a member (re)starting later gets what was
///   published meanwhile; a new fan-out instance starts from the beginning of the stream.
/// - **Targets**: `E`'s global registry (default; every listener awaited), a
///   [`pipeline`](Consume::pipeline), or a [`durable`](Consume::durable) inbox.
/// - **Acknowledgement**: an event is acknowledged once handled (the registry's listeners all
///   succeeded, the pipeline returned `Ok`, the inbox stored it); until then the consumer tells
///   the server it is still working on it, so a slow handler is not redelivered. A retryable
///   failure is negatively acknowledged with an exponential [`backoff`](Consume::backoff) delay;
///   a permanent failure, or the [`max_deliveries`](Consume::max_deliveries)th failed
///   delivery, goes to the [`dead_letters`](Consume::dead_letters) and is terminated. Without
///   dead letters such an event is retried at the longest backoff, never dropped. If the process
///   dies, what it held unacknowledged is redelivered after the [`ack_wait`](Consume::ack_wait).
///   Delivery is at least once: put an [`Idempotency`](crate::pipeline::Idempotency) in the
///   pipeline where a second run matters.
/// - **Malformed messages** (not a CloudEvent, or data that does not decode into `E`) are
///   dead-lettered as they came (source = the subject) and terminated, or, without dead
///   letters, terminated with an error logged and counted in [`ConsumeStats::malformed`].
/// - **Limits**: [`concurrency`](Consume::concurrency) events handled at once in this process
///   (default 1: in publish order, except for redeliveries), at most
///   [`max_ack_pending`](Consume::max_ack_pending) unacknowledged in the whole group. Each
///   member keeps one pull subscription open and asks the server only for as many events as its
///   free slots can start, so no event waits in the client (where its ack wait would run
///   without progress).
///
/// ```no_run
/// use event_bus::prelude::*;
/// use event_bus::nats::Nats;
/// use event_bus::pipeline::DeadLetters;
/// use event_bus::store::MemoryStore;
/// use std::{sync::Arc, time::Duration};
///
/// #[event(name = "orders.placed", key = order)]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct OrderPlaced {
///     order: u64,
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), event_bus::nats::NatsError> {
/// OrderPlaced::register(|placed: &OrderPlaced| println!("bill order {}", placed.order));
/// let nats = Nats::connect("nats://127.0.0.1:4222").await?;
/// let consuming = nats
///     .consume::<OrderPlaced>("billing")
///     .concurrency(8)
///     .max_deliveries(5)
///     .backoff(Duration::from_millis(100), Duration::from_secs(30))
///     .dead_letters(DeadLetters::new(Arc::new(MemoryStore::new())))
///     .start()
///     .await?;
/// // ... later, finish what is in hand and stop:
/// consuming.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Consume<E> {
    settings: Settings,
    _event: PhantomData<fn() -> E>,
}

#[derive(Clone)]
struct Settings {
    nats: Nats,
    group: String,
    instance: Option<String>,
    target: Target,
    concurrency: usize,
    max_ack_pending: usize,
    max_deliveries: u32,
    backoff: (Duration, Duration),
    ack_wait: Duration,
    dead_letters: Option<DeadLetters>,
}

impl<E> std::fmt::Debug for Consume<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("Consume")
            .field("group", &s.group)
            .field("instance", &s.instance)
            .field("concurrency", &s.concurrency)
            .field("max_ack_pending", &s.max_ack_pending)
            .field("max_deliveries", &s.max_deliveries)
            .field("backoff", &s.backoff)
            .field("ack_wait", &s.ack_wait)
            .finish_non_exhaustive()
    }
}

impl<E: Event + DeserializeOwned> Consume<E> {
    pub(crate) fn new(nats: Nats, group: &str) -> Self {
        Consume {
            settings: Settings {
                nats,
                group: group.to_owned(),
                instance: None,
                target: Target::Registry,
                concurrency: 1,
                max_ack_pending: 1000,
                max_deliveries: 5,
                backoff: (Duration::from_millis(100), Duration::from_secs(30)),
                ack_wait: Duration::from_secs(30),
                dead_letters: None,
            },
            _event: PhantomData,
        }
    }

    /// Fan-out: this `instance` of the group gets every event (its own durable consumer, named
    /// `{group}-{instance}`), instead of sharing the group's. Give each process a stable instance
    /// name so that a restart resumes where it stopped.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("cache-invalidation").fan_out("host-1");
    /// # }
    /// ```
    pub fn fan_out(mut self, instance: impl Into<String>) -> Self {
        self.settings.instance = Some(instance.into());
        self
    }

    /// Processes events through `pipeline` as messages (key = `partitionkey`, content = the
    /// data, id = the event id) instead of the registry. The data is checked to decode into `E`
    /// first.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("billing").pipeline(event_bus::pipeline::Pipeline::builder().build());
    /// # }
    /// ```
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.settings.target = Target::Pipeline(pipeline);
        self
    }

    /// Stores events in `durable`'s inbox and acknowledges them as soon as they are stored; each
    /// is then processed in the background (and by [`Durable::recover`] if the process dies
    /// first).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let durable = Durable::new(std::sync::Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// let consume = nats.consume::<OrderPlaced>("billing").durable(durable);
    /// # }
    /// ```
    pub fn durable(mut self, durable: Durable) -> Self {
        self.settings.target = Target::Durable(durable);
        self
    }

    /// How many events this process handles at once (default 1, which keeps publish order
    /// apart from redeliveries; at most 65,536). For a [`durable`](Consume::durable) target it
    /// bounds how many are being stored at once; their processing runs in the background.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("billing").concurrency(16);
    /// # }
    /// ```
    pub fn concurrency(mut self, events: usize) -> Self {
        self.settings.concurrency = events.clamp(1, MAX_CONCURRENCY);
        self
    }

    /// At most this many events delivered and not yet acknowledged in the whole group (the
    /// JetStream consumer's `max_ack_pending`, default 1,000). It is set when the durable
    /// consumer is created; an existing consumer keeps its own.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("billing").max_ack_pending(64);
    /// # }
    /// ```
    pub fn max_ack_pending(mut self, events: usize) -> Self {
        self.settings.max_ack_pending = events.max(1);
        self
    }

    /// After this many failed deliveries of one event (default 5), it goes to the dead letters.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("billing").max_deliveries(10);
    /// # }
    /// ```
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.settings.max_deliveries = deliveries.max(1);
        self
    }

    /// The redelivery delay after a retryable failure: `initial` after the first, doubling up to
    /// `max` (defaults 100 ms and 30 s).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// use std::time::Duration;
    /// let consume = nats.consume::<OrderPlaced>("billing").backoff(Duration::from_millis(50), Duration::from_secs(5));
    /// # }
    /// ```
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.backoff = (initial, max.max(initial));
        self
    }

    /// How long the server waits for an acknowledgement before redelivering (default 30 s):
    /// the time a crashed consumer's events wait. Set when the durable consumer is created; an
    /// existing one keeps its own, and a handler that takes longer than the consumer's ack wait
    /// is kept alive by progress messages every third of it.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let consume = nats.consume::<OrderPlaced>("billing").ack_wait(std::time::Duration::from_secs(5));
    /// # }
    /// ```
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.settings.ack_wait = wait.max(Duration::from_millis(100));
        self
    }

    /// Where events that failed for good go: each as a dead letter holding the event as a
    /// pipeline message (replay it with [`DeadLetters::replay`]).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// # async fn f(nats: event_bus::nats::Nats) {
    /// let dead_letters = DeadLetters::new(std::sync::Arc::new(MemoryStore::new()));
    /// let consume = nats.consume::<OrderPlaced>("billing").dead_letters(dead_letters);
    /// # }
    /// ```
    pub fn dead_letters(mut self, dead_letters: DeadLetters) -> Self {
        self.settings.dead_letters = Some(dead_letters);
        self
    }

    /// Creates the stream and the durable consumer if needed, then consumes in a background task
    /// until [`Consuming::shutdown`] (or until the handle is dropped). Fails if the names are not
    /// valid or the server refuses the stream or the consumer; once started, a lost connection
    /// or a restarted server is waited out.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let consuming = nats.consume::<OrderPlaced>("billing").start().await?;
    /// println!("{:?}", consuming.stats());
    /// consuming.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<Consuming, NatsError> {
        let settings = Arc::new(self.settings);
        validate_name("group", &settings.group)?;
        if let Some(instance) = &settings.instance {
            validate_name("instance", instance)?;
        }
        let consumer = open(&settings, subject::<E>(&settings)).await?;
        let stats = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run::<E>(
            Arc::clone(&settings),
            consumer,
            Arc::clone(&stats),
            stopped,
        ));
        Ok(Consuming {
            stop,
            task: Some(task),
            stats,
            name: durable_name(&settings),
        })
    }
}

/// A running consumer; from [`Consume::start`]. Dropping it stops pulling too (what is in hand
/// still finishes in the background); [`shutdown`](Consuming::shutdown) also waits for that.
#[derive(Debug)]
pub struct Consuming {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<Counters>,
    name: String,
}

/// What a [`Consuming`] has done so far.
///
/// ```
/// let stats = event_bus::nats::ConsumeStats::default();
/// assert_eq!(stats.acked, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumeStats {
    /// Deliveries received (redeliveries included).
    pub received: u64,
    /// Deliveries that were redeliveries.
    pub redelivered: u64,
    /// Events handled and acknowledged.
    pub acked: u64,
    /// Failed deliveries handed back for a later retry.
    pub retried: u64,
    /// Events that failed for good and went to the dead letters.
    pub dead_lettered: u64,
    /// Messages that were not a CloudEvent of `E`.
    pub malformed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    malformed: AtomicU64,
}

impl Consuming {
    /// The durable JetStream consumer this reads from.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let consuming = nats.consume::<OrderPlaced>("billing").fan_out("a").start().await?;
    /// assert_eq!(consuming.consumer_name(), "billing-a");
    /// # Ok(()) }
    /// ```
    pub fn consumer_name(&self) -> &str {
        &self.name
    }

    /// Counters so far.
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let consuming = nats.consume::<OrderPlaced>("billing").start().await?;
    /// assert_eq!(consuming.stats().dead_lettered, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ConsumeStats {
        let c = &self.stats;
        ConsumeStats {
            received: c.received.load(Ordering::Relaxed),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }

    /// Stops pulling, lets every event in hand finish and be acknowledged (or handed back), and
    /// returns the final counters once the acknowledgements have left for the server (waiting up
    /// to 5 s for a connection that is down), so that the process may end right after. Events
    /// that arrived as it stopped and were not started are handed back (negatively acknowledged,
    /// so that another member gets them at once).
    ///
    /// ```no_run
    /// # use event_bus::prelude::*;
    /// # #[event(name = "orders.placed")] #[derive(serde::Deserialize)] struct OrderPlaced;
    /// # async fn f(nats: event_bus::nats::Nats) -> Result<(), event_bus::nats::NatsError> {
    /// let consuming = nats.consume::<OrderPlaced>("billing").start().await?;
    /// let stats = consuming.shutdown().await;
    /// println!("acknowledged {}", stats.acked);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) -> ConsumeStats {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(consumer = %self.name, %error, "the NATS consumer task failed");
        }
        self.stats()
    }
}

impl Drop for Consuming {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Names of groups and instances end up in consumer names: letters, digits, `-` and `_`.
fn validate_name(what: &str, name: &str) -> Result<(), NatsError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(NatsError::Config(format!(
            "the {what} name `{name}` must be 1 to 64 ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

fn durable_name(settings: &Settings) -> String {
    match &settings.instance {
        Some(instance) => format!("{}-{instance}", settings.group),
        None => settings.group.clone(),
    }
}

fn subject<E: Event>(settings: &Settings) -> String {
    settings.nats.subject::<E>()
}

/// The durable consumer (created if needed).
async fn open(
    settings: &Settings,
    subject: String,
) -> Result<jetstream::consumer::Consumer<pull::Config>, NatsError> {
    let nats = &settings.nats;
    let stream_name = nats.ensure_stream_of(&subject).await?;
    let stream = nats
        .inner
        .jetstream
        .get_stream(&stream_name)
        .await
        .map_err(|error| NatsError::jetstream(format!("stream {stream_name}"), error))?;
    let name = durable_name(settings);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        // This consumer decides when an event has failed for good (and terminates it).
        max_deliver: -1,
        max_ack_pending: i64::try_from(settings.max_ack_pending).unwrap_or(i64::MAX),
        filter_subject: subject,
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|error| {
            use async_nats::jetstream::stream::ConsumerErrorKind;
            let refused = matches!(
                error.kind(),
                ConsumerErrorKind::JetStream(_) | ConsumerErrorKind::InvalidName
            );
            NatsError::answered(format!("consumer {name}"), error, refused)
        })
}

/// How often the pull loop checks that its consumer still exists on the server.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How long a stopping member waits for its last acknowledgements to leave the client.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The pull loop. One subscription per member (a [`Puller`]), asking only for as many events as
/// the free slots can start, each event handled where it arrives (in a task of its own only if it
/// waits), holding one of `concurrency` slots. On stop: nothing more is asked for; events that
/// arrived and were not started are handed back at once (a `nak`, so that another member gets them
/// without waiting for the ack wait); every handler in hand is awaited; and the acknowledgements
/// are flushed to the server (for up to [`FLUSH_WAIT`]) before the loop returns. Waits on the
/// server (re-opening the consumer, checking it) give way to a stop.
async fn run<E: Event + DeserializeOwned>(
    settings: Arc<Settings>,
    mut consumer: jetstream::consumer::Consumer<pull::Config>,
    stats: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let freed = Arc::new(Notify::new());
    // Small requests are batched: a member asks again once a quarter of its slots are free.
    let batch = settings.concurrency.div_ceil(4);
    let mut handlers = JoinSet::new();
    let name = durable_name(&settings);
    let client = settings.nats.inner.client.clone();
    let jetstream = settings.nats.inner.jetstream.clone();
    let mut pause = Pause::default();
    let mut checked = tokio::time::Instant::now();
    let mut puller: Option<Puller> = None;
    loop {
        while handlers.try_join_next().is_some() {}
        // A consumer the server no longer has answers no pull request: look now and then, and
        // create it again if it is gone (the server lost its state).
        if checked.elapsed() >= CHECK_EVERY {
            checked = tokio::time::Instant::now();
            let Some(info) = or_stop(&mut stop, consumer.get_info()).await else {
                break;
            };
            if let Err(error) = info {
                tracing::warn!(consumer = %name, %error, "the consumer is gone or unreachable; opening it again");
                let Some(reopened) =
                    or_stop(&mut stop, open(&settings, subject::<E>(&settings))).await
                else {
                    break;
                };
                if let Ok(reopened) = reopened {
                    consumer = reopened;
                    puller = None;
                }
            }
        }
        let pulling = match &mut puller {
            Some(pulling) => pulling,
            None => {
                let Some(opened) =
                    or_stop(&mut stop, Puller::open(&client, &jetstream, &consumer)).await
                else {
                    break;
                };
                match opened {
                    Ok(opened) => puller.insert(opened),
                    Err(error) => {
                        tracing::warn!(consumer = %name, %error, "cannot subscribe; trying again");
                        if pause.wait(&mut stop).await {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        if let Err(error) = pulling.ask(slots.available_permits(), batch).await {
            tracing::warn!(consumer = %name, %error, "cannot pull; trying again");
            puller = None;
            if pause.wait(&mut stop).await {
                break;
            }
            continue;
        }
        let silent_after = pulling.silent_after();
        let pulled = tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = freed.notified() => continue,
            () = sleep_until(silent_after) => {
                pulling.forget_requests();
                continue;
            }
            pulled = pulling.next() => pulled,
        };
        let message = match pulled {
            Pulled::Event(message) => message,
            Pulled::Status => continue,
            Pulled::ConsumerGone(reason) => {
                tracing::warn!(consumer = %name, %reason, "cannot pull from the consumer; opening it again");
                puller = None;
                if pause.wait(&mut stop).await {
                    break;
                }
                let Some(reopened) =
                    or_stop(&mut stop, open(&settings, subject::<E>(&settings))).await
                else {
                    break;
                };
                if let Ok(reopened) = reopened {
                    consumer = reopened;
                }
                continue;
            }
            Pulled::Closed => {
                puller = None;
                if pause.wait(&mut stop).await {
                    break;
                }
                continue;
            }
        };
        pause = Pause::default();
        // Progress follows the ack wait the server applies (the consumer may have been created by
        // another member with another one).
        let ack_wait = match consumer.cached_info().config.ack_wait {
            wait if wait.is_zero() => settings.ack_wait,
            wait => wait,
        };
        // Asked for with a slot free, so one is (unless the event is from a request taken for
        // lost: it waits for a slot, its progress reported meanwhile).
        let slot = Arc::clone(&slots).try_acquire_owned().ok();
        let (settings, stats, slots, freed) = (
            Arc::clone(&settings),
            Arc::clone(&stats),
            Arc::clone(&slots),
            Arc::clone(&freed),
        );
        let work = Box::pin(async move {
            let slot = match slot {
                Some(slot) => slot,
                None => match with_progress(&message, ack_wait, slots.acquire_owned()).await {
                    Ok(slot) => slot,
                    Err(_) => return, // the semaphore is never closed
                },
            };
            let _slot = Slot {
                slot: Some(slot),
                freed,
            };
            handle::<E>(&settings, &stats, message, ack_wait).await;
        });
        // Most events are handled (and acknowledged) in their first poll, right here: only those
        // that wait get a task of their own.
        if let Some(waiting) = first_poll(work).await {
            handlers.spawn(waiting);
        }
    }
    if let Some(pulling) = puller {
        pulling.hand_back().await;
    }
    while handlers.join_next().await.is_some() {}
    // Acknowledgements are only queued in the client: a process that returns from `main` right
    // after `shutdown` would lose them (and the server would redeliver those events).
    if tokio::time::timeout(FLUSH_WAIT, client.flush())
        .await
        .is_err()
    {
        tracing::warn!(consumer = %name, "could not flush the last acknowledgements; the server redelivers those events after the ack wait");
    }
}

/// A handler's slot: freeing it (even by a panic) wakes the pull loop to ask for more.
struct Slot {
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit goes back first, so that the loop woken sees it free.
        drop(self.slot.take());
        self.freed.notify_one();
    }
}

/// `work`'s output, or `None` if asked to stop first.
async fn or_stop<T>(stop: &mut watch::Receiver<bool>, work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        _ = stop.changed() => None,
        output = work => Some(output),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Polls `work` once, catching a panic (reported; the event is left to the ack wait): `None`
/// when it is done, else the future to go on with.
async fn first_poll<F: Future<Output = ()> + Unpin>(mut work: F) -> Option<F> {
    let polled = std::future::poll_fn(|cx| {
        Poll::Ready(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || Pin::new(&mut work).poll(cx),
        )))
    })
    .await;
    match polled {
        Ok(Poll::Pending) => Some(work),
        Ok(Poll::Ready(())) => None,
        Err(payload) => {
            crate::panic::discard(payload);
            tracing::error!(
                "handling a NATS event panicked; the server redelivers it after the ack wait"
            );
            None
        }
    }
}

/// The pause before trying the server again: 100 ms, doubling up to 5 s.
struct Pause(Duration);

impl Default for Pause {
    fn default() -> Self {
        Pause(Duration::from_millis(100))
    }
}

impl Pause {
    /// Sleeps the pause (then doubles it) unless asked to stop first; `true` when asked to stop.
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let pause = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            _ = stop.changed() => true,
            () = tokio::time::sleep(pause) => *stop.borrow(),
        }
    }
}

/// Why handling one delivery failed.
enum Failure {
    /// Not a CloudEvent of `E`: retrying cannot help.
    Malformed(CloudEventError),
    /// The target failed.
    Failed(PipelineError),
}

async fn handle<E: Event + DeserializeOwned>(
    settings: &Settings,
    stats: &Counters,
    message: jetstream::Message,
    ack_wait: Duration,
) {
    use tracing::Instrument as _;
    let delivered = message
        .info()
        .map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX))
        .unwrap_or(1)
        .max(1);
    stats.received.fetch_add(1, Ordering::Relaxed);
    if delivered > 1 {
        stats.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let cloud = wire::read(message.headers.as_ref(), &message.payload);
    let span = tracing::debug_span!(
        "nats.receive",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = message.subject.as_str(),
        messaging.message.id = cloud.as_ref().map(CloudEvent::id).ok(),
        messaging.nats.delivered = delivered,
    );
    let result = match cloud {
        Err(error) => Err((Failure::Malformed(error), None)),
        Ok(cloud) => {
            let work = with_progress(&message, ack_wait, deliver::<E>(settings, &cloud))
                .instrument(span.clone());
            let result = TraceContext::within(TraceContext::of(&cloud), work).await;
            result.map_err(|failure| (failure, Some(cloud)))
        }
    };
    settle(settings, stats, &message, delivered, result)
        .instrument(span)
        .await;
}

/// Hands one event to the target.
async fn deliver<E: Event + DeserializeOwned>(
    settings: &Settings,
    cloud: &CloudEvent,
) -> Result<(), Failure> {
    match &settings.target {
        Target::Registry => {
            let event = cloud.decode::<E>().map_err(Failure::Malformed)?;
            let report = event.deliver().await;
            if report.is_success() {
                Ok(())
            } else {
                Err(Failure::Failed(PipelineError::retryable(
                    report.to_string(),
                )))
            }
        }
        // Boxed: each task holds room for the largest target's future, and the registry's is
        // small.
        Target::Pipeline(pipeline) => {
            cloud.decode::<E>().map_err(Failure::Malformed)?;
            Box::pin(pipeline.process(cloud.clone().into_message()))
                .await
                .map_err(Failure::Failed)
        }
        Target::Durable(durable) => {
            cloud.decode::<E>().map_err(Failure::Malformed)?;
            let accepted = Box::pin(durable.accept(cloud.clone().into_message()))
                .await
                .map_err(Failure::Failed)?;
            // Stored: acknowledging no longer depends on processing. A failure stays in the
            // inbox for `Durable::recover`.
            tokio::spawn(async move {
                if let Err(error) = accepted.process().await {
                    tracing::warn!(%error, "a consumed event failed; it stays in the inbox");
                }
            });
            Ok(())
        }
    }
}

/// Runs `work`, telling the server every third of the ack wait that the event is still being
/// worked on (so that it is not redelivered to another member meanwhile).
async fn with_progress<T>(
    message: &jetstream::Message,
    ack_wait: Duration,
    work: impl Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    // Most work finishes in its first poll: no timer for it.
    if let Poll::Ready(result) =
        std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await
    {
        return result;
    }
    // Boxed: only work that waits pays for the timer and the progress messages.
    let progress = Box::pin(report_progress(message, ack_wait / 3));
    tokio::select! {
        result = work => result,
        never = progress => match never {},
    }
}

/// Tells the server every `period` that `message` is still being worked on; never ends.
async fn report_progress(message: &jetstream::Message, period: Duration) -> Infallible {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticks.tick().await;
        if let Err(error) = message.ack_with(AckKind::Progress).await {
            tracing::debug!(%error, "could not send a progress message");
        }
    }
}

/// Acknowledges, hands back with a delay, or dead-letters and terminates one delivery.
async fn settle(
    settings: &Settings,
    stats: &Counters,
    message: &jetstream::Message,
    delivered: u32,
    result: Result<(), (Failure, Option<CloudEvent>)>,
) {
    let retry_later = |stats: &Counters| {
        stats.retried.fetch_add(1, Ordering::Relaxed);
        AckKind::Nak(Some(backoff(settings.backoff, delivered)))
    };
    let ack = match result {
        Ok(()) => AckKind::Ack,
        Err((Failure::Malformed(error), cloud)) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            let mut letter = Message::new(message.subject.as_str(), "", message.payload.to_vec());
            if let Some(cloud) = &cloud {
                letter = letter.with_id(cloud.id());
            }
            let error = PipelineError::permanent(format!("malformed event: {error}"));
            match &settings.dead_letters {
                None => {
                    tracing::error!(%error, "dropping a malformed message (no dead letters configured)");
                    AckKind::Term
                }
                Some(dead_letters) => match Box::pin(dead_letters.record(letter, &error)).await {
                    Ok(_) => AckKind::Term,
                    Err(store) => {
                        tracing::warn!(%store, "cannot park a malformed message; retrying later");
                        retry_later(stats)
                    }
                },
            }
        }
        Err((Failure::Failed(error), cloud)) => {
            let exhausted = !error.is_retryable() || delivered >= settings.max_deliveries;
            match (&settings.dead_letters, cloud) {
                (Some(dead_letters), Some(cloud)) if exhausted => {
                    let error = PipelineError::Exhausted {
                        attempts: delivered,
                        last: Box::new(error),
                    };
                    match Box::pin(dead_letters.record(cloud.into_message(), &error)).await {
                        Ok(_) => {
                            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            AckKind::Term
                        }
                        Err(store) => {
                            tracing::warn!(%store, %error, "cannot park a failed event; retrying later");
                            retry_later(stats)
                        }
                    }
                }
                _ if exhausted => {
                    tracing::warn!(
                        %error,
                        delivered,
                        "an event failed for good, and there are no dead letters: retried at the longest backoff"
                    );
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    AckKind::Nak(Some(settings.backoff.1))
                }
                _ => {
                    tracing::debug!(%error, delivered, "an event failed; redelivered later");
                    retry_later(stats)
                }
            }
        }
    };
    let acked = matches!(ack, AckKind::Ack);
    match message.ack_with(ack).await {
        Ok(()) if acked => {
            stats.acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(()) => {}
        Err(error) => {
            tracing::warn!(%error, "could not settle an event; the server redelivers it after the ack wait");
        }
    }
}

/// The delay before redelivery `delivered`: `initial * 2^(delivered-1)` capped at `max`, the
/// upper half jittered.
fn backoff((initial, max): (Duration, Duration), delivered: u32) -> Duration {
    let ceiling = initial
        .saturating_mul(
            1u32.checked_shl(delivered.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let range = (Duration::from_millis(100), Duration::from_secs(1));
        for (delivered, ceiling) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let delay = backoff(range, delivered);
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delivered}: {delay:?}"
            );
        }
    }

    #[test]
    fn group_and_instance_names_must_fit_a_consumer_name() {
        assert!(validate_name("group", "billing-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "é"] {
            assert!(validate_name("group", bad).is_err(), "{bad:?}");
        }
    }
}
