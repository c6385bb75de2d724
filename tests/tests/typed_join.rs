//! Typed joins: `#[derive(Joined)]` names the parts by type; no source strings anywhere.

use std::sync::{Arc, Mutex};

use event_bus::pipeline::{
    Erased, Join, Joined, Message, Pipeline, Transform, handle_joined, handle_joined_with,
};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use serde::{Deserialize, Serialize};

#[event(name = "order.requested", key = order)]
#[derive(Serialize, Deserialize)]
struct OrderRequested {
    order: u64,
    notes: String,
}

#[event(name = "payment.confirmed", key = order)]
#[derive(Serialize, Deserialize)]
struct PaymentConfirmed {
    order: u64,
    cents: u64,
}

#[event(name = "gift.wrapped", key = 0)]
#[derive(Serialize, Deserialize)]
struct GiftWrapped(u64);

#[derive(Joined)]
struct Ready {
    _order: Erased<OrderRequested>,
    payment: PaymentConfirmed,
    gift: Option<GiftWrapped>,
}

#[test]
fn the_condition_comes_from_the_required_fields() {
    assert_eq!(
        Ready::condition().to_string(),
        "all of [order.requested, payment.confirmed]"
    );
}

#[tokio::test]
async fn a_typed_join_decodes_required_erased_and_optional_parts() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let pipeline = Pipeline::builder()
        .then(Transform::erase::<OrderRequested>())
        .then(Join::of::<Ready>(Arc::new(MemoryStore::new())))
        .then(handle_joined(move |ready: Ready| {
            sink.lock().unwrap().push((
                ready.payment.order,
                ready.payment.cents,
                ready.gift.map(|g| g.0),
            ));
            async { Ok(()) }
        }))
        .build();
    let send = |message: Message| pipeline.process(message);
    send(Message::from_event(&GiftWrapped(1)).unwrap())
        .await
        .unwrap();
    send(
        Message::from_event(&OrderRequested {
            order: 1,
            notes: "x".repeat(1000),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(seen.lock().unwrap().is_empty(), "waiting for the payment");
    send(
        Message::from_event(&PaymentConfirmed {
            order: 1,
            cents: 500,
        })
        .unwrap(),
    )
    .await
    .unwrap();
    // Order 2 joins without its optional gift.
    send(
        Message::from_event(&PaymentConfirmed {
            order: 2,
            cents: 700,
        })
        .unwrap(),
    )
    .await
    .unwrap();
    send(
        Message::from_event(&OrderRequested {
            order: 2,
            notes: String::new(),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), [(1, 500, Some(1)), (2, 700, None)]);
}

#[tokio::test]
async fn content_that_does_not_decode_is_a_typed_error() {
    let pipeline = Pipeline::builder()
        .then(handle_joined(|_: Ready| async { Ok(()) }))
        .build();
    let broken = Message::new(
        "composed-event",
        "1",
        br#"{"order.requested":"","payment.confirmed":{"order":"not a number"}}"#.to_vec(),
    );
    let error = pipeline.process(broken).await.unwrap_err();
    assert!(error.to_string().contains("payment.confirmed"), "{error}");
}

#[tokio::test]
async fn a_handler_may_take_the_joined_message_next_to_its_input() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let pipeline = Pipeline::builder()
        .then(Transform::erase::<OrderRequested>())
        .then(Join::of::<Ready>(Arc::new(MemoryStore::new())))
        .then(handle_joined_with(
            move |ready: Ready, message: &Message| {
                let trace = message.metadata().get("trace").cloned();
                sink.lock().unwrap().push((
                    message.key().to_owned(),
                    ready.payment.cents,
                    trace,
                    message.id().is_empty(),
                ));
                async { Ok(()) }
            },
        ))
        .build();
    let order = OrderRequested {
        order: 9,
        notes: String::new(),
    };
    let payment = PaymentConfirmed {
        order: 9,
        cents: 90,
    };
    pipeline
        .process(
            Message::from_event(&order)
                .unwrap()
                .with_metadata("trace", "t-9"),
        )
        .await
        .unwrap();
    pipeline
        .process(Message::from_event(&payment).unwrap())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (key, cents, _, empty_id) = &seen[0];
    assert_eq!((key.as_str(), *cents, *empty_id), ("9", 90, false));
}

#[event(name = "newsletter.sent")]
#[derive(Serialize, Deserialize)]
struct NewsletterSent;

/// Listening an event that the pipeline's join does not expect is an error at once, not a message
/// that waits forever.
#[test]
fn listening_an_event_no_join_expects_is_refused() {
    use event_bus::pipeline::{DeadLetters, Durable, PipelineError, Retry};
    let store = Arc::new(MemoryStore::new());
    let pipeline = Pipeline::builder()
        .then(DeadLetters::new(store.clone()))
        .then(Retry::new())
        .then(Join::of::<Ready>(store.clone()))
        .build();
    let refused = pipeline.listen::<NewsletterSent>();
    assert!(
        matches!(&refused, Err(PipelineError::Config(why)) if why.contains("newsletter.sent")),
        "{refused:?}"
    );
    assert!(pipeline.listen::<PaymentConfirmed>().is_ok());
    assert!(
        pipeline.listen::<GiftWrapped>().is_ok(),
        "an optional part is expected too"
    );
    let durable = Durable::new(store, pipeline);
    assert!(durable.listen::<NewsletterSent>().is_err());
    // A handler that may change the source ends the check: nothing is refused past it.
    let renaming = Pipeline::builder()
        .then(Transform::rename_sources([("newsletter.sent", "payment.confirmed")]).unwrap())
        .then(Join::of::<Ready>(Arc::new(MemoryStore::new())))
        .build();
    assert!(renaming.listen::<NewsletterSent>().is_ok());
}
