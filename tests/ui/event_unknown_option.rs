use event_bus::event;

#[event(nmae = "com.example.user.created")]
pub struct UserCreated {
    pub email: String,
}

fn main() {}
