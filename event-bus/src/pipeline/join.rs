//! [`Join`]: wait for related messages (same key, different sources) and emit one combined message.

mod condition;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use condition::Condition;

use super::claim::Claim;
use super::dead_letter::DeadLetters;
use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next};
use super::message::Message;
use crate::store::{Batch, Store, now_millis};

/// The source of joined messages unless [`Join::output_source`] sets another.
///
/// ```
/// assert_eq!(event_bus::pipeline::COMPOSED_SOURCE, "composed-event");
/// ```
pub const COMPOSED_SOURCE: &str = "composed-event";

/// A stored part: the message and when it arrived.
#[derive(Serialize, Deserialize)]
struct Part {
    arrived_ms: i64,
    message: Message,
}

/// Joins messages that share a key: each arriving message is stored as a part; when the parts of
/// a key satisfy the [`Condition`], **exactly one** joined message goes on, even when parts arrive
/// concurrently and out of order.
///
/// The joined message has the key, source [`COMPOSED_SOURCE`] (or
/// [`output_source`](Join::output_source)) and as content a JSON object with one entry per source:
/// a part whose content is a JSON object is embedded as an object, any other content as a string.
///
/// Every message reaching the join is a part (put a [`Filter`](super::Filter) in front to keep
/// other messages out); per key, the first part of each source is kept and later copies count as
/// duplicates.
///
/// After the rest of the chain succeeds, the key's parts are deleted and the key is remembered as
/// joined, so a part arriving again (a duplicate, a redelivery) does not re-emit the join. If the
/// rest of the chain fails, the claim is released and the parts kept, so a retry joins again.
/// With [`expire_after`](Join::expire_after), [`sweep`](Join::sweep) reports and removes joins
/// still incomplete after that long (which sources were missing), optionally as dead letters.
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
    parts: String,
    joined: String,
    output_source: String,
    expire_after: Option<Duration>,
    remember_joined: Option<Duration>,
    dead_letters: Option<DeadLetters>,
    /// This value's claim marker: `claimed:<uuid of this run>`.
    claim: Claim,
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
            .field("namespace", &self.inner.parts)
            .field("output_source", &self.inner.output_source)
            .field("expire_after", &self.inner.expire_after)
            .finish_non_exhaustive()
    }
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
/// let expired = join.sweep().await?.remove(0);
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

impl Join {
    /// A join on `condition`, keeping its parts in `store` under the namespace `join`.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()));
    /// # drop(join);
    /// ```
    pub fn new<S: Store>(condition: Condition, store: Arc<S>) -> Self {
        Join::with_store(condition, store)
    }

    /// Same as [`new`](Join::new), for a store already behind `Arc<dyn Store>`.
    ///
    /// ```
    /// use event_bus::pipeline::{Condition, Join};
    /// use event_bus::store::{MemoryStore, Store};
    /// use std::sync::Arc;
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let join = Join::with_store(Condition::all_of(["a"]), store);
    /// # drop(join);
    /// ```
    pub fn with_store(condition: Condition, store: Arc<dyn Store>) -> Self {
        let claim = Claim::new(CLAIMED);
        let mut join = Join {
            inner: Arc::new(Inner {
                condition,
                store,
                parts: String::new(),
                joined: String::new(),
                output_source: COMPOSED_SOURCE.to_owned(),
                expire_after: None,
                remember_joined: None,
                dead_letters: None,
                claim,
                counters: Arc::default(),
            }),
        };
        join.set_namespace("join");
        join
    }

    /// Settings are changed before the join is shared; on a shared one, copy-on-write.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    fn set_namespace(&mut self, namespace: &str) {
        let inner = self.inner_mut();
        inner.parts = format!("{namespace}:parts");
        inner.joined = format!("{namespace}:joined");
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
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.set_namespace(namespace);
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

    /// Also records each expired join as a dead letter (one per part, with
    /// [`PipelineError::JoinExpired`]).
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

