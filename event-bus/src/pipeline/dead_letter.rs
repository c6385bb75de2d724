//! [`DeadLetters`]: park messages that finally failed, then list, count, replay or delete them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;
use super::quarantine::quarantine;
use crate::store::{Batch, IntoStore, Store};

/// Metadata naming the [`Join`](super::Join) (by namespace) whose failed or expired join a
/// message is: replayed, it re-enters the pipeline and that join handles it as a whole.
pub(crate) const JOIN_UNIT: &str = "event-bus.join-unit";
/// Metadata marking a join unit as expired (incomplete) rather than failed.
pub(crate) const JOIN_EXPIRED: &str = "event-bus.join-expired";

tokio::task_local! {
    /// The innermost unit that failed in the chain below a `DeadLetters` handler.
    static FAILED_UNIT: Arc<Mutex<Option<Message>>>;
    /// Set while a dead letter is replayed: the id of the letter a `DeadLetters` parked, if any.
    static REPLAY: Arc<Mutex<Option<String>>>;
}

/// Forgets a failed unit noted earlier in this attempt (a new attempt starts).
pub(crate) fn clear_failed_unit() {
    let _ = FAILED_UNIT.try_with(|unit| unit.lock().take());
}

/// Notes `unit` as what failed. With nested joins the outermost one notes last and wins:
/// replaying its joined message re-runs the inner joins too, so every join settles.
pub(crate) fn note_failed_unit(unit: impl FnOnce() -> Message) {
    let _ = FAILED_UNIT.try_with(|slot| *slot.lock() = Some(unit()));
}

async fn with_unit_slot<F: Future>(future: F) -> (F::Output, Option<Message>) {
    let slot = Arc::new(Mutex::new(None));
    let output = FAILED_UNIT.scope(Arc::clone(&slot), future).await;
    let unit = slot.lock().take();
    (output, unit)
}

async fn replaying<F: Future>(future: F) -> (F::Output, Option<String>) {
    let parked = Arc::new(Mutex::new(None));
    let output = REPLAY.scope(Arc::clone(&parked), future).await;
    let parked = parked.lock().take();
    (output, parked)
}

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

/// What [`DeadLetters::replay_all`] did. `succeeded + failed + parked + quarantined` is the number
/// of letters there were.
///
/// ```
/// let nothing = event_bus::pipeline::Replayed::default();
/// assert_eq!((nothing.succeeded, nothing.failed, nothing.parked), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Letters whose replay succeeded; they were removed.
    pub succeeded: usize,
    /// Letters whose replay returned an error; they stay.
    pub failed: usize,
    /// Letters whose replay failed and was parked again by a `DeadLetters` in the replayed chain
    /// (the handler returned `Ok` only because it parked it); they stay, updated.
    pub parked: usize,
    /// Letters that could not be read; moved to the [`Quarantine`](super::Quarantine).
    pub quarantined: usize,
}

/// What [`DeadLetters::replay`] did with one letter.
///
/// ```
/// use event_bus::pipeline::ReplayOutcome;
///
/// assert!(ReplayOutcome::Succeeded.is_success());
/// assert!(!ReplayOutcome::NotFound.is_success());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayOutcome {
    /// The replay succeeded; the letter was removed.
    Succeeded,
    /// The replay failed and a `DeadLetters` in the chain parked it again, under `id` (the same id
    /// when the same unit failed at the same point).
    Parked {
        /// The letter now holding the failure.
        id: String,
    },
    /// The replay failed with this error; the letter stays.
    Failed(PipelineError),
    /// There was no letter with that id.
    NotFound,
}

impl ReplayOutcome {
    /// `true` for [`ReplayOutcome::Succeeded`].
    ///
    /// ```
    /// assert!(event_bus::pipeline::ReplayOutcome::Succeeded.is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        matches!(self, ReplayOutcome::Succeeded)
    }
}

