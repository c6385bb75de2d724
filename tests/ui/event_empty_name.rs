use event_bus::event;

#[event(name = "")]
pub struct Anonymous;

fn main() {}
