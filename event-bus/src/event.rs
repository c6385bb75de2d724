//! The [`Event`] trait: what `#[event]` implements, and the API every event type gets.

use std::future::Future;
use std::sync::Arc;

use crate::dispatch::Dispatch;
use crate::listener::{AsyncListener, Listener, ListenerBuilder, ListenerOutput};
use crate::registry::Registry;
use crate::registry::thread_cache::ThreadCache;
use crate::report::Report;
use crate::subscription::Subscription;

/// A payload type with its own global [`Registry`]. Implement it with `#[event]`.
///
/// The attribute writes the three required items ([`NAME`](Event::NAME), [`registry`](Event::registry)
/// and, with `key = field`, [`key`](Event::key)); the provided methods are the API: register
/// listeners from any module at start-up, trigger from anywhere. Every listener's payload type is
/// checked by the compiler: there is no `Any`, no downcast and no string lookup between `trigger` and
/// a listener.
///
/// ```
/// use event_bus::prelude::*;
/// use std::sync::Arc;
///
/// #[event(name = "com.example.user.created", key = user_id)]
/// #[derive(Debug)]
/// pub struct UserCreated {
///     pub user_id: u64,
///     pub email: String,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// UserCreated::register(|e: &UserCreated| println!("welcome {}", e.email));
/// UserCreated::register_async(|e: Arc<UserCreated>| async move {
///     println!("mailing {}", e.email);
///     Ok::<_, std::io::Error>(())
/// });
///
/// let event = UserCreated { user_id: 7, email: "a@b.c".into() };
/// assert_eq!(UserCreated::NAME, "com.example.user.created");
/// assert_eq!(event.key().as_deref(), Some("7"));
///
/// let report = event.spawn().await; // every listener in its own task
/// assert_eq!(report.succeeded(), 2);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "`{Self}` has no `#[event]` attribute",
    note = "add `#[event]` to the definition of `{Self}` to give it a registry, listeners and `trigger`"
)]
pub trait Event: Sized + Send + Sync + 'static {
    /// The event's name: the type's name, or `#[event(name = "…")]`.
    ///
    /// Names identify events outside the type system (logs, reports, and later message sources and
    /// CloudEvents `type`), so a reverse-DNS name such as `com.example.user.created` is a good choice.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Plain;
    /// #[event(name = "com.example.named")]
    /// struct Named;
    ///
    /// assert_eq!(Plain::NAME, "Plain");
    /// assert_eq!(Named::NAME, "com.example.named");
    /// ```
    const NAME: &'static str;

    /// The payload's schema version: `#[event(version = N)]`, 1 by default. Carried with the
    /// event where it leaves the process (the CloudEvents `eventversion` extension) and checked
    /// where it is read back, so a program never silently decodes a version it does not know.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct First;
    /// #[event(name = "com.example.order.placed", version = 2)]
    /// struct Placed;
    ///
    /// assert_eq!(First::VERSION, 1);
    /// assert_eq!(Placed::VERSION, 2);
    /// ```
    const VERSION: u32 = 1;

    /// The event type's global registry (written by `#[event]`: a `static` per type, over its
    /// state in another).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// Ping::register(|_: &Ping| {});
    /// assert_eq!(Ping::registry().len(), 1);
    /// ```
    fn registry() -> &'static Registry<Self>;

    /// This type's per-thread snapshot cache, written by `#[event]` (a `thread_local!` per type).
    /// Not for users; `None` dispatches without a cache.
    #[doc(hidden)]
    #[inline(always)]
    fn __thread_cache() -> Option<&'static std::thread::LocalKey<ThreadCache<Self>>> {
        None
    }

    /// The event's key, from `#[event(key = field)]` (the field's `Display` form); `None` otherwise.
    /// Pipelines use it to group related events (for instance to join them per order).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event(key = order_id)]
    /// struct Paid {
    ///     order_id: u32,
    /// }
    /// #[event]
    /// struct Unkeyed;
    ///
    /// assert_eq!(Paid { order_id: 12 }.key().as_deref(), Some("12"));
    /// assert_eq!(Unkeyed.key(), None);
    /// ```
    fn key(&self) -> Option<String> {
        None
    }

    /// Registers a synchronous listener in the global registry: a closure or `fn` taking `&Self`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// fn log_ping(_: &Ping) {
    ///     println!("ping");
    /// }
    ///
    /// Ping::register(log_ping);
    /// Ping::register(|_: &Ping| -> Result<(), String> { Err("closed".into()) });
    /// assert_eq!(Ping.trigger().failures().len(), 1);
    /// ```
    fn register<F, R>(listener: F) -> Subscription<Self>
    where
        F: Fn(&Self) -> R + Send + Sync + 'static,
        R: ListenerOutput,
    {
        Self::registry().register(listener)
    }

    /// Registers an async listener in the global registry: a closure or `fn` taking `Arc<Self>`.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// async fn forward(_: Arc<Ping>) -> Result<(), std::io::Error> {
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// Ping::register_async(forward);
    /// assert_eq!(Ping.deliver().await.succeeded(), 1);
    /// # }
    /// ```
    fn register_async<F, Fut>(listener: F) -> Subscription<Self>
    where
        F: Fn(Arc<Self>) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        Self::registry().register_async(listener)
    }

    /// Registers a type implementing [`Listener`] in the global registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::{BoxError, Listener};
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// struct Echo;
    /// impl Listener<Ping> for Echo {
    ///     fn handle(&self, _: &Ping) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// Ping::register_listener(Echo);
    /// assert_eq!(Ping.trigger().succeeded(), 1);
    /// ```
    fn register_listener<L: Listener<Self>>(listener: L) -> Subscription<Self> {
        Self::registry().register_listener(listener)
    }

    /// Registers a type implementing [`AsyncListener`] in the global registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::{AsyncListener, BoxError};
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// struct Echo;
    /// impl AsyncListener<Ping> for Echo {
    ///     async fn handle(&self, _: Arc<Ping>) -> Result<(), BoxError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// Ping::register_async_listener(Echo);
    /// assert_eq!(Ping::registry().len(), 1);
    /// ```
    fn register_async_listener<L: AsyncListener<Self>>(listener: L) -> Subscription<Self> {
        Self::registry().register_async_listener(listener)
    }

    /// Starts registering a listener with a name and/or priority in the global registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// Ping::listener().name("first").priority(10).register(|_: &Ping| {});
    /// assert_eq!(Ping::registry().listener_names(), ["first"]);
    /// ```
    fn listener() -> ListenerBuilder<'static, Self> {
        Self::registry().listener()
    }

    /// Removes a listener from the global registry; `false` if it was already removed.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// let subscription = Ping::register(|_: &Ping| {});
    /// assert!(Ping::unregister(subscription));
    /// assert_eq!(Ping.trigger().listeners(), 0);
    /// ```
    fn unregister(subscription: Subscription<Self>) -> bool {
        Self::registry().unregister(subscription)
    }

    /// Dispatches synchronously to the global registry; see [`Registry::trigger`].
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// Ping::register(|_: &Ping| println!("pong"));
    /// let report = Ping.trigger();
    /// assert_eq!(report.succeeded(), 1);
    /// ```
    #[inline(always)]
    fn trigger(self) -> Report {
        Self::registry().trigger(self)
    }

    /// Dispatches every listener of the global registry in its own tokio task; see
    /// [`Registry::spawn`].
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// struct Ping;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// Ping::register(|_: &Ping| println!("pong"));
    /// assert_eq!(Ping.spawn().await.succeeded(), 1);
    /// # }
    /// ```
    fn spawn(self) -> Dispatch {
        Self::registry().spawn(self)
    }

    /// Dispatches every listener of the global registry in order, awaiting each; see
    /// [`Registry::deliver`].
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
    /// Ping::register_async(|_: Arc<Ping>| async { println!("pong") });
    /// assert_eq!(Ping.deliver().await.succeeded(), 1);
    /// # }
    /// ```
    fn deliver(self) -> impl Future<Output = Report> + Send + 'static {
        Self::registry().deliver(self)
    }

    /// Starts a durable listener of this event type, named `name` (unique in the program):
    /// configure it, then [`register`](crate::executor::DurableListenerBuilder::register) it.
    /// Its runs are requests stored by [`publish`](Event::publish) and run by an
    /// [`Executor`](crate::executor::Executor); see [the `executor` module](crate::executor).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct UserSignedUp {
    ///     email: String,
    /// }
    ///
    /// async fn send_welcome_mail(user: UserSignedUp) -> Result<(), std::io::Error> {
    ///     println!("welcome, {}", user.email);
    ///     Ok(())
    /// }
    ///
    /// UserSignedUp::durable("send-welcome-mail", send_welcome_mail).register()?;
    /// # Ok::<(), event_bus::executor::ExecutorError>(())
    /// ```
    #[cfg(feature = "pipeline")]
    fn durable<F, Fut>(
        name: impl Into<String>,
        handler: F,
    ) -> crate::executor::DurableListenerBuilder<Self, F>
    where
        Self: serde::Serialize + serde::de::DeserializeOwned,
        F: Fn(Self) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        crate::executor::DurableListenerBuilder::new(name.into(), handler)
    }

    /// Stores this event with one request per durable listener of its type, atomically, and
    /// returns once that is written; an [`Executor`](crate::executor::Executor) runs them.
    /// In-process listeners are not called (that is [`trigger`](Event::trigger) and friends).
    ///
    /// ```
    /// use event_bus::executor::DurableBus;
    /// use event_bus::prelude::*;
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct PasswordReset {
    ///     user: u64,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
    /// PasswordReset::durable("mail-reset-link", |_: PasswordReset| async {}).register()?;
    /// let bus = DurableBus::new(Arc::new(MemoryStore::new()));
    /// let published = PasswordReset { user: 1 }.publish(&bus).await?;
    /// assert_eq!(published.requests(), 1);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "pipeline")]
    fn publish(
        &self,
        bus: &crate::executor::DurableBus,
    ) -> impl Future<Output = Result<crate::executor::Published, crate::executor::ExecutorError>> + Send
    where
        Self: serde::Serialize + Sync,
    {
        bus.publish(self)
    }
}
