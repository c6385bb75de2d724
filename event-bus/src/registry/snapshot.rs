//! The immutable listener list a dispatch iterates: rebuilt on every change (copy-on-write).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

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
    pub(crate) fn new(id: u64, priority: i32, name: Arc<str>, callback: Callback<E>) -> Self {
        Entry {
            id,
            priority,
            runner: Arc::new(Runner {
                name,
                callback,
                listed: AtomicBool::new(true),
            }),
        }
    }
}

impl<E> Drop for Entry<E> {
    fn drop(&mut self) {
        // Before the entry's reference goes (the field is dropped after this): a count that no
        // longer includes that reference sees this too (see `Runner::running`).
        self.runner.listed.store(false, Ordering::Relaxed);
    }
}

/// A listener's name and callback: what its detached tasks hold while they run.
///
/// Its strong count is the number of those tasks, plus one while an [`Entry`] lists it: taking a
/// clone for a task is what counts the task for drains (see [`Runner::running`]), as a
/// hand-written `tokio::spawn` of an `Arc`'d closure clones its closure, with no counter of its
/// own to write.
pub(crate) struct Runner<E> {
    pub(crate) name: Arc<str>,
    pub(crate) callback: Callback<E>,
    /// Whether the entry still holds this runner: cleared just before it lets go.
    listed: AtomicBool,
}

impl<E> Runner<E> {
    /// How many tasks of `this` are running, for a caller holding `this` as its own reference
    /// (upgraded from a `Weak`).
    ///
    /// Never below the true count at the moment the strong count is read: a clone taken for a
    /// task is counted from its increment to its decrement, and the entry's reference is
    /// subtracted only while `listed` says it is there. Transiently above it (a concurrent drain's
    /// own reference, an entry letting go), which only makes a drain look once more.
    ///
    /// The `Acquire` fence makes what the tasks no longer counted did (their listener's effects)
    /// visible to the caller: each task's reference is dropped with a `Release` decrement.
    pub(crate) fn running(this: &Arc<Self>) -> usize {
        let strong = Arc::strong_count(this);
        fence(Ordering::Acquire);
        let listed = this.listed.load(Ordering::Relaxed);
        strong.saturating_sub(1 + usize::from(listed))
    }

    /// One more reference to `this`, for a task about to start: counted from here.
    ///
    /// The caller reads the drain flag only after [`counted`].
    pub(crate) fn count(this: &Arc<Self>) -> Arc<Self> {
        Arc::clone(this)
    }
}

/// The fence that separates a dispatch's [`Runner::count`]s from its read of the drain flag. It
/// pairs with the one a drain makes between setting its flag and reading the counts
/// (`lifecycle::wait`): either the drain sees the tasks or the dispatch sees the flag. Right after
/// the locked increments of the counts, it costs about a nanosecond.
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
    pub(crate) sync_only: Box<[Box<SyncFn<E>>]>,
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
    fn a_runner_counts_the_references_its_tasks_hold_and_nothing_else() {
        let entry = entry(1, 0);
        let snapshots = [
            Snapshot::with(None, Arc::clone(&entry)),
            Snapshot::new(vec![]),
        ];
        let mine = Arc::clone(&entry.runner); // the caller's own, as a drain upgrades it
        assert_eq!(Runner::running(&mine), 0, "listed, no task");
        let tasks = [Runner::count(&mine), Runner::count(&mine)];
        assert_eq!(Runner::running(&mine), 2);
        drop(snapshots);
        drop(entry);
        assert_eq!(
            Runner::running(&mine),
            2,
            "its entry gone, its tasks still run"
        );
        drop(tasks);
        assert_eq!(Runner::running(&mine), 0);
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
