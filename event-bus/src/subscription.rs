//! [`Subscription`]: the handle every `register` returns, and its drop guard.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::event::Event;
use crate::registry::State;

/// Which registry a subscription belongs to.
pub(crate) enum Owner<E> {
    /// The event type's global registry, [`Event::registry`].
    Global,
    /// A `Registry::new()`; held weakly so a subscription does not keep its registry alive.
    Local(Weak<State<E>>),
}

/// One registered listener. [`unsubscribe`](Subscription::unsubscribe) removes exactly that listener.
///
/// Dropping a `Subscription` leaves the listener registered (listeners usually live as long as the
/// program); call [`guard`](Subscription::guard) to get a handle that removes it on drop.
///
/// After removal the listener is never called by a later dispatch; a dispatch already running
/// finishes with the list it started with. The listener (and what it captured) is dropped as soon
/// as no running dispatch holds it.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// let registry = Registry::<Ping>::new();
/// let keep = registry.register(|_: &Ping| {});
/// let remove = registry.register(|_: &Ping| {});
/// assert!(remove.unsubscribe());
/// assert_eq!(registry.len(), 1);
/// assert!(keep.is_registered());
/// ```
pub struct Subscription<E: Event> {
    owner: Owner<E>,
    id: u64,
    name: Arc<str>,
}

impl<E: Event> Subscription<E> {
    pub(crate) fn new(owner: Owner<E>, id: u64, name: Arc<str>) -> Self {
        Subscription { owner, id, name }
    }

    /// The listener's name.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// assert_eq!(registry.listener().name("x").register(|_: &Ping| {}).name(), "x");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `true` while the listener is still registered.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let subscription = registry.register(|_: &Ping| {});
    /// assert!(subscription.is_registered());
    /// drop(registry);
    /// assert!(!subscription.is_registered());
    /// ```
    pub fn is_registered(&self) -> bool {
        let contains = |state: &State<E>| state.contains(self.id);
        match &self.owner {
            Owner::Global => contains(E::registry().state()),
            Owner::Local(state) => state.upgrade().is_some_and(|state| contains(&state)),
        }
    }

    /// Removes the listener. Returns `false` if it was already removed (or its registry dropped).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let subscription = registry.register(|_: &Ping| {});
    /// assert!(subscription.unsubscribe());
    /// assert_eq!(registry.trigger(Ping).listeners(), 0);
    /// ```
    pub fn unsubscribe(self) -> bool {
        self.remove()
    }

    /// Turns this subscription into a guard that removes the listener when dropped.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// {
    ///     let _guard = registry.register(|_: &Ping| {}).guard();
    ///     assert_eq!(registry.len(), 1);
    /// }
    /// assert!(registry.is_empty());
    /// ```
    pub fn guard(self) -> SubscriptionGuard<E> {
        SubscriptionGuard {
            subscription: Some(self),
        }
    }

    pub(crate) fn belongs_to(&self, owner: &Owner<E>) -> bool {
        match (&self.owner, owner) {
            (Owner::Global, Owner::Global) => true,
            (Owner::Local(mine), Owner::Local(theirs)) => Weak::ptr_eq(mine, theirs),
            _ => false,
        }
    }

    /// A second handle on the same listener.
    pub(crate) fn duplicate(&self) -> Self {
        let owner = match &self.owner {
            Owner::Global => Owner::Global,
            Owner::Local(state) => Owner::Local(Weak::clone(state)),
        };
        Subscription::new(owner, self.id, Arc::clone(&self.name))
    }

    pub(crate) fn remove(&self) -> bool {
        match &self.owner {
            Owner::Global => E::registry().state().remove(self.id),
            Owner::Local(state) => state.upgrade().is_some_and(|state| state.remove(self.id)),
        }
    }
}

impl<E: Event> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("event", &E::NAME)
            .field("listener", &self.name)
            .field("id", &self.id)
            .finish()
    }
}

/// Removes its listener when dropped; from [`Subscription::guard`].
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// struct Component {
///     _listening: SubscriptionGuard<Ping>,
/// }
///
/// let registry = Registry::<Ping>::new();
/// let component = Component { _listening: registry.register(|_: &Ping| {}).guard() };
/// assert_eq!(registry.len(), 1);
/// drop(component);
/// assert_eq!(registry.len(), 0);
/// ```
#[must_use = "dropping the guard removes the listener at once"]
pub struct SubscriptionGuard<E: Event> {
    subscription: Option<Subscription<E>>,
}

impl<E: Event> SubscriptionGuard<E> {
    /// Gives back the plain subscription: the listener then stays registered when this is dropped.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let subscription = registry.register(|_: &Ping| {}).guard().disarm();
    /// assert!(subscription.is_registered());
    /// ```
    pub fn disarm(mut self) -> Subscription<E> {
        match self.subscription.take() {
            Some(subscription) => subscription,
            None => unreachable!("a guard holds its subscription until dropped or disarmed"),
        }
    }
}

impl<E: Event> Drop for SubscriptionGuard<E> {
    fn drop(&mut self) {
        if let Some(subscription) = self.subscription.take() {
            subscription.remove();
        }
    }
}

impl<E: Event> fmt::Debug for SubscriptionGuard<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SubscriptionGuard")
            .field(&self.subscription)
            .finish()
    }
}
