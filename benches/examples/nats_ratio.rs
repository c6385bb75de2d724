//! A steadier measure of NATS end to end than criterion's means on a noisy 2-core machine that
//! also runs the server: the contenders of `benches/nats.rs` in interleaved rounds (so that drift
//! in the machine or the server's state hits them alike), each round publishing 1,000 events 100
//! at a time and waiting until the consumer has them all; the median and best round of each.
//!
//! - raw async-nats: JSON payload with a `Nats-Msg-Id`, a durable pull consumer acknowledging
//!   each message;
//! - the same raw loop publishing the very headers and payload of our binary mode;
//! - `Nats::publish` → `Nats::consume` → a listener, in binary mode (the default) and in
//!   structured mode.
//!
//! Run with `eval "$(scripts/services)"; cargo run --release -p event-bus-benches --example
//! nats_ratio`. Without `EVENT_BUS_NATS_URL` it prints why and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage, stream};
use event_bus::cloudevents::{CloudEvent, Mode};
use event_bus::nats::Nats;
use event_bus::prelude::*;
use futures_util::StreamExt as _;
use futures_util::future::join_all;

const EVENTS: u64 = 1_000;
const WINDOW: u64 = 100;
const ROUNDS: usize = 31;

#[event(name = "bench.tick", key = id)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Tick {
    id: u64,
    note: String,
}

fn tick(id: u64) -> Tick {
    Tick {
        id,
        note: "a typical small payload".to_owned(),
    }
}

async fn wait_for(counter: &AtomicU64, target: u64) {
    while counter.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// What one round publishes with.
#[derive(Clone, Copy)]
enum Contender {
    Raw,
    RawSameHeaders,
    Ours(Mode),
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Raw => "raw async-nats",
            Contender::RawSameHeaders => "raw async-nats, our binary-mode headers",
            Contender::Ours(Mode::Binary) => "event-bus, binary mode (default)",
            Contender::Ours(_) => "event-bus, structured mode",
        }
    }
}

#[tokio::main(worker_threads = 2)]
async fn main() {
    let Ok(url) = std::env::var("EVENT_BUS_NATS_URL") else {
        eprintln!("skipped: set EVENT_BUS_NATS_URL (eval \"$(scripts/services)\")");
        return;
    };
    let prefix = format!("ratio{}", fastrand::u32(..));

    let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
    let raw_subject = format!("{prefix}.raw");
    let raw_stream = format!("RAW_{prefix}");
    let consumer = js
        .get_or_create_stream(stream::Config {
            name: raw_stream.clone(),
            subjects: vec![raw_subject.clone()],
            ..Default::default()
        })
        .await
        .expect("raw stream")
        .get_or_create_consumer(
            "raw",
            pull::Config {
                durable_name: Some("raw".to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .expect("raw consumer");
    let raw_received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&raw_received);
    tokio::spawn(async move {
        let mut messages = consumer.messages().await.expect("raw messages");
        while let Some(Ok(message)) = messages.next().await {
            let _: Tick = serde_json::from_slice(&message.payload).expect("a tick");
            message.ack().await.expect("ack");
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let ours = Nats::connect(&url)
        .await
        .expect("connect")
        .subject_prefix(prefix.as_str());
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let _listener = Tick::register(move |_: &Tick| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let consuming = ours
        .consume::<Tick>("bench")
        .concurrency(WINDOW as usize)
        .start()
        .await
        .expect("consume");
    let structured = ours.clone().mode(Mode::Structured);

    let contenders = [
        Contender::Raw,
        Contender::RawSameHeaders,
        Contender::Ours(Mode::Binary),
        Contender::Ours(Mode::Structured),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut next_id = 0u64;
    for round in 0..=ROUNDS {
        for (slot, contender) in contenders.iter().enumerate() {
            let started = Instant::now();
            let (counter, before) = match contender {
                Contender::Ours(_) => (&received, received.load(Ordering::Relaxed)),
                _ => (&raw_received, raw_received.load(Ordering::Relaxed)),
            };
            for _ in 0..EVENTS / WINDOW {
                join_all((0..WINDOW).map(|_| {
                    next_id += 1;
                    let event = tick(next_id);
                    let (js, subject, ours, structured) = (&js, &raw_subject, &ours, &structured);
                    let contender = *contender;
                    async move {
                        match contender {
                            Contender::Raw => {
                                let payload = serde_json::to_vec(&event).expect("json");
                                let id = format!("raw-{}", event.id);
                                let message = PublishMessage::build()
                                    .payload(payload.into())
                                    .message_id(id);
                                let ack = js.send_publish(subject.clone(), message).await;
                                ack.expect("publish").await.expect("stored");
                            }
                            Contender::RawSameHeaders => {
                                let cloud =
                                    CloudEvent::from_event(&event, "/event-bus").expect("cloud");
                                let (headers, payload) =
                                    event_bus::nats::write(&cloud, Mode::Binary).expect("write");
                                let message = PublishMessage::build()
                                    .payload(payload.into())
                                    .headers(headers);
                                let ack = js.send_publish(subject.clone(), message).await;
                                ack.expect("publish").await.expect("stored");
                            }
                            Contender::Ours(Mode::Binary) => {
                                ours.publish(&event).await.expect("publish");
                            }
                            Contender::Ours(_) => {
                                structured.publish(&event).await.expect("publish");
                            }
                        }
                    }
                }))
                .await;
            }
            wait_for(counter, before + EVENTS).await;
            // Round 0 warms up (streams, connections, caches).
            if round > 0 {
                times[slot].push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    consuming.shutdown().await;
    let _ = ours.delete_stream::<Tick>().await;
    let _ = js.delete_stream(&raw_stream).await;

    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let mut medians = Vec::new();
    for samples in &mut times {
        medians.push((median(samples), samples[0]));
    }
    let raw = medians[0].0;
    println!("{ROUNDS} interleaved rounds of {EVENTS} events, {WINDOW} published at a time");
    println!("| contender | median per 1,000 | best | throughput vs raw (medians) |");
    println!("| --- | --- | --- | --- |");
    for (contender, (median, best)) in contenders.iter().zip(medians) {
        println!(
            "| {} | {median:.1} ms | {best:.1} ms | {:.0}% |",
            contender.name(),
            raw / median * 100.0
        );
    }
}
