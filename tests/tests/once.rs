//! `once` listeners: removed after their first successful run; exactly one successful run under
//! concurrent triggers; a failed or panicking run leaves them for the next dispatch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use event_bus::prelude::*;
use event_bus_tests::within;

#[event]
struct Started;

#[test]
fn a_once_listener_runs_exactly_once_under_concurrent_triggers() {
    within(Duration::from_secs(30), || {
        for _ in 0..50 {
            let registry = Arc::new(Registry::<Started>::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&runs);
            registry.listener().once().register(move |_: &Started| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            let always = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&always);
            registry.register(move |_: &Started| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            let barrier = Arc::new(Barrier::new(4));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (registry, barrier) = (Arc::clone(&registry), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..100 {
                            assert!(registry.trigger(Started).is_success());
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            assert_eq!(always.load(Ordering::SeqCst), 400);
            assert_eq!(registry.len(), 1, "the once listener removed itself");
        }
    });
}

#[test]
fn a_failed_or_panicking_run_leaves_it_for_the_next_dispatch() {
    event_bus_tests::quiet_panics();
    let registry = Registry::<Started>::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    registry
        .listener()
        .name("flaky")
        .once()
        .register(
            move |_: &Started| match counter.fetch_add(1, Ordering::SeqCst) {
                0 => Err("not yet"),
                1 => panic!("still not"),
                _ => Ok(()),
            },
        );
    assert!(!registry.trigger(Started).is_success());
    assert!(!registry.trigger(Started).is_success());
    assert!(registry.trigger(Started).is_success());
    assert!(registry.is_empty());
    assert_eq!(registry.trigger(Started).listeners(), 0);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_once_listeners_run_once_across_spawned_dispatches() {
    let registry = Arc::new(Registry::<Started>::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    registry
        .listener()
        .once()
        .register_async(move |_: Arc<Started>| {
            let counter = Arc::clone(&counter);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
    let dispatches: Vec<_> = (0..20).map(|_| registry.spawn(Started)).collect();
    for dispatch in dispatches {
        assert!(dispatch.await.is_success());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(registry.is_empty());
    // A cancelled run (its future dropped) does not count: the next one runs it.
    let registry = Registry::<Started>::new();
    let counter = Arc::clone(&runs);
    registry
        .listener()
        .once()
        .register_async(move |_: Arc<Started>| {
            let counter = Arc::clone(&counter);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
    let cancelled = tokio::time::timeout(Duration::from_millis(5), registry.deliver(Started)).await;
    assert!(cancelled.is_err());
    assert!(registry.deliver(Started).await.is_success());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(registry.is_empty());
}
