//! Durable listeners: registration ([`DurableListenerBuilder`]), their retry policy ([`Backoff`]) and
//! the program-wide table the executor looks them up in.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ExecutorError;
use crate::event::Event;
use crate::listener::ListenerOutput;
use crate::panic::{CatchPanic, panic_message};
use crate::pipeline::Jitter;
use crate::pipeline::retry;

/// The default maximum number of failed attempts before a request becomes a dead request.
pub const DEFAULT_MAX_ERRORS: u32 = 5;
/// The default priority of a durable listener's requests.
pub const DEFAULT_PRIORITY: u8 = 50;
/// The default longest run of a durable listener (see
/// [`DurableListenerBuilder::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a failed request waits before its next attempt: after failure `n` (from 1),
/// `min(max_delay, base_delay × factor^(n-1))`, drawn with [`Jitter`].
///
/// | setting | default |
/// | --- | --- |
/// | `base_delay` | 1 s |
/// | `factor` | 2.0 |
/// | `max_delay` | 5 min |
/// | `jitter` | [`Jitter::Equal`] (at least half the delay, so delays grow) |
///
/// ```
/// use event_bus::executor::Backoff;
/// use event_bus::pipeline::Jitter;
/// use std::time::Duration;
///
/// let backoff = Backoff::new().base_delay(Duration::from_millis(100)).jitter(Jitter::None);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base_delay: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: Jitter::Equal,
        }
    }
}

impl Backoff {
    /// The defaults in the table above.
    ///
    /// ```
    /// let backoff = event_bus::executor::Backoff::new();
    /// # let _ = backoff;
    /// ```
    pub fn new() -> Self {
        Backoff::default()
    }

    /// The delay after the first failure (before jitter).
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = event_bus::executor::Backoff::new().base_delay(Duration::from_millis(50));
    /// # let _ = backoff;
    /// ```
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// How much each further failure multiplies the delay by (at least 1.0; `NaN` counts as 1.0).
    ///
    /// ```
    /// let linear_free = event_bus::executor::Backoff::new().factor(3.0);
    /// # let _ = linear_free;
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_nan() {
            1.0
        } else {
            factor.max(1.0)
        };
        self
    }

    /// The longest delay (before jitter).
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = event_bus::executor::Backoff::new().max_delay(Duration::from_secs(60));
    /// # let _ = backoff;
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How the random part of each delay is drawn.
    ///
    /// ```
    /// use event_bus::pipeline::Jitter;
    /// let exact = event_bus::executor::Backoff::new().jitter(Jitter::None);
    /// # let _ = exact;
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay after `failures` failed attempts (1 for the first), jitter included.
    ///
    /// ```
    /// use event_bus::executor::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::new().max_delay(Duration::from_secs(2));
    /// assert!(backoff.delay(30) <= Duration::from_secs(2));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let backoff = retry::exponential(self.base_delay, self.factor, self.max_delay, failures);
        retry::jittered(backoff, self.jitter)
    }
}

/// Why one run of a durable listener failed.
pub(crate) enum RunFailure {
    /// The stored payload is not the listener's event type: trying again cannot help.
    Decode(String),
    /// The listener returned an error.
    Error(String),
    /// The listener panicked; the message.
    Panic(String),
}

pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Result<(), RunFailure>> + Send>>;

type Runner = dyn Fn(&serde_json::Value) -> RunFuture + Send + Sync;

/// A registered durable listener, type-erased for the executor (which finds it by name in a
/// stored request).
pub(crate) struct Registered {
    pub(crate) name: Arc<str>,
    pub(crate) event: &'static str,
    pub(crate) max_errors: u32,
    pub(crate) priority: u8,
    pub(crate) backoff: Backoff,
    run: Box<Runner>,
}

impl Registered {
    /// Decodes `payload` and runs the listener on it; errors and panics (in the call or in the
    /// future) become [`RunFailure`]s.
    pub(crate) fn run(&self, payload: &serde_json::Value) -> RunFuture {
        (self.run)(payload)
    }
}

/// The program's durable listeners: by name, and by event type (in registration order).
#[derive(Default)]
struct Table {
    by_name: HashMap<Arc<str>, Arc<Registered>>,
    by_event: HashMap<std::any::TypeId, Vec<Arc<Registered>>>,
}

static TABLE: LazyLock<RwLock<Table>> = LazyLock::new(RwLock::default);

/// The durable listener registered under `name` (`#[listener(durable)]` functions included).
pub(crate) fn find(name: &str) -> Option<Arc<Registered>> {
    crate::static_listeners::ensure_installed();
    TABLE.read().by_name.get(name).cloned()
}

