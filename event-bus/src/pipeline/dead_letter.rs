//! [`DeadLetters`]: park messages that finally failed, then list, count, replay or delete them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next};
use super::message::Message;
use crate::store::{Store, now_millis};

/// A message that failed for good, with why, when and after how many attempts.
///
/// ```
/// use event_bus::pipeline::{DeadLetters, Message, PipelineError};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), PipelineError> {
/// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
/// dead_letters.record(Message::new("s", "k", Vec::new()), &PipelineError::permanent("no")).await?;
/// let letter = &dead_letters.list().await?[0];
/// assert_eq!((letter.message.key(), letter.error.as_str(), letter.attempts), ("k", "no", 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// This dead letter's id (sorts chronologically).
    pub id: String,
    /// The message as it entered the dead-letter handler.
    pub message: Message,
    /// The final error, rendered.
    pub error: String,
    /// When it was parked.
    pub failed_at: SystemTime,
    /// How many times it was tried (from [`Retry`](super::Retry)'s report; 1 without retries).
    pub attempts: u32,
}

/// What [`DeadLetters::replay_all`] did.
///
/// ```
/// let nothing = event_bus::pipeline::Replayed::default();
/// assert_eq!((nothing.succeeded, nothing.failed), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Dead letters run through the handler without error.
    pub succeeded: usize,
    /// Dead letters whose replay returned an error (they are parked again if the handler parks
    /// failures, which a pipeline with `DeadLetters` in it does).
    pub failed: usize,
}

