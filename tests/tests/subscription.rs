//! Subscriptions remove exactly their listener; guards remove on drop; local registries are isolated.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use event_bus::prelude::*;

#[event]
struct Note;

fn counting(
    registry: &Registry<Note>,
    name: &'static str,
) -> (Subscription<Note>, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let subscription = registry.listener().name(name).register(move |_: &Note| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (subscription, hits)
}

#[test]
fn unsubscribe_removes_exactly_that_listener_even_among_identical_ones() {
    let registry = Registry::<Note>::new();
    let (a, a_hits) = counting(&registry, "same");
    let (b, b_hits) = counting(&registry, "same");
    let (_c, c_hits) = counting(&registry, "same");
    assert!(b.unsubscribe());
    registry.trigger(Note);
    assert_eq!(
        [
            a_hits.load(Ordering::SeqCst),
            b_hits.load(Ordering::SeqCst),
            c_hits.load(Ordering::SeqCst)
        ],
        [1, 0, 1]
    );
    assert!(registry.unregister(a));
    registry.trigger(Note);
    assert_eq!(c_hits.load(Ordering::SeqCst), 2);
    assert_eq!(registry.len(), 1);
}

#[test]
fn removing_twice_reports_false() {
    let registry = Registry::<Note>::new();
    let (subscription, _) = counting(&registry, "once");
    let guard = subscription.guard();
    let subscription = guard.disarm();
    assert!(subscription.is_registered());
    // Remove through a second path: the registry's own `unregister`.
    assert!(registry.unregister(subscription));
    let (again, _) = counting(&registry, "again");
    assert!(again.is_registered());
    assert!(again.unsubscribe());
    assert!(registry.is_empty());
}

#[test]
fn a_guard_removes_its_listener_on_drop() {
    let registry = Registry::<Note>::new();
    let (subscription, hits) = counting(&registry, "guarded");
    {
        let _guard = subscription.guard();
        registry.trigger(Note);
    }
    registry.trigger(Note);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(registry.is_empty());
}

#[test]
fn a_subscription_from_another_registry_is_left_alone() {
    let first = Registry::<Note>::new();
    let second = Registry::<Note>::new();
    let (from_first, _) = counting(&first, "first");
    assert!(!second.unregister(from_first));
    assert_eq!(
        first.len(),
        1,
        "unregister on the wrong registry must not remove it"
    );
    let (global, _) = {
        let hits = Arc::new(AtomicUsize::new(0));
        (Note::register(|_: &Note| {}), hits)
    };
    assert!(!first.unregister(global));
    assert_eq!(Note::registry().len(), 1);
}

#[test]
fn a_subscription_outliving_its_registry_is_harmless() {
    let registry = Registry::<Note>::new();
    let (subscription, _) = counting(&registry, "orphan");
    drop(registry);
    assert!(!subscription.is_registered());
    assert!(!subscription.unsubscribe());
}

#[event]
struct Isolated;

#[test]
fn local_registries_are_isolated_from_the_global_one_and_each_other() {
    let global_hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&global_hits);
    let _global = Isolated::register(move |_: &Isolated| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .guard();
    let local = Registry::<Isolated>::new();
    let local_hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&local_hits);
    local.register(move |_: &Isolated| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let other = Registry::<Isolated>::default();

    assert_eq!(local.trigger(Isolated).listeners(), 1);
    assert_eq!(other.trigger(Isolated).listeners(), 0);
    assert_eq!(Isolated.trigger().listeners(), 1);
    assert_eq!(
        (
            global_hits.load(Ordering::SeqCst),
            local_hits.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    let debug = format!("{local:?}");
    assert!(
        debug.contains("local") && debug.contains("Isolated"),
        "{debug}"
    );
}
