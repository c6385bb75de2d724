use event_bus::listener;

pub struct NotAnEvent;

#[listener]
fn on_thing(_event: &NotAnEvent) {}

fn main() {}
