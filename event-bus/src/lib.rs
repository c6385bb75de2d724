//! Compile-time typed, in-process events.
//!
//! Annotate a payload with [`#[event]`](macro@event), register listeners at start-up from any module,
//! and trigger the event from anywhere. The compiler checks every listener's payload type: each event
//! type owns its own [`Registry`], so there is no `Any`, no downcast and no string lookup between
//! `trigger` and a listener.
//!
//! ```
//! use event_bus::prelude::*;
//! use std::sync::Arc;
//!
//! #[event]
//! #[derive(Debug)]
//! pub struct UserCreated {
//!     pub email: String,
//! }
//!
//! // In any module, no central list needed:
//! #[listener]
//! fn audit(event: &UserCreated) {
//!     println!("audit: {} created", event.email);
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! UserCreated::register(|e: &UserCreated| println!("welcome {}", e.email));
//! UserCreated::register_async(|e: Arc<UserCreated>| async move {
//!     println!("sending mail to {}", e.email);
//! });
//!
//! // Synchronous: sync listeners run here; async ones are spawned on the ambient runtime.
//! let report = UserCreated { email: "ada@example.com".into() }.trigger();
//! assert_eq!((report.succeeded(), report.detached()), (2, 1));
//!
//! // Spawned: every listener in its own task; await the report.
//! let report = UserCreated { email: "alan@example.com".into() }.spawn().await;
//! assert_eq!(report.succeeded(), 3);
//!
//! // Awaited: every listener in order in this task.
//! let report = UserCreated { email: "grace@example.com".into() }.deliver().await;
//! assert!(report.is_success());
//! # }
//! ```
//!
//! # Dispatch modes
//!
//! | mode | where listeners run | returns |
//! | --- | --- | --- |
//! | [`trigger`](Event::trigger) | sync ones on the caller's thread, in priority order; async ones spawned on the ambient tokio runtime (else reported [`NoRuntime`](FailureCause::NoRuntime)) | [`Report`] |
//! | [`spawn`](Event::spawn) | each in its own tokio task; the payload shared by `Arc`, never cloned | [`Dispatch`], a future of the [`Report`]; drop it to detach |
//! | [`deliver`](Event::deliver) | in order in the caller's task, each async one awaited (back-pressure) | a future of the [`Report`] |
//!
//! A listener that returns an error or panics is isolated: the others still run, and the failure
//! is in the [`Report`] (by listener name), in a `tracing` event, and at the application's
//! [error reporter](reporting) if one is set.
//!
//! # Tracing
//!
//! Failures are `tracing` events (`WARN` for errors, `ERROR` for panics). Spans, at `DEBUG`, are
//! named and attributed after OpenTelemetry's messaging conventions: every span has
//! `messaging.system = "event-bus"`, `messaging.operation.type = "process"`,
//! `messaging.destination.name` and `otel.name = "process {destination}"`.
//!
//! | span | one per | more fields |
//! | --- | --- | --- |
//! | `event_bus.listener` | listener run by [`spawn`](Event::spawn) (in its task) or [`deliver`](Event::deliver), and async listener that [`trigger`](Event::trigger) detaches | `event_bus.listener` (its name) |
//! | `event_bus.pipeline` | `Pipeline::process` (feature `pipeline`) | `messaging.message.id`, `event_bus.key` |
//! | `event_bus.handler` | handler of a pipeline a message goes through (nested in the previous one) | `messaging.message.id`, `event_bus.handler` (its position in the chain) |
//! | `event_bus.inbox` | message a durable inbox processes | `messaging.message.id` |
//! | `event_bus.request` | run of a durable listener's request ([`executor`]) | `messaging.message.id` (the event's id), `event_bus.listener` |
//!
//! The synchronous listeners of `trigger` get no span: a whole dispatch costs a few nanoseconds,
//! less than creating one. The `nats` and `cloudevents` features add spans for what they send
//! (`nats.publish`, `cloudevents.send`) and receive (`nats.receive`, `cloudevents.receive`); the
//! W3C trace context travels in the event (`traceparent`) and the receiving span carries it on.
//!
//! # Concurrency
//!
//! Register, unregister and dispatch from any thread at any time. A dispatch runs over the listener
//! list as it was when it started, and no lock is held while a listener runs, so a listener may
//! itself trigger events and (un)register listeners; changes apply from the next dispatch.
//!
//! A dispatch on an event's global registry (`trigger`, `spawn`, `deliver`) reads a copy of the
//! listener list cached by the calling thread, checked against a generation counter that every
//! change increments, so `trigger`'s hot path writes no shared memory. A change is seen by every
//! dispatch that starts after it returned (on its thread, or on any thread that synchronized with
//! it). A removed listener's closure, and what it captured, is dropped once no dispatch uses it
//! (the detached tasks a dispatch started hold their own listener until they end) and every thread
//! that cached it has dispatched that event type again, outside any dispatch of it, or exited: an
//! idle thread keeps at most one stale list per event type. Release resources whose timing
//! matters explicitly rather than in the listener's `Drop`. Registries made with
//! [`Registry::new`] are not cached per thread.
//!
//! # `#[listener]` functions
//!
//! [`#[listener]`](macro@listener) registers a free `fn` or `async fn` in the global registry of its
//! argument's event type, before that registry is first used, from any module or crate of the
//! program. They are collected at link time with the `inventory` crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

