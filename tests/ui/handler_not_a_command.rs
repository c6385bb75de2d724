use event_bus::prelude::*;

struct Charge;

#[handler]
async fn charge(_: Charge) {}

fn main() {}
