use event_bus::prelude::*;

#[command]
struct Charge;

#[handler]
fn charge(_: Charge) {}

fn main() {}
