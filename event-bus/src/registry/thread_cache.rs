//! A per-thread copy of a global registry's snapshot, so that `trigger` on the hot path costs no
//! atomic read-modify-write and writes no shared memory.
//!
//! `#[event]` gives each event type a `thread_local!` [`ThreadCache`] (through
//! `Event::__thread_cache`). The cache holds the snapshot this thread last dispatched and the
//! registry's *generation* at the time it was loaded; every change to the registry publishes a new
//! snapshot and then increments the generation (`Release`). A trigger reads the generation
//! (`Acquire`, a plain load that stays in the reader's cache until the next change) and dispatches
//! the cached snapshot when it matches, or loads the current snapshot first when it does not. So a
//! dispatch that starts after a change *happened before it* (an `unsubscribe` that returned, on
//! this thread or on one that synchronized with this one) sees the change, exactly as without the
//! cache.
//!
//! Reentrancy: a listener may trigger the same event on the same thread. The outer dispatch holds a
//! shared borrow of the cache; a nested trigger borrows it again when it is current, and otherwise
//! (it cannot replace the snapshot the outer dispatch walks) dispatches from the registry's current
//! snapshot without caching it.
//!
//! # How long a removed listener lives on
//!
//! A cached snapshot keeps its listeners (and what their closures captured) alive. After a
//! listener is removed, each thread that cached a snapshot holding it lets go of that snapshot on
//! its next trigger of the same event type that is not nested in a dispatch of it (a nested one
//! cannot replace the list the outer dispatch walks), or when the thread exits. Synchronous
//! dispatches still running hold their snapshot too until they end, and the detached tasks a
//! `trigger` or `spawn` started hold their own listener (not the snapshot) until they end. So the bound is: at most one
//! stale snapshot per (thread, event type), never more, released at that thread's next dispatch of
//! the type or its exit. A thread that never triggers the type again (an idle pool thread) keeps
//! the captures until it exits: a resource whose release must not wait (a connection, a file to
//! flush) should be closed explicitly, not by the listener's `Drop`. Registries made with
//! `Registry::new()` have no thread cache: their captures go with the last dispatch that loaded
//! them.

use std::cell::{Ref, RefCell};
use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "metrics")]
use parking_lot::Mutex;

use super::snapshot::Snapshot;
use crate::dispatch::{self, Dispatch, Listeners};
use crate::event::Event;
use crate::lifecycle::Scope;
use crate::listener::SyncFn;
use crate::report::Report;

/// What one thread remembers of one global registry.
struct Cached<E> {
    /// The registry's generation when `snapshot` was loaded (loaded before it).
    generation: u64,
    snapshot: Loaded<E>,
}

/// A cached snapshot, sorted once (when it is loaded) by the path its dispatches take.
enum Loaded<E> {
    /// Only synchronous listeners, and metrics were off when it was loaded: a hit runs the inlined
    /// hot loop with no further check. The loop's array of callbacks is held here, beside the
    /// snapshot (whose entries name a listener that fails): one pointer fewer between the thread's
    /// cache and the first callback.
    Hot {
        listeners: Arc<[Box<SyncFn<E>>]>,
        snapshot: Arc<Snapshot<E>>,
    },
    /// Anything else: no listeners, async listeners, or metrics being recorded.
    Cold(Option<Arc<Snapshot<E>>>),
}

impl<E> Loaded<E> {
    /// Sorts `snapshot`. Called after the generation was read, so that a change of the metrics
    /// switch (which bumps the generation of every cached registry after it flips) that this
    /// thread's generation already shows is also seen here.
    fn new(snapshot: Option<Arc<Snapshot<E>>>) -> Self {
        match snapshot {
            Some(snapshot) if !snapshot.has_async && !crate::metrics::on() => Loaded::Hot {
                listeners: Arc::clone(&snapshot.sync_only),
                snapshot,
            },
            other => Loaded::Cold(other),
        }
    }

    fn get(&self) -> Option<&Arc<Snapshot<E>>> {
        match self {
            Loaded::Hot { snapshot, .. } => Some(snapshot),
            Loaded::Cold(snapshot) => snapshot.as_ref(),
        }
    }
}

/// One event type's per-thread snapshot cache. Written by `#[event]`; not for users.
#[doc(hidden)]
pub struct ThreadCache<E> {
    slot: RefCell<Option<Cached<E>>>,
}

impl<E> ThreadCache<E> {
    /// An empty cache, for a `thread_local!` with a `const` initializer.
    #[doc(hidden)]
    pub const fn new() -> Self {
        ThreadCache {
            slot: RefCell::new(None),
        }
    }
}

impl<E> Default for ThreadCache<E> {
    fn default() -> Self {
        ThreadCache::new()
    }
}

