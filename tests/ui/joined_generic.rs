use event_bus::pipeline::Joined;

#[derive(Joined)]
struct Ready<T> {
    part: T,
}

fn main() {}
