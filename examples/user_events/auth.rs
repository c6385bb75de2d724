//! The code that produces events: it knows nothing about who listens.

use std::time::SystemTime;

use event_bus::prelude::*;

use crate::events::{UserCreated, UserDeleted};

/// Creates an account and announces it synchronously: listeners have run when this returns.
pub fn create_user(email: &str) -> Report {
    println!("auth: creating {email}");
    UserCreated {
        email: email.to_owned(),
        at: SystemTime::now(),
    }
    .trigger()
}

/// Deletes an account and announces it with one task per listener (the Go post's
/// `go handler.Handle(payload)`), then waits for them.
pub async fn delete_user(email: &str) -> Report {
    println!("auth: deleting {email}");
    UserDeleted {
        email: email.to_owned(),
        at: SystemTime::now(),
    }
    .spawn()
    .await
}
