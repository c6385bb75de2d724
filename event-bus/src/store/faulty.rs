//! [`FaultyStore`]: a [`Store`] wrapper that injects failures, delays and hangs, to test what a
//! pipeline does on its failure paths.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Batch, IntoStore, Store, StoreError, StoreFuture};

/// A [`Store`] operation, to aim a [`Fault`] at.
///
/// ```
/// use event_bus::store::Operation;
///
/// assert!(Operation::Apply.is_write());
/// assert!(!Operation::Get.is_write());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// [`Store::insert_if_absent`].
    InsertIfAbsent,
    /// [`Store::put`].
    Put,
    /// [`Store::get`].
    Get,
    /// [`Store::delete`].
    Delete,
    /// [`Store::compare_and_swap`].
    CompareAndSwap,
    /// [`Store::scan`].
    Scan,
    /// [`Store::count`].
    Count,
    /// [`Store::apply`].
    Apply,
    /// [`Store::purge_expired`].
    Purge,
}

impl Operation {
    /// Every operation.
    ///
    /// ```
    /// assert_eq!(event_bus::store::Operation::ALL.len(), 9);
    /// ```
    pub const ALL: [Operation; 9] = [
        Operation::InsertIfAbsent,
        Operation::Put,
        Operation::Get,
        Operation::Delete,
        Operation::CompareAndSwap,
        Operation::Scan,
        Operation::Count,
        Operation::Apply,
        Operation::Purge,
    ];

    /// Whether the operation may change the store.
    ///
    /// ```
    /// assert!(event_bus::store::Operation::Put.is_write());
    /// ```
    pub fn is_write(self) -> bool {
        !matches!(self, Operation::Get | Operation::Scan | Operation::Count)
    }
}

/// What happens to the call a fault is aimed at.
///
/// ```
/// use event_bus::store::Fault;
/// use std::time::Duration;
///
/// let slow = Fault::Delay(Duration::from_millis(5));
/// assert_ne!(slow, Fault::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call fails with a [`StoreError::Backend`] without touching the store.
    Fail,
    /// The call runs, then reports a [`StoreError::Backend`] anyway: an ambiguous outcome, as when
    /// a connection drops after the server committed.
    FailAfter,
    /// The call runs after a delay (an await point that a timeout can cancel).
    Delay(Duration),
    /// The call never completes.
    Hang,
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    operation: Option<Operation>,
    nth: u64,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    planned: Vec<Planned>,
    /// A delay before every call without a planned fault.
    slow: Option<Duration>,
    calls: [u64; 9],
    total: u64,
    injected: u64,
}

/// Wraps a store and injects [`Fault`]s into chosen calls: "fail the 3rd `apply`", "delay every
/// call by 1 ms", "hang the 10th call of any kind". Calls are counted per operation and in total,
/// from 1, since the store was wrapped.
///
/// Use it to check that a pipeline keeps its promises when the store misbehaves: after each fault
/// and a redelivery, every message is applied exactly once or parked as a dead letter.
///
/// ```
/// use event_bus::store::{Fault, FaultyStore, MemoryStore, Operation, Store};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
/// store.inject(Operation::Put, 2, Fault::Fail);
/// assert!(store.put("ns", "a", vec![1], None).await.is_ok());
/// assert!(store.put("ns", "b", vec![2], None).await.is_err(), "the 2nd put fails");
/// assert!(store.put("ns", "c", vec![3], None).await.is_ok());
/// assert_eq!(store.get("ns", "b").await.unwrap(), None);
/// assert_eq!(store.injected(), 1);
/// # }
/// ```
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    state: Mutex<State>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("FaultyStore")
            .field("planned", &state.planned)
            .field("total_calls", &state.total)
            .field("injected", &state.injected)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner`, with no faults planned.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// # drop(store);
    /// ```
    pub fn new(inner: impl IntoStore) -> Self {
        FaultyStore {
            inner: inner.into_store(),
            state: Mutex::new(State::default()),
        }
    }

    /// Plans `fault` for the `nth` call (from 1) of `operation`.
    ///
    /// ```
    /// use event_bus::store::{Fault, FaultyStore, MemoryStore, Operation};
    /// use std::sync::Arc;
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// store.inject(Operation::Apply, 1, Fault::FailAfter);
    /// ```
    pub fn inject(&self, operation: Operation, nth: u64, fault: Fault) {
        self.state.lock().planned.push(Planned {
            operation: Some(operation),
            nth,
            fault,
        });
    }

    /// Plans `fault` for the `nth` call (from 1) of any operation.
    ///
    /// ```
    /// use event_bus::store::{Fault, FaultyStore, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// store.inject_any(7, Fault::Hang);
    /// ```
    pub fn inject_any(&self, nth: u64, fault: Fault) {
        self.state.lock().planned.push(Planned {
            operation: None,
            nth,
            fault,
        });
    }

    /// Delays every call (that has no planned fault) by `delay`: every store call becomes an await
    /// point where a timeout can cancel the caller. `Duration::ZERO` turns it off.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore};
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// store.slow_down(Duration::from_millis(1));
    /// ```
    pub fn slow_down(&self, delay: Duration) {
        self.state.lock().slow = (!delay.is_zero()).then_some(delay);
    }

    /// Forgets every planned fault that has not fired yet, and the slow-down.
    ///
    /// ```
    /// use event_bus::store::{Fault, FaultyStore, MemoryStore, Operation};
    /// use std::sync::Arc;
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// store.inject(Operation::Get, 1, Fault::Fail);
    /// store.heal();
    /// ```
    pub fn heal(&self) {
        let mut state = self.state.lock();
        state.planned.clear();
        state.slow = None;
    }

    /// How many calls of `operation` were made.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore, Operation, Store};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// let _ = store.get("ns", "k").await;
    /// assert_eq!(store.calls(Operation::Get), 1);
    /// assert_eq!(store.total_calls(), 1);
    /// # }
    /// ```
    pub fn calls(&self, operation: Operation) -> u64 {
        self.state.lock().calls[operation as usize]
    }

    /// How many calls were made in all.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// assert_eq!(FaultyStore::new(Arc::new(MemoryStore::new())).total_calls(), 0);
    /// ```
    pub fn total_calls(&self) -> u64 {
        self.state.lock().total
    }

    /// How many faults fired.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// assert_eq!(FaultyStore::new(Arc::new(MemoryStore::new())).injected(), 0);
    /// ```
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// The wrapped store.
    ///
    /// ```
    /// use event_bus::store::{FaultyStore, MemoryStore};
    /// use std::sync::Arc;
    ///
    /// let store = FaultyStore::new(Arc::new(MemoryStore::new()));
    /// let _inner = store.inner();
    /// ```
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Counts the call and returns the fault planned for it, if any.
    fn next_fault(&self, operation: Operation) -> Option<Fault> {
        let mut state = self.state.lock();
        state.calls[operation as usize] += 1;
        state.total += 1;
        let (nth, total) = (state.calls[operation as usize], state.total);
        let position = state
            .planned
            .iter()
            .position(|planned| match planned.operation {
                Some(op) => op == operation && planned.nth == nth,
                None => planned.nth == total,
            });
        match position {
            Some(position) => {
                state.injected += 1;
                Some(state.planned.remove(position).fault)
            }
            None => state.slow.map(Fault::Delay),
        }
    }

    /// Runs `call` (which starts the inner operation) as the planned fault says: not at all for
    /// [`Fault::Fail`] and [`Fault::Hang`], after the delay for [`Fault::Delay`].
    fn run<'a, T: Send + 'a>(
        &'a self,
        operation: Operation,
        call: impl FnOnce() -> StoreFuture<'a, T> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        let Some(fault) = self.next_fault(operation) else {
            return call();
        };
        Box::pin(async move {
            match fault {
                Fault::Fail => Err(injected(operation)),
                Fault::FailAfter => {
                    let _ = call().await;
                    Err(injected(operation))
                }
                Fault::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    call().await
                }
                Fault::Hang => std::future::pending().await,
            }
        })
    }
}

