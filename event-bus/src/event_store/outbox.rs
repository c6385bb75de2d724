//! [`Outbox`]: publish appended events to their registries, after the commit, at least once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::EventStoreError;
use super::log::{EventLog, PAGE, RecordedEvent};
use crate::event::Event;
use crate::pipeline::PipelineError;
use crate::pipeline::claim::{self, Site};

type Publish = dyn Fn(RecordedEvent) -> Pin<Box<dyn Future<Output = Result<(), EventStoreError>> + Send>>
    + Send
    + Sync;

/// What one [`Outbox::publish_pending`] did.
///
/// ```
/// let nothing = event_bus::event_store::Published::default();
/// assert_eq!(nothing.published, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Events handed to their registry (their outbox entries removed).
    pub published: usize,
    /// Entries left for another publisher: their event type has no route here.
    pub unrouted: usize,
    /// Entries another publisher is publishing right now.
    pub busy: usize,
    /// Entries that failed (an unreadable event, a store error); they stay for the next run, and
    /// the run stops at the first one (to keep log order).
    pub failed: usize,
}

/// Publishes the events appended to an [`EventLog`] **after** their commit: each append writes an
/// outbox entry per event in the same atomic batch, and the outbox hands each event to its
/// type's global registry ([`Registry::deliver`](crate::Registry::deliver): every listener, and
/// pipelines fed from the registry), then removes the entry. A published event was always stored;
/// a stored event is always published, at least once, even if the process dies right after the
/// commit (the entry stays for the next run).
///
/// Entries are claimed like inbox messages (a lease, renewed while listeners run), so several
/// publishers (threads or processes) never publish one entry at once. One publisher publishes in
/// log order: a run stops at an entry that fails (the next run starts there again). Entries
/// without a route here, or in another publisher's hands, are passed over.
///
/// ```
/// use event_bus::event_store::{EventLog, Outbox};
/// use event_bus::prelude::*;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// #[event(name = "doc.outbox.opened")]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Opened {
///     account: u32,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
/// Opened::register(|opened: &Opened| println!("account {} opened", opened.account));
/// let log = EventLog::new(Arc::new(MemoryStore::new()));
/// let outbox = Outbox::new(&log).route::<Opened>();
/// log.append_raw("account", "1", 0, Opened::NAME, vec![serde_json::json!({"account": 1})])
///     .await?;
/// assert_eq!(outbox.publish_pending().await?.published, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Outbox {
    log: EventLog,
    routes: HashMap<String, Arc<Publish>>,
    claims: Site,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("log", &self.log)
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox of `log`, with no routes yet.
    ///
    /// ```
    /// use event_bus::event_store::{EventLog, Outbox};
    /// use event_bus::prelude::*;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "doc.outbox.closed")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Closed;
    ///
    /// let outbox = Outbox::new(&EventLog::new(Arc::new(MemoryStore::new())));
    /// # drop(outbox);
    /// ```
    pub fn new(log: &EventLog) -> Self {
        Outbox {
            log: log.clone(),
            routes: HashMap::new(),
            claims: Site {
                store: Arc::clone(&log.inner.store),
                namespace: log.inner.names.outbox.as_str().into(),
                lease: claim::DEFAULT_LEASE,
            },
        }
    }

    /// Publishes the events named [`E::NAME`](Event::NAME) to `E`'s global registry.
    ///
    /// ```
    /// use event_bus::event_store::{EventLog, Outbox};
    /// use event_bus::prelude::*;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "doc.outbox.closed")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Closed;
    ///
    /// let outbox = Outbox::new(&EventLog::new(Arc::new(MemoryStore::new()))).route::<Closed>();
    /// # drop(outbox);
    /// ```
    pub fn route<E: Event + DeserializeOwned>(mut self) -> Self {
        let publish = |record: RecordedEvent| -> Pin<
            Box<dyn Future<Output = Result<(), EventStoreError>> + Send>,
        > {
            Box::pin(async move {
                let event: E = record.decode_event()?;
                let report = E::registry().deliver(event).await;
                if !report.is_success() {
                    // Listeners' failures are theirs (logged and reported); the event was
                    // published.
                    tracing::debug!(event = E::NAME, position = record.position, %report, "published");
                }
                Ok(())
            })
        };
        self.routes.insert(E::NAME.to_owned(), Arc::new(publish));
        self
    }

    /// Publishes every pending entry that has a route here and that nobody else is publishing,
    /// in log order.
    ///
    /// # Errors
    ///
    /// A store error while listing the entries (errors on single entries are counted in
    /// [`Published::failed`]).
    ///
    /// ```
    /// use event_bus::event_store::{EventLog, Outbox};
    /// use event_bus::prelude::*;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "doc.outbox.closed")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Closed;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let outbox = Outbox::new(&EventLog::new(Arc::new(MemoryStore::new()))).route::<Closed>();
    /// assert_eq!(outbox.publish_pending().await?.published, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish_pending(&self) -> Result<Published, EventStoreError> {
        let mut done = Published::default();
        let store = self.log.store();
        let names = &self.log.inner.names;
        let mut after = String::new();
        loop {
            let page = store.scan_after(&names.outbox, "", &after, PAGE).await?;
            let full = page.len() == PAGE;
            for (position, entry) in page {
                after.clone_from(&position);
                match self.publish_one(&position, entry).await {
                    Ok(Outcome::Published) => done.published += 1,
                    Ok(Outcome::Unrouted) => done.unrouted += 1,
                    Ok(Outcome::Busy) => done.busy += 1,
                    Err(error) => {
                        // Stop here: publishing the later events first would break log order.
                        tracing::warn!(%position, %error, "could not publish an event from the outbox");
                        done.failed += 1;
                        return Ok(done);
                    }
                }
            }
            if !full {
                return Ok(done);
            }
        }
    }

    async fn publish_one(
        &self,
        position: &str,
        entry: Vec<u8>,
    ) -> Result<Outcome, EventStoreError> {
        let store = self.log.store();
        let names = &self.log.inner.names;
        if claim::header_is_live(claim::split_embedded(&entry).0) {
            return Ok(Outcome::Busy);
        }
        let Some(bytes) = store.get(&names.log, position).await? else {
            return Err(EventStoreError::Corrupt {
                key: position.to_owned(),
                reason: "an outbox entry without its event".into(),
            });
        };
        let record = RecordedEvent::parse(position, &bytes)?;
        let Some(publish) = self.routes.get(&record.event).cloned() else {
            return Ok(Outcome::Unrouted);
        };
        let holder = match self.claims.take_embedded(position, entry).await {
            Ok(Some(holder)) => holder,
            Ok(None) => return Ok(Outcome::Busy),
            Err(error) => return Err(pipeline_error(position, error)),
        };
        match holder.hold(|| async { Ok(publish(record).await) }).await {
            Ok(Ok(())) => {
                let done = holder.fence().delete(&names.outbox, position);
                match holder.commit(done).await {
                    Ok(()) | Err(PipelineError::ClaimLost { .. }) => Ok(Outcome::Published),
                    Err(error) => Err(pipeline_error(position, error)),
                }
            }
            Ok(Err(error)) => {
                holder.release().await;
                Err(error)
            }
            Err(PipelineError::ClaimLost { .. }) => Ok(Outcome::Busy),
            Err(error) => {
                holder.release().await;
                Err(pipeline_error(position, error))
            }
        }
    }

    /// Publishes in the background (on the current tokio runtime): at once after each append
    /// through the same [`EventLog`] value (or a clone), and every `interval` for appends by
    /// other processes, until [`RunningOutbox::shutdown`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use event_bus::event_store::{EventLog, Outbox};
    /// use event_bus::prelude::*;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "doc.outbox.closed")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Closed;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// let running = Outbox::new(&log).route::<Closed>().start(std::time::Duration::from_secs(1));
    /// // ... append events through `log` ...
    /// running.shutdown().await;
    /// # }
    /// ```
    pub fn start(self, interval: Duration) -> RunningOutbox {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = Published::default();
            while !*stopped.borrow() {
                let appended = self.log.inner.appended.notified();
                match self.publish_pending().await {
                    Ok(run) => {
                        total.published += run.published;
                        total.unrouted = run.unrouted;
                        total.busy += run.busy;
                        total.failed += run.failed;
                    }
                    Err(error) => tracing::warn!(%error, "could not read the outbox"),
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = appended => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
            total
        });
        RunningOutbox { stop, task }
    }
}

enum Outcome {
    Published,
    Unrouted,
    Busy,
}

fn pipeline_error(position: &str, error: PipelineError) -> EventStoreError {
    match error {
        PipelineError::Store(error) => EventStoreError::Store(error),
        other => EventStoreError::Corrupt {
            key: position.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// An [`Outbox`] publishing in the background; from [`Outbox::start`].
#[derive(Debug)]
#[must_use = "dropping a RunningOutbox leaves it running until its runtime stops"]
pub struct RunningOutbox {
    stop: watch::Sender<bool>,
    task: JoinHandle<Published>,
}

impl RunningOutbox {
    /// Stops after the current round and returns what it published in all.
    ///
    /// ```
    /// use event_bus::event_store::{EventLog, Outbox};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// let published = Outbox::new(&log).start(std::time::Duration::from_secs(1)).shutdown().await;
    /// assert_eq!(published.published, 0);
    /// # }
    /// ```
    pub async fn shutdown(self) -> Published {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
