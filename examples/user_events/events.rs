//! The events: one payload type each. `#[event]` gives every type its own registry, so a listener
//! for `UserCreated` can only ever receive a `UserCreated`.

use std::time::SystemTime;

use event_bus::event;

/// A new account was created.
#[event(name = "com.example.user.created", key = email)]
#[derive(Debug)]
pub struct UserCreated {
    pub email: String,
    pub at: SystemTime,
}

/// An account was deleted.
#[event(name = "com.example.user.deleted", key = email)]
#[derive(Debug)]
pub struct UserDeleted {
    pub email: String,
    pub at: SystemTime,
}
