use event_bus::listener;

#[listener]
pub struct Notifier;

fn main() {}
