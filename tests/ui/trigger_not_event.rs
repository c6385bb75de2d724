use event_bus::prelude::*;

pub struct NotAnEvent;

fn main() {
    let _ = NotAnEvent.trigger();
}
