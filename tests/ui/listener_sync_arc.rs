use std::sync::Arc;

use event_bus::prelude::*;

#[event]
pub struct UserCreated;

#[listener]
fn on_created(_event: Arc<UserCreated>) {}

fn main() {}
