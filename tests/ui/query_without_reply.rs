use event_bus::prelude::*;

#[query]
struct Balance;

fn main() {}
