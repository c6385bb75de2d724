//! [`Idempotency`]: process each message (by key) once, committing only after success.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::claim::Claim;
use super::effects;
use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next};
use super::message::Message;
use crate::store::{Batch, Store};

type KeyFn = dyn Fn(&Message) -> String + Send + Sync;
type ConflictFn = dyn Fn(&Message) -> Result<(), PipelineError> + Send + Sync;

/// What [`Idempotency`] does with a message whose key was already processed, or is being processed.
///
/// ```
/// use event_bus::pipeline::{Conflict, Idempotency, PipelineError};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// let custom = Conflict::With(Arc::new(|message| {
///     Err(PipelineError::permanent(format!("{} seen twice", message.key())))
/// }));
/// let idempotency = Idempotency::new(Arc::new(MemoryStore::new())).on_conflict(custom);
/// # drop(idempotency);
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Conflict {
    /// Stop the message here, successfully (the default).
    #[default]
    Skip,
    /// Fail with [`PipelineError::Duplicate`].
    Error,
    /// Let a function decide (return `Ok(())` to skip, or an error).
    With(Arc<ConflictFn>),
}

impl fmt::Debug for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Skip => f.write_str("Skip"),
            Conflict::Error => f.write_str("Error"),
            Conflict::With(_) => f.write_str("With(..)"),
        }
    }
}

/// A handler that lets each idempotency key (the message key, or [`key_by`](Idempotency::key_by))
/// through once.
///
/// Unlike event-driver's cache and watermill's deduplicator, which record the key *before* the
/// business handler runs (so a failure loses the message for good), the record is **committed only
/// after the rest of the chain succeeds** and **released when it fails**, so a redelivered message
/// is processed. While a message is in flight its key is held, so of concurrent duplicates exactly
/// one runs. Writes [`stage`](super::stage)d by the chain commit in the same atomic batch as the
/// record.
///
/// A held key whose holder was a previous run of the program (it crashed mid-message) is taken
/// over, so recovery reprocesses the message. This assumes one process per store; several
/// processes sharing a store need a lease, which this adapter does not implement.
///
/// ```
/// use event_bus::pipeline::{Idempotency, Message, Next, Pipeline, from_fn};
/// use event_bus::store::MemoryStore;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let charged = Arc::new(AtomicU32::new(0));
/// let counter = charged.clone();
/// let pipeline = Pipeline::builder()
///     .then(Idempotency::new(Arc::new(MemoryStore::new())))
///     .then(from_fn(move |_: Message, _: Next| {
///         counter.fetch_add(1, Ordering::SeqCst);
///         async { Ok(()) }
///     }))
///     .build();
/// for _ in 0..3 {
///     pipeline.process(Message::new("payment", "order-7", Vec::new())).await?;
/// }
/// assert_eq!(charged.load(Ordering::SeqCst), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Idempotency {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Arc<dyn Store>,
    namespace: String,
    key: Option<Arc<KeyFn>>,
    conflict: Conflict,
    ttl: Option<Duration>,
    /// This value's in-flight marker: `pending:<uuid of this run>`.
    pending: Claim,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    duplicates: AtomicU64,
    released: AtomicU64,
}

/// What an [`Idempotency`] handler has seen since it was created; from [`Idempotency::stats`].
///
/// ```
/// use event_bus::pipeline::Idempotency;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// let stats = Idempotency::new(Arc::new(MemoryStore::new())).stats();
/// assert_eq!((stats.processed, stats.duplicates, stats.released), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdempotencyStats {
    /// Messages whose chain succeeded and whose key is now recorded.
    pub processed: u64,
    /// Messages stopped as duplicates (handled by the conflict strategy).
    pub duplicates: u64,
    /// Messages whose chain failed, releasing their key.
    pub released: u64,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("namespace", &self.inner.namespace)
            .field("conflict", &self.inner.conflict)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

const PENDING: &[u8] = b"pending:";
const DONE: &[u8] = b"done";

