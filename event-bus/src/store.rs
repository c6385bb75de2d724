//! Where pipelines keep state: one small async [`Store`] trait with namespaced keys, an atomic
//! insert-if-absent, compare-and-swap, atomic batches, ordered prefix scans and per-record expiry.
//!
//! Two implementations share one documented semantics and pass the same
//! [`conformance`] suite: [`MemoryStore`] (a process-local map) and, with the `sqlite` feature,
//! [`SqliteStore`] (an embedded SQLite file in WAL mode that survives
//! restarts and `SIGKILL`). [`FaultyStore`] wraps any store to inject failures, delays and hangs
//! in tests.
//!
//! # Semantics (every implementation)
//!
//! - A record is addressed by a namespace and a key (both UTF-8). Namespaces never see each other.
//! - A record may have a time to live; once it has passed, the record is **absent** for every
//!   operation (it may still occupy space until [`Store::purge_expired`] removes it).
//! - Every single operation is atomic and linearizable: of two concurrent
//!   [`insert_if_absent`](Store::insert_if_absent) calls on the same absent key, exactly one wins.
//! - [`scan`](Store::scan) returns the live records whose key starts with a prefix, in key order
//!   (byte order of the UTF-8 keys).
//! - [`apply`](Store::apply) writes a [`Batch`] all-or-nothing, in order. A batch may carry
//!   preconditions ([`Batch::expect`], [`Batch::expect_absent`]); if one does not hold when it is
//!   reached, nothing of the batch is written and `apply` fails with [`StoreError::Conflict`].
//!   Preconditions are what make conditional deletes and fenced commits possible (a claim holder
//!   whose lease was taken over cannot commit).
//! - A write reported as failed left nothing behind; a write reported as done is stored (for a
//!   durable store: it survives the process being killed).
//! - [`purge_expired`](Store::purge_expired) physically removes at most `limit` expired records,
//!   so its cost is bounded.

pub mod conformance;
mod faulty;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use faulty::{Fault, FaultyStore, Operation};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::report::BoxError;

/// The future every [`Store`] method returns.
///
/// ```
/// use event_bus::store::StoreFuture;
///
/// let ready: StoreFuture<'static, bool> = Box::pin(async { Ok(true) });
/// # drop(ready);
/// ```
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A failure of the store itself (not "not found", which is `Ok(None)` / `Ok(false)`).
///
/// ```
/// use event_bus::store::StoreError;
///
/// let error = StoreError::backend(std::io::Error::other("disk full"));
/// assert_eq!(error.to_string(), "store backend failed: disk full");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend (for instance SQLite or the file system) reported an error.
    #[error("store backend failed: {0}")]
    Backend(#[source] BoxError),
    /// The store was closed, or its worker stopped.
    #[error("the store is closed")]
    Closed,
    /// A precondition of a [`Batch`] did not hold; nothing of the batch was written.
    #[error("batch precondition failed on `{namespace}`/`{key}`")]
    Conflict {
        /// The namespace of the record the precondition was about.
        namespace: String,
        /// Its key.
        key: String,
    },
}

impl StoreError {
    /// Wraps a backend error.
    ///
    /// ```
    /// use event_bus::store::StoreError;
    ///
    /// assert!(matches!(StoreError::backend("boom"), StoreError::Backend(_)));
    /// ```
    pub fn backend(error: impl Into<BoxError>) -> Self {
        StoreError::Backend(error.into())
    }

    /// `true` for [`StoreError::Conflict`]: a precondition failed, the store itself is fine.
    ///
    /// ```
    /// use event_bus::store::StoreError;
    ///
    /// let conflict = StoreError::Conflict { namespace: "ns".into(), key: "k".into() };
    /// assert!(conflict.is_conflict());
    /// assert!(!StoreError::Closed.is_conflict());
    /// ```
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// One write of a [`Batch`].
///
/// ```
/// use event_bus::store::{Batch, Op};
///
/// let batch = Batch::new().put("ns", "k", vec![1], None);
/// assert!(matches!(&batch.ops()[0], Op::Put { value, .. } if value == &[1]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Write `value`, replacing any record, with an optional time to live.
    Put {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Time to live from the moment the batch is applied.
        ttl: Option<Duration>,
    },
    /// Remove the record, if any.
    Delete {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// A precondition: the live record's value is `value` (`None`: there is no live record).
    /// Checked when the batch reaches it, after the writes before it.
    Expect {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// The expected value, or `None` for "absent".
        value: Option<Vec<u8>>,
    },
}

/// Writes applied all-or-nothing by [`Store::apply`], in order.
///
/// ```
/// use event_bus::store::{Batch, MemoryStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::store::StoreError> {
/// let store = MemoryStore::new();
/// store.put("orders", "7", b"pending".to_vec(), None).await?;
/// let batch = Batch::new()
///     .put("orders", "7", b"paid".to_vec(), None)
///     .delete("carts", "7");
/// store.apply(batch).await?;
/// assert_eq!(store.get("orders", "7").await?, Some(b"paid".to_vec()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    ///
    /// ```
    /// assert!(event_bus::store::Batch::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a put.
    ///
    /// ```
    /// let batch = event_bus::store::Batch::new().put("ns", "k", vec![1], None);
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn put(
        mut self,
        namespace: impl Into<String>,
        key: impl Into<String>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Self {
        self.ops.push(Op::Put {
            namespace: namespace.into(),
            key: key.into(),
            value,
            ttl,
        });
        self
    }

    /// Adds a delete.
    ///
    /// ```
    /// let batch = event_bus::store::Batch::new().delete("ns", "k");
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn delete(mut self, namespace: impl Into<String>, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete {
            namespace: namespace.into(),
            key: key.into(),
        });
        self
    }

