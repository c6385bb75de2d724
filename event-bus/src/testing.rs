//! Helpers for tests: [`Recorder`] captures the events of a type, and
//! [`Registry::idle`](crate::Registry::idle) waits until no detached listener task is running.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::event::Event;
use crate::registry::Registry;
use crate::subscription::SubscriptionGuard;

/// Captures every `E` dispatched on a registry while it lives, for assertions. It listens with
/// the highest priority, so it sees each event before any other listener can fail; dropping it
/// unsubscribes.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::testing::Recorder;
///
/// #[event]
/// #[derive(Debug, Clone, PartialEq)]
/// struct Charged {
///     cents: u64,
/// }
///
/// fn checkout() {
///     Charged { cents: 1200 }.trigger();
/// }
///
/// let recorder = Recorder::<Charged>::new();
/// checkout();
/// assert_eq!(recorder.events(), [Charged { cents: 1200 }]);
/// ```
pub struct Recorder<E: Event> {
    events: Arc<Mutex<Vec<E>>>,
    _subscription: SubscriptionGuard<E>,
}

impl<E: Event> fmt::Debug for Recorder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("event", &E::NAME)
            .field("recorded", &self.len())
            .finish()
    }
}

impl<E: Event + Clone> Recorder<E> {
    /// Records the events of `E`'s global registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// let recorder = Recorder::<Ping>::new();
    /// Ping.trigger();
    /// assert_eq!(recorder.len(), 1);
    /// ```
    pub fn new() -> Self {
        Recorder::on(E::registry())
    }

    /// Records the events of `registry`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let recorder = Recorder::on(&registry);
    /// registry.trigger(Ping);
    /// assert_eq!(recorder.len(), 1);
    /// ```
    pub fn on(registry: &Registry<E>) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let subscription = registry
            .listener()
            .name("event_bus::testing::Recorder")
            .priority(i32::MAX)
            .register(move |event: &E| sink.lock().push(event.clone()));
        Recorder {
            events,
            _subscription: subscription.guard(),
        }
    }
}

impl<E: Event + Clone> Default for Recorder<E> {
    fn default() -> Self {
        Recorder::new()
    }
}

impl<E: Event> Recorder<E> {
    /// The events recorded so far, in dispatch order.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping(u8);
    ///
    /// let registry = Registry::<Ping>::new();
    /// let recorder = Recorder::on(&registry);
    /// registry.trigger(Ping(1));
    /// registry.trigger(Ping(2));
    /// let seen: Vec<u8> = recorder.events().iter().map(|p| p.0).collect();
    /// assert_eq!(seen, [1, 2]);
    /// ```
    pub fn events(&self) -> Vec<E>
    where
        E: Clone,
    {
        self.events.lock().clone()
    }

    /// Takes the events recorded so far, leaving none.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let recorder = Recorder::on(&registry);
    /// registry.trigger(Ping);
    /// assert_eq!(recorder.take().len(), 1);
    /// assert!(recorder.is_empty());
    /// ```
    pub fn take(&self) -> Vec<E> {
        std::mem::take(&mut *self.events.lock())
    }

    /// How many events were recorded.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// assert_eq!(Recorder::on(&Registry::<Ping>::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.events.lock().len()
    }

    /// `true` when nothing was recorded.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// assert!(Recorder::on(&Registry::<Ping>::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `count` events were recorded (events dispatched from other tasks or
    /// threads), or `timeout` passes; `false` on timeout.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::testing::Recorder;
    /// use std::time::Duration;
    ///
    /// #[event]
    /// #[derive(Clone)]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let registry = std::sync::Arc::new(Registry::<Ping>::new());
    /// let recorder = Recorder::on(&registry);
    /// let elsewhere = registry.clone();
    /// tokio::spawn(async move { elsewhere.trigger(Ping) });
    /// assert!(recorder.wait_for(1, Duration::from_secs(5)).await);
    /// # }
    /// ```
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.len() >= count {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