/// A handler that runs the rest of the chain and, if it fails, parks the message with its error
/// in the store instead of passing the error up (the message is then handled, by being parked).
/// The same value lists, counts, replays and deletes what it parked.
///
/// Put it first, before [`Retry`](super::Retry): a message is parked only once retries are used up.
///
/// ```
/// use event_bus::pipeline::{DeadLetters, Message, Next, Pipeline, PipelineError, from_fn};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), PipelineError> {
/// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
/// let pipeline = Pipeline::builder()
///     .then(dead_letters.clone())
///     .then(from_fn(|_: Message, _: Next| async { Err(PipelineError::permanent("no stock")) }))
///     .build();
/// pipeline.process(Message::new("order", "7", Vec::new())).await?; // parked, not an error
/// let parked = dead_letters.list().await?;
/// assert_eq!(parked[0].error, "no stock");
/// assert_eq!(dead_letters.count().await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    store: Arc<dyn Store>,
    namespace: String,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// Dead letters kept in `store` under the namespace `dead-letters`.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    /// # drop(dead_letters);
    /// ```
    pub fn new<S: Store>(store: Arc<S>) -> Self {
        DeadLetters::with_store(store)
    }

    /// Same as [`new`](DeadLetters::new), for a store already behind `Arc<dyn Store>`.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::{MemoryStore, Store};
    /// use std::sync::Arc;
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let dead_letters = DeadLetters::with_store(store);
    /// # drop(dead_letters);
    /// ```
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        DeadLetters {
            store,
            namespace: "dead-letters".to_owned(),
        }
    }

    /// Keeps the dead letters under `namespace` instead.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new())).namespace("orders-dlq");
    /// # drop(dead_letters);
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Parks `message` with `error`, returning the dead letter's id.
    ///
    /// ```
    /// use event_bus::pipeline::{DeadLetters, Message, PipelineError};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), PipelineError> {
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    /// let id = dead_letters.record(Message::new("s", "k", Vec::new()), &PipelineError::permanent("x")).await?;
    /// assert_eq!(dead_letters.get(&id).await?.map(|d| d.error), Some("x".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn record(
        &self,
        message: Message,
        error: &PipelineError,
    ) -> Result<String, PipelineError> {
        // Time, then a per-process sequence (several may park within one millisecond), then a
        // UUID (unique across processes): ids sort in the order letters were parked.
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{:020}-{sequence:012}-{}",
            now_millis(),
            uuid::Uuid::new_v4()
        );
        let letter = DeadLetter {
            id: id.clone(),
            message,
            error: error.to_string(),
            failed_at: SystemTime::now(),
            attempts: error.attempts(),
        };
        let bytes = postcard::to_stdvec(&letter)
            .map_err(|error| PipelineError::Corrupt(format!("dead letter: {error}")))?;
        self.store.put(&self.namespace, &id, bytes, None).await?;
        tracing::warn!(
            dead_letter = %id,
            source = letter.message.source(),
            key = letter.message.key(),
            error = %letter.error,
            attempts = letter.attempts,
            "message parked as a dead letter"
        );
        Ok(id)
    }

    /// Every dead letter, oldest first.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert!(DeadLetters::new(Arc::new(MemoryStore::new())).list().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self) -> Result<Vec<DeadLetter>, PipelineError> {
        self.store
            .scan(&self.namespace, "")
            .await?
            .iter()
            .map(|(_, bytes)| decode(bytes))
            .collect()
    }

    /// How many dead letters there are.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert_eq!(DeadLetters::new(Arc::new(MemoryStore::new())).count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self) -> Result<usize, PipelineError> {
        Ok(self.store.count(&self.namespace).await?)
    }

    /// One dead letter by id.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert!(DeadLetters::new(Arc::new(MemoryStore::new())).get("nope").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, id: &str) -> Result<Option<DeadLetter>, PipelineError> {
        match self.store.get(&self.namespace, id).await? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes one dead letter; `false` if there was none with that id.
    ///
    /// ```
    /// use event_bus::pipeline::DeadLetters;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// assert!(!DeadLetters::new(Arc::new(MemoryStore::new())).delete("nope").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, id: &str) -> Result<bool, PipelineError> {
        Ok(self.store.delete(&self.namespace, id).await?)
    }

    /// Takes one dead letter out and runs its message through `handler` (normally the pipeline
    /// it failed in). `Ok(false)` if there was no such dead letter.
    ///
    /// ```
    /// use event_bus::pipeline::{DeadLetters, Message, Next, Pipeline, PipelineError, from_fn};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), PipelineError> {
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    /// let healthy = Arc::new(AtomicBool::new(false));
    /// let flag = healthy.clone();
    /// let pipeline = Pipeline::builder()
    ///     .then(dead_letters.clone())
    ///     .then(from_fn(move |_: Message, _: Next| {
    ///         let ok = flag.load(Ordering::SeqCst);
    ///         async move { if ok { Ok(()) } else { Err(PipelineError::retryable("down")) } }
    ///     }))
    ///     .build();
    /// pipeline.process(Message::new("s", "k", Vec::new())).await?;
    /// let id = dead_letters.list().await?[0].id.clone();
    /// healthy.store(true, Ordering::SeqCst); // the dependency is back
    /// assert!(dead_letters.replay(&id, &pipeline).await?);
    /// assert_eq!(dead_letters.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay(&self, id: &str, handler: &impl Handler) -> Result<bool, PipelineError> {
        let Some(letter) = self.get(id).await? else {
            return Ok(false);
        };
        self.delete(id).await?;
        handler.handle(letter.message, Next::end()).await?;
        Ok(true)
    }

    /// Replays every dead letter, oldest first.
    ///
    /// ```
    /// use event_bus::pipeline::{DeadLetters, Pipeline};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    /// let replayed = dead_letters.replay_all(&Pipeline::builder().build()).await?;
    /// assert_eq!(replayed.succeeded, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay_all(&self, handler: &impl Handler) -> Result<Replayed, PipelineError> {
        let mut replayed = Replayed::default();
        for letter in self.list().await? {
            self.delete(&letter.id).await?;
            match handler.handle(letter.message, Next::end()).await {
                Ok(()) => replayed.succeeded += 1,
                Err(_) => replayed.failed += 1,
            }
        }
        Ok(replayed)
    }
}

fn decode(bytes: &[u8]) -> Result<DeadLetter, PipelineError> {
    postcard::from_bytes(bytes)
        .map_err(|error| PipelineError::Corrupt(format!("dead letter: {error}")))
}

impl Handler for DeadLetters {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let dead_letters = self.clone();
        Box::pin(async move {
            match next.run(message.clone()).await {
                Ok(()) => Ok(()),
                Err(error) => dead_letters.record(message, &error).await.map(drop),
            }
        })
    }
}
