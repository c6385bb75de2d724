use event_bus::prelude::*;

#[event]
pub struct UserCreated {
    pub email: String,
}

#[event]
pub struct UserDeleted {
    pub email: String,
}

fn main() {
    UserCreated::register(|event: &UserDeleted| println!("{}", event.email));
}
