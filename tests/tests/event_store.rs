//! The event store: optimistic concurrency (one winner per version, conflicts for the others, a
//! retry loop reaching the right balance), a gapless global order that no reader skips, snapshots
//! equal to full replays (property test), and publication after commit through the outbox, at
//! least once, across a real process that dies right after its commit.

use std::collections::HashSet;
use std::process::Command as Process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::event_store::{EventLog, EventStoreError, ExecuteError, Outbox, Repository};
use event_bus::prelude::*;
use event_bus::store::{Fault, FaultyStore, MemoryStore, Operation, SqliteStore, Store};
use event_bus_tests::bank::{Account, AccountEvent, Command};
use proptest::prelude::*;

/// The tests that listen to `AccountEvent`'s global registry take turns, so that each sees only
/// what its own outbox publishes.
static LISTENING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn accounts(store: Arc<dyn Store>) -> Repository<Account> {
    Repository::new(EventLog::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_on_one_account_one_winner_per_version_and_retries_reach_the_balance() {
    for test_store in event_bus_tests::stores::both() {
        let repository = accounts(Arc::clone(&test_store.store));
        // Round 1: every writer loads version 0 and appends once: exactly one wins.
        let loaded = Arc::new(tokio::sync::Barrier::new(8));
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (repository, loaded) = (repository.clone(), Arc::clone(&loaded));
            writers.spawn(async move {
                let version = repository.load("acct").await.unwrap().version;
                loaded.wait().await;
                repository
                    .log()
                    .append_raw(
                        "account",
                        "acct",
                        version,
                        AccountEvent::NAME,
                        vec![serde_json::json!({"Deposited": {"cents": 1}})],
                    )
                    .await
            });
        }
        let (mut won, mut conflicts) = (0, 0);
        while let Some(outcome) = writers.join_next().await {
            match outcome.unwrap() {
                Ok(_) => won += 1,
                Err(EventStoreError::Conflict { expected, .. }) => {
                    assert_eq!(expected, 0);
                    conflicts += 1;
                }
                Err(other) => panic!("{}: {other}", test_store.name),
            }
        }
        assert_eq!((won, conflicts), (1, 7), "{}", test_store.name);

        // Round 2: 8 writers, 25 deposits each, retrying on conflicts.
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let repository = repository.clone();
            writers.spawn(async move {
                for _ in 0..25 {
                    repository
                        .execute_retrying("acct", Command::Deposit(10), 1_000)
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let loaded = repository.load("acct").await.unwrap();
        assert_eq!(loaded.state.balance, 1 + 8 * 25 * 10, "{}", test_store.name);
        assert_eq!(loaded.version, 1 + 200);
        let versions: Vec<u64> = repository
            .log()
            .read_stream("account", "acct", 0)
            .await
            .unwrap()
            .iter()
            .map(|event| event.version)
            .collect();
        assert_eq!(
            versions,
            (1..=201).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
    }
}

#[tokio::test]
async fn a_refused_command_writes_nothing() {
    let repository = accounts(Arc::new(MemoryStore::new()));
    repository.execute("a", Command::Deposit(5)).await.unwrap();
    let refused = repository.execute("a", Command::Withdraw(6)).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected(overdraft)) if overdraft.balance == 5));
    assert_eq!(repository.load("a").await.unwrap().version, 1);
    assert_eq!(repository.log().head().await.unwrap(), 1);
}

#[tokio::test]
async fn an_append_expecting_a_version_the_stream_does_not_have_conflicts() {
    let log = EventLog::new(Arc::new(MemoryStore::new()));
    let event = || vec![serde_json::json!({"Deposited": {"cents": 1}})];
    log.append_raw("account", "a", 0, "e", event())
        .await
        .unwrap();
    for expected in [0, 2, 5] {
        let outcome = log.append_raw("account", "a", expected, "e", event()).await;
        assert!(
            matches!(outcome, Err(EventStoreError::Conflict { .. })),
            "expected {expected}: {outcome:?}"
        );
    }
    assert_eq!(log.head().await.unwrap(), 1, "nothing written");
    // Stream ids with slashes stay in their own stream.
    log.append_raw("account", "a/b", 0, "e", event())
        .await
        .unwrap();
    assert_eq!(log.read_stream("account", "a", 0).await.unwrap().len(), 1);
}

/// Four writers on four streams and a reader following the global order as they append: the
/// positions are 1..=N without a gap, and the reader, asking each time for what comes after the
/// last position it saw, sees every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_order_has_no_gaps_and_a_following_reader_skips_nothing() {
    for test_store in event_bus_tests::stores::both() {
        let repository = accounts(Arc::clone(&test_store.store));
        let log = repository.log().clone();
        let writing = Arc::new(AtomicU64::new(4));
        let reader = {
            let (log, writing) = (log.clone(), Arc::clone(&writing));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let finished = writing.load(Ordering::SeqCst) == 0;
                    let after = seen.last().copied().unwrap_or(0);
                    let page = log.read_all(after, 7).await.unwrap();
                    if page.is_empty() && finished {
                        return seen;
                    }
                    seen.extend(page.iter().map(|event| event.position));
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..4 {
            let (repository, writing) = (repository.clone(), Arc::clone(&writing));
            writers.spawn(async move {
                for _ in 0..50 {
                    repository
                        .execute(&format!("w{writer}"), Command::Deposit(1))
                        .await
                        .unwrap();
                }
                writing.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let seen = reader.await.unwrap();
        assert_eq!(seen, (1..=200).collect::<Vec<_>>(), "{}", test_store.name);
        assert_eq!(log.head().await.unwrap(), 200);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Whatever the commands and the snapshot interval, loading (snapshot + tail) gives the state
    /// of a full replay, and the state of applying the accepted commands in memory.
    #[test]
    fn a_snapshot_and_its_tail_equal_the_full_replay(
        commands in proptest::collection::vec((any::<bool>(), 1u64..50), 1..120),
        every in 1u64..20,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let repository = accounts(Arc::new(MemoryStore::new())).snapshot_every(every);
            let mut expected = Account::default();
            for (deposit, cents) in commands {
                let command = if deposit { Command::Deposit(cents) } else { Command::Withdraw(cents) };
                if let Ok(events) = event_bus::event_store::Aggregate::handle(&expected, command) {
                    for event in &events {
                        event_bus::event_store::Aggregate::apply(&mut expected, event);
                    }
                }
                let _ = repository.execute("p", command).await;
            }
            let loaded = repository.load("p").await.unwrap();
            let replayed = repository.replay("p").await.unwrap();
            prop_assert_eq!(&loaded, &replayed);
            prop_assert_eq!(&loaded.state, &expected);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_snapshot_of_another_state_version_is_ignored() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let repository = accounts(Arc::clone(&store)).snapshot_every(2);
    for _ in 0..4 {
        repository.execute("s", Command::Deposit(3)).await.unwrap();
    }
    let snapshots = store.scan("es-snapshots", "").await.unwrap();
    assert_eq!(snapshots.len(), 1);
    // A snapshot written by an older shape of the state: ignored, the events replayed.
    store
        .put(
            "es-snapshots",
            &snapshots[0].0,
            br#"{"version":4,"state_version":0,"state":{"balance":999,"events":4}}"#.to_vec(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(repository.load("s").await.unwrap().state.balance, 12);
}

#[tokio::test]
async fn the_outbox_publishes_every_appended_event_once_in_order_and_nothing_that_failed() {
    let _turn = LISTENING.lock().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _listener = AccountEvent::register(move |event: &AccountEvent| {
        sink.lock().unwrap().push(event.clone());
    })
    .guard();
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let log = EventLog::new(Arc::clone(&store));
    let repository = Repository::<Account>::new(log.clone());
    let outbox = Outbox::new(&log).route::<AccountEvent>();
    repository.execute("o", Command::Deposit(1)).await.unwrap();
    store.inject(Operation::Apply, 2, Fault::Fail); // the second append fails
    assert!(repository.execute("o", Command::Deposit(2)).await.is_err());
    repository.execute("o", Command::Deposit(3)).await.unwrap();
    let published = outbox.publish_pending().await.unwrap();
    assert_eq!(published.published, 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            AccountEvent::Deposited { cents: 1 },
            AccountEvent::Deposited { cents: 3 }
        ]
    );
    assert_eq!(outbox.publish_pending().await.unwrap().published, 0, "once");
    // Without a route, entries wait for a publisher that has one.
    repository.execute("o", Command::Deposit(4)).await.unwrap();
    let unrouted = Outbox::new(&log).publish_pending().await.unwrap();
    assert_eq!((unrouted.published, unrouted.unrouted), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_outbox_publishes_right_after_each_append() {
    let _turn = LISTENING.lock().await;
    let count = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&count);
    let _listener = AccountEvent::register(move |_: &AccountEvent| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .guard();
    let log = EventLog::new(Arc::new(MemoryStore::new()));
    let running = Outbox::new(&log)
        .route::<AccountEvent>()
        .start(Duration::from_secs(60));
    let repository = Repository::<Account>::new(log);
    for _ in 0..5 {
        repository
            .execute("live", Command::Deposit(1))
            .await
            .unwrap();
    }
    for _ in 0..2_000 {
        if count.load(Ordering::SeqCst) >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let published = running.shutdown().await;
    assert_eq!(
        published.published, 5,
        "woken by the appends, not the 60 s interval"
    );
}

/// A real process appends events to a SQLite file and aborts right after its last commit: the
/// events are in the log, and an outbox in another process publishes every one of them.
#[test]
fn events_appended_by_a_process_that_died_right_after_the_commit_are_published() {
    let _turn = LISTENING.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let status = Process::new(env!("CARGO_BIN_EXE_event_store_worker"))
        .arg(&db)
        .arg("20")
        .status()
        .expect("run the worker");
    assert!(!status.success(), "the worker aborts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let sink = Arc::clone(&seen);
        let _listener = AccountEvent::register(move |event: &AccountEvent| {
            if let AccountEvent::Deposited { cents } = event {
                sink.lock().unwrap().insert(*cents);
            }
        })
        .guard();
        let log = EventLog::new(Arc::new(SqliteStore::open(&db).unwrap()));
        let loaded = Repository::<Account>::new(log.clone())
            .load("crashing")
            .await
            .unwrap();
        assert_eq!(loaded.version, 20);
        let published = Outbox::new(&log)
            .route::<AccountEvent>()
            .publish_pending()
            .await
            .unwrap();
        assert_eq!(published.published, 20);
        assert_eq!(*seen.lock().unwrap(), (1..=20).collect::<HashSet<u64>>());
    });
}

#[tokio::test]
async fn the_event_store_works_on_postgres() {
    let Some(url) = event_bus_tests::stores::postgres_url() else {
        return;
    };
    let schema = event_bus_tests::stores::PostgresSchema::new(&url).await;
    let repository = accounts(schema.store.clone()).snapshot_every(3);
    for cents in 1..=10 {
        repository
            .execute("pg", Command::Deposit(cents))
            .await
            .unwrap();
    }
    let loaded = repository.load("pg").await.unwrap();
    assert_eq!((loaded.state.balance, loaded.version), (55, 10));
    assert_eq!(loaded, repository.replay("pg").await.unwrap());
    let all = repository.log().read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 10);
    schema.drop_schema().await;
}

fn balances(store: &Arc<dyn Store>) -> impl std::future::Future<Output = Vec<(String, i64)>> {
    let store = Arc::clone(store);
    async move {
        store
            .scan("balances", "")
            .await
            .unwrap()
            .into_iter()
            .map(|(key, value)| (key, serde_json::from_slice(&value).unwrap()))
            .collect()
    }
}

#[tokio::test]
async fn a_projection_catches_up_once_follows_live_and_rebuilds_from_zero() {
    use event_bus::event_store::Projector;
    use event_bus_tests::bank::Balances;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let repository = accounts(Arc::clone(&store));
    repository.execute("a", Command::Deposit(10)).await.unwrap();
    repository.execute("b", Command::Deposit(5)).await.unwrap();
    repository.execute("a", Command::Withdraw(3)).await.unwrap();
    // An event of another type in the log is passed over.
    repository
        .log()
        .append_raw("other", "x", 0, "test.other", vec![serde_json::json!(1)])
        .await
        .unwrap();
    let projector = Projector::new(repository.log(), Balances::default());
    assert_eq!(projector.catch_up().await.unwrap(), 3);
    assert_eq!(projector.position().await.unwrap(), 4);
    assert_eq!(projector.catch_up().await.unwrap(), 0);
    assert_eq!(
        balances(&store).await,
        [("a".to_owned(), 7), ("b".to_owned(), 5)]
    );

    // Live: woken by the appends.
    let running = projector.clone().start(Duration::from_secs(60));
    repository.execute("b", Command::Deposit(1)).await.unwrap();
    for _ in 0..2_000 {
        if projector.position().await.unwrap() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(running.shutdown().await, 1);
    assert_eq!(balances(&store).await[1], ("b".to_owned(), 6));

    // A corrupted read model, rebuilt from zero.
    store
        .put("balances", "a", b"999".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(projector.rebuild().await.unwrap(), 4);
    assert_eq!(
        balances(&store).await,
        [("a".to_owned(), 7), ("b".to_owned(), 6)]
    );
    let applied = store
        .get("balances-meta", "applied")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(applied, b"4");
}

/// Two projectors of one projection racing over the same log: each event is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_projectors_apply_each_event_once() {
    use event_bus::event_store::Projector;
    use event_bus_tests::bank::Balances;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let repository = accounts(Arc::clone(&store));
    for n in 1..=100 {
        repository
            .execute(&format!("r{}", n % 3), Command::Deposit(n))
            .await
            .unwrap();
    }
    // A pause per event makes them overlap.
    let slowed = || Balances {
        pause: Some(Duration::from_micros(500)),
    };
    let projectors: Vec<_> = (0..2)
        .map(|_| Projector::new(repository.log(), slowed()))
        .collect();
    let mut racing = tokio::task::JoinSet::new();
    for projector in projectors {
        racing.spawn(async move { projector.catch_up().await.unwrap() });
    }
    let mut applied = 0;
    while let Some(count) = racing.join_next().await {
        applied += count.unwrap();
    }
    assert_eq!(applied, 100, "each event applied by exactly one of them");
    let total: i64 = balances(&store).await.iter().map(|(_, cents)| cents).sum();
    assert_eq!(total, 5050);
}

/// A projection process SIGKILLed at random moments and restarted: every event applied exactly
/// once (the balances and the count of applied events are exact).
#[test]
fn a_projection_process_killed_at_random_applies_each_event_exactly_once() {
    use event_bus::event_store::Projector;
    use event_bus_tests::bank::Balances;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("projected.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    let repository = accounts(Arc::clone(&store));
    const EVENTS: u64 = 400;
    runtime.block_on(async {
        for n in 1..=EVENTS {
            repository
                .execute(&format!("k{}", n % 5), Command::Deposit(n))
                .await
                .unwrap();
        }
    });
    let spawn = || {
        Process::new(env!("CARGO_BIN_EXE_projection_worker"))
            .arg(&db)
            .spawn()
            .expect("start the projection process")
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let projector = Projector::new(repository.log(), Balances::default());
    let mut kills = 0;
    let mut worker = spawn();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(rng.u64(40..160)));
        worker.kill().expect("SIGKILL");
        worker.wait().expect("reap");
        kills += 1;
        worker = spawn();
    }
    let mid_way = runtime.block_on(projector.position()).unwrap();
    let started = std::time::Instant::now();
    while runtime.block_on(projector.position()).unwrap() < EVENTS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    assert!(
        kills >= 6 && mid_way < EVENTS,
        "the kills landed before the end ({mid_way})"
    );
    runtime.block_on(async {
        let total: i64 = balances(&store).await.iter().map(|(_, cents)| cents).sum();
        assert_eq!(total, (1..=EVENTS as i64).sum::<i64>());
        let applied = store
            .get("balances-meta", "applied")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(applied, EVENTS.to_string().into_bytes());
    });
}

/// Version 1 of a customer event: one name.
#[derive(serde::Deserialize)]
struct CustomerV1 {
    name: String,
}

/// Version 2: the name split.
#[event(name = "test.customer.registered", version = 2)]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Customer {
    first: String,
    last: String,
}

impl event_bus::event_store::Upcast for Customer {
    type Previous = CustomerV1;

    fn upcast(previous: CustomerV1) -> Self {
        let (first, last) = previous
            .name
            .split_once(' ')
            .unwrap_or((&previous.name, ""));
        Customer {
            first: first.to_owned(),
            last: last.to_owned(),
        }
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Customers {
    names: Vec<String>,
}

impl event_bus::event_store::Aggregate for Customers {
    const TYPE: &'static str = "customers";
    type Command = Customer;
    type Event = Customer;
    type Error = std::convert::Infallible;

    fn handle(&self, command: Customer) -> Result<Vec<Customer>, Self::Error> {
        Ok(vec![command])
    }

    fn apply(&mut self, event: &Customer) {
        self.names.push(format!("{}, {}", event.last, event.first));
    }
}

#[tokio::test]
async fn events_appended_at_version_1_are_read_as_version_2_through_the_upcaster() {
    let log = EventLog::new(Arc::new(MemoryStore::new()));
    // Appended by an older build of the program: version 1.
    let old = log
        .append_raw(
            "customers",
            "all",
            0,
            Customer::NAME,
            vec![serde_json::json!({"name": "Ada Lovelace"})],
        )
        .await
        .unwrap();
    assert_eq!(old[0].event_version, 1);
    assert!(
        old[0].decode_event::<Customer>().is_err(),
        "no upcaster yet"
    );
    event_bus::event_store::register_upcaster::<Customer>();
    assert_eq!(
        old[0].decode_event::<Customer>().unwrap(),
        Customer {
            first: "Ada".into(),
            last: "Lovelace".into()
        }
    );
    // The current build appends version 2 and reads both.
    let customers = Repository::<Customers>::new(log.clone());
    let new = customers
        .execute(
            "all",
            Customer {
                first: "Alan".into(),
                last: "Turing".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(new[0].event_version, 2);
    assert_eq!(
        customers.load("all").await.unwrap().state.names,
        ["Lovelace, Ada", "Turing, Alan"]
    );
}

// Regressions from a fault hunt.

/// After an interrupted rebuild, projectors racing to finish its clearing apply each event once:
/// a clear that another projector already finished stops instead of resetting the position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_projectors_after_an_interrupted_rebuild_apply_each_event_once() {
    use event_bus::event_store::Projector;
    use event_bus_tests::bank::Balances;
    for trial in 0..10 {
        let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let store: Arc<dyn Store> = faulty.clone();
        let repository = accounts(Arc::clone(&store));
        for n in 1..=10 {
            repository.execute("x", Command::Deposit(n)).await.unwrap();
        }
        let projector = Projector::new(repository.log(), Balances::default());
        assert_eq!(projector.catch_up().await.unwrap(), 10);
        // A rebuild whose clearing fails: the position record says "clearing".
        let scans = faulty.calls(Operation::Scan);
        faulty.inject(Operation::Scan, scans + 1, Fault::Fail);
        assert!(projector.rebuild().await.is_err(), "trial {trial}");
        // The first clearing write after it is delayed: whoever makes it finishes last.
        let applies = faulty.calls(Operation::Apply);
        faulty.inject(
            Operation::Apply,
            applies + 1,
            Fault::Delay(Duration::from_millis(30)),
        );
        faulty.slow_down(Duration::from_micros(100));
        let mut racing = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let projector = projector.clone();
            racing.spawn(async move { projector.catch_up().await.unwrap() });
        }
        while racing.join_next().await.is_some() {}
        faulty.heal();
        let applied = store
            .get("balances-meta", "applied")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            applied, b"10",
            "trial {trial}: each event once after the rebuild"
        );
        assert_eq!(
            balances(&store).await,
            [("x".to_owned(), 55)],
            "trial {trial}"
        );
        assert_eq!(projector.position().await.unwrap(), 10);
    }
}

#[tokio::test]
async fn an_outbox_run_stops_at_a_failed_entry_to_keep_log_order() {
    let _turn = LISTENING.lock().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _listener = AccountEvent::register(move |event: &AccountEvent| {
        if let AccountEvent::Deposited { cents } = event {
            sink.lock().unwrap().push(*cents);
        }
    })
    .guard();
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let log = EventLog::new(Arc::clone(&store));
    let repository = Repository::<Account>::new(log.clone());
    for cents in 1..=3 {
        repository
            .execute("ordered", Command::Deposit(cents))
            .await
            .unwrap();
    }
    let outbox = Outbox::new(&log).route::<AccountEvent>();
    let claims = store.calls(Operation::CompareAndSwap);
    store.inject(Operation::CompareAndSwap, claims + 1, Fault::Fail); // the first entry's claim
    let first = outbox.publish_pending().await.unwrap();
    assert_eq!((first.published, first.failed), (0, 1));
    assert_eq!(outbox.publish_pending().await.unwrap().published, 3);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Gauge {
    value: f64,
}

#[event(name = "test.gauge.moved")]
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Moved(f64);

impl event_bus::event_store::Aggregate for Gauge {
    const TYPE: &'static str = "gauge";
    type Command = f64;
    type Event = Moved;
    type Error = std::convert::Infallible;

    fn handle(&self, x: f64) -> Result<Vec<Moved>, Self::Error> {
        Ok(vec![Moved(x)])
    }

    fn apply(&mut self, event: &Moved) {
        self.value = self.value * 1.1 + event.0;
    }
}

/// Floating-point state survives a snapshot bit for bit: loading equals replaying.
#[tokio::test]
async fn a_snapshot_of_floating_point_state_equals_the_replay() {
    let gauges =
        Repository::<Gauge>::new(EventLog::new(Arc::new(MemoryStore::new()))).snapshot_every(2);
    for x in [1.384_226_950_341_025_4e72, 0.0, 0.1, 1e-300, 3.3] {
        gauges.execute("g", x).await.unwrap();
    }
    assert_eq!(
        gauges.load("g").await.unwrap(),
        gauges.replay("g").await.unwrap()
    );
}

#[tokio::test]
async fn logs_under_different_prefixes_keep_their_own_projection_positions() {
    use event_bus::event_store::Projector;
    use event_bus_tests::bank::Balances;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = EventLog::new(Arc::clone(&store)).namespace("es-streams.");
    let second = EventLog::new(Arc::clone(&store)).namespace("es-projections.");
    Repository::<Account>::new(first.clone())
        .execute("a", Command::Deposit(1))
        .await
        .unwrap();
    Repository::<Account>::new(second.clone())
        .execute("a", Command::Deposit(2))
        .await
        .unwrap();
    assert_eq!(
        Projector::new(&first, Balances::default())
            .catch_up()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        Projector::new(&second, Balances::default())
            .catch_up()
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_impossible_expected_version_is_a_conflict_not_a_panic() {
    let log = EventLog::new(Arc::new(MemoryStore::new()));
    let appended = log
        .append_raw("a", "1", u64::MAX, "e", vec![serde_json::json!(1)])
        .await;
    assert!(matches!(appended, Err(EventStoreError::Conflict { .. })));
}

/// A projection whose `apply` waits at two gates, before and after reading the model, to
/// interleave projectors by hand.
struct Gated {
    before: Arc<tokio::sync::Semaphore>,
    after: Arc<tokio::sync::Semaphore>,
    reading: Arc<tokio::sync::Notify>,
    read: Arc<tokio::sync::Notify>,
}

impl Gated {
    fn new(before: usize, after: usize) -> Self {
        Gated {
            before: Arc::new(tokio::sync::Semaphore::new(before)),
            after: Arc::new(tokio::sync::Semaphore::new(after)),
            reading: Arc::new(tokio::sync::Notify::new()),
            read: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn handles(&self) -> Self {
        Gated {
            before: Arc::clone(&self.before),
            after: Arc::clone(&self.after),
            reading: Arc::clone(&self.reading),
            read: Arc::clone(&self.read),
        }
    }
}

impl event_bus::event_store::Projection for Gated {
    const NAME: &'static str = "gated";
    type Event = AccountEvent;

    async fn apply(
        &self,
        _: AccountEvent,
        _: &event_bus::event_store::RecordedEvent,
        staged: &mut event_bus::event_store::Staged<'_>,
    ) -> Result<(), event_bus::BoxError> {
        self.reading.notify_one();
        drop(self.before.acquire().await?);
        let count: u64 = staged.get_json("gated", "count").await?.unwrap_or(0);
        self.read.notify_one();
        drop(self.after.acquire().await?);
        staged.put_json("gated", "count", &(count + 1))
    }

    fn namespaces(&self) -> Vec<String> {
        vec!["gated".into()]
    }
}

/// A projector that read its position before a rebuild cannot commit after it, even when the
/// position record's bytes would look the same as before (the rebuild's id travels with every
/// position written after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_that_read_before_a_rebuild_cannot_commit_after_it() {
    use event_bus::event_store::Projector;
    use tokio::sync::Semaphore;
    const OPEN: usize = Semaphore::MAX_PERMITS;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let repository = accounts(Arc::clone(&store));
    let free = Projector::new(repository.log(), Gated::new(OPEN, OPEN));
    free.rebuild().await.unwrap(); // an empty log: "rebuilt, at 0"
    for cents in 1..=3 {
        repository
            .execute("g", Command::Deposit(cents))
            .await
            .unwrap();
    }
    // X reads the position, and waits before reading the model.
    let x = Gated::new(0, 0);
    let x_gates = x.handles();
    let x = Projector::new(repository.log(), x);
    let x_run = tokio::spawn(async move { x.catch_up().await.unwrap() });
    x_gates.reading.notified().await;
    // Another projector applies everything; X then reads the model (count 3) and waits.
    assert_eq!(free.catch_up().await.unwrap(), 3);
    x_gates.before.add_permits(OPEN);
    x_gates.read.notified().await;
    // A rebuild clears the model, writes "rebuilt, at 0", and waits inside its first apply.
    let y = Gated::new(OPEN, 0);
    let y_gates = y.handles();
    let y = Projector::new(repository.log(), y);
    let y_run = tokio::spawn(async move { y.rebuild().await.unwrap() });
    y_gates.read.notified().await;
    // X commits what it decided from the model it read before the rebuild: refused.
    x_gates.after.add_permits(OPEN);
    x_run.await.unwrap();
    y_gates.after.add_permits(OPEN);
    y_run.await.unwrap();
    let count = store.get("gated", "count").await.unwrap().unwrap();
    assert_eq!(count, b"3", "each event once");
}
