use event_bus::prelude::*;

#[event(crate = my_events::event_bus)]
struct Renamed;

fn main() {}
