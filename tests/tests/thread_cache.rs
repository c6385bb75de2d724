//! The per-thread snapshot cache of global registries (`#[event]` types): a change is seen by
//! every dispatch that starts after it (on any thread that synchronized with the change), nested
//! dispatches see changes their listeners made, a removed listener's captures are released at the
//! latest when each thread that cached them triggers the type again or exits, and a trigger from a
//! thread-local destructor still runs every listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use event_bus::prelude::*;
use event_bus_tests::within;

const LIMIT: Duration = Duration::from_secs(20);

#[event]
struct Seen(#[allow(dead_code)] u32);

#[test]
fn a_change_on_one_thread_is_seen_by_the_next_dispatch_on_another() {
    within(LIMIT, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let (to_worker, work) = mpsc::channel::<Option<Subscription<Seen>>>();
        let (to_main, done) = mpsc::channel::<usize>();
        // The worker triggers once per message, so its cache is warm before each change.
        let worker = thread::spawn(move || {
            while let Ok(message) = work.recv() {
                if let Some(subscription) = message {
                    assert!(subscription.unsubscribe());
                }
                to_main.send(Seen(0).trigger().listeners()).unwrap();
            }
        });
        for round in 1..=50 {
            let counter = Arc::clone(&calls);
            let subscription = Seen::register(move |_: &Seen| {
                counter.fetch_add(1, Ordering::Relaxed);
            });
            // Registered here, dispatched there: the worker's cached snapshot is stale.
            to_worker.send(None).unwrap();
            assert_eq!(
                done.recv().unwrap(),
                1,
                "round {round}: the new listener is seen"
            );
            // Removed there: the next dispatch here must not run it.
            to_worker.send(Some(subscription)).unwrap();
            assert_eq!(
                done.recv().unwrap(),
                0,
                "round {round}: removed on the worker"
            );
            assert_eq!(
                Seen(0).trigger().listeners(),
                0,
                "round {round}: removed here too"
            );
        }
        drop(to_worker);
        worker.join().unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 50);
    });
}

#[event]
struct Nested(u32);

#[test]
fn a_nested_dispatch_sees_a_listener_its_outer_listener_registered() {
    within(LIMIT, || {
        let inner_runs = Arc::new(AtomicUsize::new(0));
        let runs = Arc::clone(&inner_runs);
        let registered = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&registered);
        let _outer = Nested::register(move |n: &Nested| {
            if n.0 == 1 {
                let runs = Arc::clone(&runs);
                let guard = Nested::register(move |n: &Nested| {
                    assert_eq!(n.0, 0);
                    runs.fetch_add(1, Ordering::Relaxed);
                })
                .guard();
                *slot.lock().unwrap() = Some(guard);
                // Started after the registration returned: it must run the new listener, although
                // the outer dispatch still walks the cached snapshot without it.
                assert_eq!(Nested(0).trigger().listeners(), 2);
            }
        })
        .guard();
        let outer = Nested(1).trigger();
        assert_eq!(
            outer.listeners(),
            1,
            "the outer dispatch keeps its snapshot"
        );
        assert!(outer.is_success(), "{outer:?}");
        assert_eq!(inner_runs.load(Ordering::Relaxed), 1);
        assert_eq!(
            Nested(0).trigger().listeners(),
            2,
            "and now the cache has it"
        );
        drop(registered.lock().unwrap().take());
    });
}

