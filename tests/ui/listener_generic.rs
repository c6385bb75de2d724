use event_bus::listener;

#[listener]
fn on_any<E>(_event: &E) {}

fn main() {}
