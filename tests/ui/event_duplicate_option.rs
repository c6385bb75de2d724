use event_bus::event;

#[event(name = "a", name = "b")]
pub struct Twice;

fn main() {}
