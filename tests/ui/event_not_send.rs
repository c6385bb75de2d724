use std::rc::Rc;

use event_bus::event;

#[event]
pub struct Shared {
    pub counter: Rc<u32>,
}

fn main() {}
