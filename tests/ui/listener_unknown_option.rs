use event_bus::prelude::*;

#[event]
pub struct UserCreated;

#[listener(prio = 3)]
fn on_created(_event: &UserCreated) {}

fn main() {}
