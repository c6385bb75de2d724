//! [`DurableBus`]: publishing events to durable listeners, and managing their requests.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use super::error::ExecutorError;
use super::listener;
use super::request::{self, Record, Request};
use super::run::Executor;
use crate::event::Event;
use crate::pipeline::claim;
use crate::store::{Batch, IntoStore, Store, now_millis};

/// What [`Event::publish`](crate::Event::publish) stored.
///
/// ```
/// use event_bus::executor::DurableBus;
/// use event_bus::prelude::*;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// #[event]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Unheard;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
/// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
/// let published = Unheard.publish(&bus).await?;
/// assert_eq!(published.requests(), 0, "no durable listener: nothing stored");
/// assert!(!published.id().is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    id: String,
    requests: usize,
}

impl Published {
    /// The event's id, shared by its requests ([`Request::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many requests were stored: one per durable listener of the event's type.
    pub fn requests(&self) -> usize {
        self.requests
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) requests: Arc<str>,
    pub(crate) dead: Arc<str>,
    /// Wakes this bus's executors when a publish stored requests.
    pub(crate) published: Notify,
}

/// Durable listeners on a [`Store`]: [`publish`](crate::Event::publish) stores the event with one
/// *request* per durable listener of its type, atomically, and [`Executor`]s (in this process or in
/// others sharing the store) run the requests, each retried on its own with backoff until it
/// succeeds or becomes a *dead request*, which an operator can list, inspect, revive or delete.
///
/// Requests live in the store's `requests` namespace and dead ones in `dead-requests` (both under
/// a prefix with [`namespace`](DurableBus::namespace)). A clone shares the same store.
///
/// ```
/// use event_bus::executor::DurableBus;
/// use event_bus::prelude::*;
/// use event_bus::store::SqliteStore;
/// use std::sync::Arc;
///
/// #[event]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct UserSignedUp {
///     email: String,
/// }
///
/// async fn send_welcome_mail(user: UserSignedUp) -> Result<(), std::io::Error> {
///     println!("welcome, {}", user.email);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// UserSignedUp::durable("send-welcome-mail", send_welcome_mail).register()?;
///
/// let bus = DurableBus::new(Arc::new(SqliteStore::open(dir.path().join("app.db"))?));
/// UserSignedUp { email: "ada@example.com".into() }.publish(&bus).await?; // stored, not run yet
/// assert_eq!(bus.pending().await?, 1);
///
/// let executed = bus.executor().run_once().await?;
/// assert_eq!(executed.succeeded, 1);
/// assert_eq!(bus.pending().await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DurableBus {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for DurableBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBus")
            .field("requests", &self.inner.requests)
            .field("dead", &self.inner.dead)
            .finish_non_exhaustive()
    }
}

impl DurableBus {
    /// Durable listeners' requests in `store`.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// # drop(bus);
    /// ```
    pub fn new(store: impl IntoStore) -> Self {
        DurableBus::with_prefix(store.into_store(), "")
    }

    fn with_prefix(store: Arc<dyn Store>, prefix: &str) -> Self {
        DurableBus {
            inner: Arc::new(Inner {
                store,
                requests: format!("{prefix}requests").into(),
                dead: format!("{prefix}dead-requests").into(),
                published: Notify::new(),
            }),
        }
    }

    /// Keeps requests under `{prefix}requests` and `{prefix}dead-requests`: several independent
    /// buses on one store.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let billing = DurableBus::new(Arc::new(MemoryStore::new())).namespace("billing.");
    /// # drop(billing);
    /// ```
    pub fn namespace(self, prefix: &str) -> Self {
        DurableBus::with_prefix(Arc::clone(&self.inner.store), prefix)
    }

