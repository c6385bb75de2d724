//! Interoperability with the official CloudEvents Rust SDK (`cloudevents-sdk`), both directions:
//! its events (binary through its axum binding, structured and batch through its serde format)
//! into our reader and receiver, and our sender into a receiver built with its axum extractor.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::IntoResponse;
use cloudevents::{AttributesReader, Data, EventBuilder, EventBuilderV10};
use event_bus::cloudevents::{CloudEvent, Mode, Received, Receiver, Sender, read};
use event_bus::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower::ServiceExt;

#[event(name = "com.example.interop.placed", key = order)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Placed {
    order: u64,
    note: String,
}

/// An SDK event carrying a `Placed`, with an extension and a subject.
fn sdk_event(order: u64) -> cloudevents::Event {
    EventBuilderV10::new()
        .id(format!("sdk-{order}"))
        .source("https://sdk.example.com/shop")
        .ty("com.example.interop.placed")
        .subject(order.to_string())
        .time(chrono::Utc::now())
        .extension("eventversion", "1")
        .extension("region", "eu west")
        .data(
            "application/json",
            serde_json::json!({ "order": order, "note": "größe \"7\"" }),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn sdk_events_in_all_three_modes_are_read_exactly() {
    let original = sdk_event(1);

    // Binary mode, as the SDK's axum binding writes it.
    let response = original.clone().into_response();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let Received::One(binary) = read(&parts.headers, &body).unwrap() else {
        panic!("one event");
    };
    check_against_sdk(&binary, &original);

    // Structured mode and a batch, in the SDK's JSON format.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        "application/cloudevents+json".parse().unwrap(),
    );
    let json = serde_json::to_vec(&original).unwrap();
    let Received::One(structured) = read(&headers, &json).unwrap() else {
        panic!("one event");
    };
    check_against_sdk(&structured, &original);

    let batch = vec![sdk_event(2), sdk_event(3)];
    headers.insert(
        "content-type",
        "application/cloudevents-batch+json".parse().unwrap(),
    );
    let Received::Batch(events) = read(&headers, &serde_json::to_vec(&batch).unwrap()).unwrap()
    else {
        panic!("a batch");
    };
    assert_eq!(events.len(), 2);
    for (ours, theirs) in events.iter().zip(&batch) {
        check_against_sdk(ours, theirs);
    }
}

fn check_against_sdk(ours: &CloudEvent, theirs: &cloudevents::Event) {
    assert_eq!(ours.id(), theirs.id());
    assert_eq!(ours.source(), theirs.source().to_string());
    assert_eq!(ours.event_type(), theirs.ty());
    assert_eq!(ours.subject(), theirs.subject());
    assert_eq!(
        ours.extension("region").map(ToString::to_string).as_deref(),
        Some("eu west")
    );
    let placed: Placed = ours.decode().unwrap();
    let Some(Data::Json(json)) = theirs.data() else {
        panic!("JSON data");
    };
    assert_eq!(
        placed,
        serde_json::from_value::<Placed>(json.clone()).unwrap()
    );
    let time = ours.time().expect("a time");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(time).unwrap(),
        *theirs.time().unwrap()
    );
}

#[tokio::test]
async fn our_receiver_takes_the_sdks_requests() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _guard = Placed::register(move |p: &Placed| sink.lock().unwrap().push(p.order)).guard();
    let app = Receiver::new().route::<Placed>().into_router();
    let (parts, body) = sdk_event(10).into_response().into_parts();
    let mut request = http::Request::post("/").body(body).unwrap();
    *request.headers_mut() = parts.headers;
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);

    let mut request = http::Request::post("/")
        .body(axum::body::Body::from(
            serde_json::to_vec(&sdk_event(11)).unwrap(),
        ))
        .unwrap();
    request.headers_mut().insert(
        "content-type",
        "application/cloudevents+json".parse().unwrap(),
    );
    assert_eq!(
        app.oneshot(request).await.unwrap().status(),
        http::StatusCode::OK
    );
    assert_eq!(*seen.lock().unwrap(), [10, 11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_receiver_takes_our_events_in_both_modes() {
    let received = Arc::new(Mutex::new(Vec::<cloudevents::Event>::new()));
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/",
        axum::routing::post(move |event: cloudevents::Event| {
            sink.lock().unwrap().push(event);
            async { http::StatusCode::ACCEPTED }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let placed = Placed {
        order: 42,
        note: "100% \"sure\" – ok".into(),
    };
    for mode in [Mode::Binary, Mode::Structured] {
        let sender = Sender::new(&url)
            .unwrap()
            .source("/event-bus/tests")
            .mode(mode);
        assert!(sender.send(&placed).await.is_ack(), "{mode:?}");
    }
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    for theirs in received.iter() {
        assert_eq!(theirs.ty(), "com.example.interop.placed");
        assert_eq!(theirs.source().to_string(), "/event-bus/tests");
        assert_eq!(theirs.subject(), Some("42"));
        assert_eq!(
            theirs
                .extension("partitionkey")
                .map(ToString::to_string)
                .as_deref(),
            Some("42")
        );
        let data = match theirs.data() {
            Some(Data::Json(json)) => json.clone(),
            Some(Data::Binary(bytes)) => serde_json::from_slice(bytes).unwrap(),
            Some(Data::String(text)) => serde_json::from_str(text).unwrap(),
            None => panic!("no data"),
        };
        assert_eq!(serde_json::from_value::<Placed>(data).unwrap(), placed);
    }
}