    /// Adds a precondition: the live record at `namespace`/`key` holds exactly `value`. If it does
    /// not when the batch reaches this point, nothing of the batch is written and
    /// [`Store::apply`] fails with [`StoreError::Conflict`].
    ///
    /// ```
    /// use event_bus::store::{Batch, MemoryStore, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::store::StoreError> {
    /// let store = MemoryStore::new();
    /// store.put("locks", "7", b"mine".to_vec(), None).await?;
    /// // Delete the lock only if it is still mine.
    /// store.apply(Batch::new().expect("locks", "7", b"mine".to_vec()).delete("locks", "7")).await?;
    /// let stale = Batch::new().expect("locks", "7", b"mine".to_vec()).put("x", "y", vec![], None);
    /// assert!(store.apply(stale).await.is_err_and(|e| e.is_conflict()));
    /// assert_eq!(store.get("x", "y").await?, None, "nothing of a failed batch is written");
    /// # Ok(())
    /// # }
    /// ```
    pub fn expect(
        mut self,
        namespace: impl Into<String>,
        key: impl Into<String>,
        value: Vec<u8>,
    ) -> Self {
        self.ops.push(Op::Expect {
            namespace: namespace.into(),
            key: key.into(),
            value: Some(value),
        });
        self
    }

    /// Adds a precondition: there is no live record at `namespace`/`key`.
    ///
    /// ```
    /// use event_bus::store::{Batch, MemoryStore, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::store::StoreError> {
    /// let store = MemoryStore::new();
    /// let create = || Batch::new().expect_absent("users", "ada").put("users", "ada", vec![1], None);
    /// store.apply(create()).await?;
    /// assert!(store.apply(create()).await.is_err_and(|e| e.is_conflict()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn expect_absent(mut self, namespace: impl Into<String>, key: impl Into<String>) -> Self {
        self.ops.push(Op::Expect {
            namespace: namespace.into(),
            key: key.into(),
            value: None,
        });
        self
    }

    /// Appends every write of `other`.
    ///
    /// ```
    /// use event_bus::store::Batch;
    ///
    /// let both = Batch::new().delete("a", "1").extend(Batch::new().delete("b", "2"));
    /// assert_eq!(both.len(), 2);
    /// ```
    pub fn extend(mut self, other: Batch) -> Self {
        self.ops.extend(other.ops);
        self
    }

    /// The number of writes.
    ///
    /// ```
    /// assert_eq!(event_bus::store::Batch::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// `true` when there is nothing to write.
    ///
    /// ```
    /// assert!(event_bus::store::Batch::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The writes, in order.
    ///
    /// ```
    /// use event_bus::store::{Batch, Op};
    ///
    /// let batch = Batch::new().delete("ns", "k");
    /// assert!(matches!(&batch.ops()[0], Op::Delete { key, .. } if key == "k"));
    /// ```
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Drops the writes after the first `len` (what was added since [`len`](Batch::len) returned
    /// `len`).
    ///
    /// ```
    /// let mut batch = event_bus::store::Batch::new().delete("a", "1");
    /// let mark = batch.len();
    /// batch = batch.delete("b", "2");
    /// batch.truncate(mark);
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.ops.truncate(len);
    }

    /// Consumes the batch, returning its writes.
    ///
    /// ```
    /// assert!(event_bus::store::Batch::new().into_ops().is_empty());
    /// ```
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }
}

