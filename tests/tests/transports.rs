//! The transport suite, written once and run against every transport: in-process, CloudEvents
//! over HTTP and NATS JetStream (the NATS runs need `EVENT_BUS_NATS_URL`, skipped visibly
//! without it). Each test runs where the transport's [`Features`] allow it; transport-specific
//! properties (a server restart, an event taken and never acknowledged, malformed input, dead
//! letters) are in `nats.rs` and the CloudEvents tests.

use std::collections::BTreeMap;
use std::time::Duration;

use event_bus::nats::Nats;
use event_bus::pipeline::PipelineError;
use event_bus_tests::nats::{nats_url, unique_prefix};
use event_bus_tests::seen::{Seen, never};
use event_bus_tests::transport::{Http, InProcess, NatsTransport, Transport};

async fn publish_all(transport: &dyn Transport, ids: std::ops::Range<u64>) {
    for id in ids {
        let published = transport.publish(id).await;
        assert!(published.is_ok(), "{}: {published:?}", transport.name());
    }
}

async fn eventually(transport: &dyn Transport, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: timed out waiting: {what}",
            transport.name()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn each_once(counts: &BTreeMap<u64, usize>, ids: std::ops::Range<u64>) -> bool {
    counts.len() == ids.clone().count() && ids.into_iter().all(|id| counts.get(&id) == Some(&1))
}

/// Every published event reaches the subscriber, once.
async fn publish_subscribe(transport: &dyn Transport) {
    let seen = Seen::default();
    let subscriber = transport.subscribe("pubsub", seen.pipeline(never)).await;
    publish_all(transport, 0..50).await;
    eventually(transport, "50 handled", || seen.handled().len() >= 50).await;
    subscriber.close().await;
    assert!(
        each_once(&seen.counts(), 0..50),
        "{}: {:?}",
        transport.name(),
        seen.counts()
    );
}

/// Several subscribers at once: in a consumer group each event goes to one of them; without
/// groups each subscriber gets every event.
async fn concurrent_subscribers(transport: &dyn Transport) {
    let seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();
    let mut subscribers = Vec::new();
    for one in &seen {
        subscribers.push(transport.subscribe("shared", one.pipeline(never)).await);
    }
    publish_all(transport, 0..60).await;
    let merged = || {
        let mut merged = BTreeMap::new();
        for one in &seen {
            for (id, n) in one.counts() {
                *merged.entry(id).or_insert(0) += n;
            }
        }
        merged
    };
    if transport.features().consumer_groups {
        eventually(transport, "60 handled in all", || merged().len() == 60).await;
    } else {
        eventually(transport, "60 handled by each", || {
            seen.iter().all(|one| one.counts().len() == 60)
        })
        .await;
    }
    for subscriber in subscribers {
        subscriber.close().await;
    }
    if transport.features().consumer_groups {
        assert!(
            each_once(&merged(), 0..60),
            "{}: shared once",
            transport.name()
        );
    } else {
        for one in &seen {
            assert!(
                each_once(&one.counts(), 0..60),
                "{}: each gets all",
                transport.name()
            );
        }
    }
}

/// A delivery that fails (retryably) is delivered again until it succeeds.
async fn resend_on_error(transport: &dyn Transport) {
    let seen = Seen::default();
    let subscriber = transport
        .subscribe(
            "resend",
            seen.pipeline(|id, attempt| {
                (id % 3 == 0 && attempt == 1).then(|| PipelineError::retryable("not yet"))
            }),
        )
        .await;
    publish_all(transport, 0..30).await;
    eventually(transport, "30 handled", || seen.counts().len() == 30).await;
    subscriber.close().await;
    assert!(each_once(&seen.counts(), 0..30), "{}", transport.name());
    assert_eq!(
        seen.attempts.lock().get(&3),
        Some(&2),
        "{}",
        transport.name()
    );
}

/// An event that keeps failing does not stop the others.
async fn continue_after_errors(transport: &dyn Transport) {
    let seen = Seen::default();
    let subscriber = transport
        .subscribe(
            "errors",
            seen.pipeline(|id, _| (id == 5).then(|| PipelineError::permanent("bad event"))),
        )
        .await;
    for id in 0..20 {
        // The failing one may be reported to the publisher (no broker between them).
        let _ = transport.publish(id).await;
    }
    eventually(transport, "19 handled", || seen.counts().len() == 19).await;
    subscriber.close().await;
    let counts = seen.counts();
    assert!(!counts.contains_key(&5), "{}", transport.name());
    assert!(counts.values().all(|&n| n == 1), "{}", transport.name());
}

/// One subscriber handles events in the order they were published.
async fn order_with_a_single_subscriber(transport: &dyn Transport) {
    let seen = Seen::default();
    let subscriber = transport.subscribe("order", seen.pipeline(never)).await;
    publish_all(transport, 0..50).await;
    eventually(transport, "50 handled", || seen.handled().len() == 50).await;
    subscriber.close().await;
    assert_eq!(
        seen.handled(),
        (0..50).collect::<Vec<_>>(),
        "{}",
        transport.name()
    );
}

/// Events published while no subscriber runs wait for the next one; a subscriber that closed
/// hands over to the next without loss or repeat.
async fn continue_after_close_and_new_subscriber_gets_old_events(transport: &dyn Transport) {
    if !transport.features().persistent {
        return;
    }
    publish_all(transport, 0..10).await;
    let first = Seen::default();
    let subscriber = transport.subscribe("durable", first.pipeline(never)).await;
    eventually(transport, "the 10 old events", || {
        first.handled().len() == 10
    })
    .await;
    subscriber.close().await;
    publish_all(transport, 10..20).await;
    let second = Seen::default();
    let subscriber = transport.subscribe("durable", second.pipeline(never)).await;
    eventually(transport, "the 10 published meanwhile", || {
        second.handled().len() == 10
    })
    .await;
    subscriber.close().await;
    assert!(each_once(&first.counts(), 0..10), "{}", transport.name());
    assert!(each_once(&second.counts(), 10..20), "{}", transport.name());
}

macro_rules! suite {
    ($($transport:ident => $make:expr;)*) => {$(
        mod $transport {
            use super::*;

            async fn transport() -> Option<Box<dyn Transport>> {
                $make
            }

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(transport) = transport().await else { return };
                        super::$case(&*transport).await;
                        transport.cleanup().await;
                    }
                };
            }

            case!(publish_subscribe);
            case!(concurrent_subscribers);
            case!(resend_on_error);
            case!(continue_after_errors);
            case!(order_with_a_single_subscriber);
            case!(continue_after_close_and_new_subscriber_gets_old_events);
        }
    )*};
}

suite! {
    in_process => Some(Box::new(InProcess::default()));
    http => Some(Box::new(Http::default()));
    nats => {
        let url = nats_url()?;
        let nats = Nats::connect(&url).await.expect("connect to NATS");
        Some(Box::new(NatsTransport::new(nats.subject_prefix(unique_prefix("suite")))))
    };
}
