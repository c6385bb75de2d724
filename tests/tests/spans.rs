//! `tracing` spans after OpenTelemetry's messaging conventions: one `event_bus.listener` span per
//! listener run by `spawn`, `deliver` and the async listeners `trigger` detaches; one
//! `event_bus.pipeline` span per `Pipeline::process`; one `event_bus.inbox` span per message a
//! durable inbox processes; one `event_bus.request` span per durable request run. In its own test binary: `tracing` caches per call site whether it is
//! enabled, and a test on another thread without a subscriber could make this one miss spans.

use std::sync::Arc;

use event_bus::executor::DurableBus;
use event_bus::pipeline::{Durable, Message, Pipeline};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use event_bus_tests::recorder::Recorder;

#[event(name = "shop.order")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Order(#[allow(dead_code)] u32);

#[test]
fn dispatch_and_pipelines_open_spans_named_after_the_messaging_conventions() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    // One thread: spawned tasks run where the subscriber is the default.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let registry = Registry::<Order>::new();
        registry.listener().name("bill").register(|_: &Order| {});
        registry
            .listener()
            .name("ship")
            .register_async(|_: Arc<Order>| async {});

        assert!(registry.spawn(Order(1)).await.is_success());
        let spawned = listener_spans(&recorder);
        assert_eq!(spawned, ["bill", "ship"], "one span per spawned task");

        assert!(registry.deliver(Order(2)).await.is_success());
        assert_eq!(
            listener_spans(&recorder).len(),
            4,
            "one per delivered listener"
        );

        // trigger: the sync listener runs inline without a span; the async one is detached in
        // a task with its span.
        assert_eq!(registry.trigger(Order(3)).detached(), 1);
        registry.idle().await;
        assert_eq!(&listener_spans(&recorder)[4..], ["ship"]);

        let span = recorder
            .spans()
            .into_iter()
            .find(|span| span.name == "event_bus.listener")
            .unwrap();
        for field in [
            "messaging.system=event-bus",
            "messaging.operation.type=process",
            "messaging.destination.name=shop.order",
            "otel.name=process shop.order",
            "event_bus.listener=bill",
        ] {
            assert!(span.has(field), "{field} missing from {span:?}");
        }

        let store = Arc::new(MemoryStore::new());
        let pipeline = Pipeline::builder()
            .then(event_bus::pipeline::Filter::new(|_| true))
            .then(event_bus::pipeline::Filter::new(|_| true))
            .build();
        let message = Message::new("billing", "order-7", Vec::new());
        let id = message.id().to_owned();
        pipeline.process(message).await.unwrap();
        let durable = Durable::new(store, Pipeline::builder().build());
        let inboxed = Message::new("billing", "order-8", Vec::new());
        let inboxed_id = inboxed.id().to_owned();
        durable
            .accept(inboxed)
            .await
            .unwrap()
            .process()
            .await
            .unwrap();

        let spans = recorder.spans();
        let pipeline_span = spans
            .iter()
            .find(|span| span.name == "event_bus.pipeline")
            .unwrap();
        for field in [
            "messaging.destination.name=billing".to_owned(),
            format!("messaging.message.id={id}"),
            "event_bus.key=order-7".to_owned(),
            "otel.name=process billing".to_owned(),
        ] {
            assert!(
                pipeline_span.has(&field),
                "{field} missing from {pipeline_span:?}"
            );
        }
        let handlers: Vec<_> = spans
            .iter()
            .filter(|span| span.name == "event_bus.handler")
            .collect();
        assert_eq!(handlers.len(), 2, "one span per handler");
        for (position, span) in handlers.iter().enumerate() {
            assert!(
                span.has(&format!("event_bus.handler={position}")),
                "{span:?}"
            );
            assert!(span.has(&format!("messaging.message.id={id}")), "{span:?}");
        }
        let inbox_span = spans
            .iter()
            .find(|span| span.name == "event_bus.inbox")
            .unwrap();
        assert!(inbox_span.has(&format!("messaging.message.id={inboxed_id}")));

        // A durable listener's request.
        Order::durable("span-mail", |_: Order| async {})
            .register()
            .unwrap();
        let bus = DurableBus::new(Arc::new(MemoryStore::new()));
        let published = Order(9).publish(&bus).await.unwrap();
        assert_eq!(bus.executor().run_once().await.unwrap().succeeded, 1);
        let spans = recorder.spans();
        let request_span = spans
            .iter()
            .find(|span| span.name == "event_bus.request")
            .unwrap();
        for field in [
            "messaging.destination.name=shop.order".to_owned(),
            format!("messaging.message.id={}", published.id()),
            "event_bus.listener=span-mail".to_owned(),
            "otel.name=process shop.order".to_owned(),
        ] {
            assert!(
                request_span.has(&field),
                "{field} missing from {request_span:?}"
            );
        }
    });
}

/// The listener names of the `event_bus.listener` spans created so far, in order.
fn listener_spans(recorder: &Recorder) -> Vec<String> {
    recorder
        .spans()
        .into_iter()
        .filter(|span| span.name == "event_bus.listener")
        .filter_map(|span| {
            span.fields
                .iter()
                .find_map(|f| f.strip_prefix("event_bus.listener=").map(str::to_owned))
        })
        .collect()
}

#[event(name = "shop.refund")]
#[derive(serde::Serialize, serde::Deserialize)]
struct Refund(#[allow(dead_code)] u32);

/// Transports: a `cloudevents.send` span per event sent and a `cloudevents.receive` span per event
/// received (the NATS ones, `nats.publish` and `nats.receive`, need a server: see `nats.rs`).
#[test]
fn cloudevents_sends_and_receives_open_spans() {
    use event_bus::cloudevents::{Receiver, Sender};
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let router = Receiver::new().route::<Refund>().into_router();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let sender = Sender::new(url.as_str()).unwrap();
        assert!(sender.send(&Refund(3)).await.is_ack());
        server.abort();
    });
    let spans = recorder.spans();
    let send = spans
        .iter()
        .find(|span| span.name == "cloudevents.send")
        .expect("a send span");
    for field in [
        "messaging.operation.type=send",
        "messaging.destination.name=shop.refund",
        "otel.name=send shop.refund",
    ] {
        assert!(send.has(field), "{field} missing from {send:?}");
    }
    assert!(spans.iter().any(|span| span.name == "cloudevents.receive"));
}
