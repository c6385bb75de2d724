//! [`Idempotency`]: process each message (by key) once, committing only after success.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::claim::{self, Acquired, Holder, Site};
use super::effects;
use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;
use super::quarantine::quarantine;
use crate::store::Batch;
use crate::store::IntoStore;

type KeyFn = dyn Fn(&Message) -> Result<String, PipelineError> + Send + Sync;
type ConflictFn = dyn Fn(&Message) -> Result<OnDuplicate, PipelineError> + Send + Sync;

/// What [`Idempotency`] does with a message whose key was already processed.
///
/// (A key being processed right now, here or in another process, is not a duplicate yet: the
/// message waits for the outcome. See [`Idempotency`].)
///
/// ```
/// use event_bus::pipeline::{Conflict, Idempotency, OnDuplicate, PipelineError};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// let custom = Conflict::With(Arc::new(|message| {
///     if message.metadata().contains_key("force") {
///         Ok(OnDuplicate::Reprocess)
///     } else {
///         Err(PipelineError::permanent(format!("{} seen twice", message.key())))
///     }
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
    /// Let a function decide (see [`OnDuplicate`]), or fail with its error.
    With(Arc<ConflictFn>),
}

/// What a [`Conflict::With`] function decides for a duplicate.
///
/// ```
/// use event_bus::pipeline::OnDuplicate;
///
/// assert_ne!(OnDuplicate::Skip, OnDuplicate::Forward);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnDuplicate {
    /// Stop here, successfully.
    Skip,
    /// Pass the duplicate on to the rest of the chain, without claiming or recording anything
    /// (for handlers that answer duplicates, say by replying with the earlier result).
    Forward,
    /// Process it again, as if new: the key is claimed (exclusively, as for a new key), the rest
    /// of the chain runs, and the key is recorded again on success (restored on failure).
    Reprocess,
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
/// after the rest of the chain succeeds** and **released when it fails or is cancelled**, so a
/// redelivered message is processed. Writes [`stage`](super::stage)d by the chain commit in the
/// same atomic batch as the record; those of failed attempts are discarded.
///
/// While a message is in flight its key is **claimed** (see
/// [the claim model](super#claims-leases-and-fencing)): a duplicate arriving meanwhile, in this
/// process or another one sharing the store, waits for the outcome (up to
/// [`max_wait`](Idempotency::max_wait), one lease by default): if the holder commits, it is a
/// duplicate ([`Conflict`] decides); if the holder fails, it runs. Past the wait it fails with
/// [`PipelineError::InFlight`] (retryable). Of concurrent duplicates exactly one runs, and a
/// duplicate is never reported done before the original is.
///
/// A message without a key fails with [`PipelineError::MissingKey`] (all keyless messages would
/// otherwise share the key `""`). With a [`ttl`](Idempotency::ttl), the handler also purges
/// expired records itself: every 64th commit removes up to 256 expired records, so the store stays
/// bounded at a cost of one extra store call per 64 messages.
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
    site: Site,
    key: Option<Arc<KeyFn>>,
    conflict: Conflict,
    ttl: Option<Duration>,
    max_wait: Option<Duration>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    duplicates: AtomicU64,
    released: AtomicU64,
}

/// One key recorded by an [`Idempotency`] handler; from [`Idempotency::records`].
///
/// ```
/// let record = event_bus::pipeline::IdempotencyRecord { key: "order-7".into(), done: true };
/// assert!(record.done);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The idempotency key.
    pub key: String,
    /// `true`: processed; `false`: being processed now (claimed).
    pub done: bool,
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
    /// Messages found to be duplicates (handled by the conflict strategy).
    pub duplicates: u64,
    /// Messages whose chain failed, releasing their key.
    pub released: u64,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("namespace", &self.inner.site.namespace)
            .field("conflict", &self.inner.conflict)
            .field("ttl", &self.inner.ttl)
            .field("lease", &self.inner.site.lease)
            .finish_non_exhaustive()
    }
}

