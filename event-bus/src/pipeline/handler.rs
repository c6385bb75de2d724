//! [`Handler`]: one step of a pipeline, and [`Next`]: the rest of it.

use std::fmt;
use std::future::{Future, ready};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use super::effects;
use super::error::PipelineError;
use super::message::Message;
use crate::panic::{CatchPanic, panic_message};
use crate::spans;
use tracing::Instrument as _;

/// The future a [`Handler`] returns.
///
/// ```
/// use event_bus::pipeline::HandlerFuture;
///
/// let done: HandlerFuture = Box::pin(async { Ok(()) });
/// # drop(done);
/// ```
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), PipelineError>> + Send + 'static>>;

/// One step of a pipeline. It receives the message and [`Next`], the rest of the chain: call
/// `next.run(message)` to continue (possibly with a changed message, possibly several times, as
/// a retry does), or return without calling it to stop the message here.
///
/// The returned future is `'static`: keep the handler's state in an `Arc` and clone it in.
/// A panic in a handler is caught and becomes [`PipelineError::Panic`].
///
/// ```
/// use event_bus::pipeline::{Handler, HandlerFuture, Message, Next, Pipeline};
///
/// /// Drops messages without a key.
/// struct RequireKey;
///
/// impl Handler for RequireKey {
///     fn handle(&self, message: Message, next: Next) -> HandlerFuture {
///         Box::pin(async move {
///             if message.key().is_empty() {
///                 return Ok(()); // stop here
///             }
///             next.run(message).await
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let pipeline = Pipeline::builder().then(RequireKey).build();
/// pipeline.process(Message::new("s", "", Vec::new())).await?;
/// # Ok(())
/// # }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles `message`, continuing with `next` or not.
    fn handle(&self, message: Message, next: Next) -> HandlerFuture;

    /// What this handler does with messages from `source`, as far as it knows: how
    /// [`Pipeline::listen`](super::Pipeline::listen) refuses an event that no join of the pipeline
    /// expects. The default, [`Route::Unknown`], ends the check (say, a handler that may change
    /// the source).
    ///
    /// ```
    /// use event_bus::pipeline::{Handler, Route, Transform};
    ///
    /// assert_eq!(Transform::erase_content_from(["x"]).route("x"), Route::Unknown);
    /// ```
    fn route(&self, source: &str) -> Route {
        let _ = source;
        Route::Unknown
    }
}

/// What a handler does with messages of a source; from [`Handler::route`].
///
/// ```
/// use event_bus::pipeline::{Condition, Handler, Join, Retry, Route};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// assert_eq!(Retry::new().route("a"), Route::Through);
/// let join = Join::new(Condition::all_of(["a", "b"]), Arc::new(MemoryStore::new()));
/// assert_eq!(join.route("a"), Route::Expected);
/// assert!(matches!(join.route("c"), Route::Unexpected(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// Passes them on, source unchanged.
    Through,
    /// Expects them (a join that waits for this source).
    Expected,
    /// Would keep them forever without effect (a join whose condition does not name the source),
    /// with why.
    Unexpected(String),
    /// Cannot tell.
    Unknown,
}

impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        (**self).handle(message, next)
    }

    fn route(&self, source: &str) -> Route {
        (**self).route(source)
    }
}

/// The route of `source` through `chain`: the first handler's answer that is not `Through`.
pub(crate) fn route_through(chain: &[Arc<dyn Handler>], source: &str) -> Route {
    chain
        .iter()
        .map(|handler| handler.route(source))
        .find(|route| *route != Route::Through)
        .unwrap_or(Route::Through)
}

/// The rest of a pipeline after the current handler. Cheap to clone (a retry calls it again).
///
/// ```
/// use event_bus::pipeline::{Message, Next};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// // The end of a chain accepts anything.
/// Next::end().run(Message::new("s", "k", Vec::new())).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Next {
    chain: Arc<[Arc<dyn Handler>]>,
    position: usize,
    /// What follows this chain when it is nested in an outer pipeline.
    then: Option<Arc<Next>>,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.chain.len().saturating_sub(self.position))
            .field("nested", &self.then.is_some())
            .finish()
    }
}

impl Next {
    pub(crate) fn start(chain: Arc<[Arc<dyn Handler>]>, then: Option<Arc<Next>>) -> Self {
        Next {
            chain,
            position: 0,
            then,
        }
    }

    /// A `Next` with nothing after it: running it succeeds at once.
    ///
    /// ```
    /// let next = event_bus::pipeline::Next::end();
    /// # let _ = next;
    /// ```
    pub fn end() -> Self {
        Next::start(Arc::from(Vec::new()), None)
    }

