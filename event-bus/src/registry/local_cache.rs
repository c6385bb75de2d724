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

    /// The cached snapshot if it is from `generation`, else a fresh one from `load` (then cached).
    ///
    /// The caller gets its own `Rc`, so no borrow is held while listeners run: a listener may
    /// trigger the same event again (re-entrancy), which may replace the cached entry.
    #[inline]
    pub(crate) fn get(&self, generation: u64, load: impl FnOnce() -> Cached<E>) -> Rc<Cached<E>> {
        if let Ok(slot) = self.slot.try_borrow()
            && let Some(cached) = slot.as_ref()
            && cached.generation == generation
        {
            return Rc::clone(cached);
        }
        let fresh = Rc::new(load());
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
    fn reloads_only_when_generation_changes() {
        let cache = LocalCache::<()>::new();
        let mut loads = 0;
        let mut load = |generation| {
            cache.get(generation, || {
                loads += 1;
                Cached {
                    generation,
                    snapshot: None,
                }
            })
        };
        load(1);
        load(1);
        load(2);
        load(2);
        assert_eq!(loads, 2);
    }
}
