//! The CloudEvents sender against real receivers on loopback: acknowledgement, refusals that are
//! not retried, retries with `Retry-After`, undelivered events, timeouts, typed request-response,
//! one-line forwarding, and durable forwarding that survives an offline receiver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{self as http, StatusCode};
use event_bus::cloudevents::{Outcome, Receiver, SendError, Sender, forwarding};
use event_bus::pipeline::{Durable, Pipeline};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Serves `app` on a free loopback port until the test ends; returns its URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A sender that gives up quickly.
fn quick(url: &str) -> Sender {
    Sender::new(url)
        .unwrap()
        .source("/tests")
        .timeout(Duration::from_secs(2))
        .retries(4, Duration::from_millis(5), Duration::from_millis(20))
}

#[event(name = "test.sender.note", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note {
    id: u32,
    text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_event_crosses_and_is_acknowledged() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _guard = Note::register(move |note: &Note| sink.lock().unwrap().push(note.clone())).guard();
    let url = serve(Receiver::new().route::<Note>().into_router()).await;
    let note = Note {
        id: 1,
        text: "über \"quotes\" 100%".into(),
    };
    assert!(quick(&url).send(&note).await.is_ack());
    let structured = quick(&url).mode(event_bus::cloudevents::Mode::Structured);
    assert!(structured.send(&note).await.is_ack());
    assert_eq!(*seen.lock().unwrap(), [note.clone(), note]);
}

