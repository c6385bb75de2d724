//! The immutable listener list a dispatch iterates: rebuilt on every change (copy-on-write).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::event::Event;
use crate::listener::{Callback, SyncFn};
use crate::report::FailureCause;

/// One registered listener, shared by every snapshot that lists it and by its running tasks.
///
/// `repr(C)` with the task counter first: in the `Arc`'s allocation it shares a cache line with
/// the reference count, which every task start and end writes too.
#[repr(C)]
pub(crate) struct Entry<E> {
    /// This listener's detached tasks still running, from any snapshot.
    pub(crate) running: AtomicUsize,
    pub(crate) id: u64,
    pub(crate) priority: i32,
    pub(crate) name: Arc<str>,
    pub(crate) callback: Callback<E>,
}

impl<E> Entry<E> {
    pub(crate) fn new(id: u64, priority: i32, name: Arc<str>, callback: Callback<E>) -> Self {
        Entry {
            running: AtomicUsize::new(0),
            id,
            priority,
            name,
            callback,
        }
    }
}

/// Counts one detached task of a listener while it runs, and keeps the listener alive for it: made
/// when the task is spawned, dropped when it ends or is cancelled. Dropped without
/// [`Running::finish`] (the task's future was dropped before its end: its runtime shut down), it
/// reports the task [`Cancelled`](crate::FailureCause::Cancelled).
///
/// A task holds its listener's entry, not the snapshot it was spawned from: the spawning thread
/// and the worker that runs the task then write only the entry's cache line (its reference count
/// and this counter), as a hand-written `tokio::spawn` of an `Arc`'d closure writes its closure's.
pub(crate) struct Running<E: Event> {
    entry: Arc<Entry<E>>,
    finished: bool,
}

impl<E: Event> Running<E> {
    /// The task ran to its end (its outcome is reported by the task itself).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }

    /// The listener the task runs.
    pub(crate) fn entry(&self) -> &Entry<E> {
        &self.entry
    }

    pub(crate) fn start(entry: &Arc<Entry<E>>) -> Self {
        entry.running.fetch_add(1, Ordering::SeqCst);
        Running::counted(entry)
    }

    /// Counts one task of each entry, before the caller decides to start them (see `adopt`) or
    /// not (see `uncount`).
    pub(crate) fn count_all(entries: &[Arc<Entry<E>>]) {
        for entry in entries {
            entry.running.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Takes back the counts of [`Running::count_all`] for tasks that will not start.
    pub(crate) fn uncount_all(entries: &[Arc<Entry<E>>]) {
        for entry in entries {
            entry.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The guard of a task already counted by [`Running::count_all`].
    pub(crate) fn counted(entry: &Arc<Entry<E>>) -> Self {
        Running {
            entry: Arc::clone(entry),
            finished: false,
        }
    }
}

impl<E: Event> Drop for Running<E> {
    fn drop(&mut self) {
        self.entry.running.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            FailureCause::Cancelled.log(E::NAME, &self.entry.name);
        }
    }
}

/// Listeners in dispatch order: priority descending, then registration order.
pub(crate) struct Snapshot<E> {
    pub(crate) entries: Box<[Arc<Entry<E>>]>,
    /// When every entry is synchronous, their callbacks in the same order: the array `trigger`'s
    /// hot loop walks (two words per listener; names and priorities stay in `entries`, read only
    /// on a failure). Empty when some entry is async.
    pub(crate) sync_only: Box<[Box<SyncFn<E>>]>,
    /// Whether any entry is async (the synchronous path then needs the payload in an `Arc`).
    pub(crate) has_async: bool,
}

impl<E: 'static> Snapshot<E> {
    pub(crate) fn new(entries: Vec<Arc<Entry<E>>>) -> Self {
        let has_async = entries.iter().any(|entry| entry.callback.is_async());
        let sync_only = entries
            .iter()
            .filter_map(|entry| match &entry.callback {
                Callback::Sync(listener) if !has_async => Some(Arc::clone(listener).boxed()),
                _ => None,
            })
            .collect();
        Snapshot {
            entries: entries.into_boxed_slice(),
            sync_only,
            has_async,
        }
    }

    /// A copy of `current` (if any) with `entry` inserted after every entry of equal or higher priority.
    pub(crate) fn with(current: Option<&Self>, entry: Arc<Entry<E>>) -> Self {
        let mut entries: Vec<Arc<Entry<E>>> =
            current.map(|s| s.entries.to_vec()).unwrap_or_default();
        let position = entries.partition_point(|e| e.priority >= entry.priority);
        entries.insert(position, entry);
        Snapshot::new(entries)
    }

    /// A copy of `self` without the entries named `name`, and how many they were (`None` if
    /// none).
    pub(crate) fn without_named(&self, name: &str) -> Option<(Self, usize)> {
        let entries: Vec<Arc<Entry<E>>> = self
            .entries
            .iter()
            .filter(|entry| &*entry.name != name)
            .cloned()
            .collect();
        let removed = self.entries.len() - entries.len();
        (removed > 0).then(|| (Snapshot::new(entries), removed))
    }

    /// A copy of `self` without the entry `id`, or `None` if there is no such entry.
    pub(crate) fn without(&self, id: u64) -> Option<Self> {
        let position = self.entries.iter().position(|e| e.id == id)?;
        let mut entries = self.entries.to_vec();
        entries.remove(position);
        Some(Snapshot::new(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, priority: i32) -> Arc<Entry<()>> {
        Arc::new(Entry::new(
            id,
            priority,
            Arc::from(format!("l{id}")),
            Callback::from_fn(|_: &()| {}),
        ))
    }

    fn ids(snapshot: &Snapshot<()>) -> Vec<u64> {
        snapshot.entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn inserts_by_priority_keeping_ties_in_registration_order() {
        let mut snapshot = Snapshot::with(None, entry(1, 0));
        for (id, priority) in [(2, 5), (3, 0), (4, 5), (5, -1), (6, 10)] {
            snapshot = Snapshot::with(Some(&snapshot), entry(id, priority));
        }
        assert_eq!(ids(&snapshot), [6, 2, 4, 1, 3, 5]);
    }

    #[test]
    fn removes_exactly_one_entry() {
        let snapshot = Snapshot::with(Some(&Snapshot::with(None, entry(1, 0))), entry(2, 0));
        let removed = snapshot.without(1);
        assert_eq!(removed.as_ref().map(ids), Some(vec![2]));
        assert!(snapshot.without(9).is_none());
    }

    #[test]
    fn tracks_async_entries() {
        let sync_only = Snapshot::with(None, entry(1, 0));
        assert!(!sync_only.has_async);
        let mixed = Snapshot::with(
            Some(&sync_only),
            Arc::new(Entry::new(
                2,
                0,
                Arc::from("l2"),
                Callback::from_async_fn(|_: Arc<()>| async {}),
            )),
        );
        assert!(mixed.has_async);
    }
}
