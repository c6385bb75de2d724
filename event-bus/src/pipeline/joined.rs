//! Typed joins: a handler input that names its parts by type ([`Joined`], derived with
//! `#[derive(Joined)]`), so that a join needs no source strings.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::error::PipelineError;
use super::handler::{Handler, HandlerFuture, Next};
use super::join::{Condition, Join};
use super::message::Message;
use crate::event::Event;
use crate::store::IntoStore;

/// The input of a handler after a [`Join`]: one field per part, each named by its type. Derive it
/// with `#[derive(Joined)]`: every field is an `#[event]` type (a required part), an `Option` of
/// one (an optional part) or [`Erased<E>`] (a required part whose content was erased before the
/// join). The derive builds the join [`condition`](Joined::condition) from the types'
/// [`NAME`](Event::NAME)s and the decoding of the joined message.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::pipeline::{Join, Joined, Message, Pipeline, handle_joined};
/// use event_bus::store::MemoryStore;
/// use std::sync::Arc;
///
/// #[event(name = "payment.confirmed", key = order)]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct PaymentConfirmed { order: u64, cents: u64 }
///
/// #[event(name = "inventory.reserved", key = order)]
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct InventoryReserved { order: u64, sku: String }
///
/// #[derive(Joined)]
/// struct Ready {
///     payment: PaymentConfirmed,
///     inventory: InventoryReserved,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
/// let pipeline = Pipeline::builder()
///     .then(Join::of::<Ready>(Arc::new(MemoryStore::new())))
///     .then(handle_joined(|ready: Ready| async move {
///         println!("ship {} for order {}", ready.inventory.sku, ready.payment.order);
///         Ok(())
///     }))
///     .build();
/// pipeline.process(Message::from_event(&PaymentConfirmed { order: 7, cents: 100 })?).await?;
/// pipeline.process(Message::from_event(&InventoryReserved { order: 7, sku: "A".into() })?).await?;
/// # Ok(())
/// # }
/// ```
pub trait Joined: Sized + Send + 'static {
    /// The condition of the join: every required part present.
    fn condition() -> Condition;

    /// The sources of every part, required or optional.
    fn parts() -> Vec<&'static str>;

    /// Decodes a joined message's content (`{source: content}`).
    fn decode(joined: &Message) -> Result<Self, PipelineError>;
}

/// One field of a [`Joined`] input: an `#[event]` type, an `Option` of one, or [`Erased<E>`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a part of a joined input",
    label = "not an `#[event]` type, an `Option` of one, or `Erased<E>`",
    note = "each field of a `#[derive(Joined)]` struct names a joined event by its type: put `#[event]` (and serde's `Deserialize`) on the type"
)]
pub trait JoinPart: Sized {
    /// The source (event name) of the part.
    const SOURCE: &'static str;
    /// Whether the join waits for it.
    const REQUIRED: bool;

    /// The part from its entry in the joined content (`None` when absent).
    fn decode(entry: Option<&serde_json::Value>) -> Result<Self, PipelineError>;
}

fn decode_event<E: DeserializeOwned + Event>(
    value: &serde_json::Value,
) -> Result<E, PipelineError> {
    let decoded = match value {
        // A part whose content is not a JSON object was composed as a string of its JSON.
        serde_json::Value::String(text) => {
            serde_json::from_str(text).or_else(|_| serde_json::from_value(value.clone()))
        }
        other => serde_json::from_value(other.clone()),
    };
    decoded.map_err(|error| PipelineError::Decode {
        source_name: E::NAME.to_owned(),
        error,
    })
}

fn absent(source: &str) -> PipelineError {
    PipelineError::permanent(format!("the joined message has no part `{source}`"))
}

impl<E: Event + DeserializeOwned> JoinPart for E {
    const SOURCE: &'static str = E::NAME;
    const REQUIRED: bool = true;

    fn decode(entry: Option<&serde_json::Value>) -> Result<Self, PipelineError> {
        decode_event(entry.ok_or_else(|| absent(E::NAME))?)
    }
}

impl<E: Event + DeserializeOwned> JoinPart for Option<E> {
    const SOURCE: &'static str = E::NAME;
    const REQUIRED: bool = false;

    fn decode(entry: Option<&serde_json::Value>) -> Result<Self, PipelineError> {
        entry.map(decode_event).transpose()
    }
}

/// A required part whose content was erased before the join
/// ([`Transform::erase`](super::Transform::erase)): the join waits for it, the handler only knows
/// it arrived.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::pipeline::{Erased, Joined};
///
/// #[event(name = "order.requested")]
/// struct OrderRequested { notes: String }
///
/// #[event(name = "payment.confirmed")]
/// #[derive(serde::Deserialize)]
/// struct PaymentConfirmed { cents: u64 }
///
/// #[derive(Joined)]
/// struct Ready {
///     _order: Erased<OrderRequested>,
///     payment: PaymentConfirmed,
/// }
///
/// assert_eq!(Ready::condition().to_string(), "all of [order.requested, payment.confirmed]");
/// ```
pub struct Erased<E>(PhantomData<fn() -> E>);

