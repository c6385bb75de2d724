//! Typed commands and queries: message types with **exactly one** handler each, registered from
//! any module at start-up. `#[command]` implements [`Command`] (`cmd.send().await` returns
//! `Result<(), _>`); `#[query(reply = T)]` implements [`Query`] (`q.ask().await` returns
//! `Result<T, _>`). A second handler is refused at registration; sending without one is a typed
//! error ([`CqrsError::NoHandler`]); a handler's error or panic comes back to the sender.
//!
//! ```
//! use event_bus::cqrs::{Command, CqrsError, Query};
//! use event_bus::prelude::*;
//!
//! #[command]
//! struct OpenAccount {
//!     owner: String,
//! }
//!
//! #[query(reply = Option<u64>)]
//! struct Balance {
//!     owner: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CqrsError> {
//! OpenAccount::handle_with(|command: OpenAccount| async move {
//!     println!("opening an account for {}", command.owner);
//!     Ok::<(), std::io::Error>(())
//! })?;
//! Balance::answer_with(|query: Balance| async move {
//!     Ok::<_, std::io::Error>((query.owner == "ada").then_some(100))
//! })?;
//!
//! OpenAccount { owner: "ada".into() }.send().await?;
//! assert_eq!(Balance { owner: "ada".into() }.ask().await?, Some(100));
//! assert!(matches!(
//!     OpenAccount::handle_with(|_: OpenAccount| async {}),
//!     Err(CqrsError::DuplicateHandler { .. })
//! ));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::listener::ListenerOutput;
use crate::panic::{CatchPanic, panic_message};
use crate::report::BoxError;

type Answer<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;
type HandlerFn<M, R> = dyn Fn(M) -> Answer<R> + Send + Sync;

/// The one handler of a command or query type; the attributes emit one per type.
#[doc(hidden)]
pub struct HandlerSlot<M, R> {
    handler: RwLock<Option<Arc<HandlerFn<M, R>>>>,
    /// Set when two `#[handler]` functions claimed this type: every send is refused then.
    conflict: AtomicBool,
}

impl<M, R> HandlerSlot<M, R> {
    /// An empty slot (a `static` per type).
    pub const fn new() -> Self {
        HandlerSlot {
            handler: RwLock::new(None),
            conflict: AtomicBool::new(false),
        }
    }

    fn current(&self) -> Option<Arc<HandlerFn<M, R>>> {
        match self.handler.read() {
            Ok(handler) => handler.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs `handler` unless one is there.
    fn install(&self, handler: Arc<HandlerFn<M, R>>) -> bool {
        let mut slot = match self.handler.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(handler);
        true
    }

    /// Removes `handler` if it is the one installed.
    fn remove(&self, handler: &Arc<HandlerFn<M, R>>) -> bool {
        let mut slot = match self.handler.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &*slot {
            Some(current) if Arc::ptr_eq(current, handler) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }
}

impl<M, R> fmt::Debug for HandlerSlot<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerSlot")
            .field("registered", &self.current().is_some())
            .finish()
    }
}

impl<M, R> Default for HandlerSlot<M, R> {
    fn default() -> Self {
        HandlerSlot::new()
    }
}

/// Why a command or query was not handled, or a handler not registered.
///
/// ```
/// use event_bus::cqrs::CqrsError;
///
/// let missing = CqrsError::NoHandler { name: "OpenAccount" };
/// assert_eq!(missing.to_string(), "no handler registered for `OpenAccount`");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CqrsError {
    /// No handler is registered for this type.
    #[error("no handler registered for `{name}`")]
    NoHandler {
        /// The command's or query's name.
        name: &'static str,
    },
    /// A handler is already registered for this type (each has exactly one).
    #[error("`{name}` already has a handler: commands and queries have exactly one")]
    DuplicateHandler {
        /// The command's or query's name.
        name: &'static str,
    },
    /// The handler returned an error.
    #[error("the handler of `{name}` failed: {error}")]
    Failed {
        /// The command's or query's name.
        name: &'static str,
        /// Its error.
        #[source]
        error: BoxError,
    },
    /// The handler panicked.
    #[error("the handler of `{name}` panicked: {message}")]
    Panicked {
        /// The command's or query's name.
        name: &'static str,
        /// The panic message.
        message: String,
    },
}