impl<E: Event> ThreadCache<E> {
    /// Triggers `event` over the current snapshot: the cached one when `generation` (read by the
    /// caller before anything else) still matches, else one freshly loaded by `load`.
    ///
    /// Inlined into the caller: a hit on a [`Loaded::Hot`] snapshot runs the hot loop right there
    /// (a call into the library costs more than the rest of the dispatch); anything else (a miss,
    /// no listeners, async listeners, metrics on) goes through [`ThreadCache::trigger_slow`].
    #[inline(always)]
    pub(crate) fn trigger(
        &self,
        generation: u64,
        load: impl FnOnce() -> Option<Arc<Snapshot<E>>>,
        scope: Scope<'_>,
        event: E,
    ) -> Report {
        if let Ok(slot) = self.slot.try_borrow()
            && let Some(cached) = &*slot
            && cached.generation == generation
            && let Loaded::Hot {
                listeners,
                snapshot,
            } = &cached.snapshot
        {
            return dispatch::run_sync_only(listeners, snapshot, event);
        }
        self.trigger_slow(generation, load, scope, event)
    }

    /// The cached snapshot, borrowed, if it was loaded at `generation` (and the cache is not being
    /// replaced): the hit check of every path but `trigger`'s hot one, which inlines its own.
    fn hit(&self, generation: u64) -> Option<Ref<'_, Loaded<E>>> {
        let slot = self.slot.try_borrow().ok()?;
        Ref::filter_map(slot, |slot| match slot {
            Some(cached) if cached.generation == generation => Some(&cached.snapshot),
            _ => None,
        })
        .ok()
    }

    /// [`ThreadCache::trigger`] off the hot path.
    #[cold]
    #[inline(never)]
    fn trigger_slow(
        &self,
        generation: u64,
        load: impl FnOnce() -> Option<Arc<Snapshot<E>>>,
        scope: Scope<'_>,
        event: E,
    ) -> Report {
        if let Some(cached) = self.hit(generation) {
            return dispatch::trigger(scope, cached.get(), event);
        }
        let snapshot = self.refresh(generation, load);
        dispatch::trigger(scope, snapshot.as_ref(), event)
    }

    /// Spawns `event` over the current snapshot: the cached one, borrowed, when `generation` (read
    /// by the caller before anything else) still matches, else one freshly loaded by `load`.
    #[inline]
    pub(crate) fn spawn(
        &self,
        generation: u64,
        load: impl FnOnce() -> Option<Arc<Snapshot<E>>>,
        scope: Scope<'_>,
        event: E,
    ) -> Dispatch {
        if let Some(cached) = self.hit(generation) {
            let snapshot = cached.get().map(|snapshot| &**snapshot);
            let listeners = Listeners::Cached {
                snapshot,
                generation,
            };
            return dispatch::spawn(scope, listeners, event);
        }
        let snapshot = self.refresh(generation, load);
        dispatch::spawn(scope, Listeners::Owned(snapshot), event)
    }

    /// The current snapshot, owned (for callers that keep it past the call): a clone of
    /// the cached one when `generation` still matches (one reference count increment, no
    /// `arc-swap` debt slot), else one freshly loaded by `load`.
    pub(crate) fn current(
        &self,
        generation: u64,
        load: impl FnOnce() -> Option<Arc<Snapshot<E>>>,
    ) -> Option<Arc<Snapshot<E>>> {
        if let Some(cached) = self.hit(generation) {
            return cached.get().cloned();
        }
        self.refresh(generation, load)
    }

    /// Loads the current snapshot and caches it, unless a dispatch further up this thread's
    /// stack is walking the cached one (a listener triggering its own event): then it is only
    /// returned.
    fn refresh(
        &self,
        generation: u64,
        load: impl FnOnce() -> Option<Arc<Snapshot<E>>>,
    ) -> Option<Arc<Snapshot<E>>> {
        let snapshot = load();
        let Ok(mut slot) = self.slot.try_borrow_mut() else {
            return snapshot;
        };
        let stale = slot.replace(Cached {
            generation,
            snapshot: Loaded::new(snapshot.clone()),
        });
        drop(slot);
        // The stale snapshot may hold the last reference to a removed listener, whose captures'
        // `Drop` may use this registry: dropped with no borrow held.
        drop(stale);
        snapshot
    }
}

/// The global registries that some thread has cached, each by a function that makes its caches
/// stale: what [`invalidate_all`] walks.
#[cfg(feature = "metrics")]
static CACHED: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Lists a global registry (once: `listed` is its flag) among those [`invalidate_all`] reaches.
/// Called before each load into a cache, so no cache holds a snapshot of a registry not listed.
#[cfg(feature = "metrics")]
pub(crate) fn watch(listed: &AtomicBool, invalidate: fn()) {
    if listed.load(Ordering::Acquire) {
        return;
    }
    let mut cached = CACHED.lock();
    if !listed.load(Ordering::Relaxed) {
        cached.push(invalidate);
        listed.store(true, Ordering::Release);
    }
}

/// Makes every cached snapshot stale, so that each thread's next trigger loads and sorts it again:
/// called by the metrics switch after it flips, since a [`Loaded::Hot`] hit does not look at it.
/// A thread whose generation read shows the bump also sees the switch (the bump is `Release`);
/// a registry listed after this walk is loaded after the switch flipped (the lock orders them).
#[cfg(feature = "metrics")]
pub(crate) fn invalidate_all() {
    for invalidate in CACHED.lock().iter() {
        invalidate();
    }
}

impl<E> std::fmt::Debug for ThreadCache<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = self
            .slot
            .try_borrow()
            .ok()
            .and_then(|slot| slot.as_ref().map(|cached| cached.generation));
        f.debug_struct("ThreadCache")
            .field("generation", &generation)
            .finish()
    }
}
