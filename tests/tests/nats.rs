//! NATS JetStream: publishing typed events and consuming them into registries, pipelines and
//! durable inboxes; the transport properties of Watermill's universal pub/sub tests (delivery,
//! concurrent subscribers, nak and redelivery, close and continue, order, consumer groups,
//! durable positions, a restarted server) plus dead letters and malformed input.
//!
//! Needs `EVENT_BUS_NATS_URL` (skipped visibly without it); each test uses its own subjects and
//! streams and deletes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use event_bus::nats::{ConsumeStats, Nats, NatsError};
use event_bus::pipeline::{DeadLetters, Durable, Message, Next, Pipeline, PipelineError, from_fn};
use event_bus::prelude::*;
use event_bus::store::MemoryStore;
use event_bus_tests::nats::{OwnServer, nats_url, unique_prefix};
use event_bus_tests::seen::{Seen, never};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[event(name = "suite.item", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    id: u64,
}

/// Only the registry-target test listens to this type (the global registry is shared by every
/// test in this binary).
#[event(name = "suite.delivered", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Delivered {
    id: u64,
}

/// Only the forwarding test triggers this type.
#[event(name = "suite.forwarded", key = id)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Forwarded {
    id: u64,
}

async fn connect(test: &str) -> Option<Nats> {
    let url = nats_url()?;
    let nats = Nats::connect(&url).await.expect("connect to NATS");
    Some(nats.subject_prefix(unique_prefix(test)))
}

async fn publish_range(nats: &Nats, ids: std::ops::Range<u64>) {
    for id in ids {
        nats.publish(&Item { id }).await.expect("published");
    }
}

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    within(Duration::from_secs(20), what, done).await;
}

