//! One test per failure path of the reliability issue: cancelled holders, staged writes of failed
//! attempts, two adapter values on one store, recovery of what is in flight, dead letters per
//! failed join and their replay, sweeps that spare what is in flight or complete, corrupt records,
//! keyless messages, purging and duplicate handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_bus::pipeline::{
    Condition, Conflict, DeadLetters, Durable, Handler, Idempotency, Join, Message, Next,
    OnDuplicate, Pipeline, PipelineError, Quarantine, ReplayOutcome, Retry, Timeout, Transform,
    from_fn, stage,
};
use event_bus::store::{Batch, MemoryStore, Store};
use event_bus_tests::parts::{feed, join3};
use event_bus_tests::stores;

/// A handler counting its runs, optionally failing the first `failures` of them and pausing.
fn counter(runs: &Arc<AtomicUsize>, failures: usize, pause: Duration) -> impl Handler {
    let runs = Arc::clone(runs);
    from_fn(move |message: Message, _: Next| {
        let run = runs.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(pause).await;
            // Staged where an `Idempotency` commits it; elsewhere there is nothing to stage into.
            match stage(Batch::new().put(
                "effects",
                format!("{}#{run}", message.key()),
                vec![],
                None,
            )) {
                Err(PipelineError::Config(_)) | Ok(()) => {}
                Err(other) => return Err(other),
            }
            if run < failures {
                Err(PipelineError::retryable(format!("run {run} fails")))
            } else {
                Ok(())
            }
        }
    })
}

/// 1. A chain cancelled while it holds a claim releases it: the next delivery runs the handler.
#[tokio::test]
async fn a_cancelled_holder_releases_its_key_for_the_next_delivery() {
    for test_store in stores::both() {
        let store = test_store.store;
        let runs = Arc::new(AtomicUsize::new(0));
        let rest = Pipeline::builder()
            .then(join3(&store))
            .then(Idempotency::new(Arc::clone(&store)).max_wait(Duration::ZERO))
            .then(counter(&runs, 0, Duration::from_millis(200)))
            .build();
        let hasty = Pipeline::builder()
            .then(Timeout::new(Duration::from_millis(50)))
            .then(rest.clone())
            .build();
        assert!(matches!(
            feed(&hasty, "k").await,
            Err(PipelineError::Timeout(_))
        ));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "started, then cancelled");
        // Redelivery of the last part, at once: the join runs again and commits.
        rest.process(Message::new("c", "k", "{}")).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{}", test_store.name);
        rest.process(Message::new("c", "k", "{}")).await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{}: joined once",
            test_store.name
        );
        assert_eq!(store.count("effects").await.unwrap(), 1);
    }
}

/// 4. `Idempotency > Retry > handler`: only the successful attempt's staged writes commit.
#[tokio::test]
async fn staged_writes_of_a_failed_attempt_are_discarded_when_a_retry_succeeds() {
    for test_store in stores::both() {
        let runs = Arc::new(AtomicUsize::new(0));
        let pipeline = Pipeline::builder()
            .then(Idempotency::new(Arc::clone(&test_store.store)))
            .then(Retry::new().base_delay(Duration::from_millis(1)))
            .then(counter(&runs, 2, Duration::ZERO))
            .build();
        pipeline
            .process(Message::new("pay", "7", ""))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let effects = test_store.store.scan("effects", "").await.unwrap();
        let keys: Vec<&str> = effects.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            ["7#2"],
            "{}: one posting, the last attempt's",
            test_store.name
        );
    }
}

