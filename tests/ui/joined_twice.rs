use event_bus::pipeline::Joined;
use event_bus::prelude::*;

#[event]
#[derive(serde::Deserialize)]
struct Paid;

#[derive(Joined)]
struct Ready {
    paid: Paid,
    again: Option<Paid>,
}

fn main() {}
