use event_bus::prelude::*;

#[command]
struct Charge;

struct Billing;

impl Billing {
    #[handler]
    async fn charge(_: Charge) {}
}

fn main() {}
