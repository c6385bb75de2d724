//! Typed edges of a pipeline: `#[event]` types in ([`Pipeline::listen`]), a typed handler out
//! ([`handle_json`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::chain::Pipeline;
use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next, Route};
use super::message::Message;
use crate::event::Event;
use crate::registry::Registry;
use crate::subscription::Subscription;

impl Pipeline {
    /// Feeds every `E` dispatched on `E`'s global registry into this pipeline, as
    /// [`Message::from_event`] (source = the event's name, key = its key, content = JSON). Listen
    /// to several event types by calling this once per type.
    ///
    /// A message that fails is a failure of this listener in the dispatch's
    /// [`Report`](crate::Report) (use [`deliver`](crate::Event::deliver) to await it).
    ///
    /// Fails with [`PipelineError::Config`] when the pipeline's first join does not expect `E`
    /// (its messages would wait there forever): see [`Handler::route`].
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::{Message, Next, Pipeline, from_fn};
    ///
    /// #[event(name = "payment.confirmed", key = order)]
    /// #[derive(serde::Serialize)]
    /// struct PaymentConfirmed {
    ///     order: u32,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
    /// let pipeline = Pipeline::builder()
    ///     .then(from_fn(|message: Message, _: Next| async move {
    ///         assert_eq!((message.source(), message.key()), ("payment.confirmed", "7"));
    ///         Ok(())
    ///     }))
    ///     .build();
    /// pipeline.listen::<PaymentConfirmed>()?;
    /// assert!(PaymentConfirmed { order: 7 }.deliver().await.is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen<E: Event + Serialize>(&self) -> Result<Subscription<E>, PipelineError> {
        self.listen_to(E::registry())
    }

    /// Like [`listen`](Pipeline::listen), on a given (for instance local) registry.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::Pipeline;
    ///
    /// #[event]
    /// #[derive(serde::Serialize)]
    /// struct Ping;
    ///
    /// let registry = Registry::<Ping>::new();
    /// Pipeline::builder().build().listen_to(&registry)?;
    /// assert_eq!(registry.len(), 1);
    /// # Ok::<(), event_bus::pipeline::PipelineError>(())
    /// ```
    pub fn listen_to<E: Event + Serialize>(
        &self,
        registry: &Registry<E>,
    ) -> Result<Subscription<E>, PipelineError> {
        expects::<E>(self)?;
        let pipeline = self.clone();
        Ok(listen_with(
            registry,
            "event_bus::pipeline::Pipeline",
            move |message| pipeline.process(message),
        ))
    }
}

/// `Ok` unless `handler` is known to keep messages of `E` forever (a join that does not expect
/// them).
pub(crate) fn expects<E: Event>(handler: &dyn Handler) -> Result<(), PipelineError> {
    match handler.route(E::NAME) {
        Route::Unexpected(why) => Err(PipelineError::Config(format!(
            "messages of `{}` would wait forever in this pipeline: {why}",
            E::NAME
        ))),
        _ => Ok(()),
    }
}

/// Registers a listener turning each `E` into a message handed to `sink`.
pub(crate) fn listen_with<E, F, Fut>(registry: &Registry<E>, name: &str, sink: F) -> Subscription<E>
where
    E: Event + Serialize,
    F: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    let sink = Arc::new(sink);
    registry
        .listener()
        .name(name)
        .register_async(move |event: Arc<E>| {
            let message = Message::from_event(&*event);
            let sink = Arc::clone(&sink);
            async move { sink(message?).await }
        })
}

/// A handler that decodes each message's content as JSON into `T`, runs `f` on it, then continues
/// with the rest of the chain. Content that does not decode is a [`PipelineError::Decode`].
///
/// For a [`Join`](super::Join), `T` has one field per source (rename fields to source names with
/// `#[serde(rename = "…")]`). To see the message's key, id or metadata too, use
/// [`handle_json_with`].
///
/// ```
/// use event_bus::pipeline::{Message, Pipeline, handle_json};
///
/// #[derive(serde::Deserialize)]
/// struct Shipment {
///     order: u32,
///     carrier: String,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let pipeline = Pipeline::builder()
///     .then(handle_json(|shipment: Shipment| async move {
///         println!("order {} ships with {}", shipment.order, shipment.carrier);
///         Ok(())
///     }))
///     .build();
/// pipeline.process(Message::new("shipping", "7", br#"{"order":7,"carrier":"DHL"}"#.to_vec())).await?;
/// assert!(pipeline.process(Message::new("shipping", "8", b"not json".to_vec())).await.is_err());
/// # Ok(())
/// # }
/// ```
pub fn handle_json<T, F, Fut>(f: F) -> JsonHandler<T>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    handle_json_with(move |input: T, _: &Message| f(input))
}

/// Like [`handle_json`], with the message next to the decoded input: its key, id, source and
/// metadata. `f` runs synchronously with the borrowed message; take what the returned future
/// needs before it.
///
/// ```
/// use event_bus::pipeline::{Message, Pipeline, handle_json_with};
///
/// #[derive(serde::Deserialize)]
/// struct Payment {
///     cents: u64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let pipeline = Pipeline::builder()
///     .then(handle_json_with(|payment: Payment, message: &Message| {
///         let (order, trace) = (message.key().to_owned(), message.metadata().get("trace").cloned());
///         async move {
///             println!("order {order}: {} cents (trace {trace:?})", payment.cents);
///             Ok(())
///         }
///     }))
///     .build();
/// let message = Message::new("payment", "order-7", br#"{"cents":100}"#.to_vec()).with_metadata("trace", "t1");
/// pipeline.process(message).await?;
/// # Ok(())
/// # }
/// ```
pub fn handle_json_with<T, F, Fut>(f: F) -> JsonHandler<T>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, &Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    JsonHandler {
        f: Arc::new(move |input: T, message: &Message| {
            Box::pin(f(input, message)) as HandlerFuture
        }),
    }
}

type JsonFn<T> = dyn Fn(T, &Message) -> HandlerFuture + Send + Sync;

/// A handler from [`handle_json`] or [`handle_json_with`].
///
/// ```
/// use event_bus::pipeline::{Handler, JsonHandler, handle_json};
///
/// fn counter() -> JsonHandler<u64> {
///     handle_json(|n: u64| async move {
///         println!("got {n}");
///         Ok(())
///     })
/// }
/// # let _ = counter();
/// ```
pub struct JsonHandler<T> {
    f: Arc<JsonFn<T>>,
}

impl<T> fmt::Debug for JsonHandler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonHandler")
            .field("input", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static> Handler for JsonHandler<T> {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let input = match serde_json::from_slice::<T>(message.content()) {
            Ok(input) => input,
            Err(error) => {
                let error = PipelineError::Decode {
                    source_name: message.source().to_owned(),
                    error,
                };
                return Box::pin(std::future::ready(Err(error)));
            }
        };
        let work = (self.f)(input, &message);
        Box::pin(async move {
            work.await?;
            next.run(message).await
        })
    }
}
