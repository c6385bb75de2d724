//! Durable delivery: a SQLite store dropped and reopened mid-stream, and a worker process killed
//! with SIGKILL mid-stream and restarted, both finish with every complete order applied exactly
//! once and nothing left in the inbox.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus::pipeline::Durable;
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
        let durable = Durable::with_store(Arc::clone(&store), orders::pipeline(Arc::clone(&store)));
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
    let durable = Durable::with_store(Arc::clone(&store), orders::pipeline(Arc::clone(&store)));
    let recovered = durable.recover().await.expect("recover");
    assert_eq!(recovered.handled, 20);
    // The producer redelivers a few already-acknowledged messages too.
    for message in first[..10].iter().chain(second) {
        durable.submit(message.clone()).await.expect("submit");
    }
    assert_exactly_once(store.as_ref(), &complete).await;
}

#[test]
fn a_worker_killed_with_sigkill_mid_stream_resumes_and_applies_each_order_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let (orders, seed) = (1500u64, 42u64);
    let worker = env!("CARGO_BIN_EXE_crash_worker");
    let run = || {
        Command::new(worker)
            .arg(&db)
            .arg(orders.to_string())
            .arg(seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the worker")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let effects_so_far = || {
        runtime.block_on(async {
            // A second connection reads while the worker writes (WAL mode).
            let store = SqliteStore::open(&db).expect("open for reading");
            let count = store.count(orders::EFFECTS).await.unwrap_or(0);
            store.close().await;
            count
        })
    };

    let mut kills = 0;
    let mut in_flight_at_kills = 0;
    for threshold in [150, 700] {
        let mut child = run();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill it once it is well into the stream.
        while effects_so_far() < threshold && Instant::now() < deadline {
            if child.try_wait().expect("poll the worker").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = child.try_wait().expect("poll the worker").is_none();
        if killed {
            child.kill().expect("SIGKILL the worker"); // std's kill is SIGKILL on Unix
            kills += 1;
        }
        let status = child.wait().expect("reap the worker");
        assert_eq!(
            status.success(),
            !killed,
            "only a worker left alone completes"
        );
        if killed {
            // The crash left accepted messages in the inbox: only recover() can process them.
            let left = runtime.block_on(async {
                let store = SqliteStore::open(&db).expect("open for reading");
                let left = store.count("inbox").await.unwrap_or(0);
                store.close().await;
                left
            });
            in_flight_at_kills += left;
        }
    }
    assert!(
        kills >= 1,
        "the worker finished before it could be killed; the test proved nothing"
    );

    assert!(
        in_flight_at_kills > 0,
        "the kills caught messages in flight"
    );
    let child = run();
    let output = child.wait_with_output().expect("final run");
    assert!(output.status.success(), "the restarted worker completes");
    assert!(String::from_utf8_lossy(&output.stdout).contains("DONE"));

    let (_, complete) = orders::stream(orders, 0, seed).expect("stream");
    runtime.block_on(async {
        let store = SqliteStore::open(&db).expect("open");
        assert_exactly_once(&store, &complete).await;
    });
}
