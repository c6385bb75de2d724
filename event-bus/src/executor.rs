//! Durable listeners (feature `pipeline`): listeners whose runs survive crashes and failures, after
//! authorhealth's handler requests, typed.
//!
//! - **Register** a durable listener once, at start-up, under a name unique in the program (or
//!   declare it with `#[listener(durable, name = "…")]` on an `async fn` taking the event by
//!   value; example below):
//!   `E::durable("send-welcome-mail", handler).register()?` ([`Event::durable`](crate::Event::durable)),
//!   with its maximum of errors (default 5), priority (default 50, higher runs first) and
//!   [`Backoff`].
//! - **Publish**: `event.publish(&bus).await?` ([`Event::publish`](crate::Event::publish)) stores
//!   the event with one *request* per durable listener of its type, in one atomic write, and
//!   returns. Nothing runs yet; in-process listeners of `E` are not called (use `trigger`,
//!   `spawn` or `deliver` for those).
//! - **Execute**: an [`Executor`] claims due requests (a lease in the store, renewed while the
//!   listener runs), runs each listener on its own (a failing listener never re-runs the others),
//!   removes the request on success, and on failure waits for the listener's backoff; after
//!   `max_errors` failures the request becomes a *dead request*. Executors in several processes
//!   sharing a store never run one request twice at once; those of a dead process are taken over
//!   once their lease runs out. Scheduling is [`Schedule::Cooperative`] (one at a time, in passes
//!   on an interval) or [`Schedule::Concurrent`] (a worker pool); shutdown finishes or releases
//!   what is in hand.
//! - **Operate**: [`DurableBus::dead_requests`] lists dead requests with their error, attempts
//!   and last failure time; [`revive`](DurableBus::revive) and
//!   [`delete_dead`](DurableBus::delete_dead) act on one.
//! - **Observe**: each run is a `event_bus.request` span; a panic (with its backtrace, once
//!   [`install_panic_hook`](crate::reporting::install_panic_hook) ran) and every request that
//!   becomes dead reach the [`ErrorReporter`](crate::reporting::ErrorReporter).
//!
//! Requests run **at least once**: a listener whose executor dies before recording the outcome
//! runs again. Listeners with effects that must not happen twice check an idempotency key (the
//! event's [`Request::id`] is stable across attempts).
//!
//! ```
//! use event_bus::executor::DurableBus;
//! use event_bus::prelude::*;
//! use event_bus::store::MemoryStore;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! #[event]
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct OrderPaid {
//!     order: u64,
//! }
//!
//! async fn ship(paid: OrderPaid) -> Result<(), std::io::Error> {
//!     println!("shipping order {}", paid.order);
//!     Ok(())
//! }
//!
//! async fn invoice(paid: OrderPaid) -> Result<(), std::io::Error> {
//!     println!("invoicing order {}", paid.order);
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), event_bus::executor::ExecutorError> {
//! OrderPaid::durable("ship", ship).priority(80).register()?;
//! OrderPaid::durable("invoice", invoice).max_errors(10).register()?;
//!
//! let bus = DurableBus::new(Arc::new(MemoryStore::new()));
//! let executor = bus.executor().workers(8).start();
//! let published = OrderPaid { order: 7 }.publish(&bus).await?;
//! assert_eq!(published.requests(), 2);
//! # while bus.pending().await? > 0 { tokio::time::sleep(Duration::from_millis(5)).await; }
//! let executed = executor.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(executed.succeeded, 2);
//! # Ok(())
//! # }
//! ```

//! The same listener declared where it lives:
//!
//! ```
//! use event_bus::prelude::*;
//!
//! #[event]
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Registered {
//!     email: String,
//! }
//!
//! #[listener(durable, name = "send-welcome-mail-from-an-attribute", max_errors = 5, priority = 50)]
//! async fn send_welcome_mail(event: Registered) -> Result<(), std::io::Error> {
//!     println!("welcome, {}", event.email);
//!     Ok(())
//! }
//! ```

mod bus;
mod error;
mod listener;
mod request;
mod run;

pub use bus::{DurableBus, Published};
pub use error::ExecutorError;
#[doc(hidden)]
pub use listener::install_durable;
pub use listener::{
    Backoff, DEFAULT_MAX_ERRORS, DEFAULT_PRIORITY, DEFAULT_TIMEOUT, DurableListener,
    DurableListenerBuilder,
};
pub use request::Request;
pub use run::{Executed, Executor, RunningExecutor, Schedule};
