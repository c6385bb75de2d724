use event_bus::prelude::*;

#[event]
pub struct UserCreated;

pub struct Notifier;

impl Notifier {
    #[listener]
    fn on_created(_event: &UserCreated) {}
}

fn main() {}
