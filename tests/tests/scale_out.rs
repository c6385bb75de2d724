//! The orders scenario scaled out: events published to NATS JetStream, consumed by three worker
//! **processes** in one work-queue group, with every join, idempotency record and effect in one
//! PostgreSQL schema they share. The workers are SIGKILLed at random moments and restarted while
//! events are still being published; every complete order must be applied exactly once, nothing
//! left claimed, nothing lost.
//!
//! Needs `EVENT_BUS_POSTGRES_URL` and `EVENT_BUS_NATS_URL` (skipped visibly without them).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use event_bus::cloudevents::CloudEvent;
use event_bus::nats::Nats;
use event_bus::prelude::Event;
use event_bus_tests::nats::{nats_url, unique_prefix};
use event_bus_tests::orders::{self, InventoryReserved, OrderRequested, PaymentConfirmed};
use event_bus_tests::stores::{PostgresSchema, postgres_url};

fn worker(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nats_worker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker")
}

/// SIGKILLs `child` if it is still running; `true` if it was.
fn kill(child: &mut Child) -> bool {
    let running = child.try_wait().expect("poll the worker").is_none();
    if running {
        child.kill().expect("SIGKILL the worker");
    }
    let _ = child.wait();
    running
}

/// The running workers; any still running when this is dropped (a failed test) are killed, so
/// that a failure leaves no process behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Workers {
    /// Waits (until `deadline`) for every worker to print DONE and exit.
    fn finish(mut self, deadline: Instant) {
        for child in std::mem::take(&mut self.0) {
            let mut child = Workers(vec![child]);
            while child.0[0].try_wait().expect("poll").is_none() {
                assert!(Instant::now() < deadline, "a worker did not finish in time");
                std::thread::sleep(Duration::from_millis(50));
            }
            let Some(child) = child.0.pop() else { continue };
            let output = child.wait_with_output().expect("the worker's output");
            assert!(output.status.success(), "the worker completes");
            assert!(String::from_utf8_lossy(&output.stdout).contains("DONE"));
        }
    }
}

fn subject(nats: &Nats, source: &str) -> String {
    [
        (OrderRequested::NAME, nats.subject::<OrderRequested>()),
        (PaymentConfirmed::NAME, nats.subject::<PaymentConfirmed>()),
        (InventoryReserved::NAME, nats.subject::<InventoryReserved>()),
    ]
    .into_iter()
    .find(|(name, _)| *name == source)
    .map(|(_, subject)| subject)
    .expect("an order event")
}

/// Events delivered to the group and not acknowledged yet, over the three streams.
async fn unacknowledged(nats: &Nats) -> usize {
    let jetstream = async_nats::jetstream::new(nats.client().clone());
    let mut pending = 0;
    for stream in [
        nats.stream_name::<OrderRequested>(),
        nats.stream_name::<PaymentConfirmed>(),
        nats.stream_name::<InventoryReserved>(),
    ] {
        if let Ok(stream) = jetstream.get_stream(&stream).await
            && let Ok(info) = stream.consumer_info("orders").await
        {
            pending += info.num_ack_pending;
        }
    }
    pending
}

#[test]
fn three_worker_processes_killed_at_random_apply_each_order_exactly_once() {
    let (Some(pg), Some(nats_url)) = (postgres_url(), nats_url()) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let prefix = unique_prefix("scale-out");
    let schema = runtime.block_on(PostgresSchema::new(&pg));
    let nats = runtime
        .block_on(Nats::connect(&nats_url))
        .expect("connect to NATS")
        .subject_prefix(prefix.as_str());
    let (messages, complete) = orders::stream(400, 5, 11).expect("stream");
    let expected = complete.len().to_string();
    let args = [
        pg.as_str(),
        schema.schema(),
        nats_url.as_str(),
        prefix.as_str(),
        expected.as_str(),
    ];

    // Publish while the workers run (and die).
    let publisher = {
        let nats = nats.clone();
        runtime.spawn(async move {
            for message in messages {
                let cloud = CloudEvent::from_message(&message, "/orders-test").expect("event");
                let subject = subject(&nats, message.source());
                nats.publish_cloud(&subject, &cloud)
                    .await
                    .expect("published");
            }
        })
    };
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut workers = Workers((0..3).map(|_| worker(&args)).collect());
    let (mut kills, mut unacknowledged_at_kills) = (0, 0);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(rng.u64(200..700)));
        let victim = rng.usize(0..workers.0.len());
        if kill(&mut workers.0[victim]) {
            kills += 1;
            unacknowledged_at_kills += runtime.block_on(unacknowledged(&nats));
        }
        workers.0[victim] = worker(&args);
    }
    runtime.block_on(publisher).expect("publisher");
    workers.finish(Instant::now() + Duration::from_secs(90));
    assert!(
        kills >= 3,
        "the workers finished before they could be killed: proves nothing"
    );
    assert!(
        unacknowledged_at_kills > 0,
        "the kills caught events in flight (left to redelivery)"
    );

    runtime.block_on(async {
        let store = schema.store.as_ref();
        let applied = orders::applied(store).await.expect("effects");
        let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).take(5).collect();
        assert!(twice.is_empty(), "orders applied more than once: {twice:?}");
        let applied: BTreeSet<u64> = applied.into_keys().collect();
        assert_eq!(
            applied, complete,
            "every complete order, and only those, applied"
        );
        orders::assert_settled(store).await;
        for stream in [
            nats.delete_stream::<OrderRequested>().await,
            nats.delete_stream::<PaymentConfirmed>().await,
            nats.delete_stream::<InventoryReserved>().await,
        ] {
            stream.expect("stream deleted");
        }
        schema.drop_schema().await;
    });
}
