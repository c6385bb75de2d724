//! [`Repository`]: load an aggregate (snapshot + the events after it), run a command, append.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::aggregate::Aggregate;
use super::error::{EventStoreError, ExecuteError};
use super::log::{EventLog, RecordedEvent, stream_prefix};
use crate::event::Event;

/// An aggregate as loaded: its state and the version of its stream that state includes.
///
/// ```
/// let loaded = event_bus::event_store::Loaded { state: 0u64, version: 0 };
/// assert_eq!(loaded.version, 0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state after every event of the stream.
    pub state: A,
    /// How many events the stream has (0: it does not exist yet).
    pub version: u64,
}

/// A snapshot as stored.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The stream version the state includes.
    version: u64,
    /// [`Aggregate::SNAPSHOT_VERSION`] when it was taken.
    state_version: u32,
    state: serde_json::Value,
}

/// Loads aggregates of type `A` from an [`EventLog`] and runs commands on them.
///
/// - [`load`](Repository::load) reads the latest snapshot (if its
///   [`SNAPSHOT_VERSION`](Aggregate::SNAPSHOT_VERSION) matches) and applies the events after
///   it; the result is the state a full replay gives.
/// - [`execute`](Repository::execute) loads, asks the aggregate to `handle` the command, and
///   appends the events it decided **expecting the version it loaded**: a concurrent writer
///   makes it fail with a conflict ([`ExecuteError::is_conflict`]), never a lost or interleaved
///   write. [`execute_retrying`](Repository::execute_retrying) runs the command again on the
///   new state.
/// - With [`snapshot_every(n)`](Repository::snapshot_every), a snapshot is written each time a
///   stream crosses a multiple of `n` events.
///
/// ```
/// # use event_bus::event_store::Aggregate;
/// # use event_bus::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[event(name = "doc.counter")]
/// # #[derive(Clone, Serialize, Deserialize)]
/// # struct Added(u64);
/// # #[derive(Default, Serialize, Deserialize)]
/// # struct Counter { total: u64 }
/// # impl Aggregate for Counter {
/// #     const TYPE: &'static str = "counter";
/// #     type Command = u64;
/// #     type Event = Added;
/// #     type Error = std::convert::Infallible;
/// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
/// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
/// # }
/// use event_bus::event_store::{EventLog, Repository};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())))
///     .snapshot_every(100);
/// counters.execute("c1", 5).await?;
/// counters.execute("c1", 7).await?;
/// let loaded = counters.load("c1").await?;
/// assert_eq!((loaded.state.total, loaded.version), (12, 2));
/// # Ok(())
/// # }
/// ```
pub struct Repository<A> {
    log: EventLog,
    snapshot_every: Option<u64>,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Repository {
            log: self.log.clone(),
            snapshot_every: self.snapshot_every,
            aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &A::TYPE)
            .field("snapshot_every", &self.snapshot_every)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> Repository<A> {
    /// A repository of `A` on `log`, without snapshots.
    ///
    /// ```
    /// # use event_bus::event_store::Aggregate;
    /// # use event_bus::prelude::*;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// use event_bus::event_store::{EventLog, Repository};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())));
    /// # drop(counters);
    /// ```
    pub fn new(log: EventLog) -> Self {
        Repository {
            log,
            snapshot_every: None,
            aggregate: PhantomData,
        }
    }

    /// Writes a snapshot each time a stream crosses a multiple of `events` events (at least 1).
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())))
    ///     .snapshot_every(100);
    /// # drop(counters);
    /// ```
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = Some(events.max(1));
        self
    }

    /// The event log.
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())));
    /// let log: &EventLog = counters.log();
    /// # let _ = log;
    /// ```
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    fn snapshot_key(id: &str) -> String {
        stream_prefix(A::TYPE, id)
    }

    /// The aggregate `id`: its latest usable snapshot and the events after it (the default state
    /// at version 0 if the stream does not exist).
    ///
    /// # Errors
    ///
    /// A store error, or a stored event that is not an `A::Event`.
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())));
    /// assert_eq!(counters.load("new").await?.version, 0, "a stream that does not exist yet");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, EventStoreError> {
        let names = &self.log.inner.names;
        let snapshot = match self
            .log
            .store()
            .get(&names.snapshots, &Self::snapshot_key(id))
            .await?
        {
            Some(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(snapshot) if snapshot.state_version == A::SNAPSHOT_VERSION => {
                    match A::deserialize(&snapshot.state) {
                        Ok(state) => Some((state, snapshot.version)),
                        Err(error) => {
                            tracing::warn!(aggregate = A::TYPE, id, %error, "unreadable snapshot ignored");
                            None
                        }
                    }
                }
                Ok(_) => None, // an older shape of the state: replay instead
                Err(error) => {
                    tracing::warn!(aggregate = A::TYPE, id, %error, "unreadable snapshot ignored");
                    None
                }
            },
            None => None,
        };
        let (state, version) = snapshot.unwrap_or_default();
        self.replay_onto(id, state, version).await
    }

    /// The aggregate `id` rebuilt from all its events, ignoring snapshots: what
    /// [`load`](Repository::load) must always equal.
    ///
    /// # Errors
    ///
    /// As [`load`](Repository::load).
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())))
    ///     .snapshot_every(2);
    /// for n in 1..=5 {
    ///     counters.execute("c1", n).await?;
    /// }
    /// assert_eq!(counters.load("c1").await?.state.total, counters.replay("c1").await?.state.total);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replay(&self, id: &str) -> Result<Loaded<A>, EventStoreError> {
        self.replay_onto(id, A::default(), 0).await
    }

    async fn replay_onto(
        &self,
        id: &str,
        mut state: A,
        mut version: u64,
    ) -> Result<Loaded<A>, EventStoreError> {
        for record in self.log.read_stream(A::TYPE, id, version).await? {
            let event: A::Event = record.decode_event()?;
            state.apply(&event);
            version = record.version;
        }
        Ok(Loaded { state, version })
    }

    /// Loads `id`, asks it to handle `command`, and appends the events it decided, expecting the
    /// version it loaded. Returns the recorded events (none if the aggregate decided none).
    ///
    /// # Errors
    ///
    /// [`ExecuteError::Rejected`] with the aggregate's error; a conflict
    /// ([`ExecuteError::is_conflict`]) if another writer appended since the load; a store error.
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())));
    /// let recorded = counters.execute("c1", 4).await?;
    /// assert_eq!((recorded[0].version, recorded[0].position), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
    ) -> Result<Vec<RecordedEvent>, ExecuteError<A::Error>> {
        let Loaded { mut state, version } = self.load(id).await?;
        let events = state.handle(command).map_err(ExecuteError::Rejected)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut payloads = Vec::with_capacity(events.len());
        for event in &events {
            let payload = serde_json::to_value(event).map_err(|error| EventStoreError::Encode {
                what: A::Event::NAME.to_owned(),
                error,
            })?;
            payloads.push(payload);
        }
        let recorded = self
            .log
            .append(
                A::TYPE,
                id,
                version,
                (A::Event::NAME, A::Event::VERSION),
                payloads,
            )
            .await?;
        if let Some(every) = self.snapshot_every {
            let now = version + events.len() as u64;
            if now / every > version / every {
                for event in &events {
                    state.apply(event);
                }
                self.write_snapshot(id, &state, now).await;
            }
        }
        Ok(recorded)
    }

    /// [`execute`](Repository::execute), run again on the new state after each conflict, up to
    /// `attempts` times in all.
    ///
    /// ```
    /// # use event_bus::event_store::{Aggregate, EventLog, Repository};
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// # use std::sync::Arc;
    /// # #[event] #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Added(u64);
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Counter { total: u64 }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Command = u64;
    /// #     type Event = Added;
    /// #     type Error = std::convert::Infallible;
    /// #     fn handle(&self, n: u64) -> Result<Vec<Added>, Self::Error> { Ok(vec![Added(n)]) }
    /// #     fn apply(&mut self, event: &Added) { self.total += event.0 }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let counters = Repository::<Counter>::new(EventLog::new(Arc::new(MemoryStore::new())));
    /// counters.execute_retrying("c1", 3, 10).await?;
    /// assert_eq!(counters.load("c1").await?.state.total, 3);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`execute`](Repository::execute); a conflict only if every attempt met one.
    pub async fn execute_retrying(
        &self,
        id: &str,
        command: A::Command,
        attempts: u32,
    ) -> Result<Vec<RecordedEvent>, ExecuteError<A::Error>>
    where
        A::Command: Clone,
    {
        let mut pause = Duration::from_micros(200);
        let mut attempt = 1;
        loop {
            match self.execute(id, command.clone()).await {
                Err(error) if error.is_conflict() && attempt < attempts => {
                    attempt += 1;
                    tokio::time::sleep(pause.mul_f64(fastrand::f64() + 0.5)).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                outcome => return outcome,
            }
        }
    }

    /// Stores a snapshot (best effort: a failure only costs a longer replay later).
    async fn write_snapshot(&self, id: &str, state: &A, version: u64) {
        let state = match serde_json::to_value(state) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(aggregate = A::TYPE, id, %error, "cannot encode a snapshot");
                return;
            }
        };
        let snapshot = Snapshot {
            version,
            state_version: A::SNAPSHOT_VERSION,
            state,
        };
        let bytes = serde_json::to_vec(&snapshot).unwrap_or_default();
        let names = &self.log.inner.names;
        let key = Self::snapshot_key(id);
        // Only forward: a slower writer of an older snapshot must not replace a newer one.
        let older = match self.log.store().get(&names.snapshots, &key).await {
            Ok(Some(current)) => serde_json::from_slice::<Snapshot>(&current)
                .map_or(true, |current| current.version < version),
            Ok(None) => true,
            Err(_) => true,
        };
        if !older {
            return;
        }
        if let Err(error) = self
            .log
            .store()
            .put(&names.snapshots, &key, bytes, None)
            .await
        {
            tracing::warn!(aggregate = A::TYPE, id, %error, "cannot store a snapshot");
        }
    }
}
