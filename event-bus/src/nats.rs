//! NATS JetStream (feature `nats`): typed events between processes through a real broker.
//!
//! - [`Nats`]: a connection. [`publish`](Nats::publish) writes a typed event as a CloudEvent
//!   (binary mode: attributes in `ce-` headers, see [`write()`] / [`read()`]) on the subject
//!   `E::NAME`, with `Nats-Msg-Id` = the event's source and id so that the stream drops a second publish of
//!   the same event, and returns once the stream stored it. [`forward`](Nats::forward) publishes
//!   every triggered `E` (one line).
//! - [`Consume`] / [`Consuming`]: a durable pull consumer into `E`'s registry, a
//!   [`Pipeline`](crate::pipeline::Pipeline) or a [`Durable`](crate::pipeline::Durable) inbox:
//!   acknowledged after success, handed back with a backoff delay after a failure, dead-lettered
//!   and terminated after too many; a work queue per group or fan-out per instance; bounded in
//!   flight. [`Nats::consume`] starts one in a line.
//!
//! Only what JetStream in NATS server 2.9 offers is used.
//!
//! A known limit, below this library: a message whose header block the async-nats client cannot
//! parse (a header name or value that is not UTF-8, a line without a colon; no CloudEvents
//! publisher writes one) makes the client drop its connection each time the message is delivered,
//! so the consumer never sees it to dead-letter it. Remove such a message on the server (for
//! example `nats stream rmm`).
//!
//! ```no_run
//! use event_bus::prelude::*;
//! use event_bus::nats::Nats;
//!
//! #[event(name = "users.created", key = id)]
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct UserCreated {
//!     id: u64,
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), event_bus::nats::NatsError> {
//! let nats = Nats::connect("nats://127.0.0.1:4222").await?;
//!
//! // Consumer side (any process): into the registry, every listener awaited.
//! UserCreated::register(|user: &UserCreated| println!("welcome {}", user.id));
//! let consuming = nats.consume::<UserCreated>("mailer").start().await?;
//!
//! // Producer side (any process).
//! nats.publish(&UserCreated { id: 7 }).await?;
//! # consuming.shutdown().await;
//! # Ok(()) }
//! ```

mod client;
mod consumer;
mod error;
mod puller;
mod wire;

pub use client::{DEFAULT_DUPLICATE_WINDOW, Nats, Published};
pub use consumer::{Consume, ConsumeStats, Consuming};
pub use error::NatsError;
pub use wire::{read, write};
