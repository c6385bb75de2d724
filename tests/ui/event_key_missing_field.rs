use event_bus::event;

#[event(key = user_idd)]
pub struct UserCreated {
    pub user_id: u64,
    pub email: String,
}

fn main() {}
