use event_bus::event;

#[event]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