/// The durable listeners of `E` (`#[listener(durable)]` functions included).
pub(crate) fn of<E: 'static>() -> Vec<Arc<Registered>> {
    crate::static_listeners::ensure_installed();
    TABLE
        .read()
        .by_event
        .get(&std::any::TypeId::of::<E>())
        .cloned()
        .unwrap_or_default()
}

/// A durable listener being configured; from [`Event::durable`](crate::Event::durable). Nothing is
/// registered until [`register`](DurableListenerBuilder::register).
///
/// ```
/// use event_bus::executor::Backoff;
/// use event_bus::prelude::*;
/// use std::time::Duration;
///
/// #[event]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct InvoiceDue {
///     invoice: u64,
/// }
///
/// async fn remind(due: InvoiceDue) -> Result<(), std::io::Error> {
///     println!("reminding about invoice {}", due.invoice);
///     Ok(())
/// }
///
/// InvoiceDue::durable("remind-customer", remind)
///     .max_errors(8)
///     .priority(80)
///     .backoff(Backoff::new().base_delay(Duration::from_secs(10)))
///     .register()?;
/// # Ok::<(), event_bus::executor::ExecutorError>(())
/// ```
#[must_use = "a durable listener is registered by `register()`"]
pub struct DurableListenerBuilder<E, F> {
    name: String,
    handler: F,
    max_errors: u32,
    priority: u8,
    backoff: Backoff,
    timeout: Duration,
    event: PhantomData<fn(E)>,
}

impl<E, F> fmt::Debug for DurableListenerBuilder<E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableListenerBuilder")
            .field("name", &self.name)
            .field("max_errors", &self.max_errors)
            .field("priority", &self.priority)
            .field("backoff", &self.backoff)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<E, F, Fut> DurableListenerBuilder<E, F>
where
    E: Event + Serialize + DeserializeOwned,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ListenerOutput,
{
    pub(crate) fn new(name: String, handler: F) -> Self {
        DurableListenerBuilder {
            name,
            handler,
            max_errors: DEFAULT_MAX_ERRORS,
            priority: DEFAULT_PRIORITY,
            backoff: Backoff::default(),
            timeout: DEFAULT_TIMEOUT,
            event: PhantomData,
        }
    }

    /// Failed attempts after which a request becomes a dead request (default 5, at least 1).
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick;
    ///
    /// let builder = Tick::durable("tick-once", |_: Tick| async {}).max_errors(1);
    /// # drop(builder);
    /// ```
    pub fn max_errors(mut self, max_errors: u32) -> Self {
        self.max_errors = max_errors.max(1);
        self
    }

    /// The priority of this listener's requests (default 50): an executor runs due requests of a
    /// higher priority first, then the older first.
    ///
    /// ```
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick;
    ///
    /// let builder = Tick::durable("tick-urgently", |_: Tick| async {}).priority(90);
    /// # drop(builder);
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The delay between a failed attempt and the next one.
    ///
    /// ```
    /// use event_bus::executor::Backoff;
    /// use event_bus::prelude::*;
    /// use std::time::Duration;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick;
    ///
    /// let builder = Tick::durable("tick-patiently", |_: Tick| async {})
    ///     .backoff(Backoff::new().base_delay(Duration::from_secs(30)));
    /// # drop(builder);
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one run may take (default 5 minutes): a run still going then is cancelled and
    /// counts as a failure ("timed out"), retried like any other. Without it, a listener whose
    /// future never completes would hold its request (and, under
    /// [`Schedule::Cooperative`](super::Schedule::Cooperative), its executor) for good.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use std::time::Duration;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick;
    ///
    /// let builder = Tick::durable("tick-quickly", |_: Tick| async {}).timeout(Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the listener for the whole program: from now on every
    /// [`publish`](crate::Event::publish) of `E` stores a request for it, and every
    /// [`Executor`](super::Executor) of this program can run those requests.
    ///
    /// # Errors
    ///
    /// [`ExecutorError::DuplicateListener`] if the name is taken (by a listener of any event
    /// type); [`ExecutorError::InvalidName`] if it is empty or has control characters.
    ///
    /// ```
    /// use event_bus::executor::ExecutorError;
    /// use event_bus::prelude::*;
    ///
    /// #[event]
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick;
    ///
    /// Tick::durable("count-ticks", |_: Tick| async {}).register()?;
    /// let again = Tick::durable("count-ticks", |_: Tick| async {}).register();
    /// assert!(matches!(again, Err(ExecutorError::DuplicateListener(_))));
    /// # Ok::<(), ExecutorError>(())
    /// ```
    pub fn register(self) -> Result<DurableListener, ExecutorError> {
        // `#[listener(durable)]` functions first, so that a name taken by one of them is refused
        // here whatever the order of start-up.
        crate::static_listeners::ensure_installed();
        self.register_now()
    }

    /// [`register`](DurableListenerBuilder::register) without installing the static listeners
    /// first (what installing one of them calls).
    fn register_now(self) -> Result<DurableListener, ExecutorError> {
        if self.name.is_empty() || self.name.chars().any(char::is_control) {
            return Err(ExecutorError::InvalidName(self.name));
        }
        let handler = self.handler;
        let timeout = self.timeout;
        let run = move |payload: &serde_json::Value| -> RunFuture {
            // A `Deserialize` impl may panic too: caught like the listener's own panics.
            let started = catch_unwind(AssertUnwindSafe(|| E::deserialize(payload).map(&handler)));
            let future = match started {
                Ok(Ok(future)) => future,
                Ok(Err(error)) => {
                    let failure = RunFailure::Decode(error.to_string());
                    return Box::pin(std::future::ready(Err(failure)));
                }
                Err(payload) => {
                    let failure = RunFailure::Panic(panic_message(payload));
                    return Box::pin(std::future::ready(Err(failure)));
                }
            };
            Box::pin(async move {
                let guarded = CatchPanic::new(Box::pin(future));
                match tokio::time::timeout(timeout, guarded).await {
                    Ok(Ok(output)) => output
                        .into_result()
                        .map_err(|error| RunFailure::Error(error.to_string())),
                    Ok(Err(panic)) => Err(RunFailure::Panic(panic)),
                    Err(_) => Err(RunFailure::Error(format!("timed out after {timeout:?}"))),
                }
            })
        };
        let name: Arc<str> = self.name.into();
        let registered = Arc::new(Registered {
            name: Arc::clone(&name),
            event: E::NAME,
            max_errors: self.max_errors,
            priority: self.priority,
            backoff: self.backoff,
            run: Box::new(run),
        });
        let mut table = TABLE.write();
        if table.by_name.contains_key(&name) {
            return Err(ExecutorError::DuplicateListener(name.to_string()));
        }
        table
            .by_name
            .insert(Arc::clone(&name), Arc::clone(&registered));
        table
            .by_event
            .entry(std::any::TypeId::of::<E>())
            .or_default()
            .push(Arc::clone(&registered));
        Ok(DurableListener { registered })
    }
}

