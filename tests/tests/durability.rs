//! Durable delivery: a SQLite store dropped and reopened mid-stream; two worker processes sharing
//! one store, SIGKILLed at random and restarted; a dead-letter replay SIGKILLed mid-way. Each ends
//! with every complete order applied exactly once and nothing left in flight.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use event_bus::pipeline::{DeadLetters, Durable};
use event_bus::store::{SqliteStore, Store};
use event_bus_tests::orders;

/// Every complete order applied exactly once, nothing else applied, the inbox empty.
async fn assert_exactly_once(store: &dyn Store, complete: &BTreeSet<u64>) {
    let applied = orders::applied(store).await.expect("read effects");
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(twice.is_empty(), "orders applied more than once: {twice:?}");
    let applied: BTreeSet<u64> = applied.into_keys().collect();
    let lost: Vec<_> = complete.difference(&applied).take(5).collect();
    assert!(lost.is_empty(), "complete orders never applied: {lost:?}");
    assert_eq!(&applied, complete, "only complete orders are applied");
    assert_eq!(
        store.count("inbox").await.expect("count"),
        0,
        "inbox drained"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_store_mid_stream_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("restart.db");
    let (messages, complete) = orders::stream(600, 5, 7).expect("stream");
    let (first, second) = messages.split_at(messages.len() / 2);

    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("open"));
        let durable = Durable::new(Arc::clone(&store), orders::pipeline(Arc::clone(&store)));
        // Some messages are only persisted, not processed: as if the process stopped mid-way.
        for message in &first[..first.len() - 20] {
            durable.submit(message.clone()).await.expect("submit");
        }
        for message in &first[first.len() - 20..] {
            store
                .put(
                    "inbox",
                    message.id(),
                    message.encode().expect("encode"),
                    None,
                )
                .await
                .expect("persist");
        }
    } // the store and every pipeline value are dropped here

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopen"));
    let durable = Durable::new(Arc::clone(&store), orders::pipeline(Arc::clone(&store)));
    let recovered = durable.recover().await.expect("recover");
    assert_eq!(recovered.succeeded, 20);
    // The producer redelivers a few already-acknowledged messages too.
    for message in first[..10].iter().chain(second) {
        durable.submit(message.clone()).await.expect("submit");
    }
    assert_exactly_once(store.as_ref(), &complete).await;
}

/// Reads the store at `db` (a second connection: the workers may be writing).
fn with_store<T>(db: &Path, read: impl AsyncFnOnce(&Arc<SqliteStore>) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(db).expect("open for reading"));
        let value = read(&store).await;
        store.close().await;
        value
    })
}

fn worker(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_worker"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the worker")
}

/// SIGKILLs `child` if it is still running; `true` if it was killed.
fn kill(child: &mut Child) -> bool {
    let running = child.try_wait().expect("poll the worker").is_none();
    if running {
        child.kill().expect("SIGKILL the worker"); // std's kill is SIGKILL on Unix
    }
    let status = child.wait().expect("reap the worker");
    assert!(running || status.success(), "a worker left alone completes");
    running
}

fn finish(child: Child) {
    let output = child.wait_with_output().expect("wait for the worker");
    assert!(output.status.success(), "the worker completes");
    assert!(String::from_utf8_lossy(&output.stdout).contains("DONE"));
}

/// Two worker processes share one SQLite file and each consume the whole stream (every message is
/// delivered to both); both are SIGKILLed at random moments, several times, and restarted. Then a
/// replay of the dead letters is SIGKILLed mid-way and restarted. Every complete order is applied
/// exactly once, poison orders are parked once each (one letter per failed join) and applied once
/// after their replay, and nothing is left claimed, in the inbox or in dead letters.
#[test]
fn two_workers_sharing_a_store_killed_at_random_apply_each_order_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shared.db");
    let db_arg = db.to_str().expect("utf-8 path");
    let (orders, seed, poison) = (1200u64, 42u64, 41u64);
    let (orders_arg, seed_arg, poison_arg) =
        (orders.to_string(), seed.to_string(), poison.to_string());
    let consume = |name: &'static str| {
        worker(&["consume", db_arg, &orders_arg, &seed_arg, name, &poison_arg])
    };
    let mut rng = fastrand::Rng::with_seed(2026);
    let (mut kills, mut in_flight_at_kills) = (0, 0);
    for _ in 0..3 {
        let mut workers = [consume("a"), consume("b")];
        for child in &mut workers {
            std::thread::sleep(Duration::from_millis(rng.u64(100..500)));
            if kill(child) {
                kills += 1;
            }
        }
        in_flight_at_kills +=
            with_store(&db, async |store| store.count("inbox").await.unwrap_or(0));
    }
    assert!(
        kills >= 3,
        "the workers finished before they could be killed: proves nothing"
    );
    assert!(
        in_flight_at_kills > 0,
        "the kills caught messages in flight"
    );
    let [a, b] = [consume("a"), consume("b")];
    finish(a);
    finish(b);

    let options = orders::Options {
        poison,
        ..orders::Options::default()
    };
    let (_, complete) = orders::stream(orders, 0, seed).expect("stream");
    let (poisoned, healthy): (BTreeSet<u64>, BTreeSet<u64>) = complete
        .iter()
        .partition(|order| options.is_poison(**order));
    assert!(!poisoned.is_empty());
    with_store(&db, async |store| {
        assert_exactly_once(store.as_ref(), &healthy).await;
        orders::assert_settled(store.as_ref()).await;
        let letters = DeadLetters::new(Arc::clone(store))
            .list()
            .await
            .expect("list");
        let parked: BTreeSet<u64> = letters
            .iter()
            .map(|letter| letter.message.key().parse().expect("an order id"))
            .collect();
        assert_eq!(
            parked, poisoned,
            "every poison order, and only those, is parked"
        );
        assert_eq!(letters.len(), poisoned.len(), "one letter per failed join");
        assert!(
            letters
                .iter()
                .all(|letter| letter.message.source() == "composed-event"),
            "each letter holds the joined message"
        );
        store
            .put(orders::HEALED, "flag", vec![1], None)
            .await
            .expect("heal");
    });

    // Replay the dead letters; kill the replay mid-way, then finish it.
    let mut replay = worker(&["replay", db_arg, &poison_arg]);
    std::thread::sleep(Duration::from_millis(rng.u64(150..300)));
    let killed = kill(&mut replay);
    let left = with_store(&db, async |store| {
        store.count("dead-letters").await.unwrap_or(0)
    });
    assert!(
        killed && left > 0,
        "the replay was killed mid-way ({left} letters left)"
    );
    finish(worker(&["replay", db_arg, &poison_arg]));
    with_store(&db, async |store| {
        assert_exactly_once(store.as_ref(), &complete).await;
        orders::assert_settled(store.as_ref()).await;
        assert_eq!(store.count("dead-letters").await.expect("count"), 0);
    });
}
