//! Hammering registries from several threads: triggers race registrations and removals, and a
//! stable listener must see every event exactly once.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use event_bus::prelude::*;
use event_bus_tests::within;

const TRIGGER_THREADS: usize = 4;
const PER_THREAD: usize = 20_000;

#[event]
struct Hammered(usize);

/// Runs the hammer against `registry`: `TRIGGER_THREADS` threads trigger `PER_THREAD` distinct
/// events each while one thread keeps registering and removing listeners.
fn hammer(registry: &'static Registry<Hammered>) {
    let total = TRIGGER_THREADS * PER_THREAD;
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let stable_seen = Arc::clone(&seen);
    let _stable = registry
        .listener()
        .name("stable")
        .register(move |e: &Hammered| {
            stable_seen[e.0].fetch_add(1, Ordering::Relaxed);
        })
        .guard();

    let start = Arc::new(Barrier::new(TRIGGER_THREADS + 1));
    let done = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let churn = {
        let (start, done, churned) = (Arc::clone(&start), Arc::clone(&done), Arc::clone(&churned));
        thread::spawn(move || {
            start.wait();
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for priority in [-1, 0, 1] {
                    held.push(
                        registry
                            .listener()
                            .priority(priority)
                            .register(|_: &Hammered| {}),
                    );
                }
                if held.len() > 8 {
                    for subscription in held.drain(..6) {
                        assert!(subscription.unsubscribe());
                    }
                }
                churned.fetch_add(1, Ordering::Relaxed);
            }
            held.into_iter().all(Subscription::unsubscribe)
        })
    };
    let triggers: Vec<_> = (0..TRIGGER_THREADS)
        .map(|t| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    let report = registry.trigger(Hammered(t * PER_THREAD + i));
                    assert!(report.is_success());
                    assert!(report.listeners() >= 1);
                }
            })
        })
        .collect();
    for trigger in triggers {
        trigger.join().expect("trigger thread");
    }
    done.store(true, Ordering::Relaxed);
    assert!(churn.join().expect("churn thread"));
    assert!(churned.load(Ordering::Relaxed) > 0);

    let counts: Vec<u8> = seen.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let wrong: Vec<(usize, u8)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 1)
        .map(|(i, c)| (i, *c))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "events not seen exactly once (id, count): {wrong:?}"
    );
    assert_eq!(registry.len(), 1, "only the stable listener is left");
}

#[test]
fn global_registry_every_event_exactly_once_under_churn() {
    within(Duration::from_secs(120), || hammer(Hammered::registry()));
}

#[test]
fn local_registry_every_event_exactly_once_under_churn() {
    within(Duration::from_secs(120), || {
        let registry: &'static Registry<Hammered> = Box::leak(Box::new(Registry::new()));
        hammer(registry)
    });
}

#[event]
struct Crowd;

#[test]
fn concurrent_registration_and_removal_loses_nothing() {
    within(Duration::from_secs(60), || {
        let registry = Arc::new(Registry::<Crowd>::new());
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let registry = Arc::clone(&registry);
                thread::spawn(move || {
                    let mut mine: Vec<_> = (0..500)
                        .map(|_| registry.register(|_: &Crowd| {}))
                        .collect();
                    // Remove every other one.
                    let removed = mine
                        .drain(..)
                        .enumerate()
                        .filter_map(|(i, s)| {
                            if i % 2 == 0 {
                                Some(s.unsubscribe())
                            } else {
                                None
                            }
                        })
                        .filter(|removed| *removed)
                        .count();
                    assert_eq!(removed, 250);
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        assert_eq!(registry.len(), 1000);
        assert_eq!(registry.trigger(Crowd).succeeded(), 1000);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_dispatches_from_many_tasks_each_reach_every_listener() {
    let registry = Arc::new(Registry::<Crowd>::new());
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let hits = Arc::clone(&hits);
        registry.register(move |_: &Crowd| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                for _ in 0..100 {
                    assert_eq!(registry.spawn(Crowd).await.succeeded(), 4);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(hits.load(Ordering::Relaxed), 8 * 100 * 4);
}
