use event_bus::prelude::*;

#[event]
pub struct UserCreated;

#[listener]
fn on_created(_event: &UserCreated, _extra: u32) {}

fn main() {}