fn injected(operation: Operation) -> StoreError {
    StoreError::backend(format!("injected fault in {operation:?}"))
}

impl Store for FaultyStore {
    fn insert_if_absent<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.run(Operation::InsertIfAbsent, move || {
            self.inner.insert_if_absent(namespace, key, value, ttl)
        })
    }

    fn put<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.run(Operation::Put, move || {
            self.inner.put(namespace, key, value, ttl)
        })
    }

    fn get<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.run(Operation::Get, move || self.inner.get(namespace, key))
    }

    fn delete<'a>(&'a self, namespace: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        self.run(Operation::Delete, move || self.inner.delete(namespace, key))
    }

    fn compare_and_swap<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        expected: Vec<u8>,
        new: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.run(Operation::CompareAndSwap, move || {
            self.inner
                .compare_and_swap(namespace, key, expected, new, ttl)
        })
    }

    fn scan<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        self.run(Operation::Scan, move || self.inner.scan(namespace, prefix))
    }

    fn scan_after<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
        after: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        self.run(Operation::Scan, move || {
            self.inner.scan_after(namespace, prefix, after, limit)
        })
    }

    fn count<'a>(&'a self, namespace: &'a str) -> StoreFuture<'a, usize> {
        self.run(Operation::Count, move || self.inner.count(namespace))
    }

    fn apply(&self, batch: Batch) -> StoreFuture<'_, ()> {
        self.run(Operation::Apply, move || self.inner.apply(batch))
    }

    fn purge_expired(&self, limit: usize) -> StoreFuture<'_, usize> {
        self.run(Operation::Purge, move || self.inner.purge_expired(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn passes_the_conformance_suite_when_healthy() {
        crate::store::conformance::run(&Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()))))
            .await;
    }

    #[tokio::test]
    async fn fail_after_writes_and_still_reports_an_error() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new()));
        store.inject(Operation::Apply, 1, Fault::FailAfter);
        let batch = Batch::new().put("ns", "k", vec![1], None);
        assert!(store.apply(batch).await.is_err());
        assert_eq!(store.get("ns", "k").await.ok().flatten(), Some(vec![1]));
    }

    #[tokio::test(start_paused = true)]
    async fn delays_and_hangs_are_await_points() {
        let store = FaultyStore::new(Arc::new(MemoryStore::new()));
        store.inject_any(1, Fault::Delay(Duration::from_secs(5)));
        store.inject_any(2, Fault::Hang);
        let started = tokio::time::Instant::now();
        assert!(store.put("ns", "k", vec![1], None).await.is_ok());
        assert!(started.elapsed() >= Duration::from_secs(5));
        let hung = tokio::time::timeout(Duration::from_secs(60), store.get("ns", "k")).await;
        assert!(hung.is_err(), "a hung call never completes");
    }
}