/// 7. Two `Idempotency` values on one store, in one process, never run a key twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_idempotency_values_on_one_store_run_each_key_once() {
    for test_store in stores::both() {
        let runs = Arc::new(AtomicUsize::new(0));
        let build = || {
            Pipeline::builder()
                .then(Idempotency::new(Arc::clone(&test_store.store)))
                .then(counter(&runs, 0, Duration::from_millis(30)))
                .build()
        };
        let (first, second) = (build(), build());
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let pipeline = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                tokio::spawn(async move { pipeline.process(Message::new("pay", "k", "")).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{}", test_store.name);
    }
}

/// 8. `recover` skips what is in flight in this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_skips_messages_in_flight_here() {
    for test_store in stores::both() {
        let runs = Arc::new(AtomicUsize::new(0));
        let pipeline = Pipeline::builder()
            .then(counter(&runs, 0, Duration::from_millis(300)))
            .build();
        let durable = Durable::new(Arc::clone(&test_store.store), pipeline);
        let submitting = {
            let durable = durable.clone();
            tokio::spawn(async move { durable.submit(Message::new("s", "k", "")).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let recovered = durable.recover().await.unwrap();
        assert_eq!(
            (recovered.succeeded, recovered.in_flight),
            (0, 1),
            "{}",
            test_store.name
        );
        submitting.await.unwrap().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{}", test_store.name);
        assert_eq!(durable.pending().await.unwrap(), 0);
    }
}

/// 11, 5, 10. A failed join is one dead letter holding the joined (erased) message, however many
/// times its parts are redelivered; replaying it runs below the join and removes the letter only
/// once it succeeded.
#[tokio::test]
async fn a_failed_join_is_one_letter_that_replays_below_the_join() {
    for test_store in stores::both() {
        let store = test_store.store;
        let runs = Arc::new(AtomicUsize::new(0));
        let dead_letters = DeadLetters::new(Arc::clone(&store));
        let pipeline = Pipeline::builder()
            .then(dead_letters.clone())
            .then(Transform::erase_content_from(["a"]))
            .then(join3(&store))
            .then(Idempotency::new(Arc::clone(&store)))
            .then(counter(&runs, 5, Duration::ZERO))
            .build();
        feed(&pipeline, "order-1").await.unwrap(); // the join fails once
        feed(&pipeline, "order-1").await.unwrap(); // every part redelivered: it fails 3 times more
        let letters = dead_letters.list().await.unwrap();
        assert_eq!(
            letters.len(),
            1,
            "{}: one letter per failed join",
            test_store.name
        );
        let letter = &letters[0];
        assert_eq!(letter.message.source(), "composed-event");
        assert_eq!(letter.message.key(), "order-1");
        let content: serde_json::Value = serde_json::from_slice(letter.message.content()).unwrap();
        assert_eq!(content["a"], "", "the erased content stays erased");
        assert_eq!(content["b"]["from"], "b");

        // Still failing (run 4): parked again under the same id, kept.
        let outcome = dead_letters.replay(&letter.id, &pipeline).await.unwrap();
        assert!(
            matches!(&outcome, ReplayOutcome::Parked { id } if *id == letter.id),
            "{outcome:?}"
        );
        assert_eq!(dead_letters.count().await.unwrap(), 1);
        // Now it succeeds (run 5): the join commits, the letter goes, the parts go.
        assert!(
            dead_letters
                .replay(&letter.id, &pipeline)
                .await
                .unwrap()
                .is_success()
        );
        assert_eq!(dead_letters.count().await.unwrap(), 0);
        assert_eq!(
            store.count("join:parts").await.unwrap(),
            0,
            "{}",
            test_store.name
        );
        assert_eq!(store.count("effects").await.unwrap(), 1, "applied once");
        // A late redelivery of a part does nothing.
        feed(&pipeline, "order-1").await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 6);
    }
}

/// 5. Replaying through a pipeline without `DeadLetters` keeps letters whose replay failed.
#[tokio::test]
async fn a_failed_replay_keeps_its_letter() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    dead_letters
        .record(
            Message::new("s", "k", ""),
            &PipelineError::permanent("first"),
        )
        .await
        .unwrap();
    let failing = Pipeline::builder()
        .then(from_fn(|_: Message, _: Next| async {
            Err(PipelineError::permanent("still broken"))
        }))
        .build();
    let replayed = dead_letters.replay_all(&failing).await.unwrap();
    assert_eq!((replayed.succeeded, replayed.failed), (0, 1));
    assert_eq!(dead_letters.count().await.unwrap(), 1, "the letter stays");
}

/// 9, 6. `sweep` spares keys being joined and complete joins; what it expires is parked in the
/// same batch that deletes the parts, and replaying it puts the parts back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_spares_in_flight_and_complete_joins_and_parks_expired_ones_atomically() {
    for test_store in stores::both() {
        let store = test_store.store;
        let runs = Arc::new(AtomicUsize::new(0));
        let dead_letters = DeadLetters::new(Arc::clone(&store));
        let join = join3(&store)
            .expire_after(Duration::ZERO)
            .dead_letter_expired(dead_letters.clone());
        let slow = Pipeline::builder()
            .then(join.clone())
            .then(counter(&runs, 0, Duration::from_millis(400)))
            .build();
        let failing = Pipeline::builder()
            .then(Join::new(
                Condition::all_of(["a", "b", "c"]),
                Arc::clone(&store),
            ))
            .then(counter(
                &Arc::new(AtomicUsize::new(0)),
                usize::MAX,
                Duration::ZERO,
            ))
            .build();
        // "complete": all parts, but the rest of the chain failed.
        assert!(feed(&failing, "complete").await.is_err());
        // "in-flight": all parts, the rest of the chain is running.
        let running = {
            let slow = slow.clone();
            tokio::spawn(async move { feed(&slow, "in-flight").await })
        };
        // "partial": two parts of three.
        for source in ["a", "b"] {
            slow.process(Message::new(source, "partial", "{}"))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;

        let swept = join.sweep().await.unwrap();
        assert_eq!(swept.expired.len(), 1, "{}: {swept:?}", test_store.name);
        assert_eq!(swept.expired[0].key, "partial");
        assert_eq!((swept.in_flight, swept.complete), (1, 1));
        running.await.unwrap().unwrap();
        let letters = dead_letters.list().await.unwrap();
        assert_eq!(letters.len(), 1);
        assert!(letters[0].error.contains("missing source(s): c"));
        assert_eq!(
            store.count("join:parts").await.unwrap(),
            3,
            "the complete join's parts"
        );

        // The missing part arrives after the expiry; replaying the letter restores the others.
        slow.process(Message::new("c", "partial", "{}"))
            .await
            .unwrap();
        assert!(
            dead_letters
                .replay(&letters[0].id, &slow)
                .await
                .unwrap()
                .is_success()
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "in-flight and partial joined once each"
        );
    }
}

/// 12. Unreadable records are quarantined and counted; the valid ones go on.
#[tokio::test]
async fn corrupt_records_are_quarantined_and_never_block_the_rest() {
    for test_store in stores::both() {
        let store = test_store.store;
        let runs = Arc::new(AtomicUsize::new(0));
        let pipeline = Pipeline::builder()
            .then(join3(&store).expire_after(Duration::ZERO))
            .then(counter(&runs, 0, Duration::ZERO))
            .build();
        let durable = Durable::new(Arc::clone(&store), pipeline.clone());
        store
            .put("inbox", "bad", vec![0xff, 0x00], None)
            .await
            .unwrap();
        store
            .put(
                "inbox",
                "good",
                Message::new("a", "x", "{}").encode().unwrap(),
                None,
            )
            .await
            .unwrap();
        store
            .put("dead-letters", "bad", vec![1, 2, 3], None)
            .await
            .unwrap();
        store
            .put("join:parts", "1:y/a", b"not a part".to_vec(), None)
            .await
            .unwrap();

        let recovered = durable.recover().await.unwrap();
        assert_eq!(
            (recovered.succeeded, recovered.quarantined),
            (1, 1),
            "{}",
            test_store.name
        );
        let dead_letters = DeadLetters::new(Arc::clone(&store));
        assert!(dead_letters.list().await.unwrap().is_empty());
        // The corrupt part of `y` is skipped: `y` still joins.
        feed(&pipeline, "y").await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let quarantine = Quarantine::new(Arc::clone(&store));
        let moved = quarantine.list().await.unwrap();
        assert_eq!(moved.len(), 3, "{}: {moved:?}", test_store.name);
        let namespaces: Vec<&str> = moved.iter().map(|q| q.namespace.as_str()).collect();
        assert!(namespaces.contains(&"inbox") && namespaces.contains(&"dead-letters"));
        assert!(namespaces.contains(&"join:parts"));
        assert!(quarantine.delete(&moved[0].id).await.unwrap());
        assert_eq!(quarantine.count().await.unwrap(), 2);
    }
}

/// 13. A message without a key is an error in `Idempotency`, never a silent skip.
#[tokio::test]
async fn keyless_messages_are_an_error_in_idempotency() {
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(Idempotency::new(Arc::new(MemoryStore::new())))
        .then(counter(&runs, 0, Duration::ZERO))
        .build();
    for _ in 0..2 {
        let result = pipeline.process(Message::new("ping", "", "")).await;
        assert!(
            matches!(&result, Err(PipelineError::MissingKey { source_name }) if source_name == "ping"),
            "{result:?}"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // A fallible key function's error fails the message.
    let by_header = Pipeline::builder()
        .then(
            Idempotency::new(Arc::new(MemoryStore::new())).try_key_by(|m: &Message| {
                m.metadata()
                    .get("id")
                    .cloned()
                    .ok_or_else(|| PipelineError::permanent("no id header"))
            }),
        )
        .build();
    assert!(by_header.process(Message::new("s", "k", "")).await.is_err());
    assert!(
        by_header
            .process(Message::new("s", "k", "").with_metadata("id", "1"))
            .await
            .is_ok()
    );
}

/// 14. With a TTL, the handler purges expired records itself.
#[tokio::test]
async fn a_ttl_bounds_the_store() {
    let store = Arc::new(MemoryStore::new());
    let pipeline = Pipeline::builder()
        .then(Idempotency::new(store.clone()).ttl(Duration::from_millis(1)))
        .build();
    for i in 0..300 {
        pipeline
            .process(Message::new("s", format!("k{i}"), ""))
            .await
            .unwrap();
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(3)).await;
    let left = store.purge_expired(usize::MAX).await.unwrap();
    assert!(
        left < 100,
        "the handler purged as it went: {left} expired records left of 300"
    );
}

/// Peer parity: a conflict function can forward a duplicate or have it reprocessed.
#[tokio::test]
async fn duplicates_can_be_forwarded_or_reprocessed() {
    let store = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(
            Idempotency::new(store.clone()).on_conflict(Conflict::With(Arc::new(|m: &Message| {
                match m.metadata().get("on-duplicate").map(String::as_str) {
                    Some("forward") => Ok(OnDuplicate::Forward),
                    Some("reprocess") => Ok(OnDuplicate::Reprocess),
                    _ => Ok(OnDuplicate::Skip),
                }
            }))),
        )
        .then(counter(&runs, 0, Duration::ZERO))
        .build();
    let message = |how: &str| Message::new("s", "k", "").with_metadata("on-duplicate", how);
    pipeline.process(message("skip")).await.unwrap();
    pipeline.process(message("skip")).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    pipeline.process(message("forward")).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "forwarded to the rest of the chain"
    );
    assert_eq!(
        store.count("effects").await.unwrap(),
        1,
        "a forwarded duplicate commits nothing"
    );
    pipeline.process(message("reprocess")).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        store.count("effects").await.unwrap(),
        2,
        "a reprocessed one commits again"
    );
    assert_eq!(
        store.get("idempotency", "k").await.unwrap(),
        Some(b"done".to_vec())
    );
}

/// Found by the fault hunt: a sweep racing the part that completes a join never expires it.
#[tokio::test]
async fn a_sweep_racing_the_completing_part_does_not_expire_the_join() {
    use event_bus::store::{Fault, FaultyStore, Operation};
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let store: Arc<dyn Store> = faulty.clone();
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    let join = Join::new(Condition::all_of(["a", "b"]), Arc::clone(&store))
        .expire_after(Duration::ZERO)
        .dead_letter_expired(dead_letters.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(join.clone())
        .then(counter(&runs, 0, Duration::ZERO))
        .build();
    pipeline
        .process(Message::new("a", "k", "{}"))
        .await
        .unwrap();
    // The sweep's batch is delayed; `b` is stored meanwhile, and its claim delayed further.
    faulty.inject(Operation::Apply, 1, Fault::Delay(Duration::from_millis(60)));
    faulty.inject(
        Operation::InsertIfAbsent,
        3,
        Fault::Delay(Duration::from_millis(120)),
    );
    let sweeping = {
        let join = join.clone();
        tokio::spawn(async move { join.sweep().await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    pipeline
        .process(Message::new("b", "k", "{}"))
        .await
        .unwrap();
    let swept = sweeping.await.unwrap().unwrap();
    assert!(swept.expired.is_empty(), "{swept:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(dead_letters.count().await.unwrap(), 0);
}

/// Found by the fault hunt: source names may contain commas; replaying the join deletes exactly
/// its parts.
#[tokio::test]
async fn replaying_a_join_of_sources_with_commas_removes_its_parts() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(dead_letters.clone())
        .then(Join::new(
            Condition::all_of(["x,y", "z"]),
            Arc::clone(&store),
        ))
        .then(counter(&runs, 1, Duration::ZERO))
        .build();
    for source in ["x,y", "z"] {
        pipeline
            .process(Message::new(source, "k", "{}"))
            .await
            .unwrap();
    }
    let letter = dead_letters.list().await.unwrap().remove(0);
    assert!(
        dead_letters
            .replay(&letter.id, &pipeline)
            .await
            .unwrap()
            .is_success()
    );
    assert_eq!(
        store.count("join:parts").await.unwrap(),
        0,
        "no part left behind"
    );
}

/// Found by the fault hunt: a key that expires twice keeps every part in its letter, bytes and
/// metadata exactly; replaying it restores them all.
#[tokio::test]
async fn expiring_a_key_twice_loses_no_part_and_keeps_binary_content() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    let join = join3(&store)
        .expire_after(Duration::ZERO)
        .dead_letter_expired(dead_letters.clone());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let pipeline = Pipeline::builder()
        .then(join.clone())
        .then(from_fn(move |joined: Message, _: Next| {
            sink.lock().unwrap().push(joined);
            async { Ok(()) }
        }))
        .build();
    let binary = vec![0xff, 0xfe, 0x00, 0x80];
    pipeline
        .process(Message::new("a", "k", binary.clone()).with_metadata("trace", "t-1"))
        .await
        .unwrap();
    assert_eq!(join.sweep().await.unwrap().expired.len(), 1);
    pipeline
        .process(Message::new("b", "k", "{}"))
        .await
        .unwrap();
    assert_eq!(join.sweep().await.unwrap().expired.len(), 1);
    let letters = dead_letters.list().await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "one letter for the key, holding both expiries"
    );
    pipeline
        .process(Message::new("c", "k", "{}"))
        .await
        .unwrap();
    assert!(
        dead_letters
            .replay(&letters[0].id, &pipeline)
            .await
            .unwrap()
            .is_success()
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "joined once, with every part");
    let content: serde_json::Value = serde_json::from_slice(seen[0].content()).unwrap();
    assert_eq!(content["b"], serde_json::json!({}));
    assert!(content.get("a").is_some() && content.get("c").is_some());
    let restored = join.pending().await.unwrap();
    assert!(restored.is_empty(), "{restored:?}");
}

/// Found by the fault hunt: writes staged while a handler's `handle` runs synchronously belong to
/// its attempt too, and are discarded when it fails.
#[tokio::test]
async fn writes_staged_synchronously_by_a_failed_attempt_are_discarded() {
    let store = Arc::new(MemoryStore::new());
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let pipeline = Pipeline::builder()
        .then(Idempotency::new(store.clone()))
        .then(Retry::new().base_delay(Duration::from_millis(1)))
        .then(from_fn(move |_: Message, _: Next| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst);
            let staged =
                stage(Batch::new().put("effects", format!("attempt-{attempt}"), vec![], None));
            async move {
                staged?;
                if attempt == 0 {
                    Err(PipelineError::retryable("first attempt fails"))
                } else {
                    Ok(())
                }
            }
        }))
        .build();
    pipeline.process(Message::new("s", "k", "")).await.unwrap();
    let keys: Vec<String> = store
        .scan("effects", "")
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["attempt-1"]);
}