#[event]
struct Held(#[allow(dead_code)] u32);

/// Counts its drops.
struct Capture(Arc<AtomicUsize>);

impl Drop for Capture {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_removed_listener_is_released_when_each_caching_thread_triggers_again_or_exits() {
    within(LIMIT, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let capture = Capture(Arc::clone(&drops));
        let subscription = Held::register(move |_: &Held| {
            let _ = &capture;
        });
        let (to_idle, wake) = mpsc::channel::<()>();
        let (cached, ready) = mpsc::channel::<()>();
        let idle = thread::spawn(move || {
            assert_eq!(Held(0).trigger().listeners(), 1); // caches the snapshot with the listener
            cached.send(()).unwrap();
            wake.recv().unwrap(); // idle until told to trigger again
            assert_eq!(Held(0).trigger().listeners(), 0);
            cached.send(()).unwrap();
            wake.recv().unwrap(); // then idle until told to exit
        });
        ready.recv().unwrap();
        assert_eq!(Held(0).trigger().listeners(), 1); // this thread caches it too
        assert!(subscription.unsubscribe());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "two threads still cache it"
        );
        assert_eq!(Held(0).trigger().listeners(), 0);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the idle thread still caches it"
        );
        to_idle.send(()).unwrap();
        ready.recv().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "released by its next trigger"
        );
        to_idle.send(()).unwrap();
        idle.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");

        // A thread that exits without triggering again releases it when it exits.
        let drops = Arc::new(AtomicUsize::new(0));
        let capture = Capture(Arc::clone(&drops));
        let subscription = Held::register(move |_: &Held| {
            let _ = &capture;
        });
        let (removed, go) = mpsc::channel::<()>();
        let (cached, ready) = mpsc::channel::<()>();
        let exiting = thread::spawn(move || {
            assert_eq!(Held(0).trigger().listeners(), 1);
            cached.send(()).unwrap();
            go.recv().unwrap();
        });
        ready.recv().unwrap();
        assert!(subscription.unsubscribe());
        assert_eq!(Held(0).trigger().listeners(), 0);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the other thread caches it"
        );
        removed.send(()).unwrap();
        exiting.join().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "released when that thread exited"
        );
    });
}

#[event]
struct AtExit(#[allow(dead_code)] u32);

thread_local! {
    static TRIGGER_ON_EXIT: TriggerOnDrop = const { TriggerOnDrop };
}

/// Triggers `AtExit` from a thread-local destructor, when the event's own cache may be gone.
struct TriggerOnDrop;

impl Drop for TriggerOnDrop {
    fn drop(&mut self) {
        let report = AtExit(1).trigger();
        assert_eq!(report.succeeded(), 1, "{report:?}");
    }
}

#[test]
fn a_trigger_from_a_thread_local_destructor_runs_every_listener() {
    within(LIMIT, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let _guard = AtExit::register(move |_: &AtExit| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .guard();
        // Both thread-locals exist on each thread; their destructors run at exit in reverse order
        // of first use (on Linux), so the second thread's cache is gone when `AtExit` is
        // triggered from the destructor.
        thread::spawn(|| {
            assert_eq!(AtExit(0).trigger().succeeded(), 1);
            TRIGGER_ON_EXIT.with(|_| {});
        })
        .join()
        .unwrap();
        thread::spawn(|| {
            TRIGGER_ON_EXIT.with(|_| {});
            assert_eq!(AtExit(0).trigger().succeeded(), 1);
        })
        .join()
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    });
}

#[event]
struct Hammered(#[allow(dead_code)] u32);

thread_local! {
    /// The last round whose removal this thread had seen when its current dispatch started.
    static SEEN_REMOVED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[test]
fn dispatches_racing_changes_never_run_a_listener_removed_before_they_started() {
    within(LIMIT, || {
        // One thread registers and removes a listener per round and then publishes the round;
        // trigger threads read the published round before each dispatch. A listener of round `k`
        // run by a dispatch that had already read a round >= `k` ran after its removal was seen:
        // a stale cache. (Dispatches that started before the removal may run it: allowed.)
        let removed_round = Arc::new(AtomicUsize::new(0));
        let violations = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut triggers = Vec::new();
        for _ in 0..3 {
            let stop = Arc::clone(&stop);
            let removed_round = Arc::clone(&removed_round);
            triggers.push(thread::spawn(move || {
                let mut dispatched = 0u64;
                while !stop.load(Ordering::Acquire) {
                    SEEN_REMOVED.set(removed_round.load(Ordering::Acquire));
                    assert!(Hammered(0).trigger().is_success());
                    dispatched += 1;
                }
                dispatched
            }));
        }
        for round in 1..=2_000usize {
            let violations = Arc::clone(&violations);
            let subscription = Hammered::register(move |_: &Hammered| {
                if SEEN_REMOVED.get() >= round {
                    violations.fetch_add(1, Ordering::Relaxed);
                }
            });
            thread::yield_now();
            assert!(subscription.unsubscribe());
            removed_round.store(round, Ordering::Release);
        }
        stop.store(true, Ordering::Release);
        let dispatched: u64 = triggers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(dispatched > 0);
        assert_eq!(
            violations.load(Ordering::Relaxed),
            0,
            "a removed listener ran"
        );
    });
}
