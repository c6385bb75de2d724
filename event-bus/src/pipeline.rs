//! Message pipelines (feature `pipeline`): ordered chains of handlers over a [`Message`], with
//! adapters for the jobs event-driven services keep re-writing.
//!
//! | adapter | does |
//! | --- | --- |
//! | [`Transform`] | map messages; erase the content of given sources; rename sources |
//! | [`Filter`] | let only matching messages through |
//! | [`Timeout`] | cancel the rest of the chain at a deadline |
//! | [`Join`] | wait for all (any, none) of several sources per key, emit one combined message |
//! | [`Idempotency`] | let each key through once; commit after success, release on failure |
//! | [`Retry`] | exponential backoff with jitter, for retryable errors |
//! | [`DeadLetters`] | park what finally failed; list, count, replay, delete |
//! | [`Durable`] | persist before processing, remove after; [`recover`](Durable::recover) after a crash |
//!
//! Typed edges: [`Pipeline::listen`] feeds `#[event]` types in (as JSON messages with the event's
//! name as source and its key as key); [`handle_json`] decodes messages into your type.
//!
//! A [`Handler`] gets the message and [`Next`]; calling `next.run(message)` continues, returning
//! stops. A [`Pipeline`] is itself a handler, so pipelines nest. Panics in any handler are caught
//! and become [`PipelineError::Panic`].
//!
//! ```
//! use event_bus::pipeline::{Filter, Message, Next, Pipeline, Transform, from_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), event_bus::pipeline::PipelineError> {
//! let pipeline = Pipeline::builder()
//!     .then(Filter::new(|m: &Message| !m.key().is_empty()))
//!     .then(Transform::erase_content_from(["order.requested"]))
//!     .then(from_fn(|message: Message, next: Next| async move {
//!         println!("{} for {}", message.source(), message.key());
//!         next.run(message).await
//!     }))
//!     .build();
//! pipeline.process(Message::new("order.requested", "order-1", vec![0; 1024])).await?;
//! # Ok(())
//! # }
//! ```

mod chain;
mod claim;
mod dead_letter;
mod durable;
mod effects;
mod error;
mod filter;
mod handler;
mod idempotency;
mod join;
mod message;
mod retry;
mod timeout;
mod transform;
mod typed;

pub use chain::{Pipeline, PipelineBuilder};
pub use dead_letter::{DeadLetter, DeadLetters, Replayed};
pub use durable::{Accepted, Durable, Recovered};
pub use effects::stage;
pub use error::PipelineError;
pub use filter::Filter;
pub use handler::{FnHandler, Handler, HandlerFuture, Next, from_fn};
pub use idempotency::{Conflict, Idempotency, IdempotencyStats};
pub use join::{COMPOSED_SOURCE, Condition, ExpiredJoin, Join, JoinStats};
pub use message::Message;
pub use retry::{Jitter, Retry};
pub use timeout::Timeout;
pub use transform::Transform;
pub use typed::{JsonHandler, handle_json};
