//! [`Durable`]: persist each message before processing it, remove it once handled, and recover what
//! a crash left behind.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use std::time::Duration;

use super::claim::{self, Holder, Site};
use super::error::PipelineError;
use super::handler::{Handler, Next};
use super::message::Message;
use super::quarantine::quarantine;
use super::typed::{expects, listen_with};
use crate::event::Event;
use crate::registry::Registry;
use crate::spans;
use crate::store::{IntoStore, Store};
use crate::subscription::Subscription;
use tracing::Instrument as _;

/// A message persisted by [`Durable::accept`], waiting to be processed. Dropping it without calling
/// [`process`](Accepted::process) leaves the message in the inbox for [`Durable::recover`].
///
/// ```
/// use event_bus::pipeline::{Durable, Message, Pipeline};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
/// drop(durable.accept(Message::new("s", "k", Vec::new())).await?); // "crash" before processing
/// assert_eq!(durable.recover().await?.succeeded, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "an accepted message is processed by `process()` (or later by `recover()`)"]
pub struct Accepted {
    durable: Durable,
    message: Message,
    /// The claim on the message; `None` when another holder is processing the same message.
    holder: Option<Holder>,
}

impl Accepted {
    /// The accepted message.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// let accepted = durable.accept(Message::new("s", "k", Vec::new())).await?;
    /// assert_eq!(accepted.message().key(), "k");
    /// # accepted.process().await
    /// # }
    /// ```
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Processes the message and removes it from the inbox if that succeeded; on failure it stays
    /// there and the error is returned. If another holder (in this process or another one) was
    /// already processing the same message id when it was accepted, this returns `Ok` at once:
    /// that holder answers for it, and the inbox keeps it until one of them succeeds.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// durable.accept(Message::new("s", "k", Vec::new())).await?.process().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn process(self) -> Result<(), PipelineError> {
        let Accepted {
            durable,
            message,
            holder,
        } = self;
        match holder {
            Some(holder) => {
                let id = inbox_key(&message);
                durable.process_held(holder, id, message).await
            }
            None => Ok(()),
        }
    }
}

/// A message in a durable inbox; from [`Durable::messages`].
///
/// ```
/// use event_bus::pipeline::{Inboxed, Message};
///
/// let inboxed = Inboxed { message: Message::new("s", "k", Vec::new()), in_flight: false };
/// assert!(!inboxed.in_flight);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inboxed {
    /// The message.
    pub message: Message,
    /// Whether a holder is processing it now.
    pub in_flight: bool,
}

/// What [`Durable::recover`] did.
///
/// ```
/// let nothing = event_bus::pipeline::Recovered::default();
/// assert_eq!((nothing.succeeded, nothing.failed, nothing.in_flight), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// Messages found in the inbox and processed successfully (now removed).
    pub succeeded: usize,
    /// Messages whose processing failed again (they stay in the inbox).
    pub failed: usize,
    /// Messages skipped because a holder is processing them right now, in this process or, with a
    /// live lease, in another one.
    pub in_flight: usize,
    /// Unreadable inbox records moved to the [`Quarantine`](super::Quarantine).
    pub quarantined: usize,
}

/// Durable delivery in front of a handler (usually a [`Pipeline`](super::Pipeline)): each message is
/// written to the store's `inbox` namespace **before** it is processed and removed once the handler
/// returns `Ok`. After a crash, [`recover`](Durable::recover) processes what is still in the inbox,
/// so nothing acknowledged is lost; with [`Idempotency`](super::Idempotency) in the pipeline nothing
/// is applied twice either (effectively-once).
///
/// A message whose processing fails stays in the inbox (and `submit` returns the error); put
/// [`DeadLetters`](super::DeadLetters) in the pipeline to park failures instead.
///
/// Each message being processed is **claimed** (see
/// [the claim model](super#claims-leases-and-fencing)), so `recover` skips what is in flight, in
/// this process or in another one sharing the store: calling it periodically to retry failed
/// messages never runs a message twice at once. After a crash, the dead run's messages are
/// recovered once their lease (30 s by default, [`lease`](Durable::lease)) has run out.
///
/// ```
/// use event_bus::pipeline::{Durable, Message, Pipeline};
/// use event_bus::store::SqliteStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// # let dir = tempfile::tempdir().map_err(event_bus::pipeline::PipelineError::permanent)?;
/// let store = Arc::new(SqliteStore::open(dir.path().join("inbox.db"))?);
/// let durable = Durable::new(store, Pipeline::builder().build());
/// let recovered = durable.recover().await?; // first thing after a (re)start
/// assert_eq!(recovered.succeeded, 0);
/// durable.submit(Message::new("order", "7", b"{}".to_vec())).await?;
/// assert_eq!(durable.pending().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Durable {
    store: Arc<dyn Store>,
    handler: Arc<dyn Handler>,
    /// The inbox, where each message's record carries the claim of whoever processes it.
    claims: Site,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("namespace", &self.claims.namespace)
            .finish_non_exhaustive()
    }
}

