//! End to end over NATS JetStream, in one run: typed events published with `Nats::publish` and
//! consumed by `Nats::consume` into a listener, against a raw async-nats loop doing the same work
//! on a stream of its own (publish with a message id and wait for the stream's ack; a durable pull
//! consumer acknowledging each message), and that raw loop again publishing the very headers and
//! payload of our binary mode. Each iteration publishes 1,000 events, 100 at a time, and ends when
//! the consumer has acknowledged all of them.
//!
//! Needs `EVENT_BUS_NATS_URL` (`eval "$(scripts/services)"`); without it the group is skipped with
//! a printed line. Run with `cargo bench -p event-bus-benches --bench nats`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, message::PublishMessage, stream};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use event_bus::cloudevents::{CloudEvent, Mode};
use event_bus::nats::Nats;
use event_bus::prelude::*;
use futures_util::StreamExt as _;
use futures_util::future::join_all;

const EVENTS: u64 = 1_000;
const WINDOW: usize = 100;

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

/// What the raw contender publishes: the tick as JSON with a message id, or (`same_headers`) the
/// headers and payload of our binary mode.
fn raw_message(id: u64, prefix: &str, same_headers: bool) -> PublishMessage {
    if same_headers {
        let cloud = CloudEvent::from_event(&tick(id), "/event-bus").unwrap();
        let (headers, payload) = event_bus::nats::write(&cloud, Mode::Binary).unwrap();
        PublishMessage::build()
            .payload(payload.into())
            .headers(headers)
    } else {
        let payload = serde_json::to_vec(&tick(id)).unwrap();
        PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("raw-{prefix}-{id}"))
    }
}

async fn wait_for(counter: &AtomicU64, target: u64) {
    while counter.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn nats(c: &mut Criterion) {
    let Ok(url) = std::env::var("EVENT_BUS_NATS_URL") else {
        eprintln!("skipped: set EVENT_BUS_NATS_URL to run the NATS benchmarks");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("bench{}", fastrand::u32(..));

    // event-bus: publish typed events, consume them into the registry.
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let _listener = Tick::register(move |_: &Tick| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let (ours, consuming) = runtime.block_on(async {
        let nats = Nats::connect(&url)
            .await
            .unwrap()
            .subject_prefix(prefix.as_str());
        let consuming = nats
            .consume::<Tick>("bench")
            .concurrency(WINDOW)
            .start()
            .await
            .unwrap();
        (nats, consuming)
    });
    // The same, with the whole event as JSON in the payload (structured mode) instead of a
    // `ce-` header per attribute; the same stream and consumer.
    let structured = ours.clone().mode(Mode::Structured);

    // Raw async-nats: the same shape by hand.
    let raw_received = Arc::new(AtomicU64::new(0));
    let raw_subject = format!("{prefix}.raw");
    let (js, raw_stream) = runtime.block_on(async {
        let client = async_nats::connect(&url).await.unwrap();
        let js = jetstream::new(client);
        let name = format!("RAW_{prefix}");
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![raw_subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer = stream
            .get_or_create_consumer(
                "raw",
                pull::Config {
                    durable_name: Some("raw".to_owned()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let counter = Arc::clone(&raw_received);
        tokio::spawn(async move {
            let mut messages = consumer.messages().await.unwrap();
            while let Some(Ok(message)) = messages.next().await {
                let _: Tick = serde_json::from_slice(&message.payload).unwrap();
                message.ack().await.unwrap();
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        (js, name)
    });

    let mut group = c.benchmark_group("nats_end_to_end");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    let mut next_id = 0u64;
    // Raw async-nats, then the same loop publishing the very headers and payload our binary mode
    // sends (made with `event_bus::nats::write`): what the CloudEvents headers cost by themselves.
    for (name, same_headers) in [
        ("raw_async_nats", false),
        ("raw_async_nats_same_headers", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let target = raw_received.load(Ordering::Relaxed) + EVENTS;
                        for window in (0..EVENTS).collect::<Vec<_>>().chunks(WINDOW) {
                            join_all(window.iter().map(|_| {
                                next_id += 1;
                                let message = raw_message(next_id, &prefix, same_headers);
                                let js = &js;
                                let subject = raw_subject.clone();
                                async move {
                                    js.send_publish(subject, message)
                                        .await
                                        .unwrap()
                                        .await
                                        .unwrap();
                                }
                            }))
                            .await;
                        }
                        wait_for(&raw_received, target).await;
                    }
                    started.elapsed()
                })
            })
        });
    }
    for (name, nats) in [("event_bus", &ours), ("event_bus_structured", &structured)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let target = received.load(Ordering::Relaxed) + EVENTS;
                        for window in (0..EVENTS).collect::<Vec<_>>().chunks(WINDOW) {
                            join_all(window.iter().map(|_| {
                                next_id += 1;
                                let event = tick(next_id);
                                let ours = nats;
                                async move {
                                    ours.publish(&event).await.unwrap();
                                }
                            }))
                            .await;
                        }
                        wait_for(&received, target).await;
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
    runtime.block_on(async {
        consuming.shutdown().await;
        let _ = ours.delete_stream::<Tick>().await;
        let _ = js.delete_stream(&raw_stream).await;
    });
}

criterion_group!(benches, nats);
criterion_main!(benches);
