//! [`Join`]: wait for related messages (same key, different sources) and emit one combined message.

mod condition;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use condition::Condition;

use super::claim::{self, Acquired, Holder, Site};
use super::dead_letter::{
    DeadLetters, JOIN_EXPIRED, JOIN_UNIT, clear_failed_unit, note_failed_unit,
};
use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;
use super::quarantine::quarantine;
use crate::store::{Batch, IntoStore, Store, now_millis};

/// The source of joined messages unless [`Join::output_source`] sets another.
///
/// ```
/// assert_eq!(event_bus::pipeline::COMPOSED_SOURCE, "composed-event");
/// ```
pub const COMPOSED_SOURCE: &str = "composed-event";

/// Metadata of a joined message: its sources, comma-separated.
const JOINED_SOURCES: &str = "joined-sources";

/// A stored part: the message and when it arrived.
#[derive(Serialize, Deserialize)]
struct Part {
    arrived_ms: i64,
    message: Message,
}

/// Joins messages that share a key: each arriving message is stored as a part; when the parts of
/// a key satisfy the [`Condition`], **exactly one** joined message goes on, even when parts arrive
/// concurrently, out of order, or in several processes sharing the store.
///
/// The joined message has the key, source [`COMPOSED_SOURCE`] (or
/// [`output_source`](Join::output_source)), the metadata `joined-sources` (the sources,
/// comma-separated) and as content a JSON object with one entry per source: a part whose content
/// is a JSON object is embedded as an object, any other content as a string.
///
/// Every message reaching the join is a part (put a [`Filter`](super::Filter) in front to keep
/// other messages out); per key, the first part of each source is kept and later copies count as
/// duplicates.
///
/// The part that completes a key **claims** it (see [the claim model](super#claims-leases-and-fencing))
/// and runs the rest of the chain. A part that also finds its key complete but claimed by another
/// holder (a duplicate, a redelivery, a concurrent copy) waits for that holder, up to a little
/// more than one [`lease`](Join::lease): if the holder joins, the part returns `Ok`; if it fails,
/// or its process died and its lease ran out, the part takes the key and joins it; past the wait
/// it fails with [`PipelineError::InFlight`] (retryable). So a complete key never depends on a
/// holder that is gone, even without a [`sweep`](Join::sweep). After
/// the rest of the chain succeeds, the key's parts are deleted and the key is remembered as joined
/// in one atomic, fenced batch, so a part arriving again (a duplicate, a redelivery) does not
/// re-emit the join. If the rest of the chain fails (or the join is cancelled), the claim is
/// released and the parts kept, so a retry or redelivery joins again; under a
/// [`DeadLetters`] the failed join is parked as one letter holding the joined message, which
/// [`DeadLetters::replay`] hands back to this join to run below it.
///
/// [`pending`](Join::pending) lists incomplete joins; with [`expire_after`](Join::expire_after),
/// [`sweep`](Join::sweep) removes those incomplete for too long, reporting which sources were
/// missing, optionally as dead letters. It never touches a key being joined or a complete join.
///
/// ```
/// use event_bus::pipeline::{Condition, Join, Message, Next, Pipeline, from_fn};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let store = Arc::new(MemoryStore::new());
/// let pipeline = Pipeline::builder()
///     .then(Join::new(Condition::all_of(["payment", "inventory"]), store))
///     .then(from_fn(|joined: Message, _: Next| async move {
///         let content: serde_json::Value = serde_json::from_slice(joined.content()).unwrap();
///         assert_eq!(content["payment"]["cents"], 100);
///         assert_eq!(content["inventory"], "reserved");
///         Ok(())
///     }))
///     .build();
/// pipeline.process(Message::new("inventory", "order-1", b"reserved".to_vec())).await?;
/// pipeline.process(Message::new("payment", "order-1", br#"{"cents":100}"#.to_vec())).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Join {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    condition: Condition,
    store: Arc<dyn Store>,
    namespace: String,
    parts: String,
    /// Claims on keys being joined, and the "joined" markers.
    joined: Site,
    output_source: String,
    expire_after: Option<Duration>,
    remember_joined: Option<Duration>,
    dead_letters: Option<DeadLetters>,
    /// Sources expected besides those the condition names (the optional parts of a typed join).
    also_expected: BTreeSet<String>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    parts: AtomicU64,
    duplicates: AtomicU64,
    late: AtomicU64,
    joined: AtomicU64,
}

