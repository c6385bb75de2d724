//! Executors in two processes on one SQLite file, SIGKILLed at random moments and restarted: every
//! durable request is executed, none twice at once, none lost, and nothing is left claimed.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus::Event as _;
use event_bus::executor::DurableBus;
use event_bus::store::{SqliteStore, Store};
use event_bus_tests::jobs::{self, Job};

const EVENTS: u32 = 300;

/// The worker processes; SIGKILLed when dropped, so that a failed test leaves none behind.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn worker(db: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_request_worker"))
        .arg(db)
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker")
}

#[test]
fn executors_in_two_processes_killed_at_random_run_every_request_and_never_one_twice_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, log) = (dir.path().join("requests.db"), dir.path().join("log"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // This process publishes (so it registers the listeners too) and only reads afterwards.
    jobs::register(&log).expect("register");
    let store = Arc::new(SqliteStore::open(&db).expect("open"));
    let bus = DurableBus::new(Arc::clone(&store));
    runtime.block_on(async {
        for n in 0..EVENTS {
            Job(n).publish(&bus).await.expect("publish");
        }
    });

    let mut workers = Workers(vec![worker(&db, &log), worker(&db, &log)]);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut kills = 0;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(rng.u64(50..250)));
        let victim = rng.usize(0..2);
        let child = &mut workers.0[victim];
        child.kill().expect("SIGKILL a worker");
        child.wait().expect("reap it");
        kills += 1;
        workers.0[victim] = worker(&db, &log);
    }
    let pending_after_kills = runtime.block_on(bus.pending()).expect("pending");
    let started = Instant::now();
    while runtime.block_on(bus.pending()).expect("pending") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "requests left after a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(workers);

    assert!(
        pending_after_kills > 0,
        "everything ran before the kills were over: they proved nothing"
    );
    assert_eq!(runtime.block_on(bus.dead_count()).expect("dead"), 0);
    let violations = std::fs::read_to_string(log.join("violations")).unwrap_or_default();
    assert!(violations.is_empty(), "run twice at once:\n{violations}");
    let done = std::fs::read_to_string(log.join("done")).expect("the done log");
    let mut runs: HashMap<(String, u32), usize> = HashMap::new();
    for line in done.lines() {
        let (name, n) = line.split_once(' ').expect("a log line");
        *runs
            .entry((name.to_owned(), n.parse().expect("a number")))
            .or_default() += 1;
    }
    for name in jobs::LISTENERS {
        for n in 0..EVENTS {
            assert!(
                runs.contains_key(&(name.to_owned(), n)),
                "{name} never ran for {n}"
            );
        }
    }
    assert_eq!(runs.len(), jobs::LISTENERS.len() * EVENTS as usize);
    // A run whose worker died before recording the outcome runs again: at least once, and at most
    // once more per request in hand at each kill (4 workers).
    let again: usize = runs.values().map(|count| count - 1).sum();
    assert!(
        again <= kills * 4,
        "{again} repeated runs for {kills} kills"
    );
    let left = runtime.block_on(store.scan("requests", "")).expect("scan");
    assert!(left.is_empty(), "requests left: {}", left.len());
}
