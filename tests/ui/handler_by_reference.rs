use event_bus::prelude::*;

#[command]
struct Charge;

#[handler]
async fn charge(_: &Charge) {}

fn main() {}