/// What a [`Join`] has seen since it was created; from [`Join::stats`].
///
/// ```
/// use event_bus::pipeline::{Condition, Join};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// let stats = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new())).stats();
/// assert_eq!(stats, Default::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Parts stored (first arrival of a source for a key).
    pub parts: u64,
    /// Parts that arrived again while their key was still waiting (the first one is kept).
    pub duplicates: u64,
    /// Parts that arrived after their key had joined (dropped).
    pub late: u64,
    /// Joined messages that went on and succeeded.
    pub joined: u64,
}

impl fmt::Debug for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("condition", &self.inner.condition)
            .field("namespace", &self.inner.namespace)
            .field("output_source", &self.inner.output_source)
            .field("expire_after", &self.inner.expire_after)
            .field("lease", &self.inner.joined.lease)
            .finish_non_exhaustive()
    }
}

/// A join still waiting for parts; from [`Join::pending`].
///
/// ```
/// use event_bus::pipeline::{Condition, Handler, Join, Message, Next};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let join = Join::new(Condition::all_of(["order", "payment"]), Arc::new(MemoryStore::new()));
/// join.handle(Message::new("order", "7", Vec::new()), Next::end()).await?;
/// let pending = join.pending().await?;
/// assert_eq!((pending[0].key.as_str(), pending[0].missing.clone()), ("7", vec!["payment".to_owned()]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJoin {
    /// The join key.
    pub key: String,
    /// The sources that arrived.
    pub present: Vec<String>,
    /// The sources the condition still needs (empty for a complete join whose rest of the chain
    /// failed or is running: see `in_flight`).
    pub missing: Vec<String>,
    /// When its first part arrived.
    pub since: SystemTime,
    /// Whether a holder is joining it right now.
    pub in_flight: bool,
}

/// A join that did not complete in time; from [`Join::sweep`].
///
/// ```
/// use event_bus::pipeline::{Condition, Handler, Join, Message, Next};
/// use event_bus::store::MemoryStore;
/// use std::{sync::Arc, time::Duration};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()))
///     .expire_after(Duration::ZERO);
/// join.handle(Message::new("a", "k", b"{}".to_vec()), Next::end()).await?;
/// let expired = join.sweep().await?.expired.remove(0);
/// assert_eq!((expired.present, expired.missing), (vec!["a".to_owned()], vec!["b".to_owned()]));
/// assert_eq!(expired.parts[0].content(), b"{}");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredJoin {
    /// The join key.
    pub key: String,
    /// The sources that did arrive.
    pub present: Vec<String>,
    /// The sources the condition still needed.
    pub missing: Vec<String>,
    /// The parts that arrived (now removed from the store).
    pub parts: Vec<Message>,
}

/// What [`Join::sweep`] did.
///
/// ```
/// let nothing = event_bus::pipeline::Swept::default();
/// assert!(nothing.expired.is_empty() && nothing.in_flight == 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// The joins expired (removed, and parked as dead letters if so configured).
    pub expired: Vec<ExpiredJoin>,
    /// Keys left alone because a holder is joining them right now.
    pub in_flight: usize,
    /// Keys left alone because their parts are complete: their join failed (see the dead
    /// letters) or waits for a redelivery; they are never expired.
    pub complete: usize,
    /// Stray parts removed for keys that had already joined.
    pub strays: usize,
    /// Unreadable parts moved to the [`Quarantine`](super::Quarantine).
    pub quarantined: usize,
}

impl Join {
    /// A join on `condition`, keeping its records in `store` under the namespace `join`.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()));
    /// # drop(join);
    /// ```
    pub fn new(condition: Condition, store: impl IntoStore) -> Self {
        let store = store.into_store();
        let mut join = Join {
            inner: Arc::new(Inner {
                condition,
                joined: Site {
                    store: Arc::clone(&store),
                    namespace: "".into(),
                    lease: claim::DEFAULT_LEASE,
                },
                store,
                namespace: String::new(),
                parts: String::new(),
                output_source: COMPOSED_SOURCE.to_owned(),
                expire_after: None,
                remember_joined: None,
                dead_letters: None,
                also_expected: BTreeSet::new(),
                counters: Arc::default(),
            }),
        };
        join.set_namespace("join".to_owned());
        join
    }

    /// Also expects parts from `sources` (which the condition does not name): for optional parts.
    pub(crate) fn expecting(mut self, sources: Vec<&'static str>) -> Self {
        let inner = self.inner_mut();
        inner
            .also_expected
            .extend(sources.into_iter().map(str::to_owned));
        self
    }