/// A receiver that answers `statuses` in turn (then 200), counting the requests.
fn scripted(statuses: Vec<(StatusCode, Option<&'static str>)>) -> (Router, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let app = Router::new().route(
        "/",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let answer = statuses.get(n).copied().unwrap_or((StatusCode::OK, None));
            async move {
                let mut response =
                    axum::response::IntoResponse::into_response((answer.0, "scripted"));
                if let Some(seconds) = answer.1 {
                    response
                        .headers_mut()
                        .insert("retry-after", seconds.parse().unwrap());
                }
                response
            }
        }),
    );
    (app, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_answers_are_retried_and_other_4xx_are_not() {
    let note = Note {
        id: 2,
        text: String::new(),
    };
    let (app, count) = scripted(vec![
        (StatusCode::SERVICE_UNAVAILABLE, None),
        (StatusCode::TOO_MANY_REQUESTS, Some("1")),
        (StatusCode::NOT_FOUND, None),
    ]);
    let url = serve(app).await;
    let started = std::time::Instant::now();
    assert!(quick(&url).send(&note).await.is_ack());
    assert_eq!(count.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );

    let (app, count) = scripted(vec![(StatusCode::BAD_REQUEST, None); 5]);
    let url = serve(app).await;
    match quick(&url).send(&note).await {
        Outcome::Nack { status, reason } => {
            assert_eq!(
                (status, reason.as_str()),
                (StatusCode::BAD_REQUEST, "scripted")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "a 400 is not retried");

    let (app, count) = scripted(vec![(StatusCode::INTERNAL_SERVER_ERROR, None); 10]);
    let url = serve(app).await;
    assert!(matches!(
        quick(&url).send(&note).await,
        Outcome::Nack {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..
        }
    ));
    assert_eq!(count.load(Ordering::SeqCst), 4, "every attempt used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_or_silent_receiver_is_undelivered() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let note = Note {
        id: 3,
        text: String::new(),
    };
    match quick(&url).send(&note).await {
        Outcome::Undelivered(SendError::Transport(_)) => {}
        other => panic!("{other:?}"),
    }
    let silent = Router::new().route(
        "/",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK
        }),
    );
    let url = serve(silent).await;
    let sender = quick(&url).timeout(Duration::from_millis(100)).retries(
        2,
        Duration::from_millis(1),
        Duration::from_millis(1),
    );
    match sender.send(&note).await {
        Outcome::Undelivered(SendError::Timeout(timeout)) => {
            assert_eq!(timeout, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
}

#[event(name = "test.sender.price-asked")]
#[derive(Serialize, Deserialize)]
struct PriceAsked {
    sku: String,
}

#[event(name = "test.sender.price-quoted")]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct PriceQuoted {
    cents: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_its_typed_reply() {
    let app = Receiver::new()
        .reply(|ask: PriceAsked| async move {
            if ask.sku.is_empty() {
                return Err("no such item");
            }
            Ok(PriceQuoted {
                cents: ask.sku.len() as u64 * 100,
            })
        })
        .into_router();
    let url = serve(app).await;
    let sender = quick(&url);
    let quote: PriceQuoted = sender
        .request(&PriceAsked { sku: "book".into() })
        .await
        .unwrap();
    assert_eq!(quote, PriceQuoted { cents: 400 });
    let failed = sender
        .request::<_, PriceQuoted>(&PriceAsked { sku: String::new() })
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("no such item"), "{failed}");
    // A reply of another type is a typed error.
    let wrong = sender
        .request::<_, Note>(&PriceAsked { sku: "x".into() })
        .await;
    assert!(matches!(wrong, Err(SendError::Reply(_))), "{wrong:?}");
}

#[event(name = "test.sender.forwarded", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Forwarded {
    id: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_sends_every_triggered_event_and_reports_failures() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    // The receiving side, in this process, on a local registry of the same type, bridged by a
    // route to a pipeline that records (the global registry is the sending side here).
    let recording = Pipeline::builder()
        .then(event_bus::pipeline::handle_json(move |f: Forwarded| {
            sink.lock().unwrap().push(f.id);
            async { Ok(()) }
        }))
        .build();
    let url = serve(
        Receiver::new()
            .pipeline::<Forwarded>(recording)
            .into_router(),
    )
    .await;
    let subscription = quick(&url).forward::<Forwarded>();
    for id in 0..5 {
        assert!(Forwarded { id }.deliver().await.is_success());
    }
    assert_eq!(*received.lock().unwrap(), [0, 1, 2, 3, 4]);
    subscription.unsubscribe();

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let _failing = quick(&nowhere).forward::<Forwarded>().guard();
    let report = Forwarded { id: 9 }.deliver().await;
    assert_eq!(report.failures().len(), 1, "{report}");
}

#[event(name = "test.sender.outboxed", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Outboxed {
    id: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_forwarding_loses_nothing_while_the_receiver_is_offline() {
    // Reserve a port, then leave it closed: the receiver is offline.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{address}/");
    let outbox = Durable::new(
        Arc::new(MemoryStore::new()),
        Pipeline::builder().then(forwarding(quick(&url))).build(),
    );
    for id in 0..3 {
        assert!(
            outbox
                .submit(event_bus::pipeline::Message::from_event(&Outboxed { id }).unwrap())
                .await
                .is_err()
        );
    }
    assert_eq!(
        outbox.pending().await.unwrap(),
        3,
        "kept while the receiver is down"
    );

    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let recording = Pipeline::builder()
        .then(event_bus::pipeline::handle_json(move |o: Outboxed| {
            sink.lock().unwrap().push(o.id);
            async { Ok(()) }
        }))
        .build();
    let listener = TcpListener::bind(address).await.unwrap();
    let app = Receiver::new()
        .pipeline::<Outboxed>(recording)
        .into_router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Leases of this process's failed attempts are released: recover takes them at once.
    let recovered = outbox.recover().await.unwrap();
    assert_eq!(recovered.succeeded, 3, "{recovered:?}");
    let mut ids = received.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(outbox.pending().await.unwrap(), 0);
}

#[event(name = "test.sender.traced-first")]
#[derive(Serialize, Deserialize)]
struct TracedFirst;

#[event(name = "test.sender.traced-second")]
#[derive(Serialize, Deserialize)]
struct TracedSecond;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_continues_across_two_hops() {
    use event_bus::cloudevents::TraceContext;

    // Second hop: records the context it runs in.
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let _second = TracedSecond::register(move |_: &TracedSecond| {
        *sink.lock().unwrap() = Some(TraceContext::current());
    })
    .guard();
    let second_url = serve(Receiver::new().route::<TracedSecond>().into_router()).await;

    // First hop: a listener that sends the second event while handling the first.
    let onward = quick(&second_url);
    let _first = TracedFirst::register_async(move |_: Arc<TracedFirst>| {
        let onward = onward.clone();
        async move { onward.send(&TracedSecond).await.into_result() }
    })
    .guard();
    let first_url = serve(Receiver::new().route::<TracedFirst>().into_router()).await;

    let origin = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("vendor=1"),
    )
    .unwrap();
    let outcome = origin
        .clone()
        .scope(quick(&first_url).send(&TracedFirst))
        .await;
    assert!(outcome.is_ack(), "{outcome:?}");
    let context = seen
        .lock()
        .unwrap()
        .clone()
        .flatten()
        .expect("a context on the second hop");
    assert_eq!(context.trace_id(), origin.trace_id());
    assert_eq!(context.tracestate(), Some("vendor=1"));
    assert_ne!(
        context.traceparent(),
        origin.traceparent(),
        "a new parent id per hop"
    );

    // Without a context, nothing is written.
    let headers = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&headers);
    let bare = Router::new().route(
        "/",
        axum::routing::post(move |received: http::HeaderMap| {
            *sink.lock().unwrap() = Some(received);
            async { StatusCode::OK }
        }),
    );
    let url = serve(bare).await;
    assert!(quick(&url).send(&TracedFirst).await.is_ack());
    let received = headers.lock().unwrap().clone().unwrap();
    assert!(received.get("ce-traceparent").is_none());
}

/// A raw HTTP/1.1 server that answers every request with `answer` and counts the requests.
async fn raw_server(answer: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (answer, counter) = (answer.clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the head and the body announced by Content-Length.
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_decides_even_when_the_answer_body_cannot_be_read() {
    let note = Note {
        id: 5,
        text: String::new(),
    };
    let mut huge = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5242880\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    let cut_short = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 100\r\n\r\nshort".to_vec();
    for answer in [huge, cut_short] {
        let (url, count) = raw_server(answer).await;
        match quick(&url).send(&note).await {
            Outcome::Nack { status, .. } => assert_eq!(status, StatusCode::BAD_REQUEST),
            other => panic!("{other:?}"),
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "a 400 is not retried");
    }
    let acked_cut_short = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec();
    let (url, count) = raw_server(acked_cut_short).await;
    assert!(quick(&url).send(&note).await.is_ack());
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "an acknowledged event is not sent again"
    );
}
