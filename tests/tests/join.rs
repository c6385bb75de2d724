//! Join: exactly one joined message per complete key under concurrency and any arrival order;
//! parts removed afterwards; late parts ignored; failures release the claim; expiry reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::pipeline::{
    Condition, DeadLetters, Handler, Join, Message, Next, Pipeline, PipelineError, from_fn,
};
use event_bus::store::Store;
use event_bus_tests::stores;
use proptest::prelude::*;

const SOURCES: [&str; 3] = ["order", "payment", "inventory"];

/// A pipeline joining all three sources, counting joins per key into `joins`.
fn counting_join(store: Arc<dyn Store>, joins: Arc<Mutex<BTreeMap<String, usize>>>) -> Pipeline {
    Pipeline::builder()
        .then(Join::new(Condition::all_of(SOURCES), store))
        .then(from_fn(move |joined: Message, _: Next| {
            *joins
                .lock()
                .unwrap()
                .entry(joined.key().to_owned())
                .or_default() += 1;
            async { Ok(()) }
        }))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_times_three_parts_from_eight_tasks_join_exactly_once_each() {
    for test_store in stores::both() {
        let joins = Arc::new(Mutex::new(BTreeMap::new()));
        let pipeline = counting_join(Arc::clone(&test_store.store), Arc::clone(&joins));
        let mut parts: Vec<Message> = (0..1000)
            .flat_map(|key| {
                SOURCES.map(|source| Message::new(source, key.to_string(), b"{}".to_vec()))
            })
            .collect();
        fastrand::shuffle(&mut parts);
        let chunks: Vec<Vec<Message>> = parts
            .chunks(parts.len().div_ceil(8))
            .map(<[_]>::to_vec)
            .collect();
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let pipeline = pipeline.clone();
                tokio::spawn(async move {
                    for part in chunk {
                        pipeline.process(part).await.expect("join");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let joins = joins.lock().unwrap().clone();
        assert_eq!(joins.len(), 1000, "{}: every key joined", test_store.name);
        assert!(
            joins.values().all(|n| *n == 1),
            "{}: no key joined twice",
            test_store.name
        );
        assert_eq!(
            test_store.store.count("join:parts").await.unwrap(),
            0,
            "{}: no part left behind",
            test_store.name
        );
    }
}

#[tokio::test]
async fn parts_arriving_after_the_join_do_not_re_emit_it() {
    for test_store in stores::both() {
        let joins = Arc::new(Mutex::new(BTreeMap::new()));
        let pipeline = counting_join(Arc::clone(&test_store.store), Arc::clone(&joins));
        for source in SOURCES.iter().chain(SOURCES.iter()) {
            pipeline
                .process(Message::new(*source, "7", Vec::new()))
                .await
                .unwrap();
        }
        assert_eq!(
            joins.lock().unwrap().get("7"),
            Some(&1),
            "{}",
            test_store.name
        );
        assert_eq!(test_store.store.count("join:parts").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_failure_downstream_releases_the_claim_so_a_retry_joins_again() {
    let test_store = stores::both().remove(0);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let pipeline = Pipeline::builder()
        .then(Join::new(
            Condition::all_of(["a", "b"]),
            Arc::clone(&test_store.store),
        ))
        .then(from_fn(move |_: Message, _: Next| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt == 0 {
                    Err(PipelineError::retryable("db down"))
                } else {
                    Ok(())
                }
            }
        }))
        .build();
    pipeline
        .process(Message::new("a", "k", Vec::new()))
        .await
        .unwrap();
    assert!(
        pipeline
            .process(Message::new("b", "k", Vec::new()))
            .await
            .is_err()
    );
    // Redelivery of the last part joins again, with both parts still there.
    pipeline
        .process(Message::new("b", "k", Vec::new()))
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(test_store.store.count("join:parts").await.unwrap(), 0);
}

#[tokio::test]
async fn conditions_and_output_shape() {
    let store = stores::both().remove(0).store;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let pipeline = Pipeline::builder()
        .then(
            Join::new(
                Condition::any_of(["card", "cash"]).and(Condition::none_of(["fraud"])),
                store,
            )
            .output_source("payment.settled"),
        )
        .then(from_fn(move |joined: Message, _: Next| {
            sink.lock().unwrap().push(joined);
            async { Ok(()) }
        }))
        .build();
    pipeline
        .process(Message::new("fraud", "1", b"flagged".to_vec()))
        .await
        .unwrap();
    pipeline
        .process(Message::new("card", "1", br#"{"last4":"4242"}"#.to_vec()))
        .await
        .unwrap();
    pipeline
        .process(Message::new("cash", "2", b"12.50".to_vec()))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "key 1 is blocked by none-of(fraud)");
    assert_eq!(seen[0].key(), "2");
    assert_eq!(seen[0].source(), "payment.settled");
    let content: serde_json::Value = serde_json::from_slice(seen[0].content()).unwrap();
    assert_eq!(content, serde_json::json!({"cash": "12.50"}));
}

#[tokio::test]
async fn expired_incomplete_joins_are_reported_removed_and_dead_lettered() {
    for test_store in stores::both() {
        let dead_letters = DeadLetters::new(Arc::clone(&test_store.store));
        let join = Join::new(Condition::all_of(SOURCES), Arc::clone(&test_store.store))
            .expire_after(Duration::from_millis(50))
            .dead_letter_expired(dead_letters.clone());
        join.handle(Message::new("order", "late", Vec::new()), Next::end())
            .await
            .unwrap();
        join.handle(Message::new("payment", "late", Vec::new()), Next::end())
            .await
            .unwrap();
        assert!(
            join.sweep().await.unwrap().expired.is_empty(),
            "not yet expired"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        let expired = join.sweep().await.unwrap().expired;
        assert_eq!(expired.len(), 1, "{}", test_store.name);
        assert_eq!(expired[0].key, "late");
        assert_eq!(expired[0].missing, ["inventory"]);
        assert_eq!(expired[0].present, ["order", "payment"]);
        assert_eq!(test_store.store.count("join:parts").await.unwrap(), 0);
        let letters = dead_letters.list().await.unwrap();
        assert_eq!(letters.len(), 1, "one letter per expired join");
        assert!(
            letters[0].error.contains("missing source(s): inventory"),
            "{}",
            letters[0].error
        );
        assert_eq!(letters[0].message.key(), "late");
        let content: serde_json::Value =
            serde_json::from_slice(letters[0].message.content()).unwrap();
        assert_eq!(content, serde_json::json!({"order": "", "payment": ""}));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any arrival order of parts, with duplicates, over keys of which some are incomplete, gives
    /// exactly one join per complete key and none for incomplete ones.
    #[test]
    fn any_interleaving_joins_each_complete_key_exactly_once(
        // Per key: which of the three sources it gets (bit mask) and how many copies of each.
        keys in proptest::collection::vec((0u8..8, 1usize..3), 1..12),
        seed in any::<u64>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = stores::both().remove(0).store;
        let joins = Arc::new(Mutex::new(BTreeMap::new()));
        let pipeline = counting_join(Arc::clone(&store), Arc::clone(&joins));
        let mut parts = Vec::new();
        for (key, (mask, copies)) in keys.iter().enumerate() {
            for (bit, source) in SOURCES.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    for _ in 0..*copies {
                        parts.push(Message::new(*source, key.to_string(), Vec::new()));
                    }
                }
            }
        }
        fastrand::Rng::with_seed(seed).shuffle(&mut parts);
        runtime.block_on(async {
            for part in parts {
                pipeline.process(part).await.unwrap();
            }
        });
        let joins = joins.lock().unwrap();
        for (key, (mask, _)) in keys.iter().enumerate() {
            let expected = usize::from(*mask == 0b111);
            prop_assert_eq!(joins.get(&key.to_string()).copied().unwrap_or(0), expected, "key {}", key);
        }
    }
}
