use event_bus::prelude::*;

#[event]
#[derive(serde::Serialize, serde::Deserialize)]
struct Signup;

#[listener(durable)]
async fn welcome(_: &Signup) {}

fn main() {}