/// A registered durable listener; from [`DurableListenerBuilder::register`]. Dropping it keeps the
/// listener registered.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Tick;
///
/// let listener = Tick::durable("log-ticks", |_: Tick| async {}).register()?;
/// assert_eq!(listener.name(), "log-ticks");
/// assert!(listener.unregister());
/// # Ok::<(), event_bus::executor::ExecutorError>(())
/// ```
#[derive(Clone)]
pub struct DurableListener {
    registered: Arc<Registered>,
}

impl fmt::Debug for DurableListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableListener")
            .field("name", &self.registered.name)
            .field("event", &self.registered.event)
            .finish_non_exhaustive()
    }
}

impl DurableListener {
    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.registered.name
    }

    /// Removes the listener: later publishes store no request for it, and executors of this
    /// process leave its stored requests alone (an executor in a process that still has it runs
    /// them). `false` if it was already removed.
    pub fn unregister(self) -> bool {
        let mut table = TABLE.write();
        let name = &self.registered.name;
        match table.by_name.get(name) {
            Some(current) if Arc::ptr_eq(current, &self.registered) => {}
            _ => return false, // removed (and perhaps registered again by someone else)
        }
        table.by_name.remove(name);
        for listeners in table.by_event.values_mut() {
            listeners.retain(|listener| !Arc::ptr_eq(listener, &self.registered));
        }
        true
    }
}

/// Registers a `#[listener(durable)]` function (called by the code the attribute generates). A
/// registration error (a name taken twice) is logged: nothing can return it.
#[doc(hidden)]
pub fn install_durable<E, F, Fut>(
    name: &'static str,
    priority: Option<u8>,
    max_errors: Option<u32>,
    handler: F,
) where
    E: Event + Serialize + DeserializeOwned,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: ListenerOutput,
{
    let mut builder = DurableListenerBuilder::<E, F>::new(name.to_owned(), handler);
    if let Some(priority) = priority {
        builder = builder.priority(priority);
    }
    if let Some(max_errors) = max_errors {
        builder = builder.max_errors(max_errors);
    }
    if let Err(error) = builder.register_now() {
        tracing::error!(listener = name, %error, "a #[listener(durable)] function was not registered");
    }
}
