use event_bus::pipeline::Joined;

struct NotAnEvent;

#[derive(Joined)]
struct Ready {
    part: NotAnEvent,
}

fn main() {}