    /// Settings are changed before the join is shared; on a shared one, copy-on-write.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    fn set_namespace(&mut self, namespace: String) {
        let inner = self.inner_mut();
        inner.parts = format!("{namespace}:parts");
        inner.joined.namespace = format!("{namespace}:joined").into();
        inner.namespace = namespace;
    }

    /// Keeps this join's records under `namespace` (default `join`): give each join of a store
    /// its own.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let join = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new())).namespace("orders");
    /// # drop(join);
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.set_namespace(namespace.into());
        self
    }

    /// The source of joined messages (default [`COMPOSED_SOURCE`]).
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let join = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new())).output_source("order.ready");
    /// # drop(join);
    /// ```
    pub fn output_source(mut self, source: impl Into<String>) -> Self {
        self.inner_mut().output_source = source.into();
        self
    }

    /// The lease of the claim on a key being joined (default 30 s, renewed while the rest of the
    /// chain runs): how long other processes wait before taking over a join whose holder died.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let join = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new()))
    ///     .lease(Duration::from_secs(5));
    /// # drop(join);
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.inner_mut().joined.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// Incomplete joins older than `after` (from their first part) are removed and reported by
    /// [`sweep`](Join::sweep).
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()))
    ///     .expire_after(Duration::from_secs(300));
    /// # drop(join);
    /// ```
    pub fn expire_after(mut self, after: Duration) -> Self {
        self.inner_mut().expire_after = Some(after);
        self
    }

    /// How long a key is remembered as joined (default: forever). While remembered, parts for it
    /// are dropped instead of starting a new join.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let join = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new()))
    ///     .remember_joined_for(Duration::from_secs(86_400));
    /// # drop(join);
    /// ```
    pub fn remember_joined_for(mut self, ttl: Duration) -> Self {
        self.inner_mut().remember_joined = Some(ttl);
        self
    }

    /// Also parks each expired join as one dead letter (with [`PipelineError::JoinExpired`]),
    /// written in the same atomic batch that removes its parts. Replaying it puts its parts back
    /// into the join, so a part that arrived since completes it.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, DeadLetters, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let join = Join::new(Condition::all_of(["a", "b"]), store.clone())
    ///     .dead_letter_expired(DeadLetters::new(store));
    /// # drop(join);
    /// ```
    pub fn dead_letter_expired(mut self, dead_letters: DeadLetters) -> Self {
        self.inner_mut().dead_letters = Some(dead_letters);
        self
    }

    /// Counts of parts, duplicates, late parts and joins since this join was created.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Handler, Join, Message, Next};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()));
    /// for source in ["a", "a", "b", "b"] {
    ///     join.handle(Message::new(source, "k", Vec::new()), Next::end()).await?;
    /// }
    /// let stats = join.stats();
    /// assert_eq!((stats.parts, stats.duplicates, stats.joined, stats.late), (2, 1, 1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> JoinStats {
        let counters = &self.inner.counters;
        JoinStats {
            parts: counters.parts.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            late: counters.late.load(Ordering::Relaxed),
            joined: counters.joined.load(Ordering::Relaxed),
        }
    }

    /// The joins waiting for parts (or whose rest of the chain failed), by key, without changing
    /// anything but quarantining unreadable parts.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let join = Join::new(Condition::all_of(["a"]), Arc::new(MemoryStore::new()));
    /// assert!(join.pending().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pending(&self) -> Result<Vec<PendingJoin>, PipelineError> {
        let inner = &self.inner;
        let (groups, _) = inner.load_parts("").await?;
        let mut pending = Vec::new();
        for (key, parts) in groups {
            let marker = inner.store.get(&inner.joined.namespace, &key).await?;
            if marker.as_deref() == Some(JOINED) {
                continue; // stray parts of a completed join
            }
            let present = sources(&parts);
            let oldest = parts.iter().map(|(_, p)| p.arrived_ms).min().unwrap_or(0);
            pending.push(PendingJoin {
                missing: inner.condition.missing(&present),
                present: present.into_iter().collect(),
                since: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(oldest).unwrap_or(0)),
                in_flight: marker.as_deref().is_some_and(claim::is_claim),
                key,
            });
        }
        crate::metrics::depth("event_bus_joins_pending", &inner.namespace, pending.len());
        Ok(pending)
    }

    /// Removes and returns the joins that stayed incomplete longer than
    /// [`expire_after`](Join::expire_after) (none without it), parking each as one dead letter if
    /// so configured, in the same atomic batch. Leaves alone keys being joined and complete joins;
    /// removes stray parts of keys that already joined. Call it periodically.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Handler, Join, Message, Next};
    /// use event_bus::store::MemoryStore;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let join = Join::new(Condition::all_of(["order", "payment"]), Arc::new(MemoryStore::new()))
    ///     .expire_after(Duration::ZERO);
    /// join.handle(Message::new("order", "7", Vec::new()), Next::end()).await?;
    /// let swept = join.sweep().await?;
    /// assert_eq!(swept.expired[0].key, "7");
    /// assert_eq!(swept.expired[0].missing, ["payment"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sweep(&self) -> Result<Swept, PipelineError> {
        let inner = &self.inner;
        let (groups, quarantined) = inner.load_parts("").await?;
        let mut swept = Swept {
            quarantined,
            ..Swept::default()
        };
        let now = now_millis();
        let (keys, mut settled_keys) = (groups.len(), 0);
        for (key, parts) in groups {
            let marker = inner.store.get(&inner.joined.namespace, &key).await?;
            let guard = match &marker {
                Some(marker) => {
                    Batch::new().expect(&*inner.joined.namespace, key.clone(), marker.clone())
                }
                None => Batch::new().expect_absent(&*inner.joined.namespace, key.clone()),
            };
            let mut delete_parts = guard;
            for (record_key, _) in &parts {
                delete_parts = delete_parts.delete(inner.parts.clone(), record_key.clone());
            }
            if marker.as_deref() == Some(JOINED) {
                settled_keys += 1;
                swept.strays += parts.len();
                apply_unless_conflict(inner.store.as_ref(), delete_parts).await?;
                continue;
            }
            if marker.as_deref().is_some_and(claim::is_claim) {
                swept.in_flight += 1;
                continue;
            }
            let present = sources(&parts);
            if inner.condition.matches(&present) {
                swept.complete += 1;
                continue;
            }
            let oldest = parts.iter().map(|(_, p)| p.arrived_ms).min().unwrap_or(now);
            let too_old = inner.expire_after.is_some_and(|after| {
                let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                now.saturating_sub(oldest) >= after
            });
            if !too_old {
                continue;
            }
            let missing = inner.condition.missing(&present);
            let parts: Vec<Part> = parts.into_iter().map(|(_, part)| part).collect();
            // A part of a missing source arriving meanwhile makes this a live join again.
            let mut batch = delete_parts;
            for source in &missing {
                batch = batch.expect_absent(inner.parts.clone(), part_key(&key, source));
            }
            if let Some(dead_letters) = &inner.dead_letters {
                batch = batch.extend(
                    inner
                        .expired_letter(dead_letters, &key, &parts, &missing)
                        .await?,
                );
            }
            if !apply_unless_conflict(inner.store.as_ref(), batch).await? {
                swept.in_flight += 1; // a part arrived in the meantime
                continue;
            }
            let error = PipelineError::JoinExpired {
                key: key.clone(),
                missing: missing.clone(),
            };
            crate::reporting::report(
                crate::reporting::Origin::JoinExpired,
                &inner.output_source,
                &key,
                &error,
                None,
            );
            swept.expired.push(ExpiredJoin {
                key,
                present: present.into_iter().collect(),
                missing,
                parts: parts.into_iter().map(|part| part.message).collect(),
            });
        }
        let pending = keys.saturating_sub(settled_keys + swept.expired.len());
        crate::metrics::depth("event_bus_joins_pending", &inner.namespace, pending);
        Ok(swept)
    }
}