impl Idempotency {
    /// Keys records by message key, in `store` under the namespace `idempotency`; conflicts skip.
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new()));
    /// # drop(idempotency);
    /// ```
    pub fn new<S: Store>(store: Arc<S>) -> Self {
        Idempotency::with_store(store)
    }

    /// Same as [`new`](Idempotency::new), for a store already behind `Arc<dyn Store>`.
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::{MemoryStore, Store};
    /// use std::sync::Arc;
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let idempotency = Idempotency::with_store(store);
    /// # drop(idempotency);
    /// ```
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        let pending = Claim::new(PENDING);
        Idempotency {
            inner: Arc::new(Inner {
                store,
                namespace: "idempotency".to_owned(),
                key: None,
                conflict: Conflict::Skip,
                ttl: None,
                pending,
                counters: Arc::default(),
            }),
        }
    }

    /// Keeps the records under `namespace` instead.
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new())).namespace("payments");
    /// # drop(idempotency);
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).namespace = namespace.into();
        self
    }

    /// Derives the idempotency key from the message (default: its key).
    ///
    /// ```
    /// use event_bus::pipeline::{Idempotency, Message};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let by_id = Idempotency::new(Arc::new(MemoryStore::new())).key_by(|m: &Message| m.id().to_owned());
    /// # drop(by_id);
    /// ```
    pub fn key_by(mut self, key: impl Fn(&Message) -> String + Send + Sync + 'static) -> Self {
        Arc::make_mut(&mut self.inner).key = Some(Arc::new(key));
        self
    }

    /// What to do with duplicates (default [`Conflict::Skip`]).
    ///
    /// ```
    /// use event_bus::pipeline::{Conflict, Idempotency};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let strict = Idempotency::new(Arc::new(MemoryStore::new())).on_conflict(Conflict::Error);
    /// # drop(strict);
    /// ```
    pub fn on_conflict(mut self, conflict: Conflict) -> Self {
        Arc::make_mut(&mut self.inner).conflict = conflict;
        self
    }

    /// Shorthand for [`Conflict::With`]: `f` decides what a duplicate does.
    ///
    /// ```
    /// use event_bus::pipeline::{Idempotency, Message};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let duplicates = Arc::new(AtomicU64::new(0));
    /// let counter = duplicates.clone();
    /// let counting = Idempotency::new(Arc::new(MemoryStore::new())).on_conflict_with(move |_: &Message| {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    ///     Ok(())
    /// });
    /// # drop(counting);
    /// ```
    pub fn on_conflict_with(
        self,
        f: impl Fn(&Message) -> Result<(), PipelineError> + Send + Sync + 'static,
    ) -> Self {
        self.on_conflict(Conflict::With(Arc::new(f)))
    }

    /// Counts of processed messages, duplicates and released keys since this value was created.
    ///
    /// ```
    /// use event_bus::pipeline::{Handler, Idempotency, Message, Next};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new()));
    /// for _ in 0..3 {
    ///     idempotency.handle(Message::new("s", "k", Vec::new()), Next::end()).await?;
    /// }
    /// assert_eq!(idempotency.stats().processed, 1);
    /// assert_eq!(idempotency.stats().duplicates, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> IdempotencyStats {
        let counters = &self.inner.counters;
        IdempotencyStats {
            processed: counters.processed.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            released: counters.released.load(Ordering::Relaxed),
        }
    }

    /// Forgets processed keys after `ttl` (default: never), bounding the store's size.
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let week = Idempotency::new(Arc::new(MemoryStore::new())).ttl(Duration::from_secs(7 * 86_400));
    /// # drop(week);
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.inner).ttl = Some(ttl);
        self
    }
}

impl Inner {
    fn key_of(&self, message: &Message) -> String {
        match &self.key {
            Some(key) => key(message),
            None => message.key().to_owned(),
        }
    }

    fn conflict(&self, message: &Message, key: String) -> Result<(), PipelineError> {
        match &self.conflict {
            Conflict::Skip => Ok(()),
            Conflict::Error => Err(PipelineError::Duplicate { key }),
            Conflict::With(decide) => decide(message),
        }
    }
}

impl Handler for Idempotency {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let key = inner.key_of(&message);
            if !inner
                .pending
                .acquire(inner.store.as_ref(), &inner.namespace, &key)
                .await?
            {
                inner.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                return inner.conflict(&message, key);
            }
            let (result, staged) = effects::collect(next.run(message)).await;
            match result {
                Ok(()) => {
                    let commit = Batch::new()
                        .put(inner.namespace.clone(), key, DONE.to_vec(), inner.ttl)
                        .extend(staged);
                    inner.store.apply(commit).await?;
                    inner.counters.processed.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(error) => {
                    inner.store.delete(&inner.namespace, &key).await?;
                    inner.counters.released.fetch_add(1, Ordering::Relaxed);
                    Err(error)
                }
            }
        })
    }
}
