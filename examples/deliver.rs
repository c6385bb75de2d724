//! `deliver`: every listener in order in the caller's task, async ones awaited (back-pressure).
//!
//! The producer does not emit the next reading before every listener has handled the current one.
//! Run: `cargo run --example deliver`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use event_bus::prelude::*;

#[event(name = "com.example.sensor.reading", key = sensor)]
#[derive(Debug)]
struct Reading {
    sensor: &'static str,
    celsius: f64,
}

static STORED: AtomicU32 = AtomicU32::new(0);

async fn store(reading: Arc<Reading>) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(10)).await; // a slow database
    STORED.fetch_add(1, Ordering::SeqCst);
    println!("store: saved {} = {:.1}", reading.sensor, reading.celsius);
    Ok(())
}

async fn alert(reading: Arc<Reading>) -> Result<(), String> {
    if reading.celsius > 90.0 {
        return Err(format!(
            "{} overheating: {:.1}",
            reading.sensor, reading.celsius
        ));
    }
    Ok(())
}

fn calibrate(reading: &Reading) {
    if reading.celsius < -273.15 {
        panic!("below absolute zero: {}", reading.celsius);
    }
}

#[tokio::main]
async fn main() {
    std::panic::set_hook(Box::new(|_| {}));

    Reading::listener()
        .name("calibrate")
        .priority(100)
        .register(calibrate);
    Reading::listener().name("store").register_async(store);
    Reading::listener().name("alert").register_async(alert);

    for celsius in [21.5, 95.0, -300.0] {
        let report = Reading {
            sensor: "boiler",
            celsius,
        }
        .deliver()
        .await;
        println!("report: {report}");
    }
    println!("stored {} readings", STORED.load(Ordering::SeqCst));
}
