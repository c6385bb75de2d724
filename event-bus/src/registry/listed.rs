//! What drains count a listener's detached tasks by, without holding the listener: its name and
//! weak references to its runner and entry.
//!
//! A listener's [`Runner`] is held by its [`Entry`] while the entry lives (while some snapshot
//! lists it) and by each of its running tasks. So the runner's strong count, less one while the
//! entry lives, is the number of tasks. Reading both through `Weak`s adds no reference that
//! another drain could take for a task. When the last reference goes, the runner's callback (and
//! what it captured) is dropped, possibly by the last task; the runner's last field, a [`Done`],
//! then marks the listener destroyed, and until then a drain counts that destruction as one
//! unfinished task of the listener, so that a drain never returns while a listener's captures are
//! still being dropped.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Weak};

use super::snapshot::{Entry, Runner};
use crate::event::Event;
use crate::lifecycle::{Tasks, Unfinished};

/// One listener as the drains see it.
pub(crate) struct Listed<E> {
    name: Arc<str>,
    runner: Weak<Runner<E>>,
    entry: Weak<Entry<E>>,
    /// Set once the runner's callback has been dropped.
    destroyed: AtomicBool,
}

impl<E> Listed<E> {
    pub(crate) fn new(name: Arc<str>, runner: Weak<Runner<E>>, entry: Weak<Entry<E>>) -> Self {
        Listed {
            name,
            runner,
            entry,
            destroyed: AtomicBool::new(false),
        }
    }

    /// How many of the listener's tasks run (or, once no task or entry holds it, 1 while its
    /// callback is being dropped).
    ///
    /// Never below the true count at the moment the runner's count is read: an entry is dropped
    /// before its reference to the runner, so a count without that reference also sees the entry
    /// gone (the `Acquire` fence pairs with the `Release` decrements). It can be one above for
    /// the instant an entry is being dropped, which only makes a drain look again. The fence also
    /// makes what the tasks no longer counted did visible to the caller.
    pub(crate) fn running(&self) -> usize {
        let strong = self.runner.strong_count();
        fence(Ordering::Acquire);
        if strong == 0 {
            return usize::from(!self.destroyed.load(Ordering::Acquire));
        }
        let entry = usize::from(self.entry.strong_count() > 0);
        strong.saturating_sub(entry)
    }

    /// Whether the listener is gone for good: no entry, no task, callback dropped.
    pub(crate) fn is_gone(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }
}

impl<E: Event> Tasks for Listed<E> {
    fn unfinished(&self) -> Vec<Unfinished> {
        (0..self.running())
            .map(|_| Unfinished::new(E::NAME, Arc::clone(&self.name)))
            .collect()
    }

    fn is_gone(&self) -> bool {
        Listed::is_gone(self)
    }
}

/// The runner's last field: when it is dropped, the fields before it (the callback) are gone.
pub(crate) struct Done<E>(Arc<Listed<E>>);

impl<E> Done<E> {
    pub(crate) fn new(listed: Listed<E>) -> Self {
        Done(Arc::new(listed))
    }

    pub(crate) fn listed(&self) -> &Arc<Listed<E>> {
        &self.0
    }
}

impl<E> Drop for Done<E> {
    fn drop(&mut self) {
        self.0.destroyed.store(true, Ordering::Release);
    }
}
