//! [`Registry`]: one event type's listeners, as a copy-on-write snapshot.

mod listed;
pub(crate) mod snapshot;
pub(crate) mod thread_cache;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use listed::Listed;
use snapshot::{Entry, Snapshot};

use crate::dispatch::{self, Dispatch, Listeners};
use crate::event::Event;
use crate::lifecycle::{self, Drained, Scope, Tasks, Unfinished};
use crate::listener::{AsyncListener, Callback, Listener, ListenerBuilder, ListenerOutput};
use crate::report::Report;
use crate::static_listeners;
use crate::subscription::{Owner, Subscription};

/// The listeners of one event type.
///
/// Every `#[event]` type owns a global registry, reached through [`Event::registry`] and used by the
/// [`Event`] trait's methods (`UserCreated::register(…)`, `event.trigger()`). `Registry::new()` makes an
/// isolated one with the same methods, for tests and self-contained components.
///
/// Listeners are kept in an immutable snapshot that each change replaces (copy-on-write). A dispatch
/// runs over the snapshot taken when it starts, and no lock is held while a listener runs, so
/// listeners may register, unregister and trigger (even the same event) freely: changes apply from
/// the next dispatch.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// #[derive(Debug)]
/// struct Deployed {
///     version: u32,
/// }
///
/// let registry = Registry::<Deployed>::new();
/// let subscription = registry.register(|e: &Deployed| println!("v{} is live", e.version));
/// assert_eq!(registry.trigger(Deployed { version: 7 }).succeeded(), 1);
///
/// assert!(subscription.unsubscribe());
/// assert_eq!(registry.trigger(Deployed { version: 8 }).listeners(), 0);
/// ```
pub struct Registry<E: 'static> {
    core: Core<E>,
}

enum Core<E: 'static> {
    /// The per-type registry: its state in a `static` of its own, so that the registry's `static`
    /// holds no interior mutability and the compiler knows this variant at every call site.
    Global(&'static State<E>),
    /// A registry made with `Registry::new()`; subscriptions hold it weakly.
    Local(Arc<State<E>>),
}

/// The shared state behind a registry. Public only for the `static` that `#[event]` writes; not
/// for users.
#[doc(hidden)]
pub struct State<E> {
    current: ArcSwapOption<Snapshot<E>>,
    /// Incremented after each new snapshot is published: validates the per-thread caches of a
    /// global registry (see `thread_cache`).
    generation: AtomicU64,
    /// Serializes changes; holds the next listener id.
    writer: Mutex<u64>,
    /// Set by [`Registry::drain`]: new detached work is refused.
    draining: AtomicBool,
    /// Every listener registered, until it is gone for good: what drains count its detached tasks
    /// by (see `listed`).
    listeners: Mutex<Vec<Arc<Listed<E>>>>,
    /// Whether this (global) registry is listed among those the metrics switch invalidates.
    #[cfg(feature = "metrics")]
    listed: AtomicBool,
}

impl<E> std::fmt::Debug for State<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<E: Event> State<E> {
    /// An empty registry state, for a `static`.
    #[doc(hidden)]
    pub const fn new() -> Self {
        State {
            current: ArcSwapOption::const_empty(),
            generation: AtomicU64::new(0),
            writer: Mutex::new(0),
            draining: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
            #[cfg(feature = "metrics")]
            listed: AtomicBool::new(false),
        }
    }

