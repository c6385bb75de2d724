//! The shapes a listener can take: closures and fn items (sync or async), or types implementing
//! [`Listener`] / [`AsyncListener`]; plus [`ListenerBuilder`] for a name and a priority.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::event::Event;
use crate::registry::Registry;
use crate::report::BoxError;
use crate::subscription::Subscription;

/// What a listener returns: `()` or `Result<(), E>` with `E: Into<BoxError>`.
///
/// You rarely name this trait; it is what lets both of these compile:
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Saved;
///
/// Saved::register(|_: &Saved| println!("saved"));
/// Saved::register(|_: &Saved| -> Result<(), std::io::Error> { Ok(()) });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid listener return type",
    label = "listeners return `()` or `Result<(), E>`",
    note = "return `()` or a `Result<(), E>` whose error converts into `Box<dyn Error + Send + Sync>`",
    note = "a closure whose body only panics returns `!`: write it as a `fn` returning `()`"
)]
pub trait ListenerOutput {
    /// Converts the listener's return value into the registry's common form.
    ///
    /// ```
    /// use event_bus::ListenerOutput;
    ///
    /// assert!(().into_result().is_ok());
    /// assert!(Err::<(), _>("bad").into_result().is_err());
    /// ```
    fn into_result(self) -> Result<(), BoxError>;
}

impl ListenerOutput for () {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<Err> ListenerOutput for Result<(), Err>
where
    Err: Into<BoxError>,
{
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// A synchronous listener as a type, for listeners that carry configuration or state.
///
/// Closures and `fn` items need no impl: pass them to [`Event::register`] directly.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::{BoxError, Listener};
///
/// #[event]
/// struct UserCreated {
///     email: String,
/// }
///
/// struct AdminNotifier {
///     admin: String,
/// }
///
/// impl Listener<UserCreated> for AdminNotifier {
///     fn handle(&self, event: &UserCreated) -> Result<(), BoxError> {
///         println!("to {}: {} signed up", self.admin, event.email);
///         Ok(())
///     }
/// }
///
/// let registry = Registry::<UserCreated>::new();
/// registry.register_listener(AdminNotifier { admin: "root@example.com".into() });
/// let report = registry.trigger(UserCreated { email: "a@b.c".into() });
/// assert_eq!(report.succeeded(), 1);
/// ```
pub trait Listener<E>: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: &E) -> Result<(), BoxError>;
}

/// An asynchronous listener as a type.
///
/// Async closures and `async fn` items need no impl: pass them to [`Event::register_async`].
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::{AsyncListener, BoxError};
/// use std::sync::Arc;
///
/// #[event]
/// struct UserCreated {
///     email: String,
/// }
///
/// struct Mailer;
///
/// impl AsyncListener<UserCreated> for Mailer {
///     async fn handle(&self, event: Arc<UserCreated>) -> Result<(), BoxError> {
///         println!("sending welcome mail to {}", event.email);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::<UserCreated>::new();
/// registry.register_async_listener(Mailer);
/// let report = registry.deliver(UserCreated { email: "a@b.c".into() }).await;
/// assert_eq!(report.succeeded(), 1);
/// # }
/// ```
pub trait AsyncListener<E>: Send + Sync + 'static {
    /// Handles one event; the payload is shared, not cloned.
    fn handle(&self, event: Arc<E>) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A boxed listener future.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A synchronous listener with its concrete type erased, as the hot loop of `trigger` calls it.
pub(crate) type SyncFn<E> = dyn Fn(&E) -> Result<(), BoxError> + Send + Sync;

/// A synchronous listener shared between the snapshots that hold it.
///
/// `Arc<dyn Fn>` would do for sharing, but calling through it computes the closure's offset in
/// the `Arc` allocation from the vtable's alignment before every call. So the hot array of a
/// snapshot holds instead a `Box<SyncFn>` made by [`SharedSync::boxed`]: a closure around a clone
/// of the concrete `Arc<F>`, whose offset is a constant (and which is never read at all when `F`
/// captures nothing, like a `#[listener]` function): the hot loop then costs what a plain
/// `Vec<Box<dyn Fn>>` loop costs.
pub(crate) trait SharedSync<E>: Send + Sync {
    /// Runs the listener.
    fn call(&self, event: &E) -> Result<(), BoxError>;

