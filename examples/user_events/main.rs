//! The stephenafamo post ("Implementing an Event Driven System in Go"), done with event-bus.
//!
//! - `events` defines the payloads; `#[event]` writes each one's typed registry.
//! - `notifier` listens: one listener registered with `register_listener` at start-up, others as
//!   `#[listener]` functions that need no call at all.
//! - `auth` triggers: `UserCreated` synchronously, `UserDeleted` spawned (one task per listener).
//!
//! Run it with `cargo run --example user_events`.

use event_bus::Event;

mod auth;
mod events;
mod notifier;

#[tokio::main]
async fn main() {
    notifier::init();

    let report = auth::create_user("ada@example.com");
    println!("auth: {} -> {report}", events::UserCreated::NAME);

    let report = auth::delete_user("ada@example.com").await;
    println!("auth: {} -> {report}", events::UserDeleted::NAME);
}