    /// This registry's drain flag, for refusing detached work.
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            draining: &self.draining,
        }
    }

    fn load(&self) -> Option<Arc<Snapshot<E>>> {
        self.current.load_full()
    }

    /// The current snapshot of the global registry, for a thread's cache: installs the
    /// `#[listener]` functions first and, with metrics compiled in, lists the registry among those
    /// whose caches the metrics switch makes stale.
    fn load_for_cache(&self) -> Option<Arc<Snapshot<E>>> {
        static_listeners::ensure_installed();
        #[cfg(feature = "metrics")]
        thread_cache::watch(&self.listed, || {
            if let Core::Global(state) = &E::registry().core {
                state.generation.fetch_add(1, Ordering::Release);
            }
        });
        self.load()
    }

    fn insert(&self, priority: i32, name: Arc<str>, callback: Callback<E>) -> u64 {
        let (id, previous) = {
            let mut next_id = self.writer.lock();
            let id = *next_id;
            *next_id += 1;
            let entry = Entry::new(id, priority, name, callback);
            let listed = entry.runner.listed();
            {
                let mut listeners = self.listeners.lock();
                listeners.retain(|listed| !listed.is_gone());
                listeners.push(Arc::clone(listed));
            }
            lifecycle::know(Arc::clone(listed) as Arc<dyn Tasks>);
            let current = self.current.load();
            (id, self.publish(Snapshot::with(current.as_deref(), entry)))
        };
        drop(previous); // outside the lock, like every snapshot this registry lets go of
        id
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.current
            .load()
            .as_deref()
            .is_some_and(|snapshot| snapshot.entries.iter().any(|entry| entry.id == id))
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        let previous = {
            let _writer = self.writer.lock();
            let current = self.current.load();
            match current.as_deref().and_then(|snapshot| snapshot.without(id)) {
                Some(next) => self.publish(next),
                None => return false,
            }
        };
        // The removed listener (its closure and whatever it captured) may be dropped here, after
        // the lock is released: a captured value whose `Drop` unsubscribes or registers on this
        // registry must not deadlock.
        drop(previous);
        true
    }

    pub(crate) fn remove_named(&self, name: &str) -> usize {
        let (previous, removed) = {
            let _writer = self.writer.lock();
            let current = self.current.load();
            match current
                .as_deref()
                .and_then(|snapshot| snapshot.without_named(name))
            {
                Some((next, removed)) => (self.publish(next), removed),
                None => return 0,
            }
        };
        drop(previous); // after the lock, as in `remove`
        removed
    }

    /// Replaces the snapshot and returns the previous one, to be dropped once the writer lock is
    /// released; dispatches already running keep the one they loaded. Called with the lock held.
    #[must_use = "the previous snapshot must be dropped after the writer lock is released"]
    fn publish(&self, snapshot: Snapshot<E>) -> Option<Arc<Snapshot<E>>> {
        let snapshot = Arc::new(snapshot);
        let previous = self.current.swap(Some(snapshot));
        // After the swap: a thread that sees the new generation loads the new snapshot.
        self.generation.fetch_add(1, Ordering::Release);
        previous
    }
}

impl<E: Event> State<E> {
    /// The detached tasks of this registry still running (of any listener it ever had).
    fn unfinished(&self) -> Vec<Unfinished> {
        let listeners = self.listeners.lock().clone();
        listeners
            .iter()
            .flat_map(|listed| listed.unfinished())
            .collect()
    }
}

impl<E: Event> Registry<E> {
    /// Creates an empty registry, isolated from the event's global one.
    ///
    /// `#[listener]` functions are registered in the global registry only.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let mine = Registry::<Ping>::new();
    /// mine.register(|_: &Ping| {});
    /// assert_eq!(mine.len(), 1);
    /// assert_eq!(Ping::registry().len(), 0);
    /// ```
    pub fn new() -> Self {
        Registry {
            core: Core::Local(Arc::new(State::new())),
        }
    }

    /// The global registry of an event type, over its state in `state`. Used by the code
    /// `#[event]` generates; not for users.
    #[doc(hidden)]
    pub const fn __global(state: &'static State<E>) -> Self {
        Registry {
            core: Core::Global(state),
        }
    }

    pub(crate) fn state(&self) -> &State<E> {
        match &self.core {
            Core::Global(state) => state,
            Core::Local(state) => state,
        }
    }

    fn owner(&self) -> Owner<E> {
        match &self.core {
            Core::Global(_) => Owner::Global,
            Core::Local(state) => Owner::Local(Arc::downgrade(state)),
        }
    }

    /// Adds a listener; `#[listener]` registration skips the static-listener installation.
    pub(crate) fn insert(
        &self,
        priority: i32,
        name: Arc<str>,
        callback: Callback<E>,
    ) -> Subscription<E> {
        if let Core::Global(_) = self.core {
            static_listeners::ensure_installed();
        }
        self.insert_unchecked(priority, name, callback)
    }

    pub(crate) fn insert_unchecked(
        &self,
        priority: i32,
        name: Arc<str>,
        callback: Callback<E>,
    ) -> Subscription<E> {
        let id = self.state().insert(priority, Arc::clone(&name), callback);
        Subscription::new(self.owner(), id, name)
    }

