//! Listeners: they notify an admin and a chat channel when accounts come and go.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use event_bus::prelude::*;
use event_bus::{BoxError, Listener};

use crate::events::{UserCreated, UserDeleted};

/// Notifies an admin and a Slack channel of new accounts (the Go post's `userCreatedNotifier`).
struct UserCreatedNotifier {
    admin_email: String,
    slack_hook: String,
}

impl Listener<UserCreated> for UserCreatedNotifier {
    fn handle(&self, event: &UserCreated) -> Result<(), BoxError> {
        println!(
            "notifier: mail {} -> {} was created (key {:?})",
            self.admin_email,
            event.email,
            event.key()
        );
        println!(
            "notifier: post to {} -> {} created {}s after the epoch",
            self.slack_hook,
            event.email,
            seconds_since_epoch(event.at)?
        );
        Ok(())
    }
}

/// Registers the listeners that need configuration. `#[listener]` functions below need no call.
pub fn init() {
    UserCreated::listener()
        .name("user-created-notifier")
        .register_listener(UserCreatedNotifier {
            admin_email: "admin@example.com".into(),
            slack_hook: "https://hooks.slack.example/T000/B000".into(),
        });
}

/// Registered automatically, before `UserDeleted`'s first dispatch.
#[listener]
fn admin_on_user_deleted(event: &UserDeleted) {
    println!("notifier: mail admin -> {} was deleted", event.email);
}

/// An async listener: in `spawn` mode it runs in its own task, concurrently with the one above.
#[listener(priority = 10)]
async fn slack_on_user_deleted(event: Arc<UserDeleted>) -> Result<(), BoxError> {
    // Stand-in for an HTTP call to the webhook.
    tokio::time::sleep(Duration::from_millis(20)).await;
    println!(
        "notifier: posted to slack -> {} deleted {}s after the epoch",
        event.email,
        seconds_since_epoch(event.at)?
    );
    Ok(())
}

fn seconds_since_epoch(at: SystemTime) -> Result<u64, BoxError> {
    Ok(at.duration_since(SystemTime::UNIX_EPOCH)?.as_secs())
}