/// Applies `batch`; `false` if one of its preconditions failed.
async fn apply_unless_conflict(store: &dyn Store, batch: Batch) -> Result<bool, PipelineError> {
    match store.apply(batch).await {
        Ok(()) => Ok(true),
        Err(error) if error.is_conflict() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

fn sources(parts: &[(String, Part)]) -> BTreeSet<String> {
    parts
        .iter()
        .map(|(_, part)| part.message.source().to_owned())
        .collect()
}

/// `{byte length of key}:{key}/` — a prefix no other key's parts share.
fn part_prefix(key: &str) -> String {
    format!("{}:{key}/", key.len())
}

fn part_key(key: &str, source: &str) -> String {
    format!("{}{source}", part_prefix(key))
}

/// The (key, source) of a part's record key.
fn split_part_key(record_key: &str) -> Option<(&str, &str)> {
    let (length, rest) = record_key.split_once(':')?;
    let length: usize = length.parse().ok()?;
    let key = rest.get(..length)?;
    let source = rest.get(length..)?.strip_prefix('/')?;
    Some((key, source))
}

fn decode_part(bytes: &[u8]) -> Result<Part, PipelineError> {
    postcard::from_bytes(bytes)
        .map_err(|error| PipelineError::Corrupt(format!("join part: {error}")))
}

/// `{source: content}`, objects embedded, everything else as a string.
fn compose<'a>(parts: impl Iterator<Item = &'a Message>) -> Result<Vec<u8>, PipelineError> {
    let mut object = serde_json::Map::new();
    for message in parts {
        let content = message.content();
        let value = match serde_json::from_slice::<serde_json::Value>(content) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            _ => serde_json::Value::String(String::from_utf8_lossy(content).into_owned()),
        };
        object.insert(message.source().to_owned(), value);
    }
    serde_json::to_vec(&object)
        .map_err(|error| PipelineError::Corrupt(format!("joined content: {error}")))
}

