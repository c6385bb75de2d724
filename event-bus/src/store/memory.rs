//! [`MemoryStore`]: the store semantics over an in-process ordered map.

use std::collections::BTreeMap;
use std::future::ready;
use std::ops::Bound;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Batch, Op, Store, StoreError, StoreFuture, expiry, now_millis, prefix_upper_bound};

#[derive(Debug, Clone)]
struct Record {
    value: Vec<u8>,
    /// Milliseconds since the epoch; `None` lives forever.
    expires_at: Option<i64>,
}

impl Record {
    fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

type Namespaces = BTreeMap<String, BTreeMap<String, Record>>;

/// A [`Store`] in process memory: fast, shared by clones of an `Arc`, lost on exit.
///
/// Every operation takes one mutex for its duration (they are all short), which makes each
/// operation, and each [`Batch`], atomic.
///
/// ```
/// use event_bus::store::{MemoryStore, Store};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::store::StoreError> {
/// let store = MemoryStore::new();
/// store.put("sessions", "ada", b"token".to_vec(), Some(Duration::from_secs(60))).await?;
/// assert_eq!(store.count("sessions").await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    namespaces: Mutex<Namespaces>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// let store = event_bus::store::MemoryStore::new();
    /// # let _ = store;
    /// ```
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Namespaces, i64) -> T) -> T {
        let mut namespaces = self.namespaces.lock();
        f(&mut namespaces, now_millis())
    }
}

fn live<'m>(
    namespaces: &'m Namespaces,
    namespace: &str,
    key: &str,
    now: i64,
) -> Option<&'m Record> {
    namespaces
        .get(namespace)
        .and_then(|records| records.get(key))
        .filter(|record| record.is_live(now))
}

fn write(
    namespaces: &mut Namespaces,
    namespace: &str,
    key: &str,
    value: Vec<u8>,
    ttl: Option<Duration>,
) {
    namespaces.entry(namespace.to_owned()).or_default().insert(
        key.to_owned(),
        Record {
            value,
            expires_at: expiry(ttl),
        },
    );
}

fn remove(namespaces: &mut Namespaces, namespace: &str, key: &str, now: i64) -> bool {
    let Some(records) = namespaces.get_mut(namespace) else {
        return false;
    };
    let removed = records
        .remove(key)
        .is_some_and(|record| record.is_live(now));
    if records.is_empty() {
        namespaces.remove(namespace);
    }
    removed
}

