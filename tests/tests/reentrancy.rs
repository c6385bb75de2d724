//! Listeners that trigger events and (un)register listeners while being dispatched: no deadlock,
//! and changes apply from the next dispatch (snapshot semantics). Every test has a time limit, so a
//! deadlock fails instead of hanging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_bus::prelude::*;
use event_bus_tests::within;

const LIMIT: Duration = Duration::from_secs(20);

#[event]
struct Countdown(u32);

#[test]
fn a_listener_may_trigger_the_same_event_recursively() {
    within(LIMIT, || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let _guard = Countdown::register(move |c: &Countdown| {
            log.lock().unwrap().push(c.0);
            if c.0 > 0 {
                let inner = Countdown(c.0 - 1).trigger();
                assert!(inner.is_success());
            }
        })
        .guard();
        assert!(Countdown(5).trigger().is_success());
        assert_eq!(*seen.lock().unwrap(), [5, 4, 3, 2, 1, 0]);
    });
}

#[event]
struct Ping(u32);

#[event]
struct Pong(u32);

#[test]
fn a_listener_may_trigger_another_event_which_triggers_back() {
    within(LIMIT, || {
        let volleys = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&volleys);
        let _ping = Ping::register(move |p: &Ping| {
            log.lock().unwrap().push(format!("ping {}", p.0));
            if p.0 > 0 {
                assert!(Pong(p.0 - 1).trigger().is_success());
            }
        })
        .guard();
        let log = Arc::clone(&volleys);
        let _pong = Pong::register(move |p: &Pong| {
            log.lock().unwrap().push(format!("pong {}", p.0));
            if p.0 > 0 {
                assert!(Ping(p.0 - 1).trigger().is_success());
            }
        })
        .guard();
        Ping(3).trigger();
        assert_eq!(
            *volleys.lock().unwrap(),
            ["ping 3", "pong 2", "ping 1", "pong 0"]
        );
    });
}

#[event]
struct Grow;

#[test]
fn registering_inside_a_listener_applies_from_the_next_dispatch() {
    within(LIMIT, || {
        let registry = Arc::new(Registry::<Grow>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let inner_registry = Arc::clone(&registry);
        let inner_calls = Arc::clone(&calls);
        registry.register(move |_: &Grow| {
            let calls = Arc::clone(&inner_calls);
            inner_registry.register(move |_: &Grow| {
                calls.fetch_add(1, Ordering::SeqCst);
            });
        });
        // First dispatch: 1 listener runs and adds one; the new one does not run yet.
        assert_eq!(registry.trigger(Grow).listeners(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // Second: 2 listeners (the adder and the added); the adder adds another.
        assert_eq!(registry.trigger(Grow).listeners(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(registry.len(), 3);
    });
}

#[event]
struct SelfRemoving;

#[test]
fn a_listener_may_unregister_itself_and_others_mid_dispatch() {
    within(LIMIT, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let own: Arc<Mutex<Option<Subscription<SelfRemoving>>>> = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&own);
        let counter = Arc::clone(&calls);
        let subscription =
            SelfRemoving::listener()
                .priority(1)
                .register(move |_: &SelfRemoving| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if let Some(me) = slot.lock().unwrap().take() {
                        assert!(me.unsubscribe());
                    }
                });
        *own.lock().unwrap() = Some(subscription);
        let later = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&later);
        let _other = SelfRemoving::register(move |_: &SelfRemoving| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .guard();

        // The snapshot taken at the start still holds both listeners.
        assert_eq!(SelfRemoving.trigger().succeeded(), 2);
        assert_eq!(SelfRemoving.trigger().succeeded(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(later.load(Ordering::SeqCst), 2);
    });
}

#[event]
struct Nested(u32);

#[test]
fn register_then_trigger_inside_a_listener_sees_the_new_listener() {
    within(LIMIT, || {
        let inner_hits = Arc::new(AtomicUsize::new(0));
        let hits = Arc::clone(&inner_hits);
        let _outer = Nested::register(move |n: &Nested| {
            if n.0 == 0 {
                let hits = Arc::clone(&hits);
                // Registered mid-dispatch (this bumps the generation the thread cache checks) ...
                let _added = Nested::register(move |_: &Nested| {
                    hits.fetch_add(1, Ordering::SeqCst);
                });
                // ... so a nested trigger from here already sees it.
                let report = Nested(1).trigger();
                assert_eq!(report.listeners(), 2);
            }
        })
        .guard();
        Nested(0).trigger();
        assert_eq!(inner_hits.load(Ordering::SeqCst), 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_listeners_may_spawn_and_deliver_recursively() {
    let registry = Arc::new(Registry::<Countdown>::new());
    let seen = Arc::new(AtomicUsize::new(0));
    let inner = Arc::clone(&registry);
    let counter = Arc::clone(&seen);
    registry.register_async(move |c: Arc<Countdown>| {
        let registry = Arc::clone(&inner);
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if c.0 > 0 {
                let report = registry.spawn(Countdown(c.0 - 1)).await;
                assert!(report.is_success());
                let report = registry.deliver(Countdown(0)).await;
                assert!(report.is_success());
            }
        }
    });
    let report = tokio::time::timeout(LIMIT, registry.deliver(Countdown(3)))
        .await
        .expect("no deadlock");
    assert!(report.is_success());
    // Countdown(n) for n>0 causes Countdown(n-1) and Countdown(0): f(n) = 1 + f(n-1) + 1, f(0) = 1.
    assert_eq!(seen.load(Ordering::SeqCst), 7);
}

#[event]
struct Tidy;

/// Dropping a listener (when unsubscribed) may run `Drop` code that touches the same registry:
/// the snapshot is released after the registry's lock, so nothing deadlocks.
#[test]
fn unsubscribing_a_listener_that_owns_a_guard_of_the_same_registry_does_not_deadlock() {
    within(LIMIT, || {
        let registry = Arc::new(Registry::<Tidy>::new());
        let inner = registry.register(|_: &Tidy| {}).guard();
        let outer = registry.register(move |_: &Tidy| {
            let _keep = &inner; // the closure owns a guard of the same registry
        });
        assert_eq!(registry.len(), 2);
        assert!(
            outer.unsubscribe(),
            "returns: dropping the closure dropped the guard"
        );
        assert!(registry.is_empty(), "and the guard's listener went with it");
    });
}

/// A value captured by a listener whose `Drop` registers a new listener on the same registry.
#[test]
fn a_captured_value_whose_drop_registers_on_the_registry_does_not_deadlock() {
    struct RegistersOnDrop(Arc<Registry<Tidy>>);
    impl Drop for RegistersOnDrop {
        fn drop(&mut self) {
            let _ = self.0.register(|_: &Tidy| {});
        }
    }
    within(LIMIT, || {
        let registry = Arc::new(Registry::<Tidy>::new());
        let captured = RegistersOnDrop(Arc::clone(&registry));
        let subscription = registry.register(move |_: &Tidy| {
            let _keep = &captured;
        });
        assert!(subscription.unsubscribe());
        assert_eq!(registry.len(), 1, "the listener registered by the Drop");
        // The same through a guard going out of scope.
        let captured = RegistersOnDrop(Arc::clone(&registry));
        drop(
            registry
                .register(move |_: &Tidy| {
                    let _keep = &captured;
                })
                .guard(),
        );
        assert_eq!(registry.len(), 2);
    });
}
