use event_bus::event;

#[event]
fn user_created() {}

fn main() {}
