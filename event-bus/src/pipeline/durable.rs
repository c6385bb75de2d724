//! [`Durable`]: persist each message before processing it, remove it once handled, and recover what
//! a crash left behind.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::error::PipelineError;
use super::handler::{Handler, Next};
use super::message::Message;
use super::typed::listen_with;
use crate::event::Event;
use crate::registry::Registry;
use crate::store::Store;
use crate::subscription::Subscription;

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
/// assert_eq!(durable.recover().await?.handled, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "an accepted message is processed by `process()` (or later by `recover()`)"]
pub struct Accepted {
    durable: Durable,
    message: Message,
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
    /// there and the error is returned.
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
        let Accepted { durable, message } = self;
        let id = message.id().to_owned();
        durable.handler.handle(message, Next::end()).await?;
        durable.store.delete(&durable.namespace, &id).await?;
        Ok(())
    }
}

/// What [`Durable::recover`] did.
///
/// ```
/// let nothing = event_bus::pipeline::Recovered::default();
/// assert_eq!((nothing.handled, nothing.failed), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Messages found in the inbox and handled.
    pub handled: usize,
    /// Messages found whose processing failed again (they stay in the inbox).
    pub failed: usize,
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
/// assert_eq!(recovered.handled, 0);
/// durable.submit(Message::new("order", "7", b"{}".to_vec())).await?;
/// assert_eq!(durable.pending().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Durable {
    store: Arc<dyn Store>,
    handler: Arc<dyn Handler>,
    namespace: String,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("namespace", &self.namespace)
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
    pub fn new<S: Store>(store: Arc<S>, handler: impl Handler) -> Self {
        Durable::with_store(store, handler)
    }

    /// Same as [`new`](Durable::new), for a store already behind `Arc<dyn Store>`.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::{MemoryStore, Store};
    /// use std::sync::Arc;
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let durable = Durable::with_store(store, Pipeline::builder().build());
    /// # drop(durable);
    /// ```
    pub fn with_store(store: Arc<dyn Store>, handler: impl Handler) -> Self {
        Durable {
            store,
            handler: Arc::new(handler),
            namespace: "inbox".to_owned(),
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
        self.namespace = namespace.into();
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
        self.store
            .put(&self.namespace, message.id(), message.encode()?, None)
            .await?;
        Ok(Accepted {
            durable: self.clone(),
            message,
        })
    }

    /// Processes every message left in the inbox (oldest first), removing those handled.
    ///
    /// ```
    /// use event_bus::pipeline::{Durable, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// assert_eq!(durable.recover().await?.handled, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recover(&self) -> Result<Recovered, PipelineError> {
        let mut left: Vec<(String, Message)> = Vec::new();
        for (id, bytes) in self.store.scan(&self.namespace, "").await? {
            left.push((id, Message::decode(&bytes)?));
        }
        left.sort_by_key(|(_, message)| message.time());
        let mut recovered = Recovered::default();
        for (id, message) in left {
            match self.handler.handle(message, Next::end()).await {
                Ok(()) => {
                    self.store.delete(&self.namespace, &id).await?;
                    recovered.handled += 1;
                }
                Err(error) => {
                    tracing::warn!(message = %id, %error, "recovered message failed again");
                    recovered.failed += 1;
                }
            }
        }
        Ok(recovered)
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
        Ok(self.store.count(&self.namespace).await?)
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
    /// # async fn main() {
    /// let durable = Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build());
    /// durable.listen::<OrderPlaced>();
    /// assert!(OrderPlaced { id: 1 }.deliver().await.is_success());
    /// # }
    /// ```
    pub fn listen<E: Event + Serialize>(&self) -> Subscription<E> {
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
    /// Durable::new(Arc::new(MemoryStore::new()), Pipeline::builder().build()).listen_to(&registry);
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn listen_to<E: Event + Serialize>(&self, registry: &Registry<E>) -> Subscription<E> {
        let durable = self.clone();
        listen_with(registry, "event_bus::pipeline::Durable", move |message| {
            let durable = durable.clone();
            async move { durable.submit(message).await }
        })
    }
}
