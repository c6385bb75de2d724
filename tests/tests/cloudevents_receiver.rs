//! The CloudEvents HTTP receiver, driven in-process through the router (`tower::ServiceExt`):
//! every answer the receiver promises, and arbitrary requests never answered with a 5xx.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use event_bus::cloudevents::{CloudEvent, Mode, Receiver, UnknownType, write, write_batch};
use event_bus::pipeline::{Durable, Message, Next, Pipeline, PipelineError, from_fn};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use http::{HeaderMap, Request, StatusCode};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

/// Sends one request to the router and returns its status, headers and body text.
async fn send(
    app: &axum::Router,
    headers: HeaderMap,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::post("/").body(Body::from(body)).unwrap();
    *request.headers_mut() = headers;
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn encoded(event: &CloudEvent, mode: Mode) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    let body = write(event, mode, &mut headers).unwrap();
    (headers, body)
}

#[event(name = "test.receiver.greeted", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Greeted {
    id: u32,
    name: String,
}

#[tokio::test]
async fn events_in_every_mode_reach_the_typed_listeners() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _guard = Greeted::register(move |g: &Greeted| sink.lock().unwrap().push(g.id)).guard();
    let app = Receiver::new().route::<Greeted>().into_router();
    let event = |id| {
        CloudEvent::from_event(
            &Greeted {
                id,
                name: "ada".into(),
            },
            "/test",
        )
        .unwrap()
    };

    for (id, mode) in [(1, Mode::Binary), (2, Mode::Structured)] {
        let (headers, body) = encoded(&event(id), mode);
        let (status, _, reason) = send(&app, headers, body).await;
        assert_eq!(status, StatusCode::OK, "{reason}");
    }
    let mut headers = HeaderMap::new();
    let body = write_batch(&[event(3), event(4)], &mut headers);
    assert_eq!(send(&app, headers, body).await.0, StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4]);
}

#[event(name = "test.receiver.failing")]
#[derive(Serialize, Deserialize)]
struct Failing {
    panic: bool,
}

