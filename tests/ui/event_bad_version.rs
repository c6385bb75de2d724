use event_bus::prelude::*;

#[event(version = 0)]
pub struct Placed;

fn main() {}
