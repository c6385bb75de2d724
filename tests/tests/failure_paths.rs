//! The failure paths of pipelines: injected store faults (fail, fail after writing, delay, hang)
//! over every adapter and both stores, and cancellation at every await point. After the faults
//! and a redelivery, every complete order is applied exactly once or parked as a dead letter;
//! after replaying the dead letters, exactly once; nothing is left claimed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use event_bus::pipeline::{
    Condition, DeadLetters, Durable, Idempotency, Join, Pipeline, PipelineError, Retry, Timeout,
    Transform, handle_json, stage,
};
use event_bus::prelude::*;
use event_bus::store::{Batch, Fault, FaultyStore, MemoryStore, Operation, SqliteStore, Store};
use event_bus_tests::orders::{self, InventoryReserved, OrderRequested, PaymentConfirmed, Ready};
use proptest::prelude::*;

/// Long enough never to run out during a test: everything left claimed in this process must be
/// released or taken over at once, not by waiting for a lease.
const LEASE: Duration = Duration::from_secs(30);

/// The adapters under test, sharing `store`.
struct Adapters {
    join: Join,
    idempotency: Idempotency,
}

fn adapters(store: &Arc<dyn Store>) -> Adapters {
    Adapters {
        join: Join::new(
            Condition::all_of([
                OrderRequested::NAME,
                PaymentConfirmed::NAME,
                InventoryReserved::NAME,
            ]),
            Arc::clone(store),
        )
        .lease(LEASE),
        idempotency: Idempotency::new(Arc::clone(store))
            .lease(LEASE)
            .max_wait(Duration::ZERO),
    }
}

fn business() -> impl event_bus::pipeline::Handler {
    handle_json(|ready: Ready| async move {
        let order = ready.payment.order_id;
        stage(Batch::new().put(
            orders::EFFECTS,
            format!("{order}#{}", fastrand::u64(..)),
            vec![1],
            None,
        ))
    })
}

/// dead letters → retry → timeout → erase → join → idempotency → business.
fn guarded_pipeline(store: &Arc<dyn Store>) -> (Pipeline, DeadLetters) {
    let dead_letters = DeadLetters::new(Arc::clone(store));
    let Adapters { join, idempotency } = adapters(store);
    let pipeline = Pipeline::builder()
        .then(dead_letters.clone())
        .then(
            Retry::new()
                .max_attempts(3)
                .base_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(5)),
        )
        .then(Timeout::new(Duration::from_millis(250)))
        .then(Transform::erase_content_from([OrderRequested::NAME]))
        .then(join)
        .then(idempotency)
        .then(business())
        .build();
    (pipeline, dead_letters)
}

/// How many times each order was applied.
async fn applied(store: &dyn Store) -> std::collections::BTreeMap<u64, usize> {
    orders::applied(store).await.expect("read effects")
}

/// Runs the orders stream through durable delivery with `faults` planned, then heals the store,
/// recovers the inbox, redelivers every message and checks that each complete order is applied
/// exactly once or parked; then replays the dead letters and checks exactly once.
async fn survive(store: Arc<dyn Store>, faults: &[(Operation, u64, Fault)], seed: u64) {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(&store)));
    for (operation, nth, fault) in faults {
        faulty.inject(*operation, *nth, *fault);
    }
    let shared: Arc<dyn Store> = faulty.clone();
    let (pipeline, dead_letters) = guarded_pipeline(&shared);
    let durable = Durable::new(Arc::clone(&shared), pipeline.clone()).lease(LEASE);
    let (messages, complete) = orders::stream(12, 10, seed).expect("stream");

    for message in &messages {
        // Errors and hangs are allowed here: that is the fault.
        let _ = tokio::time::timeout(Duration::from_secs(1), durable.submit(message.clone())).await;
    }

    faulty.heal();
    // Redelivery: what the inbox kept, then every message again (a producer that resends).
    // Nothing is in flight any more: no claim of this process may be left standing.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let recovered = durable.recover().await.expect("recover after healing");
    assert_eq!(
        recovered.in_flight, 0,
        "claims left standing (faults {faults:?})"
    );
    for message in &messages {
        durable
            .submit(message.clone())
            .await
            .expect("a redelivery on a healthy store");
    }
    let counts = applied(store.as_ref()).await;
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "applied twice: {twice:?} (faults {faults:?})"
    );
    let parked: BTreeSet<u64> = dead_letters
        .list()
        .await
        .expect("list")
        .iter()
        .filter_map(|letter| letter.message.key().parse().ok())
        .collect();
    for order in &complete {
        assert!(
            counts.contains_key(order) || parked.contains(order),
            "order {order} was silently skipped (faults {faults:?})"
        );
    }

    let replayed = dead_letters.replay_all(&pipeline).await.expect("replay");
    assert_eq!(replayed.failed + replayed.parked, 0, "{replayed:?}");
    let counts = applied(store.as_ref()).await;
    let applied: BTreeSet<u64> = counts.keys().copied().collect();
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(
        applied, complete,
        "exactly the complete orders (faults {faults:?})"
    );
    assert_eq!(dead_letters.count().await.expect("count"), 0);
    orders::assert_settled(store.as_ref()).await;
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::Fail),
        3 => Just(Fault::FailAfter),
        1 => (1u64..20).prop_map(|ms| Fault::Delay(Duration::from_millis(ms))),
        1 => Just(Fault::Hang),
    ]
}

