use event_bus::prelude::*;

#[event]
pub struct UserCreated;

#[listener]
fn on_created(_event: &UserCreated) -> u32 {
    7
}

fn main() {}
