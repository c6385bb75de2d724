//! [`EventLog`]: append-only streams with a global, gapless order, on any [`Store`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::error::EventStoreError;
use crate::pipeline::claim;
use crate::store::{Batch, IntoStore, Store, now_millis};

/// How many times an append retries after losing the race for the log's head to another append.
const HEAD_RETRIES: u32 = 10_000;
/// Records read per page.
pub(crate) const PAGE: usize = 512;

/// One recorded event, as stored: where it is (stream, version, global position) and what it is
/// (its event name and its JSON).
///
/// ```
/// # use event_bus::event_store::EventLog;
/// # use event_bus::store::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
/// let log = EventLog::new(std::sync::Arc::new(MemoryStore::new()));
/// let recorded = log.append_raw("account", "7", 0, "deposited", vec![serde_json::json!(5)]).await?;
/// assert_eq!(recorded[0].decode::<u32>()?, 5);
/// assert!(recorded[0].recorded_at() <= std::time::SystemTime::now());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The stream's category ([`Aggregate::TYPE`](super::Aggregate::TYPE)).
    pub stream_type: String,
    /// The stream's id within its category.
    pub stream_id: String,
    /// Its version in the stream: 1 for the first event.
    pub version: u64,
    /// Its position in the whole log: 1 for the first event; no gaps.
    pub position: u64,
    /// The event's name ([`Event::NAME`](crate::Event::NAME)).
    pub event: String,
    /// The event's schema version when it was appended ([`Event::VERSION`](crate::Event::VERSION)).
    #[serde(default = "first_version")]
    pub event_version: u32,
    /// The event as JSON.
    pub payload: serde_json::Value,
    /// When it was appended (ms since the Unix epoch).
    pub recorded_ms: i64,
}

fn first_version() -> u32 {
    1
}

impl RecordedEvent {
    /// The event as the current version of `E`: upcast (see [`Upcast`](super::Upcast)) from
    /// the version it was appended with, when that is older.
    ///
    /// # Errors
    ///
    /// [`EventStoreError::Corrupt`] if the payload is not an `E` (after upcasting), if an
    /// upcaster is missing, or if the event is newer than `E`.
    ///
    /// ```
    /// # use event_bus::event_store::EventLog;
    /// # use event_bus::prelude::*;
    /// # use event_bus::store::MemoryStore;
    /// #[event(name = "doc.decode.tick")]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick(u32);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(std::sync::Arc::new(MemoryStore::new()));
    /// let recorded = log.append_raw("t", "1", 0, Tick::NAME, vec![serde_json::json!(3)]).await?;
    /// assert_eq!(recorded[0].decode_event::<Tick>()?.0, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn decode_event<E: crate::Event + DeserializeOwned>(&self) -> Result<E, EventStoreError> {
        if self.event_version == E::VERSION {
            return self.decode();
        }
        let payload = super::upcast::to_version(
            &self.event,
            self.event_version,
            E::VERSION,
            self.payload.clone(),
        )
        .map_err(|reason| EventStoreError::Corrupt {
            key: format!("{}/{}/{}", self.stream_type, self.stream_id, self.version),
            reason,
        })?;
        E::deserialize(&payload).map_err(|error| EventStoreError::Corrupt {
            key: format!("{}/{}/{}", self.stream_type, self.stream_id, self.version),
            reason: error.to_string(),
        })
    }

    /// The event, decoded as it was stored (no upcasting).
    ///
    /// # Errors
    ///
    /// [`EventStoreError::Corrupt`] if the payload is not an `E`.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, EventStoreError> {
        E::deserialize(&self.payload).map_err(|error| EventStoreError::Corrupt {
            key: format!("{}/{}/{}", self.stream_type, self.stream_id, self.version),
            reason: error.to_string(),
        })
    }

    /// When it was appended.
    pub fn recorded_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.recorded_ms).unwrap_or(0))
    }

    fn encode(&self) -> Vec<u8> {
        // Strings, numbers and an already valid JSON value.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn parse(key: &str, bytes: &[u8]) -> Result<Self, EventStoreError> {
        serde_json::from_slice(bytes).map_err(|error| EventStoreError::Corrupt {
            key: key.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// The namespaces of one log.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) streams: String,
    pub(crate) log: String,
    pub(crate) head: String,
    pub(crate) tails: String,
    pub(crate) outbox: String,
    pub(crate) snapshots: String,
    pub(crate) projections: String,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) names: Names,
    /// Wakes this log's outbox publishers after an append.
    pub(crate) appended: Notify,
    /// The head after this process's last append (0: unknown): saves a read per append.
    pub(crate) head_hint: AtomicU64,
}

/// The event log: append-only **streams** (`{type}/{id}`, versions 1, 2, ...) and one **global
/// order** across them (positions 1, 2, ... with no gaps), on any [`Store`].
///
/// - An append names the version it expects the stream to be at: if another writer appended
///   first, it fails with [`EventStoreError::Conflict`] and writes nothing (optimistic
///   concurrency).
/// - Positions are taken in the same atomic batch as the events (by compare-and-swap on the log's
///   head), so a reader of the global order never sees a position before the events that hold
///   it, and never skips an event committed by a slower concurrent append.
/// - Each appended event also gets an **outbox** entry in that batch; an
///   [`Outbox`](super::Outbox) publishes it to the event type's registry and removes the entry:
///   a published event was always stored, and a stored event is always published (at least
///   once), even across a crash.
///
/// Records live in the namespaces `es-streams`, `es-tails`, `es-log`, `es-head`, `es-outbox`,
/// `es-snapshots` and `es-projections` (under a prefix with [`namespace`](EventLog::namespace)).
///
/// ```
/// use event_bus::event_store::EventLog;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
/// let log = EventLog::new(Arc::new(MemoryStore::new()));
/// let first = serde_json::json!({"Deposited": {"cents": 100}});
/// log.append_raw("account", "7", 0, "bank.account", vec![first]).await?;
/// assert_eq!(log.read_stream("account", "7", 0).await?.len(), 1);
/// assert_eq!(log.head().await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EventLog {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("names", &self.inner.names)
            .finish_non_exhaustive()
    }
}