impl<E> fmt::Debug for Erased<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Erased")
    }
}

impl<E: Event> JoinPart for Erased<E> {
    const SOURCE: &'static str = E::NAME;
    const REQUIRED: bool = true;

    fn decode(entry: Option<&serde_json::Value>) -> Result<Self, PipelineError> {
        entry.ok_or_else(|| absent(E::NAME))?;
        Ok(Erased(PhantomData))
    }
}

/// Used by `#[derive(Joined)]`: the entries of a joined message's content.
#[doc(hidden)]
pub fn __entries(
    joined: &Message,
) -> Result<serde_json::Map<String, serde_json::Value>, PipelineError> {
    serde_json::from_slice(joined.content()).map_err(|error| PipelineError::Decode {
        source_name: joined.source().to_owned(),
        error,
    })
}

impl Join {
    /// A join for the typed input `J`: the condition comes from its fields' types.
    ///
    /// ```
    /// use event_bus::prelude::*;
    /// use event_bus::pipeline::{Join, Joined};
    /// use event_bus::store::MemoryStore;
    /// use std::sync::Arc;
    ///
    /// #[event(name = "a")]
    /// #[derive(serde::Deserialize)]
    /// struct A;
    ///
    /// #[derive(Joined)]
    /// struct Input { a: A }
    ///
    /// let join = Join::of::<Input>(Arc::new(MemoryStore::new()));
    /// # drop(join);
    /// ```
    pub fn of<J: Joined>(store: impl IntoStore) -> Self {
        Join::new(J::condition(), store).expecting(J::parts())
    }
}

/// A handler that decodes each joined message into `J` (see [`Joined`]), runs `f` on it, then
/// continues with the rest of the chain.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::pipeline::{Joined, handle_joined};
///
/// #[event(name = "a")]
/// #[derive(serde::Deserialize)]
/// struct A { n: u32 }
///
/// #[derive(Joined)]
/// struct Input { a: A }
///
/// let handler = handle_joined(|input: Input| async move {
///     println!("{}", input.a.n);
///     Ok(())
/// });
/// # drop(handler);
/// ```
pub fn handle_joined<J, F, Fut>(f: F) -> JoinedHandler<J>
where
    J: Joined,
    F: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    handle_joined_with(move |input: J, _: &Message| f(input))
}

/// Like [`handle_joined`], with the joined message next to the typed input: its key (the join
/// key), id and metadata. `f` runs synchronously with the borrowed message; take what the returned
/// future needs before it.
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::pipeline::{Joined, Message, handle_joined_with};
///
/// #[event(name = "shop.paid")]
/// #[derive(serde::Deserialize)]
/// struct Paid { cents: u64 }
///
/// #[derive(Joined)]
/// struct Ready { paid: Paid }
///
/// let handler = handle_joined_with(|ready: Ready, message: &Message| {
///     let (order, id) = (message.key().to_owned(), message.id().to_owned());
///     async move {
///         println!("order {order} (message {id}): {} cents", ready.paid.cents);
///         Ok(())
///     }
/// });
/// # drop(handler);
/// ```
pub fn handle_joined_with<J, F, Fut>(f: F) -> JoinedHandler<J>
where
    J: Joined,
    F: Fn(J, &Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PipelineError>> + Send + 'static,
{
    JoinedHandler {
        f: Arc::new(move |input: J, message: &Message| {
            Box::pin(f(input, message)) as HandlerFuture
        }),
    }
}

/// What a [`JoinedHandler`] calls: the user's function, its future boxed.
type JoinedFn<J> = dyn Fn(J, &Message) -> HandlerFuture + Send + Sync;

/// A handler from [`handle_joined`] or [`handle_joined_with`].
///
/// ```
/// use event_bus::prelude::*;
/// use event_bus::pipeline::{Joined, JoinedHandler, handle_joined};
///
/// #[event(name = "a")]
/// #[derive(serde::Deserialize)]
/// struct A;
///
/// #[derive(Joined)]
/// struct Input { a: A }
///
/// fn handler() -> JoinedHandler<Input> {
///     handle_joined(|_: Input| async { Ok(()) })
/// }
/// # drop(handler());
/// ```
pub struct JoinedHandler<J> {
    f: Arc<JoinedFn<J>>,
}

impl<J> fmt::Debug for JoinedHandler<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinedHandler")
            .field("input", &std::any::type_name::<J>())
            .finish_non_exhaustive()
    }
}

impl<J: Joined> Handler for JoinedHandler<J> {
    fn handle(&self, message: Message, next: Next) -> HandlerFuture {
        let input = match J::decode(&message) {
            Ok(input) => input,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let work = (self.f)(input, &message);
        Box::pin(async move {
            work.await?;
            next.run(message).await
        })
    }
}
