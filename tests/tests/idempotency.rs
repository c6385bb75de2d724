//! Idempotency: one run per key even for concurrent duplicates; nothing recorded for a failure;
//! conflict strategies; staged writes commit with the record; a previous run's hold is taken over.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_bus::pipeline::{
    Conflict, Idempotency, Message, Next, OnDuplicate, Pipeline, PipelineError, from_fn, stage,
};
use event_bus::store::Batch;
use event_bus_tests::stores;

fn counted(idempotency: Idempotency, runs: &Arc<AtomicUsize>) -> Pipeline {
    let runs = Arc::clone(runs);
    Pipeline::builder()
        .then(idempotency)
        .then(from_fn(move |_: Message, _: Next| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // Stay in flight long enough for the duplicates to arrive.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
        }))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_run_exactly_once() {
    for test_store in stores::both() {
        let runs = Arc::new(AtomicUsize::new(0));
        let pipeline = counted(Idempotency::new(Arc::clone(&test_store.store)), &runs);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let pipeline = pipeline.clone();
                tokio::spawn(async move {
                    pipeline
                        .process(Message::new("pay", "order-1", Vec::new()))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{}", test_store.name);
        pipeline
            .process(Message::new("pay", "order-1", Vec::new()))
            .await
            .unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{}: later duplicates skip too",
            test_store.name
        );
    }
}

#[tokio::test]
async fn a_failure_releases_the_key_so_a_redelivery_is_processed() {
    for test_store in stores::both() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&attempts);
        let pipeline = Pipeline::builder()
            .then(Idempotency::new(Arc::clone(&test_store.store)))
            .then(from_fn(move |_: Message, _: Next| {
                let attempt = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    stage(Batch::new().put(
                        "effects",
                        format!("attempt-{attempt}"),
                        vec![1],
                        None,
                    ))?;
                    if attempt == 0 {
                        Err(PipelineError::retryable("flaky"))
                    } else {
                        Ok(())
                    }
                }
            }))
            .build();
        let message = Message::new("pay", "order-2", Vec::new());
        assert!(pipeline.process(message.clone()).await.is_err());
        assert_eq!(
            test_store.store.count("effects").await.unwrap(),
            0,
            "{}: writes staged by a failed run are discarded",
            test_store.name
        );
        pipeline.process(message.clone()).await.unwrap();
        pipeline.process(message).await.unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "{}", test_store.name);
        let effects: Vec<String> = test_store
            .store
            .scan("effects", "")
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            effects,
            ["attempt-1"],
            "{}: the successful run's writes committed",
            test_store.name
        );
    }
}

#[tokio::test]
async fn conflict_strategies() {
    let store = stores::both().remove(0).store;
    let runs = Arc::new(AtomicUsize::new(0));
    let strict = counted(
        Idempotency::new(Arc::clone(&store))
            .namespace("strict")
            .on_conflict(Conflict::Error),
        &runs,
    );
    strict
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    match strict.process(Message::new("s", "k", Vec::new())).await {
        Err(PipelineError::Duplicate { key }) => assert_eq!(key, "k"),
        other => panic!("expected a duplicate error, got {other:?}"),
    }

    let noticed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&noticed);
    let custom = counted(
        Idempotency::new(Arc::clone(&store))
            .namespace("custom")
            .key_by(|m: &Message| format!("{}/{}", m.source(), m.key()))
            .on_conflict_with(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(OnDuplicate::Skip)
            }),
        &runs,
    );
    for source in ["a", "a", "b"] {
        custom
            .process(Message::new(source, "k", Vec::new()))
            .await
            .unwrap();
    }
    assert_eq!(
        noticed.load(Ordering::SeqCst),
        1,
        "only the second `a/k` is a duplicate"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "strict 1 + custom a/k and b/k"
    );
}

#[tokio::test]
async fn processed_keys_can_expire() {
    let store = stores::both().remove(0).store;
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = counted(
        Idempotency::new(store).ttl(Duration::from_millis(50)),
        &runs,
    );
    pipeline
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    pipeline
        .process(Message::new("s", "k", Vec::new()))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_run_is_respected_until_its_lease_runs_out() {
    for test_store in stores::both() {
        // Another run of the program took the key (lease 300 ms) and died before finishing.
        test_store
            .store
            .put(
                "idempotency",
                "order-9",
                b"claim/0123456789abcdef/1".to_vec(),
                Some(Duration::from_millis(300)),
            )
            .await
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let impatient = counted(
            Idempotency::new(Arc::clone(&test_store.store)).max_wait(Duration::from_millis(50)),
            &runs,
        );
        let early = impatient
            .process(Message::new("s", "order-9", Vec::new()))
            .await;
        assert!(
            matches!(early, Err(PipelineError::InFlight { .. })),
            "{}: a live claim is never taken for done: {early:?}",
            test_store.name
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        // A patient duplicate waits for the lease to run out, then processes the message.
        let patient = counted(Idempotency::new(Arc::clone(&test_store.store)), &runs);
        patient
            .process(Message::new("s", "order-9", Vec::new()))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{}", test_store.name);
        assert_eq!(
            test_store
                .store
                .get("idempotency", "order-9")
                .await
                .unwrap(),
            Some(b"done".to_vec())
        );
    }
}

#[tokio::test]
async fn staging_outside_an_idempotent_chain_is_an_error() {
    assert!(matches!(stage(Batch::new()), Err(PipelineError::Config(_))));
}
