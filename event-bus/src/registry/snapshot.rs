//! The immutable listener list a dispatch iterates: rebuilt on every change (copy-on-write).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::listener::{Callback, SyncFn};

/// One registered listener.
pub(crate) struct Entry<E> {
    pub(crate) id: u64,
    pub(crate) priority: i32,
    pub(crate) name: Arc<str>,
    pub(crate) callback: Callback<E>,
    /// Detached tasks of this listener started from this snapshot and still running.
    pub(crate) running: AtomicUsize,
}

impl<E> Clone for Entry<E> {
    /// A copy for a new snapshot: the same listener, with its own (zero) task count.
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            priority: self.priority,
            name: Arc::clone(&self.name),
            callback: self.callback.clone(),
            running: AtomicUsize::new(0),
        }
    }
}

/// Counts one detached task of an entry while it runs: made when the task is spawned, dropped
/// when it ends or is cancelled.
pub(crate) struct Running<E> {
    snapshot: Arc<Snapshot<E>>,
    index: usize,
}

impl<E> Running<E> {
    /// The snapshot the task runs from.
    pub(crate) fn snapshot(&self) -> &Snapshot<E> {
        &self.snapshot
    }

    pub(crate) fn start(snapshot: &Arc<Snapshot<E>>, index: usize) -> Self {
        if let Some(entry) = snapshot.entries.get(index) {
            entry.running.fetch_add(1, Ordering::SeqCst);
        }
        Running {
            snapshot: Arc::clone(snapshot),
            index,
        }
    }
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        if let Some(entry) = self.snapshot.entries.get(self.index) {
            entry.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Listeners in dispatch order: priority descending, then registration order.
pub(crate) struct Snapshot<E> {
    pub(crate) entries: Box<[Entry<E>]>,
    /// When every entry is synchronous, their callbacks in the same order: the array `trigger`'s
    /// hot loop walks (two words per listener; names and priorities stay in `entries`, read only
    /// on a failure). Empty when some entry is async.
    pub(crate) sync_only: Box<[Arc<SyncFn<E>>]>,
    /// Whether any entry is async (the synchronous path then needs the payload in an `Arc`).
    pub(crate) has_async: bool,
}

impl<E: 'static> Snapshot<E> {
    pub(crate) fn new(entries: Vec<Entry<E>>) -> Self {
        let has_async = entries.iter().any(|entry| entry.callback.is_async());
        let sync_only = entries
            .iter()
            .filter_map(|entry| match &entry.callback {
                Callback::Sync(listener) if !has_async => Some(Arc::clone(listener)),
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
    pub(crate) fn with(current: Option<&Self>, entry: Entry<E>) -> Self {
        let mut entries: Vec<Entry<E>> = current.map(|s| s.entries.to_vec()).unwrap_or_default();
        let position = entries.partition_point(|e| e.priority >= entry.priority);
        entries.insert(position, entry);
        Snapshot::new(entries)
    }

    /// A copy of `self` without the entries named `name`, and how many they were (`None` if
    /// none).
    pub(crate) fn without_named(&self, name: &str) -> Option<(Self, usize)> {
        let entries: Vec<Entry<E>> = self
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

    fn entry(id: u64, priority: i32) -> Entry<()> {
        Entry {
            id,
            priority,
            name: Arc::from(format!("l{id}")),
            callback: Callback::from_fn(|_: &()| {}),
            running: AtomicUsize::new(0),
        }
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
            Entry {
                callback: Callback::from_async_fn(|_: Arc<()>| async {}),
                ..entry(2, 0)
            },
        );
        assert!(mixed.has_async);
    }
}
