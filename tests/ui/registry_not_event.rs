use event_bus::Registry;

pub struct NotAnEvent;

fn main() {
    let registry = Registry::<NotAnEvent>::new();
}