const DONE: &[u8] = b"done";
/// Every this many commits, a purge of expired records (with a TTL).
const PURGE_EVERY: u64 = 64;
/// The most records one purge removes.
const PURGE_LIMIT: usize = 256;

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
    pub fn new(store: impl IntoStore) -> Self {
        Idempotency {
            inner: Arc::new(Inner {
                site: Site {
                    store: store.into_store(),
                    namespace: "idempotency".into(),
                    lease: claim::DEFAULT_LEASE,
                },
                key: None,
                conflict: Conflict::Skip,
                ttl: None,
                max_wait: None,
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
        let namespace: String = namespace.into();
        Arc::make_mut(&mut self.inner).site.namespace = namespace.into();
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
    pub fn key_by(self, key: impl Fn(&Message) -> String + Send + Sync + 'static) -> Self {
        self.try_key_by(move |message| Ok(key(message)))
    }

    /// Derives the idempotency key with a function that may fail (for instance, parsing it out of
    /// the content); its error fails the message.
    ///
    /// ```
    /// use event_bus::pipeline::{Idempotency, Message, PipelineError};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let by_header = Idempotency::new(Arc::new(MemoryStore::new())).try_key_by(|m: &Message| {
    ///     m.metadata()
    ///         .get("request-id")
    ///         .cloned()
    ///         .ok_or_else(|| PipelineError::permanent("no request-id header"))
    /// });
    /// # drop(by_header);
    /// ```
    pub fn try_key_by(
        mut self,
        key: impl Fn(&Message) -> Result<String, PipelineError> + Send + Sync + 'static,
    ) -> Self {
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
    /// use event_bus::pipeline::{Idempotency, Message, OnDuplicate};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let duplicates = Arc::new(AtomicU64::new(0));
    /// let counter = duplicates.clone();
    /// let counting = Idempotency::new(Arc::new(MemoryStore::new())).on_conflict_with(move |_: &Message| {
    ///     counter.fetch_add(1, Ordering::Relaxed);
    ///     Ok(OnDuplicate::Forward) // let the rest of the chain see it too
    /// });
    /// # drop(counting);
    /// ```
    pub fn on_conflict_with(
        self,
        f: impl Fn(&Message) -> Result<OnDuplicate, PipelineError> + Send + Sync + 'static,
    ) -> Self {
        self.on_conflict(Conflict::With(Arc::new(f)))
    }

    /// The lease of the claim on a key in flight (default 30 s, renewed while the rest of the
    /// chain runs): how long other processes wait before taking over a key whose holder died.
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new())).lease(Duration::from_secs(5));
    /// # drop(idempotency);
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        Arc::make_mut(&mut self.inner).site.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// How long a message waits for another holder of its key to finish before failing with
    /// [`PipelineError::InFlight`] (default: one lease).
    ///
    /// ```
    /// use event_bus::pipeline::Idempotency;
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let impatient = Idempotency::new(Arc::new(MemoryStore::new())).max_wait(Duration::ZERO);
    /// # drop(impatient);
    /// ```
    pub fn max_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.inner).max_wait = Some(wait);
        self
    }

    /// The keys this handler has recorded: processed (`done`, until their time to live runs out)
    /// or being processed right now (`in_flight`, claimed by a holder), in key order.
    ///
    /// ```
    /// use event_bus::pipeline::{Handler, Idempotency, Message, Next};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new()));
    /// idempotency.handle(Message::new("s", "order-7", Vec::new()), Next::end()).await?;
    /// let records = idempotency.records().await?;
    /// assert_eq!((records[0].key.as_str(), records[0].done), ("order-7", true));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn records(&self) -> Result<Vec<IdempotencyRecord>, PipelineError> {
        let site = &self.inner.site;
        let records = site.store.scan(&site.namespace, "").await?;
        Ok(records
            .into_iter()
            .filter_map(|(key, value)| {
                let done = value == DONE;
                (done || claim::is_claim(&value)).then_some(IdempotencyRecord { key, done })
            })
            .collect())
    }

    /// Forgets a processed key, so that the next message with it runs again; `false` if the key
    /// is not recorded as processed (unknown, expired, or being processed right now).
    ///
    /// ```
    /// use event_bus::pipeline::{Handler, Idempotency, Message, Next};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let idempotency = Idempotency::new(Arc::new(MemoryStore::new()));
    /// idempotency.handle(Message::new("s", "order-7", Vec::new()), Next::end()).await?;
    /// assert!(idempotency.forget("order-7").await?);
    /// assert!(!idempotency.forget("order-7").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn forget(&self, key: &str) -> Result<bool, PipelineError> {
        let site = &self.inner.site;
        let batch = Batch::new()
            .expect(&*site.namespace, key, DONE.to_vec())
            .delete(&*site.namespace, key);
        match site.store.apply(batch).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_conflict() => Ok(false),
            Err(error) => Err(error.into()),
        }
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
    fn key_of(&self, message: &Message) -> Result<String, PipelineError> {
        let key = match &self.key {
            Some(key) => key(message)?,
            None => message.key().to_owned(),
        };
        if key.is_empty() {
            return Err(PipelineError::MissingKey {
                source_name: message.source().to_owned(),
            });
        }
        Ok(key)
    }

    async fn handle(&self, message: Message, next: Next) -> Result<(), PipelineError> {
        let key = self.key_of(&message)?;
        let wait = self.max_wait.unwrap_or(self.site.lease);
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match self.site.acquire(&key).await? {
                Acquired::Held(holder) => return self.run(holder, message, next).await,
                Acquired::Settled(marker) if marker == DONE => {
                    return self.duplicate(message, key, next).await;
                }
                Acquired::Settled(unknown) => {
                    // Not a record this handler wrote: move it aside and take the key.
                    let error = PipelineError::Corrupt(format!("idempotency record `{key}`"));
                    let store = self.site.store.as_ref();
                    quarantine(store, &self.site.namespace, &key, unknown, &error).await?;
                }
                Acquired::Busy => {
                    if started.elapsed() >= wait {
                        return Err(PipelineError::InFlight { key });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    async fn duplicate(
        &self,
        message: Message,
        key: String,
        next: Next,
    ) -> Result<(), PipelineError> {
        self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(namespace = %self.site.namespace, key, "duplicate message");
        match &self.conflict {
            Conflict::Skip => Ok(()),
            Conflict::Error => Err(PipelineError::Duplicate { key }),
            Conflict::With(decide) => match decide(&message)? {
                OnDuplicate::Skip => Ok(()),
                OnDuplicate::Forward => {
                    // The duplicate's staged writes are not committed: nothing is recorded.
                    effects::collect(|| next.run(message)).await.0
                }
                OnDuplicate::Reprocess => {
                    match self
                        .site
                        .take_over_settled(&key, DONE.to_vec(), self.ttl)
                        .await?
                    {
                        Some(holder) => self.run(holder, message, next).await,
                        None => Err(PipelineError::InFlight { key }),
                    }
                }
            },
        }
    }

    /// Runs the rest of the chain while holding the key; commits the record with what was staged,
    /// or releases the key.
    async fn run(&self, holder: Holder, message: Message, next: Next) -> Result<(), PipelineError> {
        let (result, staged) = effects::collect(|| holder.hold(|| next.run(message))).await;
        match result {
            Ok(()) => {
                let key = holder.key().to_owned();
                let commit = holder
                    .fence()
                    .put(&*self.site.namespace, key, DONE.to_vec(), self.ttl)
                    .extend(staged);
                holder.commit(commit).await?;
                let processed = self.counters.processed.fetch_add(1, Ordering::Relaxed) + 1;
                if self.ttl.is_some()
                    && processed.is_multiple_of(PURGE_EVERY)
                    && let Err(error) = self.site.store.purge_expired(PURGE_LIMIT).await
                {
                    tracing::debug!(%error, "purging expired idempotency records failed");
                }
                Ok(())
            }
            Err(error) => {
                holder.release().await;
                self.counters.released.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }
}

impl Handler for Idempotency {
    fn route(&self, _: &str) -> Route {
        Route::Through
    }

    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.handle(message, next).await })
    }
}