    /// Runs the rest of the chain on `message`.
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Next, Pipeline, from_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let pipeline = Pipeline::builder()
    ///     .then(from_fn(|message: Message, next: Next| next.run(message.with_key("rewritten"))))
    ///     .build();
    /// pipeline.process(Message::new("s", "k", Vec::new())).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn run(self, message: Message) -> HandlerFuture {
        let Some(handler) = self.chain.get(self.position) else {
            return match self.then {
                Some(then) => Next::clone(&then).run(message),
                None => Box::pin(ready(Ok(()))),
            };
        };
        let rest = Next {
            chain: Arc::clone(&self.chain),
            position: self.position + 1,
            then: self.then.clone(),
        };
        // Writes staged by this hop and the rest belong to it, including those staged while
        // `handle` runs synchronously: a failure discards them.
        let mark = effects::mark();
        let position = self.position;
        if crate::metrics::on() {
            return run_measured(handler.as_ref(), message, rest, mark, position);
        }
        let span = spans::handler(message.source(), message.id(), position);
        if span.is_disabled() {
            return run_handler(handler.as_ref(), message, rest, mark, position);
        }
        let running =
            span.in_scope(|| run_handler(handler.as_ref(), message, rest, mark, position));
        Box::pin(running.instrument(span))
    }
}

/// [`run_handler`] in its span, timed: while metrics are recorded.
#[cold]
fn run_measured(
    handler: &dyn Handler,
    message: Message,
    rest: Next,
    mark: Option<usize>,
    position: usize,
) -> HandlerFuture {
    let timer = crate::metrics::Timer::start();
    let source = message.source().to_owned();
    let span = spans::handler(message.source(), message.id(), position);
    let running = span.in_scope(|| run_handler(handler, message, rest, mark, position));
    Box::pin(
        async move {
            let result = running.await;
            crate::metrics::handled(&source, position, timer);
            result
        }
        .instrument(span),
    )
}

/// Calls `handler` and runs its future, turning panics into errors and discarding the staged
/// writes (since `mark`) of a failed hop.
fn run_handler(
    handler: &dyn Handler,
    message: Message,
    rest: Next,
    mark: Option<usize>,
    position: usize,
) -> HandlerFuture {
    match catch_unwind(AssertUnwindSafe(|| handler.handle(message, rest))) {
        Ok(future) => Box::pin(async move {
            let result = match CatchPanic::new(future).await {
                Ok(result) => result,
                Err(panic) => Err(report_panic(position, panic)),
            };
            if let (Err(_), Some(mark)) = (&result, mark) {
                effects::roll_back(mark);
            }
            result
        }),
        Err(payload) => {
            if let Some(mark) = mark {
                effects::roll_back(mark);
            }
            Box::pin(ready(Err(report_panic(position, panic_message(payload)))))
        }
    }
}

/// A [`Handler`] from a closure `Fn(Message, Next) -> impl Future<Output = Result<(), PipelineError>>`;
/// from [`from_fn`].
///
/// ```
/// use event_bus::pipeline::{FnHandler, Handler, Message, Next, from_fn};
///
/// fn pass_through() -> impl Handler {
///     from_fn(|message: Message, next: Next| next.run(message))
/// }
/// # let _ = pass_through();
/// ```
pub struct FnHandler<F> {
    f: F,
}

impl<F> fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnHandler").finish_non_exhaustive()
    }
}

/// Makes a [`Handler`] from a closure taking the message and [`Next`].
///
/// ```
/// use event_bus::pipeline::{Message, Next, Pipeline, from_fn};
///
/// let log = from_fn(|message: Message, next: Next| async move {
///     println!("{} from {}", message.id(), message.source());
///     next.run(message).await
/// });
/// let pipeline = Pipeline::builder().then(log).build();
/// # drop(pipeline);
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(Message, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    FnHandler { f }
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Message, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        Box::pin((self.f)(message, next))
    }
}

/// Reports a handler's panic (with the backtrace the panic hook captured on this thread) and
/// turns it into the error the chain returns.
#[cold]
fn report_panic(position: usize, message: String) -> PipelineError {
    let backtrace = crate::reporting::take_backtrace(&message);
    crate::reporting::report(
        crate::reporting::Origin::Handler,
        "pipeline",
        &format!("handler {position}"),
        &message,
        Some(backtrace.as_ref()),
    );
    PipelineError::Panic(message)
}
