//! The immutable listener list a dispatch iterates: rebuilt on every change (copy-on-write).

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use super::listed::{Done, Listed};
use crate::event::Event;
use crate::listener::{Callback, SyncFn};
use crate::report::FailureCause;

/// One registered listener as the snapshots list it: shared by every snapshot that lists it.
pub(crate) struct Entry<E> {
    pub(crate) id: u64,
    pub(crate) priority: i32,
    /// What runs the listener; the only reference to it that is not a task's.
    pub(crate) runner: Arc<Runner<E>>,
}

impl<E> Entry<E> {
    /// A new listener, with the record drains count its tasks by (see [`Listed`]).
    pub(crate) fn new(id: u64, priority: i32, name: Arc<str>, callback: Callback<E>) -> Arc<Self> {
        Arc::new_cyclic(|entry| Entry {
            id,
            priority,
            runner: Arc::new_cyclic(|runner| Runner {
                name: Arc::clone(&name),
                callback,
                done: Done::new(Listed::new(name, runner.clone(), entry.clone())),
            }),
        })
    }
}

/// A listener's name and callback: what its detached tasks hold while they run.
///
/// Its strong count is the number of those tasks, plus one while its [`Entry`] lives: taking a
/// clone for a task is what counts the task for drains (see [`Listed::running`]), as a
/// hand-written `tokio::spawn` of an `Arc`'d closure clones its closure, with no counter of its
/// own to write.
pub(crate) struct Runner<E> {
    pub(crate) name: Arc<str>,
    pub(crate) callback: Callback<E>,
    /// Declared last, so dropped last: marks the listener destroyed once its callback (and what
    /// it captured) is gone.
    done: Done<E>,
}

impl<E> Runner<E> {
    /// One more reference to `this`, for a task about to start: counted from here.
    ///
    /// The caller reads the drain flag only after [`counted`].
    pub(crate) fn count(this: &Arc<Self>) -> Arc<Self> {
        Arc::clone(this)
    }

    /// The record drains count this listener's tasks by.
    pub(crate) fn listed(&self) -> &Arc<Listed<E>> {
        self.done.listed()
    }
}

/// The fence that separates a dispatch's [`Runner::count`]s from its read of the drain flag. It
/// pairs with the one a drain makes between setting its flag and reading the counts
/// (`lifecycle::wait`): either the drain sees the tasks or the dispatch sees the flag. Right after
/// the locked increments of the counts, it costs about a nanosecond.
#[inline]
pub(crate) fn counted() {
    fence(Ordering::SeqCst);
}

/// One detached task of a listener: holds its [`Runner`] (which counts the task) from when the
/// task is spawned until it ends or is cancelled. Dropped without [`Running::finish`] (the task's
/// future was dropped before its end: its runtime shut down), it reports the task
/// [`Cancelled`](crate::FailureCause::Cancelled).
pub(crate) struct Running<E: Event> {
    runner: Arc<Runner<E>>,
    finished: bool,
}

impl<E: Event> Running<E> {
    /// The guard of a task counted by [`Runner::count`].
    pub(crate) fn new(runner: Arc<Runner<E>>) -> Self {
        Running {
            runner,
            finished: false,
        }
    }

    /// The task ran to its end (its outcome is reported by the task itself).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }

    /// The listener the task runs.
    pub(crate) fn runner(&self) -> &Runner<E> {
        &self.runner
    }
}

impl<E: Event> Drop for Running<E> {
    fn drop(&mut self) {
        if !self.finished {
            FailureCause::Cancelled.log(E::NAME, &self.runner.name);
        }
    }
}

/// Listeners in dispatch order: priority descending, then registration order.
pub(crate) struct Snapshot<E> {
    pub(crate) entries: Box<[Arc<Entry<E>>]>,
    /// When every entry is synchronous, their callbacks in the same order: the array `trigger`'s
    /// hot loop walks (two words per listener; names and priorities stay in `entries`, read only
    /// on a failure). Empty when some entry is async.
    pub(crate) sync_only: Arc<[Box<SyncFn<E>>]>,
    /// Whether any entry is async (the synchronous path then needs the payload in an `Arc`).
    pub(crate) has_async: bool,
}

impl<E: 'static> Snapshot<E> {
    pub(crate) fn new(entries: Vec<Arc<Entry<E>>>) -> Self {
        let has_async = entries.iter().any(|entry| entry.runner.callback.is_async());
        let sync_only = entries
            .iter()
            .filter_map(|entry| match &entry.runner.callback {
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
            .filter(|entry| &*entry.runner.name != name)
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
        Entry::new(
            id,
            priority,
            Arc::from(format!("l{id}")),
            Callback::from_fn(|_: &()| {}),
        )
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
    fn a_listener_counts_the_references_its_tasks_hold_and_nothing_else() {
        let entry = entry(1, 0);
        let listed = Arc::clone(entry.runner.listed());
        let snapshots = [
            Snapshot::with(None, Arc::clone(&entry)),
            Snapshot::new(vec![]),
        ];
        assert_eq!(listed.running(), 0, "listed, no task");
        let tasks = [Runner::count(&entry.runner), Runner::count(&entry.runner)];
        assert_eq!(listed.running(), 2);
        drop(snapshots);
        drop(entry);
        assert_eq!(listed.running(), 2, "its entry gone, its tasks still run");
        drop(tasks);
        assert_eq!(listed.running(), 0);
        assert!(listed.is_gone());
    }

    #[test]
    fn tracks_async_entries() {
        let sync_only = Snapshot::with(None, entry(1, 0));
        assert!(!sync_only.has_async);
        let mixed = Snapshot::with(
            Some(&sync_only),
            Entry::new(
                2,
                0,
                Arc::from("l2"),
                Callback::from_async_fn(|_: Arc<()>| async {}),
            ),
        );
        assert!(mixed.has_async);
    }
}
