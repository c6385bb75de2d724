use event_bus::prelude::*;

#[command]
struct Wrapped<T>(T);

fn main() {}
