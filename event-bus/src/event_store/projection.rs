//! Projections: typed read models fed from the event log, each event applied exactly once,
//! atomically with the projection's tracking position.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::EventStoreError;
use super::log::{EventLog, PAGE, RecordedEvent};
use crate::event::Event;
use crate::report::BoxError;
use crate::store::{Batch, Store};

/// A read model fed from the log: it follows one event type and, for each event, stages writes
/// to the store. The [`Projector`] commits those writes **atomically with the projection's
/// position** in one batch, guarded by the position it read: each event is applied exactly once,
/// even with a crash between two events or two projectors racing.
///
/// ```
/// use event_bus::BoxError;
/// use event_bus::event_store::{Projection, RecordedEvent, Staged};
/// use event_bus::prelude::*;
///
/// #[event(name = "doc.projection.deposited")]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Deposited {
///     account: String,
///     cents: u64,
/// }
///
/// /// Balances by account, in the namespace `balances`.
/// struct Balances;
///
/// impl Projection for Balances {
///     const NAME: &'static str = "balances";
///     type Event = Deposited;
///
///     async fn apply(
///         &self,
///         event: Deposited,
///         _: &RecordedEvent,
///         staged: &mut Staged<'_>,
///     ) -> Result<(), BoxError> {
///         let balance: u64 = staged.get_json("balances", &event.account).await?.unwrap_or(0);
///         staged.put_json("balances", &event.account, &(balance + event.cents))?;
///         Ok(())
///     }
///
///     fn namespaces(&self) -> Vec<String> {
///         vec!["balances".into()]
///     }
/// }
/// # let _ = Balances;
/// ```
pub trait Projection: Send + Sync + 'static {
    /// Its name: the key of its position in the store.
    const NAME: &'static str;
    /// The event type it follows; events of other types are passed over.
    type Event: Event + DeserializeOwned;

    /// Stages the writes one event causes. An error stops the projector at this event (nothing
    /// of it is written); it is tried again at the next run.
    fn apply(
        &self,
        event: Self::Event,
        recorded: &RecordedEvent,
        staged: &mut Staged<'_>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// The namespaces the read model writes, cleared by [`Projector::rebuild`].
    fn namespaces(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The writes a [`Projection`] stages for one event, committed with its position; reads go to
/// the store (what earlier events committed).
///
/// ```
/// use event_bus::BoxError;
/// use event_bus::event_store::Staged;
///
/// async fn count_once(staged: &mut Staged<'_>, key: &str) -> Result<(), BoxError> {
///     let seen: u64 = staged.get_json("counts", key).await?.unwrap_or(0);
///     staged.put_json("counts", key, &(seen + 1))?;
///     if staged.get("flags", key).await?.is_some() {
///         staged.delete("flags", key);
///     }
///     staged.put("last", "key", key.as_bytes().to_vec());
///     Ok(())
/// }
/// # let _ = count_once;
/// ```
pub struct Staged<'a> {
    store: &'a dyn Store,
    batch: Batch,
}

impl fmt::Debug for Staged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("writes", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl Staged<'_> {
    /// The committed value at `namespace`/`key`.
    ///
    /// # Errors
    ///
    /// A store error.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(self.store.get(namespace, key).await?)
    }

    /// The committed value at `namespace`/`key`, decoded from JSON.
    ///
    /// # Errors
    ///
    /// A store error, or a value that is not a `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<T>, BoxError> {
        match self.store.get(namespace, key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Stages a write.
    pub fn put(&mut self, namespace: &str, key: &str, value: Vec<u8>) {
        let batch = std::mem::take(&mut self.batch);
        self.batch = batch.put(namespace, key, value, None);
    }

    /// Stages a write of `value` as JSON.
    ///
    /// # Errors
    ///
    /// A value that cannot be encoded.
    pub fn put_json<T: Serialize>(
        &mut self,
        namespace: &str,
        key: &str,
        value: &T,
    ) -> Result<(), BoxError> {
        self.put(namespace, key, serde_json::to_vec(value)?);
        Ok(())
    }

    /// Stages a removal.
    pub fn delete(&mut self, namespace: &str, key: &str) {
        let batch = std::mem::take(&mut self.batch);
        self.batch = batch.delete(namespace, key);
    }
}

/// Where a projection is: the last position applied, and whether a rebuild is clearing it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tracking {
    position: u64,
    #[serde(default)]
    clearing: bool,
    /// The rebuild that is clearing (unique), so that a stale clear cannot act after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rebuild: Option<String>,
}

