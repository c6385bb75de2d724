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
//! and become [`PipelineError::Panic`]. Pipelines run on tokio with its time driver enabled
//! (`#[tokio::main]` and `#[tokio::test]` do that; a hand-built runtime needs `enable_time`).
//!
//! # Claims, leases and fencing
//!
//! [`Join`] (one join per key), [`Idempotency`] (one run per key) and [`Durable`] (one processor
//! per inbox message) share one claim model, so that cancellation, store errors, crashes and
//! several processes sharing a store keep their promises:
//!
//! - **Owner**: a claim records who holds a key: this *process run* (a UUID drawn at start-up) and
//!   a token unique within it. Two adapter values in one process are the same owner, but each
//!   claim is held by exactly one holder.
//! - **Lease**: a claim is a store record with a time to live (30 s by default, `lease(..)` on each
//!   adapter). The holder renews it every third of the lease while the rest of the chain runs, so
//!   long work keeps it. A live claim of someone else is respected: `Join` leaves the key to its
//!   holder (the part is stored), `Idempotency` waits for the outcome (then skips a duplicate or
//!   runs), `Durable::recover` skips the message. A claim whose lease ran out (its holder died) is
//!   free for anyone.
//! - **Release**: a holder that fails releases its claim; one that is dropped (a [`Timeout`], a
//!   `select!`, a dropped future) forgets it at once, and releases the record in the background.
//!   A claim of this run that no holder holds (a release that failed on a store error, or has not
//!   run yet) is taken over at once by this process, with compare-and-swap; other processes wait
//!   for its lease.
//! - **Fencing**: a holder commits with one atomic [`Batch`](crate::store::Batch) that first
//!   checks the claim is still its own ([`Batch::expect`](crate::store::Batch::expect)); if its
//!   lease was taken over, the commit writes nothing and fails with [`PipelineError::ClaimLost`]
//!   (retryable). A renewal that finds the claim lost cancels the work the same way.
//! - **Atomicity**: what must not be half-done is one batch: a join's "joined" marker with the
//!   deletion of its parts; an idempotency record with the writes [`stage`]d by the attempt that
//!   succeeded; an expired join's dead letter with the deletion of its parts; an inbox message's
//!   removal with its claim's.
//!
//! Effects outside the store (an HTTP call) stay at-least-once: a holder that lost its lease may
//! have made them before its commit was refused.
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
pub(crate) mod claim;
mod dead_letter;
mod durable;
mod effects;
mod error;
mod filter;
mod handler;
mod idempotency;
mod join;
mod joined;
mod message;
pub(crate) mod message_id;
pub(crate) mod quarantine;
pub(crate) mod retry;
mod timeout;
mod transform;
mod typed;

pub use chain::{Pipeline, PipelineBuilder};
pub use dead_letter::{DeadLetter, DeadLetters, ReplayOutcome, Replayed};
pub use durable::{Accepted, Durable, Inboxed, Recovered};
pub use effects::stage;
pub use error::{PipelineError, ResultExt};
/// Derives [`Joined`] (see there).
pub use event_bus_macros::Joined;
pub use filter::Filter;
pub use handler::{FnHandler, Handler, HandlerFuture, Next, Route, from_fn};
pub use idempotency::{Conflict, Idempotency, IdempotencyRecord, IdempotencyStats, OnDuplicate};
pub use join::{COMPOSED_SOURCE, Condition, ExpiredJoin, Join, JoinStats, PendingJoin, Swept};
pub use joined::{
    __entries, Erased, JoinPart, Joined, JoinedHandler, handle_joined, handle_joined_with,
};
pub use message::Message;
pub use quarantine::{Quarantine, Quarantined};
pub use retry::{Jitter, Retry};
pub use timeout::Timeout;
pub use transform::Transform;
pub use typed::{JsonHandler, handle_json, handle_json_with};
