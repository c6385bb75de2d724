use event_bus::prelude::*;

#[command]
fn place_order() {}

fn main() {}