fn schedule() -> impl Strategy<Value = Vec<(Operation, u64, Fault)>> {
    let operation = proptest::sample::select(Operation::ALL.to_vec());
    proptest::collection::vec((operation, 1u64..120, fault()), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_fault_schedule_on_memory_ends_exactly_once(faults in schedule(), seed in 0u64..1000) {
        event_bus_tests::two_worker_runtime().block_on(survive(Arc::new(MemoryStore::new()), &faults, seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn any_fault_schedule_on_sqlite_ends_exactly_once(faults in schedule(), seed in 0u64..1000) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(dir.path().join("faults.db")).expect("open"));
        event_bus_tests::two_worker_runtime().block_on(survive(store, &faults, seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// The same fault schedules on PostgreSQL (a schema per case; skipped without a server).
    #[test]
    fn any_fault_schedule_on_postgres_ends_exactly_once(faults in schedule(), seed in 0u64..1000) {
        let Some(url) = event_bus_tests::stores::postgres_url() else { return Ok(()) };
        event_bus_tests::two_worker_runtime().block_on(async {
            let schema = event_bus_tests::stores::PostgresSchema::new(&url).await;
            survive(schema.store.clone(), &faults, seed).await;
            schema.drop_schema().await;
        });
    }
}

/// Every write operation failing (before or after writing) at each of its first calls, one fault
/// at a time, on both stores.
#[test]
fn every_single_write_fault_ends_exactly_once() {
    let runtime = event_bus_tests::two_worker_runtime();
    for operation in [
        Operation::InsertIfAbsent,
        Operation::Put,
        Operation::Delete,
        Operation::CompareAndSwap,
        Operation::Apply,
    ] {
        for nth in [1, 2, 3, 5, 8, 13, 21, 34] {
            for fault in [Fault::Fail, Fault::FailAfter] {
                runtime.block_on(survive(
                    Arc::new(MemoryStore::new()),
                    &[(operation, nth, fault)],
                    nth,
                ));
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, nth) in [1u64, 4, 9].into_iter().enumerate() {
        let store = Arc::new(SqliteStore::open(dir.path().join(format!("{i}.db"))).expect("open"));
        runtime.block_on(survive(
            store,
            &[(Operation::Apply, nth, Fault::FailAfter)],
            nth,
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A `Timeout` of random length in front of `Join` and `Idempotency`, over a store where every
    /// call takes 1 ms (so every await point can be the one cancelled); then a redelivery without
    /// the timeout applies every complete order exactly once, and nothing stays claimed.
    #[test]
    fn cancellation_at_any_await_point_then_redelivery_applies_exactly_once(
        limits in proptest::collection::vec(0u64..14, 60),
        seed in 0u64..1000,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let faulty = Arc::new(FaultyStore::new(Arc::clone(&memory)));
            faulty.slow_down(Duration::from_millis(1));
            let store: Arc<dyn Store> = faulty.clone();
            let Adapters { join, idempotency } = adapters(&store);
            let rest = Pipeline::builder()
                .then(Transform::erase_content_from([OrderRequested::NAME]))
                .then(join)
                .then(idempotency)
                .then(business())
                .build();
            let (messages, complete) = orders::stream(10, 10, seed).expect("stream");
            let mut cancelled = 0;
            for (message, limit) in messages.iter().zip(limits.iter().cycle()) {
                let bounded = Pipeline::builder()
                    .then(Timeout::new(Duration::from_millis(*limit)))
                    .then(rest.clone())
                    .build();
                if let Err(PipelineError::Timeout(_)) = bounded.process(message.clone()).await {
                    cancelled += 1;
                }
            }
            // Let background releases of cancelled claims run, then redeliver everything.
            tokio::time::sleep(Duration::from_millis(5)).await;
            for message in &messages {
                rest.process(message.clone()).await.expect("redelivery");
            }
            let counts = applied(memory.as_ref()).await;
            prop_assert!(cancelled > 0, "nothing was cancelled: the test proves nothing");
            prop_assert!(counts.values().all(|n| *n == 1), "{:?} ({} cancelled)", counts, cancelled);
            let applied: BTreeSet<u64> = counts.keys().copied().collect();
            prop_assert_eq!(applied, complete);
            orders::assert_settled(memory.as_ref()).await;
            Ok(())
        })?;
    }
}