    /// Removes and returns the joins that stayed incomplete longer than
    /// [`expire_after`](Join::expire_after) (none without it), recording them as dead letters if
    /// so configured. Also removes stray parts of keys that already joined. Call it periodically.
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
    /// let expired = join.sweep().await?;
    /// assert_eq!(expired[0].key, "7");
    /// assert_eq!(expired[0].missing, ["payment"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sweep(&self) -> Result<Vec<ExpiredJoin>, PipelineError> {
        let inner = &self.inner;
        let mut by_key: BTreeMap<String, Vec<(String, Part)>> = BTreeMap::new();
        for (record_key, bytes) in inner.store.scan(&inner.parts, "").await? {
            let Some((key, _source)) = split_part_key(&record_key) else {
                continue;
            };
            let part = decode_part(&bytes)?;
            by_key
                .entry(key.to_owned())
                .or_default()
                .push((record_key, part));
        }
        let now = now_millis();
        let mut expired = Vec::new();
        for (key, parts) in by_key {
            let joined = inner.store.get(&inner.joined, &key).await?.as_deref() == Some(JOINED);
            let oldest = parts
                .iter()
                .map(|(_, part)| part.arrived_ms)
                .min()
                .unwrap_or(now);
            let too_old = inner.expire_after.is_some_and(|after| {
                let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                now.saturating_sub(oldest) >= after
            });
            if !joined && !too_old {
                continue;
            }
            let mut batch = Batch::new();
            for (record_key, _) in &parts {
                batch = batch.delete(inner.parts.clone(), record_key.clone());
            }
            inner.store.apply(batch).await?;
            if joined {
                continue; // stray parts of a completed join
            }
            let present: BTreeSet<String> = parts
                .iter()
                .map(|(_, part)| part.message.source().to_owned())
                .collect();
            let report = ExpiredJoin {
                missing: inner.condition.missing(&present),
                present: present.into_iter().collect(),
                parts: parts.into_iter().map(|(_, part)| part.message).collect(),
                key,
            };
            if let Some(dead_letters) = &inner.dead_letters {
                let error = PipelineError::JoinExpired {
                    key: report.key.clone(),
                    missing: report.missing.clone(),
                };
                for part in &report.parts {
                    dead_letters.record(part.clone(), &error).await?;
                }
            }
            expired.push(report);
        }
        Ok(expired)
    }
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
fn compose(parts: &[Part]) -> Result<Vec<u8>, PipelineError> {
    let mut object = serde_json::Map::new();
    for part in parts {
        let content = part.message.content();
        let value = match serde_json::from_slice::<serde_json::Value>(content) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            _ => serde_json::Value::String(String::from_utf8_lossy(content).into_owned()),
        };
        object.insert(part.message.source().to_owned(), value);
    }
    serde_json::to_vec(&object)
        .map_err(|error| PipelineError::Corrupt(format!("joined content: {error}")))
}

const CLAIMED: &[u8] = b"claimed:";
const JOINED: &[u8] = b"joined";

impl Inner {
    /// Whether a marker means "nothing more to do for this key here": joined, or being joined by
    /// this run. A claim by a previous run (it crashed mid-join) does not count.
    fn settles(&self, marker: &[u8]) -> bool {
        marker == JOINED || marker == self.claim.mine()
    }
}

impl Handler for Join {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let key = message.key().to_owned();
            let store = &inner.store;
            if let Some(marker) = store.get(&inner.joined, &key).await?
                && inner.settles(&marker)
            {
                // Already joined (or being joined by this run): a late or duplicate part.
                inner.counters.late.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let part = Part {
                arrived_ms: now_millis(),
                message,
            };
            let encoded = postcard::to_stdvec(&part)
                .map_err(|error| PipelineError::Corrupt(format!("join part: {error}")))?;
            // The first part of a source wins; a duplicate still checks the join below, so that
            // redelivering a part retries a join whose earlier attempt failed.
            let counter = if store
                .insert_if_absent(
                    &inner.parts,
                    &part_key(&key, part.message.source()),
                    encoded,
                    None,
                )
                .await?
            {
                &inner.counters.parts
            } else {
                &inner.counters.duplicates
            };
            counter.fetch_add(1, Ordering::Relaxed);

            // Every part is written before the scan, so the last part's scan sees them all.
            let stored = store.scan(&inner.parts, &part_prefix(&key)).await?;
            let mut parts = Vec::with_capacity(stored.len());
            for (_, bytes) in &stored {
                parts.push(decode_part(bytes)?);
            }
            let present: BTreeSet<String> = parts
                .iter()
                .map(|part| part.message.source().to_owned())
                .collect();
            if !inner.condition.matches(&present) {
                return Ok(()); // wait for more parts
            }
            // Exactly one of the parts that see a complete set wins the claim.
            if !inner
                .claim
                .acquire(store.as_ref(), &inner.joined, &key)
                .await?
            {
                return Ok(());
            }
            let joined = Message::new(inner.output_source.clone(), key.clone(), compose(&parts)?)
                .with_metadata(
                    "joined-sources",
                    present.into_iter().collect::<Vec<_>>().join(","),
                );
            match next.run(joined).await {
                Ok(()) => {
                    let mut batch = Batch::new().put(
                        inner.joined.clone(),
                        key.clone(),
                        JOINED.to_vec(),
                        inner.remember_joined,
                    );
                    for (record_key, _) in stored {
                        batch = batch.delete(inner.parts.clone(), record_key);
                    }
                    store.apply(batch).await?;
                    inner.counters.joined.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(error) => {
                    // Release the claim and keep the parts: a retry joins again.
                    store.delete(&inner.joined, &key).await?;
                    Err(error)
                }
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
        let part = |source: &str, content: &[u8]| Part {
            arrived_ms: 0,
            message: Message::new(source, "k", content.to_vec()),
        };
        let bytes = compose(&[
            part("object", br#"{"a":1}"#),
            part("array", b"[1,2]"),
            part("text", b"plain"),
            part("empty", b""),
        ])
        .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(value["object"]["a"], 1);
        assert_eq!(value["array"], "[1,2]");
        assert_eq!(value["text"], "plain");
        assert_eq!(value["empty"], "");
    }
}