impl Store for MemoryStore {
    fn insert_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let inserted = self.with(|namespaces, now| {
            if live(namespaces, namespace, key, now).is_some() {
                return false;
            }
            write(namespaces, namespace, key, value, ttl);
            true
        });
        Box::pin(ready(Ok(inserted)))
    }

    fn put<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.with(|namespaces, _| write(namespaces, namespace, key, value, ttl));
        Box::pin(ready(Ok(())))
    }

    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.with(|namespaces, now| {
            live(namespaces, namespace, key, now).map(|record| record.value.clone())
        });
        Box::pin(ready(Ok(value)))
    }

    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        let removed = self.with(|namespaces, now| remove(namespaces, namespace, key, now));
        Box::pin(ready(Ok(removed)))
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let swapped = self.with(
            |namespaces, now| match live(namespaces, namespace, key, now) {
                Some(record) if record.value == expected => {
                    write(namespaces, namespace, key, new, ttl);
                    true
                }
                _ => false,
            },
        );
        Box::pin(ready(Ok(swapped)))
    }

    fn scan<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        let found = self.with(|namespaces, now| {
            let Some(records) = namespaces.get(namespace) else {
                return Vec::new();
            };
            let upper = match prefix_upper_bound(prefix) {
                Some(upper) => Bound::Excluded(upper),
                None => Bound::Unbounded,
            };
            records
                .range::<str, _>((Bound::Included(prefix), upper.as_ref().map(String::as_str)))
                .filter(|(_, record)| record.is_live(now))
                .map(|(key, record)| (key.clone(), record.value.clone()))
                .collect()
        });
        Box::pin(ready(Ok(found)))
    }

    fn scan_after<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
        after: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        let found = self.with(|namespaces, now| {
            let Some(records) = namespaces.get(namespace) else {
                return Vec::new();
            };
            let lower = if after >= prefix {
                Bound::Excluded(after)
            } else {
                Bound::Included(prefix)
            };
            let upper = prefix_upper_bound(prefix);
            if upper.as_deref().is_some_and(|upper| after >= upper) {
                return Vec::new(); // past the prefix (and `range` refuses an empty span)
            }
            let upper = match &upper {
                Some(upper) => Bound::Excluded(upper.as_str()),
                None => Bound::Unbounded,
            };
            records
                .range::<str, _>((lower, upper))
                .filter(|(key, record)| key.starts_with(prefix) && record.is_live(now))
                .take(limit)
                .map(|(key, record)| (key.clone(), record.value.clone()))
                .collect()
        });
        Box::pin(ready(Ok(found)))
    }

    fn count<'a>(&'a self, namespace: &'a str) -> StoreFuture<'a, usize> {
        let count = self.with(|namespaces, now| {
            namespaces.get(namespace).map_or(0, |records| {
                records
                    .values()
                    .filter(|record| record.is_live(now))
                    .count()
            })
        });
        Box::pin(ready(Ok(count)))
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, ()> {
        let applied = self.with(|namespaces, now| {
            let ops = batch.into_ops();
            // Preconditions that come before every write (the usual fenced commit) are checked
            // first; only a precondition after a write needs the undo log.
            let leading = ops
                .iter()
                .take_while(|op| matches!(op, Op::Expect { .. }))
                .count();
            for op in &ops[..leading] {
                if let Op::Expect {
                    namespace,
                    key,
                    value,
                } = op
                    && live(namespaces, namespace, key, now).map(|r| &r.value) != value.as_ref()
                {
                    return Err(StoreError::Conflict {
                        namespace: namespace.clone(),
                        key: key.clone(),
                    });
                }
            }
            let needs_undo = ops[leading..]
                .iter()
                .any(|op| matches!(op, Op::Expect { .. }));
            // Writes are applied as they come; if a later precondition fails, the undo log puts
            // every touched record back, so the batch is all-or-nothing.
            let mut undo: Vec<(String, String, Option<Record>)> = Vec::new();
            let mut before = |namespaces: &Namespaces, namespace: &str, key: &str| {
                if needs_undo {
                    let previous = namespaces
                        .get(namespace)
                        .and_then(|records| records.get(key))
                        .cloned();
                    undo.push((namespace.to_owned(), key.to_owned(), previous));
                }
            };
            let mut failed = None;
            for op in ops.into_iter().skip(leading) {
                match op {
                    Op::Put {
                        namespace,
                        key,
                        value,
                        ttl,
                    } => {
                        before(namespaces, &namespace, &key);
                        write(namespaces, &namespace, &key, value, ttl);
                    }
                    Op::Delete { namespace, key } => {
                        before(namespaces, &namespace, &key);
                        remove(namespaces, &namespace, &key, now);
                    }
                    Op::Expect {
                        namespace,
                        key,
                        value,
                    } => {
                        let found = live(namespaces, &namespace, &key, now).map(|r| &r.value);
                        if found != value.as_ref() {
                            failed = Some(StoreError::Conflict { namespace, key });
                            break;
                        }
                    }
                }
            }
            match failed {
                None => Ok(()),
                Some(conflict) => {
                    for (namespace, key, previous) in undo.into_iter().rev() {
                        match previous {
                            Some(record) => {
                                namespaces.entry(namespace).or_default().insert(key, record);
                            }
                            None => {
                                remove(namespaces, &namespace, &key, now);
                            }
                        }
                    }
                    Err(conflict)
                }
            }
        });
        Box::pin(ready(applied))
    }

    fn purge_expired(&self, limit: usize) -> StoreFuture<'_, usize> {
        let purged = self.with(|namespaces, now| {
            let mut purged = 0;
            namespaces.retain(|_, records| {
                records.retain(|_, record| {
                    let keep = record.is_live(now) || purged >= limit;
                    if !keep {
                        purged += 1;
                    }
                    keep
                });
                !records.is_empty()
            });
            purged
        });
        Box::pin(ready(Ok(purged)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        crate::store::conformance::run_with_concurrency(std::sync::Arc::new(MemoryStore::new()))
            .await;
    }
}