    /// An executor of this bus's requests, with the default settings (see [`Executor`]).
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let executor = DurableBus::new(Arc::new(MemoryStore::new())).executor().workers(8);
    /// # drop(executor);
    /// ```
    pub fn executor(&self) -> Executor {
        Executor::new(self.clone())
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Stores `event` with one request per durable listener of `E`, in one atomic write; what
    /// [`Event::publish`](crate::Event::publish) calls.
    pub(crate) async fn publish<E: Event + Serialize>(
        &self,
        event: &E,
    ) -> Result<Published, ExecutorError> {
        let id = crate::pipeline::message_id::new_message_id();
        let listeners = listener::of::<E>();
        if listeners.is_empty() {
            return Ok(Published { id, requests: 0 });
        }
        let payload = serde_json::to_value(event).map_err(|error| ExecutorError::Encode {
            event: E::NAME,
            error,
        })?;
        let now = now_millis();
        let stamp = request::stamp();
        let mut batch = Batch::new();
        for listener in &listeners {
            let record = Record {
                event: E::NAME.to_owned(),
                id: id.clone(),
                listener: listener.name.to_string(),
                payload: payload.clone(),
                published_ms: now,
                attempts: 0,
                not_before_ms: now,
                last_error: None,
                last_panicked: false,
                last_failure_ms: None,
            };
            let key = request::key(listener.priority, stamp, &id, &listener.name);
            let namespace = &*self.inner.requests;
            batch = batch.expect_absent(namespace, key.clone()).put(
                namespace,
                key,
                claim::free_record(&record.encode()),
                None,
            );
        }
        self.inner.store.apply(batch).await?;
        self.inner.published.notify_waiters();
        Ok(Published {
            id,
            requests: listeners.len(),
        })
    }

    /// How many requests wait to run (or are running).
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// assert_eq!(DurableBus::new(Arc::new(MemoryStore::new())).pending().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pending(&self) -> Result<usize, ExecutorError> {
        Ok(self.inner.store.count(&self.inner.requests).await?)
    }

    /// The requests waiting to run (or running), in the order executors take them. Unreadable
    /// records are skipped here (an executor quarantines them).
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// assert!(DurableBus::new(Arc::new(MemoryStore::new())).requests().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn requests(&self) -> Result<Vec<Request>, ExecutorError> {
        self.list(&self.inner.requests).await
    }

    /// The dead requests: those whose listener failed `max_errors` times (or whose stored event
    /// no longer decodes), oldest event first within a priority.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// assert!(DurableBus::new(Arc::new(MemoryStore::new())).dead_requests().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dead_requests(&self) -> Result<Vec<Request>, ExecutorError> {
        self.list(&self.inner.dead).await
    }

    /// How many dead requests there are.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// assert_eq!(DurableBus::new(Arc::new(MemoryStore::new())).dead_count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dead_count(&self) -> Result<usize, ExecutorError> {
        Ok(self.inner.store.count(&self.inner.dead).await?)
    }

    /// The dead request with this key, if any.
    ///
    /// # Errors
    ///
    /// [`ExecutorError::Corrupt`] if the record is unreadable.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// assert!(bus.dead_request("no-such-key").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn dead_request(&self, key: &str) -> Result<Option<Request>, ExecutorError> {
        match self.inner.store.get(&self.inner.dead, key).await? {
            Some(stored) => Ok(Some(Request::parse(key.to_owned(), &stored)?)),
            None => Ok(None),
        }
    }

    /// Moves a dead request back to the requests, due now, with its error count reset (it gets
    /// `max_errors` attempts again; its last error stays readable until it runs). `false` if there
    /// is no such dead request (or it changed meanwhile: another revive or delete won).
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// for dead in bus.dead_requests().await? {
    ///     bus.revive(dead.key()).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revive(&self, key: &str) -> Result<bool, ExecutorError> {
        let Some(stored) = self.inner.store.get(&self.inner.dead, key).await? else {
            return Ok(false);
        };
        let (_, mut record) = Request::parse(key.to_owned(), &stored)?.into_parts();
        record.attempts = 0;
        record.not_before_ms = now_millis();
        let (dead, requests) = (&*self.inner.dead, &*self.inner.requests);
        let batch = Batch::new()
            .expect(dead, key, stored)
            .delete(dead, key)
            .expect_absent(requests, key)
            .put(requests, key, claim::free_record(&record.encode()), None);
        match self.inner.store.apply(batch).await {
            Ok(()) => {
                self.inner.published.notify_waiters();
                Ok(true)
            }
            Err(error) if error.is_conflict() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a dead request; `false` if there was none with this key.
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// assert!(!bus.delete_dead("no-such-key").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_dead(&self, key: &str) -> Result<bool, ExecutorError> {
        Ok(self.inner.store.delete(&self.inner.dead, key).await?)
    }

    async fn list(&self, namespace: &str) -> Result<Vec<Request>, ExecutorError> {
        let records = self.inner.store.scan(namespace, "").await?;
        let mut requests = Vec::with_capacity(records.len());
        for (key, stored) in records {
            match Request::parse(key, &stored) {
                Ok(request) => requests.push(request),
                Err(error) => tracing::warn!(namespace, %error, "unreadable request skipped"),
            }
        }
        Ok(requests)
    }
}