    /// A box for a snapshot's hot array, sharing this listener.
    fn boxed(self: Arc<Self>) -> Box<SyncFn<E>>;
}

impl<E, F> SharedSync<E> for F
where
    F: Fn(&E) -> Result<(), BoxError> + Send + Sync + 'static,
{
    #[inline]
    fn call(&self, event: &E) -> Result<(), BoxError> {
        self(event)
    }

    fn boxed(self: Arc<Self>) -> Box<SyncFn<E>> {
        Box::new(move |event: &E| (*self)(event))
    }
}

/// An async listener with its concrete type erased.
pub(crate) type AsyncFn<E> = dyn Fn(Arc<E>) -> BoxFuture + Send + Sync;

/// A listener with its concrete type erased (a vtable call, no `Any`).
pub(crate) enum Callback<E> {
    Sync(Arc<dyn SharedSync<E>>),
    Async(Arc<AsyncFn<E>>),
}

impl<E> Clone for Callback<E> {
    fn clone(&self) -> Self {
        match self {
            Callback::Sync(f) => Callback::Sync(Arc::clone(f)),
            Callback::Async(f) => Callback::Async(Arc::clone(f)),
        }
    }
}

impl<E: Send + Sync + 'static> Callback<E> {
    pub(crate) fn from_fn<F, R>(f: F) -> Self
    where
        F: Fn(&E) -> R + Send + Sync + 'static,
        R: ListenerOutput,
    {
        Callback::Sync(Arc::new(move |event: &E| f(event).into_result()))
    }

    pub(crate) fn from_async_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        Callback::Async(Arc::new(move |event: Arc<E>| {
            let future = f(event);
            Box::pin(async move { future.await.into_result() }) as BoxFuture
        }))
    }

    pub(crate) fn from_listener<L: Listener<E>>(listener: L) -> Self {
        Callback::Sync(Arc::new(move |event: &E| listener.handle(event)))
    }

    pub(crate) fn from_async_listener<L: AsyncListener<E>>(listener: L) -> Self {
        let listener = Arc::new(listener);
        Callback::Async(Arc::new(move |event: Arc<E>| {
            let listener = Arc::clone(&listener);
            Box::pin(async move { listener.handle(event).await }) as BoxFuture
        }))
    }
}

impl<E> Callback<E> {
    pub(crate) fn is_async(&self) -> bool {
        matches!(self, Callback::Async(_))
    }
}

/// Registers one listener with a name and a priority; from [`Event::listener`] or
/// [`Registry::listener`].
///
/// - **name**: used in [`Report`](crate::Report) failures and `tracing` output. Default: the path of the
///   function or closure type, e.g. `my_app::notifier::on_user_created`.
/// - **priority**: higher runs first (in [`trigger`](Event::trigger) and
///   [`deliver`](Event::deliver)); equal priorities keep registration order. Default: 0.
///
/// ```
/// use event_bus::prelude::*;
/// use std::sync::{Arc, Mutex};
///
/// #[event]
/// struct Step;
///
/// let order = Arc::new(Mutex::new(Vec::new()));
/// let registry = Registry::<Step>::new();
/// let log = order.clone();
/// registry.listener().name("late").priority(-5).register(move |_: &Step| log.lock().unwrap().push("late"));
/// let log = order.clone();
/// registry.listener().name("early").priority(10).register(move |_: &Step| log.lock().unwrap().push("early"));
///
/// registry.trigger(Step);
/// assert_eq!(*order.lock().unwrap(), ["early", "late"]);
/// ```
#[must_use = "a ListenerBuilder does nothing until one of its `register` methods is called"]
pub struct ListenerBuilder<'r, E: Event> {
    registry: &'r Registry<E>,
    name: Option<Arc<str>>,
    priority: i32,
    once: bool,
}

