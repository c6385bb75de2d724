use event_bus::prelude::*;

#[event]
struct Signup;

#[listener(max_errors = 3)]
fn welcome(_: &Signup) {}

fn main() {}
