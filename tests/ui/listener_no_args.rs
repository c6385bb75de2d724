use event_bus::listener;

#[listener]
fn on_nothing() {}

fn main() {}