impl<E: Event> fmt::Debug for ListenerBuilder<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBuilder")
            .field("event", &E::NAME)
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("once", &self.once)
            .finish()
    }
}

impl<'r, E: Event> ListenerBuilder<'r, E> {
    pub(crate) fn new(registry: &'r Registry<E>) -> Self {
        ListenerBuilder {
            registry,
            name: None,
            priority: 0,
            once: false,
        }
    }

    /// Names the listener (shown in reports and logs).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// let subscription = registry.listener().name("pinger").register(|_: &Ping| {});
    /// assert_eq!(subscription.name(), "pinger");
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the priority: higher runs first; ties keep registration order. Default 0.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("second").register(|_: &Ping| {});
    /// registry.listener().name("first").priority(1).register(|_: &Ping| {});
    /// assert_eq!(registry.listener_names(), ["first", "second"]);
    /// ```
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Makes it a one-shot listener: it is removed after its first **successful** run (a run that
    /// fails or panics leaves it registered for the next dispatch). Exactly one run succeeds, even
    /// when several threads trigger the event at once; a dispatch that finds it running elsewhere
    /// or done skips it.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ready;
    ///
    /// let registry = Registry::<Ready>::new();
    /// registry.listener().once().register(|_: &Ready| println!("first time only"));
    /// registry.trigger(Ready);
    /// registry.trigger(Ready);
    /// assert!(registry.is_empty());
    /// ```
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// Registers with the builder's settings.
    fn insert(self, name: Arc<str>, callback: Callback<E>) -> Subscription<E> {
        if !self.once {
            return self.registry.insert(self.priority, name, callback);
        }
        let (callback, once) = crate::once::wrap(callback);
        let subscription = self.registry.insert(self.priority, name, callback);
        once.registered(&subscription);
        subscription
    }

    /// Registers a synchronous closure or `fn` taking `&E`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().priority(3).register(|_: &Ping| println!("pong"));
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn register<F, R>(self, listener: F) -> Subscription<E>
    where
        F: Fn(&E) -> R + Send + Sync + 'static,
        R: ListenerOutput,
    {
        let name = self.name_or::<F>();
        self.insert(name, Callback::from_fn(listener))
    }

    /// Registers an async closure or `async fn` taking `Arc<E>`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("async pong").register_async(|_: Arc<Ping>| async {});
    /// assert_eq!(registry.listener_names(), ["async pong"]);
    /// ```
    pub fn register_async<F, Fut>(self, listener: F) -> Subscription<E>
    where
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        let name = self.name_or::<F>();
        self.insert(name, Callback::from_async_fn(listener))
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
    /// struct Counter;
    /// impl Listener<Ping> for Counter {
    ///     fn handle(&self, _: &Ping) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().priority(1).register_listener(Counter);
    /// assert!(registry.listener_names()[0].ends_with("Counter"));
    /// ```
    pub fn register_listener<L: Listener<E>>(self, listener: L) -> Subscription<E> {
        let name = self.name_or::<L>();
        self.insert(name, Callback::from_listener(listener))
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
    /// struct Remote;
    /// impl AsyncListener<Ping> for Remote {
    ///     async fn handle(&self, _: Arc<Ping>) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let registry = Registry::<Ping>::new();
    /// registry.listener().name("remote").register_async_listener(Remote);
    /// assert_eq!(registry.len(), 1);
    /// ```
    pub fn register_async_listener<L: AsyncListener<E>>(self, listener: L) -> Subscription<E> {
        let name = self.name_or::<L>();
        self.insert(name, Callback::from_async_listener(listener))
    }

    fn name_or<T>(&self) -> Arc<str> {
        self.name
            .clone()
            .unwrap_or_else(|| Arc::from(std::any::type_name::<T>()))
    }
}
