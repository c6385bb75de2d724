//! CloudEvents v1.0 (feature `cloudevents`): typed events across processes.
//!
//! - [`CloudEvent`]: the attributes, extensions and data of one event, with the JSON event format
//!   (structured mode and batches).
//! - The typed mapping: [`CloudEvent::from_event`] and [`CloudEvent::decode`] (`type` =
//!   [`Event::NAME`](crate::Event::NAME), `subject` and `partitionkey` = the key, `eventversion` =
//!   [`Event::VERSION`](crate::Event::VERSION), checked on the way in), and pipeline messages
//!   ([`CloudEvent::from_message`], [`CloudEvent::into_message`]).
//! - The HTTP binding on the `http` crate's types: [`write()`], [`write_batch`] and [`read()`], in
//!   binary, structured and batch modes, with header values percent-encoded as the binding says.
//!
//! - [`Receiver`]: an axum router that takes CloudEvents over HTTP into registries (awaited),
//!   pipelines or durable inboxes, with the answers senders expect (2xx, 400, 413, 415, 429, 5xx).
//! - [`Sender`]: sends typed events (`Ack` / `Nack` / `Undelivered`) with retries and backoff,
//!   typed request-response ([`Sender::request`]), one-line forwarding ([`Sender::forward`]) and a
//!   pipeline handler for durable forwarding ([`forwarding`]).
//! - Distributed tracing: the `traceparent` / `tracestate` extensions are read into the receiving
//!   span and made the current [`TraceContext`] while the event is delivered; senders write the
//!   current context into the events they send.
//!
//! Everything that comes from outside is checked and every problem is a typed
//! [`CloudEventError`] that knows the HTTP status a receiver should answer with: never a panic.
//!
//! ```
//! use event_bus::prelude::*;
//! use event_bus::cloudevents::{self, CloudEvent, Mode, Received};
//!
//! #[event(name = "com.example.user.created", key = id)]
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct UserCreated {
//!     id: u64,
//! }
//!
//! // Sender side: a typed event to an HTTP request's headers and body.
//! let cloud = CloudEvent::from_event(&UserCreated { id: 7 }, "/accounts")?;
//! let mut headers = http::HeaderMap::new();
//! let body = cloudevents::write(&cloud, Mode::Binary, &mut headers)?;
//!
//! // Receiver side: back to the typed event.
//! let Received::One(received) = cloudevents::read(&headers, &body)? else { unreachable!() };
//! assert_eq!(received, cloud);
//! assert_eq!(received.decode::<UserCreated>()?, UserCreated { id: 7 });
//! # Ok::<(), event_bus::cloudevents::CloudEventError>(())
//! ```

mod binding;
mod cqrs;
mod detached;
mod error;
mod event;
mod mapping;
mod receiver;
mod sender;
mod time;
mod trace;

pub use binding::{BATCH, Mode, Received, STRUCTURED, read, write, write_batch};
#[cfg(feature = "nats")]
pub(crate) use binding::{header_value, media_type_essence, read_binary_with, write_with};
pub use error::CloudEventError;
pub use event::{CloudEvent, Extension, SPEC_VERSION};
pub use mapping::{EVENT_VERSION, PARTITION_KEY};
pub use receiver::{DEFAULT_BODY_LIMIT, DEFAULT_MAX_IN_FLIGHT, Receiver, UnknownType};
pub use sender::{Forwarding, Outcome, SendError, Sender, forwarding};
pub use trace::TraceContext;
