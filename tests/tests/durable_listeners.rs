//! Durable listeners: `publish` stores one request per listener atomically; executors run each on
//! its own with backoff, turn requests that keep failing into dead requests (listed, revived,
//! deleted), never run one request twice at once, and give back what is in hand at shutdown.
//!
//! Each test has its own event type: `publish` stores a request for every durable listener of the
//! type, program-wide.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_bus::executor::{Backoff, DurableBus, ExecutorError, Schedule};
use event_bus::pipeline::{Jitter, Quarantine};
use event_bus::prelude::*;
use event_bus::reporting::{self, Origin, Reported};
use event_bus::store::{Fault, FaultyStore, MemoryStore, Operation, SqliteStore, Store};
use serde::{Deserialize, Serialize};

/// What the error reporter saw: origin, message, panic, backtrace present.
type Seen = (Origin, String, bool, bool);

/// The reports for the durable listener `name`. The reporter is process-wide: one, installed once,
/// records every report, and each test reads those of its own listeners.
fn reported(name: &str) -> Vec<Seen> {
    static REPORTS: Mutex<Vec<(String, Seen)>> = Mutex::new(Vec::new());
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        reporting::install_panic_hook();
        reporting::set_error_reporter(|failure: &Reported<'_>| {
            let seen = (
                failure.origin(),
                failure.to_string(),
                failure.is_panic(),
                failure.backtrace().is_some(),
            );
            REPORTS
                .lock()
                .unwrap()
                .push((failure.name().to_owned(), seen));
        });
    });
    let reports = REPORTS.lock().unwrap();
    reports
        .iter()
        .filter(|(listener, _)| listener == name)
        .map(|(_, seen)| seen.clone())
        .collect()
}

fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[event]
#[derive(Serialize, Deserialize)]
struct Flaky(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_failing_three_times_runs_four_times_with_growing_delays_the_others_once() {
    let runs = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = Arc::clone(&runs);
    Flaky::durable("flaky-three-times", move |_: Flaky| {
        let seen = Arc::clone(&seen);
        async move {
            let mut runs = seen.lock().unwrap();
            runs.push(Instant::now());
            if runs.len() <= 3 {
                Err(std::io::Error::other(format!("failure {}", runs.len())))
            } else {
                Ok(())
            }
        }
    })
    .backoff(
        Backoff::new()
            .base_delay(Duration::from_millis(40))
            .jitter(Jitter::None),
    )
    .register()
    .unwrap();
    let steady = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&steady);
    Flaky::durable("flaky-steady", move |_: Flaky| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .register()
    .unwrap();

    let bus = DurableBus::new(memory());
    let running = bus.executor().interval(Duration::from_millis(2)).start();
    assert_eq!(Flaky(1).publish(&bus).await.unwrap().requests(), 2);
    until("the flaky listener to succeed", async || {
        bus.pending().await.unwrap() == 0
    })
    .await;
    let executed = running.shutdown(Duration::from_secs(5)).await;

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 4, "three failures, then a success");
    assert_eq!(
        steady.load(Ordering::SeqCst),
        1,
        "the other listener ran once"
    );
    let gaps: Vec<Duration> = runs.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // 40 ms, 80 ms, 160 ms (plus scheduling): each at least its backoff (the store keeps due
    // times in whole milliseconds), each longer than the last.
    for (gap, backoff) in gaps.iter().zip([40, 80, 160]) {
        assert!(*gap >= Duration::from_millis(backoff - 2), "{gaps:?}");
    }
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "{gaps:?}");
    assert_eq!(
        (executed.succeeded, executed.retried, executed.dead),
        (2, 3, 0)
    );
}

#[event]
#[derive(Serialize, Deserialize)]
struct Doomed {
    id: u32,
}

