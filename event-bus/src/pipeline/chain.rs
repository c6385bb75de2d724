//! [`Pipeline`]: an ordered chain of handlers, itself a handler.

use std::fmt;
use std::sync::Arc;

use super::handler::{Handler, HandlerFuture, Next, Route, route_through};
use super::message::Message;
use crate::spans;
use tracing::Instrument as _;

/// An ordered chain of [`Handler`]s. Each gets the message and the rest of the chain; a pipeline is
/// itself a handler, so pipelines nest. Cheap to clone.
///
/// ```
/// use event_bus::pipeline::{Filter, Message, Next, Pipeline, Transform, from_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let inner = Pipeline::builder()
///     .then(Transform::map(|m: Message| Ok(m.with_metadata("seen-by", "inner"))))
///     .build();
/// let pipeline = Pipeline::builder()
///     .then(Filter::new(|m: &Message| m.source() != "noise"))
///     .then(inner) // nested
///     .then(from_fn(|message: Message, _next: Next| async move {
///         assert_eq!(message.metadata()["seen-by"], "inner");
///         Ok(())
///     }))
///     .build();
/// pipeline.process(Message::new("orders", "7", Vec::new())).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pipeline {
    chain: Arc<[Arc<dyn Handler>]>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("handlers", &self.chain.len())
            .finish()
    }
}

impl Pipeline {
    /// Starts a pipeline.
    ///
    /// ```
    /// let pipeline = event_bus::pipeline::Pipeline::builder().build();
    /// assert_eq!(pipeline.len(), 0);
    /// ```
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder {
            handlers: Vec::new(),
        }
    }

    /// Runs `message` through every handler. A panic anywhere becomes
    /// [`PipelineError::Panic`](super::PipelineError::Panic).
    ///
    /// ```
    /// use event_bus::pipeline::{Message, Next, Pipeline, PipelineError, from_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pipeline = Pipeline::builder()
    ///     .then(from_fn(|_: Message, _: Next| async { Err(PipelineError::permanent("no")) }))
    ///     .build();
    /// let result = pipeline.process(Message::new("s", "k", Vec::new())).await;
    /// assert!(result.is_err());
    /// # }
    /// ```
    pub fn process(&self, message: Message) -> HandlerFuture {
        if crate::metrics::on() {
            return self.process_measured(message);
        }
        let span = spans::pipeline(message.source(), message.id(), message.key());
        if span.is_disabled() {
            // No subscriber wants it: no wrapper, no allocation.
            return Next::start(Arc::clone(&self.chain), None).run(message);
        }
        let processing = span.in_scope(|| Next::start(Arc::clone(&self.chain), None).run(message));
        Box::pin(processing.instrument(span))
    }

    /// [`process`](Pipeline::process) while metrics are recorded.
    #[cold]
    fn process_measured(&self, message: Message) -> HandlerFuture {
        let timer = crate::metrics::Timer::start();
        let source = message.source().to_owned();
        let span = spans::pipeline(message.source(), message.id(), message.key());
        let processing = span.in_scope(|| Next::start(Arc::clone(&self.chain), None).run(message));
        Box::pin(
            async move {
                let result = processing.await;
                crate::metrics::processed(&source, result.is_ok(), timer);
                result
            }
            .instrument(span),
        )
    }

    /// The number of handlers.
    ///
    /// ```
    /// use event_bus::pipeline::{Filter, Pipeline};
    ///
    /// let pipeline = Pipeline::builder().then(Filter::new(|_| true)).build();
    /// assert_eq!(pipeline.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// `true` for a pipeline without handlers.
    ///
    /// ```
    /// assert!(event_bus::pipeline::Pipeline::builder().build().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }
}

impl Handler for Pipeline {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        Next::start(Arc::clone(&self.chain), Some(Arc::new(next))).run(message)
    }

    fn route(&self, source: &str) -> Route {
        route_through(&self.chain, source)
    }
}

/// Builds a [`Pipeline`]: `Pipeline::builder().then(a).then(b).build()`.
///
/// ```
/// use event_bus::pipeline::{Filter, Pipeline, PipelineBuilder};
///
/// let builder: PipelineBuilder = Pipeline::builder().then(Filter::new(|_| true));
/// let pipeline: Pipeline = builder.into();
/// assert_eq!(pipeline.len(), 1);
/// ```
pub struct PipelineBuilder {
    handlers: Vec<Arc<dyn Handler>>,
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("handlers", &self.handlers.len())
            .finish()
    }
}

impl PipelineBuilder {
    /// Appends a handler.
    ///
    /// ```
    /// use event_bus::pipeline::{Filter, Pipeline};
    ///
    /// let pipeline = Pipeline::builder().then(Filter::new(|_| true)).then(Filter::new(|_| true)).build();
    /// assert_eq!(pipeline.len(), 2);
    /// ```
    pub fn then(mut self, handler: impl Handler) -> Self {
        self.handlers.push(Arc::new(handler));
        self
    }

    /// Appends a shared handler (for instance one you also keep to inspect, like dead letters).
    ///
    /// ```
    /// use event_bus::pipeline::{Filter, Pipeline};
    /// use std::sync::Arc;
    ///
    /// let shared = Arc::new(Filter::new(|_| true));
    /// let pipeline = Pipeline::builder().then_shared(shared.clone()).build();
    /// assert_eq!(pipeline.len(), 1);
    /// ```
    pub fn then_shared(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handlers.push(handler);
        self
    }

    /// Finishes the pipeline.
    ///
    /// ```
    /// let pipeline = event_bus::pipeline::Pipeline::builder().build();
    /// # drop(pipeline);
    /// ```
    pub fn build(self) -> Pipeline {
        Pipeline {
            chain: Arc::from(self.handlers),
        }
    }
}

impl From<PipelineBuilder> for Pipeline {
    fn from(builder: PipelineBuilder) -> Self {
        builder.build()
    }
}
