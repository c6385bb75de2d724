use event_bus::prelude::*;

#[command]
struct Charge;

#[handler]
async fn charge(self, _: Charge) {}

fn main() {}