/// Found by the fault hunt: with two joins in a row, replaying the failed outer join settles both.
#[tokio::test]
async fn replaying_nested_joins_settles_every_join() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let dead_letters = DeadLetters::new(Arc::clone(&store));
    let inner = Join::new(Condition::all_of(["a", "b"]), Arc::clone(&store)).namespace("j1");
    let outer =
        Join::new(Condition::all_of(["composed-event"]), Arc::clone(&store)).namespace("j2");
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(dead_letters.clone())
        .then(inner.clone())
        .then(outer.clone())
        .then(counter(&runs, 1, Duration::ZERO))
        .build();
    for source in ["a", "b"] {
        pipeline
            .process(Message::new(source, "k", "{}"))
            .await
            .unwrap();
    }
    let replayed = dead_letters.replay_all(&pipeline).await.unwrap();
    assert_eq!(replayed.succeeded, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(
        inner.pending().await.unwrap().is_empty(),
        "the first join settled"
    );
    assert!(
        outer.pending().await.unwrap().is_empty(),
        "the second join settled"
    );
    assert_eq!(
        store.get("j1:joined", "k").await.unwrap(),
        Some(b"joined".to_vec())
    );
    assert_eq!(
        store.get("j2:joined", "k").await.unwrap(),
        Some(b"joined".to_vec())
    );
}