// Lets the code `#[event]` generates (which names `::event_bus`) compile inside this crate's tests.
extern crate self as event_bus;

#[cfg(feature = "cloudevents")]
pub mod cloudevents;
pub mod cqrs;
mod dispatch;
mod event;
#[cfg(feature = "pipeline")]
pub mod event_store;
#[cfg(feature = "pipeline")]
pub mod executor;
mod lifecycle;
mod listener;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
#[path = "metrics_disabled.rs"]
mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
mod once;
mod panic;
#[cfg(feature = "pipeline")]
pub mod pipeline;
mod registry;
mod report;
pub mod reporting;
mod spans;
mod static_listeners;
#[cfg(feature = "pipeline")]
pub mod store;
mod subscription;
pub mod testing;

pub use dispatch::Dispatch;
pub use event::Event;
pub use lifecycle::{Drained, Unfinished, drain, reopen};
pub use listener::{AsyncListener, Listener, ListenerBuilder, ListenerOutput};
pub use registry::Registry;
pub use report::{BoxError, Failure, FailureCause, Report};
pub use subscription::{Subscription, SubscriptionGuard};

/// Implements [`Event`] for a struct or enum: its name, its key and its global registry.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event(name = "com.example.order.paid", key = order_id)]
/// struct OrderPaid {
///     order_id: u64,
///     cents: u64,
/// }
///
/// assert_eq!(OrderPaid::NAME, "com.example.order.paid");
/// assert_eq!(OrderPaid { order_id: 9, cents: 100 }.key().as_deref(), Some("9"));
/// ```
///
/// Options, all optional:
/// - `name = "…"`: the event's [`NAME`](Event::NAME) (default: the type's name);
/// - `key = field`: the field whose `Display` form is the event's [`key`](Event::key) (structs
///   only; a tuple struct uses the field's index, `key = 0`);
/// - `crate = path`: where this crate is, when it is renamed or re-exported (default
///   `::event_bus`), e.g. `#[event(crate = my_platform::event_bus)]`.
///
/// The payload must not be generic (each event type owns one `static` registry).
pub use event_bus_macros::event;

