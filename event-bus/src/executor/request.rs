//! [`Request`]: one durable listener's job for one published event, as stored.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ExecutorError;
use crate::pipeline::claim;

/// What a request record holds (after its claim header), as JSON so that operators can read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The event's name ([`Event::NAME`](crate::Event::NAME)).
    pub(crate) event: String,
    /// The published event's id (shared by its requests).
    pub(crate) id: String,
    /// The durable listener's name.
    pub(crate) listener: String,
    /// The event, as JSON.
    pub(crate) payload: serde_json::Value,
    /// When the event was published (ms since the Unix epoch).
    pub(crate) published_ms: i64,
    /// Failed attempts so far.
    pub(crate) attempts: u32,
    /// Not to be run before this time (ms since the Unix epoch): the backoff after a failure.
    pub(crate) not_before_ms: i64,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    /// Whether the last failure was a panic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) last_panicked: bool,
    /// When the last failure happened (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_failure_ms: Option<i64>,
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A `Record` holds only strings, numbers and an already valid JSON value.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Record, ExecutorError> {
        serde_json::from_slice(bytes).map_err(|error| ExecutorError::Corrupt {
            key: key.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// The key of a request: ordered by priority (highest first), then by publication [`stamp`], so
/// that a scan in key order is the order requests are run in.
pub(crate) fn key(priority: u8, stamp: i64, id: &str, listener: &str) -> String {
    format!(
        "{:03}/{:016}/{id}/{listener}",
        u8::MAX - priority,
        stamp.max(0)
    )
}

/// A publication time in microseconds since the Unix epoch, strictly increasing within this
/// process: events published in the same microsecond (or while the clock steps back) keep their
/// order.
pub(crate) fn stamp() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        });
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    now.max(previous.saturating_add(1))
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// A durable request as stored: waiting to run (see
/// [`DurableBus::requests`](super::DurableBus::requests)) or dead (see
/// [`DurableBus::dead_requests`](super::DurableBus::dead_requests)).
///
/// ```
/// use event_bus::executor::DurableBus;
/// use event_bus::prelude::*;
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// #[event]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Signup {
///     email: String,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
/// Signup::durable("request-docs-mail", |_: Signup| async { Ok::<(), std::io::Error>(()) })
///     .register()?;
/// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
/// Signup { email: "ada@example.com".into() }.publish(&bus).await?;
/// let requests = bus.requests().await?;
/// assert_eq!(requests[0].listener(), "request-docs-mail");
/// assert_eq!(requests[0].attempts(), 0);
/// let event: Signup = requests[0].decode()?;
/// assert_eq!(event.email, "ada@example.com");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    key: String,
    record: Record,
}

impl Request {
    /// Reads a stored request record (with or without its claim header).
    pub(crate) fn parse(key: String, stored: &[u8]) -> Result<Self, ExecutorError> {
        let (_, payload) = claim::split_embedded(stored);
        let record = Record::decode(&key, payload)?;
        Ok(Request { key, record })
    }

    /// The request's key in the store: what [`revive`](super::DurableBus::revive) and
    /// [`delete_dead`](super::DurableBus::delete_dead) take.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The event's name.
    pub fn event(&self) -> &str {
        &self.record.event
    }

    /// The published event's id (the same for every request of one `publish`).
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The durable listener's name.
    pub fn listener(&self) -> &str {
        &self.record.listener
    }

    /// The event as JSON.
    pub fn payload(&self) -> &serde_json::Value {
        &self.record.payload
    }

    /// The event, decoded.
    ///
    /// # Errors
    ///
    /// [`ExecutorError::Corrupt`] if the payload is not an `E`.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, ExecutorError> {
        E::deserialize(&self.record.payload).map_err(|error| ExecutorError::Corrupt {
            key: self.key.clone(),
            reason: error.to_string(),
        })
    }

    /// How many attempts failed.
    pub fn attempts(&self) -> u32 {
        self.record.attempts
    }

    /// The last failure's message (an error's `Display`, or a panic's message).
    pub fn error(&self) -> Option<&str> {
        self.record.last_error.as_deref()
    }

    /// Whether the last failure was a panic.
    pub fn panicked(&self) -> bool {
        self.record.last_panicked
    }

    /// When the last attempt failed.
    pub fn last_failure(&self) -> Option<SystemTime> {
        self.record.last_failure_ms.map(time)
    }

    /// When the event was published.
    pub fn published(&self) -> SystemTime {
        time(self.record.published_ms)
    }

    /// When the request may run next (after a failure, its backoff).
    pub fn not_before(&self) -> SystemTime {
        time(self.record.not_before_ms)
    }

    pub(crate) fn into_parts(self) -> (String, Record) {
        (self.key, self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_strictly_increase() {
        let stamps: Vec<i64> = (0..10_000).map(|_| stamp()).collect();
        assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn keys_order_by_priority_then_time() {
        let urgent = key(90, 2_000, "b", "x");
        let normal_old = key(50, 1_000, "a", "x");
        let normal_new = key(50, 3_000, "a", "x");
        let mut keys = vec![normal_new.clone(), normal_old.clone(), urgent.clone()];
        keys.sort();
        assert_eq!(keys, vec![urgent, normal_old, normal_new]);
    }

    #[test]
    fn a_record_round_trips_with_and_without_a_claim_header() {
        let record = Record {
            event: "E".into(),
            id: "1".into(),
            listener: "l".into(),
            payload: serde_json::json!({"a": 1}),
            published_ms: 5,
            attempts: 2,
            not_before_ms: 7,
            last_error: Some("boom".into()),
            last_panicked: true,
            last_failure_ms: Some(6),
        };
        let bare = record.encode();
        let framed = claim::free_record(&bare);
        for stored in [bare, framed] {
            let request = Request::parse("k".into(), &stored).expect("a request");
            assert_eq!(request.attempts(), 2);
            assert_eq!(request.error(), Some("boom"));
            assert!(request.panicked());
        }
        assert!(Request::parse("k".into(), b"not json").is_err());
    }
}