/// Found by the second fault hunt: a message accepted long ago, whose claim another process took
/// over after its lease ran out, is not processed again by its first holder.
#[tokio::test]
async fn a_holder_whose_message_was_taken_over_does_not_process_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(counter(&runs, 0, Duration::ZERO))
        .build();
    let durable = Durable::new(Arc::clone(&store), pipeline).lease(Duration::from_millis(60));
    let message = Message::new("s", "k", "");
    let accepted = durable.accept(message.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // the lease ran out
    // Another process took the message over (its claim header, lease running).
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let mut record = format!("claim/another-process/1/{until}\n").into_bytes();
    record.extend(message.encode().unwrap());
    store
        .put("inbox", message.id(), record, None)
        .await
        .unwrap();
    accepted.process().await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the other holder answers for it"
    );
    assert_eq!(durable.pending().await.unwrap(), 1);
}

/// Found by the second fault hunt: a renewal under way when the work finishes is completed, so
/// the commit removes the message (nothing processed is left to run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_messages_leave_the_inbox_even_with_renewals_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(event_bus::store::SqliteStore::open(dir.path().join("renew.db")).unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let pipeline = Pipeline::builder()
        .then(from_fn(move |_: Message, _: Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(3..12))).await;
                Ok(())
            }
        }))
        .build();
    let durable = Durable::new(Arc::clone(&store), pipeline).lease(Duration::from_millis(9));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let durable = durable.clone();
            tokio::spawn(async move {
                for _ in 0..40 {
                    durable.submit(Message::new("s", "k", "")).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        durable.pending().await.unwrap(),
        0,
        "every processed message removed"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 320);
}

/// Found by the second fault hunt: the same message id delivered twice (even re-created with
/// another time) is one inbox record, processed by one holder at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_is_processed_once_at_a_time() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .then(counter(&runs, 0, Duration::from_millis(50)))
        .build();
    let durable = Durable::new(Arc::clone(&store), pipeline);
    let first = Message::new("s", "k", "").with_id("same");
    let second = first
        .clone()
        .with_time(first.time() + Duration::from_millis(1));
    let (a, b) = tokio::join!(durable.submit(first), durable.submit(second));
    a.unwrap();
    b.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(durable.pending().await.unwrap(), 0);
}
