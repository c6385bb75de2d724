use event_bus::prelude::*;

#[command(reply = u64)]
struct Charge;

fn main() {}