/// The parts a joined message was composed of, back from its content (for replaying an expired
/// join): objects as JSON, strings as their bytes.
fn decompose(joined: &Message) -> Result<Vec<Message>, PipelineError> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(joined.content()).map_err(|error| PipelineError::Decode {
            source_name: joined.source().to_owned(),
            error,
        })?;
    let mut parts = Vec::with_capacity(object.len());
    for (source, value) in object {
        let content = match value {
            serde_json::Value::String(text) => text.into_bytes(),
            other => serde_json::to_vec(&other).map_err(|error| PipelineError::Encode {
                source_name: source.clone(),
                error,
            })?,
        };
        parts.push(Message::new(source, joined.key(), content));
    }
    Ok(parts)
}

const JOINED: &[u8] = b"joined";
/// Metadata of an expired join's letter: its parts, exactly (postcard, hex).
const JOIN_PARTS: &str = "event-bus.join-parts";

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The parts an expired join's letter carries: exactly, from its metadata; or, for a letter
/// without it, rebuilt from the composed content.
fn parts_of_expired(unit: &Message) -> Result<Vec<Message>, PipelineError> {
    match unit.metadata().get(JOIN_PARTS) {
        Some(hex) => from_hex(hex)
            .and_then(|bytes| postcard::from_bytes::<Vec<Message>>(&bytes).ok())
            .ok_or_else(|| PipelineError::Corrupt("the parts of an expired join".to_owned())),
        None => decompose(unit),
    }
}