/// Durable or in-memory key-value storage for pipelines. See the [module docs](self) for the
/// semantics every implementation must have; [`conformance::run`] checks them.
///
/// The methods return boxed futures so that `Arc<dyn Store>` works.
///
/// ```
/// use event_bus::store::{MemoryStore, Store};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::store::StoreError> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// assert!(store.insert_if_absent("locks", "order-7", b"me".to_vec(), None).await?);
/// assert!(!store.insert_if_absent("locks", "order-7", b"you".to_vec(), None).await?);
/// assert_eq!(store.get("locks", "order-7").await?, Some(b"me".to_vec()));
/// # Ok(())
/// # }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Writes `value` unless a live record exists; `true` if this call wrote it.
    fn insert_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// Writes `value`, replacing any record.
    fn put<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;

    /// The live record's value, if any.
    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Removes the record; `true` if a live record was removed.
    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, bool>;

    /// Replaces the value with `new` (and its time to live with `ttl`) only if the live record's
    /// value is `expected`; `true` if it did.
    fn compare_and_swap<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// The live records whose key starts with `prefix` (all of them for `""`), in key order.
    fn scan<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>>;

    /// A page of [`scan`](Store::scan): the live records whose key starts with `prefix` and sorts
    /// strictly after `after` (`""`: from the first), in key order, at most `limit` of them. Read
    /// a long range page by page, each starting after the last key of the one before.
    ///
    /// The provided implementation filters a whole [`scan`](Store::scan); the built-in stores
    /// read only the page.
    ///
    /// ```
    /// use event_bus::store::{MemoryStore, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::store::StoreError> {
    /// let store = MemoryStore::new();
    /// for key in ["a/1", "a/2", "a/3", "b/1"] {
    ///     store.put("ns", key, Vec::new(), None).await?;
    /// }
    /// let page = store.scan_after("ns", "a/", "a/1", 1).await?;
    /// assert_eq!(page.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["a/2"]);
    /// # Ok(())
    /// # }
    /// ```
    fn scan_after<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
        after: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        Box::pin(async move {
            let mut records = self.scan(namespace, prefix).await?;
            records.retain(|(key, _)| key.as_str() > after);
            records.truncate(limit);
            Ok(records)
        })
    }

    /// The number of live records in `namespace`.
    fn count<'a>(&'a self, namespace: &'a str) -> StoreFuture<'a, usize>;

    /// Applies every write of `batch` atomically, in order; fails with [`StoreError::Conflict`]
    /// (writing nothing) when one of its preconditions does not hold.
    fn apply(&self, batch: Batch) -> StoreFuture<'_, ()>;

    /// Physically removes up to `limit` expired records (of any namespace); returns how many. The
    /// bound keeps each call's cost small: call it again while it returns `limit`.
    fn purge_expired(&self, limit: usize) -> StoreFuture<'_, usize>;
}

/// A store to hand to an adapter: an `Arc` of any [`Store`], or an `Arc<dyn Store>`. Every
/// constructor that needs a store takes `impl IntoStore`, so both work the same way.
///
/// ```
/// use event_bus::pipeline::DeadLetters;
/// use event_bus::store::{MemoryStore, Store};
/// use std::sync::Arc;
///
/// let concrete = Arc::new(MemoryStore::new());
/// let erased: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let a = DeadLetters::new(concrete);
/// let b = DeadLetters::new(erased);
/// # drop((a, b));
/// ```
pub trait IntoStore {
    /// The store, shared.
    fn into_store(self) -> Arc<dyn Store>;
}

impl<S: Store> IntoStore for Arc<S> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

impl IntoStore for Arc<dyn Store> {
    fn into_store(self) -> Arc<dyn Store> {
        self
    }
}

/// Milliseconds since the Unix epoch (the stores' clock for expiry).
pub(crate) fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The expiry instant of a record written now with `ttl`.
pub(crate) fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        now_millis().saturating_add(ttl)
    })
}

/// The smallest string greater than every string that starts with `prefix`, or `None` if there is
/// none (empty prefix, or only `char::MAX`s): the exclusive upper bound of a prefix range scan.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            other => char::from_u32(u32::from(other) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_cover_exactly_the_prefix() {
        assert_eq!(prefix_upper_bound("order-7/").as_deref(), Some("order-70"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        for key in ["order-7/", "order-7/a", "order-7/\u{10FFFF}"] {
            assert!(key.starts_with("order-7/") && key < "order-70");
        }
    }

    #[test]
    fn expiry_is_in_the_future() {
        let now = now_millis();
        assert!(expiry(Some(Duration::from_secs(1))).is_some_and(|at| at >= now + 1000));
        assert_eq!(expiry(None), None);
    }
}
