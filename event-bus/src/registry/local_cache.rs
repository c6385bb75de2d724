//! A per-thread, per-event-type cache of the global registry's snapshot.
//!
//! The fast path of [`trigger`](crate::Event::trigger) on a global registry reads one shared atomic
//! (the registry's generation, written only when listeners change) and this thread's cached snapshot.
//! No shared memory is written, so threads triggering the same event do not contend. The `#[event]`
//! macro declares one `thread_local!` of this type per event type.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use super::snapshot::Snapshot;

/// A snapshot together with the registry generation it was loaded at.
pub(crate) struct Cached<E> {
    pub(crate) generation: u64,
    pub(crate) snapshot: Option<Arc<Snapshot<E>>>,
}

/// This thread's cached snapshot of one event type's global registry.
///
/// Not part of the public API: the `#[event]` macro names it in the code it generates.
#[doc(hidden)]
pub struct LocalCache<E> {
    slot: RefCell<Option<Rc<Cached<E>>>>,
}

impl<E> fmt::Debug for LocalCache<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCache").finish_non_exhaustive()
    }
}

impl<E> LocalCache<E> {
    /// An empty cache (for the `thread_local!` initializer).
    #[doc(hidden)]
    pub const fn new() -> Self {
        LocalCache {
            slot: RefCell::new(None),
        }
    }

    /// The cached snapshot if it was loaded at `generation`.
    ///
    /// The caller gets its own `Rc`, so no borrow is held while listeners run: a listener may
    /// trigger the same event again (re-entrancy), which may replace the cached entry.
    #[inline]
    pub(crate) fn current(&self, generation: u64) -> Option<Rc<Cached<E>>> {
        let slot = self.slot.try_borrow().ok()?;
        let cached = slot.as_ref()?;
        (cached.generation == generation).then(|| Rc::clone(cached))
    }

    /// Caches `fresh` (unless a borrow is outstanding, which cannot happen outside this module)
    /// and returns it.
    pub(crate) fn store(&self, fresh: Cached<E>) -> Rc<Cached<E>> {
        let fresh = Rc::new(fresh);
        if let Ok(mut slot) = self.slot.try_borrow_mut() {
            *slot = Some(Rc::clone(&fresh));
        }
        fresh
    }
}

impl<E> Default for LocalCache<E> {
    fn default() -> Self {
        LocalCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_the_generation_it_stored() {
        let cache = LocalCache::<()>::new();
        assert!(cache.current(0).is_none(), "empty at first");
        cache.store(Cached {
            generation: 1,
            snapshot: None,
        });
        assert!(cache.current(1).is_some());
        assert!(cache.current(2).is_none(), "stale after a change");
        let held = cache.current(1);
        cache.store(Cached {
            generation: 2,
            snapshot: None,
        });
        assert!(held.is_some(), "a dispatch in flight keeps its snapshot");
        assert!(cache.current(2).is_some());
    }
}
