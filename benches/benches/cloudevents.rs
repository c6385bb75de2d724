//! CloudEvents over HTTP on loopback, side by side with what a user would write by hand, in one
//! run (HTTP/1.1 keep-alive, one request at a time, a multi-thread runtime):
//!
//! - `bare`: a hyper client posting the same bytes to an axum handler that answers 200.
//! - `receiver`: the same hand-written client posting a binary-mode event to our `Receiver`,
//!   which decodes it and delivers it, awaited, to one listener (isolates the receiver).
//! - `sender`: our `Sender::send` of a typed event to the bare handler (isolates the sender).
//! - `both`: our `Sender` to our `Receiver`.
//!
//! Run with `cargo bench -p event-bus-benches --bench cloudevents`; the time per event is the
//! reciprocal of events/s, so receiver throughput relative to bare is `bare / receiver`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use event_bus::cloudevents::{CloudEvent, Mode, Receiver, Sender, write};
use event_bus::prelude::*;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[event(name = "bench.cloudevents.ping", key = n)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Ping {
    n: u64,
    note: String,
}

fn ping(n: u64) -> Ping {
    Ping {
        n,
        note: "a typical small payload".into(),
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn cloudevents(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Ping::register(|p: &Ping| {
        std::hint::black_box(p.n);
    });
    let (bare_url, receiver_url) = runtime.block_on(async {
        let bare = Router::new().route(
            "/",
            axum::routing::post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                http::StatusCode::OK
            }),
        );
        (
            serve(bare).await,
            serve(Receiver::new().route::<Ping>().into_router()).await,
        )
    });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let event = CloudEvent::from_event(&ping(1), "/bench").unwrap();
    let mut headers = http::HeaderMap::new();
    let body = Bytes::from(write(&event, Mode::Binary, &mut headers).unwrap());

    let runtime = &runtime;
    let by_hand = |url: String| {
        let (client, headers, body) = (client.clone(), headers.clone(), body.clone());
        move |iters: u64| {
            let (client, headers, body, url) =
                (client.clone(), headers.clone(), body.clone(), url.clone());
            runtime.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut request = http::Request::post(url.as_str())
                        .body(Full::new(body.clone()))
                        .unwrap();
                    *request.headers_mut() = headers.clone();
                    let response = client.request(request).await.unwrap();
                    assert!(response.status().is_success());
                    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                }
                start.elapsed()
            })
        }
    };
    let ours = |url: String| {
        let sender = Sender::new(&url).unwrap().source("/bench");
        move |iters: u64| {
            let sender = sender.clone();
            runtime.block_on(async move {
                let start = Instant::now();
                for n in 0..iters {
                    assert!(sender.send(&ping(n)).await.is_ack());
                }
                start.elapsed()
            })
        }
    };

    let mut group = c.benchmark_group("cloudevents");
    let bare = by_hand(bare_url.clone());
    group.bench_function("bare_client_to_bare_handler", |b| b.iter_custom(&bare));
    let receiver = by_hand(receiver_url.clone());
    group.bench_function("bare_client_to_receiver", |b| b.iter_custom(&receiver));
    let sender = ours(bare_url);
    group.bench_function("sender_to_bare_handler", |b| b.iter_custom(&sender));
    let both = ours(receiver_url);
    group.bench_function("sender_to_receiver", |b| b.iter_custom(&both));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = cloudevents
}
criterion_main!(benches);