    /// The current snapshot (after installing `#[listener]` functions, for a global registry).
    fn snapshot(&self) -> Option<Arc<Snapshot<E>>> {
        match &self.core {
            Core::Global(state) => {
                // As in `trigger`: from this thread's cache while the generation is unchanged.
                let generation = state.generation.load(Ordering::Acquire);
                let load = || state.load_for_cache();
                E::__thread_cache()
                    .and_then(|cache| cache.try_with(|cache| cache.current(generation, load)).ok())
                    .unwrap_or_else(load)
            }
            Core::Local(state) => state.load(),
        }
    }

    /// Registers a synchronous listener: a closure or `fn` taking `&E`, returning `()` or
    /// `Result<(), impl Into<BoxError>>`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| println!("pong"));
    /// assert_eq!(registry.trigger(Ping).succeeded(), 1);
    /// ```
    pub fn register<F, R>(&self, listener: F) -> Subscription<E>
    where
        F: Fn(&E) -> R + Send + Sync + 'static,
        R: ListenerOutput,
    {
        self.listener().register(listener)
    }

    /// Registers an async listener: a closure or `fn` taking `Arc<E>` and returning a `Send`
    /// future of `()` or `Result<(), impl Into<BoxError>>`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Ping>::new();
    /// registry.register_async(|_: Arc<Ping>| async { Ok::<_, std::io::Error>(()) });
    /// assert_eq!(registry.deliver(Ping).await.succeeded(), 1);
    /// # }
    /// ```
    pub fn register_async<F, Fut>(&self, listener: F) -> Subscription<E>
    where
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        self.listener().register_async(listener)
    }

    /// Registers a type implementing [`Listener`].
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::{BoxError, Listener};
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// struct Logger;
    /// impl Listener<Ping> for Logger {
    ///     fn handle(&self, _: &Ping) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register_listener(Logger);
    /// assert_eq!(registry.trigger(Ping).succeeded(), 1);
    /// ```
    pub fn register_listener<L: Listener<E>>(&self, listener: L) -> Subscription<E> {
        self.listener().register_listener(listener)
    }

    /// Registers a type implementing [`AsyncListener`].
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::{AsyncListener, BoxError};
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// struct Forwarder;
    /// impl AsyncListener<Ping> for Forwarder {
    ///     async fn handle(&self, _: Arc<Ping>) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register_async_listener(Forwarder);
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn register_async_listener<L: AsyncListener<E>>(&self, listener: L) -> Subscription<E> {
        self.listener().register_async_listener(listener)
    }

    /// Starts registering a listener with a name and/or a priority.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("audit").priority(100).register(|_: &Ping| {});
    /// assert_eq!(registry.listener_names(), ["audit"]);
    /// ```
    pub fn listener(&self) -> ListenerBuilder<'_, E> {
        ListenerBuilder::new(self)
    }

    /// Removes the listener behind `subscription`; `false` if it was already removed.
    ///
    /// Same as [`Subscription::unsubscribe`]. A subscription from another registry is not
    /// touched (and `false` is returned).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let subscription = registry.register(|_: &Ping| {});
    /// assert!(registry.unregister(subscription));
    /// assert!(registry.is_empty());
    /// ```
    pub fn unregister(&self, subscription: Subscription<E>) -> bool {
        if subscription.belongs_to(&self.owner()) {
            subscription.unsubscribe()
        } else {
            false
        }
    }

    /// Removes every listener named `name` and returns how many there were: the way to remove a
    /// `#[listener]` function, whose default name is its path (`my_crate::module::function`; see
    /// [`listener_names`](Registry::listener_names)).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// #[listener(name = "audit")]
    /// fn audit(_: &Ping) {}
    ///
    /// assert_eq!(Ping::registry().unregister_named("audit"), 1);
    /// assert!(Ping::registry().is_empty());
    /// ```
    pub fn unregister_named(&self, name: &str) -> usize {
        if let Core::Global(_) = self.core {
            // `#[listener]` functions are installed first, so that they cannot come back later.
            static_listeners::ensure_installed();
        }
        self.state().remove_named(name)
    }

    /// Dispatches synchronously on this thread: sync listeners run in priority order; async
    /// listeners are spawned on the ambient tokio runtime (counted as
    /// [`detached`](Report::detached)), or reported as [`NoRuntime`](crate::FailureCause::NoRuntime)
    /// failures when there is none.
    ///
    /// A listener that returns an error or panics is recorded in the [`Report`] and the others
    /// still run.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// fn broken(_: &Ping) {
    ///     panic!("first fails");
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(broken);
    /// registry.register(|_: &Ping| {});
    /// let report = registry.trigger(Ping);
    /// assert_eq!((report.succeeded(), report.failures().len()), (1, 1));
    /// ```
    #[inline(always)]
    pub fn trigger(&self, event: E) -> Report {
        match &self.core {
            Core::Global(state) => {
                // The thread's cached snapshot, valid while the generation is unchanged: no atomic
                // read-modify-write and no shared write per dispatch. The `#[listener]` functions
                // are installed before any snapshot is loaded into a cache, so a cache hit needs
                // no check that they are.
                let generation = state.generation.load(Ordering::Acquire);
                let mut event = Some(event);
                if let Some(cache) = E::__thread_cache()
                    && let Ok(report) = cache.try_with(|cache| match event.take() {
                        Some(event) => cache.trigger(
                            generation,
                            || state.load_for_cache(),
                            state.scope(),
                            event,
                        ),
                        None => Report::new(0),
                    })
                {
                    return report;
                }
                // No cache (a hand-written `Event` impl) or this thread's cache is gone (a trigger
                // from a thread-local destructor).
                match event {
                    Some(event) => Self::trigger_global_uncached(state, event),
                    None => Report::new(0),
                }
            }
            Core::Local(state) => Self::trigger_uncached(state, event),
        }
    }

    /// [`Registry::trigger_uncached`] for a global registry, whose `#[listener]` functions may not be
    /// installed yet.
    #[cold]
    #[inline(never)]
    fn trigger_global_uncached(state: &State<E>, event: E) -> Report {
        static_listeners::ensure_installed();
        Self::trigger_uncached(state, event)
    }

    /// A dispatch over the registry's current snapshot, through an `arc-swap` guard (not a clone:
    /// no shared counter is written, so concurrent triggers of the same event do not contend).
    #[inline(never)]
    fn trigger_uncached(state: &State<E>, event: E) -> Report {
        dispatch::trigger(state.scope(), state.current.load().as_ref(), event)
    }

    /// Dispatches every listener in its own tokio task, sharing the payload through an `Arc`
    /// (the payload is never cloned). Await the returned [`Dispatch`] for the [`Report`], or drop it
    /// to let the listeners finish in the background. Outside a tokio runtime, every listener is
    /// reported as [`NoRuntime`](crate::FailureCause::NoRuntime).
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| {});
    /// registry.register_async(|_: Arc<Ping>| async {});
    /// let report = registry.spawn(Ping).await;
    /// assert_eq!(report.succeeded(), 2);
    /// # }
    /// ```
    pub fn spawn(&self, event: E) -> Dispatch {
        match &self.core {
            Core::Global(state) => {
                // As in `trigger`: over this thread's cached snapshot, borrowed.
                let generation = state.generation.load(Ordering::Acquire);
                let mut event = Some(event);
                if let Some(cache) = E::__thread_cache()
                    && let Ok(dispatch) = cache.try_with(|cache| match event.take() {
                        Some(event) => {
                            cache.spawn(generation, || state.load_for_cache(), state.scope(), event)
                        }
                        None => Dispatch::finished(E::NAME, Report::new(0)),
                    })
                {
                    return dispatch;
                }
                let snapshot = state.load_for_cache();
                match event {
                    Some(event) => {
                        dispatch::spawn(state.scope(), Listeners::Owned(snapshot), event)
                    }
                    None => Dispatch::finished(E::NAME, Report::new(0)),
                }
            }
            Core::Local(state) => {
                dispatch::spawn(state.scope(), Listeners::Owned(state.load()), event)
            }
        }
    }

    /// The name of the listener at dispatch position `index` in this event's global registry, if
    /// the registry is still at `generation` (its snapshot then is the one a dispatch of that
    /// generation ran): how a [`Dispatch`] names a cancelled task without keeping the snapshot.
    pub(crate) fn global_listener_name(generation: u64, index: usize) -> Option<Arc<str>> {
        let Core::Global(state) = &E::registry().core else {
            return None;
        };
        // No change in progress: the generation and the current snapshot agree.
        let _writer = state.writer.lock();
        if state.generation.load(Ordering::Acquire) != generation {
            return None;
        }
        let snapshot = state.current.load();
        let entry = snapshot.as_deref()?.entries.get(index)?;
        Some(Arc::clone(&entry.runner.name))
    }

    /// Graceful shutdown of this registry: from now on it refuses new detached work (async
    /// listeners run by [`trigger`](Registry::trigger), the tasks of [`spawn`](Registry::spawn)),
    /// reporting them as [`ShuttingDown`](crate::FailureCause::ShuttingDown); then waits until
    /// every listener task of this registry already running has finished, or `deadline` passes.
    /// Returns what did not finish (counted twice, the second time a millisecond after the
    /// deadline, so that a task a racing dispatch counted and refused in between is not
    /// reported). [`reopen`](Registry::reopen) accepts work again; the whole
    /// program drains with [`event_bus::drain`](crate::drain). A dispatch racing the start of the
    /// drain has each of its tasks either refused or waited for.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// #[event]
    /// struct Save;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Save>::new();
    /// registry.listener().name("slow").register_async(|_: Arc<Save>| async {
    ///     tokio::time::sleep(Duration::from_secs(60)).await;
    /// });
    /// registry.trigger(Save);
    /// let drained = registry.drain(Duration::from_millis(20)).await;
    /// assert_eq!(drained.unfinished()[0].listener(), "slow");
    /// assert!(!registry.trigger(Save).is_success(), "refused while drained");
    /// registry.reopen();
    /// # }
    /// ```
    pub async fn drain(&self, deadline: Duration) -> Drained {
        let state = self.state();
        state.draining.store(true, Ordering::SeqCst);
        lifecycle::wait(|| state.unfinished(), Some(deadline)).await
    }

    /// Accepts detached work again after [`drain`](Registry::drain).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Save;
    ///
    /// Registry::<Save>::new().reopen();
    /// ```
    pub fn reopen(&self) {
        self.state().draining.store(false, Ordering::SeqCst);
    }

    /// Waits until no listener task of this registry is running (the async listeners `trigger`
    /// detached, the tasks of `spawn`): for tests that assert on what detached listeners did.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Ping>::new();
    /// let done = Arc::new(AtomicBool::new(false));
    /// let flag = done.clone();
    /// registry.register_async(move |_: Arc<Ping>| {
    ///     let flag = flag.clone();
    ///     async move { flag.store(true, Ordering::SeqCst) }
    /// });
    /// registry.trigger(Ping);
    /// registry.idle().await;
    /// assert!(done.load(Ordering::SeqCst));
    /// # }
    /// ```
    pub async fn idle(&self) {
        let state = self.state();
        lifecycle::wait(|| state.unfinished(), None).await;
    }

    /// Dispatches every listener in order in the caller's task, awaiting each async listener before
    /// the next one starts (back-pressure). Needs no tokio runtime: any executor can poll it. The
    /// listener list is the one current when `deliver` is called.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = Registry::<Ping>::new();
    /// registry.register_async(|_: Arc<Ping>| async { Err::<(), _>("unreachable host") });
    /// let report = registry.deliver(Ping).await;
    /// assert_eq!(report.failures().len(), 1);
    /// # }
    /// ```
    pub fn deliver(&self, event: E) -> impl Future<Output = Report> + Send + 'static + use<E> {
        dispatch::deliver(self.snapshot(), event)
    }

    /// The number of listeners.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.register(|_: &Ping| {});
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.snapshot().map_or(0, |snapshot| snapshot.entries.len())
    }

    /// `true` when no listener is registered.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// assert!(Registry::<Ping>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The listeners' names, in dispatch order.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("a").register(|_: &Ping| {});
    /// registry.listener().name("b").priority(1).register(|_: &Ping| {});
    /// assert_eq!(registry.listener_names(), ["b", "a"]);
    /// ```
    pub fn listener_names(&self) -> Vec<String> {
        self.snapshot().map_or_else(Vec::new, |snapshot| {
            snapshot
                .entries
                .iter()
                .map(|entry| entry.runner.name.to_string())
                .collect()
        })
    }
}

impl<E: Event> Default for Registry<E> {
    fn default() -> Self {
        Registry::new()
    }
}

impl<E: Event> fmt::Debug for Registry<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("event", &E::NAME)
            .field(
                "scope",
                &match self.core {
                    Core::Global(_) => "global",
                    Core::Local(_) => "local",
                },
            )
            .field("listeners", &self.listener_names())
            .finish()
    }
}
