use event_bus::event;

#[event]
pub struct Wrapper<T> {
    pub inner: T,
}

fn main() {}