/// A registered handler; from [`Command::handle_with`] or [`Query::answer_with`]. Dropping it
/// keeps the handler registered.
///
/// ```
/// use event_bus::cqrs::Command;
/// use event_bus::prelude::*;
///
/// #[command]
/// struct Reindex;
///
/// let registration = Reindex::handle_with(|_: Reindex| async {})?;
/// assert!(registration.unregister());
/// assert!(Reindex::handle_with(|_: Reindex| async {}).is_ok(), "free again");
/// # Ok::<(), event_bus::cqrs::CqrsError>(())
/// ```
pub struct Registration {
    remove: Box<dyn FnOnce() -> bool + Send + Sync>,
    name: &'static str,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Removes the handler; `false` if it was already replaced or removed.
    pub fn unregister(self) -> bool {
        (self.remove)()
    }
}

/// Runs a handler's future, turning a panic into [`CqrsError::Panicked`].
async fn run<R>(name: &'static str, answer: Answer<R>) -> Result<R, CqrsError> {
    match CatchPanic::new(answer).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(CqrsError::Failed { name, error }),
        Err(message) => Err(CqrsError::Panicked { name, message }),
    }
}

fn register<M: Send + 'static, R: Send + 'static>(
    name: &'static str,
    slot: &'static HandlerSlot<M, R>,
    handler: Arc<HandlerFn<M, R>>,
) -> Result<Registration, CqrsError> {
    // `#[handler]` functions first: a handler registered by hand then conflicts with one.
    crate::static_listeners::ensure_installed();
    if !slot.install(Arc::clone(&handler)) {
        return Err(CqrsError::DuplicateHandler { name });
    }
    Ok(Registration {
        remove: Box::new(move || slot.remove(&handler)),
        name,
    })
}

async fn dispatch<M: Send + 'static, R: Send + 'static>(
    name: &'static str,
    slot: &'static HandlerSlot<M, R>,
    message: M,
) -> Result<R, CqrsError> {
    crate::static_listeners::ensure_installed();
    if slot.conflict.load(Ordering::Relaxed) {
        return Err(CqrsError::DuplicateHandler { name });
    }
    let Some(handler) = slot.current() else {
        return Err(CqrsError::NoHandler { name });
    };
    let answer = match catch_unwind(AssertUnwindSafe(|| handler(message))) {
        Ok(answer) => answer,
        Err(payload) => {
            return Err(CqrsError::Panicked {
                name,
                message: panic_message(payload),
            });
        }
    };
    drop(handler);
    run(name, answer).await
}

/// A command: something to do, handled by exactly one handler. Implement it with `#[command]`
/// (options: `name = "…"`, default the type's name).
///
/// ```
/// use event_bus::prelude::*;
///
/// #[command(name = "billing.charge")]
/// struct Charge {
///     cents: u64,
/// }
///
/// assert_eq!(<Charge as event_bus::cqrs::Command>::NAME, "billing.charge");
/// ```
pub trait Command: Sized + Send + 'static {
    /// Its name, in errors.
    const NAME: &'static str;

    #[doc(hidden)]
    fn __handler() -> &'static HandlerSlot<Self, ()>;

    /// Registers the command's handler: an async function or closure taking the command and
    /// returning `()` or `Result<(), E>`.
    ///
    /// # Errors
    ///
    /// [`CqrsError::DuplicateHandler`] if it already has one.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[command]
    /// struct Archive(u64);
    ///
    /// async fn archive(Archive(id): Archive) -> Result<(), std::io::Error> {
    ///     println!("archiving {id}");
    ///     Ok(())
    /// }
    ///
    /// Archive::handle_with(archive)?;
    /// # Ok::<(), event_bus::cqrs::CqrsError>(())
    /// ```
    fn handle_with<F, Fut>(handler: F) -> Result<Registration, CqrsError>
    where
        F: Fn(Self) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ListenerOutput,
    {
        let handler: Arc<HandlerFn<Self, ()>> = Arc::new(move |command| {
            let future = handler(command);
            Box::pin(async move { future.await.into_result() })
        });
        register(Self::NAME, Self::__handler(), handler)
    }

    /// Sends the command to its handler and waits for it.
    ///
    /// # Errors
    ///
    /// [`CqrsError::NoHandler`], or the handler's error or panic.
    ///
    /// ```
    /// use event_bus::cqrs::CqrsError;
    /// use event_bus::prelude::*;
    ///
    /// #[command]
    /// struct Unhandled;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert!(matches!(Unhandled.send().await, Err(CqrsError::NoHandler { .. })));
    /// # }
    /// ```
    fn send(self) -> impl Future<Output = Result<(), CqrsError>> + Send {
        dispatch(Self::NAME, Self::__handler(), self)
    }
}