impl Durable {
    /// Durable delivery to `handler`, with the inbox in `store`.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// # drop(durable);
    /// ```
    pub fn new(store: impl IntoStore, handler: impl Handler) -> Self {
        let store = store.into_store();
        Durable {
            claims: Site {
                store: Arc::clone(&store),
                namespace: "inbox".into(),
                lease: claim::DEFAULT_LEASE,
            },
            store,
            handler: Arc::new(handler),
        }
    }

    /// Keeps the inbox under `namespace` instead of `inbox`.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build())
    ///     .namespace("orders-inbox");
    /// # drop(durable);
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let namespace: String = namespace.into();
        self.claims.namespace = namespace.into();
        self
    }

    /// The lease of the claim on a message being processed (default 30 s, renewed while it is):
    /// how long [`recover`](Durable::recover) in another process waits before taking over a
    /// message whose holder died.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build())
    ///     .lease(Duration::from_secs(5));
    /// # drop(durable);
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.claims.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// Persists `message`, processes it, and removes it if processing succeeded: [`accept`]
    /// followed by [`Accepted::process`].
    ///
    /// [`accept`]: Durable::accept
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Next, Pipeline, PipelineError, from_fn};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), PipelineError> {
    /// let failing = Pipeline::builder()
    ///     .then(from_fn(|_: Message, _: Next| async { Err(PipelineError::retryable("down")) }))
    ///     .build();
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), failing);
    /// assert!(durable.submit(Message::new("s", "k", Vec::new())).await.is_err());
    /// assert_eq!(durable.pending().await?, 1, "kept for recover()");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit(&self, message: Message) -> Result<(), PipelineError> {
        self.accept(message).await?.process().await
    }

    /// Persists `message` and returns once it is durable, **before** processing it: the point at
    /// which an upstream (a broker, an HTTP client) can be acknowledged. Then call
    /// [`Accepted::process`]; if the program dies first, [`recover`](Durable::recover) processes it.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// let accepted = durable.accept(Message::new("s", "k", Vec::new())).await?;
    /// assert_eq!(durable.pending().await?, 1);
    /// // ... acknowledge upstream here ...
    /// accepted.process().await?;
    /// assert_eq!(durable.pending().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn accept(&self, message: Message) -> Result<Accepted, PipelineError> {
        let key = inbox_key(&message);
        // One write in the common case: the message, with the claim of whoever processes it.
        // Armed before each write: dropped while the write is in flight (it may still land),
        // the holder releases the claim, so other processes need not wait for its lease.
        let holder = self.claims.embedded_holder(&key, message.encode()?);
        let mut holder = Some(holder);
        for _ in 0..3 {
            let armed = holder.take().map(Holder::armed);
            let record = armed.as_ref().map(Holder::record).unwrap_or_default();
            if self
                .store
                .insert_if_absent(&self.claims.namespace, &key, record, None)
                .await?
            {
                return Ok(self.accepted(message, armed));
            }
            holder = armed.map(Holder::disarmed);
            // Already in the inbox (the same message delivered twice, or left by a crash):
            // claim it unless someone is working on it.
            match self.store.get(&self.claims.namespace, &key).await? {
                None => continue, // removed in the meantime: insert again
                Some(found) => {
                    if claim::header_is_live(claim::split_embedded(&found).0) {
                        break;
                    }
                    if let Some(taken) = self.claims.take_embedded(&key, found).await? {
                        return Ok(self.accepted(message, Some(taken)));
                    }
                }
            }
        }
        // Stored, and claimed by a live holder that answers for it.
        Ok(self.accepted(message, None))
    }

    fn accepted(&self, message: Message, holder: Option<Holder>) -> Accepted {
        Accepted {
            durable: self.clone(),
            message,
            holder,
        }
    }

    /// Processes a claimed message; removes it (and the claim) on success, releases the claim on
    /// failure.
    async fn process_held(
        &self,
        holder: Holder,
        id: String,
        message: Message,
    ) -> Result<(), PipelineError> {
        let span = spans::inbox(message.source(), &id);
        match holder
            .hold(|| self.handler.handle(message, Next::end()))
            .instrument(span)
            .await
        {
            Ok(()) => {
                let done = holder.fence().delete(&*self.claims.namespace, id.clone());
                if let Err(error) = holder.commit(done).await {
                    // Processed, but still in the inbox: a later `recover` runs it again, which
                    // idempotent handlers turn into a no-op.
                    tracing::warn!(message = %id, %error, "processed message left in the inbox");
                }
                Ok(())
            }
            // Another holder took the message over (this one's lease ran out): it answers for it.
            Err(PipelineError::ClaimLost { .. }) => {
                tracing::debug!(message = %id, "message taken over by another holder");
                Ok(())
            }
            Err(error) => {
                holder.release().await;
                crate::reporting::report(
                    crate::reporting::Origin::Inbox,
                    "inbox",
                    &id,
                    &error,
                    None,
                );
                Err(error)
            }
        }
    }

    /// Stores `message` in the inbox without processing it: the next [`recover`](Durable::recover)
    /// (here, or in the service that owns this inbox) processes it. For operators and tools that
    /// put a message back (a dead letter to retry). `false` if the inbox already holds a message
    /// with its id.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// assert!(durable.enqueue(Message::new("s", "k", Vec::new())).await?);
    /// assert_eq!(durable.pending().await?, 1);
    /// assert_eq!(durable.recover().await?.succeeded, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue(&self, message: Message) -> Result<bool, PipelineError> {
        let record = claim::free_record(&message.encode()?);
        let key = inbox_key(&message);
        Ok(self
            .store
            .insert_if_absent(&self.claims.namespace, &key, record, None)
            .await?)
    }

    /// Processes every message left in the inbox (oldest first) that nobody is processing, removing
    /// those handled: after a restart, or periodically to retry messages whose processing failed.
    /// Messages in flight (here, or in another process with a live lease) are skipped and counted;
    /// unreadable records are quarantined and counted.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// assert_eq!(durable.recover().await?.succeeded, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recover(&self) -> Result<Recovered, PipelineError> {
        let mut recovered = Recovered::default();
        let mut left = Vec::new();
        let records = self.store.scan(&self.claims.namespace, "").await?;
        crate::metrics::depth(
            "event_bus_inbox_depth",
            &self.claims.namespace,
            records.len(),
        );
        for (key, record) in records {
            let (header, payload) = claim::split_embedded(&record);
            let decoded = Message::decode(payload).map(|message| (header.to_owned(), message));
            match decoded {
                Ok((header, message)) => left.push((key, record, header, message)),
                Err(error) => {
                    let store = self.store.as_ref();
                    if quarantine(store, &self.claims.namespace, &key, record, &error).await? {
                        recovered.quarantined += 1;
                    }
                }
            }
        }
        left.sort_by_key(|(_, _, _, message)| message.time());
        for (key, record, header, message) in left {
            let header = header.as_str();
            if claim::header_is_live(header) {
                recovered.in_flight += 1;
                continue;
            }
            let Some(holder) = self.claims.take_embedded(&key, record).await? else {
                recovered.in_flight += 1; // claimed or removed in the meantime
                continue;
            };
            match self.process_held(holder, key.clone(), message).await {
                Ok(()) => recovered.succeeded += 1,
                Err(error) => {
                    tracing::warn!(message = %key, %error, "recovered message failed again");
                    recovered.failed += 1;
                }
            }
        }
        Ok(recovered)
    }

    /// The messages in the inbox, oldest first, each with whether a holder is processing it now
    /// (here, or in another process with a live lease). Unreadable records are skipped (`recover`
    /// quarantines them).
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Message, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// durable.enqueue(Message::new("s", "k", Vec::new())).await?;
    /// let inboxed = durable.messages().await?;
    /// assert_eq!((inboxed[0].message.key(), inboxed[0].in_flight), ("k", false));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn messages(&self) -> Result<Vec<Inboxed>, PipelineError> {
        let mut messages: Vec<Inboxed> = self
            .store
            .scan(&self.claims.namespace, "")
            .await?
            .into_iter()
            .filter_map(|(_, record)| {
                let (header, payload) = claim::split_embedded(&record);
                let message = Message::decode(payload).ok()?;
                let in_flight = claim::header_is_live(header);
                Some(Inboxed { message, in_flight })
            })
            .collect();
        messages.sort_by_key(|inboxed| inboxed.message.time());
        Ok(messages)
    }

    /// How many messages are in the inbox (in flight, or left by a crash or a failure).
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// assert_eq!(durable.pending().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pending(&self) -> Result<usize, PipelineError> {
        let pending = self.store.count(&self.claims.namespace).await?;
        crate::metrics::depth("event_bus_inbox_depth", &self.claims.namespace, pending);
        Ok(pending)
    }

    /// Feeds every `E` dispatched on `E`'s global registry through durable delivery (see
    /// [`Pipeline::listen`](super::Pipeline::listen)).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(key = id)]
    /// #[derive(serde::Serialize)]
    /// struct OrderPlaced {
    ///     id: u32,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// durable.listen::<OrderPlaced>()?;
    /// assert!(OrderPlaced { id: 1 }.deliver().await.is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen<E: Event + Serialize>(&self) -> Result<Subscription<E>, PipelineError> {
        self.listen_to(E::registry())
    }

    /// Like [`listen`](Durable::listen), on a given registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// #[derive(serde::Serialize)]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build()).listen_to(&registry)?;
    /// assert_eq!(registry.len(), 1);
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn listen_to<E: Event + Serialize>(
        &self,
        registry: &Registry<E>,
    ) -> Result<Subscription<E>, PipelineError> {
        expects::<E>(self.handler.as_ref())?;
        let durable = self.clone();
        Ok(listen_with(
            registry,
            "event_bus::pipeline::Durable",
            move |message| {
                let durable = durable.clone();
                async move { durable.submit(message).await }
            },
        ))
    }
}

/// A message's inbox key: its id, so that the same message delivered twice is one record.
fn inbox_key(message: &Message) -> String {
    message.id().to_owned()
}