/// The sources of a joined message: the keys of its composed content (exact, whatever the
/// source names contain), else its `joined-sources` metadata.
fn sources_of_joined(joined: &Message) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(joined.content()) {
        Ok(object) => object.into_iter().map(|(source, _)| source).collect(),
        Err(_) => joined
            .metadata()
            .get(JOINED_SOURCES)
            .map(|sources| sources.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

impl Inner {
    /// The stored parts under `prefix`, grouped by key (record key, part); unreadable parts are
    /// quarantined and counted.
    async fn load_parts(
        &self,
        prefix: &str,
    ) -> Result<(BTreeMap<String, Vec<(String, Part)>>, usize), PipelineError> {
        let mut groups: BTreeMap<String, Vec<(String, Part)>> = BTreeMap::new();
        let mut quarantined = 0;
        for (record_key, bytes) in self.store.scan(&self.parts, prefix).await? {
            let decoded = decode_part(&bytes).and_then(|part| {
                split_part_key(&record_key)
                    .map(|(key, _)| (key.to_owned(), part))
                    .ok_or_else(|| PipelineError::Corrupt(format!("join part key {record_key}")))
            });
            match decoded {
                Ok((key, part)) => groups.entry(key).or_default().push((record_key, part)),
                Err(error) => {
                    let store = self.store.as_ref();
                    if quarantine(store, &self.parts, &record_key, bytes, &error).await? {
                        quarantined += 1;
                    }
                }
            }
        }
        Ok((groups, quarantined))
    }

    /// The write parking an expired join as one letter: its parts exactly, merged with those of
    /// an earlier expiry of the same key still parked (so that none is lost), and fenced on that
    /// earlier letter.
    async fn expired_letter(
        &self,
        dead_letters: &DeadLetters,
        key: &str,
        parts: &[Part],
        missing: &[String],
    ) -> Result<Batch, PipelineError> {
        let mut messages: Vec<Message> = parts.iter().map(|part| part.message.clone()).collect();
        let probe = Message::new("", key, Vec::new())
            .with_metadata(JOIN_UNIT, self.namespace.clone())
            .with_metadata(JOIN_EXPIRED, "true");
        let id = super::dead_letter::letter_id(&probe);
        let mut fence = Batch::new();
        match dead_letters.read(&id).await {
            Ok(Some((earlier, bytes))) => {
                for part in parts_of_expired(&earlier.message)? {
                    if !messages.iter().any(|m| m.source() == part.source()) {
                        messages.push(part);
                    }
                }
                fence = fence.expect(dead_letters.namespace_name(), id, bytes);
            }
            Ok(None) => fence = fence.expect_absent(dead_letters.namespace_name(), id),
            // Unreadable: `read` moved it to the quarantine, so the key is free now.
            Err(PipelineError::Corrupt(_)) => {
                fence = fence.expect_absent(dead_letters.namespace_name(), id);
            }
            Err(error) => return Err(error),
        }
        let merged: Vec<Part> = messages
            .iter()
            .map(|message| Part {
                arrived_ms: 0,
                message: message.clone(),
            })
            .collect();
        let encoded = postcard::to_stdvec(&messages)
            .map_err(|error| PipelineError::Corrupt(format!("join parts: {error}")))?;
        let unit = self
            .joined_message(key, &merged)?
            .with_metadata(JOIN_UNIT, self.namespace.clone())
            .with_metadata(JOIN_EXPIRED, "true")
            .with_metadata(JOIN_PARTS, to_hex(&encoded));
        let present: BTreeSet<String> = messages.iter().map(|m| m.source().to_owned()).collect();
        let error = PipelineError::JoinExpired {
            key: key.to_owned(),
            missing: if merged.len() == parts.len() {
                missing.to_vec()
            } else {
                self.condition.missing(&present)
            },
        };
        let (_, letter) = dead_letters.letter(unit, &error)?;
        Ok(fence.extend(letter))
    }

    fn joined_message(&self, key: &str, parts: &[Part]) -> Result<Message, PipelineError> {
        let sources: BTreeSet<&str> = parts.iter().map(|part| part.message.source()).collect();
        Ok(Message::new(
            self.output_source.clone(),
            key,
            compose(parts.iter().map(|part| &part.message))?,
        )
        .with_metadata(
            JOINED_SOURCES,
            sources.into_iter().collect::<Vec<_>>().join(","),
        ))
    }

    /// A part arrives: store it, and if it completes its key, claim the key and emit the join.
    async fn part(&self, message: Message, next: Next) -> Result<(), PipelineError> {
        clear_failed_unit();
        let key = message.key().to_owned();
        let store = &self.store;
        if store.get(&self.joined.namespace, &key).await?.as_deref() == Some(JOINED) {
            return self.late(&key);
        }
        let source = message.source().to_owned();
        let part = Part {
            arrived_ms: now_millis(),
            message,
        };
        let encoded = postcard::to_stdvec(&part)
            .map_err(|error| PipelineError::Corrupt(format!("join part: {error}")))?;
        // The first part of a source wins; a duplicate still checks the join below, so that
        // redelivering a part retries a join whose earlier attempt failed.
        let stored = store
            .insert_if_absent(&self.parts, &part_key(&key, &source), encoded, None)
            .await?;
        if stored {
            self.counters.parts.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(join = %self.namespace, key, source, "duplicate part");
        }

        // Every part is written before the scan, so the last part's scan sees them all.
        let (mut groups, quarantined) = self.load_parts(&part_prefix(&key)).await?;
        let mut parts = groups.remove(&key).unwrap_or_default();
        if quarantined > 0 && !parts.iter().any(|(_, p)| p.message.source() == source) {
            // This source's record was unreadable (now quarantined): store this part instead.
            let record_key = part_key(&key, &source);
            let encoded = postcard::to_stdvec(&part)
                .map_err(|error| PipelineError::Corrupt(format!("join part: {error}")))?;
            if store
                .insert_if_absent(&self.parts, &record_key, encoded, None)
                .await?
            {
                parts.push((record_key, part));
            }
        }
        if !self.condition.matches(&sources(&parts)) {
            return Ok(()); // wait for more parts
        }
        // Exactly one of the parts that see a complete set wins the claim.
        self.claim_and_emit(key, source, stored, parts, next).await
    }

    /// Claims a key whose parts are complete and emits its join. A part that finds the key held
    /// by another holder waits for it (up to one lease), because that holder may never finish: its
    /// process may be killed, and then the part that brought it the key is redelivered only to
    /// find the dead claim still live. If the holder commits, this part is a stray; if it fails
    /// or its lease runs out, this part takes the key and joins it. Past the wait it fails with
    /// [`PipelineError::InFlight`] (retryable): acknowledging it would leave the key to a holder
    /// that may be gone.
    async fn claim_and_emit(
        &self,
        key: String,
        source: String,
        stored: bool,
        mut parts: Vec<(String, Part)>,
        next: Next,
    ) -> Result<(), PipelineError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        let mut waited = false;
        loop {
            match self.joined.acquire(&key).await? {
                Acquired::Held(holder) => {
                    if waited {
                        // The holder we waited for failed or died: its parts are still stored,
                        // and others may have arrived meanwhile.
                        let (mut groups, _) = self.load_parts(&part_prefix(&key)).await?;
                        parts = groups.remove(&key).unwrap_or_default();
                        if !self.condition.matches(&sources(&parts)) {
                            holder.release().await;
                            return Ok(()); // swept or expired meanwhile: nothing to join
                        }
                    }
                    let (record_keys, parts): (Vec<String>, Vec<Part>) = parts.into_iter().unzip();
                    let joined = self.joined_message(&key, &parts)?;
                    return self.emit(holder, joined, record_keys, next).await;
                }
                Acquired::Busy => {
                    // A little past one lease, so that a dead holder's claim has surely run out.
                    if started.elapsed() >= self.joined.lease + self.joined.lease / 4 {
                        return Err(PipelineError::InFlight { key });
                    }
                    waited = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Acquired::Settled(marker) if marker == JOINED => {
                    // Joined while this part was being stored: it is a stray, not a new join.
                    if stored {
                        self.store
                            .delete(&self.parts, &part_key(&key, &source))
                            .await?;
                    }
                    return self.late(&key);
                }
                Acquired::Settled(_) => {
                    return Err(PipelineError::Corrupt(format!(
                        "join marker of key `{key}` in `{}`",
                        self.joined.namespace
                    )));
                }
            }
        }
    }

    /// Counts a part arriving after its key joined (it is dropped).
    fn late(&self, key: &str) -> Result<(), PipelineError> {
        self.counters.late.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(join = %self.namespace, key, "late part of a key that already joined");
        Ok(())
    }

    /// Runs the rest of the chain on `joined` while holding the key; on success deletes the parts
    /// and marks the key joined (fenced); on failure notes the join as the failed unit and
    /// releases the key.
    async fn emit(
        &self,
        holder: Holder,
        joined: Message,
        record_keys: Vec<String>,
        next: Next,
    ) -> Result<(), PipelineError> {
        let key = holder.key().to_owned();
        match holder.hold(|| next.run(joined.clone())).await {
            Ok(()) => {
                let mut batch = holder.fence().put(
                    &*self.joined.namespace,
                    key.clone(),
                    JOINED.to_vec(),
                    self.remember_joined,
                );
                for record_key in record_keys {
                    batch = batch.delete(self.parts.clone(), record_key);
                }
                holder.commit(batch).await?;
                self.counters.joined.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(join = %self.namespace, key, "joined");
                Ok(())
            }
            Err(error) => {
                note_failed_unit(|| joined.with_metadata(JOIN_UNIT, self.namespace.clone()));
                holder.release().await;
                Err(error)
            }
        }
    }

    /// A joined message of this join comes back (a replayed dead letter): run the rest of the
    /// chain on it again, or, for an expired join, put its parts back.
    async fn unit(&self, mut message: Message, next: Next) -> Result<(), PipelineError> {
        message.metadata_mut().remove(JOIN_UNIT);
        if message.metadata_mut().remove(JOIN_EXPIRED).is_some() {
            for part in parts_of_expired(&message)? {
                self.part(part, next.clone()).await?;
            }
            return Ok(());
        }
        clear_failed_unit();
        let key = message.key().to_owned();
        match self.joined.acquire(&key).await? {
            Acquired::Held(holder) => {
                let record_keys = sources_of_joined(&message)
                    .iter()
                    .map(|source| part_key(&key, source))
                    .collect();
                self.emit(holder, message, record_keys, next).await
            }
            Acquired::Busy => Err(PipelineError::InFlight { key }),
            Acquired::Settled(marker) if marker == JOINED => self.late(&key),
            Acquired::Settled(_) => Err(PipelineError::Corrupt(format!(
                "join marker of key `{key}` in `{}`",
                self.joined.namespace
            ))),
        }
    }
}

impl Handler for Join {
    fn route(&self, source: &str) -> Route {
        if self.inner.condition.names(source) || self.inner.also_expected.contains(source) {
            Route::Expected
        } else {
            Route::Unexpected(format!("the join waits for {}", self.inner.condition))
        }
    }

    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            match message.metadata().get(JOIN_UNIT) {
                None => inner.part(message, next).await,
                Some(join) if *join == inner.namespace => inner.unit(message, next).await,
                // A replayed join of another Join: it continues below that one.
                Some(_) => next.run(message).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_round_trip_and_never_collide_across_keys() {
        for (key, source) in [("7", "payment"), ("a/b:c", "x/y"), ("", "s"), ("é", "ü")] {
            assert_eq!(split_part_key(&part_key(key, source)), Some((key, source)));
        }
        // "1/" and "1" with source "/x" would collide without the length prefix.
        assert!(!part_key("1/", "x").starts_with(&part_prefix("1")));
        assert!(!part_key("12", "x").starts_with(&part_prefix("1")));
    }

    #[test]
    fn composed_content_embeds_objects_and_stringifies_the_rest() {
        let messages = [
            Message::new("object", "k", br#"{"a":1}"#.to_vec()),
            Message::new("array", "k", b"[1,2]".to_vec()),
            Message::new("text", "k", b"plain".to_vec()),
            Message::new("empty", "k", Vec::new()),
        ];
        let bytes = compose(messages.iter()).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(value["object"]["a"], 1);
        assert_eq!(value["array"], "[1,2]");
        assert_eq!(value["text"], "plain");
        assert_eq!(value["empty"], "");

        let joined = Message::new("composed-event", "k", bytes);
        let parts = decompose(&joined).unwrap_or_default();
        let by_source: BTreeMap<&str, &[u8]> = parts
            .iter()
            .map(|part| (part.source(), part.content()))
            .collect();
        assert_eq!(by_source["object"], br#"{"a":1}"#);
        assert_eq!(by_source["array"], b"[1,2]");
        assert_eq!(by_source["text"], b"plain");
        assert_eq!(by_source["empty"], b"");
    }

    /// Two parts completing key `k` while a holder in another process (a foreign claim, as a
    /// killed process leaves behind) holds it; returns how often the joined handler ran and what
    /// the completing part returned.
    async fn complete_while_held_elsewhere(
        settle: impl FnOnce(Arc<dyn Store>, Arc<str>) -> tokio::task::JoinHandle<()>,
    ) -> (u64, Result<(), PipelineError>, Arc<dyn Store>) {
        use crate::pipeline::{Pipeline, handler::from_fn};
        use crate::store::MemoryStore;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let join = Join::new(Condition::all_of(["a", "b"]), Arc::clone(&store))
            .lease(Duration::from_millis(150));
        let namespace = Arc::clone(&join.inner.joined.namespace);
        let runs = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&runs);
        let pipeline = Pipeline::builder()
            .then(join)
            .then(from_fn(move |_message: Message, _next| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            }))
            .build();
        let foreign = b"claim/another-run/7".to_vec();
        let put = store
            .put(&namespace, "k", foreign, Some(Duration::from_millis(150)))
            .await;
        assert!(put.is_ok());
        let settling = settle(Arc::clone(&store), namespace);
        let first = pipeline
            .process(Message::new("a", "k", b"1".to_vec()))
            .await;
        assert!(first.is_ok(), "{first:?}");
        let completing = pipeline
            .process(Message::new("b", "k", b"2".to_vec()))
            .await;
        assert!(settling.await.is_ok());
        (runs.load(Ordering::SeqCst), completing, store)
    }

    #[tokio::test]
    async fn a_complete_key_held_by_a_dead_holder_is_joined_once_its_lease_runs_out() {
        // The holder never finishes (its process was killed): the part that completes the key
        // must not be acknowledged with nothing joined, or the key stays stuck with its parts.
        let (runs, completing, store) =
            complete_while_held_elsewhere(|_, _| tokio::spawn(async {})).await;
        assert!(completing.is_ok(), "{completing:?}");
        assert_eq!(runs, 1, "joined once the dead holder's lease ran out");
        let left = store.scan("join:parts", "").await.map(|parts| parts.len());
        assert_eq!(left.ok(), Some(0), "the parts were consumed");
    }

    #[tokio::test]
    async fn a_complete_key_its_holder_commits_meanwhile_is_a_stray_not_a_second_join() {
        let (runs, completing, store) = complete_while_held_elsewhere(|store, namespace| {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let _ = store.put(&namespace, "k", JOINED.to_vec(), None).await;
            })
        })
        .await;
        assert!(completing.is_ok(), "{completing:?}");
        assert_eq!(runs, 0, "the other holder joined it");
        let left = store.scan("join:parts", "").await.map(|parts| parts.len());
        assert_eq!(
            left.ok(),
            Some(1),
            "the part that saw the commit removed itself"
        );
    }
}
