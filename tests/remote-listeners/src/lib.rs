//! A second crate of the workspace: it defines an event and `#[listener]` functions for it, and
//! nothing more. The integration tests check that these listeners are registered in the event's
//! global registry even though they live in another crate.

use std::sync::{Arc, Mutex};

use event_bus::prelude::*;

/// An event whose listeners record their names in a shared attendance list, so a test can see who
/// received it.
#[event(name = "test.remote.roll-call")]
#[derive(Debug, Default)]
pub struct RollCall {
    present: Arc<Mutex<Vec<&'static str>>>,
}

impl RollCall {
    /// Records that `who` received the event.
    pub fn answer(&self, who: &'static str) {
        if let Ok(mut present) = self.present.lock() {
            present.push(who);
        }
    }

    /// A handle on the attendance list that outlives the event.
    pub fn attendance(&self) -> Attendance {
        Attendance(Arc::clone(&self.present))
    }
}

/// The names recorded by the listeners of one [`RollCall`].
#[derive(Debug, Clone)]
pub struct Attendance(Arc<Mutex<Vec<&'static str>>>);

impl Attendance {
    /// The names recorded, in call order.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.lock().map(|names| names.clone()).unwrap_or_default()
    }
}

#[listener]
fn remote_sync(event: &RollCall) {
    event.answer("remote_sync");
}

#[listener(priority = 5, name = "remote-async")]
async fn remote_async(event: Arc<RollCall>) {
    event.answer("remote_async");
}