/// Runs a [`Projection`] over an [`EventLog`]: catches up from its stored position, then follows
/// the log live; [`rebuild`](Projector::rebuild) starts it over from zero.
///
/// Positions live in the namespace `es-projections` (under the log's prefix).
///
/// ```
/// # use event_bus::BoxError;
/// # use event_bus::event_store::{Projection, RecordedEvent, Staged};
/// # use event_bus::prelude::*;
/// # #[event(name = "doc.projector.seen")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Seen(u32);
/// # struct Count;
/// # impl Projection for Count {
/// #     const NAME: &'static str = "count";
/// #     type Event = Seen;
/// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
/// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
/// #         staged.put_json("count", "n", &(n + 1))
/// #     }
/// # }
/// use event_bus::event_store::{EventLog, Projector};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
/// let log = EventLog::new(Arc::new(MemoryStore::new()));
/// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1), serde_json::json!(2)]).await?;
/// let projector = Projector::new(&log, Count);
/// assert_eq!(projector.catch_up().await?, 2);
/// assert_eq!(projector.position().await?, 2);
/// assert_eq!(projector.catch_up().await?, 0, "each event once");
/// # Ok(())
/// # }
/// ```
pub struct Projector<P> {
    log: EventLog,
    projection: Arc<P>,
    namespace: String,
}

impl<P> Clone for Projector<P> {
    fn clone(&self) -> Self {
        Projector {
            log: self.log.clone(),
            projection: Arc::clone(&self.projection),
            namespace: self.namespace.clone(),
        }
    }
}

