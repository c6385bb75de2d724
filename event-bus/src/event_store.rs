//! Event sourcing (feature `pipeline`): an append-only [`EventLog`] of typed events on any
//! [`Store`](crate::store::Store), [`Aggregate`]s rebuilt from their events (with snapshots),
//! optimistic concurrency, and an [`Outbox`] that publishes every appended event to its
//! registry after the commit.
//!
//! - **Streams and the global order**: each aggregate is a stream `{TYPE}/{id}` with versions
//!   1, 2, ...; every event also has a position in the whole log (1, 2, ... without gaps, taken in
//!   the append's atomic batch), so a reader of [`EventLog::read_all`] never skips an event that a
//!   slower concurrent append committed.
//! - **Commands**: [`Repository::execute`] loads the aggregate, lets it decide, and appends
//!   expecting the version it loaded; a concurrent writer gets a conflict
//!   ([`EventStoreError::Conflict`]), never a lost or interleaved write.
//! - **Snapshots** every N events ([`Repository::snapshot_every`]), versioned by
//!   [`Aggregate::SNAPSHOT_VERSION`]; loading from a snapshot gives the state a full replay gives.
//! - **Publication after commit**: the [`Outbox`] hands each appended event to its type's
//!   registry, at least once, even across a crash.
//! - **Event versions**: `#[event(version = 2)]` with an [`Upcast`] impl from version 1
//!   ([`register_upcaster`]): events appended at version 1 are read as version 2.
//! - **Projections**: a [`Projection`] stages the writes each event causes; its [`Projector`]
//!   commits them atomically with its position (exactly once per event), catches up from any
//!   position, follows the log live, and rebuilds from zero on demand.
//!
//! ```
//! use event_bus::event_store::{Aggregate, EventLog, Outbox, Repository};
//! use event_bus::prelude::*;
//! use event_bus::store::MemoryStore;
//! use serde::{Deserialize, Serialize};
//! use std::sync::Arc;
//!
//! #[event(name = "shop.cart")]
//! #[derive(Clone, Serialize, Deserialize)]
//! enum CartEvent {
//!     Added { sku: String },
//!     CheckedOut,
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("the cart is already checked out")]
//! struct Closed;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Cart {
//!     items: Vec<String>,
//!     closed: bool,
//! }
//!
//! impl Aggregate for Cart {
//!     const TYPE: &'static str = "cart";
//!     type Command = CartEvent; // commands mirror the events here
//!     type Event = CartEvent;
//!     type Error = Closed;
//!
//!     fn handle(&self, command: CartEvent) -> Result<Vec<CartEvent>, Closed> {
//!         if self.closed { Err(Closed) } else { Ok(vec![command]) }
//!     }
//!
//!     fn apply(&mut self, event: &CartEvent) {
//!         match event {
//!             CartEvent::Added { sku } => self.items.push(sku.clone()),
//!             CartEvent::CheckedOut => self.closed = true,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! CartEvent::register(|event: &CartEvent| {
//!     if let CartEvent::CheckedOut = event { println!("a cart was checked out"); }
//! });
//! let log = EventLog::new(Arc::new(MemoryStore::new()));
//! let carts = Repository::<Cart>::new(log.clone()).snapshot_every(100);
//! let outbox = Outbox::new(&log).route::<CartEvent>();
//!
//! carts.execute("c1", CartEvent::Added { sku: "tea".into() }).await?;
//! carts.execute("c1", CartEvent::CheckedOut).await?;
//! assert!(carts.execute("c1", CartEvent::Added { sku: "cake".into() }).await.is_err());
//! assert_eq!(carts.load("c1").await?.state.items, ["tea"]);
//! assert_eq!(outbox.publish_pending().await?.published, 2);
//! # Ok(())
//! # }
//! ```

mod aggregate;
mod error;
mod log;
mod outbox;
mod projection;
mod repository;
mod upcast;

pub use aggregate::Aggregate;
pub use error::{EventStoreError, ExecuteError};
pub use log::{EventLog, RecordedEvent};
pub use outbox::{Outbox, Published, RunningOutbox};
pub use projection::{Projection, Projector, RunningProjector, Staged};
pub use repository::{Loaded, Repository};
pub use upcast::{Upcast, register_upcaster};