/// A query: a question with a typed answer, answered by exactly one handler. Implement it with
/// `#[query(reply = T)]` (options: `name = "…"`).
///
/// ```
/// use event_bus::prelude::*;
///
/// #[query(reply = Vec<String>)]
/// struct OpenOrders;
///
/// assert_eq!(<OpenOrders as event_bus::cqrs::Query>::NAME, "OpenOrders");
/// ```
pub trait Query: Sized + Send + 'static {
    /// Its name, in errors.
    const NAME: &'static str;
    /// What the handler answers with.
    type Reply: Send + 'static;

    #[doc(hidden)]
    fn __handler() -> &'static HandlerSlot<Self, Self::Reply>;

    /// Registers the query's handler: an async function or closure taking the query and
    /// returning `Result<Reply, E>`.
    ///
    /// # Errors
    ///
    /// [`CqrsError::DuplicateHandler`] if it already has one.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[query(reply = u64)]
    /// struct Stock(&'static str);
    ///
    /// Stock::answer_with(|Stock(sku): Stock| async move {
    ///     Ok::<_, std::io::Error>(if sku == "tea" { 12 } else { 0 })
    /// })?;
    /// # Ok::<(), event_bus::cqrs::CqrsError>(())
    /// ```
    fn answer_with<F, Fut, E>(handler: F) -> Result<Registration, CqrsError>
    where
        F: Fn(Self) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Self::Reply, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let handler: Arc<HandlerFn<Self, Self::Reply>> = Arc::new(move |query| {
            let future = handler(query);
            Box::pin(async move { future.await.map_err(Into::into) })
        });
        register(Self::NAME, Self::__handler(), handler)
    }

    /// Asks the query's handler and waits for the answer.
    ///
    /// # Errors
    ///
    /// [`CqrsError::NoHandler`], or the handler's error or panic.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[query(reply = u32)]
    /// struct Answer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::cqrs::CqrsError> {
    /// Answer::answer_with(|_: Answer| async { Ok::<_, std::io::Error>(42) })?;
    /// assert_eq!(Answer.ask().await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    fn ask(self) -> impl Future<Output = Result<Self::Reply, CqrsError>> + Send {
        dispatch(Self::NAME, Self::__handler(), self)
    }
}

/// What `#[handler]` can register a function for: a command or a query (the marker `M` tells
/// which, and is inferred). Not part of the public API.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command or query that this function can handle",
    label = "a #[handler] takes a #[command] or #[query] type by value",
    note = "put #[command] or #[query(reply = T)] on `{Self}`; a command handler returns `()` or \
            `Result<(), E>`, a query handler `Result<Reply, E>`"
)]
pub trait HandlerTarget<F, M>: Sized {
    fn install(name: &'static str, handler: F);
}

/// Marks a command handler returning `Fut`.
#[doc(hidden)]
#[derive(Debug)]
pub struct CommandHandler<Fut>(PhantomData<Fut>);

/// Marks a query handler returning `Fut`, whose error is `E`.
#[doc(hidden)]
#[derive(Debug)]
pub struct QueryHandler<Fut, E>(PhantomData<(Fut, E)>);

impl<C, F, Fut> HandlerTarget<F, CommandHandler<Fut>> for C
where
    C: Command,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ListenerOutput,
{
    fn install(name: &'static str, handler: F) {
        let handler: Arc<HandlerFn<C, ()>> = Arc::new(move |command| {
            let future = handler(command);
            Box::pin(async move { future.await.into_result() })
        });
        install_static(C::NAME, name, C::__handler(), handler);
    }
}

impl<Q, F, Fut, E> HandlerTarget<F, QueryHandler<Fut, E>> for Q
where
    Q: Query,
    F: Fn(Q) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Q::Reply, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn install(name: &'static str, handler: F) {
        let handler: Arc<HandlerFn<Q, Q::Reply>> = Arc::new(move |query| {
            let future = handler(query);
            Box::pin(async move { future.await.map_err(Into::into) })
        });
        install_static(Q::NAME, name, Q::__handler(), handler);
    }
}

/// Installs a `#[handler]` function; a second one for the same type marks the type conflicted
/// (every send or ask then fails with [`CqrsError::DuplicateHandler`]), since nothing can be
/// returned to the registration.
fn install_static<M, R>(
    message: &'static str,
    function: &'static str,
    slot: &'static HandlerSlot<M, R>,
    handler: Arc<HandlerFn<M, R>>,
) {
    if !slot.install(handler) {
        slot.conflict.store(true, Ordering::Relaxed);
        tracing::error!(
            message,
            handler = function,
            "a second handler for `{message}`: commands and queries have exactly one"
        );
    }
}

/// Registers a `#[handler]` function (called by the code the attribute generates).
#[doc(hidden)]
pub fn install_handler<T, F, M>(name: &'static str, handler: F)
where
    T: HandlerTarget<F, M>,
{
    T::install(name, handler);
}