impl<P: Projection> fmt::Debug for Projector<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Projector")
            .field("projection", &P::NAME)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> Projector<P> {
    /// A projector of `projection` over `log`.
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// let projector = Projector::new(&log, Count);
    /// # drop(projector);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(log: &EventLog, projection: P) -> Self {
        let namespace = log.inner.names.projections.clone();
        Projector {
            log: log.clone(),
            projection: Arc::new(projection),
            namespace,
        }
    }

    async fn tracking(&self) -> Result<(Tracking, Option<Vec<u8>>), EventStoreError> {
        match self.log.store().get(&self.namespace, P::NAME).await? {
            None => Ok((Tracking::default(), None)),
            Some(bytes) => {
                let tracking =
                    serde_json::from_slice(&bytes).map_err(|error| EventStoreError::Corrupt {
                        key: P::NAME.to_owned(),
                        reason: error.to_string(),
                    })?;
                Ok((tracking, Some(bytes)))
            }
        }
    }

    /// The last position applied (0: none yet).
    ///
    /// # Errors
    ///
    /// A store error, or a position record this library did not write.
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// assert_eq!(Projector::new(&log, Count).position().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn position(&self) -> Result<u64, EventStoreError> {
        Ok(self.tracking().await?.0.position)
    }

    /// Applies every event after the stored position, up to the log's end, committing each with
    /// its position; returns how many events of the projection's type it applied.
    ///
    /// # Errors
    ///
    /// A store error; the projection's error at an event (as [`EventStoreError::Corrupt`], with
    /// the event's position): events before it are committed, it and the ones after are not.
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// assert_eq!(Projector::new(&log, Count).catch_up().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn catch_up(&self) -> Result<u64, EventStoreError> {
        let mut applied = 0;
        loop {
            let (mut tracking, mut current) = self.tracking().await?;
            if tracking.clearing {
                // A rebuild was interrupted: finish its clearing (unless another projector does).
                if let Some(marker) = &current {
                    self.clear(marker).await?;
                }
                (tracking, current) = self.tracking().await?;
                if tracking.clearing {
                    continue;
                }
            }
            let page = self.log.read_all(tracking.position, PAGE).await?;
            if page.is_empty() {
                return Ok(applied);
            }
            for recorded in page {
                let store = self.log.store();
                let mut staged = Staged {
                    store,
                    batch: Batch::new(),
                };
                let ours = recorded.event == P::Event::NAME;
                if ours {
                    let event: P::Event = recorded.decode_event()?;
                    self.projection
                        .apply(event, &recorded, &mut staged)
                        .await
                        .map_err(|error| EventStoreError::Corrupt {
                            key: format!("{} at position {}", P::NAME, recorded.position),
                            reason: error.to_string(),
                        })?;
                }
                // The rebuild id travels with every position after a rebuild: a projector that
                // read a record from before the rebuild cannot match one written after it.
                let next = Tracking {
                    position: recorded.position,
                    clearing: false,
                    rebuild: tracking.rebuild.clone(),
                };
                let next_bytes = serde_json::to_vec(&next).unwrap_or_default();
                let guard = match &current {
                    Some(bytes) => Batch::new().expect(&self.namespace, P::NAME, bytes.clone()),
                    None => Batch::new().expect_absent(&self.namespace, P::NAME),
                };
                let batch = guard
                    .put(&self.namespace, P::NAME, next_bytes.clone(), None)
                    .extend(staged.batch);
                match store.apply(batch).await {
                    Ok(()) => {
                        current = Some(next_bytes);
                        if ours {
                            applied += 1;
                        }
                    }
                    // Another projector moved the position: read it again.
                    Err(error) if error.is_conflict() => break,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }

    /// Starts over from zero: clears the read model's namespaces
    /// ([`Projection::namespaces`]) and the position, then catches up. A crash in the middle is
    /// finished by the next `catch_up` or `rebuild` (the position record says it was clearing).
    /// Run it while no other projector of this projection runs.
    ///
    /// # Errors
    ///
    /// As [`catch_up`](Projector::catch_up).
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// let projector = Projector::new(&log, Count);
    /// projector.catch_up().await?;
    /// assert_eq!(projector.rebuild().await?, 1, "the same event again, on a cleared model");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rebuild(&self) -> Result<u64, EventStoreError> {
        let marker = Tracking {
            position: 0,
            clearing: true,
            rebuild: Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        let marker = serde_json::to_vec(&marker).unwrap_or_default();
        self.log
            .store()
            .put(&self.namespace, P::NAME, marker.clone(), None)
            .await?;
        self.clear(&marker).await?;
        self.catch_up().await
    }

    /// Deletes the read model's records, then marks the position 0 and done clearing. Every
    /// write expects the clearing `marker` in the position record: once another projector
    /// finished this clearing (and may be applying events again), or another rebuild started,
    /// this one stops instead of deleting their writes or resetting their position.
    async fn clear(&self, marker: &[u8]) -> Result<(), EventStoreError> {
        let store = self.log.store();
        let fence = || Batch::new().expect(&self.namespace, P::NAME, marker.to_vec());
        for namespace in self.projection.namespaces() {
            loop {
                let page = store.scan_after(&namespace, "", "", PAGE).await?;
                if page.is_empty() {
                    break;
                }
                let mut batch = fence();
                for (key, _) in page {
                    batch = batch.delete(namespace.as_str(), key);
                }
                match store.apply(batch).await {
                    Ok(()) => {}
                    Err(error) if error.is_conflict() => return Ok(()),
                    Err(error) => return Err(error.into()),
                }
            }
        }
        let rebuild = serde_json::from_slice::<Tracking>(marker)
            .ok()
            .and_then(|marker| marker.rebuild);
        let done = Tracking {
            position: 0,
            clearing: false,
            rebuild,
        };
        let done = serde_json::to_vec(&done).unwrap_or_default();
        match store
            .apply(fence().put(&self.namespace, P::NAME, done, None))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if error.is_conflict() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Catches up, then follows the log in the background: at once after each append through
    /// the same [`EventLog`] (or a clone), and every `interval` for other processes' appends,
    /// until [`RunningProjector::shutdown`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// let running = Projector::new(&log, Count).start(std::time::Duration::from_secs(1));
    /// // ... appends through `log` are applied as they come ...
    /// running.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self, interval: Duration) -> RunningProjector {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut applied = 0;
            while !*stopped.borrow() {
                let appended = self.log.inner.appended.notified();
                match self.catch_up().await {
                    Ok(count) => applied += count,
                    Err(error) => {
                        tracing::warn!(projection = P::NAME, %error, "projection stopped at an event")
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = appended => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
            applied
        });
        RunningProjector { stop, task }
    }
}

/// A [`Projector`] following the log in the background; from [`Projector::start`].
#[derive(Debug)]
#[must_use = "dropping a RunningProjector leaves it running until its runtime stops"]
pub struct RunningProjector {
    stop: watch::Sender<bool>,
    task: JoinHandle<u64>,
}

impl RunningProjector {
    /// Stops after the current round; returns how many events it applied in all.
    ///
    /// ```
    /// # use event_bus::BoxError;
    /// # use event_bus::event_store::{EventLog, Projection, Projector, RecordedEvent, Staged};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event(name = "doc.projector.method")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Seen(u32);
    /// # struct Count;
    /// # impl Projection for Count {
    /// #     const NAME: &'static str = "count";
    /// #     type Event = Seen;
    /// #     async fn apply(&self, _: Seen, _: &RecordedEvent, staged: &mut Staged<'_>) -> Result<(), BoxError> {
    /// #         let n: u64 = staged.get_json("count", "n").await?.unwrap_or(0);
    /// #         staged.put_json("count", "n", &(n + 1))
    /// #     }
    /// #     fn namespaces(&self) -> Vec<String> { vec!["count".into()] }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("s", "1", 0, Seen::NAME, vec![serde_json::json!(1)]).await?;
    /// let running = Projector::new(&log, Count).start(std::time::Duration::from_secs(1));
    /// let _applied: u64 = running.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