#[tokio::test]
async fn a_listener_failing_forever_becomes_a_dead_request_and_runs_again_once_revived() {
    let healed = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let (flag, counter) = (Arc::clone(&healed), Arc::clone(&calls));
    Doomed::durable("doomed", move |doomed: Doomed| {
        counter.fetch_add(1, Ordering::SeqCst);
        let healed = flag.load(Ordering::SeqCst);
        async move {
            if healed {
                Ok(())
            } else {
                Err(format!("cannot handle {}", doomed.id))
            }
        }
    })
    .max_errors(3)
    .backoff(Backoff::new().base_delay(Duration::ZERO))
    .register()
    .unwrap();

    let bus = DurableBus::new(memory());
    let published = Doomed { id: 9 }.publish(&bus).await.unwrap();
    let executor = bus.executor();
    let mut dead = 0;
    for _ in 0..3 {
        let executed = executor.run_once().await.unwrap();
        dead += executed.dead;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(dead, 1);
    assert_eq!(bus.pending().await.unwrap(), 0);
    assert_eq!(bus.dead_count().await.unwrap(), 1);
    assert_eq!(
        executor.run_once().await.unwrap().succeeded,
        0,
        "dead: not run"
    );

    let requests = bus.dead_requests().await.unwrap();
    let request = &requests[0];
    assert_eq!(request.listener(), "doomed");
    assert_eq!(request.event(), Doomed::NAME);
    assert_eq!(request.id(), published.id());
    assert_eq!(request.attempts(), 3);
    assert_eq!(request.error(), Some("cannot handle 9"));
    assert!(!request.panicked());
    assert!(request.last_failure().is_some());
    assert_eq!(request.decode::<Doomed>().unwrap().id, 9);
    let shown = bus.dead_request(request.key()).await.unwrap().unwrap();
    assert_eq!(shown.attempts(), 3);

    healed.store(true, Ordering::SeqCst);
    assert!(bus.revive(request.key()).await.unwrap());
    assert!(!bus.revive(request.key()).await.unwrap(), "already revived");
    assert_eq!(bus.dead_count().await.unwrap(), 0);
    assert_eq!(bus.requests().await.unwrap()[0].attempts(), 0);
    assert_eq!(executor.run_once().await.unwrap().succeeded, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(bus.pending().await.unwrap(), 0);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Discarded;

#[tokio::test]
async fn dead_requests_can_be_deleted() {
    Discarded::durable("discarded", |_: Discarded| async { Err("no") })
        .max_errors(1)
        .register()
        .unwrap();
    let bus = DurableBus::new(memory());
    Discarded.publish(&bus).await.unwrap();
    assert_eq!(bus.executor().run_once().await.unwrap().dead, 1);
    let key = bus.dead_requests().await.unwrap()[0].key().to_owned();
    assert!(bus.delete_dead(&key).await.unwrap());
    assert!(!bus.delete_dead(&key).await.unwrap());
    assert!(!bus.revive(&key).await.unwrap());
    assert_eq!(bus.dead_count().await.unwrap(), 0);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Panicky(u32);

#[tokio::test]
async fn panics_are_isolated_reported_with_a_backtrace_and_count_as_failures() {
    assert!(reported("panicky").is_empty()); // installs the reporter and the panic hook
    let others = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&others);
    async fn explode(event: Panicky) {
        panic!("listener exploded on {}", event.0);
    }
    Panicky::durable("panicky", explode)
        .max_errors(2)
        .backoff(Backoff::new().base_delay(Duration::ZERO))
        .register()
        .unwrap();
    Panicky::durable("panicky-neighbour", move |_: Panicky| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .register()
    .unwrap();

    let bus = DurableBus::new(memory());
    Panicky(4).publish(&bus).await.unwrap();
    let executor = bus.executor();
    let first = executor.run_once().await.unwrap();
    assert_eq!((first.succeeded, first.retried), (1, 1));
    let second = executor.run_once().await.unwrap();
    assert_eq!(second.dead, 1);
    assert_eq!(
        others.load(Ordering::SeqCst),
        1,
        "the neighbour is not re-run"
    );

    let seen = reported("panicky");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, Origin::Request);
    assert_eq!(seen[1].0, Origin::DeadRequest);
    for (_, message, panic, backtrace) in &seen {
        assert_eq!(message, "listener exploded on 4");
        assert!(*panic && *backtrace);
    }
    let dead = &bus.dead_requests().await.unwrap()[0];
    assert!(dead.panicked());
    assert_eq!(dead.error(), Some("listener exploded on 4"));
}

/// Serialized under one field name, read under another: a stored request that no longer decodes.
#[event]
#[derive(Serialize, Deserialize)]
struct Renamed {
    #[serde(rename(serialize = "old", deserialize = "new"))]
    value: u32,
}

#[tokio::test]
async fn a_request_whose_event_no_longer_decodes_is_dead_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    Renamed::durable("renamed", move |_: Renamed| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    Renamed { value: 1 }.publish(&bus).await.unwrap();
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!((executed.dead, executed.retried), (1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let dead = &bus.dead_requests().await.unwrap()[0];
    assert!(
        dead.error().unwrap().contains("cannot decode"),
        "{:?}",
        dead.error()
    );
}

#[event]
#[derive(Serialize, Deserialize)]
struct Ranked(u32);

#[tokio::test]
async fn requests_run_by_priority_then_age() {
    let order = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [("ranked-low", 10), ("ranked-high", 90), ("ranked-mid", 50)] {
        let order = Arc::clone(&order);
        Ranked::durable(name, move |event: Ranked| {
            order.lock().unwrap().push(format!("{name}:{}", event.0));
            async {}
        })
        .priority(priority)
        .register()
        .unwrap();
    }
    let bus = DurableBus::new(memory());
    Ranked(1).publish(&bus).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await; // a later publication time
    Ranked(2).publish(&bus).await.unwrap();
    let executed = bus
        .executor()
        .schedule(Schedule::Cooperative)
        .run_once()
        .await
        .unwrap();
    assert_eq!(executed.succeeded, 6);
    assert_eq!(
        *order.lock().unwrap(),
        [
            "ranked-high:1",
            "ranked-high:2",
            "ranked-mid:1",
            "ranked-mid:2",
            "ranked-low:1",
            "ranked-low:2"
        ]
    );
}

#[event]
#[derive(Serialize, Deserialize)]
struct Hammered(u32);

/// Two executors (four workers each) on one SQLite file: each request runs exactly once here (no
/// failures, no crash), and never twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_sharing_a_store_never_run_a_request_twice_at_once() {
    let running_now = Arc::new(Mutex::new(HashSet::<(String, u32)>::new()));
    let done = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    let overlaps = Arc::new(AtomicUsize::new(0));
    for name in ["hammered-a", "hammered-b"] {
        let (running_now, done, overlaps) = (
            Arc::clone(&running_now),
            Arc::clone(&done),
            Arc::clone(&overlaps),
        );
        Hammered::durable(name, move |event: Hammered| {
            let (running_now, done, overlaps) = (
                Arc::clone(&running_now),
                Arc::clone(&done),
                Arc::clone(&overlaps),
            );
            async move {
                let id = (name.to_owned(), event.0);
                if !running_now.lock().unwrap().insert(id.clone()) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
                running_now.lock().unwrap().remove(&id);
                done.lock().unwrap().push(id);
            }
        })
        .register()
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.db");
    let first = DurableBus::new(Arc::new(SqliteStore::open(&path).unwrap()));
    let second = DurableBus::new(Arc::new(SqliteStore::open(&path).unwrap()));
    let executors = [
        first
            .executor()
            .interval(Duration::from_millis(5))
            .batch(20)
            .start(),
        second
            .executor()
            .interval(Duration::from_millis(5))
            .batch(20)
            .start(),
    ];
    const EVENTS: u32 = 150;
    for n in 0..EVENTS {
        Hammered(n)
            .publish(if n % 2 == 0 { &first } else { &second })
            .await
            .unwrap();
    }
    until("every request to run", async || {
        first.pending().await.unwrap() == 0
    })
    .await;
    let mut succeeded = 0;
    for executor in executors {
        succeeded += executor.shutdown(Duration::from_secs(5)).await.succeeded;
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    let mut done = done.lock().unwrap().clone();
    assert_eq!(succeeded, done.len());
    done.sort();
    let unique: HashSet<_> = done.iter().cloned().collect();
    assert_eq!(done.len(), unique.len(), "a request ran twice");
    assert_eq!(unique.len(), 2 * EVENTS as usize);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Slow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_what_does_not_finish_in_time_for_another_executor() {
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(AtomicU32::new(0));
    let (gate, counter) = (Arc::clone(&release), Arc::clone(&started));
    Slow::durable("slow", move |_: Slow| {
        counter.fetch_add(1, Ordering::SeqCst);
        let gate = Arc::clone(&gate);
        async move { gate.notified().await }
    })
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    Slow.publish(&bus).await.unwrap();
    let running = bus.executor().interval(Duration::from_millis(2)).start();
    until("the listener to start", async || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    let executed = running.shutdown(Duration::from_millis(50)).await;
    assert_eq!((executed.released, executed.succeeded), (1, 0));
    assert_eq!(bus.pending().await.unwrap(), 1, "given back, not lost");

    // Released at once (not after the 30 s lease): another executor takes it now.
    let next = bus.executor().interval(Duration::from_millis(2)).start();
    until("the listener to start again", async || {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    release.notify_waiters();
    until("the request to finish", async || {
        bus.pending().await.unwrap() == 0
    })
    .await;
    assert_eq!(next.shutdown(Duration::from_secs(5)).await.succeeded, 1);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Finishing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_listeners_finish_within_the_grace_period() {
    let started = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&started);
    Finishing::durable("finishing", move |_: Finishing| {
        counter.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100))
    })
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    let running = bus.executor().interval(Duration::from_millis(2)).start();
    Finishing.publish(&bus).await.unwrap();
    until("the listener to start", async || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    let executed = running.shutdown(Duration::from_secs(10)).await;
    assert_eq!((executed.succeeded, executed.released), (1, 0));
    assert_eq!(bus.pending().await.unwrap(), 0);
}

#[event]
#[derive(Serialize, Deserialize)]
struct OneAtATime(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cooperative_schedule_runs_one_request_at_a_time() {
    let now = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let (now_c, most_c, done_c) = (Arc::clone(&now), Arc::clone(&most), Arc::clone(&done));
    OneAtATime::durable("one-at-a-time", move |_: OneAtATime| {
        let (now, most, done) = (Arc::clone(&now_c), Arc::clone(&most_c), Arc::clone(&done_c));
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    for n in 0..20 {
        OneAtATime(n).publish(&bus).await.unwrap();
    }
    let running = bus
        .executor()
        .workers(8)
        .batch(7)
        .interval(Duration::from_millis(2))
        .schedule(Schedule::Cooperative)
        .start();
    until("every request to run", async || {
        done.load(Ordering::SeqCst) == 20
    })
    .await;
    assert_eq!(running.shutdown(Duration::from_secs(5)).await.succeeded, 20);
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Orphaned;

#[tokio::test]
async fn requests_of_a_listener_this_process_does_not_have_are_left_alone() {
    let listener = Orphaned::durable("orphaned", |_: Orphaned| async {})
        .register()
        .unwrap();
    let bus = DurableBus::new(memory());
    Orphaned.publish(&bus).await.unwrap();
    assert!(listener.unregister());
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!((executed.unknown, executed.succeeded), (1, 0));
    assert_eq!(
        bus.pending().await.unwrap(),
        1,
        "kept for a process that has the listener"
    );
    assert_eq!(Orphaned.publish(&bus).await.unwrap().requests(), 0);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Atomic;

#[tokio::test]
async fn publish_stores_every_request_or_none() {
    Atomic::durable("atomic-a", |_: Atomic| async {})
        .register()
        .unwrap();
    Atomic::durable("atomic-b", |_: Atomic| async {})
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    store.inject(Operation::Apply, 1, Fault::Fail);
    assert!(matches!(
        Atomic.publish(&bus).await,
        Err(ExecutorError::Store(_))
    ));
    assert_eq!(bus.pending().await.unwrap(), 0);
    assert_eq!(Atomic.publish(&bus).await.unwrap().requests(), 2);
    assert_eq!(bus.pending().await.unwrap(), 2);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Interrupted(u32);

/// A store failure when recording an outcome loses nothing: the request runs again.
#[tokio::test]
async fn an_outcome_the_store_failed_to_record_runs_again() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    Interrupted::durable("interrupted", move |_: Interrupted| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .register()
    .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    Interrupted(1).publish(&bus).await.unwrap();
    // The publish was apply #1; the success's removal is apply #2.
    store.inject(Operation::Apply, 2, Fault::Fail);
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!(executed.interrupted, 1);
    assert_eq!(bus.pending().await.unwrap(), 1);
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!(
        executed.succeeded, 1,
        "released after the failed write, so run again at once"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(bus.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn unreadable_requests_are_quarantined() {
    let store = memory();
    let bus = DurableBus::new(Arc::clone(&store));
    store
        .put(
            "requests",
            "050/0000000000001/x/y",
            b"free\nnot json".to_vec(),
            None,
        )
        .await
        .unwrap();
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!(executed.quarantined, 1);
    assert_eq!(bus.pending().await.unwrap(), 0);
    assert_eq!(Quarantine::new(store).count().await.unwrap(), 1);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Named;

#[test]
fn names_are_unique_and_printable() {
    Named::durable("named", |_: Named| async {})
        .register()
        .unwrap();
    assert!(matches!(
        Named::durable("named", |_: Named| async {}).register(),
        Err(ExecutorError::DuplicateListener(name)) if name == "named"
    ));
    assert!(matches!(
        Named::durable("", |_: Named| async {}).register(),
        Err(ExecutorError::InvalidName(_))
    ));
    assert!(matches!(
        Named::durable("line\nbreak", |_: Named| async {}).register(),
        Err(ExecutorError::InvalidName(_))
    ));
}

#[event]
#[derive(Serialize, Deserialize)]
struct Portable(u32);

/// The lifecycle on a given store: requests with retries, a dead request revived, and two
/// executors sharing the store running each request once.
async fn lifecycle_on(store: Arc<dyn Store>, name: &str) {
    let bus = DurableBus::new(store);
    for n in 0..40 {
        Portable(n).publish(&bus).await.unwrap();
    }
    let executors = [
        bus.executor().interval(Duration::from_millis(2)).start(),
        bus.executor().interval(Duration::from_millis(2)).start(),
    ];
    until("the requests to settle", async || {
        bus.pending().await.unwrap() == 0
    })
    .await;
    let mut executed = event_bus::executor::Executed::default();
    for executor in executors {
        let run = executor.shutdown(Duration::from_secs(5)).await;
        executed.succeeded += run.succeeded;
        executed.dead += run.dead;
    }
    // `n % 10 == 3` fails twice then succeeds; `n == 7` always fails (max 3 errors).
    assert_eq!((executed.succeeded, executed.dead), (39, 1), "{name}");
    let dead = bus.dead_requests().await.unwrap();
    assert_eq!(dead.len(), 1, "{name}");
    assert_eq!(dead[0].decode::<Portable>().unwrap().0, 7, "{name}");
    assert_eq!(dead[0].attempts(), 3, "{name}");
    assert!(bus.revive(dead[0].key()).await.unwrap(), "{name}");
    assert_eq!(
        bus.executor().run_once().await.unwrap().retried,
        1,
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_lifecycle_holds_on_every_store() {
    let attempts = Arc::new(Mutex::new(std::collections::HashMap::<u32, u32>::new()));
    let seen = Arc::clone(&attempts);
    Portable::durable("portable", move |event: Portable| {
        let attempt = {
            let mut attempts = seen.lock().unwrap();
            let attempt = attempts.entry(event.0).or_default();
            *attempt += 1;
            *attempt
        };
        async move {
            match event.0 {
                7 => Err("always".to_owned()),
                n if n % 10 == 3 && attempt % 3 != 0 => Err(format!("attempt {attempt}")),
                _ => Ok(()),
            }
        }
    })
    .max_errors(3)
    .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
    .register()
    .unwrap();
    for store in event_bus_tests::stores::both() {
        attempts.lock().unwrap().clear();
        lifecycle_on(store.store, store.name).await;
    }
    if let Some(url) = event_bus_tests::stores::postgres_url() {
        let schema = event_bus_tests::stores::PostgresSchema::new(&url).await;
        attempts.lock().unwrap().clear();
        lifecycle_on(schema.store.clone(), "postgres").await;
        schema.drop_schema().await;
    }
}

// Regressions from a fault hunt.

#[event]
#[derive(Serialize, Deserialize)]
struct Burst(u32);

#[tokio::test]
async fn requests_published_in_the_same_millisecond_run_in_publication_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    Burst::durable("burst", move |event: Burst| {
        seen.lock().unwrap().push(event.0);
        async {}
    })
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    for n in 0..50 {
        Burst(n).publish(&bus).await.unwrap();
    }
    let executor = bus.executor().schedule(Schedule::Cooperative);
    assert_eq!(executor.run_once().await.unwrap().succeeded, 50);
    assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
}

#[event]
#[derive(Serialize, Deserialize)]
struct Stuck(u32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_never_finishes_times_out_instead_of_holding_its_executor() {
    let finished = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&finished);
    Stuck::durable("stuck-forever", |_: Stuck| std::future::pending::<()>())
        .priority(90)
        .timeout(Duration::from_millis(30))
        .max_errors(1)
        .register()
        .unwrap();
    Stuck::durable("stuck-neighbour", move |_: Stuck| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    })
    .priority(10)
    .register()
    .unwrap();
    let bus = DurableBus::new(memory());
    Stuck(1).publish(&bus).await.unwrap();
    let running = bus
        .executor()
        .schedule(Schedule::Cooperative)
        .interval(Duration::from_millis(2))
        .start();
    until("the neighbour to run after the stuck one", async || {
        finished.load(Ordering::SeqCst) == 1
    })
    .await;
    let executed = running.shutdown(Duration::from_secs(5)).await;
    assert_eq!((executed.succeeded, executed.dead), (1, 1));
    let dead = &bus.dead_requests().await.unwrap()[0];
    assert_eq!(dead.error(), Some("timed out after 30ms"));
}

#[event]
#[derive(Serialize, Deserialize)]
struct DeadOnce;

#[tokio::test]
async fn a_dead_request_is_reported_once_even_when_its_first_write_fails() {
    assert!(reported("dead-once").is_empty()); // installs the reporter
    DeadOnce::durable("dead-once", |_: DeadOnce| async { Err("no") })
        .max_errors(1)
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    DeadOnce.publish(&bus).await.unwrap();
    store.inject(Operation::Apply, 2, Fault::Fail); // the dead request's write
    assert_eq!(bus.executor().run_once().await.unwrap().interrupted, 1);
    assert!(
        reported("dead-once").is_empty(),
        "not dead yet: nothing written"
    );
    assert_eq!(bus.executor().run_once().await.unwrap().dead, 1);
    assert_eq!(bus.dead_count().await.unwrap(), 1);
    let reports = reported("dead-once");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].0, Origin::DeadRequest);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Ambiguous;

/// A claim whose write landed but reported an error is released at once, not left for its lease.
#[tokio::test]
async fn a_claim_written_despite_an_error_is_released() {
    Ambiguous::durable("ambiguous", |_: Ambiguous| async {})
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    Ambiguous.publish(&bus).await.unwrap();
    store.inject(Operation::CompareAndSwap, 1, Fault::FailAfter);
    assert_eq!(bus.executor().run_once().await.unwrap().interrupted, 1);
    until("the claim to be released", async || {
        let records = store.scan("requests", "").await.unwrap();
        records.len() == 1 && records[0].1.starts_with(b"free\n")
    })
    .await;
    assert_eq!(bus.executor().run_once().await.unwrap().succeeded, 1);
}

#[event]
#[derive(Serialize, Deserialize)]
struct Hung;

/// A store that stops answering cannot keep `shutdown` from returning.
#[tokio::test(start_paused = true)]
async fn shutdown_returns_even_when_the_store_hangs() {
    Hung::durable("hung", |_: Hung| async {})
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    Hung.publish(&bus).await.unwrap();
    store.inject(Operation::Apply, 2, Fault::Hang); // the success's removal never completes
    let running = bus.executor().interval(Duration::from_millis(5)).start();
    until("the commit to hang", async || {
        store.calls(Operation::Apply) == 2
    })
    .await;
    let executed = running.shutdown(Duration::from_millis(100)).await;
    assert_eq!(executed.released, 1);
}

/// An event whose `Deserialize` panics.
#[event]
#[derive(Serialize)]
struct PanickyDecode(u32);

impl<'de> Deserialize<'de> for PanickyDecode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("this type cannot be read back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_is_a_failure_of_the_request_not_of_the_executor() {
    PanickyDecode::durable("panicky-decode", |_: PanickyDecode| async {})
        .max_errors(2)
        .backoff(Backoff::new().base_delay(Duration::ZERO))
        .register()
        .unwrap();
    let bus = DurableBus::new(memory());
    PanickyDecode(1).publish(&bus).await.unwrap();
    let running = bus
        .executor()
        .schedule(Schedule::Cooperative)
        .interval(Duration::from_millis(2))
        .start();
    until("the request to be dead", async || {
        bus.dead_count().await.unwrap() == 1
    })
    .await;
    let executed = running.shutdown(Duration::from_secs(5)).await;
    assert_eq!((executed.retried, executed.dead), (1, 1));
    assert!(bus.dead_requests().await.unwrap()[0].panicked());
}

#[event]
#[derive(Serialize, Deserialize)]
struct Unclaimable;

/// When every claim fails on a store error, the executor waits for its interval between rounds
/// instead of spinning on the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_claims_do_not_make_the_executor_spin() {
    Unclaimable::durable("unclaimable", |_: Unclaimable| async {})
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    Unclaimable.publish(&bus).await.unwrap();
    for nth in 1..=10_000 {
        store.inject(Operation::CompareAndSwap, nth, Fault::Fail);
    }
    let running = bus.executor().interval(Duration::from_millis(50)).start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let executed = running.shutdown(Duration::from_secs(5)).await;
    let claims = store.calls(Operation::CompareAndSwap);
    assert!(
        claims <= 10,
        "{claims} claim attempts in 300 ms with a 50 ms interval"
    );
    assert!(executed.interrupted >= 2);
    store.heal();
    assert_eq!(bus.executor().run_once().await.unwrap().succeeded, 1);
}

#[event]
#[derive(Serialize, Deserialize)]
struct LandedDead;

/// A dead request whose write landed but reported an error is still one dead request, reported
/// once and counted as dead.
#[tokio::test]
async fn a_dead_request_written_despite_an_error_is_reported_once() {
    assert!(reported("landed-dead").is_empty()); // installs the reporter
    LandedDead::durable("landed-dead", |_: LandedDead| async { Err("no") })
        .max_errors(1)
        .register()
        .unwrap();
    let store = Arc::new(FaultyStore::new(memory()));
    let bus = DurableBus::new(Arc::clone(&store));
    LandedDead.publish(&bus).await.unwrap();
    store.inject(Operation::Apply, 2, Fault::FailAfter); // the dead request's write lands
    let executed = bus.executor().run_once().await.unwrap();
    assert_eq!((executed.dead, executed.interrupted), (1, 0));
    assert_eq!(bus.executor().run_once().await.unwrap().dead, 0);
    assert_eq!(bus.dead_count().await.unwrap(), 1);
    let reports = reported("landed-dead");
    assert_eq!(reports.len(), 1, "{reports:?}");
}

#[event]
#[derive(Serialize, Deserialize)]
struct Attributed(u32);

static ATTRIBUTED: AtomicU32 = AtomicU32::new(0);

/// A durable listener declared with the attribute, from any module.
#[listener(durable, name = "attributed-mail", max_errors = 2, priority = 70)]
async fn attributed_mail(event: Attributed) -> Result<(), String> {
    if event.0 == 0 {
        return Err("nothing to send".into());
    }
    ATTRIBUTED.fetch_add(event.0, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_durable_listener_declared_with_the_attribute_is_registered_with_its_options() {
    let bus = DurableBus::new(memory());
    assert_eq!(Attributed(3).publish(&bus).await.unwrap().requests(), 1);
    let requests = bus.requests().await.unwrap();
    assert_eq!(requests[0].listener(), "attributed-mail");
    assert!(
        requests[0].key().starts_with("185/"),
        "priority 70: {}",
        requests[0].key()
    );
    assert_eq!(bus.executor().run_once().await.unwrap().succeeded, 1);
    assert_eq!(ATTRIBUTED.load(Ordering::SeqCst), 3);
    Attributed(0).publish(&bus).await.unwrap();
    let executor = bus.executor();
    assert_eq!(executor.run_once().await.unwrap().retried, 1);
    // The default backoff waits a second or so before the second attempt.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(executor.run_once().await.unwrap().dead, 1, "max_errors = 2");
}

#[test]
fn a_name_taken_by_an_attribute_listener_is_refused_by_hand_whatever_the_order() {
    let again = Attributed::durable("attributed-mail", |_: Attributed| async {}).register();
    assert!(
        matches!(again, Err(ExecutorError::DuplicateListener(name)) if name == "attributed-mail")
    );
}