#[tokio::test]
async fn a_failing_or_panicking_listener_is_a_500_so_the_sender_retries() {
    let _guard = Failing::listener()
        .name("mailer")
        .register(|f: &Failing| {
            if f.panic {
                panic!("boom");
            }
            Err::<(), _>("smtp down")
        })
        .guard();
    let app = Receiver::new().route::<Failing>().into_router();
    for panic in [false, true] {
        let (headers, body) = encoded(
            &CloudEvent::from_event(&Failing { panic }, "/t").unwrap(),
            Mode::Binary,
        );
        let (status, _, reason) = send(&app, headers, body).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(reason.contains("mailer"), "{reason}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_reason() {
    let app = Receiver::new()
        .route::<Greeted>()
        .body_limit(1024)
        .into_router();
    let good = CloudEvent::from_event(
        &Greeted {
            id: 1,
            name: "x".into(),
        },
        "/t",
    )
    .unwrap();

    // Unknown type.
    let other = CloudEvent::new("1", "/t", "test.receiver.unknown").unwrap();
    let (headers, body) = encoded(&other, Mode::Binary);
    let (status, _, reason) = send(&app, headers.clone(), body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("test.receiver.unknown"), "{reason}");
    let ignoring = Receiver::new()
        .unknown_types(UnknownType::Ignore)
        .into_router();
    assert_eq!(send(&ignoring, headers, body).await.0, StatusCode::OK);

    // Data that does not decode into the route's type.
    let wrong = good
        .clone()
        .with_data("application/json", br#"{"id":"one"}"#.to_vec());
    let (headers, body) = encoded(&wrong, Mode::Structured);
    let (status, _, reason) = send(&app, headers, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");

    // A missing attribute.
    let (mut headers, body) = encoded(&good, Mode::Binary);
    headers.remove("ce-source");
    let (status, _, reason) = send(&app, headers, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("source"), "{reason}");

    // Not a CloudEvent.
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(
        send(&app, headers, b"hi".to_vec()).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    // Over the body limit, with and without a declared length.
    let big = good.clone().with_data(
        "application/json",
        format!("\"{}\"", "x".repeat(2000)).into_bytes(),
    );
    let (mut headers, body) = encoded(&big, Mode::Binary);
    assert_eq!(
        send(&app, headers.clone(), body.clone()).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    headers.insert("content-length", body.len().to_string().parse().unwrap());
    assert_eq!(
        send(&app, headers, body).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[event(name = "test.receiver.slow")]
#[derive(Serialize, Deserialize)]
struct Slow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_flight_bound_the_answer_is_429_with_retry_after() {
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (on_start, on_release) = (Arc::clone(&started), Arc::clone(&release));
    let _guard = Slow::register_async(move |_: Arc<Slow>| {
        let (on_start, on_release) = (Arc::clone(&on_start), Arc::clone(&on_release));
        async move {
            on_start.notify_one();
            on_release.notified().await;
        }
    })
    .guard();
    let app = Receiver::new()
        .route::<Slow>()
        .max_in_flight(1)
        .retry_after(Duration::from_millis(1500))
        .into_router();
    let (headers, body) = encoded(&CloudEvent::from_event(&Slow, "/t").unwrap(), Mode::Binary);
    let first = tokio::spawn({
        let (app, headers, body) = (app.clone(), headers.clone(), body.clone());
        async move { send(&app, headers, body).await.0 }
    });
    started.notified().await;
    let (status, answer_headers, _) = send(&app, headers.clone(), body.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer_headers["retry-after"], "2");
    release.notify_one();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
}

#[event(name = "test.receiver.order", key = order)]
#[derive(Serialize, Deserialize)]
struct Order {
    order: u32,
}

#[tokio::test]
async fn pipelines_and_durable_inboxes_get_messages_keyed_by_partition_key() {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&keys);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let pipeline = Pipeline::builder()
        .then(from_fn(move |message: Message, next: Next| {
            sink.lock().unwrap().push(message.key().to_owned());
            let failing = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if failing {
                    return Err(PipelineError::retryable("warming up"));
                }
                next.run(message).await
            }
        }))
        .build();
    let app = Receiver::new()
        .pipeline::<Order>(pipeline.clone())
        .into_router();
    let (headers, body) = encoded(
        &CloudEvent::from_event(&Order { order: 7 }, "/t").unwrap(),
        Mode::Binary,
    );
    assert_eq!(
        send(&app, headers.clone(), body.clone()).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&app, headers.clone(), body.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(*keys.lock().unwrap(), ["7", "7"]);

    let store = Arc::new(MemoryStore::new());
    let durable = Durable::new(Arc::clone(&store), pipeline);
    let app = Receiver::new()
        .durable::<Order>(durable.clone())
        .into_router();
    assert_eq!(send(&app, headers, body).await.0, StatusCode::OK);
    for _ in 0..200 {
        if durable.pending().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        durable.pending().await.unwrap(),
        0,
        "processed after the answer"
    );
    assert_eq!(keys.lock().unwrap().len(), 3);
}

#[event(name = "test.receiver.fuzzed")]
#[derive(Serialize, Deserialize)]
struct Fuzzed {
    n: u8,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_requests_get_a_2xx_or_a_4xx(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("content-type".to_owned()),
                    Just("content-length".to_owned()),
                    Just("ce-specversion".to_owned()),
                    Just("ce-id".to_owned()),
                    Just("ce-source".to_owned()),
                    Just("ce-type".to_owned()),
                    "ce-[a-z0-9]{0,8}",
                ],
                prop_oneof![
                    Just("1.0".to_owned()),
                    Just("test.receiver.fuzzed".to_owned()),
                    Just("application/json".to_owned()),
                    Just("application/cloudevents+json".to_owned()),
                    Just("application/cloudevents-batch+json".to_owned()),
                    "[0-9]{1,3}",
                    "[ -~]{0,20}",
                ],
            ),
            0..8,
        ),
        body in prop_oneof![
            any::<Vec<u8>>(),
            Just(br#"{"n":1}"#.to_vec()),
            Just(br#"{"n":300}"#.to_vec()),
            Just(br#"{"specversion":"1.0","id":"1","source":"/s","type":"test.receiver.fuzzed","data":{"n":2}}"#.to_vec()),
            Just(br#"[{"specversion":"1.0","id":"1","source":"/s","type":"test.receiver.fuzzed","data":{"n":2}}]"#.to_vec()),
        ],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = runtime.block_on(async {
            let app = Receiver::new().route::<Fuzzed>().body_limit(64).into_router();
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(&value),
                ) {
                    map.append(name, value);
                }
            }
            send(&app, map, body).await.0
        });
        prop_assert!(status.is_success() || status.is_client_error(), "{status}");
    }
}

#[event(name = "test.receiver.charged", key = id)]
#[derive(Serialize, Deserialize)]
struct Charged {
    id: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deduplication_a_resent_event_runs_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let fail_first = Arc::new(AtomicUsize::new(0));
    let (counter, failures) = (Arc::clone(&runs), Arc::clone(&fail_first));
    let _guard = Charged::register_async(move |_: Arc<Charged>| {
        let (counter, failures) = (Arc::clone(&counter), Arc::clone(&failures));
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if failures.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("first attempt fails");
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .guard();
    let idempotency = event_bus::pipeline::Idempotency::new(Arc::new(MemoryStore::new()));
    let app = Receiver::new()
        .route::<Charged>()
        .deduplicate(idempotency)
        .into_router();
    let event = CloudEvent::from_event(&Charged { id: 1 }, "/billing").unwrap();
    let (headers, body) = encoded(&event, Mode::Binary);
    // The first attempt fails: not recorded, so the retry runs.
    assert_eq!(
        send(&app, headers.clone(), body.clone()).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // Five concurrent copies of the retry: exactly one runs, all are answered 200.
    let copies: Vec<_> = (0..5)
        .map(|_| {
            let (app, headers, body) = (app.clone(), headers.clone(), body.clone());
            tokio::spawn(async move { send(&app, headers, body).await.0 })
        })
        .collect();
    for copy in copies {
        assert_eq!(copy.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The same id from another source is another event.
    let other = CloudEvent::from_json(
        &String::from_utf8(event.to_json())
            .unwrap()
            .replace("/billing", "/other")
            .into_bytes(),
    )
    .unwrap();
    let (headers, body) = encoded(&other, Mode::Structured);
    assert_eq!(send(&app, headers, body).await.0, StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[event(name = "test.receiver.asked")]
#[derive(Serialize, Deserialize)]
struct Asked {
    n: u32,
}

#[event(name = "test.receiver.answered")]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Answered {
    n: u32,
}

#[tokio::test]
async fn replies_go_to_single_events_and_are_never_deduplicated() {
    let app = Receiver::new()
        .reply(|asked: Asked| async move { Ok::<_, std::io::Error>(Answered { n: asked.n * 2 }) })
        .deduplicate(event_bus::pipeline::Idempotency::new(Arc::new(
            MemoryStore::new(),
        )))
        .into_router();
    let question = CloudEvent::from_event(&Asked { n: 21 }, "/asker").unwrap();
    for _ in 0..2 {
        // The same event twice: each request gets its reply.
        let (headers, body) = encoded(&question, Mode::Binary);
        let (status, headers, reply) = send(&app, headers, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["ce-type"], "test.receiver.answered");
        assert_eq!(reply, r#"{"n":42}"#);
    }
    // A batch of one gets no reply.
    let mut headers = HeaderMap::new();
    let body = write_batch(&[question], &mut headers);
    let (status, headers, reply) = send(&app, headers, body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("ce-type").is_none() && reply.is_empty(),
        "{reply}"
    );
}