/// Registers a free `fn` or `async fn` as a listener of its argument's event type, in the event's
/// global registry, before that registry is first used.
///
/// A sync `fn` takes `&Payload`; an `async fn` takes `&Payload` or `Arc<Payload>`. It may return
/// `()` or `Result<(), E>`. Options: `priority = N` (default 0, higher runs first) and
/// `name = "…"` (default: the function's path).
///
/// The function must be a free function: on a method, or on an associated function inside an
/// `impl` block, the attribute is a compile error that shows the startup registration to use
/// instead (`MyEvent::register(Type::function)`).
///
/// With `durable` (feature `pipeline`), an `async fn` taking the event **by value** becomes a
/// durable listener, as `MyEvent::durable(name, function)` would make it (see the `executor`
/// module for an example); options `name = "…"` (give one: it is stored with each request, so it
/// must not change with a refactor), `priority = <u8>` and `max_errors = <u32>`.
///
/// ```
/// use event_bus::prelude::*;
/// use std::sync::Arc;
///
/// #[event]
/// pub struct OrderShipped {
///     pub id: u64,
/// }
///
/// #[listener(priority = 10)]
/// fn notify_customer(event: &OrderShipped) {
///     println!("order {} is on its way", event.id);
/// }
///
/// #[listener(name = "warehouse")]
/// async fn update_stock(event: Arc<OrderShipped>) -> Result<(), std::io::Error> {
///     println!("restocking after {}", event.id);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let report = OrderShipped { id: 1 }.deliver().await;
/// assert_eq!(report.succeeded(), 2);
/// assert!(OrderShipped::registry().listener_names()[0].ends_with("notify_customer"));
/// # }
/// ```
pub use event_bus_macros::listener;

/// Implements [`cqrs::Command`] for a struct or enum: a command with exactly one handler
/// (`Type::handle_with(f)`), sent with `command.send().await`. Option: `name = "…"` (default the
/// type's name).
///
/// ```
/// use event_bus::prelude::*;
///
/// #[command]
/// struct ShipOrder {
///     order: u64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::cqrs::CqrsError> {
/// ShipOrder::handle_with(|ship: ShipOrder| async move { println!("shipping {}", ship.order) })?;
/// ShipOrder { order: 7 }.send().await?;
/// # Ok(())
/// # }
/// ```
pub use event_bus_macros::command;

/// Implements [`cqrs::Query`] for a struct or enum: a question with a typed answer (`reply =
/// Type`, required) and exactly one handler (`Type::answer_with(f)`), asked with
/// `query.ask().await`. Option: `name = "…"`.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[query(reply = u64)]
/// struct CountOrders;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::cqrs::CqrsError> {
/// CountOrders::answer_with(|_: CountOrders| async { Ok::<_, std::io::Error>(3) })?;
/// assert_eq!(CountOrders.ask().await?, 3);
/// # Ok(())
/// # }
/// ```
pub use event_bus_macros::query;

/// Registers a free `async fn` as the one handler of its argument's `#[command]` or `#[query]`
/// type, before the first `send` or `ask`, from any module or crate of the program (collected at
/// link time, like `#[listener]`). A command handler returns `()` or `Result<(), E>`; a query
/// handler returns `Result<Reply, E>`. Two handlers for one type make every `send` / `ask` of it
/// fail with [`cqrs::CqrsError::DuplicateHandler`] (and log an error at start-up).
///
/// ```
/// use event_bus::prelude::*;
///
/// #[command]
/// struct Refund {
///     cents: u64,
/// }
///
/// #[handler]
/// async fn refund(command: Refund) -> Result<(), std::io::Error> {
///     println!("refunding {} cents", command.cents);
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), event_bus::cqrs::CqrsError> {
/// Refund { cents: 250 }.send().await?;
/// # Ok(())
/// # }
/// ```
pub use event_bus_macros::handler;

/// The items most programs need: `use event_bus::prelude::*;`.
///
/// ```
/// use event_bus::prelude::*;
///
/// #[event]
/// struct Ping;
///
/// let report: Report = Ping.trigger();
/// assert_eq!(report.listeners(), 0);
/// ```
pub mod prelude {
    pub use crate::cqrs::{Command, Query};
    pub use crate::{
        AsyncListener, BoxError, Dispatch, Event, FailureCause, Listener, Registry, Report,
        Subscription, SubscriptionGuard, command, event, handler, listener, query,
    };
}

/// The README's Rust snippets, compiled and run as doc tests so that they cannot rot.
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Items the macros' generated code names. Not public API: may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::cqrs::{HandlerSlot, install_handler};
    #[cfg(feature = "pipeline")]
    pub use crate::executor::install_durable;
    pub use crate::registry::State as RegistryState;
    pub use crate::registry::thread_cache::ThreadCache;
    pub use crate::static_listeners::{StaticListener, install_async, install_sync};
    pub use inventory;
}
