//! A CloudEvents receiver process SIGKILLed and restarted at random while senders keep sending
//! (and retrying): every event is acknowledged in the end and applied exactly once (a durable
//! inbox, then idempotency with the effect staged in the same commit; see `ce_receiver`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use event_bus::cloudevents::Sender;
use event_bus::prelude::*;
use event_bus::store::{SqliteStore, Store};

#[event(name = "test.crash.item", key = n)]
#[derive(serde::Serialize, serde::Deserialize)]
struct Item {
    n: u32,
}

const EVENTS: u32 = 240;
const SENDERS: u32 = 4;
const KILLS: usize = 3;

fn start(db: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ce_receiver"))
        .arg(db)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the receiver");
    let stdout = child.stdout.take().expect("its stdout");
    let first = BufReader::new(stdout).lines().next();
    assert!(
        matches!(first, Some(Ok(ref line)) if line == "listening"),
        "the receiver did not start: {first:?}"
    );
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_stream_loses_nothing_and_applies_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("receiver.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = start(&db, port);
    let url = format!("http://127.0.0.1:{port}/");
    let sender = Sender::new(&url)
        .unwrap()
        .source("/crash-test")
        .timeout(Duration::from_secs(2))
        .retries(200, Duration::from_millis(10), Duration::from_millis(200));

    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let sender = sender.clone();
        senders.push(tokio::spawn(async move {
            for n in (s..EVENTS).step_by(SENDERS as usize) {
                let outcome = sender.send(&Item { n }).await;
                assert!(outcome.is_ack(), "event {n}: {outcome:?}");
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..15))).await;
            }
        }));
    }
    let mut mid_stream = 0;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..400))).await;
        mid_stream += usize::from(senders.iter().any(|sender| !sender.is_finished()));
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        child.wait().expect("reap");
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..200))).await;
        child = start(&db, port);
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(
        mid_stream > 0,
        "no kill happened while events were being sent"
    );
    // Every event was acknowledged, so every one is stored; wait until the inbox is drained (a
    // killed run's messages are recovered once their 1 s lease runs out).
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let mut applied = BTreeMap::new();
    for _ in 0..300 {
        let inbox = store.count("inbox").await.unwrap();
        applied.clear();
        for (key, _) in store.scan("applied", "").await.unwrap() {
            let id = key.split('/').next().unwrap_or_default().to_owned();
            *applied.entry(id).or_insert(0u32) += 1;
        }
        if inbox == 0 && applied.len() == EVENTS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().ok();
    child.wait().ok();
    assert_eq!(applied.len(), EVENTS as usize, "every event applied");
    let twice: Vec<_> = applied.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    store.close().await;
}
