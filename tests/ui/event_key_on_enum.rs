use event_bus::event;

#[event(key = id)]
pub enum Shape {
    Circle { id: u32 },
    Square { id: u32 },
}

fn main() {}