/// A handler that runs the rest of the chain and, if it fails, parks **the unit that failed** with
/// its error in the store instead of passing the error up (the message is then handled, by being
/// parked). The same value lists, counts, replays and deletes what it parked.
///
/// - The unit is what the failing handler saw: the message itself, or, when the failure happened
///   below a [`Join`](super::Join), the joined message (one letter per failed join, carrying its
///   key and its parts' sources; never one letter per part). Writes [`stage`](super::stage)d by
///   the failed attempt are discarded.
/// - Letters are deduplicated per unit and failure point: a message id, or a join's namespace and
///   key. A redelivery that fails the same way updates the letter instead of adding one.
/// - [`replay`](DeadLetters::replay) runs a letter's message through a handler (normally the
///   pipeline it failed in; a join recognises its own joined messages and continues below
///   itself) and removes the letter **only after the replay succeeded**. A crash during a replay
///   leaves the letter; replaying it again is safe behind `Join` and `Idempotency`, whose markers
///   make the second run a no-op.
/// - Unreadable letters are moved to the [`Quarantine`](super::Quarantine), never blocking the
///   others.
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
    pub fn new(store: impl IntoStore) -> Self {
        DeadLetters {
            store: store.into_store(),
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

    /// Parks `message` with `error`, returning the dead letter's id. Parking the same unit again
    /// (the same message id, or the same join key) replaces its letter.
    ///
    /// ```
    /// use event_bus::pipeline::{DeadLetters, Message, PipelineError};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), PipelineError> {
    /// let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    /// let message = Message::new("s", "k", Vec::new());
    /// let id = dead_letters.record(message.clone(), &PipelineError::permanent("x")).await?;
    /// assert_eq!(dead_letters.record(message, &PipelineError::permanent("y")).await?, id);
    /// assert_eq!(dead_letters.get(&id).await?.map(|d| d.error), Some("y".to_owned()));
    /// assert_eq!(dead_letters.count().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn record(
        &self,
        message: Message,
        error: &PipelineError,
    ) -> Result<String, PipelineError> {
        let source = message.source().to_owned();
        let (id, batch) = self.letter(message, error)?;
        self.store.apply(batch).await?;
        crate::metrics::dead_lettered(&source);
        crate::reporting::report(
            crate::reporting::Origin::DeadLetter,
            &source,
            &id,
            error,
            None,
        );
        let _ = REPLAY.try_with(|parked| *parked.lock() = Some(id.clone()));
        Ok(id)
    }

    /// The id and the write of a letter for `message` failing with `error` (to commit with other
    /// writes in one batch).
    pub(crate) fn letter(
        &self,
        message: Message,
        error: &PipelineError,
    ) -> Result<(String, Batch), PipelineError> {
        let id = letter_id(&message);
        let letter = DeadLetter {
            id: id.clone(),
            message,
            error: error.to_string(),
            failed_at: SystemTime::now(),
            attempts: error.attempts(),
        };
        let bytes = postcard::to_stdvec(&letter)
            .map_err(|error| PipelineError::Corrupt(format!("dead letter: {error}")))?;
        tracing::warn!(
            dead_letter = %id,
            source = letter.message.source(),
            key = letter.message.key(),
            error = %letter.error,
            attempts = letter.attempts,
            "message parked as a dead letter"
        );
        let batch = Batch::new().put(self.namespace.clone(), id.clone(), bytes, None);
        Ok((id, batch))
    }

    /// Every readable dead letter, oldest first. Unreadable ones are moved to the
    /// [`Quarantine`](super::Quarantine).
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
        Ok(self.load().await?.0)
    }

    /// The readable letters (oldest first, with their stored bytes) and how many were quarantined.
    async fn load(&self) -> Result<(Vec<DeadLetter>, usize), PipelineError> {
        let mut letters = Vec::new();
        let mut quarantined = 0;
        for (id, bytes) in self.store.scan(&self.namespace, "").await? {
            match decode(&bytes) {
                Ok(letter) => letters.push(letter),
                Err(error) => {
                    let store = self.store.as_ref();
                    if quarantine(store, &self.namespace, &id, bytes, &error).await? {
                        quarantined += 1;
                    }
                }
            }
        }
        letters.sort_by(|a, b| (a.failed_at, &a.id).cmp(&(b.failed_at, &b.id)));
        Ok((letters, quarantined))
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

    /// One dead letter by id (an unreadable one is quarantined and reported as
    /// [`PipelineError::Corrupt`]).
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
        Ok(self.read(id).await?.map(|(letter, _)| letter))
    }

    /// The namespace the letters are kept under.
    pub(crate) fn namespace_name(&self) -> &str {
        &self.namespace
    }

    /// One letter and its stored bytes (an unreadable one is quarantined: an error).
    pub(crate) async fn read(
        &self,
        id: &str,
    ) -> Result<Option<(DeadLetter, Vec<u8>)>, PipelineError> {
        let Some(bytes) = self.store.get(&self.namespace, id).await? else {
            return Ok(None);
        };
        match decode(&bytes) {
            Ok(letter) => Ok(Some((letter, bytes))),
            Err(error) => {
                quarantine(self.store.as_ref(), &self.namespace, id, bytes, &error).await?;
                Err(error)
            }
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

    /// Runs one letter's message through `handler` (normally the pipeline it failed in) and removes
    /// the letter only if that succeeded. See [`ReplayOutcome`].
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
    /// assert!(!dead_letters.replay(&id, &pipeline).await?.is_success(), "still down: parked again");
    /// healthy.store(true, Ordering::SeqCst); // the dependency is back
    /// assert!(dead_letters.replay(&id, &pipeline).await?.is_success());
    /// assert_eq!(dead_letters.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay(
        &self,
        id: &str,
        handler: &impl Handler,
    ) -> Result<ReplayOutcome, PipelineError> {
        let Some((letter, bytes)) = self.read(id).await? else {
            return Ok(ReplayOutcome::NotFound);
        };
        self.replay_letter(letter, bytes, handler).await
    }

    async fn replay_letter(
        &self,
        letter: DeadLetter,
        bytes: Vec<u8>,
        handler: &impl Handler,
    ) -> Result<ReplayOutcome, PipelineError> {
        let (result, parked) = replaying(handler.handle(letter.message, Next::end())).await;
        // Only this exact letter is removed: one re-parked in the meantime is newer.
        let remove = Batch::new()
            .expect(self.namespace.clone(), letter.id.clone(), bytes)
            .delete(self.namespace.clone(), letter.id.clone());
        match (result, parked) {
            (Err(error), _) => Ok(ReplayOutcome::Failed(error)),
            (Ok(()), Some(parked)) if parked == letter.id => {
                Ok(ReplayOutcome::Parked { id: parked })
            }
            (Ok(()), parked) => {
                match self.store.apply(remove).await {
                    Err(error) if !error.is_conflict() => return Err(error.into()),
                    _ => {}
                }
                Ok(match parked {
                    // Failed somewhere else this time: the new letter supersedes this one.
                    Some(id) => ReplayOutcome::Parked { id },
                    None => ReplayOutcome::Succeeded,
                })
            }
        }
    }

    /// Replays every dead letter, oldest first, and reports truthfully what became of them: a
    /// "replay until empty" loop can stop when nothing succeeded.
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
        let (letters, quarantined) = self.load().await?;
        let mut replayed = Replayed {
            quarantined,
            ..Replayed::default()
        };
        for letter in letters {
            // Re-read: the letter may have been replayed or updated since the listing.
            let Some((letter, bytes)) = self.read(&letter.id).await.ok().flatten() else {
                continue;
            };
            match self.replay_letter(letter, bytes, handler).await {
                Ok(ReplayOutcome::Succeeded) => replayed.succeeded += 1,
                Ok(ReplayOutcome::Parked { .. }) => replayed.parked += 1,
                Ok(ReplayOutcome::NotFound) => {}
                Ok(ReplayOutcome::Failed(_)) | Err(_) => replayed.failed += 1,
            }
        }
        Ok(replayed)
    }
}

/// A letter's id: per unit and failure point, so that the same failure is parked once.
pub(crate) fn letter_id(message: &Message) -> String {
    let metadata = message.metadata();
    match (metadata.get(JOIN_UNIT), metadata.contains_key(JOIN_EXPIRED)) {
        (Some(join), false) => format!("join/{}:{join}/{}", join.len(), message.key()),
        (Some(join), true) => format!("expired/{}:{join}/{}", join.len(), message.key()),
        (None, _) => format!("message/{}", message.id()),
    }
}

fn decode(bytes: &[u8]) -> Result<DeadLetter, PipelineError> {
    postcard::from_bytes(bytes)
        .map_err(|error| PipelineError::Corrupt(format!("dead letter: {error}")))
}

impl Handler for DeadLetters {
    fn route(&self, _: &str) -> Route {
        Route::Through
    }

    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let dead_letters = self.clone();
        Box::pin(async move {
            match with_unit_slot(next.run(message.clone())).await {
                (Ok(()), _) => Ok(()),
                (Err(error), unit) => {
                    let unit = unit.unwrap_or(message);
                    dead_letters.record(unit, &error).await.map(drop)
                }
            }
        })
    }
}
