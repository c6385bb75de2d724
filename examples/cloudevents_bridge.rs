//! Typed events across two processes with CloudEvents over HTTP, on loopback.
//!
//! ```text
//! cargo run --example cloudevents_bridge                 # starts a consumer process, then produces
//! cargo run --example cloudevents_bridge -- consumer     # just the consumer (prints its URL)
//! cargo run --example cloudevents_bridge -- producer URL # just the producer
//! ```
//!
//! The producer forwards every `OrderPlaced` it triggers (one line: `sender.forward::<…>()`); the
//! consumer routes `OrderPlaced` into its own registry (one line: `.route::<…>()`), where an
//! ordinary listener prints it. Neither side mentions HTTP headers, JSON or type strings.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use event_bus::cloudevents::{Receiver, Sender};
use event_bus::prelude::*;

/// The event both processes share (in a real system, from a shared crate).
#[event(name = "com.example.shop.order.placed", key = order)]
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct OrderPlaced {
    order: u64,
    cents: u64,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("consumer") => consumer().await,
        Some("producer") => {
            let url = args.get(1).ok_or("usage: producer URL")?;
            producer(url).await
        }
        None => both().await,
        Some(other) => Err(format!("unknown mode `{other}`: consumer | producer URL").into()),
    }
}

/// The receiving process: a typed route and a listener.
async fn consumer() -> Result<(), Error> {
    OrderPlaced::register(|order: &OrderPlaced| {
        println!(
            "consumer: order {} placed, {} cents",
            order.order, order.cents
        );
    });
    let app = Receiver::new().route::<OrderPlaced>().into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The sending process: forward every triggered `OrderPlaced`.
async fn producer(url: &str) -> Result<(), Error> {
    let sender = Sender::new(url)?.source("/shop/checkout");
    let _forwarding = sender.forward::<OrderPlaced>();
    for order in 1..=3 {
        let report = OrderPlaced {
            order,
            cents: order * 1_250,
        }
        .deliver()
        .await;
        println!(
            "producer: order {order} sent: {}",
            if report.is_success() {
                "acknowledged"
            } else {
                "failed"
            }
        );
        if !report.is_success() {
            return Err(format!("order {order}: {report}").into());
        }
    }
    Ok(())
}

/// Both: the consumer as a child process of this program, then the producer here.
async fn both() -> Result<(), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("consumer")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the consumer")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().ok_or("the consumer exited")??;
    let url = first
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected consumer output: {first}"))?
        .to_owned();
    println!("consumer process {} listening on {url}", child.id());
    let echo = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    let produced = producer(&url).await;
    // Give the consumer's last lines a moment to arrive, then stop it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    child.kill()?;
    child.wait()?;
    let _ = echo.join();
    produced
}