/// Waits until `done` holds, failing after `limit`.
async fn within(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `seen`'s recording pipeline behind a handler that takes `delay` per event.
fn slow(seen: &Seen, delay: Duration) -> Pipeline {
    let recorded = seen.pipeline(never);
    Pipeline::builder()
        .then(from_fn(move |message: Message, _: Next| {
            let recorded = recorded.clone();
            async move {
                tokio::time::sleep(delay).await;
                recorded.process(message).await
            }
        }))
        .build()
}

async fn cleanup(nats: &Nats) {
    let _ = nats.delete_stream::<Item>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_are_consumed_once_each() {
    let Some(nats) = connect("pubsub").await else {
        return;
    };
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("pubsub")
        .pipeline(seen.pipeline(never))
        .concurrency(4)
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..100).await;
    eventually("all 100 handled", || seen.handled().len() >= 100).await;
    let stats = consuming.shutdown().await;
    let counts = seen.counts();
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|&n| n == 1), "each once: {counts:?}");
    assert_eq!(stats.acked, 100);
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_stores_a_republished_event_once() {
    let Some(nats) = connect("dedupe").await else {
        return;
    };
    let cloud = event_bus::cloudevents::CloudEvent::from_event(&Item { id: 1 }, "/test")
        .expect("cloud event");
    let subject = nats.subject::<Item>();
    let first = nats.publish_cloud(&subject, &cloud).await.expect("first");
    let again = nats.publish_cloud(&subject, &cloud).await.expect("again");
    assert!(!first.duplicate);
    assert!(again.duplicate, "dropped inside the duplicate window");
    assert_eq!(first.sequence, again.sequence);
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("dedupe")
        .pipeline(seen.pipeline(never))
        .start()
        .await
        .expect("started");
    eventually("handled", || !seen.handled().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    consuming.shutdown().await;
    assert_eq!(seen.handled(), vec![1]);
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_group_share_the_events_and_groups_and_instances_each_get_all() {
    let Some(nats) = connect("groups").await else {
        return;
    };
    let work = Seen::default();
    let mut members = Vec::new();
    for _ in 0..3 {
        let member = nats
            .consume::<Item>("work")
            .pipeline(work.pipeline(never))
            .concurrency(2)
            .start()
            .await
            .expect("member");
        members.push(member);
    }
    let audit = Seen::default();
    let audit_consumer = nats
        .consume::<Item>("audit")
        .pipeline(audit.pipeline(never))
        .start()
        .await
        .expect("audit");
    let (a, b) = (Seen::default(), Seen::default());
    let instance_a = nats
        .consume::<Item>("cache")
        .fan_out("a")
        .pipeline(a.pipeline(never))
        .start()
        .await
        .expect("instance a");
    let instance_b = nats
        .consume::<Item>("cache")
        .fan_out("b")
        .pipeline(b.pipeline(never))
        .start()
        .await
        .expect("instance b");
    assert_eq!(instance_b.consumer_name(), "cache-b");

    publish_range(&nats, 0..200).await;
    for (name, seen) in [("work", &work), ("audit", &audit), ("a", &a), ("b", &b)] {
        eventually(name, || seen.counts().len() == 200).await;
    }
    let mut per_member = Vec::new();
    for member in members {
        per_member.push(member.shutdown().await.acked);
    }
    audit_consumer.shutdown().await;
    instance_a.shutdown().await;
    instance_b.shutdown().await;
    assert!(
        work.counts().values().all(|&n| n == 1),
        "a work queue hands each event to one member"
    );
    assert_eq!(per_member.iter().sum::<u64>(), 200, "{per_member:?}");
    for seen in [&audit, &a, &b] {
        assert!(seen.counts().values().all(|&n| n == 1));
    }
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_is_handed_back_and_redelivered_until_it_succeeds() {
    let Some(nats) = connect("nak").await else {
        return;
    };
    let seen = Seen::default();
    // Every third event fails its first two deliveries; consumption goes on meanwhile.
    let consuming = nats
        .consume::<Item>("nak")
        .pipeline(seen.pipeline(|id, attempt| {
            (id % 3 == 0 && attempt <= 2).then(|| PipelineError::retryable("not yet"))
        }))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .concurrency(4)
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..30).await;
    eventually("all 30 handled", || seen.counts().len() == 30).await;
    let stats = consuming.shutdown().await;
    assert_eq!(stats.retried, 20, "10 events failed twice each");
    assert_eq!(stats.redelivered, 20);
    assert_eq!(stats.acked, 30);
    assert_eq!(seen.attempts.lock().get(&3), Some(&3));
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_failing_for_good_go_to_the_dead_letters_and_the_rest_continue() {
    let Some(nats) = connect("dead").await else {
        return;
    };
    let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("dead")
        .pipeline(seen.pipeline(|id, _| match id {
            7 => Some(PipelineError::retryable("always down")),
            8 => Some(PipelineError::permanent("bad order")),
            _ => None,
        }))
        .max_deliveries(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .dead_letters(dead_letters.clone())
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..20).await;
    eventually("18 handled and 2 parked", || {
        seen.counts().len() == 18 && consuming.stats().dead_lettered == 2
    })
    .await;
    let stats = consuming.shutdown().await;
    let letters = dead_letters.list().await.expect("letters");
    let by_key: BTreeMap<&str, u32> = letters
        .iter()
        .map(|letter| (letter.message.key(), letter.attempts))
        .collect();
    assert_eq!(
        by_key.get("7"),
        Some(&3),
        "retryable: parked after 3 deliveries"
    );
    assert_eq!(by_key.get("8"), Some(&1), "permanent: parked at once");
    assert_eq!(seen.attempts.lock().get(&7), Some(&3));
    assert_eq!(stats.dead_lettered, 2);
    // The parked event replays through a pipeline once it is fixed.
    let replayed = Seen::default();
    let report = dead_letters
        .replay_all(&replayed.pipeline(never))
        .await
        .expect("replay");
    assert_eq!((report.succeeded, report.failed), (2, 0));
    assert_eq!(replayed.counts().len(), 2);
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_and_never_retried() {
    let Some(nats) = connect("malformed").await else {
        return;
    };
    nats.ensure_stream::<Item>().await.expect("stream");
    let subject = nats.subject::<Item>();
    let jetstream = async_nats::jetstream::new(nats.client().clone());
    for garbage in [&b"not a cloud event"[..], br#"{"specversion":"1.0","id":"x","source":"/s","type":"suite.item","data":{"id":"seven"}}"#] {
        jetstream
            .publish(subject.clone(), garbage.to_vec().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    publish_range(&nats, 0..1).await;
    let dead_letters = DeadLetters::new(Arc::new(MemoryStore::new()));
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("malformed")
        .pipeline(seen.pipeline(never))
        .dead_letters(dead_letters.clone())
        .start()
        .await
        .expect("started");
    eventually("the good one handled", || seen.handled() == vec![0]).await;
    eventually("both parked", || consuming.stats().malformed == 2).await;
    let stats: ConsumeStats = consuming.shutdown().await;
    assert_eq!(stats.retried, 0, "malformed input is not retried");
    let letters = dead_letters.list().await.expect("letters");
    assert_eq!(letters.len(), 2);
    assert!(
        letters
            .iter()
            .all(|letter| letter.message.source() == subject)
    );
    assert!(
        letters
            .iter()
            .all(|letter| letter.error.contains("malformed"))
    );
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_taken_and_never_acknowledged_is_redelivered() {
    use futures_util::StreamExt as _;
    let Some(nats) = connect("noack").await else {
        return;
    };
    // Creates the durable consumer with a 1 s ack wait.
    let seen = Seen::default();
    nats.consume::<Item>("noack")
        .pipeline(seen.pipeline(never))
        .ack_wait(Duration::from_secs(1))
        .start()
        .await
        .expect("started")
        .shutdown()
        .await;
    publish_range(&nats, 0..1).await;
    // A member takes the event and dies without acknowledging it.
    let jetstream = async_nats::jetstream::new(nats.client().clone());
    let stream = jetstream
        .get_stream(nats.stream_name::<Item>())
        .await
        .expect("stream");
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("noack").await.expect("consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let taken = batch.next().await.expect("one").expect("message");
    drop(taken);
    let consuming = nats
        .consume::<Item>("noack")
        .pipeline(seen.pipeline(never))
        .start()
        .await
        .expect("started again");
    eventually("redelivered after the ack wait", || {
        seen.handled() == vec![0]
    })
    .await;
    let stats = consuming.shutdown().await;
    assert_eq!(stats.redelivered, 1);
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_continues_after_subscribers_close_even_all_at_once() {
    let Some(nats) = connect("close").await else {
        return;
    };
    let seen = Seen::default();
    let mut members = Vec::new();
    for _ in 0..4 {
        members.push(
            nats.consume::<Item>("close")
                .pipeline(seen.pipeline(never))
                .ack_wait(Duration::from_secs(1))
                .concurrency(2)
                .start()
                .await
                .expect("member"),
        );
    }
    let publisher = {
        let nats = nats.clone();
        tokio::spawn(async move { publish_range(&nats, 0..200).await })
    };
    eventually("some handled", || seen.handled().len() >= 20).await;
    // Close every member concurrently while events are still being published.
    futures_util::future::join_all(members.into_iter().map(|member| member.shutdown())).await;
    let handled_before = seen.handled().len();
    publisher.await.expect("publisher");
    let last = nats
        .consume::<Item>("close")
        .pipeline(seen.pipeline(never))
        .concurrency(4)
        .start()
        .await
        .expect("a new member");
    eventually("all 200 handled", || seen.counts().len() == 200).await;
    last.shutdown().await;
    assert!(handled_before < 200, "the close happened mid-stream");
    assert!(
        seen.counts().values().all(|&n| n == 1),
        "closing finished what it held: nothing handled twice"
    );
    cleanup(&nats).await;
}

/// A member pulls ahead (batches of half its slots) and, when it stops, hands back at once what it
/// pulled and did not start: another member gets those events long before the ack wait (30 s
/// here) would have released them, and nothing is handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_member_hands_back_what_it_pulled_ahead_at_once() {
    let Some(nats) = connect("handback").await else {
        return;
    };
    publish_range(&nats, 0..40).await;
    let slowly = Seen::default();
    let first = nats
        .consume::<Item>("handback")
        .pipeline(slow(&slowly, Duration::from_millis(200)))
        .ack_wait(Duration::from_secs(30))
        .concurrency(8)
        .start()
        .await
        .expect("first member");
    eventually("the first member handled some", || {
        slowly.handled().len() >= 8
    })
    .await;
    let stats = first.shutdown().await;
    let by_first = slowly.handled();
    assert!(by_first.len() < 40, "stopped mid-stream");
    assert_eq!(stats.acked as usize, by_first.len());

    let fast = Seen::default();
    let second = nats
        .consume::<Item>("handback")
        .pipeline(fast.pipeline(never))
        .ack_wait(Duration::from_secs(30))
        .concurrency(8)
        .start()
        .await
        .expect("second member");
    // Well within the ack wait: nothing of the first member's is left waiting for it.
    within(
        Duration::from_secs(10),
        "events held by the stopped member",
        || by_first.len() + fast.handled().len() >= 40,
    )
    .await;
    second.shutdown().await;
    let mut all: Vec<u64> = by_first.into_iter().chain(fast.handled()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "each event handled once");
    cleanup(&nats).await;
}

/// An idle member's pull request waits on the server; once the member stopped, events published
/// next go to the other members at once, not to the closed subscription (where they would wait for
/// the ack wait, 30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_after_an_idle_member_stopped_go_to_the_others() {
    let Some(nats) = connect("idle-stop").await else {
        return;
    };
    let seen = Seen::default();
    let start = || {
        nats.consume::<Item>("idle-stop")
            .pipeline(seen.pipeline(never))
            .ack_wait(Duration::from_secs(30))
            .concurrency(8)
            .start()
    };
    let stopping = start().await.expect("a member");
    let staying = start().await.expect("another member");
    publish_range(&nats, 0..4).await;
    eventually("the first events handled", || seen.handled().len() == 4).await;
    // Both members idle now, each with a pull request waiting on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stopping.shutdown().await;
    publish_range(&nats, 4..40).await;
    within(
        Duration::from_secs(10),
        "events sent to the stopped member",
        || seen.handled().len() >= 40,
    )
    .await;
    staying.shutdown().await;
    assert!(seen.counts().values().all(|&n| n == 1));
    cleanup(&nats).await;
}

/// A member asks the server only for events it can start at once: none waits in the client with
/// no progress reported for it. Handlers of 1.5 s with an ack wait of 2 s, four at a time: an event
/// that waited for a slot (pulled ahead) would pass its ack wait and be delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_not_redelivered_while_they_wait_for_a_slot() {
    let Some(nats) = connect("no-wait").await else {
        return;
    };
    publish_range(&nats, 0..12).await;
    let seen = Seen::default();
    let member = nats
        .consume::<Item>("no-wait")
        .pipeline(slow(&seen, Duration::from_millis(1500)))
        .ack_wait(Duration::from_secs(2))
        .concurrency(4)
        .start()
        .await
        .expect("member");
    eventually("all 12 handled", || seen.handled().len() >= 12).await;
    // Longer than the ack wait: a redelivery would have come by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = member.shutdown().await;
    assert_eq!(stats.redelivered, 0, "{stats:?}");
    assert!(
        seen.counts().values().all(|&n| n == 1),
        "{:?}",
        seen.counts()
    );
    cleanup(&nats).await;
}

/// `shutdown` returns once the acknowledgements reached the server: a process may end right after
/// it (here: the member's runtime and connection are dropped at once) and nothing it handled comes
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_reach_the_server_before_shutdown_returns() {
    let Some(nats) = connect("flush").await else {
        return;
    };
    let Some(url) = event_bus_tests::nats::nats_url() else {
        return;
    };
    publish_range(&nats, 0..40).await;
    let first = Seen::default();
    let (seen, prefix) = (first.clone(), nats.subject::<Item>());
    let prefix = prefix.trim_end_matches(".suite.item").to_owned();
    // The stopping member, on a runtime (and connection) of its own, dropped as a process ends.
    std::thread::spawn(move || {
        let runtime = event_bus_tests::two_worker_runtime();
        runtime.block_on(async {
            let nats = Nats::connect(&url)
                .await
                .expect("connect")
                .subject_prefix(prefix);
            let member = nats
                .consume::<Item>("flush")
                .pipeline(seen.pipeline(never))
                .ack_wait(Duration::from_secs(2))
                .concurrency(8)
                .start()
                .await
                .expect("member");
            while seen.handled().len() < 10 {
                tokio::task::yield_now().await;
            }
            member.shutdown().await;
        });
        // As a process ending: nothing left in the runtime runs again.
        runtime.shutdown_background();
    })
    .join()
    .expect("the stopping member");
    let by_first = first.handled();
    let second = Seen::default();
    let member = nats
        .consume::<Item>("flush")
        .pipeline(second.pipeline(never))
        .ack_wait(Duration::from_secs(2))
        .concurrency(8)
        .start()
        .await
        .expect("second member");
    eventually("the rest handled", || {
        by_first.len() + second.handled().len() >= 40
    })
    .await;
    // Past the ack wait: an acknowledgement lost with the first member's process would show now.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    member.shutdown().await;
    let twice: Vec<u64> = by_first
        .iter()
        .copied()
        .filter(|id| second.handled().contains(id))
        .collect();
    assert!(
        twice.is_empty(),
        "handled again after a graceful stop: {twice:?}"
    );
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_subscriber_handles_events_in_publish_order() {
    let Some(nats) = connect("order").await else {
        return;
    };
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("order")
        .pipeline(seen.pipeline(never))
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..100).await;
    eventually("all handled", || seen.handled().len() == 100).await;
    consuming.shutdown().await;
    assert_eq!(seen.handled(), (0..100).collect::<Vec<_>>());
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_gets_the_events_published_before_it_started() {
    let Some(nats) = connect("late").await else {
        return;
    };
    publish_range(&nats, 0..20).await;
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("late")
        .fan_out("newcomer")
        .pipeline(seen.pipeline(never))
        .start()
        .await
        .expect("started");
    eventually("the 20 old events", || seen.handled().len() == 20).await;
    consuming.shutdown().await;
    // A restarted member resumes where its durable consumer stopped.
    publish_range(&nats, 20..25).await;
    let again = Seen::default();
    let resumed = nats
        .consume::<Item>("late")
        .fan_out("newcomer")
        .pipeline(again.pipeline(never))
        .start()
        .await
        .expect("restarted");
    eventually("the 5 new ones", || again.handled().len() == 5).await;
    resumed.shutdown().await;
    assert_eq!(again.handled(), (20..25).collect::<Vec<_>>());
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_and_the_durable_inbox_are_targets_too() {
    let Some(nats) = connect("targets").await else {
        return;
    };
    let got = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&got);
    let _listener = Delivered::register(move |event: &Delivered| recorded.lock().push(event.id));
    let consuming = nats
        .consume::<Delivered>("registry")
        .start()
        .await
        .expect("registry");
    for id in 0..5 {
        nats.publish(&Delivered { id }).await.expect("published");
    }
    eventually("the listener saw 5", || got.lock().len() == 5).await;
    consuming.shutdown().await;

    let seen = Seen::default();
    let store = Arc::new(MemoryStore::new());
    let durable = Durable::new(
        Arc::clone(&store) as Arc<dyn event_bus::store::Store>,
        seen.pipeline(never),
    );
    let consuming = nats
        .consume::<Item>("inbox")
        .durable(durable)
        .start()
        .await
        .expect("durable");
    publish_range(&nats, 0..10).await;
    eventually("the inbox processed 10", || seen.handled().len() == 10).await;
    consuming.shutdown().await;
    let _ = nats.delete_stream::<Delivered>().await;
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_publishes_every_triggered_event() {
    let Some(nats) = connect("forward").await else {
        return;
    };
    nats.ensure_stream::<Forwarded>().await.expect("stream");
    let forwarding = nats.forward::<Forwarded>();
    for id in 0..3 {
        let report = Forwarded { id }.deliver().await;
        assert!(report.is_success(), "{report}");
    }
    drop(forwarding);
    let stream = async_nats::jetstream::new(nats.client().clone())
        .get_stream(nats.stream_name::<Forwarded>())
        .await
        .expect("stream");
    assert_eq!(stream.cached_info().state.messages, 3);
    let _ = nats.delete_stream::<Forwarded>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_typed_errors() {
    let Some(url) = nats_url() else { return };
    let nats = Nats::connect(&url).await.expect("connect");
    let error = nats.consume::<Item>("has.dot").start().await.map(drop);
    assert!(matches!(error, Err(NatsError::Config(_))), "{error:?}");
    let error = nats
        .clone()
        .subject_prefix("a b")
        .publish(&Item { id: 1 })
        .await;
    assert!(matches!(error, Err(NatsError::Config(_))), "{error:?}");
    let refused = Nats::connect("nats://127.0.0.1:1").await;
    assert!(matches!(refused, Err(NatsError::Connect { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_survives_the_server_being_killed_and_restarted() {
    if nats_url().is_none() {
        return;
    }
    let store = tempfile::tempdir().expect("temp dir");
    let Some(mut server) = OwnServer::start(store.path()) else {
        return;
    };
    let nats = Nats::connect(&server.url()).await.expect("connect");
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("restart")
        .pipeline(seen.pipeline(never))
        .ack_wait(Duration::from_secs(2))
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..20).await;
    eventually("the first 20", || seen.counts().len() == 20).await;

    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // Publishing waits for the client to reconnect.
    for id in 20..40 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match nats.publish(&Item { id }).await {
                Ok(_) => break,
                Err(error) => {
                    assert!(tokio::time::Instant::now() < deadline, "{error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    eventually("all 40 after the restart", || seen.counts().len() == 40).await;
    consuming.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_may_use_the_same_event_id() {
    let Some(nats) = connect("sources").await else {
        return;
    };
    let subject = nats.subject::<Item>();
    let cloud = |source: &str| {
        event_bus::cloudevents::CloudEvent::new("id-42", source, "suite.item")
            .map(|cloud| cloud.with_data("application/json", br#"{"id":1}"#.to_vec()))
            .expect("cloud event")
    };
    let a = nats.publish_cloud(&subject, &cloud("/a")).await.expect("a");
    let b = nats.publish_cloud(&subject, &cloud("/b")).await.expect("b");
    let again = nats
        .publish_cloud(&subject, &cloud("/a"))
        .await
        .expect("a again");
    assert!(!a.duplicate && !b.duplicate, "one event per source");
    assert!(again.duplicate);
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_or_consumer_deleted_on_the_server_is_created_again() {
    let Some(nats) = connect("recreate").await else {
        return;
    };
    let seen = Seen::default();
    let consuming = nats
        .consume::<Item>("recreate")
        .pipeline(seen.pipeline(never))
        .start()
        .await
        .expect("started");
    publish_range(&nats, 0..3).await;
    eventually("the first 3", || seen.handled().len() == 3).await;
    // Another process (or an operator) deletes the stream, and with it the consumer.
    let jetstream = async_nats::jetstream::new(nats.client().clone());
    jetstream
        .delete_stream(nats.stream_name::<Item>())
        .await
        .expect("deleted");
    publish_range(&nats, 3..6).await; // the first publish creates the stream again
    eventually("the consumer came back for the next 3", || {
        seen.handled().len() == 6
    })
    .await;
    consuming.shutdown().await;
    assert_eq!(seen.handled(), (0..6).collect::<Vec<_>>());
    cleanup(&nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_follows_the_ack_wait_of_the_consumer_on_the_server() {
    let Some(nats) = connect("progress").await else {
        return;
    };
    // The group was created with a 1 s ack wait; these members ask for the default 30 s.
    nats.consume::<Item>("progress")
        .ack_wait(Duration::from_secs(1))
        .pipeline(Seen::default().pipeline(never))
        .start()
        .await
        .expect("created")
        .shutdown()
        .await;
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let slow = || {
        let runs = Arc::clone(&runs);
        Pipeline::builder()
            .then(from_fn(move |_: Message, _: Next| {
                let runs = Arc::clone(&runs);
                async move {
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(())
                }
            }))
            .build()
    };
    let first = nats
        .consume::<Item>("progress")
        .pipeline(slow())
        .start()
        .await
        .expect("first member");
    let second = nats
        .consume::<Item>("progress")
        .pipeline(slow())
        .start()
        .await
        .expect("second member");
    publish_range(&nats, 0..1).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (a, b) = (first.shutdown().await, second.shutdown().await);
    assert_eq!(a.acked + b.acked, 1);
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a slow handler is not redelivered to the other member"
    );
    cleanup(&nats).await;
}