/// A stream id as a key segment: `%` and `/` escaped, so that one stream's prefix never matches
/// another's.
fn segment(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

/// The key prefix of a stream's events.
pub(crate) fn stream_prefix(stream_type: &str, id: &str) -> String {
    format!("{}/{}/", segment(stream_type), segment(id))
}

fn version_key(prefix: &str, version: u64) -> String {
    format!("{prefix}{version:020}")
}

/// A position as a key: zero-padded, so that key order is position order.
pub(crate) fn position_key(position: u64) -> String {
    format!("{position:020}")
}

const HEAD: &str = "head";

impl EventLog {
    /// An event log in `store`.
    ///
    /// ```
    /// use event_bus::event_store::EventLog;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// # drop(log);
    /// ```
    pub fn new(store: impl IntoStore) -> Self {
        EventLog::with_prefix(store.into_store(), "")
    }

    fn with_prefix(store: Arc<dyn Store>, prefix: &str) -> Self {
        EventLog {
            inner: Arc::new(Inner {
                store,
                names: Names {
                    streams: format!("{prefix}es-streams"),
                    log: format!("{prefix}es-log"),
                    head: format!("{prefix}es-head"),
                    tails: format!("{prefix}es-tails"),
                    outbox: format!("{prefix}es-outbox"),
                    snapshots: format!("{prefix}es-snapshots"),
                    projections: format!("{prefix}es-projections"),
                },
                appended: Notify::new(),
                head_hint: AtomicU64::new(0),
            }),
        }
    }

    /// Keeps this log under namespaces prefixed with `prefix`: several logs in one store.
    ///
    /// ```
    /// use event_bus::event_store::EventLog;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let billing = EventLog::new(Arc::new(MemoryStore::new())).namespace("billing.");
    /// # drop(billing);
    /// ```
    pub fn namespace(self, prefix: &str) -> Self {
        EventLog::with_prefix(Arc::clone(&self.inner.store), prefix)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The position of the last event appended (0 for an empty log).
    ///
    /// # Errors
    ///
    /// A store error, or a head record this library did not write.
    ///
    /// ```
    /// # use event_bus::event_store::EventLog;
    /// # use event_bus::store::MemoryStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(std::sync::Arc::new(MemoryStore::new()));
    /// assert_eq!(log.head().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn head(&self) -> Result<u64, EventStoreError> {
        Ok(self.read_head().await?.0)
    }

    async fn read_head(&self) -> Result<(u64, Option<Vec<u8>>), EventStoreError> {
        let names = &self.inner.names;
        match self.store().get(&names.head, HEAD).await? {
            None => Ok((0, None)),
            Some(bytes) => {
                let position = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or_else(|| EventStoreError::Corrupt {
                        key: HEAD.to_owned(),
                        reason: "not a position".into(),
                    })?;
                Ok((position, Some(bytes)))
            }
        }
    }

    /// Appends `payloads` (JSON events named `event`, schema version 1) to the stream
    /// `{stream_type}/{id}`, which must be at version `expected` (0: a new stream). Returns the recorded events. The typed
    /// way is [`Repository`](super::Repository); this is the log's own operation.
    ///
    /// # Errors
    ///
    /// [`EventStoreError::Conflict`] if the stream is no longer at `expected` (nothing written);
    /// a store error.
    ///
    /// ```
    /// # use event_bus::event_store::{EventLog, EventStoreError};
    /// # use event_bus::store::MemoryStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EventStoreError> {
    /// let log = EventLog::new(std::sync::Arc::new(MemoryStore::new()));
    /// let one = || vec![serde_json::json!({"cents": 1})];
    /// log.append_raw("account", "7", 0, "deposited", one()).await?;
    /// let stale = log.append_raw("account", "7", 0, "deposited", one()).await;
    /// assert!(matches!(stale, Err(EventStoreError::Conflict { expected: 0, .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn append_raw(
        &self,
        stream_type: &str,
        id: &str,
        expected: u64,
        event: &str,
        payloads: Vec<serde_json::Value>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        self.append(stream_type, id, expected, (event, 1), payloads)
            .await
    }

    /// [`append_raw`](EventLog::append_raw) of events of schema version `event.1`.
    pub(crate) async fn append(
        &self,
        stream_type: &str,
        id: &str,
        expected: u64,
        (event, event_version): (&str, u32),
        payloads: Vec<serde_json::Value>,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let count = payloads.len() as u64;
        if expected.checked_add(count).is_none() {
            return Err(EventStoreError::Conflict {
                stream: format!("{stream_type}/{id}"),
                expected,
            });
        }
        let names = &self.inner.names;
        let prefix = stream_prefix(stream_type, id);
        let stream = || format!("{stream_type}/{id}");
        // The stream's tail record holds its version: the append expects `expected` there (or
        // no record for a new stream), which refuses both a stale writer and a gap.
        let tail = |batch: Batch| match expected {
            0 => batch.expect_absent(&names.tails, prefix.clone()),
            version => batch.expect(
                &names.tails,
                prefix.clone(),
                version.to_string().into_bytes(),
            ),
        };
        let mut pause = Duration::from_micros(100);
        // The head this process saw last: right in the common case, and checked by the batch.
        let mut head = self.inner.head_hint.load(Ordering::Relaxed);
        let mut fresh = false;
        for _ in 0..HEAD_RETRIES {
            if head == 0 && !fresh {
                head = self.read_head().await?.0;
                fresh = true;
            }
            let now = now_millis();
            let recorded: Vec<RecordedEvent> = payloads
                .iter()
                .enumerate()
                .map(|(offset, payload)| RecordedEvent {
                    stream_type: stream_type.to_owned(),
                    stream_id: id.to_owned(),
                    version: expected + 1 + offset as u64,
                    position: head + 1 + offset as u64,
                    event: event.to_owned(),
                    event_version,
                    payload: payload.clone(),
                    recorded_ms: now,
                })
                .collect();
            let mut batch = match head {
                0 => Batch::new().expect_absent(&names.head, HEAD),
                head => Batch::new().expect(&names.head, HEAD, head.to_string().into_bytes()),
            };
            batch = batch.put(
                &names.head,
                HEAD,
                (head + count).to_string().into_bytes(),
                None,
            );
            batch = tail(batch).put(
                &names.tails,
                prefix.clone(),
                (expected + count).to_string().into_bytes(),
                None,
            );
            for record in &recorded {
                let bytes = record.encode();
                let position = position_key(record.position);
                batch = batch
                    .put(
                        &names.streams,
                        version_key(&prefix, record.version),
                        bytes.clone(),
                        None,
                    )
                    .put(&names.log, position.clone(), bytes, None)
                    .put(&names.outbox, position, claim::free_record(b""), None);
            }
            match self.store().apply(batch).await {
                Ok(()) => {
                    self.inner.head_hint.store(head + count, Ordering::Relaxed);
                    self.inner.appended.notify_waiters();
                    return Ok(recorded);
                }
                Err(error) if error.is_conflict() => {
                    // The stream moved (a conflict), or only the head did (another append).
                    let found = self.store().get(&names.tails, &prefix).await?;
                    let at = found
                        .as_deref()
                        .and_then(|bytes| std::str::from_utf8(bytes).ok())
                        .and_then(|text| text.parse::<u64>().ok())
                        .unwrap_or(0);
                    if at != expected {
                        return Err(EventStoreError::Conflict {
                            stream: stream(),
                            expected,
                        });
                    }
                    if fresh {
                        // Lost a race for the head: back off a little.
                        tokio::time::sleep(pause.mul_f64(fastrand::f64() + 0.5)).await;
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                    head = self.read_head().await?.0;
                    fresh = true;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EventStoreError::Contended { stream: stream() })
    }

    /// The events of stream `{stream_type}/{id}` after version `after` (0: all), in order.
    ///
    /// # Errors
    ///
    /// A store error, or a record this library did not write.
    ///
    /// ```
    /// # use event_bus::event_store::EventLog;
    /// # use event_bus::store::MemoryStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(std::sync::Arc::new(MemoryStore::new()));
    /// let two = vec![serde_json::json!(1), serde_json::json!(2)];
    /// log.append_raw("account", "7", 0, "deposited", two).await?;
    /// let tail = log.read_stream("account", "7", 1).await?;
    /// assert_eq!((tail.len(), tail[0].version), (1, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_stream(
        &self,
        stream_type: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let prefix = stream_prefix(stream_type, id);
        let mut from = if after == 0 {
            String::new()
        } else {
            version_key(&prefix, after)
        };
        let mut events = Vec::new();
        loop {
            let page = self
                .store()
                .scan_after(&self.inner.names.streams, &prefix, &from, PAGE)
                .await?;
            let full = page.len() == PAGE;
            for (key, bytes) in page {
                events.push(RecordedEvent::parse(&key, &bytes)?);
                from = key;
            }
            if !full {
                return Ok(events);
            }
        }
    }

    /// Up to `limit` events of the whole log after position `after` (0: from the first), in
    /// order: the feed of projections.
    ///
    /// # Errors
    ///
    /// A store error, or a record this library did not write.
    ///
    /// ```
    /// use event_bus::event_store::EventLog;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::event_store::EventStoreError> {
    /// let log = EventLog::new(Arc::new(MemoryStore::new()));
    /// log.append_raw("a", "1", 0, "e", vec![serde_json::json!(1)]).await?;
    /// log.append_raw("b", "1", 0, "e", vec![serde_json::json!(2)]).await?;
    /// let all = log.read_all(0, 10).await?;
    /// assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(log.read_all(1, 10).await?[0].stream_type, "b");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, EventStoreError> {
        let from = if after == 0 {
            String::new()
        } else {
            position_key(after)
        };
        let page = self
            .store()
            .scan_after(&self.inner.names.log, "", &from, limit)
            .await?;
        page.into_iter()
            .map(|(key, bytes)| RecordedEvent::parse(&key, &bytes))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_cannot_reach_into_other_streams() {
        assert_eq!(stream_prefix("account", "a/b"), "account/a%2Fb/");
        assert_ne!(
            stream_prefix("account", "a%2Fb"),
            stream_prefix("account", "a/b")
        );
        assert!(!stream_prefix("account", "a/b").starts_with(&stream_prefix("account", "a")));
    }

    #[test]
    fn keys_sort_by_number() {
        assert!(position_key(9) < position_key(10));
        assert!(version_key("s/", 99) < version_key("s/", 100));
    }
}
