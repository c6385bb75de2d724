use event_bus::prelude::*;

#[event]
#[derive(serde::Serialize, serde::Deserialize)]
struct Signup;

#[listener(durable, name = "send\u{7}mail")]
async fn welcome(_: Signup) {}

fn main() {}
